//! Rolling a task back: every effect committed through the host says how to undo it; kept as
//! the audit log keeps it (large parts as blobs named by their hash) and applied newest first
//! by `moat::undo::rollback::apply`, it puts files back byte for byte and rows back row for row, or
//! refuses and changes nothing.

use crate::support::built;
use moat::undo::rollback::{self, Report, RollbackError, Step};
use moat::undo::{RowChange, RowOp, Undo};
use moat::{CallResponse, Config, Host};
use rusqlite::types::Value;
use rusqlite::Connection;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tempfile::TempDir;

/// A directory with `data/` (files) and `shop.db`, and a host over the test plugins granting
/// the `effects` tools `data` (read-write), `shop` (`orders`, `history`, `tags`: every
/// operation) and the kv namespace.
struct Sandbox {
    dir: TempDir,
    host: Host,
}

/// The rows of `orders` before any task: reals with every digit, blobs, text, NULLs.
const ORDERS: &str = "
    CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT, price REAL, note BLOB, qty);
    CREATE TABLE history (what TEXT, qty);
    CREATE TABLE tags (name TEXT PRIMARY KEY) WITHOUT ROWID;
    CREATE TRIGGER orders_history AFTER UPDATE ON orders
        BEGIN INSERT INTO history VALUES ('order ' || OLD.id || ' was ' || OLD.qty, NEW.qty); END;
    CREATE TRIGGER cake_gone AFTER DELETE ON orders WHEN OLD.item = 'cake'
        BEGIN INSERT INTO tags VALUES ('no more cake'); END;
    INSERT INTO orders VALUES
        (1, 'tea', 0.30000000000000004, x'00ff10', 1),
        (2, 'thé ☕', 3.141592653589793, NULL, 'two'),
        (3, NULL, 1e-300, x'', NULL),
        (4, 'cake', 12345.678901234567, x'cafebabe', 4.5);
    WITH RECURSIVE n(i) AS (SELECT 5 UNION ALL SELECT i + 1 FROM n WHERE i < 20)
        INSERT INTO orders SELECT i, 'item ' || i, i / 7.0, randomblob(8), i FROM n;
    INSERT INTO history VALUES ('opened', NULL);";

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox::with("max_rows = 100")
    }

    /// With extra keys for the sql grant.
    fn with(sql_keys: &str) -> Sandbox {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("notes")).unwrap();
        std::fs::write(data.join("keep.txt"), "precious").unwrap();
        std::fs::write(data.join("old.bin"), (0..=255u8).collect::<Vec<u8>>()).unwrap();
        std::fs::write(data.join("draft.txt"), "the draft").unwrap();
        std::fs::write(data.join("final.txt"), "the old final").unwrap();
        std::fs::write(data.join("notes/monday.txt"), "notes").unwrap();
        Connection::open(dir.path().join("shop.db")).unwrap().execute_batch(ORDERS).unwrap();

        let mut toml = String::from("[confidence]\nhigh = 0\n");
        for tool in ["fs_write", "fs_remove", "fs_rename"] {
            toml +=
                &format!("[tools.{tool}.grants.fs.data]\npath = \"data\"\nmode = \"read-write\"\n");
        }
        for tool in ["sql_execute", "sql_script", "sql_try"] {
            toml += &format!(
                "[tools.{tool}.grants.sql.shop]\npath = \"shop.db\"\n\
                 tables = [\"orders\", \"history\", \"tags\"]\n\
                 operations = [\"select\", \"insert\", \"update\", \"delete\"]\n\
                 max_percent = 100.0\n{sql_keys}\n"
            );
        }
        toml += "[tools.kv_set.grants.kv]\n[tools.kv_get.grants.kv]\n";
        let path = dir.path().join("moat.toml");
        std::fs::write(&path, toml).unwrap();
        let mut config = Config::load(&path).expect("moat.toml is valid");
        crate::support::without_controls(&mut config);
        config.plugins.tools = vec![built("tests")];
        let (host, errors) = Host::new(config).expect("the engine starts");
        assert!(errors.is_empty(), "unexpected load errors: {errors:?}");
        Sandbox { dir, host }
    }

    /// Calls `tool` as part of `task`, which keeps the call's committed effects.
    fn call(&self, task: &mut Task, tool: &str, args: serde_json::Value) -> CallResponse {
        let response = self
            .host
            .call(tool, &args.to_string())
            .unwrap_or_else(|e| panic!("{tool} {args} fails: {e}"));
        task.keep(tool, &response);
        response
    }

    fn path(&self, relative: &str) -> std::path::PathBuf {
        self.dir.path().join(relative)
    }

    /// Every file under `data/`, with its bytes.
    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        fn walk(dir: &Path, prefix: &str, into: &mut BTreeMap<String, Vec<u8>>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
                if entry.file_type().unwrap().is_dir() {
                    walk(&entry.path(), &format!("{name}/"), into);
                } else {
                    into.insert(name, std::fs::read(entry.path()).unwrap());
                }
            }
        }
        let mut files = BTreeMap::new();
        walk(&self.path("data"), "", &mut files);
        files
    }

    /// Every row of `table`, rowid first, with its values as SQLite types them.
    fn rows(&self, table: &str) -> Vec<Vec<Value>> {
        let db = Connection::open(self.path("shop.db")).unwrap();
        let mut statement =
            db.prepare(&format!("SELECT rowid, * FROM {table} ORDER BY rowid")).unwrap();
        let width = statement.column_count();
        let rows = statement
            .query_map([], |row| (0..width).map(|i| row.get::<_, Value>(i)).collect())
            .unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    fn database(&self) -> [Vec<Vec<Value>>; 2] {
        [self.rows("orders"), self.rows("history")]
    }

    fn sql(&self, statement: &str) {
        Connection::open(self.path("shop.db")).unwrap().execute_batch(statement).unwrap();
    }
}

