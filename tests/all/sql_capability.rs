//! The `sql` capability, driven by the `effects` test plugin (`sql_execute`, `sql_query`,
//! `sql_script`) against SQLite files made here: scope (tables, operations, no schema or
//! pragma or attach), row limits per statement, call and task, the gate, and the call's
//! transaction, which commits only when the whole call succeeds.

use crate::support::built;
use moat::error::ToolErrorKind;
use moat::{CallError, CallRequest, Config, Effect, EffectKind, Gate, Host, Verdict};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// A directory holding `shop.db`: `orders` with `rows` rows (id 1..=rows) and `customers`
/// with three.
pub(crate) fn shop(rows: i64) -> TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = Connection::open(dir.path().join("shop.db")).expect("the database opens");
    db.execute_batch(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT, price REAL, note BLOB);
         CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO customers (name) VALUES ('ada'), ('grace'), ('edsger');
         BEGIN;",
    )
    .expect("the schema is created");
    let mut insert = db
        .prepare("INSERT INTO orders (id, item, price) VALUES (?1, 'item ' || ?1, ?1 * 1.5)")
        .expect("the insert is prepared");
    for id in 1..=rows {
        insert.execute([id]).expect("a row is inserted");
    }
    drop(insert);
    db.execute_batch("COMMIT").expect("the rows are committed");
    dir
}

/// `moat.toml` in `dir` with `grants` (TOML text; relative paths are relative to `dir`), over
/// the test plugins, behind `gate`.
pub(crate) fn host_with(dir: &Path, grants: &str, gate: Arc<dyn Gate>) -> Host {
    let path = dir.join("moat.toml");
    std::fs::write(&path, grants).expect("moat.toml is written");
    let mut config = Config::load(&path).expect("moat.toml is valid");
    crate::support::without_controls(&mut config);
    config.confidence.high = 0.0; // not about confidence: deleting tools run without one
    config.plugins.tools = vec![built("tests")];
    let (host, errors) = Host::with_gate(config, gate).expect("the engine starts");
    assert!(errors.is_empty(), "unexpected load errors: {errors:?}");
    host
}

pub(crate) fn host(dir: &Path, grants: &str) -> Host {
    host_with(dir, grants, Arc::new(moat::call::AllowAll))
}

/// A grant `shop` on `shop.db` for `tool`, with extra keys.
pub(crate) fn grant(tool: &str, keys: &str) -> String {
    format!("[tools.{tool}.grants.sql.shop]\npath = \"shop.db\"\n{keys}\n")
}

pub(crate) fn count(dir: &Path, table: &str) -> i64 {
    let db = Connection::open(dir.join("shop.db")).expect("the database opens");
    db.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get(0))
        .expect("the table is counted")
}

pub(crate) fn args(statement: &str) -> String {
    serde_json::json!({ "grant": "shop", "statement": statement }).to_string()
}

pub(crate) fn script(statements: &[&str]) -> String {
    serde_json::json!({ "grant": "shop", "statements": statements }).to_string()
}

/// The message of a capability error (the tool's `failed`, the Debug form of the WIT error).
pub(crate) fn failure(result: Result<moat::CallResponse, CallError>) -> String {
    match result {
        Err(CallError::Tool { kind: ToolErrorKind::Failed, message, .. }) => message,
        other => panic!("expected the tool to fail with a capability error, got {other:?}"),
    }
}

#[test]
fn a_delete_of_most_of_a_table_is_refused_with_the_numbers_and_nothing_is_deleted() {
    let dir = shop(10_000);
    let keys = "tables = [\"orders\"]\noperations = [\"select\", \"delete\"]\n\
                max_rows = 100\nmax_percent = 5.0";
    let host = host(dir.path(), &grant("sql_execute", keys));
    let message = failure(host.call("sql_execute", &args("DELETE FROM orders WHERE id > 5000")));
    assert_eq!(
        message,
        "LimitExceeded(\"would delete 5000 of 10000 rows in `orders`; limit 100 rows or 5%\")"
    );
    assert_eq!(count(dir.path(), "orders"), 10_000);
}

