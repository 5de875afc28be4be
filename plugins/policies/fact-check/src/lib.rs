//! `fact-check`: checks what a drafted customer reply claims about an order against the
//! orders database, before the reply is used. It looks only at calls of `draft_reply`
//! (plugins/support), whose output is `{"order_id": N, "reply": "..."}`, and reads the facts
//! source `orders` (`[facts.orders]`, a SQLite database with a table `orders(id, status,
//! total)`):
//! `SELECT status, total FROM orders WHERE id = ?`.
//!
//! The grammar of claims (case-insensitive; every occurrence is a claim, all are checked):
//! - status: `status: WORD`, `status is WORD`, `has been WORD`, `is now WORD`, where WORD is
//!   a run of letters, `-` and `_` (`status: shipped`, "your order has been shipped");
//! - amount: `amount: NUMBER`, `amount is NUMBER`, `amount of NUMBER`, `total: NUMBER`,
//!   `total is NUMBER`, `total of NUMBER`, where NUMBER may start with `$`, `€` or `£` and
//!   has digits, `,` as a thousands separator and one `.` (`amount: $1,250.00`); it matches
//!   the order's total when they differ by less than half a cent.
//!
//! Verdicts: deny when a claim contradicts the database ("the reply says order 42 is
//! shipped, but it is open"; "the reply says order 42 amounts to 25.00, but its total is
//! 19.5"), or when the order does not exist; deny when the facts cannot be read or the
//! output is not of that shape (fail closed); allow when every claim matches, or the reply
//! makes none.
//!
//! Expectations (checked by `tests/all/policies.rs`): a wrong status and a wrong amount are
//! denied with the fact in the reason; a right claim passes with the output unchanged.

use moat_guest::guard::facts::{self, Value};
use moat_guest::guard::{export_guard, Call, Guard, GuardInfo, Verdict};
use moat_guest::serde_json::{self, Value as Json};

/// The tool whose outputs are checked.
const TOOL: &str = "draft_reply";
/// The facts source holding the orders.
const SOURCE: &str = "orders";

const STATUS_CUES: &[&str] = &["status: ", "status is ", "has been ", "is now "];
const AMOUNT_CUES: &[&str] =
    &["amount: ", "amount is ", "amount of ", "total: ", "total is ", "total of "];

struct FactCheck;

impl Guard for FactCheck {
    fn info() -> GuardInfo {
        GuardInfo {
            name: "fact-check".into(),
            description: "Checks a drafted reply's claims about an order against the database."
                .into(),
        }
    }

    fn check_result(call: &Call, output: &str) -> Verdict {
        if call.tool != TOOL {
            return Verdict::Allow;
        }
        match check(output) {
            Ok(()) => Verdict::Allow,
            Err(reason) => Verdict::Deny(reason),
        }
    }
}

fn check(output: &str) -> Result<(), String> {
    let shape = || format!("the output of `{TOOL}` is not {{\"order_id\": N, \"reply\": \"...\"}}");
    let output: Json = serde_json::from_str(output).map_err(|_| shape())?;
    let (Some(id), Some(reply)) = (output["order_id"].as_i64(), output["reply"].as_str()) else {
        return Err(shape());
    };
    let reply = reply.to_lowercase();
    let statuses = claims(&reply, STATUS_CUES, status_word);
    let amounts = claims(&reply, AMOUNT_CUES, amount);
    if statuses.is_empty() && amounts.is_empty() {
        return Ok(());
    }
    let rows = facts::query(
        SOURCE,
        "SELECT status, total FROM orders WHERE id = ?",
        &[Value::Integer(id)],
    )
    .map_err(|e| format!("cannot check the reply about order {id}: {e}"))?;
    let Some(row) = rows.rows.first() else {
        return Err(format!("the reply is about order {id}, which does not exist"));
    };
    let status = match row.first() {
        Some(Value::Text(status)) => status.clone(),
        _ => return Err(format!("order {id} has no status in the database")),
    };
    let total = match row.get(1) {
        Some(Value::Integer(i)) => *i as f64,
        Some(Value::Real(f)) => *f,
        _ => return Err(format!("order {id} has no total in the database")),
    };
    for claimed in statuses {
        if !claimed.eq_ignore_ascii_case(status.trim()) {
            return Err(format!("the reply says order {id} is {claimed}, but it is {status}"));
        }
    }
    for (text, claimed) in amounts {
        if (claimed - total).abs() >= 0.005 {
            return Err(format!(
                "the reply says order {id} amounts to {text}, but its total is {total}"
            ));
        }
    }
    Ok(())
}

/// What follows each cue in `text`, as `parse` reads it (cues followed by nothing it can
/// read are not claims).
fn claims<T>(text: &str, cues: &[&str], parse: fn(&str) -> Option<T>) -> Vec<T> {
    let mut found = Vec::new();
    for cue in cues {
        for (at, _) in text.match_indices(cue) {
            if let Some(claim) = parse(&text[at + cue.len()..]) {
                found.push(claim);
            }
        }
    }
    found
}

/// The word at the start of `rest`.
fn status_word(rest: &str) -> Option<String> {
    let end =
        rest.find(|c: char| !(c.is_alphabetic() || c == '-' || c == '_')).unwrap_or(rest.len());
    let word = rest[..end].trim_matches(|c| c == '-' || c == '_');
    (!word.is_empty()).then(|| word.to_owned())
}

/// The amount at the start of `rest`: its text as written, and its value.
fn amount(rest: &str) -> Option<(String, f64)> {
    let rest = rest.trim_start_matches(['$', '€', '£']).trim_start();
    let end =
        rest.find(|c: char| !(c.is_ascii_digit() || c == ',' || c == '.')).unwrap_or(rest.len());
    // A sentence may end right after the number.
    let text = rest[..end].trim_end_matches(['.', ',']);
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let value = text.replace(',', "").parse().ok()?;
    Some((text.to_owned(), value))
}

export_guard!(FactCheck);
