//! The approval queue: an escalation waits as a row of `STATE_DIR/approvals.sqlite` until a
//! person decides it from another process (`moat approvals`, or HTTP on loopback).
//!
//! A decision applies to exactly one row, and only while it is pending: a decided or expired
//! row is never pending again, so an approval cannot be used twice or for another call. An
//! approval is checked against the row's binding (blake3 of its tool and arguments), both
//! when it is given and when the waiting call reads it: a row whose tool or arguments do not
//! match its binding, or the waiting call, is never approved.

use super::{binding, printable, Decision, Escalation, Escalator};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The queue's file in the state directory.
pub const FILE_NAME: &str = "approvals.sqlite";
/// How often a waiting call looks for a decision.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// The longest name of a person deciding, in bytes.
pub const MAX_BY: usize = 256;
/// The longest reason given for a denial, in bytes.
pub const MAX_REASON: usize = 4096;
/// Who decides when moat itself refuses (a binding that does not match).
const MOAT: &str = "moat";

/// Where a request is in its life. Only `Pending` can change, and only once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Approved,
    Denied,
    /// Its call stopped waiting (timeout) before anyone decided.
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Expired => "expired",
        }
    }

    fn parse(text: &str) -> Option<Status> {
        [Status::Pending, Status::Approved, Status::Denied, Status::Expired]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the queue: an escalation and what became of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApprovalRequest {
    pub id: String,
    pub tool: String,
    /// The arguments exactly as the agent sent them (JSON text).
    pub args: String,
    pub task: String,
    pub asked_by: String,
    pub reason: String,
    /// blake3 of `tool` and `args` (see [`super::binding`]).
    pub binding: String,
    /// When it was queued, in milliseconds since the Unix epoch.
    pub created: u64,
    /// When its call stops waiting (milliseconds since the Unix epoch): after that it can no
    /// longer be approved, even if the process that queued it died without expiring it.
    pub expires: u64,
    pub status: Status,
    pub decided_by: Option<String>,
    /// The reason given with a denial.
    pub decision_reason: Option<String>,
    /// When it was decided or expired, in milliseconds since the Unix epoch.
    pub decided_at: Option<u64>,
}

impl ApprovalRequest {
    /// Whether the stored binding is the hash of the stored tool and arguments.
    pub fn binding_holds(&self) -> bool {
        binding(&self.tool, &self.args) == self.binding
    }

    /// Whether this row asks about exactly that call, with an intact binding.
    pub fn is_for(&self, escalation: &Escalation) -> bool {
        self.id == escalation.id
            && self.tool == escalation.tool
            && self.args == escalation.args
            && self.binding == escalation.binding
            && self.binding_holds()
    }

    /// How long it has been waiting at `now` (milliseconds since the Unix epoch).
    pub fn age(&self, now: u64) -> Duration {
        Duration::from_millis(now.saturating_sub(self.created))
    }
}

/// Why the queue refused an operation. One line, naming the request.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("no approval request `{0}`")]
    Unknown(String),
    #[error("approval request `{id}` is already {status}{}, not pending", by_whom(decided_by))]
    NotPending { id: String, status: Status, decided_by: Option<String> },
    #[error(
        "approval request `{0}` does not match its tool and arguments (its binding differs): \
         it is never approved, and is now denied"
    )]
    BindingMismatch(String),
    #[error("a decision needs the name of who decides: `by` is empty")]
    NoName,
    #[error("`{field}` is too long: {len} bytes, at most {max}")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("approval request `{0}` already exists")]
    Duplicate(String),
    #[error("approval queue {}: {message}", path.display())]
    Store { path: PathBuf, message: String },
}

fn by_whom(decided_by: &Option<String>) -> String {
    match decided_by {
        Some(by) => format!(" (by {by})"),
        None => String::new(),
    }
}

/// The queue in one SQLite file, shared with every other process using the same file.
pub struct ApprovalQueue {
    path: PathBuf,
    connection: Mutex<Connection>,
}

const COLUMNS: &str = "id, tool, args, task, asked_by, reason, binding, created, expires, \
                       status, decided_by, decision_reason, decided_at";

