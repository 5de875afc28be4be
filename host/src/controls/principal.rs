//! Limits per principal over rolling windows: calls, tokens, files and values deleted or
//! replaced, rows changed and bytes written, per hour and per day, for each principal (who
//! is calling, as the host knows it: the connection, the token, the local user). Task and
//! session names are the agent's labels and reset nothing here. Kept in the state database
//! in one-minute buckets, so that the windows hold across restarts and processes sharing
//! `STATE_DIR`; a window that cannot be read is full (fail closed).

use crate::state::{StateDb, StateError};
use crate::units::ByteSize;
use serde::Deserialize;
use std::sync::Arc;

/// A magnitude limit that would be exceeded, with the numbers for the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Over {
    /// `"per call"`, `"per task"`, or a window of the principal's.
    pub scope: &'static str,
    pub limit: u64,
    /// Already used in that scope, before this operation.
    pub used: u64,
}

/// `[limits.principal]` of `moat.toml`. A limit of 0 turns it off.
///
/// ```toml
/// [limits.principal]
/// calls_per_hour = 2000          # off (0) by default, as are the tokens
/// deletes_per_day = 1000
/// written_per_hour = "1 GiB"
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalLimits {
    #[serde(default = "default_calls_per_hour")]
    pub calls_per_hour: u64,
    #[serde(default = "default_calls_per_day")]
    pub calls_per_day: u64,
    /// Tokens of the outputs given out, and of the model as the caller reports them.
    #[serde(default = "default_tokens_per_hour")]
    pub tokens_per_hour: u64,
    #[serde(default = "default_tokens_per_day")]
    pub tokens_per_day: u64,
    /// Files deleted or overwritten away, kv values deleted or overwritten.
    #[serde(default = "default_deletes_per_hour")]
    pub deletes_per_hour: u64,
    #[serde(default = "default_deletes_per_day")]
    pub deletes_per_day: u64,
    /// Rows changed through sql grants.
    #[serde(default = "default_rows_per_hour")]
    pub rows_per_hour: u64,
    #[serde(default = "default_rows_per_day")]
    pub rows_per_day: u64,
    /// Bytes written to files and kv values.
    #[serde(default = "default_written_per_hour")]
    pub written_per_hour: ByteSize,
    #[serde(default = "default_written_per_day")]
    pub written_per_day: ByteSize,
}

// Calls and tokens are off by default: a program may make ten thousand calls a second
// through moat, and only the operator knows what an agent's caller needs. What destroys or
// fills has limits out of the box.
fn default_calls_per_hour() -> u64 {
    0
}
fn default_calls_per_day() -> u64 {
    0
}
fn default_tokens_per_hour() -> u64 {
    0
}
fn default_tokens_per_day() -> u64 {
    0
}
fn default_deletes_per_hour() -> u64 {
    1_000
}
fn default_deletes_per_day() -> u64 {
    5_000
}
fn default_rows_per_hour() -> u64 {
    100_000
}
fn default_rows_per_day() -> u64 {
    1_000_000
}
fn default_written_per_hour() -> ByteSize {
    ByteSize::mib(1024)
}
fn default_written_per_day() -> ByteSize {
    ByteSize::mib(10 * 1024)
}

impl Default for PrincipalLimits {
    fn default() -> PrincipalLimits {
        PrincipalLimits {
            calls_per_hour: default_calls_per_hour(),
            calls_per_day: default_calls_per_day(),
            tokens_per_hour: default_tokens_per_hour(),
            tokens_per_day: default_tokens_per_day(),
            deletes_per_hour: default_deletes_per_hour(),
            deletes_per_day: default_deletes_per_day(),
            rows_per_hour: default_rows_per_hour(),
            rows_per_day: default_rows_per_day(),
            written_per_hour: default_written_per_hour(),
            written_per_day: default_written_per_day(),
        }
    }
}

/// `[limits]` of `moat.toml`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default)]
    pub principal: PrincipalLimits,
}

/// What a principal's windows count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Meter {
    Calls,
    Tokens,
    Deletes,
    Rows,
    Written,
}

impl Meter {
    pub fn name(self) -> &'static str {
        match self {
            Meter::Calls => "calls",
            Meter::Tokens => "tokens",
            Meter::Deletes => "deletes",
            Meter::Rows => "rows",
            Meter::Written => "written",
        }
    }

    /// The meter a capability's meter key adds to (`fs:GRANT:deleted`, `kv:written`,
    /// `sql:GRANT:rows`).
    pub fn of_key(key: &str) -> Option<Meter> {
        match key.rsplit(':').next()? {
            "deleted" => Some(Meter::Deletes),
            "written" => Some(Meter::Written),
            "rows" => Some(Meter::Rows),
            _ => None,
        }
    }
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS principal_usage (
    principal TEXT NOT NULL,
    meter TEXT NOT NULL,
    minute INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    PRIMARY KEY (principal, meter, minute)
) WITHOUT ROWID";

/// The windows of every principal, in one state database.
pub struct PrincipalMeters {
    db: Arc<StateDb>,
    limits: PrincipalLimits,
}

/// The scopes of the windows, as refusals name them.
const PER_HOUR: &str = "per hour for the caller (its principal)";
const PER_DAY: &str = "per day for the caller (its principal)";

