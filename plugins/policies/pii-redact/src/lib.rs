//! `pii-redact`: rewrites every tool output so that no email address, phone number or card
//! number reaches the agent: they become `[email]`, `[phone]` and `[card]`. The output is
//! parsed as JSON and each string in it (not the object keys) is rewritten, so the result is
//! valid JSON; an output with nothing to redact is left as it is (allow).
//!
//! What counts (no regex: a small scanner, so the component stays small):
//! - email: `local@domain.tld`, the local part of letters, digits and `._%+-`, the domain of
//!   letters, digits, `.` and `-`, with at least one dot and a top-level part of two or more
//!   letters;
//! - a number is a run of digits, optionally starting with `+` or `(`, whose digit groups are
//!   separated by one or two of ` `, `-`, `.`, `(`, `)`; it must not touch a letter or digit
//!   on either side. The whole run is judged at once:
//!   - card: 13 to 19 digits, separated only by spaces or dashes, passing the Luhn check;
//!   - phone: 7 to 15 digits that start with `+`, hold a parenthesised group, or come in two
//!     or more groups of which the last has at least four digits (`555-123-4567`,
//!     `+44 20 7946 0958`, `(555) 123-4567`, `555 1234`);
//!   - anything else is left alone: a 16-digit number failing the Luhn check, a date
//!     (`2024-01-15`), an amount (`19.50`), an order number.
//!
//! Expectations (checked by `tests/all/policies.rs`): an email, a phone number and a
//! Luhn-valid card number in the `echo` tool's output are replaced; a 16-digit number that
//! fails the Luhn check is not; the rewritten output is JSON.

use moat_guest::guard::{export_guard, Call, Guard, GuardInfo, Verdict};
use moat_guest::serde_json::{self, Value};

struct PiiRedact;

impl Guard for PiiRedact {
    fn info() -> GuardInfo {
        GuardInfo {
            name: "pii-redact".into(),
            description: "Replaces emails, phone numbers and card numbers in outputs.".into(),
        }
    }

    fn check_result(_call: &Call, output: &str) -> Verdict {
        let Ok(mut value) = serde_json::from_str::<Value>(output) else {
            return Verdict::Deny("the output is not JSON, so it cannot be checked for PII".into());
        };
        if !redact_value(&mut value) {
            return Verdict::Allow;
        }
        match serde_json::to_string(&value) {
            Ok(text) => Verdict::Rewrite(text),
            Err(e) => Verdict::Deny(format!("the redacted output cannot be written: {e}")),
        }
    }
}

/// Rewrites every string inside `value`; whether anything changed.
fn redact_value(value: &mut Value) -> bool {
    match value {
        Value::String(text) => match redact(text) {
            Some(redacted) => {
                *text = redacted;
                true
            }
            None => false,
        },
        Value::Array(items) => items.iter_mut().fold(false, |changed, v| redact_value(v) | changed),
        Value::Object(fields) => {
            fields.values_mut().fold(false, |changed, v| redact_value(v) | changed)
        }
        _ => false,
    }
}

/// `text` with its PII replaced, or `None` if it has none.
fn redact(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let emails = emails(bytes);
    let mut out = String::with_capacity(text.len());
    let (mut i, mut copied, mut changed) = (0, 0, false);
    let mut next_email = emails.iter().peekable();
    while i < bytes.len() {
        if let Some(&&(start, end)) = next_email.peek() {
            if i == start {
                out.push_str(&text[copied..start]);
                out.push_str("[email]");
                (i, copied, changed) = (end, end, true);
                next_email.next();
                continue;
            }
        }
        let stop = next_email.peek().map_or(bytes.len(), |&&(start, _)| start);
        match number_at(&bytes[..stop], i) {
            Some((end, Some(label))) => {
                out.push_str(&text[copied..i]);
                out.push_str(label);
                (i, copied, changed) = (end, end, true);
            }
            // A number that is neither: skipped whole, so that no part of it is judged alone.
            Some((end, None)) => i = end.max(i + 1),
            None => i += 1,
        }
    }
    out.push_str(&text[copied..]);
    changed.then_some(out)
}

fn local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._%+-".contains(&b)
}

