//! The audit log through the `moat` command: a process killed at any moment loses no
//! acknowledged call; verify, show and export; a task rolled back restores files and rows
//! exactly; secrets never reach the log.

use crate::support::built;
use moat::audit::checkpoint::{parse_public, KeyFiles};
use moat::audit::read::{lines, Line};
use moat::audit::{self, Audit, AuditConfig, Event};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A directory with a `moat.toml` (state in `state/`, test tools, confidence gate off).
fn sandbox(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let tools = built("tests").display().to_string();
    let echo = built("tools").display().to_string();
    let toml = format!(
        "state_dir = \"state\"\n[plugins]\ntools = [{echo:?}, {tools:?}]\n\
         [confidence]\nhigh = 0\n{extra}"
    );
    std::fs::write(dir.path().join("moat.toml"), toml).unwrap();
    dir
}

fn moat(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moat"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("moat runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn audit_dir(dir: &Path) -> std::path::PathBuf {
    dir.join("state/audit")
}

/// Tasks of the calls whose result the log records as successful.
fn succeeded(dir: &Path) -> HashSet<String> {
    let mut ok = HashSet::new();
    for line in lines(&audit::log_path(&audit_dir(dir))).unwrap() {
        if let Line::Record { record, .. } = line.unwrap() {
            if let Event::Result { task, ok: true, .. } = record.event {
                ok.insert(task);
            }
        }
    }
    ok
}

fn verify_ok(dir: &Path) {
    let keys = KeyFiles::new(dir.join("state/keys/audit.key"));
    let public = parse_public(&std::fs::read_to_string(&keys.public).unwrap()).unwrap();
    let report = audit::verify::verify(&audit_dir(dir), &public).unwrap();
    assert!(report.problem.is_none(), "{:?}", report.problem);
}

/// A pseudo-random number below `n`, different on each call.
fn random_below(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    blake3::hash(&nanos.as_nanos().to_le_bytes()).as_bytes()[0] as u64 * n / 256
}

#[test]
fn a_process_killed_at_random_points_loses_no_acknowledged_call() {
    let dir = sandbox("");
    let mut acknowledged_in = Vec::new();
    for round in 0..10 {
        let calls: String = (0..3000)
            .map(|i| format!("{{\"tool\": \"echo\", \"args\": {{\"text\": \"r{round}-{i}\"}}, \"task\": \"r{round}-{i}\"}}\n"))
            .collect();
        std::fs::write(dir.path().join("calls.jsonl"), calls).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_moat"))
            .current_dir(dir.path())
            .args(["batch", "calls.jsonl"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (first, answering) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            // A call is acknowledged when its output is printed: `  "r3-17"`.
            let mut acknowledged = Vec::new();
            for line in stdout.lines().map_while(Result::ok) {
                if let Some(task) = line.strip_prefix("  \"") {
                    acknowledged.push(task.trim_end_matches('"').to_owned());
                    let _ = first.send(());
                }
            }
            acknowledged
        });
        // Wait for the host to start answering, then kill it at a random moment.
        answering.recv_timeout(Duration::from_secs(60)).expect("the batch starts answering");
        std::thread::sleep(Duration::from_millis(random_below(300)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acknowledged = reader.join().unwrap();
        // The next process to open the log recovers it; it then verifies.
        let keys = KeyFiles::new(dir.path().join("state/keys/audit.key"));
        drop(Audit::open(&audit_dir(dir.path()), &keys, &AuditConfig::default()).unwrap());
        verify_ok(dir.path());
        let recorded = succeeded(dir.path());
        let lost: Vec<&String> = acknowledged.iter().filter(|t| !recorded.contains(*t)).collect();
        assert!(lost.is_empty(), "round {round}: acknowledged but not in the log: {lost:?}");
        acknowledged_in.push(acknowledged.len());
    }
    // The kills came while calls were being answered, not before or after.
    assert!(acknowledged_in.iter().any(|n| *n > 0), "{acknowledged_in:?}");
    assert!(acknowledged_in.iter().all(|n| *n < 3000), "{acknowledged_in:?}");
    eprintln!("calls acknowledged before each kill: {acknowledged_in:?}");
}

#[test]
fn verify_show_and_export_from_the_command_line() {
    let dir = sandbox("");
    let out = moat(dir.path(), &["call", "echo", "--args", r#"{"text":"hi"}"#, "--task", "t1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    moat(dir.path(), &["call", "spin", "--fuel", "1000000", "--task", "t2"]);

    let out = moat(dir.path(), &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).starts_with("ok: "), "{}", text(&out.stdout));

    let out = moat(dir.path(), &["audit", "show", "--task", "t2"]);
    let shown = text(&out.stdout);
    assert!(shown.contains("call        task t2: spin({})"), "{shown}");
    assert!(shown.contains("budget      call #"), "{shown}");
    assert!(shown.contains("hit its fuel budget: used"), "{shown}");
    assert!(!shown.contains("task t1"), "{shown}");

    let out = moat(dir.path(), &["audit", "export", "--event", "call"]);
    let exported: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(exported.len(), 2);
    assert_eq!(exported[0]["tool"], "echo");
    assert_eq!(exported[0]["hash"].as_str().unwrap().len(), 64);

    // One flipped byte: verify names the record and exits 2.
    let log = audit::log_path(&audit_dir(dir.path()));
    let tampered = std::fs::read_to_string(&log).unwrap().replacen("\"t1\"", "\"t9\"", 1);
    std::fs::write(&log, tampered).unwrap();
    let out = moat(dir.path(), &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(2));
    let said = text(&out.stdout);
    assert!(said.starts_with("BAD record 2 (line 2): "), "{said}");
}

/// A full dump of a table, every value with its type.
fn dump(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut statement =
        conn.prepare("SELECT rowid, id, qty, price, note FROM orders ORDER BY rowid").unwrap();
    statement
        .query_map([], |row| {
            let values: Vec<String> =
                (0..5).map(|i| format!("{:?}", row.get_ref(i).unwrap())).collect();
            Ok(values.join("|"))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Every file under `dir` with its content.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(tree(&path));
        } else {
            files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    files.sort();
    files
}

#[test]
fn a_task_rolled_back_restores_files_and_rows_exactly() {
    let grants = "[tools.fs_write.grants.fs.work]\npath = \"work\"\nmode = \"read-write\"\n\
                  [tools.fs_remove.grants.fs.work]\npath = \"work\"\nmode = \"read-write\"\n\
                  [tools.fs_rename.grants.fs.work]\npath = \"work\"\nmode = \"read-write\"\n\
                  [tools.sql_execute.grants.sql.shop]\npath = \"shop.db\"\ntables = [\"orders\"]\n\
                  operations = [\"select\", \"insert\", \"update\", \"delete\"]\n";
    let dir = sandbox(grants);
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    std::fs::write(work.join("a.txt"), "alpha").unwrap();
    std::fs::write(work.join("sub/b.bin"), [0u8, 159, 146, 150]).unwrap();
    let db = dir.path().join("shop.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, qty INTEGER, price REAL, note);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
         INSERT INTO orders SELECT i, i * 3, i / 7.0, CASE WHEN i % 2 THEN x'00ff' ELSE 'n' || i END FROM n;",
    )
    .unwrap();
    drop(conn);
    let (files, rows) = (tree(&work), dump(&db));

    let call = |tool: &str, args: &str| {
        let out = moat(dir.path(), &["call", tool, "--args", args, "--task", "cleanup"]);
        assert!(out.status.success(), "{tool}: {}", text(&out.stderr));
    };
    call("fs_write", r#"{"grant": "work", "path": "a.txt", "text": "changed"}"#);
    call("fs_write", r#"{"grant": "work", "path": "new/c.txt", "text": "created"}"#);
    call("fs_remove", r#"{"grant": "work", "path": "sub/b.bin"}"#);
    call("fs_rename", r#"{"grant": "work", "path": "a.txt", "to": "moved.txt"}"#);
    call("sql_execute", r#"{"grant": "shop", "statement": "DELETE FROM orders WHERE id <= 4"}"#);
    call(
        "sql_execute",
        r#"{"grant": "shop", "statement": "UPDATE orders SET qty = qty + 1, note = NULL WHERE id BETWEEN 10 AND 12"}"#,
    );
    call(
        "sql_execute",
        r#"{"grant": "shop", "statement": "INSERT INTO orders VALUES (99, 1, 0.1, 'x')"}"#,
    );
    assert_ne!(tree(&work), files);
    assert_ne!(dump(&db), rows);

    let out = moat(dir.path(), &["task", "rollback", "cleanup"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.starts_with("rolled back task cleanup: "), "{said}");
    assert_eq!(
        tree(&work).into_iter().filter(|(p, _)| !p.ends_with("/new")).collect::<Vec<_>>(),
        files
    );
    assert_eq!(dump(&db), rows);

    // The rollback is recorded; a second one finds nothing left to undo.
    let out = moat(dir.path(), &["task", "rollback", "cleanup"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("has no effects to undo"), "{}", text(&out.stderr));
    let out = moat(dir.path(), &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn secrets_never_reach_the_log_or_the_blobs() {
    let dir = sandbox(
        "[secrets.TOKEN]\nfile = \"token.txt\"\n[tools.secret_echo.grants]\nsecrets = [\"TOKEN\"]\n\
         [tools.secret_in_error.grants]\nsecrets = [\"TOKEN\"]\n",
    );
    let secret = "s3cr3t-value-0123456789";
    std::fs::write(dir.path().join("token.txt"), secret).unwrap();
    moat(dir.path(), &["call", "secret_echo", "--args", r#"{"name": "TOKEN"}"#]);
    moat(dir.path(), &["call", "secret_in_error", "--args", r#"{"name": "TOKEN"}"#]);
    let log = std::fs::read_to_string(audit::log_path(&audit_dir(dir.path()))).unwrap();
    assert!(log.contains("the secret is [redacted:TOKEN]"), "{log}");
    let files = tree(&audit_dir(dir.path()));
    for (path, bytes) in files {
        let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert!(!found, "the secret is in {path}");
    }
}
