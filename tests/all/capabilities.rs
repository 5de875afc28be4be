//! Capabilities: nothing is granted by default; fs grants keep paths inside and meter
//! changes; kv is private and staged; secrets never leave in a result, an error or a log;
//! and a "no" after the call undoes the call's file effects.

use crate::support::built;
use moat::{CallError, CallRequest, Config, Effect, Gate, Host, Verdict};
use serde_json::json;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A host over the test plugins with `moat_toml` (written next to a `data/` directory
/// holding `keep.txt`), and that directory.
fn host_with(moat_toml: &str, gate: Arc<dyn Gate>) -> (Host, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/keep.txt"), "precious").unwrap();
    let path = dir.path().join("moat.toml");
    // Not about confidence: high-stakes tools run without one.
    std::fs::write(&path, format!("[confidence]\nhigh = 0\n{moat_toml}")).unwrap();
    let mut config = Config::load(&path).unwrap();
    crate::support::without_controls(&mut config);
    config.plugins.tools = vec![built("tests")];
    let (host, errors) = Host::with_gate(config, gate).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    (host, dir)
}

fn host(moat_toml: &str) -> (Host, tempfile::TempDir) {
    host_with(moat_toml, Arc::new(moat::call::AllowAll))
}

fn read_write(tool: &str) -> String {
    format!("[tools.{tool}.grants.fs.data]\npath = \"data\"\nmode = \"read-write\"\n")
}

/// The failure message of a call the tool itself failed (capability errors arrive so).
fn failure(result: Result<moat::CallResponse, CallError>) -> String {
    match result {
        Err(CallError::Tool { message, .. }) => message,
        other => panic!("expected a tool failure, got {other:?}"),
    }
}

fn call(host: &Host, tool: &str, args: serde_json::Value) -> Result<moat::CallResponse, CallError> {
    host.call(tool, &args.to_string())
}

#[test]
fn nothing_is_granted_by_default_and_the_denial_names_tool_and_capability() {
    let (host, _dir) = host("");
    let cases = [
        (
            "fs_read",
            json!({"grant": "data", "path": "keep.txt"}),
            "NotGranted(\"tool `fs_read` has no fs grant `data`\")",
        ),
        (
            "sql_query",
            json!({"grant": "db", "statement": "SELECT 1"}),
            "NotGranted(\"tool `sql_query` has no sql grant `db`\")",
        ),
        (
            "http_send",
            json!({"method": "GET", "url": "http://127.0.0.1:1/"}),
            "NotGranted(\"tool `http_send` has no http grant\")",
        ),
        ("kv_get", json!({"key": "k"}), "NotGranted(\"tool `kv_get` has no kv grant\")"),
        (
            "secret_echo",
            json!({"name": "TOKEN"}),
            "NotGranted(\"tool `secret_echo` has no grant for secret `TOKEN`\")",
        ),
    ];
    for (tool, args, expected) in cases {
        assert_eq!(failure(call(&host, tool, args)), expected, "{tool}");
    }
}

#[test]
fn a_granted_directory_can_be_read_written_and_listed() {
    let toml = [read_write("fs_write"), read_write("fs_read"), read_write("fs_list")].concat();
    let (host, dir) = host(&toml);
    call(&host, "fs_write", json!({"grant": "data", "path": "notes/today.txt", "text": "hello"}))
        .unwrap();
    assert_eq!(std::fs::read_to_string(dir.path().join("data/notes/today.txt")).unwrap(), "hello");
    let read = call(&host, "fs_read", json!({"grant": "data", "path": "keep.txt"})).unwrap();
    assert_eq!(read.output, r#""precious""#);
    let listed = call(&host, "fs_list", json!({"grant": "data", "path": ""})).unwrap();
    assert_eq!(listed.output, r#"["keep.txt","notes"]"#);
}

#[test]
fn paths_cannot_escape_the_grant() {
    let (host, dir) = host(&read_write("fs_read"));
    std::fs::write(dir.path().join("outside.txt"), "secret").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.path().join("outside.txt"), dir.path().join("data/link"))
        .unwrap();
    for path in ["../outside.txt", "/etc/passwd", "notes/../../outside.txt", "link"] {
        let message = failure(call(&host, "fs_read", json!({"grant": "data", "path": path})));
        assert!(message.starts_with("OutOfScope("), "{path}: {message}");
    }
}

#[test]
fn a_rename_cannot_move_a_file_out_of_the_grant() {
    let (host, dir) = host(&read_write("fs_rename"));
    for to in ["../stolen.txt", "/tmp/stolen.txt", "sub/../../stolen.txt"] {
        let message = failure(call(
            &host,
            "fs_rename",
            json!({"grant": "data", "path": "keep.txt", "to": to}),
        ));
        assert!(message.starts_with("OutOfScope("), "{to}: {message}");
    }
    assert_eq!(std::fs::read_to_string(dir.path().join("data/keep.txt")).unwrap(), "precious");
    assert!(!dir.path().join("stolen.txt").exists());
}

// A tool cannot create a symbolic link: no interface offers it, so the links a hostile tool
// could use are the ones already there (tested above, resolved by cap-std).

#[test]
fn a_read_only_grant_refuses_changes() {
    let (host, dir) = host("[tools.fs_write.grants.fs.data]\npath = \"data\"\n");
    let message =
        failure(call(&host, "fs_write", json!({"grant": "data", "path": "keep.txt", "text": "x"})));
    assert_eq!(message, "ReadOnly(\"fs grant `data` is read-only\")");
    assert_eq!(std::fs::read_to_string(dir.path().join("data/keep.txt")).unwrap(), "precious");
}

#[test]
fn a_single_file_grant_reaches_that_file_only() {
    let (host, _dir) = host("[tools.fs_read.grants.fs.keep]\npath = \"data/keep.txt\"\n");
    assert_eq!(
        call(&host, "fs_read", json!({"grant": "keep", "path": "keep.txt"})).unwrap().output,
        r#""precious""#
    );
    let message = failure(call(&host, "fs_read", json!({"grant": "keep", "path": "other.txt"})));
    assert!(message.contains("is not `keep.txt`, the only file of fs grant `keep`"), "{message}");
}

#[test]
fn deletions_are_limited_per_call_and_nothing_is_deleted_past_the_limit() {
    let toml = format!("{}deletes_per_call = 2\n", read_write("fs_remove_many"));
    let (host, dir) = host(&toml);
    for name in ["a", "b", "c"] {
        std::fs::write(dir.path().join("data").join(name), name).unwrap();
    }
    let message =
        failure(call(&host, "fs_remove_many", json!({"grant": "data", "paths": ["a", "b", "c"]})));
    assert_eq!(
        message,
        "LimitExceeded(\"would delete 1 file at `c` in fs grant `data`; limit 2 files per call (2 used)\")"
    );
    for name in ["a", "b", "c"] {
        assert!(dir.path().join("data").join(name).exists(), "{name} was deleted by a failed call");
    }
}

#[test]
fn bytes_written_are_limited_per_task_across_calls() {
    let toml = format!("{}write_per_task = 10\n", read_write("fs_write"));
    let (host, _dir) = host(&toml);
    let write = |path: &str| {
        let args = json!({"grant": "data", "path": path, "text": "123456"}).to_string();
        host.run(&CallRequest { task: Some("t1".into()), ..CallRequest::new("fs_write", &args) })
    };
    write("one.txt").unwrap();
    let message = failure(write("two.txt"));
    assert_eq!(message, "LimitExceeded(\"would write 6 B at `two.txt` in fs grant `data`; limit 10 B per task (6 B used)\")");
    let other_task = json!({"grant": "data", "path": "three.txt", "text": "123456"}).to_string();
    host.run(&CallRequest { task: Some("t2".into()), ..CallRequest::new("fs_write", &other_task) })
        .unwrap();
}

#[test]
fn a_failed_call_undoes_its_file_writes() {
    let (host, dir) = host(&read_write("write_then_fail"));
    let message = failure(call(
        &host,
        "write_then_fail",
        json!({"grant": "data", "path": "keep.txt", "text": "overwritten"}),
    ));
    assert_eq!(message, "failing after the write");
    assert_eq!(std::fs::read_to_string(dir.path().join("data/keep.txt")).unwrap(), "precious");
    call(&host, "write_then_fail", json!({"grant": "data", "path": "new.txt", "text": "x"}))
        .unwrap_err();
    assert!(!dir.path().join("data/new.txt").exists());
}

/// Says no to every result, and records the effects it was shown.
#[derive(Default)]
struct RejectResults {
    seen: Mutex<Vec<Effect>>,
}

impl Gate for RejectResults {
    fn check_effect(&self, _call: &moat::CallView, effect: &Effect) -> Verdict {
        self.seen.lock().unwrap().push(effect.clone());
        Verdict::Allow
    }
    fn check_result(&self, _call: &moat::CallView, _output: &str) -> Verdict {
        Verdict::Deny("the output failed validation".into())
    }
}

#[test]
fn a_no_after_the_call_rolls_back_writes_removals_and_renames() {
    let gate = Arc::new(RejectResults::default());
    let toml = [read_write("fs_write"), read_write("fs_remove"), read_write("fs_rename")].concat();
    let (host, dir) = host_with(&toml, gate.clone());
    let data = dir.path().join("data");
    let calls = [
        ("fs_write", json!({"grant": "data", "path": "keep.txt", "text": "clobbered"})),
        ("fs_write", json!({"grant": "data", "path": "fresh.txt", "text": "new"})),
        ("fs_remove", json!({"grant": "data", "path": "keep.txt"})),
        ("fs_rename", json!({"grant": "data", "path": "keep.txt", "to": "moved.txt"})),
    ];
    for (tool, args) in calls {
        match call(&host, tool, args) {
            Err(CallError::Denied { reason, .. }) => {
                assert_eq!(reason, "the output failed validation")
            }
            other => panic!("{tool}: expected a denial after the call, got {other:?}"),
        }
        assert_eq!(std::fs::read_to_string(data.join("keep.txt")).unwrap(), "precious", "{tool}");
        assert!(!data.join("fresh.txt").exists() && !data.join("moved.txt").exists(), "{tool}");
    }
    let seen = gate.seen.lock().unwrap();
    assert_eq!(seen.len(), 4, "every effect was shown to the gate before it happened");
    assert_eq!(seen[0].capability, "fs");
    assert_eq!(seen[0].target, "data:keep.txt");
    assert_eq!(seen[0].detail, json!({"bytes": 9, "replaces": 8}));
}

/// Refuses every deletion.
struct NoDeletes;

impl Gate for NoDeletes {
    fn check_effect(&self, _call: &moat::CallView, effect: &Effect) -> Verdict {
        match effect.kind {
            moat::EffectKind::Delete => Verdict::Deny("deletions need a human".into()),
            _ => Verdict::Allow,
        }
    }
}

#[test]
fn an_effect_refused_by_the_gate_does_not_happen() {
    let (host, dir) = host_with(&read_write("fs_remove"), Arc::new(NoDeletes));
    let result = call(&host, "fs_remove", json!({"grant": "data", "path": "keep.txt"}));
    let (stage, reason) = crate::support::refused(result);
    assert_eq!(stage, moat::error::Stage::DuringCall);
    assert_eq!(reason, "fs delete of `data:keep.txt` refused by policy: deletions need a human");
    assert!(dir.path().join("data/keep.txt").exists());
}

#[test]
fn handles_are_limited_and_running_out_is_a_refusal_not_a_crash() {
    let (host, _dir) = host(&read_write("open_handles"));
    let message = failure(call(&host, "open_handles", json!({"grant": "data"})));
    assert_eq!(
        message,
        "after 64 handles: FsError::LimitExceeded(\"too many open handles (limit 64)\")"
    );
    assert!(
        host.call("fs_list", &json!({"grant": "data", "path": ""}).to_string()).is_err(),
        "fs_list has no grant"
    );
}

#[test]
fn kv_is_persistent_and_shared_by_the_tools_of_one_component() {
    let toml = "[tools.kv_set.grants.kv]\n[tools.kv_get.grants.kv]\n";
    let (host, dir) = host(toml);
    call(&host, "kv_set", json!({"key": "greeting", "value": "hi"})).unwrap();
    assert_eq!(call(&host, "kv_get", json!({"key": "greeting"})).unwrap().output, r#""hi""#);
    drop(host);
    let (restarted, _) = host_in(&dir);
    assert_eq!(call(&restarted, "kv_get", json!({"key": "greeting"})).unwrap().output, r#""hi""#);
    assert!(dir.path().join(".moat/kv.sqlite").exists(), "kv lives in the state directory");
}

#[test]
fn kv_changes_of_a_refused_call_are_never_written() {
    let toml = "[tools.kv_set.grants.kv]\n[tools.kv_get.grants.kv]\n";
    let (host, dir) = host_with(toml, Arc::new(RejectResults::default()));
    assert!(matches!(
        call(&host, "kv_set", json!({"key": "k", "value": "v"})),
        Err(CallError::Denied { .. })
    ));
    drop(host);
    let (host, _) = host_in(&dir);
    assert_eq!(call(&host, "kv_get", json!({"key": "k"})).unwrap().output, "null");
}

/// A second host over the same directory (and so the same state).
fn host_in(dir: &tempfile::TempDir) -> (Host, Vec<moat::LoadError>) {
    let mut config = Config::load(&dir.path().join("moat.toml")).unwrap();
    crate::support::without_controls(&mut config);
    config.plugins.tools = vec![built("tests")];
    Host::new(config).unwrap()
}

#[test]
fn secrets_reach_the_tool_but_never_the_result_the_error_or_the_log() {
    let toml = "[secrets.TOKEN]\nfile = \"token.txt\"\n\
                [tools.secret_echo.grants]\nsecrets = [\"TOKEN\"]\n\
                [tools.secret_in_error.grants]\nsecrets = [\"TOKEN\"]\n";
    let (host, dir) = host(toml);
    std::fs::write(dir.path().join("token.txt"), "hunter2-abcdef\n").unwrap();
    let output = call(&host, "secret_echo", json!({"name": "TOKEN"})).unwrap().output;
    assert_eq!(output, r#""the secret is [redacted:TOKEN]""#);
    let message = failure(call(&host, "secret_in_error", json!({"name": "TOKEN"})));
    assert_eq!(message, "could not use [redacted:TOKEN]");
}

#[test]
fn a_missing_secret_source_is_a_clear_refusal() {
    let toml = "[secrets.TOKEN]\nenv = \"MOAT_TEST_SURELY_UNSET\"\n[tools.secret_echo.grants]\nsecrets = [\"TOKEN\"]\n";
    let (host, _dir) = host(toml);
    let message = failure(call(&host, "secret_echo", json!({"name": "TOKEN"})));
    assert_eq!(
        message,
        "Unavailable(\"secret `TOKEN`: environment variable `MOAT_TEST_SURELY_UNSET` is not set\")"
    );
}

#[test]
fn a_typo_in_a_grant_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moat.toml");
    std::fs::write(
        &path,
        "[tools.x.grants.fs.data]\npath = \"data\"\nmode = \"read-write\"\ndeletes_per_cal = 5\n",
    )
    .unwrap();
    let error = Config::load(&path).unwrap_err().to_string();
    assert!(error.contains("unknown field `deletes_per_cal`"), "{error}");
    std::fs::write(&path, "[tools.x.grants]\nnetwork = true\n").unwrap();
    let error = Config::load(&path).unwrap_err().to_string();
    assert!(error.contains("unknown field `network`"), "{error}");
    std::fs::write(&path, "[tools.x.grants.fs.data]\npath = \"data\"\nmode = \"rw\"\n").unwrap();
    let error = Config::load(&path).unwrap_err().to_string();
    assert!(error.contains("unknown variant `rw`"), "{error}");
    let _ = Path::new("");
}

#[test]
fn an_effect_the_tool_did_not_declare_is_refused() {
    let (host, dir) = host(&read_write("undeclared_write"));
    let message = failure(call(
        &host,
        "undeclared_write",
        json!({"grant": "data", "path": "x.txt", "text": "x"}),
    ));
    assert_eq!(
        message,
        "Denied(\"tool `undeclared_write` did not declare the `write` effect, so it may not write `data:x.txt`\")"
    );
    assert!(!dir.path().join("data/x.txt").exists());
}
