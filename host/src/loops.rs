//! Loop detection, per session: the same call repeated, the same failed call retried, or
//! near-identical calls (same tool, same argument keys) failing with the same error, past a
//! limit, are refused with a message that tells the agent what it is repeating. The same
//! repeats and retries are also counted over each principal's recent calls
//! ([`PrincipalLoops`]), so that a new session label resets nothing.

use serde::Deserialize;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// `[loops]` in `moat.toml`. A limit of 0 turns that check off.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopConfig {
    /// Times one session may make the same call (tool and arguments, whatever the outcome).
    #[serde(default = "default_repeats")]
    pub repeats: u32,
    /// Times one session may retry a call that failed, with the same arguments.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Near-identical calls in a row (same tool, same argument keys) that may fail with the
    /// same error before the next is refused.
    #[serde(default = "default_same_error")]
    pub same_error: u32,
}

fn default_repeats() -> u32 {
    5
}
fn default_retries() -> u32 {
    3
}
fn default_same_error() -> u32 {
    5
}

impl Default for LoopConfig {
    fn default() -> LoopConfig {
        LoopConfig {
            repeats: default_repeats(),
            retries: default_retries(),
            same_error: default_same_error(),
        }
    }
}

/// Sessions remembered; past this, the oldest is forgotten.
const SESSIONS: usize = 10_000;
/// Distinct calls remembered per session.
const CALLS: usize = 1_000;

#[derive(Default)]
struct Session {
    /// Per exact call (tool and canonical arguments): times made, and consecutive failures
    /// with the last error.
    calls: HashMap<String, (u32, u32, String)>,
    order: VecDeque<String>,
    /// The last run of failures: (tool and argument keys, normalized error, count, error).
    streak: Option<(String, String, u32, String)>,
}

pub struct Loops {
    config: LoopConfig,
    sessions: Mutex<(HashMap<String, Session>, VecDeque<String>)>,
}

/// The call about to be made, as loop detection keys it.
pub struct Key {
    exact: String,
    shape: String,
}

impl Key {
    /// `args` is the call's JSON text (already valid against the tool's schema).
    pub fn new(tool: &str, args: &str) -> Key {
        let value: Value = serde_json::from_str(args).unwrap_or(Value::Null);
        let exact = format!("{tool} {}", canonical(&value));
        let shape = format!("{tool} {}", shape(&value));
        Key { exact, shape }
    }
}

impl Loops {
    pub fn new(config: LoopConfig) -> Loops {
        Loops { config, sessions: Mutex::new((HashMap::new(), VecDeque::new())) }
    }

    /// Refuses a call that repeats itself past a limit, saying what it repeats.
    pub fn check(&self, session: &str, tool: &str, key: &Key) -> Result<(), String> {
        let sessions = self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(session) = sessions.0.get(session) else { return Ok(()) };
        let config = &self.config;
        if let Some((made, failures, error)) = session.calls.get(&key.exact) {
            if config.retries > 0 && *failures > config.retries {
                return Err(format!(
                    "loop: this exact call of `{tool}` failed {failures} times in a row in this \
                     session ({error}); retrying it will not help: change the arguments or stop"
                ));
            }
            if config.repeats > 0 && *made >= config.repeats {
                return Err(format!(
                    "loop: this session already made this exact call of `{tool}` {made} times \
                     (limit {}); its result will not change: use the earlier result, or change \
                     the arguments",
                    config.repeats
                ));
            }
        }
        if let Some((shape, _, count, error)) = &session.streak {
            if config.same_error > 0 && *shape == key.shape && *count >= config.same_error {
                return Err(format!(
                    "loop: the last {count} calls of `{tool}` in this session failed with the \
                     same error ({error}), with arguments differing only in their values; \
                     change the approach, not the values"
                ));
            }
        }
        Ok(())
    }

    /// Records the call's outcome: `error` is the failure's message, if it failed.
    pub fn record(&self, session: &str, key: &Key, error: Option<&str>) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (map, order) = &mut *sessions;
        if !map.contains_key(session) {
            order.push_back(session.to_owned());
            if order.len() > SESSIONS {
                if let Some(oldest) = order.pop_front() {
                    map.remove(&oldest);
                }
            }
        }
        let state = map.entry(session.to_owned()).or_default();
        if !state.calls.contains_key(&key.exact) {
            state.order.push_back(key.exact.clone());
            if state.order.len() > CALLS {
                if let Some(oldest) = state.order.pop_front() {
                    state.calls.remove(&oldest);
                }
            }
        }
        let entry = state.calls.entry(key.exact.clone()).or_insert((0, 0, String::new()));
        entry.0 += 1;
        match error {
            Some(error) => {
                entry.1 += 1;
                entry.2 = shorten(error);
                let normal = normalize(error);
                state.streak = match state.streak.take() {
                    Some((shape, same, count, _)) if shape == key.shape && same == normal => {
                        Some((shape, same, count + 1, shorten(error)))
                    }
                    _ => Some((key.shape.clone(), normal, 1, shorten(error))),
                };
            }
            None => {
                entry.1 = 0;
                state.streak = None;
            }
        }
    }
}