/// A task's committed effects as the audit log keeps them: undo records whose large parts
/// are in a blob store, named by their blake3 hash.
#[derive(Default)]
struct Task {
    steps: Vec<Step>,
    blobs: HashMap<String, Vec<u8>>,
}

impl Task {
    fn keep(&mut self, tool: &str, response: &CallResponse) {
        for effect in &response.effects {
            let undo = effect.undo.clone().unwrap_or_else(|| {
                panic!("the effect on `{}` does not say how to undo it", effect.target)
            });
            let undo = undo
                .store(|bytes| {
                    let hash = moat::undo::hash(&bytes);
                    self.blobs.insert(hash.clone(), bytes);
                    Ok::<_, std::convert::Infallible>(hash)
                })
                .unwrap();
            let seq = self.steps.len() as u64 + 1;
            let (tool, target) = (tool.to_owned(), effect.target.clone());
            self.steps.push(Step { seq, tool, target, undo });
        }
    }

    fn roll_back(&self, skip_irreversible: bool) -> Result<Report, RollbackError> {
        let blob = |hash: &str| {
            self.blobs.get(hash).cloned().ok_or_else(|| std::io::ErrorKind::NotFound.into())
        };
        rollback::apply(&self.steps, &blob, skip_irreversible)
    }

    /// The recorded row changes of step `seq`.
    fn row_changes(&self, seq: u64) -> Vec<RowChange> {
        match &self.steps[seq as usize - 1].undo {
            Undo::Rows { rows, .. } => serde_json::from_slice(&self.blobs[rows]).unwrap(),
            other => panic!("step {seq} changed no rows: {other:?}"),
        }
    }

    fn seqs(report: &Report) -> Vec<u64> {
        report.undone.iter().map(|undone| undone.seq).collect()
    }
}

fn file(grant_path: &str, text: &str) -> serde_json::Value {
    json!({"grant": "data", "path": grant_path, "text": text})
}

fn script(statements: &[&str]) -> serde_json::Value {
    json!({"grant": "shop", "statements": statements})
}

