//! `outgoing-limits`: bounds what one outgoing call may send. Before a call (check-call)
//! whose tool declares the `send` or `network` effect, it reads the arguments (at any depth)
//! and denies the call when:
//! - they name more than 5 recipients: the fields `to`, `cc`, `bcc` and `recipients`
//!   together, a list counting its items and a string its comma- or semicolon-separated
//!   addresses;
//! - a `body` or `text` field is a string of more than 10,000 bytes.
//!
//! The reason names the number and the limit ("7 recipients (to, cc, bcc, recipients), limit
//! 5"; "`body` is 12000 bytes, limit 10000"). Calls of other tools are not looked at.
//!
//! Expectations (checked by `tests/all/policies.rs`): a network call with too many
//! recipients or too long a body is denied before it runs, with the numbers in the reason;
//! one with few recipients and a short body goes ahead.

use moat_guest::guard::{export_guard, Call, EffectKind, Guard, GuardInfo, Verdict};
use moat_guest::serde_json::{self, Value};

/// At most this many recipients in one call.
const MAX_RECIPIENTS: usize = 5;
/// At most this many bytes in one body.
const MAX_BODY: usize = 10_000;

const RECIPIENT_FIELDS: &[&str] = &["to", "cc", "bcc", "recipients"];
const BODY_FIELDS: &[&str] = &["body", "text"];

struct OutgoingLimits;

impl Guard for OutgoingLimits {
    fn info() -> GuardInfo {
        GuardInfo {
            name: "outgoing-limits".into(),
            description: format!(
                "Denies outgoing calls with more than {MAX_RECIPIENTS} recipients or a body \
                 over {MAX_BODY} bytes."
            ),
        }
    }

    fn check_call(call: &Call) -> Verdict {
        let outgoing =
            call.effects.iter().any(|e| matches!(e, EffectKind::Send | EffectKind::Network));
        if !outgoing {
            return Verdict::Allow;
        }
        let Ok(args) = serde_json::from_str::<Value>(&call.args) else {
            return Verdict::Deny("the arguments are not JSON, so they cannot be checked".into());
        };
        let mut found = Found::default();
        walk(&args, &mut found);
        if found.recipients > MAX_RECIPIENTS {
            return Verdict::Deny(format!(
                "{} recipients ({}), limit {MAX_RECIPIENTS}",
                found.recipients,
                RECIPIENT_FIELDS.join(", ")
            ));
        }
        if let Some((field, bytes)) = found.longest.filter(|(_, bytes)| *bytes > MAX_BODY) {
            return Verdict::Deny(format!("`{field}` is {bytes} bytes, limit {MAX_BODY}"));
        }
        Verdict::Allow
    }
}

#[derive(Default)]
struct Found {
    recipients: usize,
    /// The longest body field and its length in bytes.
    longest: Option<(String, usize)>,
}

fn walk(value: &Value, found: &mut Found) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                let name = name.to_ascii_lowercase();
                if RECIPIENT_FIELDS.contains(&name.as_str()) {
                    found.recipients += match field {
                        Value::Array(items) => items.len(),
                        Value::String(text) => {
                            text.split([',', ';']).filter(|a| !a.trim().is_empty()).count()
                        }
                        Value::Null => 0,
                        _ => 1,
                    };
                }
                if let (true, Value::String(text)) = (BODY_FIELDS.contains(&name.as_str()), field) {
                    if found.longest.as_ref().is_none_or(|(_, bytes)| text.len() > *bytes) {
                        found.longest = Some((name.clone(), text.len()));
                    }
                }
                walk(field, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| walk(item, found)),
        _ => {}
    }
}

export_guard!(OutgoingLimits);
