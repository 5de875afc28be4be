// `{{tool}}`: a moat tool written in JavaScript (made by `moat new tool {{name}} --lang js`).
// It counts the characters of a text; replace that with what your tool does.
//
// Built into a component by `just plugins` (componentize-js, moat's WIT world `tool-plugin`;
// `moat new` said where); its cases are in cases.json beside this file, checked by
// `just test`. The module exports the WIT interface `tool` as an object named `tool`; WIT
// names are camelCase here (`input-schema` is `inputSchema`), an `option` is a value or
// `undefined`, and a tool error is thrown as `{ tag: 'invalid-input' | 'failed' | 'denied',
// val: message }`.

const SCHEMA = {
    type: 'object',
    properties: { text: { type: 'string', description: 'The text to look at' } },
    required: ['text'],
    additionalProperties: false,
};

export const tool = {
    describe() {
        return [
            {
                name: '{{tool}}',
                description: 'Counts the characters of a text.',
                inputSchema: JSON.stringify(SCHEMA),
                outputSchema: undefined,
                effects: [],
                stakes: undefined,
                version: '0.1.0',
            },
        ];
    },

    call(name, args) {
        if (name !== '{{tool}}') {
            throw { tag: 'invalid-input', val: `no tool \`${name}\` here` };
        }
        const { text } = JSON.parse(args);
        if (!text) {
            throw { tag: 'invalid-input', val: '`text` is empty' };
        }
        return JSON.stringify({ text, characters: [...text].length });
    },
};
