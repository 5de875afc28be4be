//! What each task has committed on each magnitude meter (bytes written, files and values
//! deleted or replaced, rows changed), kept in the state database beside the task budgets,
//! so that the per-task limits add up across calls, restarts and processes sharing
//! `STATE_DIR`. A meter that cannot be read counts as full (fail closed).

use crate::state::{StateDb, StateError};
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
        self.db.with(|conn| {
            let amount: Option<i64> = conn
                .query_row(
                    "SELECT amount FROM task_meters WHERE task = ?1 AND meter = ?2",
                    (task, meter),
                    |row| row.get(0),
                )
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })?;
            Ok(amount.map_or(0, |a| a.max(0) as u64))
        })
    }

    /// Adds `counts` (meter to amount) to `task`'s totals, in one transaction; `sign` -1
    /// takes them back off (a commit that failed after they were added).
    pub fn add(
        &self,
        task: &str,
        counts: &HashMap<String, u64>,
        sign: i64,
    ) -> Result<(), StateError> {
        if counts.values().all(|amount| *amount == 0) {
            return Ok(());
        }
        self.db.with(|conn| {
            let tx = rusqlite::Transaction::new_unchecked(
                conn,
                rusqlite::TransactionBehavior::Immediate,
            )?;
            for (meter, amount) in counts {
                let amount = i64::try_from(*amount).unwrap_or(i64::MAX).saturating_mul(sign);
                tx.execute(
                    "INSERT INTO task_meters (task, meter, amount) VALUES (?1, ?2, max(?3, 0))
                     ON CONFLICT (task, meter) DO UPDATE SET amount = max(amount + ?3, 0)",
                    (task, meter, amount),
                )?;
            }
            tx.commit()
        })
    }
}
