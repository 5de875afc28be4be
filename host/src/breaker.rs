//! Circuit breakers, per tool and per task. A tool's breaker opens after too many
//! consecutive failures or too high a failure rate over its recent calls; a task's after too
//! many consecutive failed calls or too many calls without a new successful result. Open
//! refuses at once, saying why and when to retry; after the cool-down a bounded number of
//! probes go through (half-open): a success closes it, a failure opens it again. The state
//! lives in the state database, so a restart does not forget an open breaker: a change of
//! position is written at once; the counts that lead to one are written behind (at most
//! `FLUSH` later, and when the breakers are dropped), so a call does not pay for a write.

use crate::state::{StateDb, StateError};
use crate::units::Millis;
use rusqlite::OptionalExtension;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// Calls let through while half-open.
    #[serde(default = "default_probes")]
    pub probes: u32,
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
            task_failures: default_task_failures(),
            task_no_progress: default_task_no_progress(),
        }
    }
}

/// Whose breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Tool,
    Task,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Tool => "tool",
            Scope::Task => "task",
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
    /// Probes still allowed through while half-open.
    probes: u32,
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
            probes: 0,
        }
    }
}

/// A call refused because a breaker is open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub scope: Scope,
    pub name: String,
    /// Why it opened.
    pub reason: String,
    /// When a probe may go through (zero while half-open with its probes in flight).
    pub retry_in: Duration,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.scope {
            Scope::Tool => format!("tool `{}` is unavailable: its circuit breaker", self.name),
            Scope::Task => format!("task `{}` is stopped: its circuit breaker", self.name),
        };
        let retry = match self.retry_in.as_millis() {
            0 => "a probe call is already testing it; retry after it ends".to_owned(),
            ms => format!("retry in {:.1} s", ms as f64 / 1000.0),
        };
        write!(f, "{what} opened ({}); {retry}", self.reason)
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

/// What admission let through: whether the call is a probe of a half-open breaker.
#[derive(Clone, Copy, Debug, Default)]
pub struct Admitted {
    tool_probe: bool,
    task_probe: bool,
}

/// How long counts may wait to be written.
const FLUSH: Duration = Duration::from_secs(1);
/// Breakers and results kept in memory; past this, they are written and forgotten.
const KEPT: usize = 100_000;

pub struct Breakers {
    db: Arc<StateDb>,
    config: BreakerConfig,
    cache: Mutex<Cache>,
}

/// The breakers in use, authoritative in this process, and what is still to be written.
struct Cache {
    states: HashMap<(Scope, String), State>,
    dirty: HashSet<(Scope, String)>,
    /// (task, output hash) pairs known to be stored or pending.
    seen: HashSet<(String, String)>,
    pending: Vec<(String, String)>,
    flushed: Instant,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Breakers {
    pub fn new(db: Arc<StateDb>, config: BreakerConfig) -> Result<Breakers, StateError> {
        db.with(|conn| {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS breakers (
                    scope TEXT NOT NULL, name TEXT NOT NULL, position TEXT NOT NULL,
                    consecutive INTEGER NOT NULL, stale INTEGER NOT NULL, recent TEXT NOT NULL,
                    opened_at INTEGER NOT NULL, reason TEXT NOT NULL, probes INTEGER NOT NULL,
                    PRIMARY KEY (scope, name));
                 CREATE TABLE IF NOT EXISTS task_results (
                    task TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (task, hash));",
            )
        })?;
        let cache = Cache {
            states: HashMap::new(),
            dirty: HashSet::new(),
            seen: HashSet::new(),
            pending: Vec::new(),
            flushed: Instant::now(),
        };
        Ok(Breakers { db, config, cache: Mutex::new(cache) })
    }

    /// Lets a call through, or refuses it while the tool's or the task's breaker is open.
    pub fn admit(&self, tool: &str, task: &str) -> Result<Result<Admitted, Refusal>, StateError> {
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = now_ms();
        let mut admitted = Admitted::default();
        for (scope, name) in [(Scope::Tool, tool), (Scope::Task, task)] {
            let mut state = self.load(&mut cache, scope, name)?;
            let cool_down = self.config.cool_down.0;
            let probe = match state.position {
                Position::Closed => false,
                Position::Open if now < state.opened_at.saturating_add(cool_down) => {
                    let left = state.opened_at.saturating_add(cool_down) - now;
                    return Ok(Err(self.refusal(scope, name, &state, left)));
                }
                Position::Open | Position::HalfOpen => {
                    if state.position == Position::Open {
                        state.position = Position::HalfOpen;
                        state.probes = self.config.probes.max(1);
                    }
                    if state.probes == 0 {
                        return Ok(Err(self.refusal(scope, name, &state, 0)));
                    }
                    state.probes -= 1;
                    self.store(&mut cache, scope, name, state, true)?;
                    true
                }
            };
            match scope {
                Scope::Tool => admitted.tool_probe = probe,
                Scope::Task => admitted.task_probe = probe,
            }
        }
        Ok(Ok(admitted))
    }

    fn refusal(&self, scope: Scope, name: &str, state: &State, left_ms: u64) -> Refusal {
        Refusal {
            scope,
            name: name.to_owned(),
            reason: state.reason.clone(),
            retry_in: Duration::from_millis(left_ms),
        }
    }