impl PrincipalMeters {
    pub fn new(db: Arc<StateDb>, limits: PrincipalLimits) -> Result<PrincipalMeters, StateError> {
        db.with(|conn| conn.execute_batch(SCHEMA))?;
        Ok(PrincipalMeters { db, limits })
    }

    fn limits(&self, meter: Meter) -> (u64, u64) {
        let l = &self.limits;
        match meter {
            Meter::Calls => (l.calls_per_hour, l.calls_per_day),
            Meter::Tokens => (l.tokens_per_hour, l.tokens_per_day),
            Meter::Deletes => (l.deletes_per_hour, l.deletes_per_day),
            Meter::Rows => (l.rows_per_hour, l.rows_per_day),
            Meter::Written => (l.written_per_hour.0, l.written_per_day.0),
        }
    }

    /// What `principal` used on `meter` in the last hour and the last day.
    fn used(
        conn: &rusqlite::Connection,
        principal: &str,
        meter: Meter,
    ) -> rusqlite::Result<(u64, u64)> {
        let now = minute_now();
        conn.query_row(
            "SELECT coalesce(sum(amount) FILTER (WHERE minute > ?3 - 60), 0),
                    coalesce(sum(amount), 0)
             FROM principal_usage WHERE principal = ?1 AND meter = ?2 AND minute > ?3 - 1440",
            (principal, meter.name(), now),
            |row| Ok((row.get::<_, i64>(0)?.max(0) as u64, row.get::<_, i64>(1)?.max(0) as u64)),
        )
    }

    /// Whether `amount` more (beside `pending`, charged by this call and not yet committed)
    /// stays within both windows of `meter`; a window that cannot be read is full.
    pub fn check(
        &self,
        principal: &str,
        meter: Meter,
        pending: u64,
        amount: u64,
    ) -> Result<(), Over> {
        let (per_hour, per_day) = self.limits(meter);
        if per_hour == 0 && per_day == 0 {
            return Ok(());
        }
        let (hour, day) =
            self.db.with(|conn| Self::used(conn, principal, meter)).unwrap_or_else(|e| {
                tracing::error!(
                    "principal `{principal}`: {} window unreadable, so it is full: {e}",
                    meter.name()
                );
                (u64::MAX, u64::MAX)
            });
        within(per_hour, per_day, hour.saturating_add(pending), day.saturating_add(pending), amount)
    }

    /// Counts `amount` on `meter` if it stays within both windows, in one transaction: two
    /// calls (or processes) at once cannot both take the last unit.
    pub fn take(
        &self,
        principal: &str,
        meter: Meter,
        amount: u64,
    ) -> Result<Result<(), Over>, StateError> {
        let (per_hour, per_day) = self.limits(meter);
        if per_hour == 0 && per_day == 0 {
            return Ok(Ok(())); // Not limited: nothing to count.
        }
        self.db.with(|conn| {
            let tx = rusqlite::Transaction::new_unchecked(
                conn,
                rusqlite::TransactionBehavior::Immediate,
            )?;
            if let Err(over) = self.take_in(&tx, principal, meter, amount)? {
                return Ok(Err(over));
            }
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    /// [`PrincipalMeters::take`], inside the caller's transaction on the same database.
    pub(crate) fn take_in(
        &self,
        tx: &rusqlite::Connection,
        principal: &str,
        meter: Meter,
        amount: u64,
    ) -> rusqlite::Result<Result<(), Over>> {
        let (per_hour, per_day) = self.limits(meter);
        if amount == 0 || (per_hour == 0 && per_day == 0) {
            return Ok(Ok(())); // Not limited: nothing to count.
        }
        let (hour, day) = Self::used(tx, principal, meter)?;
        if let Err(over) = within(per_hour, per_day, hour, day, amount) {
            return Ok(Err(over));
        }
        add(tx, principal, meter, amount)?;
        Ok(Ok(()))
    }

    /// Counts `amount` on `meter`, whatever the windows say (what already happened).
    /// A meter without limits is not kept.
    pub fn add(&self, principal: &str, meter: Meter, amount: u64) -> Result<(), StateError> {
        if amount == 0 || self.limits(meter) == (0, 0) {
            return Ok(());
        }
        self.db.with(|conn| add(conn, principal, meter, amount))
    }
}

fn add(
    conn: &rusqlite::Connection,
    principal: &str,
    meter: Meter,
    amount: u64,
) -> rusqlite::Result<()> {
    let now = minute_now();
    let amount = i64::try_from(amount).unwrap_or(i64::MAX);
    conn.execute(
        "INSERT INTO principal_usage (principal, meter, minute, amount) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (principal, meter, minute) DO UPDATE SET amount = amount + ?4",
        (principal, meter.name(), now, amount),
    )?;
    // What has left the day's window is forgotten.
    conn.execute("DELETE FROM principal_usage WHERE minute <= ?1 - 1440", [now])?;
    Ok(())
}

fn within(per_hour: u64, per_day: u64, hour: u64, day: u64, amount: u64) -> Result<(), Over> {
    if per_hour > 0 && hour.saturating_add(amount) > per_hour {
        return Err(Over { scope: PER_HOUR, limit: per_hour, used: hour });
    }
    if per_day > 0 && day.saturating_add(amount) > per_day {
        return Err(Over { scope: PER_DAY, limit: per_day, used: day });
    }
    Ok(())
}

fn minute_now() -> i64 {
    let secs = crate::clock::now_secs();
    (secs / 60) as i64
}
