//! Loop detection: the same call repeated, the same failed call retried, or near-identical
//! calls (same tool, same argument keys) failing with the same error, past a limit, are
//! refused with a message that tells the agent what it is repeating. Counted per session,
//! and over each principal's recent calls, so that a new session label resets nothing.
//!
//! The counts live in the state database, as hashes and short error previews (never the
//! arguments), bounded, and shared by every process over `STATE_DIR`: six `moat call`s are
//! six calls of one history. Admission checks and counts in one transaction: calls sent at
//! once cannot all pass the last slot; a call refused here was not made, and is not counted.

use crate::state::{StateDb, StateError};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::Deserialize;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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

/// Calls remembered per principal: the window its repeats and retries are counted in.
pub const PRINCIPAL_RECENT: i64 = 64;
/// Sessions' calls and streaks are forgotten once this many calls were admitted after their
/// last use; principals' windows, once this many calls were admitted after them. The tables
/// stay this size or less.
const KEPT: i64 = 100_000;
const RECENT_KEPT: i64 = 200_000;
/// Admissions between two prunings of the tables.
const PRUNE_EVERY: u64 = 256;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS loop_calls (
        session TEXT NOT NULL, call BLOB NOT NULL, made INTEGER NOT NULL,
        failures INTEGER NOT NULL, error TEXT NOT NULL, used INTEGER NOT NULL,
        PRIMARY KEY (session, call)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS loop_calls_used ON loop_calls (used);
    CREATE TABLE IF NOT EXISTS loop_streaks (
        session TEXT PRIMARY KEY NOT NULL, shape BLOB NOT NULL, normal BLOB NOT NULL,
        count INTEGER NOT NULL, error TEXT NOT NULL, used INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS loop_streaks_used ON loop_streaks (used);
    CREATE TABLE IF NOT EXISTS loop_recent (
        seq INTEGER PRIMARY KEY, principal TEXT NOT NULL, call BLOB NOT NULL, failed INTEGER);
    CREATE INDEX IF NOT EXISTS loop_recent_of ON loop_recent (principal, seq);";

/// The call about to be made, as loop detection keys it: hashes of its tool with its
/// canonical arguments (`exact`) and with their keys only (`shape`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    exact: [u8; 32],
    shape: [u8; 32],
}

impl Key {
    /// `args` is the call's JSON text (already valid against the tool's schema).
    pub fn new(tool: &str, args: &str) -> Key {
        let value: Value = serde_json::from_str(args).unwrap_or(Value::Null);
        let (mut exact, mut shaped) = (blake3::Hasher::new(), blake3::Hasher::new());
        for hasher in [&mut exact, &mut shaped] {
            hasher.update(tool.as_bytes()).update(b" ");
        }
        canonical(&value, &mut exact);
        shaped.update(shape(&value).as_bytes());
        Key { exact: *exact.finalize().as_bytes(), shape: *shaped.finalize().as_bytes() }
    }
}

/// An admitted call's place in the loop history, for recording its outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    seq: i64,
    key: Key,
}

/// The loop history of one state database.
pub struct Loops {
    db: Arc<StateDb>,
    config: LoopConfig,
    /// Admissions by this process, for pruning now and then.
    admitted: AtomicU64,
}

/// A call refused, or the database failing.
#[derive(Debug)]
pub enum Refused {
    /// What the call repeats, for the agent.
    Loop(String),
    State(StateError),
}

impl Loops {
    pub fn new(db: Arc<StateDb>, config: LoopConfig) -> Result<Loops, StateError> {
        db.with(|conn| conn.execute_batch(SCHEMA))?;
        Ok(Loops { db, config, admitted: AtomicU64::new(0) })
    }

    fn off(&self) -> bool {
        let c = &self.config;
        c.repeats == 0 && c.retries == 0 && c.same_error == 0
    }