    /// Records how an admitted call ended; returns the breakers that changed position.
    pub fn record(
        &self,
        tool: &str,
        task: &str,
        admitted: Admitted,
        outcome: Outcome<'_>,
    ) -> Result<Vec<Transition>, StateError> {
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut transitions = Vec::new();
        let state = self.load(&mut cache, Scope::Tool, tool)?;
        let (state, change) = self.tool_outcome(state, admitted.tool_probe, outcome);
        self.store(&mut cache, Scope::Tool, tool, state, change.is_some())?;
        transitions.extend(change.map(|(from, to, reason)| Transition {
            scope: Scope::Tool,
            name: tool.to_owned(),
            from,
            to,
            reason,
        }));
        let progress = match outcome.output {
            Some(hash) if !outcome.failed => self.is_new(&mut cache, task, hash)?,
            _ => false,
        };
        let state = self.load(&mut cache, Scope::Task, task)?;
        let (state, change) = self.task_outcome(state, admitted.task_probe, outcome, progress);
        self.store(&mut cache, Scope::Task, task, state, change.is_some())?;
        if cache.flushed.elapsed() >= FLUSH {
            self.flush(&mut cache)?;
        }
        transitions.extend(change.map(|(from, to, reason)| Transition {
            scope: Scope::Task,
            name: task.to_owned(),
            from,
            to,
            reason,
        }));
        Ok(transitions)
    }

    fn tool_outcome(
        &self,
        mut state: State,
        probe: bool,
        outcome: Outcome<'_>,
    ) -> (State, Option<(Position, Position, String)>) {
        let config = &self.config;
        if !outcome.ran {
            // Nothing learned about the tool; a probe slot it took is given back.
            if probe {
                state.probes += 1;
            }
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

    /// Whether `task` has not had this result before (and from now on, has).
    fn is_new(&self, cache: &mut Cache, task: &str, hash: &str) -> Result<bool, StateError> {
        let key = (task.to_owned(), hash.to_owned());
        if cache.seen.contains(&key) {
            return Ok(false);
        }
        let stored = self.db.with(|conn| {
            conn.prepare_cached("SELECT 1 FROM task_results WHERE task = ?1 AND hash = ?2")?
                .query_row((task, hash), |_| Ok(()))
                .optional()
        })?;
        if stored.is_none() {
            cache.pending.push(key.clone());
        }
        cache.seen.insert(key);
        Ok(stored.is_none())
    }

    /// Writes every count and result not yet written, in one transaction.
    fn flush(&self, cache: &mut Cache) -> Result<(), StateError> {
        let dirty: Vec<(Scope, String)> = cache.dirty.drain().collect();
        let pending = std::mem::take(&mut cache.pending);
        let states: Vec<(&(Scope, String), &State)> =
            dirty.iter().filter_map(|key| cache.states.get(key).map(|s| (key, s))).collect();
        self.db.with(|conn| {
            let tx = conn.unchecked_transaction()?;
            for ((scope, name), state) in &states {
                write(&tx, *scope, name, state)?;
            }
            for (task, hash) in &pending {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO task_results (task, hash) VALUES (?1, ?2)",
                )?
                .execute((task, hash))?;
            }
            tx.commit()
        })?;
        cache.flushed = Instant::now();
        Ok(())
    }

    fn load(&self, cache: &mut Cache, scope: Scope, name: &str) -> Result<State, StateError> {
        if let Some(state) = cache.states.get(&(scope, name.to_owned())) {
            return Ok(state.clone());
        }
        let stored = self.db.with(|conn| {
            conn.prepare_cached(
                "SELECT position, consecutive, stale, recent, opened_at, reason, probes
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
                    probes: row.get(6)?,
                })
            })
            .optional()
        })?;
        Ok(stored.unwrap_or_else(State::closed))
    }

    /// Keeps `state`; writes it now if `now` (a change of position, a probe taken), else
    /// with the next flush.
    fn store(
        &self,
        cache: &mut Cache,
        scope: Scope,
        name: &str,
        state: State,
        now: bool,
    ) -> Result<(), StateError> {
        let key = (scope, name.to_owned());
        if now {
            self.db.with(|conn| write(conn, scope, name, &state))?;
            cache.dirty.remove(&key);
        } else {
            cache.dirty.insert(key.clone());
        }
        cache.states.insert(key, state);
        if cache.states.len() > KEPT || cache.seen.len() > KEPT {
            self.flush(cache)?;
            cache.states.clear();
            cache.seen.clear();
        }
        Ok(())
    }
}

impl Drop for Breakers {
    fn drop(&mut self) {
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Err(e) = self.flush(&mut cache) {
            tracing::error!("breaker counts not written: {e}");
        }
    }
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
        state.probes
    ])
}

fn open(mut state: State, reason: String) -> (State, Option<(Position, Position, String)>) {
    let from = state.position;
    state.position = Position::Open;
    state.opened_at = now_ms();
    state.reason = reason.clone();
    state.probes = 0;
    (state, Some((from, Position::Open, reason)))
}

/// Why the breaker first opened, before any failed probe.
fn first(state: &State) -> &str {
    state.reason.rsplit("first: ").next().unwrap_or(&state.reason)
}

fn close(state: State, reason: &str) -> (State, Option<(Position, Position, String)>) {
    (State::closed(), Some((state.position, Position::Closed, reason.to_owned())))
}
