//! `destructive-needs-approval`: asks a person before anything is destroyed. At each effect
//! (check-effect) it escalates:
//! - every `delete` effect: a file removed, rows deleted, a key removed;
//! - every sql effect whose detail reports more than 10 rows (`rows`: inserted, updated and
//!   deleted together), whatever its kind.
//!
//! The reason names the target and the numbers ("delete of `data:old.txt` (fs, 8 bytes)",
//! "sql update of 20 rows in `shop:orders` (a table of 25 rows), more than 10"). Everything
//! else is allowed.
//!
//! Expectations (checked by `tests/all/policies.rs`): a file removal is escalated, happens
//! when the person approves and not when they deny; an update of more than 10 rows is
//! escalated and a small update is not.

use moat_guest::guard::{export_guard, Call, Effect, EffectKind, Guard, GuardInfo, Verdict};
use moat_guest::serde_json::{self, Value};

/// More rows than this in one sql effect need approval.
const MAX_ROWS: u64 = 10;

struct DestructiveNeedsApproval;

impl Guard for DestructiveNeedsApproval {
    fn info() -> GuardInfo {
        GuardInfo {
            name: "destructive-needs-approval".into(),
            description: format!(
                "Asks a person before any deletion, and before a change of more than \
                 {MAX_ROWS} rows."
            ),
        }
    }

    fn check_effect(_call: &Call, effect: &Effect) -> Verdict {
        let detail: Value = serde_json::from_str(&effect.detail).unwrap_or(Value::Null);
        let target = &effect.target;
        let capability = &effect.capability;
        if capability == "sql" {
            let rows = detail["rows"].as_u64().unwrap_or(0);
            let operation = detail["operation"].as_str().unwrap_or("change");
            let table = match detail["table_rows"].as_u64() {
                Some(n) => format!(" (a table of {n} rows)"),
                None => String::new(),
            };
            if rows > MAX_ROWS {
                return Verdict::Escalate(format!(
                    "sql {operation} of {rows} rows in `{target}`{table}, more than {MAX_ROWS}"
                ));
            }
            if effect.kind == EffectKind::Delete {
                let deleted = detail["deleted"].as_u64().unwrap_or(rows);
                return Verdict::Escalate(format!(
                    "sql delete of {deleted} rows in `{target}`{table}"
                ));
            }
            return Verdict::Allow;
        }
        if effect.kind == EffectKind::Delete {
            let size = match detail["bytes"].as_u64() {
                Some(bytes) => format!(", {bytes} bytes"),
                None => String::new(),
            };
            return Verdict::Escalate(format!("delete of `{target}` ({capability}{size})"));
        }
        Verdict::Allow
    }
}

export_guard!(DestructiveNeedsApproval);
