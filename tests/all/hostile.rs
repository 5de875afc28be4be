//! Hostile components: each attack gets a clear refusal, and the host serves the next call.
//! (Others live with their subject: unknown imports and malformed files in `loading.rs`,
//! oversized files in `trust.rs`, budgets in `budgets.rs`, handle exhaustion in
//! `capabilities.rs`.)

use crate::support::built;
use moat::{CallError, Config, Host};
use serde_json::json;

/// A host over the test plugins, `effects`' `fs` tools granted `data/` (holding `keep.txt`).
fn host() -> (Host, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/keep.txt"), "precious").unwrap();
    let mut toml = String::from("[confidence]\nhigh = 0\n");
    for tool in ["forged_handle", "dropped_handle"] {
        toml.push_str(&format!(
            "[tools.{tool}.grants.fs.data]\npath = \"data\"\nmode = \"read-only\"\n"
        ));
    }
    std::fs::write(dir.path().join("moat.toml"), toml).unwrap();
    let mut config = Config::load(&dir.path().join("moat.toml")).unwrap();
    crate::support::without_controls(&mut config);
    config.plugins.tools = vec![built("tests")];
    let (host, errors) = Host::new(config).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    (host, dir)
}

fn serves_on(host: &Host) {
    assert_eq!(host.call("ok", "{}").expect("the host serves on").output, r#""ok""#);
}

#[test]
fn a_forged_or_dropped_handle_traps_the_call_and_reaches_nothing() {
    let (host, _dir) = host();
    let attempts = [
        ("forged_handle", json!({"handle": 1})),
        ("forged_handle", json!({"handle": 0xdead})),
        ("forged_handle", json!({"handle": u32::MAX})),
        ("dropped_handle", json!({"grant": "data"})),
    ];
    for (tool, args) in attempts {
        match host.call(tool, &args.to_string()) {
            Err(CallError::Trapped { reason, .. }) => {
                let index = args["handle"].as_u64().unwrap_or(1);
                assert_eq!(reason, format!("unknown handle index {index}"), "{tool} {args}")
            }
            other => panic!("{tool} {args}: expected a trap, got {other:?}"),
        }
        serves_on(&host);
    }
}

#[test]
fn deeply_nested_json_from_a_tool_or_an_agent_is_refused_without_harm() {
    let (host, _dir) = host();
    // `depth` arrays around an empty one.
    let shallow = host.call("nested_output", r#"{"depth": 100}"#).expect("101 deep is fine");
    assert!(shallow.output.starts_with("[[[[") && shallow.output.len() == 202);
    for depth in [129, 5_000] {
        match host.call("nested_output", &json!({ "depth": depth }).to_string()) {
            Err(CallError::BadOutput { reason, .. }) => {
                assert_eq!(reason, "JSON nested deeper than 128 levels", "{depth}")
            }
            other => panic!("{depth}: expected bad output, got {other:?}"),
        }
        serves_on(&host);
    }
    // From the agent's side: arguments nested past the limit are invalid, before anything runs.
    let args = format!("{{\"text\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    match host.call("ok", &args) {
        Err(CallError::InvalidArguments { reason, .. }) => {
            assert!(reason.contains("recursion limit exceeded"), "{reason}")
        }
        other => panic!("expected invalid arguments, got {other:?}"),
    }
    serves_on(&host);
}

/// SECURITY.md maps each threat to tests: every test it names must exist, so the map cannot
/// drift from the code.
#[test]
fn every_test_security_md_names_exists() {
    let root = crate::support::root();
    let security = std::fs::read_to_string(root.join("SECURITY.md")).unwrap();
    let mut sources = String::new();
    let mut dirs = vec![root.join("tests/all"), root.join("host/src"), root.join("cli/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                sources.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let quoted = security.split('`').skip(1).step_by(2);
    let mut named = 0;
    for quote in quoted {
        let (file, function) = match quote.split_once("::") {
            Some((file, function)) => (Some(file), function),
            None => (None, quote),
        };
        if let Some(file) = file.filter(|f| f.ends_with(".rs")) {
            let path = match file.strip_prefix("all/") {
                Some(rest) => root.join("tests/all").join(rest),
                None => root.join("host").join(file),
            };
            assert!(path.is_file(), "SECURITY.md names {file}, which does not exist");
        }
        let is_test_name = function.matches('_').count() >= 3
            && function.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if is_test_name {
            named += 1;
            assert!(sources.contains(&format!("fn {function}(")), "SECURITY.md names `{function}`");
        }
    }
    assert!(named > 50, "SECURITY.md names {named} tests");
}
