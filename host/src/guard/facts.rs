//! `facts`: read-only ground truth for guards. Retrieval, not generation: a guard checks a
//! claim against a database row or a passage of a document, never against another model.
//!
//! Sources are configured under `[facts.NAME]` ([`FactSource`]):
//! - `kind = "sql"`: a SQLite database, opened read-only for each query, behind an
//!   authorizer that allows only reads (no writes, pragmas, attach or transactions), with a
//!   deadline and bounded rows and bytes;
//! - `kind = "documents"`: a directory of text files, split into passages (paragraphs,
//!   capped in size) and indexed with SQLite FTS5 at the first search; searches are ranked
//!   by bm25. The index is built once per host: a document changed later is seen after a
//!   restart.
//!
//! [`Facts::new`] never fails: a source that cannot be opened or indexed makes each query
//! or search of it fail, naming the source and the problem.

use crate::guard::facts_wit::{Host, Passage, Rows, Value};
use crate::guard::GuardState;
use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection, OpenFlags};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// At most this many rows in the result of one query.
pub const MAX_ROWS: usize = 1_000;
/// At most this many bytes of values in the result of one query (also SQLite's length limit).
pub const MAX_BYTES: usize = 4 << 20;
/// At most this many passages from one search.
pub const MAX_PASSAGES: u32 = 50;
/// How long one query or search may run.
pub const DEADLINE: Duration = Duration::from_secs(1);
/// A paragraph longer than this (bytes) is split into several passages.
pub const MAX_PASSAGE: usize = 2_000;
/// Files larger than this are left out of a document index (with a warning).
pub const MAX_DOCUMENT: u64 = 8 << 20;
/// At most this many search terms are used; the rest of the text is ignored.
const MAX_TERMS: usize = 64;

/// `[facts.NAME]`: one source of ground truth.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum FactSource {
    /// A SQLite database, queried read-only (`facts::query`).
    Sql {
        /// The database file; relative to the config file.
        path: PathBuf,
    },
    /// A set of text documents, searched by full text (`facts::search`).
    Documents {
        /// The directory of the documents (searched recursively); relative to the config file.
        dir: PathBuf,
        /// File extensions to index, without the dot (default `["txt", "md"]`).
        #[serde(default = "default_extensions")]
        extensions: Vec<String>,
    },
}

fn default_extensions() -> Vec<String> {
    vec!["txt".into(), "md".into()]
}

impl FactSource {
    /// Resolves relative paths against `base` (the config file's directory).
    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        match self {
            FactSource::Sql { path } => *path = crate::capability::resolve(base, path),
            FactSource::Documents { dir, .. } => *dir = crate::capability::resolve(base, dir),
        }
    }
}

/// One configured source, with the index of a document set once it is built.
enum Source {
    Sql(PathBuf),
    Documents { dir: PathBuf, extensions: Vec<String>, index: Box<Mutex<Option<Connection>>> },
}

/// Every configured source. Shared by all guard checks of a host (`Send + Sync`): databases
/// are opened per query; a document index is one in-memory connection behind a mutex.
#[derive(Default)]
pub struct Facts {
    sources: BTreeMap<String, Source>,
}

impl Facts {
    /// The sources of `[facts]`; nothing is opened yet.
    pub fn new(sources: BTreeMap<String, FactSource>) -> Facts {
        let sources = sources
            .into_iter()
            .map(|(name, source)| {
                let source = match source {
                    FactSource::Sql { path } => Source::Sql(path),
                    FactSource::Documents { dir, extensions } => {
                        let extensions = extensions
                            .iter()
                            .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
                            .collect();
                        Source::Documents { dir, extensions, index: Box::default() }
                    }
                };
                (name, source)
            })
            .collect();
        Facts { sources }
    }

    fn source(&self, name: &str) -> Result<&Source, String> {
        self.sources.get(name).ok_or_else(|| format!("no facts source `{name}`"))
    }

    /// Runs a read-only statement over the database source `name`, within [`DEADLINE`].
    pub fn query(&self, name: &str, statement: &str, params: Vec<Value>) -> Result<Rows, String> {
        self.query_by(name, statement, params, None)
    }