fn domain_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-'
}

/// The byte ranges of the email addresses in `bytes`, in order, not overlapping.
fn emails(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut found: Vec<(usize, usize)> = Vec::new();
    for (at, _) in bytes.iter().enumerate().filter(|(_, &b)| b == b'@') {
        let mut start = at;
        while start > 0 && local_char(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = at + 1;
        while end < bytes.len() && domain_char(bytes[end]) {
            end += 1;
        }
        // A sentence may end right after the address.
        while end > at + 1 && (bytes[end - 1] == b'.' || bytes[end - 1] == b'-') {
            end -= 1;
        }
        if start == at || found.last().is_some_and(|&(_, last)| start < last) {
            continue;
        }
        let domain = &bytes[at + 1..end];
        let labels: Vec<&[u8]> = domain.split(|&b| b == b'.').collect();
        let tld = labels.last().copied().unwrap_or_default();
        let valid = labels.len() >= 2
            && labels.iter().all(|l| !l.is_empty())
            && tld.len() >= 2
            && tld.iter().all(u8::is_ascii_alphabetic);
        if valid {
            found.push((start, end));
        }
    }
    found
}

const SEPARATORS: &[u8] = b" -.()";

/// The number starting at `start`, if one does: where it ends, and its label if it is a card
/// or a phone number.
fn number_at(bytes: &[u8], start: usize) -> Option<(usize, Option<&'static str>)> {
    let digit = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
    if start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
        return None;
    }
    let plus = bytes[start] == b'+';
    let first = if plus { start + 1 } else { start };
    if !(digit(first) || (bytes.get(first) == Some(&b'(') && digit(first + 1))) {
        return None;
    }
    let (mut i, mut end) = (first, first);
    loop {
        if digit(i) {
            i += 1;
            end = i;
            continue;
        }
        let mut k = i;
        while k < bytes.len() && k - i < 2 && SEPARATORS.contains(&bytes[k]) {
            k += 1;
        }
        if k > i && digit(k) {
            i = k;
            continue;
        }
        break;
    }
    if end < bytes.len() && bytes[end].is_ascii_alphanumeric() {
        return Some((end, None));
    }
    let span = &bytes[first..end];
    let groups: Vec<&[u8]> =
        span.split(|b| !b.is_ascii_digit()).filter(|g| !g.is_empty()).collect();
    let digits: Vec<u8> = span.iter().filter(|b| b.is_ascii_digit()).map(|b| b - b'0').collect();
    let card_separators = span.iter().all(|b| b.is_ascii_digit() || *b == b' ' || *b == b'-');
    if !plus && card_separators && (13..=19).contains(&digits.len()) && luhn(&digits) {
        return Some((end, Some("[card]")));
    }
    let shaped = plus
        || span.contains(&b'(')
        || (groups.len() >= 2 && groups.last().is_some_and(|g| g.len() >= 4));
    if shaped && (7..=15).contains(&digits.len()) {
        return Some((end, Some("[phone]")));
    }
    Some((end, None))
}

/// The Luhn check of card numbers.
fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            match i % 2 {
                1 if d * 2 > 9 => d * 2 - 9,
                1 => d * 2,
                _ => d,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

export_guard!(PiiRedact);

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> String {
        redact(text).unwrap_or_else(|| text.to_owned())
    }

    #[test]
    fn finds_what_it_should() {
        assert_eq!(r("write to ann.lee+x@mail.example.com."), "write to [email].");
        assert_eq!(r("call 555-123-4567 or +44 20 7946 0958"), "call [phone] or [phone]");
        assert_eq!(r("(555) 123-4567"), "[phone]");
        assert_eq!(r("card 4111 1111 1111 1111!"), "card [card]!");
        assert_eq!(r("card 4111-1111-1111-1111"), "card [card]");
        assert_eq!(r("4111111111111111"), "[card]");
    }

    #[test]
    fn leaves_the_rest_alone() {
        let texts =
            ["4111 1111 1111 1112", "on 2024-01-15", "total 19.50", "order 42", "a@b", "x@y.1"];
        for text in texts {
            assert_eq!(redact(text), None, "{text}");
        }
    }
}