#[test]
fn a_task_s_file_changes_are_undone_byte_for_byte() {
    let sandbox = Sandbox::new();
    let before = sandbox.files();
    let mut task = Task::default();
    sandbox.call(&mut task, "fs_write", file("notes/new.txt", "created by the task"));
    sandbox.call(&mut task, "fs_write", file("keep.txt", "overwritten"));
    sandbox.call(&mut task, "fs_remove", file("old.bin", ""));
    sandbox.call(
        &mut task,
        "fs_rename",
        json!({"grant": "data", "path": "draft.txt", "to": "final.txt"}),
    );
    assert_ne!(sandbox.files(), before);

    let report = task.roll_back(false).expect("the rollback runs");

    assert_eq!(sandbox.files(), before, "every file is back, byte for byte");
    assert!(!sandbox.path("data/notes/new.txt").exists(), "the file the task made is gone");
    assert_eq!((report.files, report.renames, report.rows, report.keys), (4, 1, 0, 0));
    assert_eq!(Task::seqs(&report), [4, 3, 2, 1], "newest first");
    let draft = sandbox.path("data/draft.txt");
    assert_eq!(
        report.undone[0].to_string(),
        format!(
            "effect 4 (`fs_rename` on `data:draft.txt`): moved {} back to {}; put back {}",
            sandbox.path("data/final.txt").display(),
            draft.display(),
            sandbox.path("data/final.txt").display()
        )
    );
}

#[test]
fn a_task_s_row_changes_are_undone_row_for_row_with_the_rows_its_triggers_changed() {
    let sandbox = Sandbox::new();
    let before = sandbox.database();
    let mut task = Task::default();
    sandbox.call(
        &mut task,
        "sql_script",
        script(&[
            "UPDATE orders SET price = price * 3, note = NULL, item = upper(item), qty = 7 \
             WHERE id IN (1, 2, 4)",
            "DELETE FROM orders WHERE id BETWEEN 5 AND 9",
            "INSERT INTO orders (item, price, note) VALUES ('new', 2.5, x'00cafe00')",
            "UPDATE orders SET note = x'ff' WHERE id = 3",
        ]),
    );
    let targets: Vec<&str> = task.steps.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "shop:history",
            "shop:orders",
            "shop:orders",
            "shop:orders",
            "shop:history",
            "shop:orders"
        ],
        "one effect per table per statement, the trigger's table included"
    );
    assert_eq!(task.row_changes(3).len(), 5, "the delete recorded every row it deleted");
    assert_ne!(sandbox.database(), before);

    let report = task.roll_back(false).expect("the rollback runs");

    assert_eq!(sandbox.database(), before, "every row is back, with its rowid and exact values");
    assert_eq!(report.rows, 3 + 3 + 5 + 1 + 1 + 1);
}

#[test]
fn a_replace_is_undone_with_the_row_it_replaced() {
    let sandbox = Sandbox::new();
    let before = sandbox.database();
    let mut task = Task::default();
    let statement = "INSERT OR REPLACE INTO orders (id, item, price) VALUES (2, 'replaced', 1.0)";
    sandbox.call(&mut task, "sql_execute", json!({"grant": "shop", "statement": statement}));
    let ops: Vec<RowOp> = task.row_changes(1).iter().map(|change| change.op).collect();
    assert_eq!(ops, [RowOp::Delete, RowOp::Insert], "the replaced row was recorded too");

    task.roll_back(false).expect("the rollback runs");

    assert_eq!(sandbox.database(), before);
}