    /// Refuses a call that repeats itself past a limit, in its session or among its
    /// principal's recent calls, saying what it repeats; else counts it as made, in the same
    /// transaction. `None` when every check is off (nothing is kept).
    pub fn admit(
        &self,
        session: &str,
        principal: &str,
        tool: &str,
        key: Key,
    ) -> Result<Option<Ticket>, Refused> {
        if self.off() {
            return Ok(None);
        }
        let prune = self.admitted.fetch_add(1, Ordering::Relaxed).is_multiple_of(PRUNE_EVERY);
        let admitted = self.db.with(|conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            if let Some(refusal) = self.in_session(&tx, session, tool, &key)? {
                return Ok(Err(refusal));
            }
            if let Some(refusal) = self.in_principal(&tx, principal, tool, &key)? {
                return Ok(Err(refusal));
            }
            let seq: i64 = tx
                .prepare_cached(
                    "INSERT INTO loop_recent (principal, call, failed) VALUES (?1, ?2, NULL)
                     RETURNING seq",
                )?
                .query_row((principal, &key.exact[..]), |row| row.get(0))?;
            tx.prepare_cached(
                "INSERT INTO loop_calls (session, call, made, failures, error, used)
                 VALUES (?1, ?2, 1, 0, '', ?3)
                 ON CONFLICT (session, call) DO UPDATE SET made = made + 1, used = ?3",
            )?
            .execute((session, &key.exact[..], seq))?;
            // The principal's window: its last PRINCIPAL_RECENT calls.
            tx.prepare_cached(
                "DELETE FROM loop_recent WHERE principal = ?1
                 AND seq < (SELECT seq FROM loop_recent WHERE principal = ?1
                            ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
            )?
            .execute((principal, PRINCIPAL_RECENT - 1))?;
            if prune {
                for (table, kept) in
                    [("loop_calls", KEPT), ("loop_streaks", KEPT), ("loop_recent", RECENT_KEPT)]
                {
                    let column = if table == "loop_recent" { "seq" } else { "used" };
                    tx.execute(&format!("DELETE FROM {table} WHERE {column} <= ?1"), [seq - kept])?;
                }
            }
            tx.commit()?;
            Ok(Ok(Ticket { seq, key }))
        });
        match admitted {
            Ok(Ok(ticket)) => Ok(Some(ticket)),
            Ok(Err(refusal)) => Err(Refused::Loop(refusal)),
            Err(e) => Err(Refused::State(e)),
        }
    }

