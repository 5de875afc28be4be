//! What each task has committed on each magnitude meter (bytes written, files and values
//! deleted or replaced, rows changed), kept in the state database beside the task budgets,
//! so that the per-task limits add up across calls, restarts and processes sharing
//! `STATE_DIR`. A meter that cannot be read counts as full (fail closed). A call's counts
//! are committed only if they still fit the task's limits and the principal's windows, checked
//! and added in one transaction: two calls (or hosts) that each fit alone cannot both pass
//! the last unit.

use crate::controls::principal::{Meter, Over, PrincipalMeters};
use crate::state::{StateDb, StateError};
use rusqlite::OptionalExtension;
use std::collections::HashMap;
use std::sync::Arc;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS task_meters (
    task TEXT NOT NULL,
    meter TEXT NOT NULL,
    amount INTEGER NOT NULL,
    PRIMARY KEY (task, meter)
) WITHOUT ROWID";

/// The per-task meters of one state database.
pub(crate) struct TaskMeters {
    db: Arc<StateDb>,
}

impl TaskMeters {
    pub fn new(db: Arc<StateDb>) -> Result<TaskMeters, StateError> {
        db.with(|conn| conn.execute_batch(SCHEMA))?;
        Ok(TaskMeters { db })
    }

    /// What `task` has committed on `meter`.
    pub fn total(&self, task: &str, meter: &str) -> Result<u64, StateError> {
        self.db.with(|conn| total(conn, task, meter))
    }

    /// Adds `counts` (meter key to amount) to `task`'s totals and to `principal`'s windows,
    /// if every total stays within its per-task limit in `limits` (a key without one has
    /// none) and every window within its limits; else adds nothing and says which limit.
    /// One transaction: what another call committed since this one was charged is counted.
    pub fn commit(
        &self,
        task: &str,
        counts: &HashMap<String, u64>,
        limits: &HashMap<String, u64>,
        principals: &PrincipalMeters,
        principal: &str,
    ) -> Result<Result<(), (String, Over)>, StateError> {
        if counts.values().all(|amount| *amount == 0) {
            return Ok(Ok(()));
        }
        self.db.with(|conn| {
            let tx = rusqlite::Transaction::new_unchecked(
                conn,
                rusqlite::TransactionBehavior::Immediate,
            )?;
            let mut windows: HashMap<Meter, u64> = HashMap::new();
            for (key, amount) in counts {
                let total = total(&tx, task, key)?;
                let limit = limits.get(key).copied().unwrap_or(u64::MAX);
                if total.saturating_add(*amount) > limit {
                    let over = Over { scope: "per task", limit, used: total };
                    return Ok(Err((key.clone(), over)));
                }
                if let Some(meter) = Meter::of_key(key) {
                    *windows.entry(meter).or_insert(0) += amount;
                }
            }
            for (meter, amount) in windows {
                if let Err(over) = principals.take_in(&tx, principal, meter, amount)? {
                    return Ok(Err((meter.name().to_owned(), over)));
                }
            }
            for (key, amount) in counts {
                add(&tx, task, key, i64::try_from(*amount).unwrap_or(i64::MAX))?;
            }
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    /// Takes `counts` back off `task`'s totals (a commit that failed after they were added;
    /// the principal's windows keep them: more, never less).
    pub fn take_back(&self, task: &str, counts: &HashMap<String, u64>) -> Result<(), StateError> {
        if counts.values().all(|amount| *amount == 0) {
            return Ok(());
        }
        self.db.with(|conn| {
            let tx = rusqlite::Transaction::new_unchecked(
                conn,
                rusqlite::TransactionBehavior::Immediate,
            )?;
            for (key, amount) in counts {
                add(&tx, task, key, -i64::try_from(*amount).unwrap_or(i64::MAX))?;
            }
            tx.commit()
        })
    }
}

fn total(conn: &rusqlite::Connection, task: &str, meter: &str) -> rusqlite::Result<u64> {
    let amount: Option<i64> = conn
        .prepare_cached("SELECT amount FROM task_meters WHERE task = ?1 AND meter = ?2")?
        .query_row((task, meter), |row| row.get(0))
        .optional()?;
    Ok(amount.map_or(0, |a| a.max(0) as u64))
}

fn add(conn: &rusqlite::Connection, task: &str, meter: &str, amount: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO task_meters (task, meter, amount) VALUES (?1, ?2, max(?3, 0))
         ON CONFLICT (task, meter) DO UPDATE SET amount = max(amount + ?3, 0)",
    )?
    .execute((task, meter, amount))?;
    Ok(())
}
