//! `sql`: embedded SQLite databases, limited to granted tables and operations by SQLite's
//! authorizer. Each call's statements run in one transaction that the pipeline commits or
//! rolls back; each changing statement runs in a savepoint, every row it changes is counted
//! and checked where SQLite changes it (`count.rs`, the preupdate hook), its effects go to
//! the gate, and it is undone at once when refused. The progress handler stops a statement
//! past a limit or at the call's deadline; every wait for a lock (busy timeout), statements
//! and the commit alike, ends by the deadline. Only SQLite's own functions of their arguments
//! may be called (`functions.rs`). Every row a released statement changed is recorded exactly
//! (`undo.rs`), so that each committed effect says how to put its rows back.

use crate::call::Effect;
use crate::call::EffectKind;
use crate::capability::bindings::moat::plugin::sql::{Host, HostConnection, Rows, SqlError, Value};
use crate::capability::CapsView;
use crate::capability::{Capability, Caps, Context, HasCaps, PerCall};
use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthContext, Authorization, PreUpdateCase};
use rusqlite::limits::Limit;
use rusqlite::{params_from_iter, Connection, OpenFlags};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use wasmtime::component::Linker;
use wasmtime::component::Resource;

mod count;
mod functions;
mod grant;
mod scope;
mod undo;
pub(crate) mod value;

use count::{Before, Change, Count, Limits, Refusal, Shapes};
pub use grant::{Operation, SqlGrant};
use scope::{allowed, schema_write, written, Scope};
use undo::{capture_access, Capture};

/// A `connection` handle held by the guest: only the grant's name. The connection and its
/// transaction belong to the call ([`SqlCall`]), so dropping a handle ends nothing.
pub struct ConnectionHandle {
    grant: String,
}

/// The `sql` capability.
pub(crate) struct Sql;

impl Capability for Sql {
    const INTERFACE: &'static str = "moat:plugin/sql@0.1.0";
    type Grant = BTreeMap<String, SqlGrant>;
    type Call = SqlCall;

    fn add_to_linker<T: HasCaps>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        crate::capability::bindings::moat::plugin::sql::add_to_linker::<T, Caps>(linker, T::caps)
    }
}

/// The databases one call has open, by grant name, each inside the call's transaction.
#[derive(Default)]
pub struct SqlCall {
    open: BTreeMap<String, Database>,
}