#[test]
fn a_delete_without_where_is_counted_row_by_row() {
    // SQLite's truncate optimization would empty the table without reporting the rows.
    let dir = shop(300);
    let keys =
        "tables = [\"orders\"]\noperations = [\"delete\"]\nmax_rows = 1000\nmax_percent = 50.0";
    let host = host(dir.path(), &grant("sql_execute", keys));
    let message = failure(host.call("sql_execute", &args("DELETE FROM orders")));
    assert_eq!(
        message,
        "LimitExceeded(\"would delete 300 of 300 rows in `orders`; limit 1000 rows or 50%\")"
    );
    assert_eq!(count(dir.path(), "orders"), 300);
}

#[test]
fn a_delete_within_the_limits_is_committed_and_reported_as_an_effect() {
    let dir = shop(1_000);
    let keys = "tables = [\"orders\"]\noperations = [\"delete\"]";
    let host = host(dir.path(), &grant("sql_execute", keys));
    let statement = serde_json::json!({
        "grant": "shop", "statement": "DELETE FROM orders WHERE id <= ?1", "params": [40]
    });
    let response = host.call("sql_execute", &statement.to_string()).expect("the delete runs");
    assert_eq!(response.output, "40");
    assert_eq!(count(dir.path(), "orders"), 960);
    let [effect] = response.effects.as_slice() else {
        panic!("expected one effect, got {:?}", response.effects)
    };
    assert_eq!((effect.capability, effect.kind), ("sql", EffectKind::Delete));
    assert_eq!(effect.target, "shop:orders");
    assert_eq!(effect.detail["rows"], 40);
    assert_eq!(effect.detail["table_rows"], 1_000);
}

#[test]
fn inserts_and_updates_in_one_call_are_committed_together() {
    let dir = shop(100);
    let keys = "tables = [\"orders\"]\noperations = [\"select\", \"insert\", \"update\"]";
    let host = host(dir.path(), &grant("sql_script", keys));
    let statements = [
        "INSERT INTO orders (id, item, price) VALUES (101, 'new', 1.0), (102, 'new', 2.0)",
        "UPDATE orders SET price = price * 2 WHERE id IN (1, 2, 101)",
    ];
    let response = host.call("sql_script", &script(&statements)).expect("the script runs");
    assert_eq!(response.output, "[2,3]");
    assert_eq!(count(dir.path(), "orders"), 102);
    let db = Connection::open(dir.path().join("shop.db")).expect("the database opens");
    let price: f64 = db
        .query_row("SELECT price FROM orders WHERE id = 101", [], |row| row.get(0))
        .expect("the row is there");
    assert_eq!(price, 2.0);
    let kinds: Vec<EffectKind> = response.effects.iter().map(|effect| effect.kind).collect();
    assert_eq!(kinds, [EffectKind::Write, EffectKind::Write]);
}

#[test]
fn rows_changed_add_up_over_a_call_and_a_refusal_undoes_the_whole_call() {
    let dir = shop(10_000);
    let keys = "tables = [\"orders\"]\noperations = [\"delete\"]\nmax_rows = 100";
    let host = host(dir.path(), &grant("sql_script", keys));
    let statements =
        ["DELETE FROM orders WHERE id <= 60", "DELETE FROM orders WHERE id BETWEEN 61 AND 120"];
    let message = failure(host.call("sql_script", &script(&statements)));
    assert_eq!(
        message,
        "LimitExceeded(\"would delete 60 rows in `orders` (tool `sql_script`, sql grant `shop`); \
         limit 100 rows per call (60 used)\")"
    );
    assert_eq!(count(dir.path(), "orders"), 10_000, "the first delete is rolled back too");
}

#[test]
fn the_percentage_counts_every_statement_of_the_call_against_the_size_before_it() {
    let dir = shop(1_000);
    let keys = "tables = [\"orders\"]\noperations = [\"update\"]\nmax_percent = 10.0";
    let host = host(dir.path(), &grant("sql_script", keys));
    let statements = [
        "UPDATE orders SET price = 0 WHERE id <= 60",
        "UPDATE orders SET price = 0 WHERE id BETWEEN 61 AND 110",
    ];
    let message = failure(host.call("sql_script", &script(&statements)));
    assert_eq!(
        message,
        "LimitExceeded(\"would update 50 of 1000 rows in `orders` (110 in this call); \
         limit 100 rows or 10%\")"
    );
    let db = rusqlite::Connection::open(dir.path().join("shop.db")).unwrap();
    let zeroed: i64 =
        db.query_row("SELECT count(*) FROM orders WHERE price = 0", [], |r| r.get(0)).unwrap();
    assert_eq!(zeroed, 0, "the first update is rolled back too");
}

