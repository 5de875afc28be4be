//! `scripted`: a test policy that does what the call's arguments tell it. The arguments may
//! hold `"_guard": {"call": V, "effect": V, "result": V}` where V is one of `allow`, `deny`,
//! `escalate`, `rewrite:<json>`, `bloat:<n>` (a rewrite: a JSON string of n bytes), `trap`, `spin` (loop forever), `hog` (allocate without end),
//! `not-json` (a rewrite that is not JSON), or `fresh` (allow if this instance never checked
//! anything before, else deny). Missing means allow.
//!
//! Expectations (checked by `tests/all/guards.rs`): each verdict at each point has its
//! effect; `trap`, `spin` and `hog` deny the call (fail closed) with the reason.

use moat_guest::guard::{export_guard, Call, Effect, Guard, GuardInfo, Verdict};
use moat_guest::serde_json::{self, Value};
use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};

/// Checks this instance ran before this one.
static CHECKS: AtomicU32 = AtomicU32::new(0);

fn script(call: &Call, point: &str) -> Verdict {
    let before = CHECKS.fetch_add(1, Ordering::Relaxed);
    let args: Value = serde_json::from_str(&call.args).unwrap_or(Value::Null);
    let order = args["_guard"][point].as_str().unwrap_or("allow").to_owned();
    match order.as_str() {
        "allow" => Verdict::Allow,
        "deny" => Verdict::Deny(format!("scripted deny at {point}")),
        "escalate" => Verdict::Escalate(format!("scripted escalate at {point}")),
        "trap" => panic!("scripted trap at {point}"),
        "spin" => loop {
            black_box(0);
        },
        "hog" => {
            let mut hoard = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                black_box(&hoard);
            }
        }
        "not-json" => Verdict::Rewrite("this is not json".into()),
        "fresh" if before == 0 => Verdict::Allow,
        "fresh" => Verdict::Deny(format!("this instance checked {before} times before {point}")),
        other => match (other.strip_prefix("rewrite:"), other.strip_prefix("bloat:")) {
            (Some(json), _) => Verdict::Rewrite(json.to_owned()),
            (_, Some(bytes)) => {
                let bytes = bytes.parse::<usize>().unwrap_or(0).max(2);
                Verdict::Rewrite(format!("\"{}\"", "x".repeat(bytes - 2)))
            }
            _ => Verdict::Deny(format!("scripted: unknown order `{other}`")),
        },
    }
}

struct Scripted;

impl Guard for Scripted {
    fn info() -> GuardInfo {
        GuardInfo { name: "scripted".into(), description: "Does what the arguments say.".into() }
    }
    fn check_call(call: &Call) -> Verdict {
        script(call, "call")
    }
    fn check_effect(call: &Call, _effect: &Effect) -> Verdict {
        script(call, "effect")
    }
    fn check_result(call: &Call, _output: &str) -> Verdict {
        script(call, "result")
    }
}

export_guard!(Scripted);
