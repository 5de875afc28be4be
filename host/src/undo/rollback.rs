//! Undoing a task: the committed effects' undo records (from the audit log), applied newest
//! first, after checking that every file, row and key still holds what the task left there.
//!
//! [`apply`] changes nothing unless everything can be undone: it refuses irreversible
//! effects (unless told to skip them), loads every record and blob, opens every database in
//! a transaction, then simulates the whole rollback over the current state before touching
//! anything. Rows and keys change inside one transaction per database, committed last;
//! files change on disk, each replaced whole (a new file renamed over it), and are put back
//! if anything fails before the commits.
//!
//! A pending change ([`Undo::Pending`], from a call that never finished) may or may not have
//! happened: each part is undone if what it left is there, left alone if what was there
//! before still is, and a conflict otherwise; the staging file it may have left is removed.

use super::simulate::State;
use crate::undo::{self, BlobRef, RowChange, RowOp, SqlValue, Undo};
use rusqlite::config::DbConfig;
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OpenFlags};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One committed effect of the task, with how to undo it.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Its sequence number in the audit log.
    pub seq: u64,
    pub tool: String,
    pub target: String,
    pub undo: Undo<BlobRef>,
}

/// What a rollback undid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Files put back or removed.
    pub files: usize,
    /// Files moved back.
    pub renames: usize,
    /// Row changes undone.
    pub rows: usize,
    /// Keys put back or deleted.
    pub keys: usize,
    /// The effects undone, newest first.
    pub undone: Vec<Undone>,
    /// The irreversible effects that were skipped, newest first, each as a sentence.
    pub skipped: Vec<String>,
}

/// One effect undone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undone {
    pub seq: u64,
    pub tool: String,
    pub target: String,
    /// What was done to undo it, one line per part ("put back /srv/data/a.txt").
    pub done: Vec<String>,
}

/// "effect 12 (`fs_write` on `data:a.txt`): put back /srv/data/a.txt".
impl std::fmt::Display for Undone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "effect {} (`{}` on `{}`)", self.seq, self.tool, self.target)?;
        match self.done.is_empty() {
            true => write!(f, ": nothing to do"),
            false => write!(f, ": {}", self.done.join("; ")),
        }
    }
}

/// Why a rollback did not happen, or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    /// Some effects cannot be undone, and they were not to be skipped.
    #[error(
        "nothing was changed: {} cannot be undone (skip the irreversible effects to undo \
         the rest): {}",
        match .0.len() { 1 => "1 effect".to_owned(), n => format!("{n} effects") },
        .0.join("; ")
    )]
    Irreversible(Vec<String>),
    /// What an effect left has changed since, or something is in the way of undoing it.
    #[error("nothing was changed: effect {seq} (`{tool}` on `{target}`): {problem}")]
    Conflict { seq: u64, tool: String, target: String, problem: String },
    /// An undo record, or one of its blobs, cannot be used.
    #[error("nothing was changed: effect {seq} (`{tool}` on `{target}`) has an unusable undo record: {problem}")]
    Record { seq: u64, tool: String, target: String, problem: String },
    /// A database or key-value store cannot be opened or locked.
    #[error("nothing was changed: {}: {problem}", path.display())]
    Open { path: PathBuf, problem: String },
    /// Undoing failed midway; what had been undone was put back.
    #[error(
        "nothing was changed: undoing effect {seq} (`{tool}` on `{target}`) failed ({problem}), \
         and what had been undone was put back"
    )]
    Failed { seq: u64, tool: String, target: String, problem: String },
    /// Undoing failed midway, and part of it could not be put back.
    #[error("the rollback stopped halfway: {problem}")]
    Partial { problem: String },
}

/// The effects that cannot be undone, newest first, each as a sentence.
pub fn plan_problems(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .rev()
        .filter_map(|step| {
            let reason = step.undo.irreversible()?;
            Some(format!("{} cannot be undone: {reason}", name(step)))
        })
        .collect()
}

fn name(step: &Step) -> String {
    format!("effect {} (`{}` on `{}`)", step.seq, step.tool, step.target)
}