    /// [`Facts::query`], ending by `until` too (the deadline of the check asking), whichever
    /// comes first: the statement, and any wait for a database another process holds locked.
    pub fn query_by(
        &self,
        name: &str,
        statement: &str,
        params: Vec<Value>,
        until: Option<Instant>,
    ) -> Result<Rows, String> {
        match self.source(name)? {
            Source::Sql(path) => query(path, statement, params, Deadline::new(until))
                .map_err(|why| format!("facts source `{name}`: {why}")),
            Source::Documents { .. } => {
                Err(format!("facts source `{name}` is a document set: use search, not query"))
            }
        }
    }

    /// Full-text search over the document source `name`: at most `limit` passages (capped
    /// at [`MAX_PASSAGES`]), best first.
    pub fn search(&self, name: &str, text: &str, limit: u32) -> Result<Vec<Passage>, String> {
        self.search_by(name, text, limit, None)
    }

    /// [`Facts::search`], ending by `until` too, whichever comes first.
    pub fn search_by(
        &self,
        name: &str,
        text: &str,
        limit: u32,
        until: Option<Instant>,
    ) -> Result<Vec<Passage>, String> {
        let deadline = Deadline::new(until);
        let Source::Documents { dir, extensions, index } = self.source(name)? else {
            return Err(format!("facts source `{name}` is a database: use query, not search"));
        };
        let fail = |why: String| format!("facts source `{name}`: {why}");
        let Some(expression) = match_expression(text) else { return Ok(Vec::new()) };
        let limit = limit.min(MAX_PASSAGES);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut index = lock(index);
        if index.is_none() {
            // A failure is not kept: the next search tries again (the directory may appear).
            *index = Some(build_index(dir, extensions).map_err(fail)?);
        }
        let Some(conn) = index.as_ref() else { return Ok(Vec::new()) };
        search(conn, name, &expression, limit, deadline).map_err(fail)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Host for GuardState {
    fn query(
        &mut self,
        source: String,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<Rows, String>> {
        Ok(self.facts.query_by(&source, &statement, params, Some(self.deadline)))
    }

    fn search(
        &mut self,
        source: String,
        text: String,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<Passage>, String>> {
        Ok(self.facts.search_by(&source, &text, limit, Some(self.deadline)))
    }
}

/// When a query or search must end: [`DEADLINE`] after it starts, or the check's own
/// deadline if that comes first.
#[derive(Clone, Copy)]
struct Deadline {
    at: Instant,
    /// How long that is from the start, for messages.
    millis: u128,
}

impl Deadline {
    fn new(check: Option<Instant>) -> Deadline {
        let start = Instant::now();
        let fixed = start + DEADLINE;
        let at = check.map_or(fixed, |check| check.min(fixed));
        Deadline { at, millis: at.saturating_duration_since(start).as_millis() }
    }

    fn left(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

/// Stops statements of `conn` once `deadline` has passed; the flag says whether it did.
fn arm_deadline(conn: &Connection, deadline: Deadline) -> Arc<Mutex<bool>> {
    let deadline = deadline.at;
    let stopped = Arc::new(Mutex::new(false));
    let flag = stopped.clone();
    conn.progress_handler(
        1_000,
        Some(move || {
            let late = Instant::now() >= deadline;
            if late {
                *lock(&flag) = true;
            }
            late
        }),
    );
    stopped
}

/// What a refused action would have done, for the error.
fn describe(action: &AuthAction<'_>) -> String {
    match action {
        AuthAction::Insert { table_name } => format!("insert into `{table_name}`"),
        AuthAction::Update { table_name, .. } => format!("update `{table_name}`"),
        AuthAction::Delete { table_name } => format!("delete from `{table_name}`"),
        AuthAction::Pragma { pragma_name, .. } => format!("run pragma `{pragma_name}`"),
        AuthAction::Attach { .. } | AuthAction::Detach { .. } => {
            "attach or detach a database".into()
        }
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => {
            "begin or end a transaction".into()
        }
        _ => "change the schema or the database".into(),
    }
}

fn query(
    path: &Path,
    statement: &str,
    params: Vec<Value>,
    deadline: Deadline,
) -> Result<Rows, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let setup = |e: rusqlite::Error| format!("cannot set up {}: {e}", path.display());
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true).map_err(setup)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false).map_err(setup)?;
    let longest = i32::try_from(MAX_BYTES).unwrap_or(i32::MAX);
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, longest).map_err(setup)?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0).map_err(setup)?;
    let refused: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let note = refused.clone();
    conn.authorizer(Some(move |context: AuthContext<'_>| match context.action {
        AuthAction::Select
        | AuthAction::Read { .. }
        | AuthAction::Function { .. }
        | AuthAction::Recursive => Authorization::Allow,
        other => {
            lock(&note).get_or_insert_with(|| describe(&other));
            Authorization::Deny
        }
    }));
    // A database another process holds locked is waited for until the deadline, no longer.
    conn.busy_timeout(deadline.left()).map_err(setup)?;
    let stopped = arm_deadline(&conn, deadline);
    let ms = deadline.millis;
    let explain = |e: rusqlite::Error| match (lock(&refused).take(), *lock(&stopped)) {
        (Some(action), _) => format!("the statement would {action}; facts are read-only"),
        (None, true) => format!("the query ran past its deadline of {ms} ms"),
        (None, false) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
            format!(
                "the database is locked by another process past the query's deadline of {ms} ms"
            )
        }
        (None, false) => e.to_string(),
    };

    let mut prepared = conn.prepare(statement).map_err(explain)?;
    if !prepared.readonly() {
        return Err("the statement is not read-only; facts are read-only".into());
    }
    let columns: Vec<String> = prepared.column_names().into_iter().map(str::to_owned).collect();
    let params: Vec<SqlValue> = params.into_iter().map(to_sql).collect();
    let mut results = prepared.query(params_from_iter(params)).map_err(explain)?;
    let (mut rows, mut bytes) = (Vec::new(), 0usize);
    while let Some(row) = results.next().map_err(explain)? {
        if rows.len() == MAX_ROWS {
            return Err(format!("the query returns more than {MAX_ROWS} rows; add a LIMIT"));
        }
        let mut values = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            let value = from_sql(row.get_ref(i).map_err(explain)?);
            bytes += match &value {
                Value::Text(text) => text.len(),
                Value::Blob(blob) => blob.len(),
                _ => 8,
            };
            values.push(value);
        }
        if bytes > MAX_BYTES {
            return Err(format!("the query returns more than {MAX_BYTES} bytes"));
        }
        rows.push(values);
    }
    Ok(Rows { columns, rows })
}

