//! Redaction of JSON: every string, key or value, is redacted as the text it *means*
//! (after its escapes are undone), then written back as JSON. Everything else (numbers,
//! literals, white space, the order of keys) is kept byte for byte, so an output with
//! nothing to redact comes back exactly as the tool wrote it.
//!
//! A key whose redacted text equals another key of the same object (two keys holding
//! different secrets, or a secret next to a key that reads like its marker) is numbered:
//! `[redacted:TOKEN]#2`, the first number that no key of that object has. The tool's own
//! keys are never renamed; no value is lost.

use super::redactor::Redactor;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// A string of the JSON text whose redacted text differs: its byte range, and the text.
struct Change {
    start: usize,
    end: usize,
    text: String,
    /// The object it is a key of (numbered in order of their `{`).
    key_of: Option<usize>,
}

/// `json` (valid JSON text) with every string redacted; `None` if nothing changed; an error
/// if the text is not JSON after all (the caller then redacts it as text).
pub fn redact_text(redactor: &Redactor, json: &str) -> Result<Option<String>, ()> {
    redacted(redactor, json).ok_or(())
}

fn redacted(redactor: &Redactor, json: &str) -> Option<Option<String>> {
    let mut changes = Vec::new();
    let mut renamed_in = HashSet::new();
    scan(json, |start, end, key_of| {
        let token = &json[start..end];
        let text = decode(token)?;
        if let Cow::Owned(text) = redactor.redact(&text) {
            if let Some(object) = key_of {
                renamed_in.insert(object);
            }
            changes.push(Change { start, end, text, key_of });
        }
        Some(())
    })?;
    if changes.is_empty() {
        return Some(None);
    }
    number_colliding_keys(json, &mut changes, &renamed_in)?;
    let mut out = String::with_capacity(json.len());
    let mut copied = 0;
    for change in &changes {
        out.push_str(&json[copied..change.start]);
        out.push_str(&serde_json::to_string(&change.text).ok()?);
        copied = change.end;
    }
    out.push_str(&json[copied..]);
    Some(Some(out))
}

/// Numbers the redacted keys that collide with another key of their object.
fn number_colliding_keys(
    json: &str,
    changes: &mut [Change],
    renamed_in: &HashSet<usize>,
) -> Option<()> {
    if renamed_in.is_empty() {
        return Some(());
    }
    let changed: HashSet<usize> = changes.iter().map(|c| c.start).collect();
    // The keys each such object keeps as they are.
    let mut taken: HashMap<usize, HashSet<String>> = HashMap::new();
    scan(json, |start, end, key_of| {
        if let Some(object) = key_of.filter(|o| renamed_in.contains(o)) {
            if !changed.contains(&start) {
                taken.entry(object).or_default().insert(decode(&json[start..end])?.into_owned());
            }
        }
        Some(())
    })?;
    for change in changes.iter_mut() {
        let Some(object) = change.key_of else { continue };
        let keys = taken.entry(object).or_default();
        if keys.contains(&change.text) {
            let base = std::mem::take(&mut change.text);
            change.text = (2u64..)
                .map(|n| format!("{base}#{n}"))
                .find(|candidate| !keys.contains(candidate))?;
        }
        keys.insert(change.text.clone());
    }
    Some(())
}

/// Calls `each(start, end, key_of)` for every string of `json` (its byte range, quotes
/// included, and the object it is a key of). `None` if the text is not JSON as expected,
/// or if `each` said so.
fn scan(json: &str, mut each: impl FnMut(usize, usize, Option<usize>) -> Option<()>) -> Option<()> {
    let bytes = json.as_bytes();
    // The open containers: `Some(object number)` or `None` for an array.
    let mut open: Vec<Option<usize>> = Vec::new();
    let mut objects = 0;
    let mut expect_key = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                open.push(Some(objects));
                objects += 1;
                expect_key = true;
            }
            b'[' => {
                open.push(None);
                expect_key = false;
            }
            b'}' | b']' => {
                open.pop()?;
                expect_key = false;
            }
            b',' => expect_key = matches!(open.last(), Some(Some(_))),
            b':' => expect_key = false,
            b'"' => {
                let end = string_end(bytes, i)?;
                let key_of = match (expect_key, open.last()) {
                    (true, Some(Some(object))) => Some(*object),
                    _ => None,
                };
                each(i, end, key_of)?;
                expect_key = false;
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    open.is_empty().then_some(())
}

/// The end (past the closing quote) of the string starting at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The text a JSON string token means.
fn decode(token: &str) -> Option<Cow<'_, str>> {
    if !token.contains('\\') {
        return token.get(1..token.len().checked_sub(1)?).map(Cow::Borrowed);
    }
    serde_json::from_str::<String>(token).ok().map(Cow::Owned)
}

