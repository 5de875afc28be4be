//! `sql`: embedded SQLite databases, limited to granted tables and operations by SQLite's
//! authorizer. Each call's statements run in one transaction that the pipeline commits or
//! rolls back; each changing statement runs in a savepoint, its rows are counted per table
//! (update hook), checked against the grant's limits and the gate, and undone at once when
//! refused. The progress handler stops a statement at the call's deadline. Every row a
//! released statement changed is recorded exactly (`undo.rs`), so that each committed effect
//! says how to put its rows back.

use crate::bindings::moat::plugin::sql::{Host, HostConnection, Rows, SqlError, Value};
use crate::effect::Effect;
use crate::exec::CallState;
use crate::plugin::EffectKind;
use crate::units::ByteSize;
use rusqlite::config::DbConfig;
use rusqlite::hooks::{Action, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{params_from_iter, Connection, OpenFlags};
use serde::Deserialize;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use wasmtime::component::Resource;

mod scope;
mod undo;

use scope::{allowed, schema_write, written, Scope};
use undo::{capture_access, Capture};

/// `[tools.NAME.grants.sql.GRANT]`: one SQLite database, the tables and operations the tool
/// may use in it, and how many rows it may change.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlGrant {
    /// The database file, relative to the config file. It must exist: moat never creates one.
    pub path: PathBuf,
    /// The tables the tool may read and change; every other table (and `sqlite_master`) is
    /// refused, in the tool's statements and in the triggers they fire.
    pub tables: Vec<String>,
    /// What the tool may do to those tables: `select`, `insert`, `update`, `delete`. `query`
    /// needs `select`; a changing statement may read the granted tables (in its `WHERE`)
    /// without it.
    #[serde(default = "default_operations")]
    pub operations: Vec<Operation>,
    /// Rows one statement may change, and all statements of one call together.
    #[serde(default = "default_max_rows")]
    pub max_rows: u64,
    /// Rows one call may update or delete in a table, as a percentage of the rows the table
    /// had before the call's first change to it. Inserts are limited by `max_rows` only.
    #[serde(default = "default_max_percent")]
    pub max_percent: f64,
    /// Rows all calls of one task may change together.
    #[serde(default = "default_max_rows_per_task")]
    pub max_rows_per_task: u64,
    /// Rows one query may return; a query returning more is an error, not a truncation.
    #[serde(default = "default_max_result_rows")]
    pub max_result_rows: u64,
    /// Bytes one query may return (text and blobs at their length, other values 8 bytes).
    #[serde(default = "default_max_result_bytes")]
    pub max_result_bytes: ByteSize,
}

fn default_operations() -> Vec<Operation> {
    vec![Operation::Select]
}
fn default_max_rows() -> u64 {
    100
}
fn default_max_percent() -> f64 {
    10.0
}
fn default_max_rows_per_task() -> u64 {
    1_000
}
fn default_max_result_rows() -> u64 {
    1_000
}
fn default_max_result_bytes() -> ByteSize {
    ByteSize::mib(16)
}

/// Something a grant may allow on its tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Select,
    Insert,
    Update,
    Delete,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Select => "select",
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// A `connection` handle held by the guest: only the grant's name. The connection and its
/// transaction belong to the call ([`SqlCall`]), so dropping a handle ends nothing.
pub struct ConnectionHandle {
    grant: String,
}

/// The databases one call has open, by grant name, each inside the call's transaction.
#[derive(Default)]
pub struct SqlCall {
    open: BTreeMap<String, Database>,
}

