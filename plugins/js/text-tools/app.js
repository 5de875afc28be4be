// A moat tool written in JavaScript: text helpers an agent often needs, `slugify` (a title
// into a URL or file name part) and `case_convert` (an identifier into another case).
//
// Built into a component by componentize-js from moat's own WIT world (`tool-plugin`):
// `just plugins` (plugins/js/build.sh) writes target/wasm/js/text-tools.wasm. The module
// exports the WIT interface `tool` as an object named `tool`; WIT names are camelCase in
// JavaScript (`input-schema` is `inputSchema`), an `option` is a value or `undefined`, a
// variant is `{ tag, val }`, and the error of a `result` is thrown. The component runs on a
// fresh instance per call, under the same budgets as any other tool; both tools are pure
// (no effects declared), and WASI gives them no files, no network and an empty environment.

const VERSION = '0.1.0';

const CASES = ['snake', 'kebab', 'camel', 'pascal', 'constant', 'title'];

const TOOLS = [
    {
        name: 'slugify',
        description:
            'Turns a text (a title, a heading) into a slug for a URL or a file name: lower-case ' +
            'ASCII letters and digits joined by a separator (Latin accents dropped: é is e).',
        inputSchema: {
            type: 'object',
            properties: {
                text: { type: 'string', description: 'The text to slugify' },
                separator: {
                    type: 'string',
                    enum: ['-', '_', '.'],
                    description: 'What joins the words (default "-")',
                },
                max_length: {
                    type: 'integer',
                    minimum: 1,
                    maximum: 200,
                    description: 'Cut the slug at a word boundary to at most this many characters',
                },
            },
            required: ['text'],
            additionalProperties: false,
        },
        outputSchema: {
            type: 'object',
            properties: { slug: { type: 'string' } },
            required: ['slug'],
        },
        run: slugify,
    },
    {
        name: 'case_convert',
        description:
            'Converts an identifier or a phrase between cases: snake_case, kebab-case, ' +
            'camelCase, PascalCase, CONSTANT_CASE or Title Case. Word boundaries are found ' +
            'at spaces, punctuation and changes of case (`parseHTTPResponse` is parse, HTTP, ' +
            'response).',
        inputSchema: {
            type: 'object',
            properties: {
                text: { type: 'string', description: 'The identifier or phrase' },
                to: { type: 'string', enum: CASES, description: 'The case to convert to' },
            },
            required: ['text', 'to'],
            additionalProperties: false,
        },
        outputSchema: {
            type: 'object',
            properties: {
                text: { type: 'string' },
                words: { type: 'array', items: { type: 'string' } },
            },
            required: ['text', 'words'],
        },
        run: caseConvert,
    },
];

// The engine (SpiderMonkey, built without ICU) has no `String.prototype.normalize`, no `Intl`
// and no Unicode property escapes (`\p{L}`) in regular expressions: letters are told apart
// by their case mappings, and accents are dropped with a table of the Latin ones.
const isUpper = (c) => c !== c.toLowerCase();
const isLower = (c) => c !== c.toUpperCase();
const isDigit = (c) => c >= '0' && c <= '9';

// ASCII punctuation and spaces, Latin-1 punctuation, general punctuation (dashes, quotes).
const SEPARATORS =
    /[\s\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e\u00a0-\u00bf\u00d7\u00f7\u2000-\u206f]+/;

/** The words of a text, split at separators and at changes of case (`fooBar`, `HTTPResponse`). */
function words(text) {
    const found = [];
    for (const chunk of text.split(SEPARATORS)) {
        const chars = [...chunk];
        let word = '';
        chars.forEach((c, i) => {
            if (i === 0) {
                word = c;
                return;
            }
            const prev = chars[i - 1];
            const next = chars[i + 1];
            // fooBar, v2Beta: a capital after a small letter or a digit; HTTPResponse: the
            // last capital of a run when a small letter follows.
            const acronymEnds = isUpper(prev) && next !== undefined && isLower(next);
            const boundary = isUpper(c) && (isLower(prev) || isDigit(prev) || acronymEnds);
            if (boundary) {
                found.push(word);
                word = '';
            }
            word += c;
        });
        if (word) found.push(word);
    }
    return found;
}

const LATIN = {
    à: 'a', á: 'a', â: 'a', ã: 'a', ä: 'a', å: 'a', ā: 'a', ă: 'a', ą: 'a', æ: 'ae',
    ç: 'c', ć: 'c', č: 'c', ď: 'd', đ: 'd', ð: 'd',
    è: 'e', é: 'e', ê: 'e', ë: 'e', ē: 'e', ė: 'e', ę: 'e', ě: 'e',
    ğ: 'g', ì: 'i', í: 'i', î: 'i', ï: 'i', ī: 'i', į: 'i', ı: 'i', ł: 'l', ľ: 'l',
    ñ: 'n', ń: 'n', ň: 'n', ò: 'o', ó: 'o', ô: 'o', õ: 'o', ö: 'o', ø: 'o', ō: 'o', ő: 'o',
    œ: 'oe', ŕ: 'r', ř: 'r', ß: 'ss', ś: 's', ş: 's', š: 's', ș: 's', ť: 't', ț: 't', þ: 'th',
    ù: 'u', ú: 'u', û: 'u', ü: 'u', ū: 'u', ů: 'u', ű: 'u', ų: 'u', ý: 'y', ÿ: 'y',
    ź: 'z', ż: 'z', ž: 'z',
};

function capitalize(word) {
    return word.charAt(0).toUpperCase() + word.slice(1).toLowerCase();
}

function slugify({ text, separator = '-', max_length: maxLength }) {
    // Accented Latin letters become their base letters (É -> E); other letters are dropped.
    const ascii = [...text]
        .map((c) => {
            const base = LATIN[c.toLowerCase()];
            return base === undefined ? c : isUpper(c) ? capitalize(base) : base;
        })
        .join('');
    const parts = words(ascii)
        .map((w) => w.toLowerCase().replace(/[^a-z0-9]+/g, ''))
        .filter((w) => w);
    if (parts.length === 0) {
        throw { tag: 'invalid-input', val: '`text` has no letters or digits to make a slug of' };
    }
    let slug = '';
    for (const part of parts) {
        const next = slug ? slug + separator + part : part;
        if (maxLength !== undefined && next.length > maxLength) {
            if (!slug) slug = part.slice(0, maxLength);
            break;
        }
        slug = next;
    }
    return { slug };
}

function caseConvert({ text, to }) {
    const found = words(text);
    if (found.length === 0) {
        throw { tag: 'invalid-input', val: '`text` has no letters or digits to convert' };
    }
    const lower = found.map((w) => w.toLowerCase());
    const converted = {
        snake: () => lower.join('_'),
        kebab: () => lower.join('-'),
        camel: () => lower[0] + found.slice(1).map(capitalize).join(''),
        pascal: () => found.map(capitalize).join(''),
        constant: () => found.map((w) => w.toUpperCase()).join('_'),
        title: () => found.map(capitalize).join(' '),
    }[to];
    return { text: converted(), words: lower };
}

export const tool = {
    describe() {
        return TOOLS.map(({ name, description, inputSchema, outputSchema }) => ({
            name,
            description,
            inputSchema: JSON.stringify(inputSchema),
            outputSchema: JSON.stringify(outputSchema),
            effects: [],
            stakes: undefined,
            version: VERSION,
        }));
    },

    call(name, args) {
        const found = TOOLS.find((t) => t.name === name);
        if (!found) {
            throw { tag: 'invalid-input', val: `no tool \`${name}\` here` };
        }
        return JSON.stringify(found.run(JSON.parse(args)));
    },
};
