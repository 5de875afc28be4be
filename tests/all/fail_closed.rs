//! Guard policies fail closed. A policies directory that `moat.toml` names and that is
//! missing, a policy that fails to load, and a policy removed while serving each refuse every
//! call, with one error naming the file, until it is fixed. Under `[plugins] on_policy_error
//! = "keep-last"` a policy that was in force stays in force in its previous version instead,
//! and the audit log says so; a policy that never loaded has no previous version and refuses
//! under either setting.

use crate::guards::policy;
use crate::mcp::Client;
use crate::support::{built, refused, settled};
use moat::{Config, Host, LoadError};
use serde_json::json;
use std::path::Path;

/// A host over the test tools whose `moat.toml` holds `toml` (after `state_dir`).
fn host(dir: &Path, toml: &str) -> (Host, Vec<LoadError>) {
    let tools = built("tests");
    let text = format!("state_dir = \"state\"\n{toml}");
    std::fs::write(dir.join("moat.toml"), text).unwrap();
    let mut config = Config::load(&dir.join("moat.toml")).unwrap();
    crate::support::without_controls(&mut config);
    config.plugins.tools = vec![tools];
    Host::new(config).unwrap()
}

fn plugins(policies: &str, extra: &str) -> String {
    format!("[plugins]\npolicies = \"{policies}\"\n{extra}")
}

/// The reason every call is refused now, asserting that it is refused.
fn every_call_refused(host: &Host) -> String {
    let (_, reason) = refused(host.call("ok", "{}"));
    assert!(reason.contains("not in force as configured"), "{reason}");
    reason
}

#[test]
fn a_misspelt_policies_directory_refuses_every_call_naming_it_until_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let (host, errors) = host(dir.path(), &plugins("polices", ""));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].to_string().contains("polices: the directory does not exist"), "{errors:?}");
    for _ in 0..2 {
        let reason = every_call_refused(&host);
        assert!(reason.contains("polices: the directory does not exist"), "{reason}");
    }
    std::fs::create_dir(dir.path().join("polices")).unwrap();
    settled(&host);
    assert_eq!(host.call("ok", "{}").unwrap().output, r#""ok""#, "fixed: calls go on");
}