impl SqlCall {
    /// Commits every open transaction. A database whose transaction SQLite ended early
    /// fails the commit: the call's earlier changes to it are gone.
    pub(crate) fn commit(&mut self) -> Result<(), String> {
        let grants: Vec<String> = self.open.keys().cloned().collect();
        let mut committed = Vec::new();
        for grant in grants {
            let Some(db) = self.open.get(&grant) else { continue };
            let outcome = match &db.lost {
                Some(why) => Err(format!(
                    "the transaction of sql grant `{grant}` ended early ({why}), so none of \
                     the call's changes to it remain"
                )),
                None => internal(&db.conn, &db.watch, |c| c.execute_batch("COMMIT"))
                    .map_err(|e| format!("sql grant `{grant}`: {e}")),
            };
            if let Err(mut problem) = outcome {
                if !committed.is_empty() {
                    problem.push_str(&format!(" (already committed: {})", committed.join(", ")));
                }
                return Err(problem);
            }
            self.open.remove(&grant);
            committed.push(format!("`{grant}`"));
        }
        Ok(())
    }

    /// Rolls back every open transaction and closes the databases.
    pub(crate) fn rollback(&mut self) -> Result<(), String> {
        let mut problems = Vec::new();
        for (grant, db) in std::mem::take(&mut self.open) {
            if db.conn.is_autocommit() {
                continue; // SQLite already rolled it back.
            }
            if let Err(e) = internal(&db.conn, &db.watch, |c| c.execute_batch("ROLLBACK")) {
                problems.push(format!("cannot roll back sql grant `{grant}`: {e}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    fn database(&mut self, grant: &str) -> wasmtime::Result<&mut Database> {
        self.open.get_mut(grant).ok_or_else(|| {
            wasmtime::format_err!("sql grant `{grant}` has a handle but no database")
        })
    }
}

/// Rows changed in one table by one statement, from the update hook.
#[derive(Clone, Copy, Debug, Default)]
struct Change {
    inserted: u64,
    updated: u64,
    deleted: u64,
}

impl Change {
    fn total(&self) -> u64 {
        self.inserted + self.updated + self.deleted
    }

    /// Rows that existed before: the ones `max_percent` is about.
    fn destroyed(&self) -> u64 {
        self.updated + self.deleted
    }

    fn add(&mut self, operation: Operation, rows: u64) {
        match operation {
            Operation::Insert => self.inserted += rows,
            Operation::Update => self.updated += rows,
            Operation::Delete => self.deleted += rows,
            Operation::Select => {}
        }
    }

    /// The operation that changed the most rows, for messages.
    fn verb(&self) -> Operation {
        if self.deleted >= self.updated && self.deleted >= self.inserted {
            Operation::Delete
        } else if self.updated >= self.inserted {
            Operation::Update
        } else {
            Operation::Insert
        }
    }
}

/// What the hooks observe, shared between them and the [`Database`].
#[derive(Default)]
struct Watch {
    /// The host's own statements (transaction control, row counts) pass every check.
    internal: bool,
    /// The first thing the authorizer refused in the statement being prepared, and whether
    /// that refusal is provisional (see [`schema_write`]).
    refusal: Option<(String, bool)>,
    /// The table and operation of the statement itself (not of the triggers it fires).
    target: Option<(String, Operation)>,
    /// Every table the statement may change, triggers included.
    writes: Vec<String>,
    /// Rows changed per table since the statement began.
    changed: BTreeMap<String, Change>,
    /// The progress handler stopped a statement at the call's deadline.
    interrupted: bool,
}

fn lock(watch: &Mutex<Watch>) -> MutexGuard<'_, Watch> {
    watch.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs the host's own statements past the authorizer and the deadline.
fn internal<T>(
    conn: &Connection,
    watch: &Mutex<Watch>,
    work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    lock(watch).internal = true;
    let outcome = work(conn);
    lock(watch).internal = false;
    outcome
}

/// The rows one statement changed in one table, with what the limits need to know.
struct TableChange {
    table: String,
    change: Change,
    /// Rows in the table before the call's first change to it.
    before: u64,
    /// Rows the call updated or deleted in it before this statement.
    earlier: u64,
}

/// A statement that ran inside its savepoint, not yet released.
struct Ran {
    /// Rows the statement itself changed (SQLite's `changes()`).
    rows: u64,
    tables: Vec<TableChange>,
}

/// Why a statement did not run: SQLite's error, the authorizer, or the host's limits.
enum Fail {
    Sqlite(rusqlite::Error),
    Authorizer,
    Refused(SqlError),
}

impl From<rusqlite::Error> for Fail {
    fn from(error: rusqlite::Error) -> Fail {
        Fail::Sqlite(error)
    }
}

/// One granted database, open for one call, inside the call's transaction.
struct Database {
    conn: Connection,
    watch: Arc<Mutex<Watch>>,
    /// Rows per table before the call's first change to it.
    before: HashMap<String, u64>,
    /// Rows updated or deleted per table by the call so far.
    destroyed: HashMap<String, u64>,
    /// Why SQLite ended the transaction early, if it did: nothing more may run.
    lost: Option<String>,
    /// The record of changed rows, when the grant allows changes.
    capture: Option<Capture>,
}

const SAVEPOINT: &str = "moat_statement";

impl Database {
    /// Opens the database of `grant`, installs the hooks and begins the call's transaction.
    fn open(
        name: &str,
        grant: &SqlGrant,
        tool: &str,
        deadline: Instant,
    ) -> Result<Database, SqlError> {
        let writes = grant.operations.iter().any(|op| *op != Operation::Select);
        let mode = match writes {
            true => OpenFlags::SQLITE_OPEN_READ_WRITE,
            false => OpenFlags::SQLITE_OPEN_READ_ONLY,
        };
        let cannot = |e: rusqlite::Error| {
            SqlError::Invalid(format!(
                "sql grant `{name}` of tool `{tool}` ({}) cannot be opened: {e}",
                grant.path.display()
            ))
        };
        let flags = mode | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&grant.path, flags).map_err(cannot)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true).map_err(cannot)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false).map_err(cannot)?;
        // SQLite's own memory: no string or blob (hence no `randomblob(1e9)`) over the
        // result limit, and no attached databases even if the authorizer were bypassed.
        let longest = i32::try_from(grant.max_result_bytes.0).unwrap_or(i32::MAX).max(1024);
        conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, longest).map_err(cannot)?;
        conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0).map_err(cannot)?;
        let wait =
            deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        conn.busy_timeout(wait).map_err(cannot)?;