/// `value` with every string redacted, keys included (numbered as in [`redact_text`]).
pub fn redact_value(redactor: &Redactor, value: &Value) -> Value {
    if redactor.is_empty() {
        return value.clone();
    }
    // Iterative: a value nested deep must not exhaust the stack.
    enum Step<'v> {
        Visit(&'v Value),
        Array(usize),
        Object(Vec<String>),
    }
    let mut steps = vec![Step::Visit(value)];
    let mut done: Vec<Value> = Vec::new();
    while let Some(step) = steps.pop() {
        match step {
            Step::Visit(Value::String(text)) => {
                done.push(Value::String(redactor.redact(text).into_owned()));
            }
            Step::Visit(Value::Array(items)) => {
                steps.push(Step::Array(items.len()));
                steps.extend(items.iter().rev().map(Step::Visit));
            }
            Step::Visit(Value::Object(fields)) => {
                steps.push(Step::Object(keys(redactor, fields.keys())));
                steps.extend(fields.values().rev().map(Step::Visit));
            }
            Step::Visit(other) => done.push(other.clone()),
            Step::Array(n) => {
                let items = done.split_off(done.len() - n);
                done.push(Value::Array(items));
            }
            Step::Object(keys) => {
                let values = done.split_off(done.len() - keys.len());
                done.push(Value::Object(keys.into_iter().zip(values).collect()));
            }
        }
    }
    done.pop().unwrap_or(Value::Null)
}

/// The redacted keys of one object, numbered where they would collide.
fn keys<'k>(redactor: &Redactor, keys: impl Iterator<Item = &'k String>) -> Vec<String> {
    let redacted: Vec<Cow<'_, str>> = keys.map(|key| redactor.redact(key)).collect();
    let mut taken: HashSet<String> = redacted
        .iter()
        .filter_map(|key| match key {
            Cow::Borrowed(key) => Some((*key).to_owned()),
            Cow::Owned(_) => None,
        })
        .collect();
    redacted
        .into_iter()
        .map(|key| match key {
            Cow::Borrowed(key) => key.to_owned(),
            Cow::Owned(key) => {
                let key = match taken.contains(&key) {
                    false => key,
                    true => (2u64..)
                        .map(|n| format!("{key}#{n}"))
                        .find(|candidate| !taken.contains(candidate))
                        .unwrap_or(key),
                };
                taken.insert(key.clone());
                key
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        Redactor::new(&[
            ("A".to_owned(), "s3cr\"t\\one".to_owned()),
            ("B".to_owned(), "another-secret".to_owned()),
        ])
    }

    #[test]
    fn strings_are_redacted_as_they_read_and_the_rest_is_kept_byte_for_byte() {
        let r = redactor();
        let json = r#"{ "n": 12345678901234567890123, "f": 1.50e3,
            "s": "\u0073\u0033cr\"t\\one", "k": ["x another\u002dsecret y", true, null] }"#;
        let out = redact_text(&r, json).unwrap().unwrap();
        assert_eq!(
            out,
            r#"{ "n": 12345678901234567890123, "f": 1.50e3,
            "s": "[redacted:A]", "k": ["x [redacted:B] y", true, null] }"#
        );
        assert_eq!(redact_text(&r, r#"{"a": "nothing here"}"#), Ok(None));
    }

    #[test]
    fn keys_that_collide_after_redaction_are_numbered_and_nothing_is_lost() {
        let r = redactor();
        let json = r#"{"another-secret": 1, "[redacted:B]": 2, "another\u002Dsecret": 3,
            "[redacted:B]#2": 4}"#;
        let out = redact_text(&r, json).unwrap().unwrap();
        let value: serde_json::Map<String, Value> = serde_json::from_str(&out).unwrap();
        assert_eq!(value.len(), 4, "{out}");
        assert_eq!(value["[redacted:B]"], 2);
        assert_eq!(value["[redacted:B]#2"], 4);
        assert_eq!(value["[redacted:B]#3"], 1);
        assert_eq!(value["[redacted:B]#4"], 3);
        let parsed = serde_json::json!({"another-secret": 1, "[redacted:B]": 2});
        let out = redact_value(&r, &parsed);
        assert_eq!(out, serde_json::json!({"[redacted:B]": 2, "[redacted:B]#2": 1}));
    }

    #[test]
    fn values_are_redacted_without_recursion() {
        let r = redactor();
        let mut value = Value::String("another-secret".to_owned());
        for _ in 0..5_000 {
            value = Value::Array(vec![value]);
        }
        let mut out = redact_value(&r, &value);
        for _ in 0..5_000 {
            out = out.as_array_mut().unwrap().pop().unwrap();
        }
        assert_eq!(out, "[redacted:B]");
        // Dropping a deep value recurses in serde_json: take it apart by hand.
        while let Value::Array(mut items) = value {
            value = items.pop().unwrap_or(Value::Null);
        }
    }
}
