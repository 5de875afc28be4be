//! Tools and guards written in Python (componentize-py, from moat's own WIT worlds) run like
//! any other: listed with the schema they describe, called through the whole pipeline, and
//! sandboxed; a Python guard denies and allows as it says. Their runtime needs WASI, which
//! they get restricted: no file of the host, an empty environment, no network.

use crate::support::{built, host_over};
use serde_json::{json, Value};

fn output(host: &moat::Host, tool: &str, args: Value) -> Value {
    let response = host.call(tool, &args.to_string()).unwrap_or_else(|e| panic!("{tool}: {e}"));
    serde_json::from_str(&response.output).unwrap()
}

#[test]
fn a_python_tool_is_listed_with_its_schema_and_returns_correct_results() {
    let host = host_over(&[built("python")], moat::Budgets::default());
    let tools = host.tools();
    let tool = tools.iter().find(|t| t.name == "word_stats").expect("word_stats is loaded");
    assert_eq!(tool.input_schema["required"], json!(["text"]));
    let stats =
        output(&host, "word_stats", json!({"text": "The cat, the hat; THE bat.", "top": 2}));
    assert_eq!(
        stats,
        json!({"words": 6, "distinct": 4, "top": [{"word": "the", "count": 3}, {"word": "bat", "count": 1}]})
    );
    let error = host.call("word_stats", r#"{"text": 42}"#).unwrap_err();
    assert_eq!(error.kind(), "invalid_arguments", "{error}");
}

#[test]
fn a_python_tool_cannot_read_host_files_environment_or_open_a_socket() {
    // The host process has an environment; the tool must not see any of it.
    assert!(std::env::vars().count() > 0);
    let host = host_over(&[built("tests-python")], moat::Budgets::default());
    let read = output(&host, "py_read_file", json!({"path": "/etc/passwd"}));
    assert_eq!(read["ok"], false, "{read}");
    assert!(read["error"].as_str().unwrap().contains("No such file"), "{read}");
    let env = output(&host, "py_env", json!({"name": "PATH"}));
    assert_eq!(env, json!({"value": null, "count": 0}));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connect = output(&host, "py_connect", json!({"host": "127.0.0.1", "port": port}));
    assert_eq!(connect["ok"], false, "{connect}");
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "nothing reached the listener");
}

/// A host over the example tools with the Python guard `no-internal-urls` as its only policy.
fn host_guarded_by_python() -> (moat::Host, tempfile::TempDir) {
    let state = tempfile::tempdir().expect("a temporary directory");
    let mut config = crate::support::config_in(state.path());
    crate::support::without_controls(&mut config);
    config.plugins.tools = vec![built("tools")];
    config.plugins.policies = built("python-policies");
    let (host, errors) = moat::Host::new(config).expect("the engine starts");
    assert!(errors.is_empty(), "unexpected load errors: {errors:?}");
    (host, state)
}

#[test]
fn a_python_guard_denies_calls_aimed_at_internal_addresses_and_allows_the_rest() {
    let (host, _state) = host_guarded_by_python();
    let policies = host.policies().current();
    assert!(policies.iter().any(|p| p.name == "no-internal-urls"), "the Python guard is loaded");
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:6379/",
        "https://10.0.0.7/admin",
        "http://[::ffff:127.0.0.1]/",
        "http://printer.local/",
    ] {
        let (stage, reason) =
            crate::support::refused(host.call("echo", &json!({"text": url}).to_string()));
        assert_eq!(stage, moat::error::Stage::BeforeCall, "{url}");
        assert!(reason.contains(url) && reason.contains("points inside"), "{url}: {reason}");
    }
    for text in ["https://example.com/report", "no URL at all", "see localhost:80 (not a URL)"] {
        let response = host.call("echo", &json!({"text": text}).to_string());
        let echoed = json!(text).to_string();
        assert_eq!(response.map(|r| r.output).ok(), Some(echoed), "{text} is allowed");
    }
}