/// Undoes `steps` (in the order the effects happened), newest first. `blob` reads a blob by
/// its reference. Irreversible effects refuse the whole rollback unless `skip_irreversible`.
/// Every precondition is checked before anything changes; see the module's documentation.
pub fn apply(
    steps: &[Step],
    blob: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
    skip_irreversible: bool,
) -> Result<Report, RollbackError> {
    let problems = plan_problems(steps);
    if !problems.is_empty() && !skip_irreversible {
        return Err(RollbackError::Irreversible(problems));
    }
    let mut report = Report { skipped: problems, ..Report::default() };
    let mut stores = Stores::default();
    let mut parts: Vec<(usize, &Step, Action<'_>, bool)> = Vec::new();
    for step in steps.iter().rev() {
        if step.undo.irreversible().is_some() {
            continue; // skipped whole, as reported
        }
        report.undone.push(Undone {
            seq: step.seq,
            tool: step.tool.clone(),
            target: step.target.clone(),
            done: Vec::new(),
        });
        let at = report.undone.len() - 1;
        let pending = step.undo.pending();
        if let Some(Some(scratch)) = pending {
            parts.push((at, step, Action::Scratch { path: scratch }, true));
        }
        for undo in step.undo.flatten().into_iter().rev() {
            let action = load(undo, blob, &mut stores).map_err(|problem| {
                let (seq, tool, target) = (step.seq, step.tool.clone(), step.target.clone());
                RollbackError::Record { seq, tool, target, problem }
            })?;
            parts.extend(action.map(|action| (at, step, action, pending.is_some())));
        }
    }
    stores.open()?;
    let mut state = State::default();
    let mut to_run = Vec::new();
    for (_, step, action, pending) in &parts {
        let runs = state.check(action, *pending, &mut stores).map_err(|problem| {
            let (seq, tool, target) = (step.seq, step.tool.clone(), step.target.clone());
            RollbackError::Conflict { seq, tool, target, problem }
        })?;
        to_run.push(runs);
    }
    let mut journal = Vec::new();
    let parts = parts.iter().zip(to_run).filter(|(_, runs)| *runs).map(|(part, _)| part);
    for (at, step, action, _) in parts {
        if let Err(problem) = run(action, &mut stores, &mut journal) {
            let (seq, tool, target) = (step.seq, step.tool.clone(), step.target.clone());
            return Err(match put_back(journal) {
                Ok(()) => RollbackError::Failed { seq, tool, target, problem },
                Err(left) => RollbackError::Partial {
                    problem: format!(
                        "undoing effect {seq} (`{tool}` on `{target}`) failed ({problem}), and \
                         these files could not be put back: {left}; no row or key was changed"
                    ),
                },
            });
        }
        report.count(*at, action);
    }
    stores.commit(journal)?;
    Ok(report)
}

impl Report {
    fn count(&mut self, at: usize, action: &Action<'_>) {
        let what = match action {
            Action::File { path, before: Some(_), .. } => {
                self.files += 1;
                format!("put back {}", path.display())
            }
            Action::File { path, before: None, .. } => {
                self.files += 1;
                format!("removed {}", path.display())
            }
            Action::Rename { from, to } => {
                self.renames += 1;
                format!("moved {} back to {}", to.display(), from.display())
            }
            Action::Rows { table, rows, .. } => {
                self.rows += rows.len();
                format!("undid {} row change(s) in `{table}`", rows.len())
            }
            Action::Key { namespace, key, .. } => {
                self.keys += 1;
                format!("put back key `{key}` of `{namespace}`")
            }
            Action::Scratch { path } => format!("removed the staging file {}", path.display()),
        };
        if let Some(undone) = self.undone.get_mut(at) {
            undone.done.push(what);
        }
    }
}

/// One part of an undo, loaded: blobs read and checked, rows decoded.
pub(super) enum Action<'a> {
    File {
        path: &'a Path,
        before: Option<(Vec<u8>, &'a str)>,
        after: Option<&'a str>,
    },
    Rename {
        from: &'a Path,
        to: &'a Path,
    },
    Rows {
        db: usize,
        table: &'a str,
        columns: &'a [String],
        rows: Vec<Change>,
    },
    Key {
        store: usize,
        namespace: &'a str,
        key: &'a str,
        before: Option<(Vec<u8>, &'a str)>,
        after: Option<&'a str>,
    },
    /// A staging file moat may have left: removed if it is there.
    Scratch {
        path: &'a Path,
    },
}

/// A row change with its values ready to compare and bind.
pub(super) struct Change {
    pub(super) op: RowOp,
    pub(super) rowid_before: i64,
    pub(super) rowid_after: i64,
    pub(super) before: Vec<Value>,
    pub(super) after: Vec<Value>,
}

/// Loads one part; `None` for an irreversible part (skipped).
fn load<'a>(
    undo: &'a Undo<BlobRef>,
    blob: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
    stores: &mut Stores,
) -> Result<Option<Action<'a>>, String> {
    let read = |reference: &'a BlobRef| -> Result<(Vec<u8>, &'a str), String> {
        let bytes = blob(reference).map_err(|e| format!("blob {reference}: {e}"))?;
        match undo::hash(&bytes) == *reference {
            true => Ok((bytes, reference.as_str())),
            false => Err(format!("blob {reference} does not hold what its hash says")),
        }
    };
    Ok(Some(match undo {
        Undo::File { path, before, after } => Action::File {
            path,
            before: before.as_ref().map(read).transpose()?,
            after: after.as_deref(),
        },
        Undo::Rename { from, to } => Action::Rename { from, to },
        Undo::Rows { database, table, columns, rows } => {
            let (json, _) = read(rows)?;
            let changes: Vec<RowChange> = serde_json::from_slice(&json)
                .map_err(|e| format!("the row changes of `{table}`: {e}"))?;
            let rows = changes
                .iter()
                .map(|change| decode(change, columns.len()))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("a row change of `{table}`: {e}"))?;
            Action::Rows { db: stores.database(database), table, columns, rows }
        }
        Undo::Key { store, namespace, key, before, after } => Action::Key {
            store: stores.kv(store),
            namespace,
            key,
            before: before.as_ref().map(read).transpose()?,
            after: after.as_deref(),
        },
        Undo::Irreversible { .. } | Undo::Parts { .. } | Undo::Pending { .. } => return Ok(None),
    }))
}