crate::capability::sql::value::sql_value_conversions!(Value);

/// The FTS5 expression for a guard's search text: each word (a run of letters and digits)
/// quoted as a string and joined with OR, so nothing the guard writes is read as FTS5
/// syntax. `None` when the text has no word.
fn match_expression(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .take(MAX_TERMS)
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" OR "))
}

/// The passages of source `name` matching `expression`, best first.
fn search(
    conn: &Connection,
    name: &str,
    expression: &str,
    limit: u32,
    deadline: Deadline,
) -> Result<Vec<Passage>, String> {
    let stopped = arm_deadline(conn, deadline);
    let explain = |e: rusqlite::Error| match *lock(&stopped) {
        true => format!("the search ran past its deadline of {} ms", deadline.millis),
        false => format!("search failed: {e}"),
    };
    let sql = "SELECT id, text, rank FROM passages WHERE passages MATCH ?1 ORDER BY rank LIMIT ?2";
    let found = conn.prepare_cached(sql).and_then(|mut statement| {
        let rows = statement.query_map((expression, limit), |row| {
            let (id, text, rank): (String, String, f64) = (row.get(0)?, row.get(1)?, row.get(2)?);
            Ok(Passage { source: name.to_owned(), id, text, score: -rank })
        })?;
        rows.collect::<Result<Vec<_>, _>>()
    });
    conn.progress_handler(0, None::<fn() -> bool>);
    found.map_err(explain)
}