#[test]
fn an_update_of_too_many_rows_is_refused_and_changes_nothing() {
    let dir = shop(10_000);
    let keys =
        "tables = [\"orders\"]\noperations = [\"update\"]\nmax_rows = 100\nmax_percent = 50.0";
    let host = host(dir.path(), &grant("sql_execute", keys));
    let message =
        failure(host.call("sql_execute", &args("UPDATE orders SET price = 0 WHERE id <= 500")));
    assert_eq!(
        message,
        "LimitExceeded(\"would update 500 of 10000 rows in `orders`; limit 100 rows or 50%\")"
    );
    let db = rusqlite::Connection::open(dir.path().join("shop.db")).unwrap();
    let zeroed: i64 =
        db.query_row("SELECT count(*) FROM orders WHERE price = 0", [], |r| r.get(0)).unwrap();
    assert_eq!(zeroed, 0);
}

#[test]
fn an_insert_is_limited_by_rows_and_by_max_percent_of_the_table_or_of_max_rows() {
    let dir = shop(10);
    let keys =
        "tables = [\"orders\"]\noperations = [\"insert\"]\nmax_rows = 5\nmax_percent = 100.0";
    let first = host(dir.path(), &grant("sql_execute", keys));
    let few = "INSERT INTO orders (item) VALUES ('a'), ('b'), ('c')";
    assert_eq!(first.call("sql_execute", &args(few)).expect("3 inserts fit").output, "3");
    let many = "INSERT INTO orders (item) SELECT item FROM orders";
    assert_eq!(
        failure(first.call("sql_execute", &args(many))),
        "LimitExceeded(\"would insert 13 rows into `orders`; limit 5 rows\")"
    );
    assert_eq!(count(dir.path(), "orders"), 13);
    drop(first); // one audit log, one writer
                 // 10% of a table of 13 rows (it has more than max_rows) is 1.3 rows: one insert, not two.
    let keys = "tables = [\"orders\"]\noperations = [\"insert\"]\nmax_rows = 5\nmax_percent = 10.0";
    let host = host(dir.path(), &grant("sql_execute", keys));
    let two = "INSERT INTO orders (item) VALUES ('d'), ('e')";
    assert_eq!(
        failure(host.call("sql_execute", &args(two))),
        "LimitExceeded(\"would insert 2 rows into `orders` of 13 rows; limit 5 rows or 10% of 13 \
         rows\")"
    );
    let one = "INSERT INTO orders (item) VALUES ('d')";
    assert_eq!(host.call("sql_execute", &args(one)).expect("1 insert fits").output, "1");
}

#[test]
fn the_per_task_limit_adds_up_over_the_calls_of_a_task() {
    let dir = shop(1_000);
    let keys = "tables = [\"orders\"]\noperations = [\"delete\"]\nmax_rows = 10\n\
                max_rows_per_task = 15";
    let host = host(dir.path(), &grant("sql_execute", keys));
    let delete = |from: i64, task: &str| {
        let statement = format!("DELETE FROM orders WHERE id BETWEEN {from} AND {}", from + 7);
        let mut request = CallRequest::new("sql_execute", &args(&statement));
        request.task = Some(task.to_owned());
        host.run(&request)
    };
    assert_eq!(delete(1, "a").expect("8 of 15").output, "8");
    assert_eq!(
        failure(delete(11, "a")),
        "LimitExceeded(\"would delete 8 rows in `orders` (tool `sql_execute`, sql grant \
         `shop`); limit 15 rows per task (8 used)\")"
    );
    assert_eq!(delete(21, "b").expect("another task starts afresh").output, "8");
    assert_eq!(count(dir.path(), "orders"), 984);
}