impl ApprovalQueue {
    /// Opens (creating if needed, with its directory) the queue file at `path`. On Unix a new
    /// file is made readable and writable by its owner only: whoever can write it can decide.
    pub fn open(path: &Path) -> Result<ApprovalQueue, QueueError> {
        let store = |message: String| QueueError::Store { path: path.to_owned(), message };
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| store(format!("cannot create {}: {e}", dir.display())))?;
        }
        let created = !path.exists();
        let connection = Connection::open(path).map_err(|e| store(e.to_string()))?;
        if created {
            owner_only(path).map_err(|e| store(format!("cannot restrict its permissions: {e}")))?;
        }
        connection
            .busy_timeout(Duration::from_secs(5))
            .and_then(|()| {
                connection.execute_batch(
                    "PRAGMA journal_mode = WAL;
                     CREATE TABLE IF NOT EXISTS approvals (
                         id TEXT PRIMARY KEY NOT NULL,
                         tool TEXT NOT NULL,
                         args TEXT NOT NULL,
                         task TEXT NOT NULL,
                         asked_by TEXT NOT NULL,
                         reason TEXT NOT NULL,
                         binding TEXT NOT NULL,
                         created INTEGER NOT NULL,
                         expires INTEGER NOT NULL,
                         status TEXT NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
                         decided_by TEXT,
                         decision_reason TEXT,
                         decided_at INTEGER);
                     CREATE INDEX IF NOT EXISTS approvals_status ON approvals (status, created);",
                )
            })
            .map_err(|e| store(e.to_string()))?;
        Ok(ApprovalQueue { path: path.to_owned(), connection: Mutex::new(connection) })
    }

    /// Opens the queue of a state directory: `STATE_DIR/approvals.sqlite`.
    pub fn in_state_dir(state_dir: &Path) -> Result<ApprovalQueue, QueueError> {
        ApprovalQueue::open(&state_dir.join(FILE_NAME))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        let mut connection =
            self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        work(&mut connection)
    }

    fn store_error(&self, error: rusqlite::Error) -> QueueError {
        QueueError::Store { path: self.path.clone(), message: error.to_string() }
    }

    /// Queues `escalation` as pending; its call will wait at most `timeout`.
    pub fn submit(&self, escalation: &Escalation, timeout: Duration) -> Result<(), QueueError> {
        let created = now_ms();
        let expires =
            created.saturating_add(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        let e = escalation;
        self.with(|c| {
            let inserted = c
                .execute(
                    "INSERT INTO approvals (id, tool, args, task, asked_by, reason, binding,
                         created, expires, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending')
                     ON CONFLICT (id) DO NOTHING",
                    params![
                        e.id,
                        e.tool,
                        e.args,
                        e.task,
                        e.asked_by,
                        e.reason,
                        e.binding,
                        to_sql(created),
                        to_sql(expires)
                    ],
                )
                .map_err(|error| self.store_error(error))?;
            if inserted == 0 {
                return Err(QueueError::Duplicate(e.id.clone()));
            }
            Ok(())
        })
    }

    /// The request `id`, whatever its status.
    pub fn get(&self, id: &str) -> Result<ApprovalRequest, QueueError> {
        self.with(|c| self.load(c, id))
    }

    fn load(&self, c: &Connection, id: &str) -> Result<ApprovalRequest, QueueError> {
        c.query_row(&format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"), [id], read_row)
            .optional()
            .map_err(|error| self.store_error(error))?
            .ok_or_else(|| QueueError::Unknown(id.to_owned()))
    }

    /// The requests still waiting for a decision (pending and not past their expiry), oldest
    /// first.
    pub fn pending(&self) -> Result<Vec<ApprovalRequest>, QueueError> {
        self.with(|c| {
            let mut statement = c
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM approvals
                     WHERE status = 'pending' AND expires > ?1 ORDER BY created, id"
                ))
                .map_err(|error| self.store_error(error))?;
            let rows = statement
                .query_map([to_sql(now_ms())], read_row)
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(|error| self.store_error(error))?;
            Ok(rows)
        })
    }

    /// Lets the call of request `id` go ahead. Refused when `id` is unknown, not pending,
    /// expired, or its binding does not match its tool and arguments (then it is denied).
    pub fn approve(&self, id: &str, by: &str) -> Result<ApprovalRequest, QueueError> {
        self.decide(id, Status::Approved, by, None)
    }

    /// Refuses the call of request `id`, saying why. Refused when `id` is unknown or not
    /// pending.
    pub fn deny(&self, id: &str, by: &str, reason: &str) -> Result<ApprovalRequest, QueueError> {
        self.decide(id, Status::Denied, by, Some(reason))
    }

    /// Marks request `id` expired if it is still pending, and returns it as it now is (a
    /// decision that came first stands).
    pub fn expire(&self, id: &str) -> Result<ApprovalRequest, QueueError> {
        self.with(|c| {
            c.execute(
                "UPDATE approvals SET status = 'expired', decided_at = ?2
                 WHERE id = ?1 AND status = 'pending'",
                params![id, to_sql(now_ms())],
            )
            .map_err(|error| self.store_error(error))?;
            self.load(c, id)
        })
    }

    fn decide(
        &self,
        id: &str,
        status: Status,
        by: &str,
        reason: Option<&str>,
    ) -> Result<ApprovalRequest, QueueError> {
        let by = by.trim();
        if by.is_empty() {
            return Err(QueueError::NoName);
        }
        check_length("by", by, MAX_BY)?;
        if let Some(reason) = reason {
            check_length("reason", reason, MAX_REASON)?;
        }
        self.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|error| self.store_error(error))?;
            let row = self.load(&tx, id)?;
            let now = now_ms();
            let set = |status: Status, by: &str, reason: Option<&str>| {
                tx.execute(
                    "UPDATE approvals SET status = ?2, decided_by = ?3, decision_reason = ?4,
                         decided_at = ?5
                     WHERE id = ?1 AND status = 'pending'",
                    params![id, status.as_str(), by, reason, to_sql(now)],
                )
                .map_err(|error| self.store_error(error))
            };
            let refusal = if row.status != Status::Pending {
                Some(QueueError::NotPending {
                    id: id.to_owned(),
                    status: row.status,
                    decided_by: row.decided_by.clone(),
                })
            } else if now >= row.expires {
                tx.execute(
                    "UPDATE approvals SET status = 'expired', decided_at = ?2
                     WHERE id = ?1 AND status = 'pending'",
                    params![id, to_sql(now)],
                )
                .map_err(|error| self.store_error(error))?;
                Some(QueueError::NotPending {
                    id: id.to_owned(),
                    status: Status::Expired,
                    decided_by: None,
                })
            } else if status == Status::Approved && !row.binding_holds() {
                set(
                    Status::Denied,
                    MOAT,
                    Some("its binding does not match its tool and arguments"),
                )?;
                Some(QueueError::BindingMismatch(id.to_owned()))
            } else {
                set(status, by, reason)?;
                None
            };
            let row = self.load(&tx, id)?;
            tx.commit().map_err(|error| self.store_error(error))?;
            match refusal {
                Some(error) => Err(error),
                None => Ok(row),
            }
        })
    }
}

