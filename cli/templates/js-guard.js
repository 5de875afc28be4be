// `{{name}}`: a moat guard policy written in JavaScript (made by `moat new guard {{name}}
// --lang js`). It denies a call whose arguments contain the word "forbidden"; replace that
// with your rule.
//
// Built into a component by `just plugins` (componentize-js, moat's WIT world
// `guard-plugin`; `moat new` said where); copy that into the policies directory of
// moat.toml. Its cases are in cases.json beside this file, checked by `just test`. The
// module exports the WIT interface `guard` as an object named `guard` (functions in
// camelCase); a verdict is `{ tag: 'allow' }`, `{ tag: 'deny', val: reason }`, `escalate`
// or `rewrite` likewise. A guard that throws, traps or runs out of budget denies the call
// (fail closed).

const allow = { tag: 'allow' };

export const guard = {
    describe() {
        return {
            name: '{{name}}',
            description: 'Denies calls whose arguments contain the word "forbidden".',
        };
    },

    // Before the call runs: `call.args` is the JSON text of the arguments.
    checkCall(call) {
        if (call.args.toLowerCase().includes('forbidden')) {
            return { tag: 'deny', val: `{{name}}: \`${call.tool}\` was asked something forbidden` };
        }
        return allow;
    },

    // Before each side effect (a file written, a row deleted, a request sent).
    checkEffect(_call, _effect) {
        return allow;
    },

    // On the output, before the agent sees it (`{ tag: 'rewrite', val }` replaces it).
    checkResult(_call, _output) {
        return allow;
    },
};