/// Refuses every result after the call.
struct RejectResults;

impl Gate for RejectResults {
    fn check_result(&self, _: &moat::CallView, _: &str) -> Verdict {
        Verdict::Deny("results are under review".into())
    }
}

#[test]
fn a_call_refused_after_it_ran_leaves_the_table_unchanged() {
    let dir = shop(1_000);
    let keys = "tables = [\"orders\"]\noperations = [\"delete\"]";
    let host = host_with(dir.path(), &grant("sql_execute", keys), Arc::new(RejectResults));
    let error = host
        .call("sql_execute", &args("DELETE FROM orders WHERE id <= 50"))
        .expect_err("the gate refuses the result");
    assert!(matches!(&error, CallError::Denied { reason, .. } if reason.contains("under review")));
    // The guest dropped its connection before returning; the transaction outlived it.
    assert_eq!(count(dir.path(), "orders"), 1_000);
}

/// Refuses every SQL effect, saying what it saw.
struct NoDeletes;

impl Gate for NoDeletes {
    fn check_effect(&self, _: &moat::CallView, effect: &Effect) -> Verdict {
        match effect.kind {
            EffectKind::Delete => Verdict::Deny(format!("{} rows", effect.detail["rows"])),
            _ => Verdict::Allow,
        }
    }
}

#[test]
fn a_gate_refusing_the_effect_stops_the_statement() {
    let dir = shop(1_000);
    let keys = "tables = [\"orders\"]\noperations = [\"delete\", \"insert\"]";
    let host = host_with(dir.path(), &grant("sql_script", keys), Arc::new(NoDeletes));
    let insert = ["INSERT INTO orders (item) VALUES ('kept')"];
    assert!(host.call("sql_script", &script(&insert)).is_ok(), "the gate allows writes");
    let delete = ["DELETE FROM orders WHERE id <= 3"];
    let (stage, reason) = crate::support::refused(host.call("sql_script", &script(&delete)));
    assert_eq!(stage, moat::error::Stage::DuringCall);
    assert_eq!(reason, "sql delete of `shop:orders` refused by policy: 3 rows");
    assert_eq!(count(dir.path(), "orders"), 1_001);
}

#[test]
fn statements_outside_the_grant_are_denied_naming_what_they_tried() {
    let dir = shop(10);
    let keys =
        "tables = [\"orders\"]\noperations = [\"select\", \"insert\", \"update\", \"delete\"]";
    let host = host(dir.path(), &grant("sql_execute", keys));
    let attach = format!("ATTACH DATABASE '{}' AS other", dir.path().join("other.db").display());
    let cases = [
        (attach.as_str(), "attach or detach a database: sql grant `shop` is one database"),
        (
            "PRAGMA journal_mode = WAL",
            "run pragma `journal_mode`: sql grant `shop` allows no pragmas",
        ),
        ("DROP TABLE orders", "drop table `orders`: sql grant `shop` allows no schema changes"),
        ("CREATE TABLE t (x)", "create table `t`: sql grant `shop` allows no schema changes"),
        ("DELETE FROM customers", "use table `customers`: sql grant `shop` allows only `orders`"),
        (
            "UPDATE orders SET item = (SELECT name FROM customers)",
            "use table `customers`: sql grant `shop` allows only `orders`",
        ),
        (
            "COMMIT",
            "begin, commit or roll back: the host ends the call's transaction in sql grant `shop`",
        ),
    ];
    for (statement, reason) in cases {
        assert_eq!(
            failure(host.call("sql_execute", &args(statement))),
            format!("Denied(\"tool `sql_execute` may not {reason}\")"),
            "{statement}"
        );
    }
    assert_eq!(count(dir.path(), "orders"), 10);
    assert_eq!(count(dir.path(), "customers"), 3);
    assert!(!dir.path().join("other.db").exists(), "ATTACH created no file");
}