/// Calls remembered per principal: the window its repeats and retries are counted in.
pub const PRINCIPAL_RECENT: usize = 64;
/// Principals remembered; past this, the oldest is forgotten.
const PRINCIPALS: usize = 10_000;

/// The same checks over each principal's recent calls, whatever session labels the agent
/// gave them: a new label resets nothing. Each call is kept as a hash of its exact key and
/// whether it failed, the last [`PRINCIPAL_RECENT`] per principal: memory stays bounded
/// whatever the arguments.
pub struct PrincipalLoops {
    config: LoopConfig,
    recent: Mutex<(HashMap<String, Recent>, VecDeque<String>)>,
}

/// One principal's last calls: the hash of each exact call, and whether it failed.
type Recent = VecDeque<([u8; 32], bool)>;

impl PrincipalLoops {
    pub fn new(config: LoopConfig) -> PrincipalLoops {
        PrincipalLoops { config, recent: Mutex::new((HashMap::new(), VecDeque::new())) }
    }

    /// Refuses a call its principal made too often lately, or retried after too many
    /// failures, in whatever sessions.
    pub fn check(&self, principal: &str, tool: &str, key: &Key) -> Result<(), String> {
        let recent = self.recent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(calls) = recent.0.get(principal) else { return Ok(()) };
        let hash = *blake3::hash(key.exact.as_bytes()).as_bytes();
        let same: Vec<bool> =
            calls.iter().filter(|(h, _)| *h == hash).map(|(_, failed)| *failed).collect();
        let failures = same.iter().rev().take_while(|failed| **failed).count() as u32;
        let config = &self.config;
        if config.retries > 0 && failures > config.retries {
            return Err(format!(
                "loop: this exact call of `{tool}` failed {failures} times in a row among the \
                 last {PRINCIPAL_RECENT} calls of `{principal}`, whatever their session or \
                 task; retrying it will not help: change the arguments or stop"
            ));
        }
        let made = same.len() as u32;
        if config.repeats > 0 && made >= config.repeats {
            return Err(format!(
                "loop: `{principal}` made this exact call of `{tool}` {made} times among its \
                 last {PRINCIPAL_RECENT} calls, whatever their session or task (limit {}); its \
                 result will not change: use the earlier result, or change the arguments",
                config.repeats
            ));
        }
        Ok(())
    }

    /// Records the call: `failed` when it failed.
    pub fn record(&self, principal: &str, key: &Key, failed: bool) {
        let mut recent = self.recent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (map, order) = &mut *recent;
        if !map.contains_key(principal) {
            order.push_back(principal.to_owned());
            if order.len() > PRINCIPALS {
                if let Some(oldest) = order.pop_front() {
                    map.remove(&oldest);
                }
            }
        }
        let calls = map.entry(principal.to_owned()).or_default();
        if calls.len() == PRINCIPAL_RECENT {
            calls.pop_front();
        }
        calls.push_back((*blake3::hash(key.exact.as_bytes()).as_bytes(), failed));
    }
}

/// The JSON with object keys sorted, compact: equal arguments give equal text.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&fields[k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(","))
        }
        other => other.to_string(),
    }
}

/// The argument keys (nested), without values.
fn shape(value: &Value) -> String {
    match value {
        Value::Object(fields) => {
            let mut keys: Vec<String> =
                fields.iter().map(|(k, v)| format!("{k}{}", shape(v))).collect();
            keys.sort();
            format!("{{{}}}", keys.join(","))
        }
        Value::Array(items) => format!("[{}]", items.first().map(shape).unwrap_or_default()),
        _ => String::new(),
    }
}

/// An error with its numbers blanked out, so "row 17" and "row 18" are the same error.
fn normalize(error: &str) -> String {
    let mut normal = String::with_capacity(error.len());
    let mut in_number = false;
    for c in error.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                normal.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            normal.push(c);
        }
    }
    normal
}

fn shorten(error: &str) -> String {
    match error.char_indices().nth(200) {
        Some((at, _)) => format!("{}...", &error[..at]),
        None => error.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_in_another_key_order_are_the_same_call() {
        let a = Key::new("t", r#"{"b": 1, "a": {"y": 2, "x": [1, {"q": 1, "p": 2}]}}"#);
        let b = Key::new("t", r#"{"a": {"x": [1, {"p": 2, "q": 1}], "y": 2}, "b": 1}"#);
        assert_eq!(a.exact, b.exact);
        assert_eq!(a.shape, Key::new("t", r#"{"a": {"x": [7], "y": 0}, "b": 9}"#).shape);
    }

    #[test]
    fn numbers_do_not_make_errors_different() {
        assert_eq!(normalize("row 17 of 1000 missing"), normalize("row 18 of 1000 missing"));
    }
}