fn check_length(field: &'static str, text: &str, max: usize) -> Result<(), QueueError> {
    if text.len() > max {
        return Err(QueueError::TooLong { field, len: text.len(), max });
    }
    Ok(())
}

fn read_row(row: &Row<'_>) -> rusqlite::Result<ApprovalRequest> {
    let status: String = row.get("status")?;
    let status = Status::parse(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            9,
            rusqlite::types::Type::Text,
            format!("unknown status `{status}`").into(),
        )
    })?;
    Ok(ApprovalRequest {
        id: row.get("id")?,
        tool: row.get("tool")?,
        args: row.get("args")?,
        task: row.get("task")?,
        asked_by: row.get("asked_by")?,
        reason: row.get("reason")?,
        binding: row.get("binding")?,
        created: from_sql(row.get("created")?),
        expires: from_sql(row.get("expires")?),
        status,
        decided_by: row.get("decided_by")?,
        decision_reason: row.get("decision_reason")?,
        decided_at: row.get::<_, Option<i64>>("decided_at")?.map(from_sql),
    })
}

pub use crate::clock::now_ms;

fn to_sql(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn from_sql(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

#[cfg(unix)]
fn owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn owner_only(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// The queue channel: each escalation becomes a pending row, and the call waits (polling
/// every [`POLL_INTERVAL`]) until someone decides it or the timeout expires it.
pub struct QueueEscalator {
    queue: Arc<ApprovalQueue>,
    timeout: Duration,
    /// What serves the queue over HTTP, if anything: it lives as long as the escalator.
    server: Option<Box<dyn Send + Sync>>,
}

impl QueueEscalator {
    pub fn new(queue: Arc<ApprovalQueue>, timeout: Duration) -> QueueEscalator {
        QueueEscalator { queue, timeout, server: None }
    }

    /// Keeps `server` (the queue's HTTP server, `moat::admin::ApprovalServer`) running for as
    /// long as this escalator lives.
    pub fn with_server(mut self, server: impl Send + Sync + 'static) -> QueueEscalator {
        self.server = Some(Box::new(server));
        self
    }

    pub fn queue(&self) -> &Arc<ApprovalQueue> {
        &self.queue
    }

    /// What a decided row means for the call `escalation`.
    fn outcome(escalation: &Escalation, row: &ApprovalRequest) -> Decision {
        let by = row.decided_by.clone().unwrap_or_else(|| "unknown".to_owned());
        match row.status {
            Status::Approved if row.is_for(escalation) => Decision::Approved { by },
            Status::Approved => Decision::Denied {
                by: MOAT.to_owned(),
                reason: format!(
                    "approval request `{}` no longer matches this call (its tool, arguments \
                     or binding changed): the approval by {by} does not apply",
                    escalation.id
                ),
            },
            Status::Denied => {
                Decision::Denied { by, reason: row.decision_reason.clone().unwrap_or_default() }
            }
            Status::Expired | Status::Pending => Decision::TimedOut { channel: "queue".into() },
        }
    }
}

impl Escalator for QueueEscalator {
    fn decide(&self, escalation: &Escalation) -> Decision {
        let id = &escalation.id;
        if let Err(error) = self.queue.submit(escalation, self.timeout) {
            return Decision::Denied {
                by: MOAT.to_owned(),
                reason: format!("cannot queue the request for a decision: {error}"),
            };
        }
        tracing::warn!(
            "escalation `{id}`: tool `{}` waits up to {:?} for a decision ({}: {}); \
             run `moat approvals approve {id}` or `moat approvals deny {id}`",
            printable(&escalation.tool, false),
            self.timeout,
            printable(&escalation.asked_by, false),
            printable(&escalation.reason, false),
        );
        let deadline = Instant::now() + self.timeout;
        loop {
            if escalation.cancel.is_cancelled() {
                // Withdrawn: a later approval finds it expired, and applies to nothing.
                let _ = self.queue.expire(id);
                return Decision::Denied {
                    by: MOAT.to_owned(),
                    reason: format!("the call was cancelled; request `{id}` is withdrawn"),
                };
            }
            match self.queue.get(id) {
                Ok(row) if row.status != Status::Pending => {
                    return QueueEscalator::outcome(escalation, &row)
                }
                Ok(_) => {}
                Err(QueueError::Unknown(_)) => {
                    return Decision::Denied {
                        by: MOAT.to_owned(),
                        reason: format!("approval request `{id}` vanished from the queue"),
                    }
                }
                // A busy or briefly unreadable file: look again until the deadline.
                Err(error) => tracing::debug!("approval queue: {error}"),
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::sleep(POLL_INTERVAL.min(deadline - now));
        }
        match self.queue.expire(id) {
            Ok(row) => QueueEscalator::outcome(escalation, &row),
            Err(_) => Decision::TimedOut { channel: "queue".into() },
        }
    }

    fn channel(&self) -> String {
        "queue".to_owned()
    }
}