fn decode(change: &RowChange, width: usize) -> Result<Change, String> {
    let image = |values: &Option<Vec<SqlValue>>| -> Result<Vec<Value>, String> {
        let values = values.as_ref().ok_or("an image is missing")?;
        if values.len() != width {
            return Err(format!("{} values for {width} columns", values.len()));
        }
        values.iter().map(SqlValue::to_sqlite).collect()
    };
    let rowid = |rowid: Option<i64>| rowid.ok_or("a rowid is missing");
    Ok(match change.op {
        RowOp::Insert => Change {
            op: RowOp::Insert,
            rowid_before: 0,
            rowid_after: rowid(change.rowid_after)?,
            before: Vec::new(),
            after: image(&change.after)?,
        },
        RowOp::Update => Change {
            op: RowOp::Update,
            rowid_before: rowid(change.rowid_before)?,
            rowid_after: rowid(change.rowid_after)?,
            before: image(&change.before)?,
            after: image(&change.after)?,
        },
        RowOp::Delete => Change {
            op: RowOp::Delete,
            rowid_before: rowid(change.rowid_before)?,
            rowid_after: 0,
            before: image(&change.before)?,
            after: Vec::new(),
        },
    })
}

/// The databases and key-value stores the rollback changes, each in a transaction.
#[derive(Default)]
pub(super) struct Stores {
    pub(super) databases: Vec<Database>,
    pub(super) kv: Vec<Database>,
}

pub(super) struct Database {
    pub(super) path: PathBuf,
    pub(super) conn: Option<Connection>,
    /// Per table (lowercase): the name that reaches the rowid, and the columns recorded.
    pub(super) tables: HashMap<String, (&'static str, Vec<String>)>,
}

impl Stores {
    fn database(&mut self, path: &Path) -> usize {
        index(&mut self.databases, path)
    }

    fn kv(&mut self, path: &Path) -> usize {
        index(&mut self.kv, path)
    }

    /// Opens every store and begins its transaction, with triggers off: every row a
    /// trigger changed was recorded, and is undone on its own.
    fn open(&mut self) -> Result<(), RollbackError> {
        for db in self.databases.iter_mut().chain(&mut self.kv) {
            let problem = |e: rusqlite::Error| RollbackError::Open {
                path: db.path.clone(),
                problem: e.to_string(),
            };
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn = Connection::open_with_flags(&db.path, flags).map_err(problem)?;
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false).map_err(problem)?;
            conn.busy_timeout(Duration::from_secs(5)).map_err(problem)?;
            conn.execute_batch("PRAGMA foreign_keys = OFF; BEGIN IMMEDIATE").map_err(problem)?;
            db.conn = Some(conn);
        }
        Ok(())
    }