impl PerCall for SqlCall {
    /// Commits every open transaction. A database whose transaction SQLite ended early
    /// fails the commit: the call's earlier changes to it are gone.
    fn commit(&mut self, _: &Context<'_>) -> Result<(), String> {
        let grants: Vec<String> = self.open.keys().cloned().collect();
        let mut committed = Vec::new();
        for grant in grants {
            let Some(db) = self.open.get(&grant) else { continue };
            let outcome = match &db.lost {
                Some(why) => Err(format!(
                    "the transaction of sql grant `{grant}` ended early ({why}), so none of \
                     the call's changes to it remain"
                )),
                None => db.commit().map_err(|e| match busy(&e) {
                    true => format!(
                        "sql grant `{grant}`: the database is locked by another connection, and \
                         it stayed locked until the call's deadline ({e})"
                    ),
                    false => format!("sql grant `{grant}`: {e}"),
                }),
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
    fn rollback(&mut self, _: &Context<'_>) -> Result<(), String> {
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
}

impl SqlCall {
    fn database(&mut self, grant: &str) -> wasmtime::Result<&mut Database> {
        self.open.get_mut(grant).ok_or_else(|| {
            wasmtime::format_err!("sql grant `{grant}` has a handle but no database")
        })
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
    /// Every table the statement may change, triggers included.
    writes: Vec<String>,
    /// The tables (lowercase) the statement may delete from, triggers included.
    deletes: Vec<String>,
    /// What the statement running may do, while it runs.
    limits: Option<Limits>,
    /// Its rows changed so far, and the first refusal.
    count: Count,
    /// When the call's wall time ends: statements, and waits for locks, end by then.
    deadline: Option<Instant>,
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
    /// As the database spells it.
    table: String,
    change: Change,
    /// The table before the statement.
    before: Before,
}

/// A statement that ran inside its savepoint, not yet released.
struct Ran {
    /// Rows the statement itself changed (SQLite's `changes()`).
    rows: u64,
    tables: Vec<TableChange>,
    /// What it was held to.
    limits: Limits,
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
    /// Per table (lowercase): its rows before the call's first change to it, and the rows
    /// the call's released statements changed in it.
    tables: HashMap<String, Before>,
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
        // A database another process holds locked is waited for until the deadline only.
        conn.busy_timeout(deadline.saturating_duration_since(Instant::now())).map_err(cannot)?;

        let known = conn
            .prepare("SELECT lower(name) FROM main.sqlite_schema WHERE type IN ('table', 'view')")
            .and_then(|mut names| names.query_map([], |row| row.get(0))?.collect())
            .map_err(cannot)?;
        let shapes = Shapes::read(&conn).map_err(cannot)?;
        let watch = Arc::new(Mutex::new(Watch { deadline: Some(deadline), ..Watch::default() }));
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
                        let table = table.to_ascii_lowercase();
                        if operation == Operation::Delete && !watch.deletes.contains(&table) {
                            watch.deletes.push(table.clone());
                        }
                        if !watch.writes.contains(&table) {
                            watch.writes.push(table);
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
        conn.preupdate_hook(Some(move |_, database: &str, table: &str, case: &PreUpdateCase| {
            let mut watch = lock(&seen);
            if watch.internal || database != "main" {
                return; // the host's own statements, and moat's records in the temp schema
            }
            let Watch { limits, count, .. } = &mut *watch;
            match (limits.as_ref(), shapes.key(table, case)) {
                (Some(limits), Some((operation, key))) => count.row(limits, table, operation, key),
                // A change outside a tool's statement, or one SQLite does not name: refused.
                _ => {
                    let what = format!("change `{table}` outside a statement moat counts");
                    count.refusal.get_or_insert(Refusal::Denied(what));
                }
            }
        }));
        let seen = watch.clone();
        conn.progress_handler(
            1_000,
            Some(move || {
                let mut watch = lock(&seen);
                if watch.internal {
                    return false;
                }
                if watch.deadline.is_some_and(|deadline| Instant::now() < deadline) {
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
        Ok(Database { conn, watch, tables: HashMap::new(), lost: None, capture })
    }

    /// Commits the call's transaction, waiting for readers to let go until the deadline only.
    fn commit(&self) -> rusqlite::Result<()> {
        let deadline = lock(&self.watch).deadline;
        let wait = deadline.map_or(Duration::ZERO, |d| d.saturating_duration_since(Instant::now()));
        self.conn.busy_timeout(wait)?;
        internal(&self.conn, &self.watch, |c| c.execute_batch("COMMIT"))
    }

    /// Runs `work` on a fresh watch, unless the transaction is lost, and explains failures.
    /// `deadline` is the call's, as it is now (a person's decision moves it later).
    fn guarded<T>(
        &mut self,
        (tool, grant, deadline): (&str, &str, Instant),
        work: impl FnOnce(&mut Database) -> Result<T, Fail>,
    ) -> Result<T, SqlError> {
        if let Some(why) = &self.lost {
            return Err(SqlError::Invalid(format!(
                "the transaction of sql grant `{grant}` ended early ({why}); no statement can \
                 run in this call"
            )));
        }
        *lock(&self.watch) = Watch { deadline: Some(deadline), ..Watch::default() };
        let wait = deadline.saturating_duration_since(Instant::now());
        if let Err(e) = self.conn.busy_timeout(wait) {
            return Err(SqlError::Invalid(format!("sql grant `{grant}`: {e}")));
        }
        work(self).map_err(|fail| self.failure(tool, grant, fail))
    }

    /// Runs a changing statement inside a savepoint, which the caller releases or undoes.
    /// Every row it changes is counted and checked as it changes (`count.rs`): the first
    /// row outside the grant or past `limits` stops it, and it is undone.
    fn run(
        &mut self,
        statement: &str,
        params: Vec<Value>,
        mut limits: Limits,
    ) -> Result<Ran, Fail> {
        let (conn, watch) = (&self.conn, &*self.watch);
        let mut prepared = conn.prepare(statement)?;
        if lock(watch).refusal.is_some() {
            return Err(Fail::Authorizer);
        }
        let (writes, deletes) = {
            let mut watch = lock(watch);
            (std::mem::take(&mut watch.writes), std::mem::take(&mut watch.deletes))
        };
        for table in writes {
            if let std::collections::hash_map::Entry::Vacant(entry) = self.tables.entry(table) {
                let quoted = entry.key().replace('"', "\"\"");
                let count = format!("SELECT count(*) FROM main.\"{quoted}\"");
                let rows: i64 = internal(conn, watch, |c| c.query_row(&count, [], |r| r.get(0)))?;
                entry.insert(Before { rows: rows.max(0) as u64, ..Before::default() });
            }
        }
        limits.before = self.tables.clone();
        limits.deletable = deletes;
        internal(conn, watch, |c| c.execute_batch(&format!("SAVEPOINT {SAVEPOINT}")))?;
        {
            let mut watch = lock(watch);
            watch.count = Count::default();
            watch.limits = Some(limits);
        }
        let outcome = prepared.execute(params_from_iter(params.into_iter().map(to_sql)));
        drop(prepared);
        let (count, limits) = {
            let mut watch = lock(watch);
            (std::mem::take(&mut watch.count), watch.limits.take())
        };
        let refused = count.refusal.as_ref().map(|Refusal::Denied(reason)| {
            SqlError::Denied(format!(
                "tool `{}` may not {reason}",
                limits.as_ref().map_or("?", |l| l.tool.as_str())
            ))
        });
        let (rows, limits) = match (outcome, refused, limits) {
            (Ok(rows), None, Some(limits)) => (rows as u64, limits),
            (outcome, refused, _) => {
                if !self.conn.is_autocommit() {
                    self.undo_statement();
                }
                return Err(match (refused, outcome) {
                    (Some(refusal), _) => Fail::Refused(refusal),
                    (None, Err(error)) => Fail::Sqlite(error),
                    (None, Ok(_)) => Fail::Refused(SqlError::Invalid(
                        "a statement ran without its limits".to_owned(),
                    )),
                });
            }
        };
        let tables = count
            .changed
            .into_iter()
            .filter(|(_, (_, change))| change.total() > 0)
            .map(|(lower, (table, change))| TableChange {
                before: self.tables.get(&lower).copied().unwrap_or_default(),
                table,
                change,
            })
            .collect();
        Ok(Ran { rows, tables, limits })
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
            let table = self.tables.entry(change.table.to_ascii_lowercase()).or_default();
            table.destroyed += change.change.destroyed();
            table.inserted += change.change.inserted;
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
            (Fail::Sqlite(e), None) if busy(&e) => SqlError::Invalid(format!(
                "sql grant `{grant}`: the database is locked by another connection, and it stayed \
                 locked until the call's deadline ({e})"
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

crate::capability::sql::value::sql_value_conversions!(Value);

/// Whether SQLite gave up waiting for a lock another connection holds.
fn busy(error: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
    matches!(error.sqlite_error_code(), Some(DatabaseBusy | DatabaseLocked))
}

impl Host for CapsView<'_> {
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
        if !self.caps.calls.sql.open.contains_key(&grant) {
            let db = refuse!(Database::open(&grant, config, tool, self.caps.deadline));
            self.caps.calls.sql.open.insert(grant.clone(), db);
        }
        Ok(self.table.push(ConnectionHandle { grant }).map_err(|_| {
            SqlError::LimitExceeded(format!("too many open handles (limit {})", super::MAX_HANDLES))
        }))
    }
}

impl HostConnection for CapsView<'_> {
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
        let deadline = self.caps.deadline;
        let db = self.caps.calls.sql.database(&grant)?;
        let grant = grant.as_str();
        Ok(db
            .guarded((&tool, grant, deadline), |db| db.query((grant, &config), &statement, params)))
    }

    fn execute(
        &mut self,
        handle: Resource<ConnectionHandle>,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, SqlError>> {
        let (grant, config) = self.sql_grant_of(&handle)?;
        let tool = self.caps.tool.clone();
        let limits = self.sql_limits(&grant, &config);
        let deadline = self.caps.deadline;
        let db = self.caps.calls.sql.database(&grant)?;
        let ran =
            refuse!(db.guarded((&tool, &grant, deadline), |db| db.run(&statement, params, limits)));
        let staged = self.caps.effects.len();
        let verdict = self.sql_admit(&grant, &config, &statement, &ran);
        let db = self.caps.calls.sql.database(&grant)?;
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

impl CapsView<'_> {
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

    /// What a statement of `grant` may do, with what the call and its task used so far.
    fn sql_limits(&self, grant: &str, config: &SqlGrant) -> Limits {
        let key = format!("sql:{grant}:rows");
        let call_used = self.caps.counts.get(&key).copied().unwrap_or(0);
        Limits {
            tool: self.caps.tool.clone(),
            grant: grant.to_owned(),
            tables: config.tables.iter().map(|t| t.to_ascii_lowercase()).collect(),
            operations: config.operations.clone(),
            max_rows: config.max_rows,
            max_percent: config.max_percent,
            max_rows_per_task: config.max_rows_per_task,
            call_used,
            task_used: self.caps.shared.task_total(&self.caps.task, &key),
            before: HashMap::new(),
            deletable: Vec::new(),
        }
    }

    /// Checks a statement that ran against the limits (again: the preupdate hook checked each
    /// row) and the gate, then charges its rows. On a refusal the caller undoes the
    /// statement and drops the effects it staged.
    fn sql_admit(
        &mut self,
        grant: &str,
        config: &SqlGrant,
        statement: &str,
        ran: &Ran,
    ) -> Result<(), SqlError> {
        let total: u64 = ran.tables.iter().map(|t| t.change.total()).sum();
        for t in &ran.tables {
            if let Some(message) = count::over_table(&ran.limits, &t.table, &t.before, &t.change) {
                return Err(SqlError::LimitExceeded(message));
            }
        }
        let changes: Vec<(&str, Change)> =
            ran.tables.iter().map(|t| (t.table.as_str(), t.change)).collect();
        if let Some(message) = count::over_total(&ran.limits, &changes) {
            return Err(SqlError::LimitExceeded(message));
        }
        for t in &ran.tables {
            let kind = if t.change.deleted > 0 { EffectKind::Delete } else { EffectKind::Write };
            let detail = serde_json::json!({
                "operation": t.change.verb().name(),
                "rows": t.change.total(),
                "inserted": t.change.inserted,
                "updated": t.change.updated,
                "deleted": t.change.deleted,
                "table_rows": t.before.rows,
                "statement": statement,
            });
            let target = format!("{grant}:{}", t.table);
            let effect = Effect { capability: "sql", kind, target, detail, undo: None };
            self.caps.admit(effect).map_err(SqlError::Denied)?;
        }
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
