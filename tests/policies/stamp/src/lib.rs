//! `stamp`: a test policy that wraps every output as `{"stamped": OUTPUT}`, denies a call whose
//! arguments hold `"_deny": true`, and denies a network effect after the session read a
//! file whose path contains "confidential" (a sequence rule over the history).
//!
//! Expectations (checked by `tests/all/guards.rs`): rewrites apply in policy order; a deny
//! wins over an escalate of an earlier policy; the sequence rule sees the history.

use moat_guest::guard::{export_guard, Call, EffectKind, Guard, GuardInfo, Verdict};
use moat_guest::serde_json::{self, Value};

struct Stamp;

impl Guard for Stamp {
    fn info() -> GuardInfo {
        GuardInfo { name: "stamp".into(), description: "Stamps outputs.".into() }
    }

    fn check_call(call: &Call) -> Verdict {
        let args: Value = serde_json::from_str(&call.args).unwrap_or(Value::Null);
        if args["_deny"] == Value::Bool(true) {
            return Verdict::Deny("stamp denies calls marked _deny".into());
        }
        let read_confidential =
            call.history.iter().any(|h| h.targets.iter().any(|t| t.contains("confidential")));
        if read_confidential && call.effects.contains(&EffectKind::Network) {
            return Verdict::Deny("no outbound network after reading a confidential file".into());
        }
        Verdict::Allow
    }

    fn check_result(_call: &Call, output: &str) -> Verdict {
        Verdict::Rewrite(format!("{{\"stamped\":{output}}}"))
    }
}

export_guard!(Stamp);