        let known = conn
            .prepare("SELECT lower(name) FROM main.sqlite_schema WHERE type IN ('table', 'view')")
            .and_then(|mut names| names.query_map([], |row| row.get(0))?.collect())
            .map_err(cannot)?;
        let watch = Arc::new(Mutex::new(Watch::default()));
        let scope = Scope {
            grant: name.to_owned(),
            tables: grant.tables.clone(),
            operations: grant.operations.clone(),
            known,
        };
        let seen = watch.clone();
        conn.authorizer(Some(move |context: AuthContext<'_>| {
            let mut watch = lock(&seen);
            if watch.internal {
                return Authorization::Allow;
            }
            let verdict = match capture_access(&context) {
                Some(true) => return Authorization::Allow,
                Some(false) => Err(format!(
                    "use the temporary schema: it holds only moat's records (sql grant `{}`)",
                    scope.grant
                )),
                None => scope.judge(&context.action),
            };
            match verdict {
                Ok(verdict) => {
                    if let Some((table, operation)) = written(&context.action) {
                        if !watch.writes.iter().any(|t| t == table) {
                            watch.writes.push(table.to_owned());
                        }
                        if context.accessor.is_none() && watch.target.is_none() {
                            watch.target = Some((table.to_owned(), operation));
                        }
                    }
                    verdict
                }
                Err(reason) if schema_write(&context.action) => {
                    watch.refusal.get_or_insert((reason, true));
                    Authorization::Allow
                }
                Err(reason) => {
                    if watch.refusal.as_ref().is_none_or(|(_, provisional)| *provisional) {
                        watch.refusal = Some((reason, false));
                    }
                    Authorization::Deny
                }
            }
        }));
        let seen = watch.clone();
        conn.update_hook(Some(move |action: Action, database: &str, table: &str, _: i64| {
            if database != "main" {
                return; // moat's own records, in the temporary schema
            }
            let operation = match action {
                Action::SQLITE_INSERT => Operation::Insert,
                Action::SQLITE_UPDATE => Operation::Update,
                _ => Operation::Delete,
            };
            lock(&seen).changed.entry(table.to_owned()).or_default().add(operation, 1);
        }));
        let seen = watch.clone();
        conn.progress_handler(
            1_000,
            Some(move || {
                let mut watch = lock(&seen);
                if watch.internal || Instant::now() < deadline {
                    return false;
                }
                watch.interrupted = true;
                true
            }),
        );

        let begin = if writes { "BEGIN IMMEDIATE" } else { "BEGIN" };
        internal(&conn, &watch, |c| c.execute_batch(begin))
            .map_err(|e| SqlError::Invalid(format!("sql grant `{name}` of tool `{tool}`: {e}")))?;
        let capture = writes
            .then(|| {
                internal(&conn, &watch, |c| Ok(Capture::install(c, &grant.path, &grant.tables)))
            })
            .transpose()
            .map_err(cannot)?;
        let (before, destroyed) = (HashMap::new(), HashMap::new());
        Ok(Database { conn, watch, before, destroyed, lost: None, capture })
    }

    /// Runs `work` on a fresh watch, unless the transaction is lost, and explains failures.
    fn guarded<T>(
        &mut self,
        (tool, grant): (&str, &str),
        work: impl FnOnce(&mut Database) -> Result<T, Fail>,
    ) -> Result<T, SqlError> {
        if let Some(why) = &self.lost {
            return Err(SqlError::Invalid(format!(
                "the transaction of sql grant `{grant}` ended early ({why}); no statement can \
                 run in this call"
            )));
        }
        *lock(&self.watch) = Watch::default();
        work(self).map_err(|fail| self.failure(tool, grant, fail))
    }

    /// Runs a changing statement inside a savepoint, which the caller releases or undoes.
    fn run(&mut self, statement: &str, params: Vec<Value>) -> Result<Ran, Fail> {
        let (conn, watch) = (&self.conn, &*self.watch);
        let mut prepared = conn.prepare(statement)?;
        if lock(watch).refusal.is_some() {
            return Err(Fail::Authorizer);
        }
        let writes = std::mem::take(&mut lock(watch).writes);
        for table in writes {
            if let Entry::Vacant(slot) = self.before.entry(table) {
                let quoted = slot.key().replace('"', "\"\"");
                let count = format!("SELECT count(*) FROM main.\"{quoted}\"");
                let rows: i64 = internal(conn, watch, |c| c.query_row(&count, [], |r| r.get(0)))?;
                slot.insert(rows.max(0) as u64);
            }
        }
        internal(conn, watch, |c| c.execute_batch(&format!("SAVEPOINT {SAVEPOINT}")))?;
        lock(watch).changed.clear();
        let rows = match prepared.execute(params_from_iter(params.into_iter().map(to_sql))) {
            Ok(rows) => rows as u64,
            Err(error) => {
                drop(prepared);
                if !self.conn.is_autocommit() {
                    self.undo_statement();
                }
                return Err(Fail::Sqlite(error));
            }
        };
        let (mut changed, target) = {
            let mut watch = lock(watch);
            (std::mem::take(&mut watch.changed), watch.target.take())
        };
        // The update hook misses WITHOUT ROWID tables; the statement's own count does not.
        if let Some((table, operation)) = target {
            let entry = changed.entry(table).or_default();
            if rows > entry.total() {
                entry.add(operation, rows - entry.total());
            }
        }
        let tables = changed
            .into_iter()
            .filter(|(_, change)| change.total() > 0)
            .map(|(table, change)| TableChange {
                before: self.before.get(&table).copied().unwrap_or(0),
                earlier: self.destroyed.get(&table).copied().unwrap_or(0),
                table,
                change,
            })
            .collect();
        Ok(Ran { rows, tables })
    }

    /// How to undo what the statement just released did to each of `tables`, in order.
    fn undo_released(&mut self, tables: &[String]) -> Vec<crate::undo::Undo<Vec<u8>>> {
        let Some(capture) = self.capture.as_mut() else {
            let reason = "the grant allows no changes, so none was recorded";
            let irreversible = || crate::undo::Undo::Irreversible { reason: reason.to_owned() };
            return tables.iter().map(|_| irreversible()).collect();
        };
        lock(&self.watch).internal = true;
        let undos = capture.undos(&self.conn, tables);
        lock(&self.watch).internal = false;
        undos
    }

    /// Keeps the statement's changes in the call's transaction.
    fn release(&mut self, grant: &str, ran: &Ran) -> Result<(), SqlError> {
        let release = format!("RELEASE {SAVEPOINT}");
        if let Err(e) = internal(&self.conn, &self.watch, |c| c.execute_batch(&release)) {
            self.undo_statement();
            return Err(SqlError::Invalid(format!("sql grant `{grant}`: {e}")));
        }
        for change in &ran.tables {
            *self.destroyed.entry(change.table.clone()).or_insert(0) += change.change.destroyed();
        }
        Ok(())
    }

    /// Undoes the statement of the open savepoint; if that fails, the transaction is lost.
    fn undo_statement(&mut self) {
        let undo = format!("ROLLBACK TO {SAVEPOINT}; RELEASE {SAVEPOINT}");
        if let Err(e) = internal(&self.conn, &self.watch, |c| c.execute_batch(&undo)) {
            self.lost.get_or_insert(format!("a refused statement could not be undone: {e}"));
            let _ = internal(&self.conn, &self.watch, |c| c.execute_batch("ROLLBACK"));
        }
    }

    /// Runs a read-only statement and returns its rows, within the grant's limits.
    fn query(
        &self,
        (grant, config): (&str, &SqlGrant),
        statement: &str,
        params: Vec<Value>,
    ) -> Result<Rows, Fail> {
        let mut prepared = self.conn.prepare(statement)?;
        if lock(&self.watch).refusal.is_some() {
            return Err(Fail::Authorizer);
        }
        if !prepared.readonly() {
            return Err(Fail::Refused(SqlError::Invalid(format!(
                "query runs only read-only statements (sql grant `{grant}`); use execute to \
                 change rows"
            ))));
        }
        let columns: Vec<String> = prepared.column_names().into_iter().map(String::from).collect();
        let mut found = prepared.query(params_from_iter(params.into_iter().map(to_sql)))?;
        let (mut rows, mut bytes) = (Vec::new(), 0u64);
        while let Some(row) = found.next()? {
            let limit = config.max_result_rows;
            if rows.len() as u64 >= limit {
                return Err(Fail::Refused(SqlError::LimitExceeded(format!(
                    "query returns more than {limit} rows; limit {limit} rows (max_result_rows \
                     of sql grant `{grant}`)"
                ))));
            }
            let mut values = Vec::with_capacity(columns.len());
            for index in 0..columns.len() {
                let value = from_sql(row.get_ref(index)?);
                bytes += match &value {
                    Value::Text(text) => text.len() as u64,
                    Value::Blob(blob) => blob.len() as u64,
                    _ => 8,
                };
                let limit = config.max_result_bytes;
                if bytes > limit.0 {
                    return Err(Fail::Refused(SqlError::LimitExceeded(format!(
                        "query returns more than {limit} after {} rows; limit {limit} \
                         (max_result_bytes of sql grant `{grant}`)",
                        rows.len()
                    ))));
                }
                values.push(value);
            }
            rows.push(values);
        }
        Ok(Rows { columns, rows })
    }

    /// The error for the guest: the authorizer's refusal, the deadline, or SQLite's message.
    /// Notes when SQLite ended the whole transaction.
    fn failure(&mut self, tool: &str, grant: &str, fail: Fail) -> SqlError {
        let (refusal, interrupted) = {
            let mut watch = lock(&self.watch);
            let refusal = watch.refusal.take().map(|(reason, _)| reason);
            (refusal, std::mem::take(&mut watch.interrupted))
        };
        let error = match (fail, refusal) {
            (Fail::Refused(error), _) => error,
            (Fail::Sqlite(_) | Fail::Authorizer, Some(reason)) => {
                SqlError::Denied(format!("tool `{tool}` may not {reason}"))
            }
            (Fail::Authorizer, None) => SqlError::Denied(format!("tool `{tool}` was refused")),
            (Fail::Sqlite(_), None) if interrupted => SqlError::LimitExceeded(format!(
                "a statement of tool `{tool}` in sql grant `{grant}` ran past the call's \
                 deadline and was stopped"
            )),
            (Fail::Sqlite(rusqlite::Error::ExecuteReturnedResults), None) => SqlError::Invalid(
                format!("the statement returns rows (sql grant `{grant}`); use query"),
            ),
            (Fail::Sqlite(rusqlite::Error::MultipleStatement), None) => SqlError::Invalid(format!(
                "one statement at a time (sql grant `{grant}`): run the others separately"
            )),
            (Fail::Sqlite(e), None) => SqlError::Invalid(format!("sql grant `{grant}`: {e}")),
        };
        if self.lost.is_none() && self.conn.is_autocommit() {
            self.lost = Some(format!("SQLite rolled it back after {error:?}"));
        }
        error
    }
}

