//! The example tools do their work, and bad arguments are refused before anything runs.

use crate::support::host;
use moat::{CallError, EffectKind};
use serde_json::{json, Value};

#[test]
fn echo_returns_its_text_as_json() {
    let response = host().call("echo", r#"{"text": "grüße, 世界"}"#).unwrap();
    assert_eq!(response.output, r#""grüße, 世界""#);
    assert!(response.usage.fuel > 0, "a call is metered");
    assert!(response.usage.peak_memory > 0, "memory is tracked");
}

#[test]
fn csv_stats_summarises_numeric_and_text_columns() {
    let csv = "region,sales,units\nnorth,120,3\nsouth,80,\neast,95.5,7\nwest,,2\n";
    let args = json!({ "csv": csv }).to_string();
    let output: Value =
        serde_json::from_str(&host().call("csv_stats", &args).unwrap().output).unwrap();
    assert_eq!(output["rows"], 4);
    let sales = &output["columns"]["sales"];
    assert_eq!(sales["count"], 3);
    assert_eq!(sales["missing"], 1);
    assert_eq!(sales["min"], 80.0);
    assert_eq!(sales["max"], 120.0);
    assert_eq!(sales["median"], 95.5);
    assert_eq!(output["columns"]["region"]["distinct"], 4);
}

#[test]
fn a_tool_reports_its_own_invalid_input_as_a_typed_error() {
    let args = json!({ "csv": "a,b\n1,2\n", "columns": ["c"] }).to_string();
    match host().call("csv_stats", &args) {
        Err(CallError::Tool { message, .. }) => {
            assert!(message.contains("no column `c`"), "{message}")
        }
        other => panic!("expected a tool error, got {other:?}"),
    }
}

#[test]
fn arguments_that_are_not_a_json_object_are_refused_before_the_tool_runs() {
    let host = host();
    for args in ["{\"text\": ", "[1, 2]", "\"text\"", ""] {
        match host.call("echo", args) {
            Err(CallError::InvalidArguments { tool, .. }) => assert_eq!(tool, "echo"),
            other => panic!("{args:?}: expected invalid arguments, got {other:?}"),
        }
    }
}

#[test]
fn an_unknown_tool_is_refused_by_name() {
    let error = host().call("rm_rf", "{}").unwrap_err();
    assert_eq!(error.to_string(), "no tool `rm_rf` is loaded (see `moat tools`)");
}

#[test]
fn tools_describe_themselves_with_a_schema_from_their_argument_type() {
    let host = host();
    let tools = host.tools();
    let echo = tools.iter().find(|t| t.name == "echo").expect("echo is loaded");
    assert_eq!(echo.input_schema["type"], "object");
    assert_eq!(echo.input_schema["required"], json!(["text"]));
    assert_eq!(echo.input_schema["properties"]["text"]["description"], "The text to send back.");
    assert_eq!(echo.effects, Vec::<EffectKind>::new());
    let names: Vec<_> = host.tools().iter().map(|t| t.name.clone()).collect();
    for expected in
        ["csv_stats", "echo", "spin", "grow_memory", "recurse", "huge_output", "panic", "ok"]
    {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
}

/// A host over the example tools with `moat_toml` written into a fresh directory, which
/// also holds `workspace/` and `shop.db` (1000 orders, 600 of them shipped).
fn example_host(moat_toml: &str) -> (moat::Host, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("workspace")).unwrap();
    let db = rusqlite::Connection::open(dir.path().join("shop.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
         INSERT INTO orders SELECT i, CASE WHEN i % 5 < 3 THEN 'shipped' ELSE 'open' END FROM n;",
    )
    .unwrap();
    // Not about confidence: high-stakes tools run without one.
    std::fs::write(dir.path().join("moat.toml"), format!("[confidence]\nhigh = 0\n{moat_toml}"))
        .unwrap();
    let mut config = moat::Config::load(&dir.path().join("moat.toml")).unwrap();
    config.plugins.tools = vec![crate::support::built("tools")];
    let (host, errors) = moat::Host::new(config).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    (host, dir)
}

#[test]
fn cleanup_asked_to_clean_up_is_stopped_with_the_numbers_and_deletes_nothing() {
    let toml = "[tools.cleanup.grants.sql.main]\npath = \"shop.db\"\ntables = [\"orders\"]\n\
                operations = [\"select\", \"delete\"]\nmax_rows = 100\nmax_percent = 5.0\n";
    let (host, dir) = example_host(toml);
    let args = json!({"table": "orders", "keep_status": ["open"]}).to_string();
    match host.call("cleanup", &args) {
        Err(CallError::Tool { message, .. }) => {
            assert_eq!(message, "would delete 600 of 1000 rows in `orders`; limit 100 rows or 5%")
        }
        other => panic!("expected the cleanup to be stopped, got {other:?}"),
    }
    let db = rusqlite::Connection::open(dir.path().join("shop.db")).unwrap();
    let left: i64 = db.query_row("SELECT count(*) FROM orders", [], |r| r.get(0)).unwrap();
    assert_eq!(left, 1000);
}

#[test]
fn the_organizer_sorts_files_into_folders_by_extension() {
    let toml =
        "[tools.organize.grants.fs.workspace]\npath = \"workspace\"\nmode = \"read-write\"\n";
    let (host, dir) = example_host(toml);
    let workspace = dir.path().join("workspace");
    for name in ["a.txt", "b.PDF", "README"] {
        std::fs::write(workspace.join(name), name).unwrap();
    }
    host.call("organize", "{}").unwrap();
    for path in ["txt/a.txt", "pdf/b.PDF", "other/README"] {
        assert!(workspace.join(path).is_file(), "{path} missing");
    }
    let dry = host.call("organize", r#"{"folder": "txt", "dry_run": true}"#).unwrap();
    assert_eq!(dry.output, r#"[{"from":"txt/a.txt","to":"txt/txt/a.txt"}]"#);
    assert!(workspace.join("txt/a.txt").is_file(), "a dry run moves nothing");
}

#[test]
fn tidying_past_the_deletion_limit_removes_nothing() {
    let toml = "[tools.tidy.grants.fs.workspace]\npath = \"workspace\"\nmode = \"read-write\"\n\
                deletes_per_call = 3\n";
    let (host, dir) = example_host(toml);
    let workspace = dir.path().join("workspace");
    for n in 0..5 {
        std::fs::write(workspace.join(format!("{n}.tmp")), "x").unwrap();
    }
    let error = host.call("tidy", r#"{"suffixes": [".tmp"]}"#).unwrap_err().to_string();
    assert!(error.contains("limit 3 files per call (3 used)"), "{error}");
    assert_eq!(std::fs::read_dir(&workspace).unwrap().count(), 5, "every deletion was undone");
}

#[test]
fn the_tools_directory_is_watched_added_replaced_broken_and_removed_files_apply_to_the_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools");
    std::fs::create_dir(&tools).unwrap();
    std::fs::copy(crate::support::built("tools").join("echo.wasm"), tools.join("a.wasm")).unwrap();
    let host = crate::support::host_over(std::slice::from_ref(&tools), Default::default());
    assert!(host.call("echo", r#"{"text": "v1"}"#).is_ok());
    let version = host.watch_tools();

    // Added: a new file's tools are offered to the next call.
    let csv = crate::support::built("tools").join("csv-stats.wasm");
    std::fs::copy(&csv, tools.join("b.wasm")).unwrap();
    crate::support::settled(&host);
    assert!(host.call("csv_stats", &json!({"csv": "a\n1\n"}).to_string()).is_ok());
    assert!(version.has_changed().unwrap(), "a reload is announced");

    // Broken: a file that no longer loads keeps its previous version in force.
    std::fs::write(tools.join("a.wasm"), b"not a component").unwrap();
    crate::support::settled(&host);
    assert!(host.call("echo", r#"{"text": "still"}"#).is_ok(), "the old echo stays");

    // Replaced: another component under the same name takes over.
    std::fs::copy(&csv, tools.join("a.wasm")).unwrap();
    crate::support::settled(&host);
    assert!(matches!(host.call("echo", "{}"), Err(CallError::UnknownTool(_))));
    let names: Vec<_> = host.tools().iter().map(|t| t.name.clone()).collect();
    assert_eq!(names, ["csv_stats"], "b.wasm's copy of csv_stats clashes and is refused");

    // Removed: its tools are gone.
    std::fs::remove_file(tools.join("a.wasm")).unwrap();
    std::fs::remove_file(tools.join("b.wasm")).unwrap();
    crate::support::settled(&host);
    let args = json!({"csv": "a\n1\n"}).to_string();
    assert!(matches!(host.call("csv_stats", &args), Err(CallError::UnknownTool(_))));
    assert!(host.tools().is_empty());
}