#[test]
fn several_calls_of_a_task_are_undone_newest_first() {
    let sandbox = Sandbox::new();
    let (files, rows) = (sandbox.files(), sandbox.database());
    let mut task = Task::default();
    sandbox.call(&mut task, "fs_write", file("keep.txt", "first"));
    sandbox.call(&mut task, "fs_write", file("keep.txt", "second"));
    let update = |qty: i64| json!({"grant": "shop", "statement": format!("UPDATE orders SET qty = {qty} WHERE id = 1")});
    sandbox.call(&mut task, "sql_execute", update(10));
    sandbox.call(&mut task, "sql_execute", update(20));
    sandbox.call(&mut task, "kv_set", json!({"key": "mood", "value": "first"}));
    sandbox.call(&mut task, "kv_set", json!({"key": "mood", "value": "second"}));

    let report = task.roll_back(false).expect("the rollback runs");

    assert_eq!(sandbox.files(), files);
    assert_eq!(sandbox.database(), rows);
    let mood = sandbox.host.call("kv_get", &json!({"key": "mood"}).to_string()).unwrap();
    assert_eq!(mood.output, "null", "the key the task set is gone");
    assert_eq!((report.files, report.rows, report.keys), (2, 4, 2), "{report:?}");
    assert_eq!(Task::seqs(&report), [8, 7, 6, 5, 4, 3, 2, 1]);
}

#[test]
fn a_file_changed_after_the_task_refuses_the_rollback_and_nothing_is_changed() {
    let sandbox = Sandbox::new();
    let mut task = Task::default();
    sandbox.call(&mut task, "fs_remove", file("old.bin", ""));
    sandbox.call(&mut task, "fs_write", file("keep.txt", "by the task"));
    std::fs::write(sandbox.path("data/keep.txt"), "by a person, later").unwrap();
    let after = sandbox.files();

    let error = task.roll_back(false).expect_err("the rollback is refused");

    assert!(
        matches!(&error, RollbackError::Conflict { seq: 2, tool, .. } if tool == "fs_write"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "nothing was changed: effect 2 (`fs_write` on `data:keep.txt`): {} changed since",
            sandbox.path("data/keep.txt").display()
        )
    );
    assert_eq!(sandbox.files(), after, "not even the removed file came back");
}

#[test]
fn a_row_changed_after_the_task_refuses_the_rollback_and_nothing_is_changed() {
    let sandbox = Sandbox::new();
    let mut task = Task::default();
    sandbox.call(&mut task, "fs_write", file("keep.txt", "by the task"));
    let statement = |sql: &str| json!({"grant": "shop", "statement": sql});
    sandbox.call(&mut task, "sql_execute", statement("DELETE FROM orders WHERE id = 3"));
    sandbox.call(&mut task, "sql_execute", statement("UPDATE orders SET qty = 99 WHERE id = 17"));
    sandbox.sql("UPDATE orders SET qty = 100 WHERE id = 17");
    let (files, rows) = (sandbox.files(), sandbox.database());

    let error = task.roll_back(false).expect_err("the rollback is refused");

    assert_eq!(
        error.to_string(),
        "nothing was changed: effect 4 (`sql_execute` on `shop:orders`): `orders` row 17 changed \
         since"
    );
    assert_eq!((sandbox.files(), sandbox.database()), (files, rows));
}

#[test]
fn a_row_taken_again_after_the_task_refuses_the_rollback() {
    let sandbox = Sandbox::new();
    let mut task = Task::default();
    let delete = json!({"grant": "shop", "statement": "DELETE FROM orders WHERE id = 3"});
    sandbox.call(&mut task, "sql_execute", delete);
    sandbox.sql("INSERT INTO orders (id, item) VALUES (3, 'someone else''s')");
    let rows = sandbox.database();

    let error = task.roll_back(false).expect_err("the rollback is refused");

    assert!(error.to_string().contains("`orders` row 3 is taken again"), "{error}");
    assert_eq!(sandbox.database(), rows);
}

