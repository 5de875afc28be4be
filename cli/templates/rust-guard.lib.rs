//! `{{name}}`: a moat guard policy (made by `moat new guard {{name}} --lang rust`). It denies a
//! call whose arguments contain the word "forbidden"; replace that with your rule.
//!
//! Built into a component by `just plugins` (`moat new` said where); copy that into the
//! policies directory of moat.toml. Its cases are in cases.json next to this crate, checked
//! by `just test`. A guard that traps or runs out of budget denies the call (fail closed).

use moat_guest::guard::{export_guard, Call, Guard, GuardInfo, Verdict};

struct Policy;

impl Guard for Policy {
    fn info() -> GuardInfo {
        GuardInfo {
            name: "{{name}}".into(),
            description: "Denies calls whose arguments contain the word \"forbidden\".".into(),
        }
    }

    /// Before the call runs: `call.args` is the JSON text of the arguments.
    fn check_call(call: &Call) -> Verdict {
        if call.args.to_lowercase().contains("forbidden") {
            return Verdict::Deny(format!("{{name}}: `{}` was asked something forbidden", call.tool));
        }
        Verdict::Allow
    }
}

export_guard!(Policy);
