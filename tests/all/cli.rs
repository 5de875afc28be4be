//! The `moat` command: what a person sees, and exit statuses scripts can rely on.

use crate::support::built;
use std::process::{Command, Output};

fn moat(args: &[&str]) -> Output {
    let tools = built("tools");
    let tests = built("tests");
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_moat"))
        .current_dir(dir.path())
        .arg("--tools")
        .arg(&tools)
        .arg("--tools")
        .arg(&tests)
        .args(args)
        .output()
        .expect("moat runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn tools_lists_each_tool_with_effects_and_schema() {
    let out = moat(&["tools"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("echo  Returns the text it is given, unchanged."), "{stdout}");
    assert!(stdout.contains("effects: none (read-only)"), "{stdout}");
    assert!(stdout.contains(r#""required":["text"]"#), "{stdout}");
}

#[test]
fn tools_json_is_machine_readable() {
    let out = moat(&["tools", "--json"]);
    let tools: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(tools.as_array().unwrap().iter().any(|t| t["name"] == "csv_stats"));
}

#[test]
fn call_prints_the_result_then_the_usage() {
    let out = moat(&["call", "echo", "--args", r#"{"text":"hi"}"#]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "\"hi\"\n");
    let stderr = text(&out.stderr);
    for field in ["fuel ", "peak memory ", "wall time "] {
        assert!(stderr.contains(field), "{stderr}");
    }
}

#[test]
fn a_refused_call_exits_with_status_2_and_says_why() {
    let out = moat(&["call", "spin", "--fuel", "1000000"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("refused: tool `spin` exceeded its fuel budget"),
        "{}",
        text(&out.stderr)
    );

    let out = moat(&["call", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no tool `nope` is loaded") && stderr.contains("loaded tools: "),
        "{stderr}"
    );

    let out = moat(&["call", "echo", "--args", "{\"text\":"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("invalid arguments for `echo`: not JSON"));
}

#[test]
fn a_wrong_config_key_stops_moat_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("moat.toml");
    std::fs::write(&config, "[budgets]\nwall_tim = \"1s\"\n").unwrap();
    let out = moat(&["--config", config.to_str().unwrap(), "tools"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("moat.toml") && stderr.contains("unknown field `wall_tim`"),
        "{stderr}"
    );
}

#[test]
fn per_tool_budgets_from_the_config_apply() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("moat.toml");
    std::fs::write(&config, "[tools.huge_output.budgets]\noutput = \"1 KiB\"\n").unwrap();
    let out = moat(&[
        "--config",
        config.to_str().unwrap(),
        "call",
        "huge_output",
        "--args",
        r#"{"bytes":2000}"#,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("exceeded its output budget: limit 1 KiB"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn componentize_refuses_a_file_that_is_not_a_core_module() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("junk.wasm");
    std::fs::write(&input, b"junk").unwrap();
    let out = moat(&[
        "componentize",
        input.to_str().unwrap(),
        "-o",
        dir.path().join("out.wasm").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("junk.wasm"));
}

#[test]
fn batch_runs_every_call_on_one_host_and_reports_each_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("session.jsonl");
    std::fs::write(
        &session,
        concat!(
            "# a comment\n",
            "{\"tool\": \"spin\", \"budgets\": {\"fuel\": 1000000}}\n",
            "{\"tool\": \"echo\", \"args\": {\"text\": \"after\"}}\n",
            "{\"tool\": \"echo\", \"arguments\": {}}\n",
        ),
    )
    .unwrap();
    let out = moat(&["batch", session.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("refused: tool `spin` exceeded its fuel budget: limit 1000000"),
        "{stdout}"
    );
    assert!(stdout.contains("  \"after\"\n"), "{stdout}");
    assert!(stdout.contains("line 4: not a call: unknown field `arguments`"), "{stdout}");
    assert_eq!(out.status.code(), Some(1), "a malformed line makes the batch fail at the end");
}

#[test]
fn every_toml_example_in_the_readme_is_a_valid_configuration() {
    let readme = std::fs::read_to_string(crate::support::root().join("README.md")).unwrap();
    let blocks: Vec<&str> =
        readme.split("```toml\n").skip(1).map(|rest| rest.split("```").next().unwrap()).collect();
    assert!(blocks.len() >= 5, "{} blocks", blocks.len());
    for block in blocks {
        if let Err(error) = moat::Config::parse(block, std::path::Path::new("README.md")) {
            panic!("{error}\nin:\n{block}");
        }
    }
}

#[test]
fn a_reader_going_away_ends_moat_quietly_not_with_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_moat"))
        .current_dir(dir.path())
        .arg("--tools")
        .arg(built("tests"))
        .arg("tools")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("moat runs");
    // The reader is gone before moat writes its first line (`moat tools | head -0`).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