/// Indexes every document of `dir` in a new in-memory FTS5 table `passages(id, text)`.
fn build_index(dir: &Path, extensions: &[String]) -> Result<Connection, String> {
    let mut files = Vec::new();
    collect(dir, extensions, &mut files)?;
    files.sort();
    let failed = |e: rusqlite::Error| format!("cannot build the index of {}: {e}", dir.display());
    let conn = Connection::open_in_memory().map_err(failed)?;
    conn.execute_batch(
        "CREATE VIRTUAL TABLE passages USING fts5(id UNINDEXED, text, tokenize = 'porter unicode61')",
    )
    .map_err(failed)?;
    let transaction = conn.unchecked_transaction().map_err(failed)?;
    {
        let mut insert = transaction
            .prepare("INSERT INTO passages (id, text) VALUES (?1, ?2)")
            .map_err(failed)?;
        for file in files {
            let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            if size > MAX_DOCUMENT {
                tracing::warn!(
                    "facts: {} is left out of the index: {size} bytes, limit {MAX_DOCUMENT}",
                    file.display()
                );
                continue;
            }
            let bytes =
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let text = String::from_utf8_lossy(&bytes);
            let id = file.strip_prefix(dir).unwrap_or(&file);
            let id: Vec<String> =
                id.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            let id = id.join("/");
            for passage in passages(&text) {
                insert.execute((&id, &passage)).map_err(failed)?;
            }
        }
    }
    transaction.commit().map_err(failed)?;
    Ok(conn)
}

/// The files of `dir` and its subdirectories with one of `extensions`. Symbolic links to
/// files are followed; those to directories are not (no cycles).
fn collect(dir: &Path, extensions: &[String], files: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the directory {}: {e}", dir.display()))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| format!("cannot read the directory {}: {e}", dir.display()))?;
        let path = entry.path();
        let real_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if real_dir {
            collect(&path, extensions, files)?;
            continue;
        }
        let wanted = path
            .extension()
            .is_some_and(|x| extensions.contains(&x.to_string_lossy().to_ascii_lowercase()));
        if wanted && path.is_file() {
            files.push(path);
        }
    }
    Ok(())
}

/// The passages of a document: its paragraphs (separated by blank lines), each cut at
/// whitespace into pieces of at most [`MAX_PASSAGE`] bytes.
fn passages(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut paragraph = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            cut(&std::mem::take(&mut paragraph), &mut out);
        } else {
            if !paragraph.is_empty() {
                paragraph.push('\n');
            }
            paragraph.push_str(line.trim_end());
        }
    }
    cut(&paragraph, &mut out);
    out
}

