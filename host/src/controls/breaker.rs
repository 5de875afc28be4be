//! Circuit breakers, per tool and per task. A tool's breaker opens after too many
//! consecutive failures or too high a failure rate over its recent calls; a task's after too
//! many consecutive failed calls or too many calls without a new successful result. Open
//! refuses at once, saying why and when to retry; after the cool-down a bounded number of
//! probes go through (half-open): a success closes it, a failure opens it again. Each probe
//! holds a lease, with a holder and an expiry: it is given back when its call ends in any
//! way, and is void once it expires or its process dies, so a probe that cannot report
//! never leaves a breaker stuck. The state lives in the state database, read and written
//! there in one transaction per admission and per outcome: a restart forgets nothing, and
//! processes sharing `STATE_DIR` share the breakers.

use crate::clock::now_ms;
pub use crate::error::{Refusal, Scope};
use crate::state::{StateDb, StateError};
use crate::units::Millis;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `[breakers]` in `moat.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failures of a tool that open its breaker (0: never).
    #[serde(default = "default_failures")]
    pub failures: u32,
    /// Failure rate over the tool's last `window` calls that opens it, once there were at
    /// least `min_calls` (0 or above 1: never).
    #[serde(default = "default_failure_rate")]
    pub failure_rate: f64,
    #[serde(default = "default_window")]
    pub window: u32,
    #[serde(default = "default_min_calls")]
    pub min_calls: u32,
    /// How long an open breaker refuses before letting probes through.
    #[serde(default = "default_cool_down")]
    pub cool_down: Millis,
    /// Calls let through at once while half-open.
    #[serde(default = "default_probes")]
    pub probes: u32,
    /// How long a probe's lease lasts at most: a probe still running then (or whose
    /// process died, at once) no longer holds the half-open breaker.
    #[serde(default = "default_probe_lease")]
    pub probe_lease: Millis,
    /// Consecutive failed calls of one task that stop it (0: never).
    #[serde(default = "default_task_failures")]
    pub task_failures: u32,
    /// Calls of one task in a row without a new successful result that stop it (0: never).
    #[serde(default = "default_task_no_progress")]
    pub task_no_progress: u32,
}

fn default_failures() -> u32 {
    5
}
fn default_failure_rate() -> f64 {
    0.5
}
fn default_window() -> u32 {
    20
}
fn default_min_calls() -> u32 {
    10
}
fn default_cool_down() -> Millis {
    Millis(30_000)
}
fn default_probes() -> u32 {
    1
}
fn default_probe_lease() -> Millis {
    Millis(5 * 60 * 1000)
}
fn default_task_failures() -> u32 {
    10
}
fn default_task_no_progress() -> u32 {
    25
}

impl Default for BreakerConfig {
    fn default() -> BreakerConfig {
        BreakerConfig {
            failures: default_failures(),
            failure_rate: default_failure_rate(),
            window: default_window(),
            min_calls: default_min_calls(),
            cool_down: default_cool_down(),
            probes: default_probes(),
            probe_lease: default_probe_lease(),
            task_failures: default_task_failures(),
            task_no_progress: default_task_no_progress(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    Closed,
    Open,
    HalfOpen,
}

impl Position {
    pub fn name(self) -> &'static str {
        match self {
            Position::Closed => "closed",
            Position::Open => "open",
            Position::HalfOpen => "half-open",
        }
    }

    fn parse(text: &str) -> Position {
        match text {
            "open" => Position::Open,
            "half-open" => Position::HalfOpen,
            _ => Position::Closed,
        }
    }
}

/// One breaker's state, as stored.
#[derive(Clone, Debug)]
struct State {
    position: Position,
    /// Consecutive failures (tool), or consecutive failed calls (task).
    consecutive: u32,
    /// Task: calls since the last new successful result.
    stale: u32,
    /// Tool: the outcomes of the last `window` calls, oldest first (`1` = failure).
    recent: String,
    /// When it opened (ms since the Unix epoch), and why.
    opened_at: u64,
    reason: String,
}

impl State {
    fn closed() -> State {
        State {
            position: Position::Closed,
            consecutive: 0,
            stale: 0,
            recent: String::new(),
            opened_at: 0,
            reason: String::new(),
        }
    }
}

/// A breaker that changed position, for the audit log and alerts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub scope: Scope,
    pub name: String,
    pub from: Position,
    pub to: Position,
    pub reason: String,
}

/// How a call ended, as breakers see it.
#[derive(Clone, Copy, Debug)]
pub struct Outcome<'a> {
    /// The tool ran (a call refused before it ran tells nothing about the tool).
    pub ran: bool,
    /// The tool is to blame (a trap, a budget, a tool failure, bad output), not the agent.
    pub tool_failed: bool,
    /// The call failed for any reason (the task made no progress with it).
    pub failed: bool,
    /// The output's hash, when it succeeded: a result the task has not seen is progress.
    pub output: Option<&'a str>,
}

/// What admission let through: the probe leases the call holds, of a half-open breaker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Admitted {
    tool_probe: Option<i64>,
    task_probe: Option<i64>,
}

/// Breakers (and task results) kept; past this, the least recently written closed ones and
/// the oldest results are forgotten.
const KEPT: i64 = 100_000;
/// Calls recorded between two prunings of the tables.
const PRUNE_EVERY: u64 = 256;

/// The breakers of one state database. Every admission and every outcome is one
/// transaction there: hosts sharing `STATE_DIR` see one position, never lose each other's
/// counts, and cannot both take the last probe.
pub struct Breakers {
    db: Arc<StateDb>,
    config: BreakerConfig,
    /// Calls recorded by this process, for pruning now and then.
    recorded: AtomicU64,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS breakers (
        scope TEXT NOT NULL, name TEXT NOT NULL, position TEXT NOT NULL,
        consecutive INTEGER NOT NULL, stale INTEGER NOT NULL, recent TEXT NOT NULL,
        opened_at INTEGER NOT NULL, reason TEXT NOT NULL, probes INTEGER NOT NULL,
        PRIMARY KEY (scope, name));
    CREATE TABLE IF NOT EXISTS task_results (
        task TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (task, hash));
    -- AUTOINCREMENT: a lease id is never reused, so a call whose lease expired cannot give
    -- back another call's.
    CREATE TABLE IF NOT EXISTS breaker_probes (
        lease INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, name TEXT NOT NULL,
        pid INTEGER NOT NULL, started INTEGER NOT NULL, expires INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS breaker_probes_of ON breaker_probes (scope, name);";

impl Breakers {
    pub fn new(db: Arc<StateDb>, config: BreakerConfig) -> Result<Breakers, StateError> {
        db.with(|conn| conn.execute_batch(SCHEMA))?;
        Ok(Breakers { db, config, recorded: AtomicU64::new(0) })
    }

    /// Lets a call through, or refuses it while the tool's or the task's breaker is open.
    /// A call let through a half-open breaker holds one of its probe leases until its
    /// outcome is recorded; refused by either breaker, it holds none (one transaction).
    pub fn admit(&self, tool: &str, task: &str) -> Result<Result<Admitted, Refusal>, StateError> {
        let keys = [(Scope::Tool, tool), (Scope::Task, task)];
        self.db.with(|conn| {
            // Both closed (the common case): a read, nothing to take.
            let mut closed = true;
            for (scope, name) in keys {
                closed &= load(conn, scope, name)?.position == Position::Closed;
            }
            if closed {
                return Ok(Ok(Admitted::default()));
            }
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            let mut admitted = Admitted::default();
            for (scope, name) in keys {
                match self.admit_one(&tx, scope, name)? {
                    Ok(lease) if scope == Scope::Tool => admitted.tool_probe = lease,
                    Ok(lease) => admitted.task_probe = lease,
                    // Dropping the transaction gives back what the other breaker gave.
                    Err(refusal) => return Ok(Err(refusal)),
                }
            }
            tx.commit()?;
            Ok(Ok(admitted))
        })
    }

    /// One breaker's admission, inside the caller's transaction: `Some(lease)` for a probe.
    fn admit_one(
        &self,
        tx: &Connection,
        scope: Scope,
        name: &str,
    ) -> rusqlite::Result<Result<Option<i64>, Refusal>> {
        let mut state = load(tx, scope, name)?;
        let now = now_ms();
        let reopens = state.opened_at.saturating_add(self.config.cool_down.0);
        match state.position {
            Position::Closed => return Ok(Ok(None)),
            Position::Open if now < reopens => {
                return Ok(Err(self.refusal(scope, name, &state, reopens - now)));
            }
            Position::Open => {
                state.position = Position::HalfOpen;
                write(tx, scope, name, &state)?;
            }
            Position::HalfOpen => {}
        }
        // Leases whose call can no longer report (expired, or its process is gone) are void.
        let mut held = 0;
        let leases: Vec<(i64, u32, u64, u64)> = tx
            .prepare_cached(
                "SELECT lease, pid, started, expires FROM breaker_probes
                 WHERE scope = ?1 AND name = ?2",
            )?
            .query_map((scope.name(), name), |row| {
                let number = |i| row.get::<_, i64>(i).map(|n| n.max(0) as u64);
                Ok((row.get(0)?, number(1)? as u32, number(2)?, number(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for (lease, pid, started, expires) in leases {
            let holder = Holder { pid, started };
            if now >= expires || !holder.alive() {
                tx.prepare_cached("DELETE FROM breaker_probes WHERE lease = ?1")?
                    .execute([lease])?;
            } else {
                held += 1;
            }
        }
        if held >= self.config.probes.max(1) {
            return Ok(Err(self.refusal(scope, name, &state, 0)));
        }
        let me = Holder::this_process();
        let expires = now.saturating_add(self.config.probe_lease.0);
        let lease = tx
            .prepare_cached(
                "INSERT INTO breaker_probes (scope, name, pid, started, expires)
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING lease",
            )?
            .query_row(
                (
                    scope.name(),
                    name,
                    me.pid,
                    me.started as i64,
                    expires.min(i64::MAX as u64) as i64,
                ),
                |row| row.get(0),
            )?;
        Ok(Ok(Some(lease)))
    }

    fn refusal(&self, scope: Scope, name: &str, state: &State, left_ms: u64) -> Refusal {
        Refusal {
            scope,
            name: name.to_owned(),
            reason: state.reason.clone(),
            retry_in: Duration::from_millis(left_ms),
        }
    }

    /// Gives back the probe leases of a call that was admitted but will not be recorded.
    pub fn release(&self, admitted: Admitted) -> Result<(), StateError> {
        if admitted == Admitted::default() {
            return Ok(());
        }
        self.db.with(|conn| release(conn, admitted))
    }

    /// Records how an admitted call ended, and gives back its probe leases (one
    /// transaction); returns the breakers that changed position.
    pub fn record(
        &self,
        tool: &str,
        task: &str,
        admitted: Admitted,
        outcome: Outcome<'_>,
    ) -> Result<Vec<Transition>, StateError> {
        let prune = self.recorded.fetch_add(1, Ordering::Relaxed).is_multiple_of(PRUNE_EVERY);
        self.db.with(|conn| {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            release(&tx, admitted)?;
            let mut transitions = Vec::new();
            let state = load(&tx, Scope::Tool, tool)?;
            let (state, change) = self.tool_outcome(state, admitted.tool_probe.is_some(), outcome);
            write(&tx, Scope::Tool, tool, &state)?;
            transitions.extend(change.map(|(from, to, reason)| Transition {
                scope: Scope::Tool,
                name: tool.to_owned(),
                from,
                to,
                reason,
            }));
            let progress = match outcome.output {
                Some(hash) if !outcome.failed => is_new(&tx, task, hash)?,
                _ => false,
            };
            let state = load(&tx, Scope::Task, task)?;
            let (state, change) =
                self.task_outcome(state, admitted.task_probe.is_some(), outcome, progress);
            write(&tx, Scope::Task, task, &state)?;
            transitions.extend(change.map(|(from, to, reason)| Transition {
                scope: Scope::Task,
                name: task.to_owned(),
                from,
                to,
                reason,
            }));
            if prune {
                prune_tables(&tx)?;
            }
            tx.commit()?;
            Ok(transitions)
        })
    }

    fn tool_outcome(
        &self,
        mut state: State,
        probe: bool,
        outcome: Outcome<'_>,
    ) -> (State, Option<(Position, Position, String)>) {
        let config = &self.config;
        if !outcome.ran {
            // Nothing learned about the tool (a probe's lease is given back).
            return (state, None);
        }
        let failed = outcome.tool_failed;
        state.consecutive = if failed { state.consecutive + 1 } else { 0 };
        state.recent.push(if failed { '1' } else { '0' });
        let window = config.window.max(1) as usize;
        if state.recent.len() > window {
            state.recent.drain(..state.recent.len() - window);
        }
        let from = state.position;
        if probe || from == Position::HalfOpen {
            return match failed {
                true => {
                    let reason =
                        format!("a probe after the cool-down failed; first: {}", first(&state));
                    open(state, reason)
                }
                false => close(state, "a probe succeeded"),
            };
        }
        let failures = state.recent.chars().filter(|c| *c == '1').count();
        let calls = state.recent.len();
        let rate = failures as f64 / calls as f64;
        if config.failures > 0 && state.consecutive >= config.failures {
            let reason = format!("{} consecutive failures", state.consecutive);
            return open(state, reason);
        }
        if config.failure_rate > 0.0
            && config.failure_rate <= 1.0
            && calls >= config.min_calls.max(1) as usize
            && rate >= config.failure_rate
        {
            let reason = format!(
                "{failures} of its last {calls} calls failed, a rate of {:.0}% (limit {:.0}%)",
                rate * 100.0,
                config.failure_rate * 100.0
            );
            return open(state, reason);
        }
        (state, None)
    }

    fn task_outcome(
        &self,
        mut state: State,
        probe: bool,
        outcome: Outcome<'_>,
        progress: bool,
    ) -> (State, Option<(Position, Position, String)>) {
        let config = &self.config;
        if probe && !outcome.ran {
            // A probe refused before it ran tested nothing: its lease is given back.
            return (state, None);
        }
        state.consecutive = if outcome.failed { state.consecutive + 1 } else { 0 };
        state.stale = if progress { 0 } else { state.stale + 1 };
        let from = state.position;
        if probe || from == Position::HalfOpen {
            return match progress {
                true => close(state, "a probe made progress"),
                false => {
                    let reason = format!(
                        "a probe after the cool-down made no progress; first: {}",
                        first(&state)
                    );
                    open(state, reason)
                }
            };
        }
        if config.task_failures > 0 && state.consecutive >= config.task_failures {
            let reason = format!("{} calls in a row failed", state.consecutive);
            return open(state, reason);
        }
        if config.task_no_progress > 0 && state.stale >= config.task_no_progress {
            let reason = format!("{} calls in a row brought no new successful result", state.stale);
            return open(state, reason);
        }
        (state, None)
    }
}

/// Who holds a probe lease: a process, by pid and start time (a pid is reused; the pair is
/// not). A holder whose process is gone (killed, say) can no longer report: its lease is
/// void at once, not only when it expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Holder {
    pid: u32,
    /// The process's start time, in clock ticks since boot (`/proc/PID/stat`); 0 where
    /// there is no `/proc`, and then only the lease's expiry frees it.
    started: u64,
}

impl Holder {
    fn this_process() -> Holder {
        let pid = std::process::id();
        Holder { pid, started: started(pid).unwrap_or(0) }
    }

    fn alive(&self) -> bool {
        if self.started == 0 {
            return true;
        }
        started(self.pid) == Some(self.started)
    }
}

/// Field 22 of `/proc/PID/stat` (after the command name, which may hold spaces and
/// parentheses: the fields are counted from its closing parenthesis).
fn started(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, fields) = stat.rsplit_once(')')?;
    fields.split_whitespace().nth(19)?.parse().ok()
}

fn release(conn: &Connection, admitted: Admitted) -> rusqlite::Result<()> {
    for lease in [admitted.tool_probe, admitted.task_probe].into_iter().flatten() {
        conn.prepare_cached("DELETE FROM breaker_probes WHERE lease = ?1")?.execute([lease])?;
    }
    Ok(())
}

/// Whether `task` has not had this result before (and from now on, has).
fn is_new(conn: &Connection, task: &str, hash: &str) -> rusqlite::Result<bool> {
    let added = conn
        .prepare_cached("INSERT OR IGNORE INTO task_results (task, hash) VALUES (?1, ?2)")?
        .execute((task, hash))?;
    Ok(added == 1)
}

/// Forgets the oldest task results and the least recently written closed breakers past
/// [`KEPT`] (a replaced row gets a new rowid: the rowid orders them by their last write).
fn prune_tables(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM task_results WHERE rowid <= (SELECT max(rowid) FROM task_results) - ?1",
    )?
    .execute([KEPT])?;
    conn.prepare_cached(
        "DELETE FROM breakers WHERE position = 'closed'
         AND rowid <= (SELECT max(rowid) FROM breakers) - ?1",
    )?
    .execute([KEPT])?;
    Ok(())
}

fn load(conn: &Connection, scope: Scope, name: &str) -> rusqlite::Result<State> {
    let stored = conn
        .prepare_cached(
            "SELECT position, consecutive, stale, recent, opened_at, reason
             FROM breakers WHERE scope = ?1 AND name = ?2",
        )?
        .query_row((scope.name(), name), |row| {
            Ok(State {
                position: Position::parse(&row.get::<_, String>(0)?),
                consecutive: row.get(1)?,
                stale: row.get(2)?,
                recent: row.get(3)?,
                opened_at: row.get::<_, i64>(4)?.max(0) as u64,
                reason: row.get(5)?,
            })
        })
        .optional()?;
    Ok(stored.unwrap_or_else(State::closed))
}

fn write(
    conn: &rusqlite::Connection,
    scope: Scope,
    name: &str,
    state: &State,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO breakers
         (scope, name, position, consecutive, stale, recent, opened_at, reason, probes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(rusqlite::params![
        scope.name(),
        name,
        state.position.name(),
        state.consecutive,
        state.stale,
        state.recent,
        state.opened_at as i64,
        state.reason,
        0 // Was the probes left; the leases are in `breaker_probes` now.
    ])
}

fn open(mut state: State, reason: String) -> (State, Option<(Position, Position, String)>) {
    let from = state.position;
    state.position = Position::Open;
    state.opened_at = now_ms();
    state.reason = reason.clone();
    (state, Some((from, Position::Open, reason)))
}

/// Why the breaker first opened, before any failed probe.
fn first(state: &State) -> &str {
    state.reason.rsplit("first: ").next().unwrap_or(&state.reason)
}

fn close(state: State, reason: &str) -> (State, Option<(Position, Position, String)>) {
    (State::closed(), Some((state.position, Position::Closed, reason.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers(dir: &std::path::Path, config: BreakerConfig) -> Breakers {
        let db = Arc::new(StateDb::open(dir).expect("the state database opens"));
        Breakers::new(db, config).expect("the tables are made")
    }

    /// Opens the tool `t`'s breaker, as if long ago: the next admission is a probe.
    fn half_open(breakers: &Breakers) {
        let state = State { position: Position::Open, reason: "test".into(), ..State::closed() };
        breakers.db.with(|conn| write(conn, Scope::Tool, "t", &state)).expect("written");
    }

    #[test]
    fn a_probe_lease_past_its_expiry_no_longer_holds_the_breaker() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = BreakerConfig { probe_lease: Millis(0), ..BreakerConfig::default() };
        let breakers = breakers(dir.path(), config);
        half_open(&breakers);
        let first = breakers.admit("t", "a").expect("readable").expect("the probe");
        assert!(first.tool_probe.is_some());
        // Its lease expired at once: the next call is a probe too.
        let second = breakers.admit("t", "b").expect("readable").expect("a new probe");
        assert_ne!(first.tool_probe, second.tool_probe);
    }

    #[test]
    fn a_live_probe_holds_the_breaker_until_it_is_given_back() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let breakers = breakers(dir.path(), BreakerConfig::default());
        half_open(&breakers);
        let probe = breakers.admit("t", "a").expect("readable").expect("the probe");
        let refused = breakers.admit("t", "b").expect("readable").expect_err("one probe");
        assert_eq!(refused.retry_in, Duration::ZERO);
        breakers.release(probe).expect("given back");
        breakers.admit("t", "c").expect("readable").expect("the probe again");
    }

    #[test]
    fn a_database_of_an_earlier_version_with_a_probe_counted_in_flight_is_not_stuck() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let breakers = breakers(dir.path(), BreakerConfig::default());
        // Earlier versions counted probes in flight in `probes`, and a lost probe stayed.
        breakers
            .db
            .with(|conn| {
                conn.execute(
                    "INSERT INTO breakers VALUES ('tool', 't', 'half-open', 0, 0, '', 0, 'x', 1)",
                    [],
                )
            })
            .expect("written");
        breakers.admit("t", "a").expect("readable").expect("the probe");
    }

    #[test]
    fn a_holder_is_alive_while_its_process_runs_and_not_after() {
        assert!(Holder::this_process().alive());
        assert_ne!(Holder::this_process().started, 0, "/proc gives the start time");
        let mut child = std::process::Command::new("true").spawn().expect("`true` runs");
        let holder = Holder { pid: child.id(), started: started(child.id()).unwrap_or(1) };
        child.wait().expect("`true` ends");
        assert!(!holder.alive(), "a process gone no longer holds its lease");
    }
}
