//! Controls the agent cannot reset by naming things: every call belongs to the principal the
//! host assigns (here the stdio connection of `moat serve`, or the user of `moat call`), and
//! limits per principal over the last hour and day, and loop detection over the principal's
//! recent calls, hold whatever task and session labels the agent sends in `_meta`.

use crate::mcp::{refusal, Client};
use crate::support::built;
use serde_json::{json, Value};

fn message(result: &Value) -> String {
    refusal(result)["message"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_new_task_label_in_each_call_does_not_reset_the_callers_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::start(dir.path(), "[limits.principal]\ncalls_per_hour = 3\n");
    for n in 0..3 {
        let meta = json!({"moat/task": format!("task-{n}"), "moat/session": format!("s{n}")});
        let result = client.call("echo", json!({"text": format!("call {n}")}), meta);
        assert_eq!(result["isError"], false, "{result}");
    }
    let result = client.call("echo", json!({"text": "one more"}), json!({"moat/task": "fresh"}));
    assert_eq!(refusal(&result)["kind"], "principal_limit", "{result}");
    let said = message(&result);
    assert!(said.contains("caller `stdio` reached its limit of 3 calls per hour"), "{said}");
    assert!(said.contains("(3 used)"), "{said}");
    assert!(client.hang_up().success());
}

#[test]
fn files_deleted_under_new_task_names_add_up_for_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    for n in 0..9 {
        std::fs::write(dir.path().join(format!("data/f{n}")), "precious").unwrap();
    }
    let toml = "[confidence]\nhigh = 0\n[limits.principal]\ndeletes_per_hour = 5\n\
                [tools.fs_remove.grants.fs.data]\npath = \"data\"\nmode = \"read-write\"\n\
                deletes_per_task = 5\n";
    let mut client = Client::start(dir.path(), toml);
    let mut removed = 0;
    for n in 0..9 {
        let args = json!({"grant": "data", "path": format!("f{n}")});
        let result = client.call("fs_remove", args, json!({"moat/task": format!("t{n}")}));
        if result["isError"] == false {
            removed += 1;
            continue;
        }
        let said = result["content"][0]["text"].as_str().unwrap_or_default().to_owned();
        assert!(said.contains("limit 5 files per hour for the caller"), "{said}");
        assert!(said.contains("(5 used)"), "{said}");
    }
    assert_eq!(removed, 5, "five deletions, whatever the task names");
    let left = std::fs::read_dir(dir.path().join("data")).unwrap().count();
    assert_eq!(left, 4, "nothing was deleted past the caller's limit");
    assert!(client.hang_up().success());
}

#[test]
fn a_new_session_label_in_each_call_does_not_reset_loop_detection() {
    let dir = tempfile::tempdir().unwrap();
    let mut client =
        Client::start(dir.path(), "[loops]\nrepeats = 3\nretries = 0\nsame_error = 0\n");
    for n in 0..3 {
        let meta = json!({"moat/session": format!("s{n}"), "moat/task": format!("t{n}")});
        assert_eq!(client.call("ok", json!({}), meta)["isError"], false);
    }
    let result = client.call("ok", json!({}), json!({"moat/session": "brand-new"}));
    assert_eq!(refusal(&result)["kind"], "loop", "{result}");
    let said = message(&result);
    assert!(said.contains("`stdio` made this exact call of `ok` 3 times"), "{said}");
    assert!(said.contains("whatever their session or task"), "{said}");
    // Another call is not a loop.
    assert_eq!(client.call("echo", json!({"text": "x"}), json!({}))["isError"], false);
    assert!(client.hang_up().success());
}

#[test]
fn a_failing_call_retried_under_new_labels_is_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[loops]\nrepeats = 0\nretries = 2\nsame_error = 0\n[breakers]\nfailures = 0\n\
                task_failures = 0\ntask_no_progress = 0\nfailure_rate = 0\n";
    let mut client = Client::start(dir.path(), toml);
    for n in 0..3 {
        let meta = json!({"moat/session": format!("s{n}"), "moat/task": format!("t{n}")});
        let result = client.call("flaky", json!({"fail": true}), meta);
        assert_eq!(refusal(&result)["kind"], "tool_error", "{result}");
    }
    let result = client.call("flaky", json!({"fail": true}), json!({"moat/session": "s9"}));
    assert_eq!(refusal(&result)["kind"], "loop", "{result}");
    assert!(message(&result).contains("failed 3 times in a row"), "{result}");
    assert!(client.hang_up().success());
}

#[test]
fn the_callers_windows_hold_across_moat_call_processes() {
    let dir = tempfile::tempdir().unwrap();
    let tests = built("tests");
    let toml = format!(
        "state_dir = \"state\"\n[plugins]\ntools = [{tests:?}]\n[limits.principal]\n\
         calls_per_day = 2\n"
    );
    std::fs::write(dir.path().join("moat.toml"), toml).unwrap();
    let call = |task: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_moat"))
            .current_dir(dir.path())
            .args(["--config", "moat.toml", "call", "ok", "--task", task, "--args", "{}"])
            .output()
            .expect("moat runs")
    };
    assert!(call("a").status.success());
    assert!(call("b").status.success());
    let out = call("c");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("reached its limit of 2 calls per day"), "{stderr}");
    assert!(stderr.contains("cli:uid"), "the caller is the local user: {stderr}");
}