#[test]
fn an_irreversible_effect_refuses_the_rollback_unless_it_is_skipped() {
    let sandbox = Sandbox::new();
    let mut task = Task::default();
    sandbox.call(&mut task, "fs_write", file("keep.txt", "by the task"));
    let url = "https://example.com/orders";
    task.steps.push(Step {
        seq: 2,
        tool: "http_send".into(),
        target: url.into(),
        undo: Undo::Irreversible { reason: format!("POST {url} was sent") },
    });
    let problem =
        format!("effect 2 (`http_send` on `{url}`) cannot be undone: POST {url} was sent");
    assert_eq!(rollback::plan_problems(&task.steps), std::slice::from_ref(&problem));

    let error = task.roll_back(false).expect_err("the rollback is refused");
    assert!(
        matches!(&error, RollbackError::Irreversible(problems) if *problems == [problem.clone()])
    );
    assert_eq!(
        error.to_string(),
        format!(
            "nothing was changed: 1 effect cannot be undone (skip the irreversible effects to \
             undo the rest): {problem}"
        )
    );
    assert_eq!(std::fs::read_to_string(sandbox.path("data/keep.txt")).unwrap(), "by the task");

    let report = task.roll_back(true).expect("the rest is undone");
    assert_eq!(std::fs::read_to_string(sandbox.path("data/keep.txt")).unwrap(), "precious");
    assert_eq!(report.skipped, [problem]);
    assert_eq!(Task::seqs(&report), [1]);
}

#[test]
fn rows_of_a_without_rowid_table_cannot_be_undone_and_say_so() {
    let sandbox = Sandbox::new();
    let mut task = Task::default();
    let insert = json!({"grant": "shop", "statement": "INSERT INTO tags VALUES ('urgent')"});
    sandbox.call(&mut task, "sql_execute", insert);
    // A trigger of `orders` inserts into `tags`: the statement has an effect on each table,
    // and the one on `tags` cannot be undone (the one on `orders` can).
    let delete = json!({"grant": "shop", "statement": "DELETE FROM orders WHERE id = 4"});
    sandbox.call(&mut task, "sql_execute", delete);

    let problems = rollback::plan_problems(&task.steps);

    let db = sandbox.path("shop.db");
    let tags = format!(
        "the rows of `tags` ({}) cannot be put back: it is a WITHOUT ROWID table",
        db.display()
    );
    assert_eq!(
        problems,
        [
            format!("effect 3 (`sql_execute` on `shop:tags`) cannot be undone: {tags}"),
            format!("effect 1 (`sql_execute` on `shop:tags`) cannot be undone: {tags}"),
        ]
    );
}

#[test]
fn a_refused_statement_leaves_no_row_images() {
    let sandbox = Sandbox::with("max_rows = 5");
    let before = sandbox.database();
    let mut task = Task::default();
    let response = sandbox.call(
        &mut task,
        "sql_try",
        script(&[
            "UPDATE orders SET item = 'first' WHERE id = 1",
            "DELETE FROM orders WHERE id > 10",
            "UPDATE orders SET item = 'third' WHERE id = 2",
        ]),
    );
    assert!(
        response.output.contains("LimitExceeded"),
        "the delete is refused: {}",
        response.output
    );

    let changes: Vec<(RowOp, Option<i64>)> = [2, 4]
        .into_iter()
        .flat_map(|seq| task.row_changes(seq))
        .map(|change| (change.op, change.rowid_after))
        .collect();
    let targets: Vec<&str> = task.steps.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(targets, ["shop:history", "shop:orders", "shop:history", "shop:orders"]);
    assert_eq!(
        changes,
        [(RowOp::Update, Some(1)), (RowOp::Update, Some(2))],
        "only the two updates were recorded, not the refused delete"
    );
    task.roll_back(false).expect("the rollback runs");
    assert_eq!(sandbox.database(), before);
}

#[test]
fn a_tool_cannot_touch_the_row_images() {
    let sandbox = Sandbox::new();
    let before = sandbox.database();
    let mut task = Task::default();
    let response = sandbox.call(
        &mut task,
        "sql_try",
        script(&[
            "UPDATE orders SET qty = 0 WHERE id = 1",
            "DELETE FROM moat_undo_0",
            "INSERT INTO temp.moat_undo_1 (op) VALUES ('insert')",
        ]),
    );
    let outcomes: Vec<String> = serde_json::from_str(&response.output).unwrap();
    let denied = "Denied(\"tool `sql_try` may not use the temporary schema: it holds only moat's \
                  records (sql grant `shop`)\")";
    assert_eq!(outcomes, ["1", denied, denied]);
    task.roll_back(false).expect("the rollback runs");
    assert_eq!(sandbox.database(), before);
}