    /// Commits every transaction: the rollback is final. A commit that fails puts the
    /// files back; the transactions not yet committed roll back as they close.
    fn commit(&mut self, journal: Vec<Done>) -> Result<(), RollbackError> {
        let mut committed: Vec<String> = Vec::new();
        for db in self.databases.iter_mut().chain(&mut self.kv) {
            let Some(conn) = db.conn.take() else { continue };
            if let Err(e) = conn.execute_batch("COMMIT") {
                let files = match put_back(journal) {
                    Ok(()) => "the files were put back".to_owned(),
                    Err(left) => format!("these files could not be put back: {left}"),
                };
                let done = match committed.is_empty() {
                    true => "nothing was committed".to_owned(),
                    false => format!("already committed: {}", committed.join(", ")),
                };
                let path = db.path.display();
                let problem = format!("{path} could not be committed ({e}); {done}; {files}");
                return Err(RollbackError::Partial { problem });
            }
            committed.push(db.path.display().to_string());
        }
        Ok(())
    }

    pub(super) fn conn(list: &[Database], at: usize) -> Result<&Connection, String> {
        list.get(at).and_then(|db| db.conn.as_ref()).ok_or_else(|| "not open".to_owned())
    }

    /// The name reaching the rowid of `table`, after checking its recorded columns still
    /// exist and match those of the table's earlier records.
    pub(super) fn table(
        &mut self,
        at: usize,
        table: &str,
        columns: &[String],
    ) -> Result<&'static str, String> {
        let db = self.databases.get_mut(at).ok_or("no such database")?;
        let conn = db.conn.as_ref().ok_or("not open")?;
        let key = table.to_lowercase();
        if let Some((rowid, known)) = db.tables.get(&key) {
            return match known == columns {
                true => Ok(rowid),
                false => Err(format!("the columns of `{table}` differ between its records")),
            };
        }
        let mut info = conn
            .prepare("SELECT name FROM pragma_table_xinfo(?1, 'main')")
            .map_err(|e| e.to_string())?;
        let names: Vec<String> = info
            .query_map([table], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| e.to_string())?;
        if names.is_empty() {
            return Err(format!("table `{table}` is gone from {}", db.path.display()));
        }
        let has = |name: &str| names.iter().any(|n| n.eq_ignore_ascii_case(name));
        if let Some(missing) = columns.iter().find(|c| !has(c)) {
            return Err(format!("column `{missing}` is gone from `{table}`"));
        }
        let rowid = ["rowid", "_rowid_", "oid"]
            .into_iter()
            .find(|alias| !has(alias))
            .ok_or_else(|| format!("the columns of `{table}` hide its rowid"))?;
        let reaches = format!("SELECT {rowid} FROM main.{} LIMIT 0", quote(table));
        conn.prepare(&reaches).map_err(|_| format!("`{table}` has no rowid (WITHOUT ROWID)"))?;
        db.tables.insert(key, (rowid, columns.to_vec()));
        Ok(rowid)
    }
}

fn index(list: &mut Vec<Database>, path: &Path) -> usize {
    match list.iter().position(|db| db.path == path) {
        Some(at) => at,
        None => {
            let tables = HashMap::new();
            list.push(Database { path: path.to_owned(), conn: None, tables });
            list.len() - 1
        }
    }
}

pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A file change made by the rollback, to put back if it cannot finish.
enum Done {
    /// `path` held `previous` (`None`: nothing).
    Wrote { path: PathBuf, previous: Option<Vec<u8>> },
    /// A file was moved from `from` to `to`.
    Moved { from: PathBuf, to: PathBuf },
}