fn cut(paragraph: &str, out: &mut Vec<String>) {
    let mut rest = paragraph.trim();
    while rest.len() > MAX_PASSAGE {
        let mut end = MAX_PASSAGE;
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let at = rest[..end].rfind(char::is_whitespace).filter(|&i| i > 0).unwrap_or(end);
        out.push(rest[..at].trim_end().to_owned());
        rest = rest[at..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop() -> (tempfile::TempDir, Facts) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT, total REAL, note BLOB);
             INSERT INTO orders VALUES (42, 'open', 19.5, x'0102'), (43, 'shipped', 5, NULL);",
        )
        .unwrap();
        let kb = dir.path().join("kb");
        std::fs::create_dir_all(kb.join("policies")).unwrap();
        std::fs::write(
            kb.join("shipping.md"),
            "# Shipping\n\nOrders ship within two days.\n\nInternational shipping takes \
             a week.\n",
        )
        .unwrap();
        std::fs::write(
            kb.join("policies/refunds.txt"),
            "Refunds are paid within 14 days of the return.\nA refund needs the receipt.\n\n\
             Gift cards cannot be refunded.",
        )
        .unwrap();
        std::fs::write(kb.join("ignored.csv"), "refund,refund,refund").unwrap();
        let mut sources = BTreeMap::new();
        sources.insert("shop".to_owned(), FactSource::Sql { path });
        sources.insert(
            "kb".to_owned(),
            FactSource::Documents { dir: kb, extensions: default_extensions() },
        );
        sources.insert(
            "gone".to_owned(),
            FactSource::Documents { dir: dir.path().join("nowhere"), extensions: vec![] },
        );
        sources.insert("nodb".to_owned(), FactSource::Sql { path: dir.path().join("no.db") });
        (dir, Facts::new(sources))
    }

    #[test]
    fn facts_are_shared_across_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Facts>();
    }

    #[test]
    fn a_query_returns_typed_rows_and_binds_parameters() {
        let (_dir, facts) = shop();
        let rows = facts
            .query(
                "shop",
                "SELECT id, status, total, note FROM orders WHERE id = ?",
                vec![Value::Integer(42)],
            )
            .unwrap();
        assert_eq!(rows.columns, ["id", "status", "total", "note"]);
        assert_eq!(rows.rows.len(), 1);
        assert!(matches!(
            rows.rows[0].as_slice(),
            [Value::Integer(42), Value::Text(s), Value::Real(t), Value::Blob(b)]
                if s == "open" && *t == 19.5 && b == &[1, 2]
        ));
        let none = facts
            .query(
                "shop",
                "SELECT id FROM orders WHERE status = ?",
                vec![Value::Text("lost".into())],
            )
            .unwrap();
        assert!(none.rows.is_empty());
    }

    #[test]
    fn a_query_cannot_change_anything() {
        let (dir, facts) = shop();
        let cases = [
            ("UPDATE orders SET status = 'paid'", "would update `orders`; facts are read-only"),
            ("DELETE FROM orders", "would delete from `orders`; facts are read-only"),
            ("INSERT INTO orders (id) VALUES (1)", "would insert into `orders`"),
            ("DROP TABLE orders", "facts are read-only"),
            ("PRAGMA journal_mode = wal", "would run pragma `journal_mode`"),
            ("ATTACH 'other.db' AS other", "attach"),
            ("BEGIN", "would begin or end a transaction"),
        ];
        for (statement, expected) in cases {
            let error = facts.query("shop", statement, vec![]).unwrap_err();
            assert!(error.starts_with("facts source `shop`: "), "{statement}: {error}");
            assert!(error.contains(expected), "{statement}: {error}");
        }
        let conn = Connection::open(dir.path().join("shop.db")).unwrap();
        let count: i64 = conn.query_row("SELECT count(*) FROM orders", [], |r| r.get(0)).unwrap();
        assert_eq!(count, 2);
    }

    #[test]
    fn a_query_is_bounded_in_rows_and_time() {
        let (_dir, facts) = shop();
        let many = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 5000) \
                    SELECT i FROM n";
        let error = facts.query("shop", many, vec![]).unwrap_err();
        assert_eq!(
            error,
            "facts source `shop`: the query returns more than 1000 rows; add a LIMIT"
        );
        let endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
                       SELECT count(*) FROM n";
        let started = Instant::now();
        let error = facts.query("shop", endless, vec![]).unwrap_err();
        assert!(error.contains("ran past its deadline of 1000 ms"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_query_ends_by_the_deadline_of_the_check_when_the_database_is_locked() {
        let (dir, facts) = shop();
        // Another process (here, another connection) holds the database locked.
        let holder = Connection::open(dir.path().join("shop.db")).unwrap();
        holder.execute_batch("BEGIN EXCLUSIVE; UPDATE orders SET status = status").unwrap();
        let (done, ended) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let check = Some(Instant::now() + Duration::from_millis(200));
            let _ = done.send(facts.query_by("shop", "SELECT count(*) FROM orders", vec![], check));
        });
        // Bounded, so that a hang fails the test: far above the deadline.
        let error =
            ended.recv_timeout(Duration::from_secs(30)).expect("the query ends").unwrap_err();
        assert!(
            error.starts_with(
                "facts source `shop`: the database is locked by another process past the \
                 query's deadline of "
            ),
            "{error}"
        );
        holder.execute_batch("ROLLBACK").unwrap();
    }

    #[test]
    fn a_long_query_ends_by_the_deadline_of_the_check() {
        let (_dir, facts) = shop();
        let (done, ended) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
                           SELECT count(*) FROM n";
            let check = Some(Instant::now() + Duration::from_millis(150));
            let _ = done.send(facts.query_by("shop", endless, vec![], check));
        });
        let error =
            ended.recv_timeout(Duration::from_secs(30)).expect("the query ends").unwrap_err();
        assert!(
            error.starts_with("facts source `shop`: the query ran past its deadline of "),
            "{error}"
        );
        assert!(!error.contains("of 1000 ms"), "the check's deadline came first: {error}");
    }

    #[test]
    fn unknown_missing_and_mismatched_sources_are_errors_naming_them() {
        let (_dir, facts) = shop();
        assert_eq!(facts.query("x", "SELECT 1", vec![]).unwrap_err(), "no facts source `x`");
        assert_eq!(facts.search("x", "refund", 5).unwrap_err(), "no facts source `x`");
        let error = facts.query("nodb", "SELECT 1", vec![]).unwrap_err();
        assert!(error.starts_with("facts source `nodb`: cannot open "), "{error}");
        let error = facts.search("gone", "refund", 5).unwrap_err();
        assert!(error.starts_with("facts source `gone`: cannot read the directory "), "{error}");
        let error = facts.query("kb", "SELECT 1", vec![]).unwrap_err();
        assert_eq!(error, "facts source `kb` is a document set: use search, not query");
        let error = facts.search("shop", "refund", 5).unwrap_err();
        assert_eq!(error, "facts source `shop` is a database: use query, not search");
    }

    #[test]
    fn a_search_ranks_the_right_passage_first() {
        let (_dir, facts) = shop();
        let found = facts.search("kb", "how many days until a refund is paid?", 10).unwrap();
        let first = &found[0];
        assert_eq!(first.source, "kb");
        assert_eq!(first.id, "policies/refunds.txt");
        assert!(first.text.starts_with("Refunds are paid within 14 days"), "{first:?}");
        assert!(found.windows(2).all(|w| w[0].score >= w[1].score), "{found:?}");
        assert!(first.score > 0.0);
        let found = facts.search("kb", "international shipping", 1).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].id.as_str(), found[0].text.as_str()),
            ("shipping.md", "International shipping takes a week.")
        );
        assert!(facts.search("kb", "csv", 10).unwrap().is_empty(), "only txt and md are indexed");
    }

    #[test]
    fn a_search_survives_hostile_text() {
        let (_dir, facts) = shop();
        for text in
            ["\"foo\" OR NEAR(", "*", "refund*", "text:refund", "\"", "AND OR NOT", "a\u{0}b", ""]
        {
            facts.search("kb", text, 5).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        }
        let found = facts.search("kb", "\"gift\" OR NEAR( cards^", 50).unwrap();
        assert_eq!(found[0].text, "Gift cards cannot be refunded.");
        assert!(facts.search("kb", "refund", 0).unwrap().is_empty());
        assert!(facts.search("kb", "*", 5).unwrap().is_empty());
    }

    #[test]
    fn documents_are_split_into_paragraphs_of_bounded_size() {
        assert_eq!(passages("a\nb\n\n  \n\nc\n"), ["a\nb", "c"]);
        let long = "word ".repeat(1_000);
        let pieces = passages(&long);
        assert!(pieces.len() >= 3 && pieces.iter().all(|p| p.len() <= MAX_PASSAGE), "{pieces:?}");
        assert_eq!(pieces.concat().replace(' ', ""), long.replace(' ', ""));
        let unbroken = "é".repeat(3_000);
        assert!(passages(&unbroken).iter().all(|p| p.len() <= MAX_PASSAGE));
    }

    #[test]
    fn config_tables_parse_and_resolve_against_the_config_directory() {
        let text = "[a]\nkind = \"sql\"\npath = \"shop.db\"\n\n\
                    [b]\nkind = \"documents\"\ndir = \"kb\"\n\n\
                    [c]\nkind = \"documents\"\ndir = \"/abs/kb\"\nextensions = [\"rst\"]\n";
        let mut sources: BTreeMap<String, FactSource> = toml::from_str(text).unwrap();
        for source in sources.values_mut() {
            source.resolve_paths(Path::new("/etc/moat"));
        }
        assert_eq!(sources["a"], FactSource::Sql { path: "/etc/moat/shop.db".into() });
        assert_eq!(
            sources["b"],
            FactSource::Documents { dir: "/etc/moat/kb".into(), extensions: default_extensions() }
        );
        assert_eq!(
            sources["c"],
            FactSource::Documents { dir: "/abs/kb".into(), extensions: vec!["rst".into()] }
        );
        for bad in
            ["kind = \"sql\"\npath = \"x\"\ntypo = 1\n", "kind = \"web\"\n", "path = \"x\"\n"]
        {
            assert!(toml::from_str::<FactSource>(bad).is_err(), "{bad}");
        }
    }
}