    /// The session's counts of this call, and its streak of same errors.
    fn in_session(
        &self,
        tx: &Connection,
        session: &str,
        tool: &str,
        key: &Key,
    ) -> rusqlite::Result<Option<String>> {
        let config = &self.config;
        let counts: Option<(u32, u32, String)> = tx
            .prepare_cached(
                "SELECT made, failures, error FROM loop_calls WHERE session = ?1 AND call = ?2",
            )?
            .query_row((session, &key.exact[..]), |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .optional()?;
        if let Some((made, failures, error)) = counts {
            if config.retries > 0 && failures > config.retries {
                return Ok(Some(format!(
                    "loop: this exact call of `{tool}` failed {failures} times in a row in this \
                     session ({error}); retrying it will not help: change the arguments or stop"
                )));
            }
            if config.repeats > 0 && made >= config.repeats {
                return Ok(Some(format!(
                    "loop: this session already made this exact call of `{tool}` {made} times \
                     (limit {}); its result will not change: use the earlier result, or change \
                     the arguments",
                    config.repeats
                )));
            }
        }
        let streak: Option<(Vec<u8>, u32, String)> = tx
            .prepare_cached("SELECT shape, count, error FROM loop_streaks WHERE session = ?1")?
            .query_row([session], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .optional()?;
        if let Some((shape, count, error)) = streak {
            if config.same_error > 0 && shape == key.shape && count >= config.same_error {
                return Ok(Some(format!(
                    "loop: the last {count} calls of `{tool}` in this session failed with the \
                     same error ({error}), with arguments differing only in their values; \
                     change the approach, not the values"
                )));
            }
        }
        Ok(None)
    }

    /// The principal's last calls, whatever their session: this call's repeats, and its
    /// failures in a row (a call still running has not failed).
    fn in_principal(
        &self,
        tx: &Connection,
        principal: &str,
        tool: &str,
        key: &Key,
    ) -> rusqlite::Result<Option<String>> {
        let config = &self.config;
        let same: Vec<Option<bool>> = tx
            .prepare_cached(
                "SELECT failed FROM (SELECT call, failed, seq FROM loop_recent
                  WHERE principal = ?1 ORDER BY seq DESC LIMIT ?3)
                 WHERE call = ?2 ORDER BY seq DESC",
            )?
            .query_map((principal, &key.exact[..], PRINCIPAL_RECENT), |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let failures = same.iter().take_while(|failed| **failed == Some(true)).count();
        if config.retries > 0 && failures > config.retries as usize {
            return Ok(Some(format!(
                "loop: this exact call of `{tool}` failed {failures} times in a row among the \
                 last {PRINCIPAL_RECENT} calls of `{principal}`, whatever their session or \
                 task; retrying it will not help: change the arguments or stop"
            )));
        }
        let made = same.len();
        if config.repeats > 0 && made >= config.repeats as usize {
            return Ok(Some(format!(
                "loop: `{principal}` made this exact call of `{tool}` {made} times among its \
                 last {PRINCIPAL_RECENT} calls, whatever their session or task (limit {}); its \
                 result will not change: use the earlier result, or change the arguments",
                config.repeats
            )));
        }
        Ok(None)
    }

    /// Records how an admitted call ended: `error` is the failure's message, if it failed.
    pub fn record(
        &self,
        ticket: Ticket,
        session: &str,
        error: Option<&str>,
    ) -> Result<(), StateError> {
        let key = ticket.key;
        self.db.with(|conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            tx.prepare_cached("UPDATE loop_recent SET failed = ?2 WHERE seq = ?1")?
                .execute((ticket.seq, error.is_some()))?;
            let preview = error.map(shorten).unwrap_or_default();
            tx.prepare_cached(
                "UPDATE loop_calls SET failures = CASE WHEN ?3 THEN failures + 1 ELSE 0 END,
                 error = ?4 WHERE session = ?1 AND call = ?2",
            )?
            .execute((session, &key.exact[..], error.is_some(), &preview))?;
            match error {
                None => {
                    tx.prepare_cached("DELETE FROM loop_streaks WHERE session = ?1")?
                        .execute([session])?;
                }
                Some(error) => {
                    let normal = *blake3::hash(normalize(error).as_bytes()).as_bytes();
                    tx.prepare_cached(
                        "INSERT INTO loop_streaks (session, shape, normal, count, error, used)
                         VALUES (?1, ?2, ?3, 1, ?4, ?5)
                         ON CONFLICT (session) DO UPDATE SET
                           count = CASE WHEN shape = ?2 AND normal = ?3 THEN count + 1 ELSE 1 END,
                           shape = ?2, normal = ?3, error = ?4, used = ?5",
                    )?
                    .execute((
                        session,
                        &key.shape[..],
                        &normal[..],
                        &preview,
                        ticket.seq,
                    ))?;
                }
            }
            tx.commit()
        })
    }
}

/// Hashes the JSON with object keys sorted, compact (equal arguments give equal text),
/// without writing that text out: a large argument is not copied.
fn canonical(value: &Value, hasher: &mut blake3::Hasher) {
    match value {
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort();
            hasher.update(b"{");
            for (n, k) in keys.into_iter().enumerate() {
                if n > 0 {
                    hasher.update(b",");
                }
                scalar(&Value::String(k.clone()), hasher);
                hasher.update(b":");
                canonical(&fields[k], hasher);
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    hasher.update(b",");
                }
                canonical(item, hasher);
            }
            hasher.update(b"]");
        }
        other => scalar(other, hasher),
    }
}

/// A scalar's JSON text, written straight into the hash.
fn scalar(value: &Value, hasher: &mut blake3::Hasher) {
    // Writing to a hasher does not fail.
    let _ = serde_json::to_writer(&mut *hasher, value);
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
        assert_ne!(
            a.exact,
            Key::new("t", r#"{"a": {"x": [1, {"p": 2, "q": 1}], "y": 2}, "b": 2}"#).exact
        );
        assert_ne!(
            a.exact,
            Key::new("u", r#"{"b": 1, "a": {"y": 2, "x": [1, {"q": 1, "p": 2}]}}"#).exact
        );
    }

    #[test]
    fn numbers_do_not_make_errors_different() {
        assert_eq!(normalize("row 17 of 1000 missing"), normalize("row 18 of 1000 missing"));
    }
}
