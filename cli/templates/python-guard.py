"""`{{name}}`: a moat guard policy written in Python (made by `moat new guard {{name}} --lang
python`). It denies a call whose arguments contain the word "forbidden"; replace that with
your rule.

Built into a component by `just plugins` (componentize-py, moat's WIT world `guard-plugin`;
`moat new` said where); copy that into the policies directory of moat.toml. Its cases are
in cases.json beside this file, checked by `just test`. A guard that raises, traps
or runs out of budget denies the call (fail closed).
"""

from wit_world import exports
from wit_world.exports import guard


class Guard(exports.Guard):
    def describe(self):
        return guard.GuardInfo(
            name="{{name}}",
            description='Denies calls whose arguments contain the word "forbidden".',
        )

    def check_call(self, call):
        """Before the call runs: `call.args` is the JSON text of the arguments."""
        if "forbidden" in call.args.lower():
            return guard.Verdict_Deny(f"{{name}}: `{call.tool}` was asked something forbidden")
        return guard.Verdict_Allow()

    def check_effect(self, call, effect):
        """Before each side effect (a file written, a row deleted, a request sent)."""
        return guard.Verdict_Allow()

    def check_result(self, call, output):
        """On the output, before the agent sees it (Verdict_Rewrite replaces it)."""
        return guard.Verdict_Allow()