#[test]
fn a_trigger_cannot_reach_a_table_outside_the_grant() {
    let dir = shop(10);
    let db = Connection::open(dir.path().join("shop.db")).expect("the database opens");
    db.execute_batch(
        "CREATE TRIGGER wipe AFTER DELETE ON orders BEGIN DELETE FROM customers; END;",
    )
    .expect("the trigger is created");
    let keys = "tables = [\"orders\"]\noperations = [\"delete\"]";
    let host = host(dir.path(), &grant("sql_execute", keys));
    assert_eq!(
        failure(host.call("sql_execute", &args("DELETE FROM orders WHERE id = 1"))),
        "Denied(\"tool `sql_execute` may not use table `customers`: sql grant `shop` allows \
         only `orders`\")"
    );
    assert_eq!(count(dir.path(), "customers"), 3);
}

#[test]
fn an_operation_not_granted_is_denied() {
    let dir = shop(10);
    let host = host(dir.path(), &grant("sql_execute", "tables = [\"orders\"]"));
    assert_eq!(
        failure(host.call("sql_execute", &args("DELETE FROM orders WHERE id = 1"))),
        "Denied(\"tool `sql_execute` may not delete `orders`: sql grant `shop` allows only \
         select\")"
    );
    assert_eq!(count(dir.path(), "orders"), 10);
}

#[test]
fn a_query_needs_select() {
    let dir = shop(10);
    let keys = "tables = [\"orders\"]\noperations = [\"delete\"]";
    let host = host(dir.path(), &grant("sql_query", keys));
    assert_eq!(
        failure(host.call("sql_query", &args("SELECT id FROM orders"))),
        "Denied(\"tool `sql_query` may not select: sql grant `shop` allows only delete\")"
    );
}

#[test]
fn rows_of_a_without_rowid_table_are_counted_too() {
    // The update hook does not see WITHOUT ROWID tables; the statement's own count does.
    let dir = shop(0);
    let db = Connection::open(dir.path().join("shop.db")).expect("the database opens");
    db.execute_batch(
        "CREATE TABLE tags (name TEXT PRIMARY KEY) WITHOUT ROWID;
         INSERT INTO tags SELECT 'tag ' || value FROM json_each('[1,2,3,4,5,6,7,8,9,10]');",
    )
    .expect("the table is filled");
    let keys = "tables = [\"tags\"]\noperations = [\"delete\"]\nmax_rows = 3\nmax_percent = 100.0";
    let host = host(dir.path(), &grant("sql_execute", keys));
    assert_eq!(
        failure(host.call("sql_execute", &args("DELETE FROM tags WHERE name <> 'tag 1'"))),
        "LimitExceeded(\"would delete 9 of 10 rows in `tags`; limit 3 rows or 100%\")"
    );
    assert_eq!(count(dir.path(), "tags"), 10);
}

#[test]
fn a_missing_database_is_reported_not_created() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let host = host(dir.path(), &grant("sql_query", "tables = [\"orders\"]"));
    let message = failure(host.call("sql_query", &args("SELECT 1")));
    assert!(message.starts_with("Invalid(\"sql grant `shop` of tool `sql_query` ("), "{message}");
    assert!(message.contains("cannot be opened"), "{message}");
    assert!(!dir.path().join("shop.db").exists());
}

#[test]
fn a_tool_without_a_sql_grant_is_not_granted_one() {
    let dir = shop(10);
    let host = host(dir.path(), &grant("sql_query", "tables = [\"orders\"]"));
    assert_eq!(
        failure(host.call("sql_execute", &args("DELETE FROM orders"))),
        "NotGranted(\"tool `sql_execute` has no sql grant `shop`\")"
    );
    let other = serde_json::json!({ "grant": "accounts", "statement": "SELECT 1" });
    assert_eq!(
        failure(host.call("sql_query", &other.to_string())),
        "NotGranted(\"tool `sql_query` has no sql grant `accounts`\")"
    );
}

