//! The sql capability's limits hold whatever changed the rows: conflict resolution (`REPLACE`,
//! `INSERT OR REPLACE`, `UPDATE OR REPLACE`, a schema's `ON CONFLICT REPLACE`, upserts),
//! triggers and foreign-key cascades, into rowid and WITHOUT ROWID tables alike; a grant's
//! operations apply to what a statement does; only SQLite's own functions of their arguments
//! may be called; every wait for a lock ends by the call's deadline. The property test
//! generates schemas and statements and compares the rows counted with the rows changed.

use crate::sql_capability::{args, count, failure, grant, host, script, shop};
use moat::{CallError, CallRequest, Host};
use proptest::prelude::*;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

fn db(dir: &Path) -> Connection {
    Connection::open(dir.join("shop.db")).expect("the database opens")
}

/// `shop.db` with `orders` of `rows` rows, plus `schema` (run after it).
fn shop_with(rows: i64, schema: &str) -> tempfile::TempDir {
    let dir = shop(rows);
    db(dir.path()).execute_batch(schema).expect("the schema is created");
    dir
}

const ALL: &str = "operations = [\"select\", \"insert\", \"update\", \"delete\"]";

/// Every row of `table`, by its rowid, as text: what a statement changed shows as a diff.
fn rows_of(dir: &Path, table: &str) -> Vec<String> {
    let db = db(dir);
    let sql = format!("SELECT quote(id) || ':' || quote(item) || ':' || quote(price) FROM {table}");
    let mut statement = db.prepare(&sql).expect("the rows are read");
    let rows = statement.query_map([], |row| row.get(0)).expect("the rows are read");
    rows.collect::<Result<_, _>>().expect("the rows are read")
}

