//! Per-task budgets: calls, tokens, fuel and wall time, summed over every call of a task in
//! the state database, so that they hold across processes (each `moat call --task T` is a
//! new one) and restarts.
//!
//! A budget is a hard stop. `calls` is checked before a call: at most `calls` calls are
//! admitted. The others are known only after a call has run, so the call that goes over one
//! completes, the charge reports it, and the next call is refused. Every update is one
//! SQLite statement (admission checks and counts in the same one), so hosts sharing a state
//! database never lose each other's updates nor both admit the last call.

use crate::state::{StateDb, StateError};
use crate::units::Millis;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// `[task_budgets]` in `moat.toml`: what one task may use over all its calls.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskBudgets {
    /// Calls admitted.
    pub calls: u64,
    /// Tool-output tokens plus the model tokens the caller reports.
    pub tokens: u64,
    /// Fuel, summed over calls.
    pub fuel: u64,
    /// Wall time of the calls, summed (not the time since the task began).
    pub wall_time: Millis,
}

impl Default for TaskBudgets {
    fn default() -> TaskBudgets {
        TaskBudgets {
            calls: 1000,
            tokens: 2_000_000,
            fuel: 1_000_000_000_000,
            wall_time: Millis(30 * 60 * 1000),
        }
    }
}

/// What a task has used so far, over all its calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskUsage {
    pub calls: u64,
    pub tokens: u64,
    pub fuel: u64,
    pub wall_time: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TaskBudgetError {
    /// `budget` is "calls", "tokens", "fuel" or "wall time"; `limit` and `used` are written
    /// with their unit.
    #[error("task `{task}` exceeded its {budget} budget: limit {limit}, used {used}")]
    Exceeded { task: String, budget: &'static str, limit: String, used: String },
    #[error(transparent)]
    State(#[from] StateError),
}

/// The per-task usage of a state database, checked against one set of budgets.
pub struct TaskLedger {
    db: Arc<StateDb>,
    budgets: TaskBudgets,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS task_usage (
    task TEXT PRIMARY KEY NOT NULL,
    calls INTEGER NOT NULL DEFAULT 0,
    tokens INTEGER NOT NULL DEFAULT 0,
    fuel INTEGER NOT NULL DEFAULT 0,
    wall_us INTEGER NOT NULL DEFAULT 0,
    updated_ms INTEGER NOT NULL DEFAULT 0
)";

/// Adds to a task's usage (creating its row) and returns the new usage. Sums saturate at
/// the largest SQLite integer (an overflowing `+` yields a float, which `MIN` turns back).
const ADD: &str = "INSERT INTO task_usage (task, calls, tokens, fuel, wall_us, updated_ms)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)
    ON CONFLICT (task) DO UPDATE SET
        calls = MIN(calls + excluded.calls, 9223372036854775807),
        tokens = MIN(tokens + excluded.tokens, 9223372036854775807),
        fuel = MIN(fuel + excluded.fuel, 9223372036854775807),
        wall_us = MIN(wall_us + excluded.wall_us, 9223372036854775807),
        updated_ms = excluded.updated_ms
    RETURNING calls, tokens, fuel, wall_us";

/// Counts a call of a task, only if the task is under every budget (`?2` calls, `?3` tokens,
/// `?4` fuel, `?5` microseconds): no row comes back when it is not.
const ADMIT: &str = "INSERT INTO task_usage (task, calls, updated_ms)
    SELECT ?1, 1, ?6 WHERE ?2 > 0
    ON CONFLICT (task) DO UPDATE SET
        calls = MIN(calls + 1, 9223372036854775807),
        updated_ms = excluded.updated_ms
    WHERE calls < ?2 AND tokens <= ?3 AND fuel <= ?4 AND wall_us <= ?5
    RETURNING calls, tokens, fuel, wall_us";

/// An increment of usage.
#[derive(Default)]
struct Add {
    calls: u64,
    tokens: u64,
    fuel: u64,
    wall: Duration,
}

impl TaskLedger {
    /// A ledger over `db` (its table is created if missing).
    pub fn new(db: Arc<StateDb>, budgets: TaskBudgets) -> Result<TaskLedger, StateError> {
        db.with(|conn| conn.execute_batch(SCHEMA))?;
        Ok(TaskLedger { db, budgets })
    }

    pub fn budgets(&self) -> &TaskBudgets {
        &self.budgets
    }

    /// Before a call: refuses it if the task is over any budget already, or if it would be
    /// one call more than `calls`; else counts it. Returns the usage with this call counted.
    /// One statement checks and counts, so two hosts cannot both admit the last call.
    pub fn admit(&self, task: &str) -> Result<TaskUsage, TaskBudgetError> {
        let budgets = &self.budgets;
        let wall_us = u64::try_from(u128::from(budgets.wall_time.0) * 1000).unwrap_or(u64::MAX);
        let admitted = self.db.with(|conn| {
            conn.prepare_cached(ADMIT)?
                .query_row(
                    params![
                        task,
                        integer(budgets.calls),
                        integer(budgets.tokens),
                        integer(budgets.fuel),
                        integer(wall_us),
                        now_ms(),
                    ],
                    usage_of,
                )
                .optional()
        })?;
        if let Some(usage) = admitted {
            return Ok(usage);
        }
        let usage = self.usage(task)?;
        Err(self.refusal(task, &usage).unwrap_or_else(|| TaskBudgetError::Exceeded {
            task: task.to_owned(),
            budget: "calls",
            limit: budgets.calls.to_string(),
            used: format!("{} (this would be call {})", usage.calls, usage.calls + 1),
        }))
    }

    /// After a call, failed ones too: adds its fuel, wall time and output tokens. Reports the
    /// budget the task is now over, if any; the call has already run, so this is what
    /// refuses the next one.
    pub fn charge(
        &self,
        task: &str,
        fuel: u64,
        wall: Duration,
        tokens: u64,
    ) -> Result<TaskUsage, TaskBudgetError> {
        let usage = self.db.with(|conn| add(conn, task, &Add { fuel, wall, tokens, calls: 0 }))?;
        self.over(task, &usage)
    }

    /// Adds the model tokens the caller reports for the task (recorded even when they put
    /// the task over its tokens budget, which is then reported).
    pub fn add_model_tokens(&self, task: &str, tokens: u64) -> Result<TaskUsage, TaskBudgetError> {
        let usage = self.db.with(|conn| add(conn, task, &Add { tokens, ..Add::default() }))?;
        self.over(task, &usage)
    }

    /// What the task has used so far (nothing, for a task never seen).
    pub fn usage(&self, task: &str) -> Result<TaskUsage, StateError> {
        Ok(self.db.with(|conn| read(conn, task))?.unwrap_or_default())
    }

    /// `usage`, or the first budget it is over.
    fn over(&self, task: &str, usage: &TaskUsage) -> Result<TaskUsage, TaskBudgetError> {
        match self.exceeded(task, usage) {
            Some(exceeded) => Err(exceeded),
            None => Ok(*usage),
        }
    }

    /// Why a call of a task with this usage may not start.
    fn refusal(&self, task: &str, usage: &TaskUsage) -> Option<TaskBudgetError> {
        if usage.calls >= self.budgets.calls {
            return Some(TaskBudgetError::Exceeded {
                task: task.to_owned(),
                budget: "calls",
                limit: self.budgets.calls.to_string(),
                used: format!("{} (this would be call {})", usage.calls, usage.calls + 1),
            });
        }
        self.exceeded(task, usage)
    }

    /// The first of the budgets measured after a call that `usage` is over.
    fn exceeded(&self, task: &str, usage: &TaskUsage) -> Option<TaskBudgetError> {
        let budgets = &self.budgets;
        let limit_us = u128::from(budgets.wall_time.0) * 1000;
        let (budget, limit, used) = if usage.tokens > budgets.tokens {
            ("tokens", budgets.tokens.to_string(), usage.tokens.to_string())
        } else if usage.fuel > budgets.fuel {
            ("fuel", budgets.fuel.to_string(), usage.fuel.to_string())
        } else if usage.wall_time.as_micros() > limit_us {
            ("wall time", budgets.wall_time.to_string(), millis(usage.wall_time))
        } else {
            return None;
        };
        Some(TaskBudgetError::Exceeded { task: task.to_owned(), budget, limit, used })
    }
}

fn read(conn: &Connection, task: &str) -> rusqlite::Result<Option<TaskUsage>> {
    conn.prepare_cached("SELECT calls, tokens, fuel, wall_us FROM task_usage WHERE task = ?1")?
        .query_row([task], usage_of)
        .optional()
}

fn add(conn: &Connection, task: &str, add: &Add) -> rusqlite::Result<TaskUsage> {
    conn.prepare_cached(ADD)?.query_row(
        params![
            task,
            integer(add.calls),
            integer(add.tokens),
            integer(add.fuel),
            integer(u64::try_from(add.wall.as_micros()).unwrap_or(u64::MAX)),
            now_ms(),
        ],
        usage_of,
    )
}

/// Milliseconds since the epoch, as SQLite stores them.
fn now_ms() -> i64 {
    integer(crate::clock::now_ms())
}

fn usage_of(row: &Row<'_>) -> rusqlite::Result<TaskUsage> {
    let number = |i: usize| row.get::<_, i64>(i).map(|n| u64::try_from(n).unwrap_or(0));
    Ok(TaskUsage {
        calls: number(0)?,
        tokens: number(1)?,
        fuel: number(2)?,
        wall_time: Duration::from_micros(number(3)?),
    })
}

/// A count as an SQLite integer (saturating: SQLite's are signed).
fn integer(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A duration in milliseconds, to the microsecond: "1800000 ms", "12.345 ms".
fn millis(duration: Duration) -> String {
    let us = duration.as_micros();
    match us % 1000 {
        0 => format!("{} ms", us / 1000),
        fraction => format!("{}.{fraction:03} ms", us / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_time_is_written_in_milliseconds_to_the_microsecond() {
        assert_eq!(millis(Duration::from_millis(1500)), "1500 ms");
        assert_eq!(millis(Duration::from_micros(12_345)), "12.345 ms");
        assert_eq!(millis(Duration::from_micros(7)), "0.007 ms");
    }

    #[test]
    fn budgets_deserialize_with_units_and_defaults() {
        let budgets: TaskBudgets = toml::from_str("tokens = 500\nwall_time = \"2s\"").unwrap();
        assert_eq!(budgets.tokens, 500);
        assert_eq!(budgets.wall_time, Millis(2000));
        assert_eq!(budgets.calls, TaskBudgets::default().calls);
        assert!(toml::from_str::<TaskBudgets>("token = 5").is_err());
    }

    #[test]
    fn sums_saturate_instead_of_overflowing() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(StateDb::open(dir.path()).unwrap());
        let ledger =
            TaskLedger::new(db, TaskBudgets { fuel: u64::MAX, ..Default::default() }).unwrap();
        ledger.charge("t", u64::MAX, Duration::ZERO, 0).unwrap();
        let usage = ledger.charge("t", u64::MAX, Duration::ZERO, 0).unwrap();
        assert_eq!(usage.fuel, i64::MAX as u64);
    }
}