#[test]
fn a_query_returns_its_rows_as_values() {
    let dir = shop(10);
    let db = Connection::open(dir.path().join("shop.db")).expect("the database opens");
    db.execute("UPDATE orders SET note = x'0102', item = NULL WHERE id = 2", [])
        .expect("the row is changed");
    let host = host(dir.path(), &grant("sql_query", "tables = [\"orders\"]"));
    let statement = serde_json::json!({
        "grant": "shop",
        "statement": "SELECT id, item, price, note, count(*) OVER () FROM orders \
                      WHERE id <= ?1 ORDER BY id",
        "params": [2],
    });
    let response = host.call("sql_query", &statement.to_string()).expect("the query runs");
    assert_eq!(response.output, r#"[[1,"item 1",1.5,null,2],[2,null,3.0,[1,2],2]]"#);
    assert!(response.effects.is_empty());
    let listed = serde_json::json!({
        "grant": "shop",
        "statement": "SELECT id FROM orders WHERE id IN (SELECT value FROM json_each(?1))",
        "params": ["[3, 5]"],
    });
    let response = host.call("sql_query", &listed.to_string()).expect("json_each is a function");
    assert_eq!(response.output, "[[3],[5]]");
}

#[test]
fn a_query_may_not_change_anything() {
    let dir = shop(10);
    let keys = "tables = [\"orders\"]\noperations = [\"select\", \"delete\"]";
    let host = host(dir.path(), &grant("sql_query", keys));
    assert_eq!(
        failure(host.call("sql_query", &args("DELETE FROM orders RETURNING id"))),
        "Invalid(\"query runs only read-only statements (sql grant `shop`); use execute to \
         change rows\")"
    );
    assert_eq!(count(dir.path(), "orders"), 10);
}

#[test]
fn too_many_result_rows_is_an_error() {
    let dir = shop(10);
    let host = host(dir.path(), &grant("sql_query", "tables = [\"orders\"]\nmax_result_rows = 5"));
    assert_eq!(
        failure(host.call("sql_query", &args("SELECT id FROM orders"))),
        "LimitExceeded(\"query returns more than 5 rows; limit 5 rows (max_result_rows of sql \
         grant `shop`)\")"
    );
    let five = host.call("sql_query", &args("SELECT id FROM orders LIMIT 5"));
    assert_eq!(five.expect("5 rows fit").output, "[[1],[2],[3],[4],[5]]");
}

#[test]
fn sqlite_cannot_be_made_to_allocate_past_the_result_limit() {
    let dir = shop(10);
    let keys = "tables = [\"orders\"]\nmax_result_bytes = \"64 KiB\"";
    let host = host(dir.path(), &grant("sql_query", keys));
    let message = failure(host.call("sql_query", &args("SELECT length(randomblob(1000000000))")));
    assert!(message.starts_with("Invalid(") && message.contains("too big"), "{message}");
}

#[test]
fn sqlite_errors_are_invalid_with_sqlite_s_message() {
    let dir = shop(10);
    let host = host(dir.path(), &grant("sql_query", "tables = [\"orders\"]"));
    assert_eq!(
        failure(host.call("sql_query", &args("SELEC id FROM orders"))),
        "Invalid(\"sql grant `shop`: near \\\"SELEC\\\": syntax error in SELEC id FROM \
         orders at offset 0\")"
    );
}

#[test]
fn a_statement_is_stopped_at_the_call_s_deadline() {
    let dir = shop(10);
    let keys = "tables = [\"orders\"]\n\n[tools.sql_query.budgets]\nwall_time = \"300ms\"";
    let host = host(dir.path(), &grant("sql_query", keys));
    let endless = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) \
                   SELECT count(*) FROM n";
    let started = Instant::now();
    let error = host.call("sql_query", &args(endless)).expect_err("the statement is stopped");
    assert!(started.elapsed() < Duration::from_secs(3), "stopped late: {:?}", started.elapsed());
    // The guest may get the sql error or be stopped by the wall-time budget on return.
    let stopped = match &error {
        CallError::Tool { message, .. } => message.contains("ran past the call's deadline"),
        CallError::Budget(exceeded) => exceeded.budget == moat::BudgetKind::WallTime,
        _ => false,
    };
    assert!(stopped, "{error:?}");
}

#[test]
fn grants_deny_unknown_keys_and_operations() {
    let dir = shop(1);
    for keys in ["tables = []\nmax_row = 1", "tables = []\noperations = [\"drop\"]"] {
        let path: PathBuf = dir.path().join("moat.toml");
        let error = Config::parse(&grant("sql_query", keys), &path).expect_err(keys);
        assert!(error.to_string().contains("moat.toml"), "{error}");
    }
}