/// Undoes one part: rows and keys in their transaction, files on disk (noted in `journal`).
fn run(action: &Action<'_>, stores: &mut Stores, journal: &mut Vec<Done>) -> Result<(), String> {
    let io = |path: &Path, e: std::io::Error| format!("{}: {e}", path.display());
    match action {
        Action::File { path, before, .. } => {
            let previous = match std::fs::read(path) {
                Ok(bytes) => Some(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(io(path, e)),
            };
            match before {
                Some((bytes, _)) => {
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
                    }
                    journal.push(Done::Wrote { path: path.to_path_buf(), previous });
                    write_whole(path, bytes).map_err(|e| io(path, e))?;
                }
                None => {
                    if previous.is_some() {
                        std::fs::remove_file(path).map_err(|e| io(path, e))?;
                        journal.push(Done::Wrote { path: path.to_path_buf(), previous });
                    }
                }
            }
        }
        Action::Rename { from, to } => {
            if let Some(parent) = from.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
            }
            std::fs::rename(to, from).map_err(|e| io(to, e))?;
            journal.push(Done::Moved { from: to.to_path_buf(), to: from.to_path_buf() });
        }
        Action::Rows { db, table, columns, rows } => {
            let rowid = stores.table(*db, table, columns)?;
            let conn = Stores::conn(&stores.databases, *db)?;
            let names: Vec<String> = columns.iter().map(|c| quote(c)).collect();
            let t = quote(table);
            let set: String = names.iter().map(|n| format!(", {n} = ?")).collect();
            let update = format!("UPDATE main.{t} SET {rowid} = ?{set} WHERE {rowid} = ?");
            let marks: String = names.iter().map(|_| ", ?").collect();
            let list: String = names.iter().map(|n| format!(", {n}")).collect();
            let insert = format!("INSERT INTO main.{t} ({rowid}{list}) VALUES (?{marks})");
            let delete = format!("DELETE FROM main.{t} WHERE {rowid} = ?");
            for change in rows.iter().rev() {
                let done = match change.op {
                    RowOp::Insert => conn.execute(&delete, [change.rowid_after]),
                    RowOp::Update => {
                        let values = std::iter::once(Value::Integer(change.rowid_before))
                            .chain(change.before.iter().cloned())
                            .chain(std::iter::once(Value::Integer(change.rowid_after)));
                        conn.execute(&update, params_from_iter(values))
                    }
                    RowOp::Delete => {
                        let values = std::iter::once(Value::Integer(change.rowid_before))
                            .chain(change.before.iter().cloned());
                        conn.execute(&insert, params_from_iter(values))
                    }
                };
                match done {
                    Ok(1) => {}
                    Ok(n) => return Err(format!("`{table}`: {n} rows changed instead of 1")),
                    Err(e) => return Err(format!("`{table}`: {e}")),
                }
            }
        }
        Action::Scratch { path } => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(path, e)),
            _ => {}
        },
        Action::Key { store, namespace, key, before, .. } => {
            let conn = Stores::conn(&stores.kv, *store)?;
            let done = match before {
                Some((value, _)) => conn.execute(
                    "INSERT INTO kv (namespace, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
                    rusqlite::params![namespace, key, value],
                ),
                None => conn.execute(
                    "DELETE FROM kv WHERE namespace = ?1 AND key = ?2",
                    rusqlite::params![namespace, key],
                ),
            };
            done.map_err(|e| format!("key `{key}`: {e}"))?;
        }
    }
    Ok(())
}

/// Puts back the files the rollback changed, newest first; says which could not be.
fn put_back(journal: Vec<Done>) -> Result<(), String> {
    let mut left = Vec::new();
    for done in journal.into_iter().rev() {
        let (path, outcome) = match done {
            Done::Wrote { path, previous: Some(bytes) } => {
                let outcome = write_whole(&path, &bytes);
                (path, outcome)
            }
            Done::Wrote { path, previous: None } => {
                let outcome = std::fs::remove_file(&path);
                (path, outcome)
            }
            Done::Moved { from, to } => {
                let outcome = std::fs::rename(&to, &from);
                (to, outcome)
            }
        };
        if let Err(e) = outcome {
            left.push(format!("{} ({e})", path.display()));
        }
    }
    match left.is_empty() {
        true => Ok(()),
        false => Err(left.join(", ")),
    }
}

/// Replaces `path` with `bytes` whole: written to a new staging file beside it (with the
/// permissions of the file it replaces), synced, renamed over it. A crash leaves the old
/// content or the new, and at worst a staging file.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let scratch = path.with_file_name(crate::undo::scratch_name());
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&scratch)?;
        if let Ok(meta) = std::fs::metadata(path) {
            file.set_permissions(meta.permissions())?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&scratch, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&scratch);
    }
    written
}