#[test]
fn a_replace_over_many_rows_counts_each_overwrite_as_an_update() {
    // Today's main let an INSERT OR REPLACE over 40 of 200 rows pass a 5% limit.
    let dir = shop(200);
    let keys = format!("tables = [\"orders\"]\n{ALL}\nmax_rows = 100\nmax_percent = 5.0");
    let host = host(dir.path(), &grant("sql_execute", &keys));
    let before = rows_of(dir.path(), "orders");
    for statement in [
        "INSERT OR REPLACE INTO orders (id, item, price) SELECT id, 'x', 0 FROM orders \
         WHERE id <= 40",
        "REPLACE INTO orders (id, item, price) SELECT id, 'x', 0 FROM orders WHERE id <= 40",
    ] {
        assert_eq!(
            failure(host.call("sql_execute", &args(statement))),
            "LimitExceeded(\"would update 40 of 200 rows in `orders`; limit 100 rows or 5%\")",
            "{statement}"
        );
    }
    assert_eq!(rows_of(dir.path(), "orders"), before);
    // Within the limit, an overwrite is reported as the update it is.
    let few =
        "REPLACE INTO orders (id, item, price) VALUES (1, 'a', 1), (2, 'b', 2), (500, 'c', 3)";
    let response = host.call("sql_execute", &args(few)).expect("3 rows fit");
    let [effect] = response.effects.as_slice() else { panic!("{:?}", response.effects) };
    assert_eq!(
        (effect.detail["updated"].as_u64(), effect.detail["inserted"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(effect.detail["deleted"], 0);
}

#[test]
fn a_replace_deleting_other_rows_through_a_unique_conflict_counts_them_as_deletions() {
    let dir = shop_with(0, "CREATE TABLE codes (id INTEGER PRIMARY KEY, code TEXT UNIQUE, n);
         INSERT INTO codes (code, n) SELECT 'c' || value, 0 FROM (WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 200) SELECT value FROM s);");
    let keys = format!("tables = [\"codes\"]\n{ALL}\nmax_rows = 100\nmax_percent = 5.0");
    let first = host(dir.path(), &grant("sql_execute", &keys));
    // New rowids, the codes of 40 existing rows: each insert deletes another row first.
    let statement = "INSERT OR REPLACE INTO codes (id, code, n) SELECT id + 1000, code, 1 \
                     FROM codes WHERE id <= 40";
    assert_eq!(
        failure(first.call("sql_execute", &args(statement))),
        "LimitExceeded(\"would delete 40 of 200 rows in `codes`; limit 100 rows or 5%\")"
    );
    let moved: i64 = db(dir.path())
        .query_row("SELECT count(*) FROM codes WHERE id > 1000", [], |row| row.get(0))
        .unwrap();
    assert_eq!((count(dir.path(), "codes"), moved), (200, 0));
    drop(first); // one audit log, one writer
                 // UPDATE OR REPLACE deletes the row whose code it takes.
    let keys = format!("tables = [\"codes\"]\n{ALL}\nmax_rows = 100\nmax_percent = 100.0");
    let host = crate::sql_capability::host(dir.path(), &grant("sql_execute", &keys));
    let update = "UPDATE OR REPLACE codes SET code = 'c2' WHERE id = 1";
    let response = host.call("sql_execute", &args(update)).expect("it fits");
    let [effect] = response.effects.as_slice() else { panic!("{:?}", response.effects) };
    assert_eq!(
        (effect.detail["updated"].as_u64(), effect.detail["deleted"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(effect.kind, moat::EffectKind::Delete);
}

#[test]
fn a_trigger_emptying_a_without_rowid_table_counts_its_rows() {
    let dir = shop_with(10, "CREATE TABLE tags (name TEXT PRIMARY KEY, n) WITHOUT ROWID;
         INSERT INTO tags SELECT 'tag ' || value, 0 FROM (WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 500) SELECT value FROM s);
         CREATE TRIGGER wipe AFTER UPDATE ON orders BEGIN DELETE FROM tags; END;");
    let keys = "tables = [\"orders\", \"tags\"]\noperations = [\"update\", \"delete\"]";
    let host = host(dir.path(), &grant("sql_execute", keys));
    assert_eq!(
        failure(host.call("sql_execute", &args("UPDATE orders SET price = 0 WHERE id = 1"))),
        "LimitExceeded(\"would delete 500 of 500 rows in `tags`; limit 100 rows or 10%\")"
    );
    assert_eq!(count(dir.path(), "tags"), 500);
}

#[test]
fn a_foreign_key_cascade_into_a_without_rowid_table_counts_its_rows() {
    let dir = shop_with(0, "CREATE TABLE lines (customer INTEGER REFERENCES customers (id)
             ON DELETE CASCADE ON UPDATE CASCADE, n INTEGER, PRIMARY KEY (customer, n))
             WITHOUT ROWID;
         INSERT INTO lines SELECT 1, value FROM (WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 60) SELECT value FROM s);");
    let keys = "tables = [\"customers\", \"lines\"]\noperations = [\"update\", \"delete\"]\n\
                max_rows = 50\nmax_percent = 100.0";
    let host = host(dir.path(), &grant("sql_execute", keys));
    assert_eq!(
        failure(host.call("sql_execute", &args("DELETE FROM customers WHERE id = 1"))),
        "LimitExceeded(\"would delete 60 of 60 rows in `lines`; limit 50 rows or 100%\")"
    );
    assert_eq!(
        failure(host.call("sql_execute", &args("UPDATE customers SET id = 9 WHERE id = 1"))),
        "LimitExceeded(\"would update 60 of 60 rows in `lines`; limit 50 rows or 100%\")"
    );
    assert_eq!((count(dir.path(), "customers"), count(dir.path(), "lines")), (3, 60));
}

#[test]
fn an_upsert_counts_the_rows_it_updates_and_needs_update() {
    let dir = shop(200);
    let upsert = "INSERT INTO orders (id, item) SELECT id, 'x' FROM orders WHERE id <= 40 \
                  ON CONFLICT (id) DO UPDATE SET item = excluded.item";
    let keys = format!("tables = [\"orders\"]\n{ALL}\nmax_percent = 5.0");
    let host = host(dir.path(), &grant("sql_execute", &keys));
    assert_eq!(
        failure(host.call("sql_execute", &args(upsert))),
        "LimitExceeded(\"would update 40 of 200 rows in `orders`; limit 100 rows or 5%\")"
    );
    let keys = "tables = [\"orders\"]\noperations = [\"select\", \"insert\"]";
    drop(host); // one audit log, one writer
    let host = crate::sql_capability::host(dir.path(), &grant("sql_execute", keys));
    assert_eq!(
        failure(host.call("sql_execute", &args(upsert))),
        "Denied(\"tool `sql_execute` may not update `orders`: sql grant `shop` allows only \
         select, insert\")"
    );
    let kept: i64 = db(dir.path())
        .query_row("SELECT count(*) FROM orders WHERE item = 'x'", [], |row| row.get(0))
        .unwrap();
    assert_eq!(kept, 0);
}

#[test]
fn replacing_rows_needs_update_and_delete_whatever_the_spelling() {
    let dir = shop_with(
        10,
        "CREATE TABLE codes (id INTEGER PRIMARY KEY,
             code TEXT UNIQUE ON CONFLICT REPLACE);
         INSERT INTO codes (code) VALUES ('a'), ('b');",
    );
    let keys = "tables = [\"orders\", \"codes\"]\noperations = [\"select\", \"insert\"]";
    let host = host(dir.path(), &grant("sql_execute", keys));
    let refused = |table: &str| {
        format!(
            "Denied(\"tool `sql_execute` may not replace rows in `{table}` (a conflict \
             resolution such as REPLACE deletes or overwrites them, which needs update and \
             delete): sql grant `shop` allows only select, insert\")"
        )
    };
    for (statement, table) in [
        ("INSERT OR REPLACE INTO orders (id, item) VALUES (1, 'x')", "orders"),
        ("REPLACE INTO orders (id, item) VALUES (1, 'x')", "orders"),
        // The schema says REPLACE: a plain INSERT replaces.
        ("INSERT INTO codes (code) VALUES ('a')", "codes"),
    ] {
        assert_eq!(
            failure(host.call("sql_execute", &args(statement))),
            refused(table),
            "{statement}"
        );
    }
    // A REPLACE that replaces nothing is an insert.
    let fresh = "INSERT OR REPLACE INTO orders (id, item) VALUES (11, 'new')";
    assert_eq!(host.call("sql_execute", &args(fresh)).expect("an insert").output, "1");
    // An update that replaces needs delete too.
    let keys = "tables = [\"codes\"]\noperations = [\"update\"]";
    drop(host); // one audit log, one writer
    let host = crate::sql_capability::host(dir.path(), &grant("sql_execute", keys));
    assert_eq!(
        failure(host.call("sql_execute", &args("UPDATE codes SET code = 'b' WHERE code = 'a'"))),
        "Denied(\"tool `sql_execute` may not replace rows in `codes` (a conflict resolution \
         such as REPLACE deletes or overwrites them, which needs update and delete): sql grant \
         `shop` allows only update\")"
    );
    assert_eq!((count(dir.path(), "orders"), count(dir.path(), "codes")), (11, 2));
}

#[test]
fn inserts_are_bounded_by_the_percentage_of_the_table_or_of_max_rows() {
    // 5% of a 400-row table is 20 rows; an empty table counts as `max_rows` rows: 5 of 100.
    let dir = shop_with(400, "CREATE TABLE log (id INTEGER PRIMARY KEY, line TEXT);");
    let keys = "tables = [\"orders\", \"log\"]\noperations = [\"insert\"]\nmax_percent = 5.0";
    let host = host(dir.path(), &grant("sql_script", keys));
    let insert = |table: &str, rows: u32| {
        format!(
            "INSERT INTO {table} ({}) SELECT 'x' FROM (WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < {rows}) SELECT value FROM s)",
            if table == "log" { "line" } else { "item" }
        )
    };
    assert_eq!(host.call("sql_script", &script(&[&insert("orders", 20)])).unwrap().output, "[20]");
    assert_eq!(
        failure(host.call("sql_script", &script(&[&insert("orders", 15), &insert("orders", 15)]))),
        "LimitExceeded(\"would insert 15 rows into `orders` of 420 rows (30 in this call); limit \
         100 rows or 5% of 420 rows\")"
    );
    assert_eq!(host.call("sql_script", &script(&[&insert("log", 5)])).unwrap().output, "[5]");
    assert_eq!(
        failure(host.call("sql_script", &script(&[&insert("log", 6)]))),
        "LimitExceeded(\"would insert 6 rows into `log` of 5 rows; limit 100 rows or 5% of 100 \
         rows\")"
    );
    assert_eq!((count(dir.path(), "orders"), count(dir.path(), "log")), (420, 5));
}

#[test]
fn the_rows_of_replaces_and_triggers_add_up_over_the_calls_of_a_task() {
    let dir = shop_with(
        200,
        "CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);
         CREATE TRIGGER noted AFTER UPDATE ON orders BEGIN
             INSERT INTO audit (what) VALUES ('order ' || NEW.id);
         END;",
    );
    let keys = format!(
        "tables = [\"orders\", \"audit\"]\n{ALL}\nmax_percent = 100.0\nmax_rows_per_task = 15"
    );
    let host = host(dir.path(), &grant("sql_execute", &keys));
    let call = |statement: &str, task: &str| {
        let mut request = CallRequest::new("sql_execute", &args(statement));
        request.task = Some(task.to_owned());
        host.run(&request)
    };
    let replace = "REPLACE INTO orders (id, item) SELECT id, 'r' FROM orders WHERE id <= 8";
    assert_eq!(call(replace, "a").expect("8 of 15").output, "8");
    let update = "UPDATE orders SET price = 0 WHERE id <= 4";
    assert_eq!(
        failure(call(update, "a")),
        "LimitExceeded(\"would change 8 rows in `audit`, `orders` (tool `sql_execute`, sql grant \
         `shop`); limit 15 rows per task (8 used)\")",
        "4 updates and the 4 rows their trigger inserts"
    );
    assert_eq!(call(update, "b").expect("another task starts afresh").output, "4");
    assert_eq!(count(dir.path(), "audit"), 4);
}

#[test]
fn only_sqlite_s_own_functions_of_their_arguments_may_be_called() {
    let dir = shop(10);
    let host = host(dir.path(), &grant("sql_query", "tables = [\"orders\"]"));
    let query = |statement: &str, params: serde_json::Value| {
        let call = serde_json::json!({ "grant": "shop", "statement": statement, "params": params });
        host.call("sql_query", &call.to_string())
    };
    for (statement, function) in [
        ("SELECT hex(fts3_tokenizer(?1))", "fts3_tokenizer"),
        ("SELECT load_extension(?1)", "load_extension"),
        ("SELECT sqlite_compileoption_get(0) WHERE ?1 IS NOT NULL", "sqlite_compileoption_get"),
        ("SELECT id FROM orders WHERE item = sqlite_version() OR ?1", "sqlite_version"),
    ] {
        assert_eq!(
            failure(query(statement, serde_json::json!(["simple"]))),
            format!(
                "Denied(\"tool `sql_query` may not call function `{function}`: sql grant `shop` \
                 allows only SQLite's own functions of their arguments (scalar, aggregate, \
                 window, date, JSON, math)\")"
            ),
            "{statement}"
        );
    }
    let allowed = "SELECT abs(-2), upper(item) LIKE 'ITEM%', json_extract('{\"a\":1}', '$.a'), \
                   '{\"b\":2}' ->> '$.b', date('2024-01-31', '+1 day'), count(*) OVER (), \
                   coalesce(NULL, ?1), printf('%05d', id) FROM orders WHERE id = 1";
    let response = query(allowed, serde_json::json!([7])).expect("these functions are allowed");
    assert_eq!(response.output, r#"[[2,1,1,2,"2024-02-01",1,7,"00001"]]"#);
}

/// Runs `call` and fails if it has not ended after a minute: a hang, not a slow run.
fn ends<T: Send>(call: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::channel();
        scope.spawn(move || sender.send(call()));
        receiver.recv_timeout(Duration::from_secs(60)).expect("the call ended, not hung")
    })
}

fn with_wall_time(keys: &str, tool: &str) -> String {
    format!("{}\n[tools.{tool}.budgets]\nwall_time = \"300ms\"\n", grant(tool, keys))
}

#[test]
fn a_database_another_process_holds_locked_ends_the_call_by_its_deadline() {
    let dir = shop(10);
    let other = db(dir.path());
    other.execute_batch("BEGIN EXCLUSIVE").expect("the other connection locks the database");
    for (tool, keys, statement) in [
        ("sql_execute", "tables = [\"orders\"]\noperations = [\"delete\"]", "DELETE FROM orders"),
        ("sql_query", "tables = [\"orders\"]", "SELECT count(*) FROM orders"),
    ] {
        let host: Host = host(dir.path(), &with_wall_time(keys, tool));
        let result = ends(|| host.call(tool, &args(statement)));
        let ended = match &result {
            Err(CallError::Tool { message, .. }) => message.contains("locked"),
            Err(CallError::Budget(exceeded)) => exceeded.budget == moat::BudgetKind::WallTime,
            _ => false,
        };
        assert!(ended, "{tool}: {result:?}");
    }
    other.execute_batch("ROLLBACK").unwrap();
    assert_eq!(count(dir.path(), "orders"), 10);
}

#[test]
fn a_commit_waiting_for_another_reader_ends_by_the_deadline() {
    // In rollback-journal mode a commit waits for every reader to let go of the file.
    let dir = shop(10);
    let reader = db(dir.path());
    reader.execute_batch("BEGIN").unwrap();
    let held: i64 = reader.query_row("SELECT count(*) FROM orders", [], |r| r.get(0)).unwrap();
    assert_eq!(held, 10);
    let keys = "tables = [\"orders\"]\noperations = [\"delete\"]\nmax_percent = 100.0";
    let host = host(dir.path(), &with_wall_time(keys, "sql_execute"));
    let result = ends(|| host.call("sql_execute", &args("DELETE FROM orders WHERE id <= 3")));
    let ended = match &result {
        Err(CallError::Host { reason, .. }) => {
            reason.starts_with("commit failed: sql grant `shop`: the database is locked")
        }
        Err(CallError::Budget(exceeded)) => exceeded.budget == moat::BudgetKind::WallTime,
        _ => false,
    };
    assert!(ended, "{result:?}");
    reader.execute_batch("COMMIT").unwrap();
    assert_eq!(count(dir.path(), "orders"), 10, "nothing was committed");
}

/// A generated schema: `t0` .. `tN`, each rowid or WITHOUT ROWID, with a UNIQUE column `u`,
/// a value `v`, an owner `o` (a row of the table before it; cascades), and triggers that
/// write the next table.
#[derive(Clone, Debug)]
struct Schema {
    tables: Vec<(bool, u8)>,    // (WITHOUT ROWID, the foreign key's action)
    triggers: Vec<(usize, u8)>, // (table, what its trigger does to the next one)
}

fn schema() -> impl Strategy<Value = Schema> {
    let tables = proptest::collection::vec((any::<bool>(), 0u8..4), 2..4);
    let triggers = proptest::collection::vec((0usize..3, 0u8..3), 0..3);
    (tables, triggers).prop_map(|(tables, mut triggers)| {
        triggers.retain(|(table, _)| table + 1 < tables.len());
        triggers.sort();
        triggers.dedup_by_key(|(table, _)| *table);
        Schema { tables, triggers }
    })
}

impl Schema {
    fn sql(&self) -> String {
        let mut sql = String::new();
        for (i, (without_rowid, action)) in self.tables.iter().enumerate() {
            let owner = match (i, action) {
                (0, _) => "o INTEGER".to_owned(),
                (_, action) => format!(
                    "o INTEGER REFERENCES t{} (k) ON DELETE {} ON UPDATE CASCADE",
                    i - 1,
                    ["CASCADE", "SET NULL", "SET DEFAULT", "CASCADE"][usize::from(*action)]
                ),
            };
            let tail = if *without_rowid { " WITHOUT ROWID" } else { "" };
            sql += &format!(
                "CREATE TABLE t{i} (k INTEGER PRIMARY KEY, u INTEGER UNIQUE, v INTEGER, {owner}){tail};
                 INSERT INTO t{i} SELECT value, value + 100, 0, (value % 5) + 1 FROM (WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 20) SELECT value FROM s);"
            );
        }
        for (table, what) in &self.triggers {
            let next = table + 1;
            sql += &match what {
                0 => format!("CREATE TRIGGER g{table} AFTER DELETE ON t{table} BEGIN
                                  DELETE FROM t{next} WHERE u = OLD.k + 100; END;"),
                1 => format!("CREATE TRIGGER g{table} AFTER UPDATE ON t{table} BEGIN
                                  UPDATE t{next} SET v = v + 1 WHERE k = NEW.k; END;"),
                _ => format!("CREATE TRIGGER g{table} AFTER INSERT ON t{table} BEGIN
                                  INSERT INTO t{next} (k, u, v) VALUES (NEW.k + 1000, NEW.k + 2000, 0); END;"),
            };
        }
        sql
    }
}

/// A changing statement on `t0` or `t1`: keys and unique values chosen among existing ones and
/// new ones, so that some conflict; every write changes a value.
fn statement() -> impl Strategy<Value = String> {
    let keys = (1i64..30, 1i64..12);
    (0usize..2, 0u8..6, keys).prop_map(|(table, kind, (from, span))| {
        let to = from + span;
        match kind {
            0 => format!("DELETE FROM t{table} WHERE k BETWEEN {from} AND {to}"),
            1 => format!("UPDATE t{table} SET v = v + 7 WHERE k BETWEEN {from} AND {to}"),
            2 => format!("REPLACE INTO t{table} (k, u, v) SELECT value, value + 100, 9 \
                          FROM (WITH RECURSIVE s(value) AS (SELECT {from} UNION ALL SELECT value + 1 FROM s WHERE value < {to}) SELECT value FROM s)"),
            3 => format!("INSERT OR REPLACE INTO t{table} (k, u, v) SELECT value + 50, value + 100, 9 \
                          FROM (WITH RECURSIVE s(value) AS (SELECT {from} UNION ALL SELECT value + 1 FROM s WHERE value < {to}) SELECT value FROM s)"),
            4 => format!("INSERT INTO t{table} (k, u, v) SELECT value, value + 300, 9 \
                          FROM (WITH RECURSIVE s(value) AS (SELECT {from} UNION ALL SELECT value + 1 FROM s WHERE value < {to}) SELECT value FROM s) WHERE true \
                          ON CONFLICT (k) DO UPDATE SET v = v + 1"),
            _ => format!("UPDATE t{table} SET k = k + 40 WHERE k BETWEEN {from} AND {to}"),
        }
    })
}

/// Every row of every table, by primary key.
fn snapshot(dir: &Path, tables: usize) -> Vec<BTreeMap<i64, String>> {
    let db = db(dir);
    (0..tables)
        .map(|i| {
            let sql = format!("SELECT k, quote(u) || quote(v) || quote(o) FROM t{i}");
            let mut statement = db.prepare(&sql).unwrap();
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).unwrap();
            rows.collect::<Result<_, _>>().unwrap()
        })
        .collect()
}

#[test]
fn whatever_the_schema_and_statement_the_rows_counted_are_the_rows_changed() {
    let mut runner = crate::support::fuzz_runner(24);
    runner
        .run(&(schema(), statement(), 1u64..40), |(schema, statement, max_rows)| {
            let dir = shop_with(0, &schema.sql());
            let tables: Vec<String> =
                (0..schema.tables.len()).map(|i| format!("\"t{i}\"")).collect();
            let keys = format!(
                "tables = [{}]\n{ALL}\nmax_rows = {max_rows}\nmax_percent = 1000.0",
                tables.join(", ")
            );
            let host = host(dir.path(), &grant("sql_execute", &keys));
            let before = snapshot(dir.path(), schema.tables.len());
            let result = host.call("sql_execute", &args(&statement));
            let after = snapshot(dir.path(), schema.tables.len());
            // What changed, by key: inserted, deleted, or present in both with other values.
            let mut changed = 0u64;
            for (was, is) in before.iter().zip(&after) {
                changed += was.iter().filter(|(k, v)| is.get(k) != Some(v)).count() as u64;
                changed += is.keys().filter(|k| !was.contains_key(k)).count() as u64;
            }
            match result {
                Ok(response) => {
                    let counted: u64 =
                        response.effects.iter().map(|e| e.detail["rows"].as_u64().unwrap()).sum();
                    // A changed key is one row changed, or two (an update that moves a key);
                    // a row written twice by one statement is counted twice.
                    prop_assert!(
                        counted >= changed.div_ceil(2) && counted <= max_rows,
                        "{statement}: counted {counted}, changed {changed}\n{}",
                        schema.sql()
                    );
                    if !statement.contains("SET k") {
                        prop_assert!(counted >= changed, "{statement}: {counted} < {changed}");
                    }
                }
                Err(error) => {
                    prop_assert_eq!(&after, &before, "{}: {:?} but rows changed", statement, error);
                }
            }
            Ok(())
        })
        .unwrap();
}