#[test]
fn without_policies_in_moat_toml_a_missing_default_directory_means_no_policies() {
    let dir = tempfile::tempdir().unwrap();
    let (host, errors) = host(dir.path(), "");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(host.call("ok", "{}").unwrap().output, r#""ok""#);
}

#[test]
fn a_policy_that_fails_to_load_at_start_refuses_every_call_under_either_setting() {
    for extra in ["", "on_policy_error = \"keep-last\"\n"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("policies/10-broken.wasm"), b"not wasm").unwrap();
        let (host, errors) = host(dir.path(), &plugins("policies", extra));
        assert_eq!(errors.len(), 1, "{errors:?}");
        let reason = every_call_refused(&host);
        assert!(reason.contains("10-broken.wasm: not a WebAssembly file"), "{extra:?}: {reason}");
        // Fixed by removing the file that never loaded.
        std::fs::remove_file(dir.path().join("policies/10-broken.wasm")).unwrap();
        settled(&host);
        assert_eq!(host.call("ok", "{}").unwrap().output, r#""ok""#, "{extra:?}");
    }
}

#[test]
fn a_policy_broken_or_removed_while_serving_refuses_every_call_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::copy(policy("stamp"), policies.join("50-stamp.wasm")).unwrap();
    let (host, errors) = host(dir.path(), &plugins("policies", ""));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(host.call("ok", "{}").unwrap().output, r#"{"stamped":"ok"}"#);

    std::fs::write(policies.join("50-stamp.wasm"), b"broken").unwrap();
    settled(&host);
    let reason = every_call_refused(&host);
    assert!(reason.contains("50-stamp.wasm: not a WebAssembly file"), "{reason}");

    std::fs::remove_file(policies.join("50-stamp.wasm")).unwrap();
    settled(&host);
    let reason = every_call_refused(&host);
    assert!(reason.contains("50-stamp.wasm: was in force and has been removed"), "{reason}");
    // Another file is no substitute for the one removed.
    std::fs::copy(policy("scripted"), policies.join("60-other.wasm")).unwrap();
    settled(&host);
    every_call_refused(&host);

    std::fs::copy(policy("stamp"), policies.join("50-stamp.wasm")).unwrap();
    settled(&host);
    assert_eq!(host.call("ok", "{}").unwrap().output, r#"{"stamped":"ok"}"#, "restored");

    std::fs::remove_dir_all(&policies).unwrap();
    settled(&host);
    let reason = every_call_refused(&host);
    assert!(reason.contains("policies: the directory does not exist"), "{reason}");
}

#[test]
fn under_keep_last_a_policy_broken_or_removed_stays_in_force_and_that_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::copy(policy("stamp"), policies.join("50-stamp.wasm")).unwrap();
    let (host, errors) =
        host(dir.path(), &plugins("policies", "on_policy_error = \"keep-last\"\n"));
    assert!(errors.is_empty(), "{errors:?}");
    let stamped = r#"{"stamped":"ok"}"#;
    assert_eq!(host.call("ok", "{}").unwrap().output, stamped);
    std::fs::write(policies.join("50-stamp.wasm"), b"broken").unwrap();
    settled(&host);
    assert_eq!(host.call("ok", "{}").unwrap().output, stamped, "the previous version");
    std::fs::remove_file(policies.join("50-stamp.wasm")).unwrap();
    settled(&host);
    assert_eq!(host.call("ok", "{}").unwrap().output, stamped, "still the previous version");
    std::fs::remove_dir_all(&policies).unwrap();
    settled(&host);
    assert_eq!(host.call("ok", "{}").unwrap().output, stamped, "the whole previous set");
    drop(host);

    let log = std::fs::read_to_string(dir.path().join("state/audit/log.jsonl")).unwrap();
    let kept: Vec<&str> =
        log.lines().filter(|line| line.contains("\"event\":\"load_refused\"")).collect();
    assert_eq!(kept.len(), 3, "{log}");
    assert!(kept.iter().all(|line| line.contains("its previous version stays in force")), "{log}");
    assert!(kept[1].contains("has been removed"), "{log}");
}

#[test]
fn through_the_mcp_server_a_misspelt_policies_directory_is_an_error_result_for_every_call() {
    let dir = tempfile::tempdir().unwrap();
    let tools = built("tools");
    let text =
        format!("state_dir = \"state\"\n[plugins]\ntools = [{tools:?}]\npolicies = \"polices\"\n");
    let mut client = Client::start_with_config(dir.path(), &text);
    for text in ["one", "two"] {
        let result = client.call("echo", json!({"text": text}), json!({}));
        assert_eq!(result["isError"], true, "{result}");
        let message = result["structuredContent"]["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("polices: the directory does not exist"), "{result}");
    }
    assert!(client.hang_up().success());
}

#[test]
fn through_the_mcp_server_a_broken_or_removed_policy_refuses_every_call_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::copy(policy("stamp"), policies.join("50-stamp.wasm")).unwrap();
    std::fs::write(policies.join("60-broken.wasm"), b"not wasm").unwrap();
    let tools = built("tools");
    let text = format!(
        "state_dir = \"state\"\n[plugins]\ntools = [{tools:?}]\npolicies = \"policies\"\n{QUIET}"
    );
    let mut client = Client::start_with_config(dir.path(), &text);
    let message = |result: &serde_json::Value| {
        assert_eq!(result["isError"], true, "{result}");
        result["structuredContent"]["error"]["message"].as_str().unwrap_or_default().to_owned()
    };
    let said = message(&client.call("echo", json!({"text": "one"}), json!({})));
    assert!(said.contains("60-broken.wasm: not a WebAssembly file"), "{said}");
    // Fixed: the broken file goes; calls go on under the policy in force.
    std::fs::remove_file(policies.join("60-broken.wasm")).unwrap();
    let result = once_seen(&mut client, "two", |result| result["isError"] == false);
    assert_eq!(result["isError"], false, "{result}");
    // A policy removed while serving: refused again, naming it.
    std::fs::remove_file(policies.join("50-stamp.wasm")).unwrap();
    let removed = |result: &serde_json::Value| result.to_string().contains("has been removed");
    let said = message(&once_seen(&mut client, "three", removed));
    assert!(said.contains("50-stamp.wasm: was in force and has been removed"), "{said}");
    assert!(client.hang_up().success());
}

/// Breakers and loop detection off: [`once_seen`] may call again after a refusal.
const QUIET: &str = "[breakers]\nfailures = 0\nfailure_rate = 0.0\ntask_failures = 0\n\
                     task_no_progress = 0\n[loops]\nrepeats = 0\nretries = 0\nsame_error = 0\n";

/// Calls `echo` until `seen` says the answer shows the change just made to the policies
/// directory. The server's watcher takes a change in within moments, but a client has no way
/// to wait for that, so the first call after a change may still find the directory as it was;
/// each try is another call (other arguments). At most a minute, then the test fails with the
/// last answer.
fn once_seen(
    client: &mut Client,
    what: &str,
    seen: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = std::time::Instant::now();
    for n in 0.. {
        let result = client.call("echo", json!({"text": format!("{what} {n}")}), json!({}));
        if seen(&result) {
            return result;
        }
        let waited = start.elapsed();
        assert!(waited.as_secs() < 60, "the server did not take in the change ({what}): {result}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    unreachable!("the tries end by an answer or a failed assertion")
}