fn to_sql(value: Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as Sql;
    match value {
        Value::Null => Sql::Null,
        Value::Integer(i) => Sql::Integer(i),
        Value::Real(f) => Sql::Real(f),
        Value::Text(s) => Sql::Text(s),
        Value::Blob(b) => Sql::Blob(b),
    }
}

fn from_sql(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(bytes) => Value::Text(String::from_utf8_lossy(bytes).into_owned()),
        ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
    }
}

impl Host for CallState {
    fn open(
        &mut self,
        grant: String,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, SqlError>> {
        let tool = &self.caps.tool;
        let Some(config) = self.caps.grants.sql.get(&grant) else {
            return Ok(Err(SqlError::NotGranted(format!(
                "tool `{tool}` has no sql grant `{grant}`"
            ))));
        };
        if !self.caps.sql.open.contains_key(&grant) {
            let db = refuse!(Database::open(&grant, config, tool, self.caps.deadline));
            self.caps.sql.open.insert(grant.clone(), db);
        }
        Ok(self.table.push(ConnectionHandle { grant }).map_err(|_| {
            SqlError::LimitExceeded(format!("too many open handles (limit {})", super::MAX_HANDLES))
        }))
    }
}

impl HostConnection for CallState {
    fn query(
        &mut self,
        handle: Resource<ConnectionHandle>,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<Rows, SqlError>> {
        let (grant, config) = self.sql_grant_of(&handle)?;
        let tool = self.caps.tool.clone();
        if !config.operations.contains(&Operation::Select) {
            return Ok(Err(SqlError::Denied(format!(
                "tool `{tool}` may not select: {}",
                allowed(&grant, &config.operations)
            ))));
        }
        let db = self.caps.sql.database(&grant)?;
        Ok(db.guarded((&tool, &grant), |db| db.query((&grant, &config), &statement, params)))
    }

    fn execute(
        &mut self,
        handle: Resource<ConnectionHandle>,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, SqlError>> {
        let (grant, config) = self.sql_grant_of(&handle)?;
        let tool = self.caps.tool.clone();
        let db = self.caps.sql.database(&grant)?;
        let ran = refuse!(db.guarded((&tool, &grant), |db| db.run(&statement, params)));
        let staged = self.caps.effects.len();
        let verdict = self.sql_admit(&grant, &config, &statement, &ran);
        let db = self.caps.sql.database(&grant)?;
        match verdict {
            Ok(()) => {
                if let Err(refusal) = db.release(&grant, &ran) {
                    self.caps.effects.truncate(staged);
                    return Ok(Err(refusal));
                }
                // One effect per changed table, in the order of `ran.tables`.
                let tables: Vec<String> = ran.tables.iter().map(|t| t.table.clone()).collect();
                let undos = db.undo_released(&tables);
                for (effect, how) in self.caps.effects[staged..].iter_mut().zip(undos) {
                    effect.undo = Some(how);
                }
                Ok(Ok(ran.rows))
            }
            Err(refusal) => {
                db.undo_statement();
                self.caps.effects.truncate(staged);
                Ok(Err(refusal))
            }
        }
    }

    fn drop(&mut self, handle: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl CallState {
    /// The handle's grant name and configuration. A forged or dropped handle traps.
    fn sql_grant_of(
        &self,
        handle: &Resource<ConnectionHandle>,
    ) -> wasmtime::Result<(String, SqlGrant)> {
        let grant = self.table.get(handle)?.grant.clone();
        let Some(config) = self.caps.grants.sql.get(&grant).cloned() else {
            wasmtime::bail!("no sql grant `{grant}` behind a handle");
        };
        Ok((grant, config))
    }

    /// Checks a statement that ran against the limits and the gate, then charges its rows.
    /// On a refusal the caller undoes the statement and drops the effects it staged.
    fn sql_admit(
        &mut self,
        grant: &str,
        config: &SqlGrant,
        statement: &str,
        ran: &Ran,
    ) -> Result<(), SqlError> {
        for t in &ran.tables {
            let (rows, destroyed) = (t.change.total(), t.change.destroyed());
            let in_call = t.earlier + destroyed;
            let over_rows = rows > config.max_rows;
            // Written so that a NaN limit refuses.
            let within = in_call as f64 * 100.0 <= config.max_percent * t.before as f64;
            if over_rows || (destroyed > 0 && !within) {
                return Err(SqlError::LimitExceeded(magnitude(t, config, over_rows)));
            }
        }
        for t in &ran.tables {
            let kind = if t.change.deleted > 0 { EffectKind::Delete } else { EffectKind::Write };
            let detail = serde_json::json!({
                "operation": t.change.verb().name(),
                "rows": t.change.total(),
                "inserted": t.change.inserted,
                "updated": t.change.updated,
                "deleted": t.change.deleted,
                "table_rows": t.before,
                "statement": statement,
            });
            let target = format!("{grant}:{}", t.table);
            let effect = Effect { capability: "sql", kind, target, detail, undo: None };
            self.caps.admit(effect).map_err(SqlError::Denied)?;
        }
        let total: u64 = ran.tables.iter().map(|t| t.change.total()).sum();
        if total == 0 {
            return Ok(());
        }
        let key = format!("sql:{grant}:rows");
        if let Err(over) = self.caps.charge(&key, total, config.max_rows, config.max_rows_per_task)
        {
            let (verb, table) = match ran.tables.first() {
                Some(t) => (t.change.verb().name(), t.table.as_str()),
                None => ("change", "?"),
            };
            return Err(SqlError::LimitExceeded(format!(
                "would {verb} {total} rows in `{table}` (tool `{}`, sql grant `{grant}`); limit \
                 {} rows {} ({} used)",
                self.caps.tool, over.limit, over.scope, over.used
            )));
        }
        Ok(())
    }
}

/// "would delete 5000 of 10000 rows in `orders`; limit 100 rows or 5%".
fn magnitude(t: &TableChange, config: &SqlGrant, over_rows: bool) -> String {
    let (change, table, limit, percent) =
        (&t.change, &t.table, config.max_rows, config.max_percent);
    if over_rows && change.verb() == Operation::Insert {
        return format!("would insert {} rows into `{table}`; limit {limit} rows", change.total());
    }
    let (verb, rows) = match over_rows {
        true => (change.verb(), change.total()),
        false if change.deleted >= change.updated => (Operation::Delete, change.destroyed()),
        false => (Operation::Update, change.destroyed()),
    };
    let in_call = t.earlier + change.destroyed();
    let earlier = match t.earlier {
        0 => String::new(),
        _ => format!(" ({in_call} in this call)"),
    };
    format!(
        "would {} {rows} of {} rows in `{table}`{earlier}; limit {limit} rows or {percent}%",
        verb.name(),
        t.before
    )
}
