//! The watched tool and policy directories (`plugin/watch.rs`): a file saved by rename, a
//! directory that appears (or comes back) after the start, a burst of changes, and a call
//! path that lists no directory when nothing changed. No test sleeps: each waits for the
//! watchers (`support::settled`), bounded.

use crate::guards::policy;
use crate::support::{built, component, config_in, settled, without_controls};
use moat::{CallError, Config, Host};
use serde_json::json;
use std::path::{Path, PathBuf};

/// A host over `tools` (which may be missing) and `policies` (not named: missing means none).
fn host(state: &Path, tools: &[PathBuf], policies: &Path) -> Host {
    let mut config: Config = config_in(state);
    without_controls(&mut config);
    config.plugins.tools = tools.to_vec();
    config.plugins.policies = policies.to_owned();
    Host::new(config).expect("the engine starts").0
}

fn names(host: &Host) -> Vec<String> {
    host.tools().into_iter().map(|t| t.name).collect()
}

/// Writes `from`'s bytes to a temporary file beside `to`, then renames it over `to`: how
/// editors and deploy tools save a file atomically.
fn save_by_rename(from: &Path, to: &Path) {
    let name = to.file_name().unwrap().to_string_lossy();
    let temporary = to.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&temporary, std::fs::read(from).unwrap()).unwrap();
    std::fs::rename(&temporary, to).unwrap();
}

const CSV: &str = r#"{"csv": "a\n1\n"}"#;

#[test]
fn a_tool_file_saved_by_rename_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools");
    std::fs::create_dir(&tools).unwrap();
    std::fs::copy(component("tools", "echo"), tools.join("a.wasm")).unwrap();
    let host = host(dir.path(), std::slice::from_ref(&tools), &dir.path().join("policies"));
    assert_eq!(names(&host), ["echo"]);
    let version = host.watch_tools();

    save_by_rename(&component("tools", "csv-stats"), &tools.join("a.wasm"));
    settled(&host);
    assert!(host.call("csv_stats", CSV).is_ok(), "the renamed file is in force");
    assert!(matches!(host.call("echo", "{}"), Err(CallError::UnknownTool(_))));
    assert!(version.has_changed().unwrap(), "the reload is announced");
}

#[test]
fn a_policy_saved_by_rename_applies_to_the_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::copy(policy("scripted"), policies.join("50-p.wasm")).unwrap();
    let host = host(dir.path(), &[built("tests")], &policies);
    assert_eq!(host.call("ok", "{}").unwrap().output, r#""ok""#);

    save_by_rename(&policy("stamp"), &policies.join("50-p.wasm"));
    settled(&host);
    assert_eq!(host.call("ok", "{}").unwrap().output, r#"{"stamped":"ok"}"#);
}

#[test]
fn a_tool_directory_created_after_start_is_picked_up_and_again_after_it_is_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("later");
    let host = host(dir.path(), std::slice::from_ref(&tools), &dir.path().join("policies"));
    assert!(host.tools().is_empty());

    std::fs::create_dir(&tools).unwrap();
    std::fs::copy(component("tools", "echo"), tools.join("a.wasm")).unwrap();
    settled(&host);
    assert_eq!(host.call("echo", r#"{"text": "hi"}"#).unwrap().output, r#""hi""#);

    // Removed and created again with other contents: the new directory is watched.
    std::fs::remove_dir_all(&tools).unwrap();
    std::fs::create_dir(&tools).unwrap();
    std::fs::copy(component("tools", "csv-stats"), tools.join("b.wasm")).unwrap();
    settled(&host);
    assert!(host.call("csv_stats", CSV).is_ok());
    assert_eq!(names(&host), ["csv_stats"]);
    // And it is followed from then on.
    std::fs::copy(component("tools", "echo"), tools.join("a.wasm")).unwrap();
    settled(&host);
    assert!(host.call("echo", r#"{"text": "back"}"#).is_ok());
}

#[test]
fn a_policies_directory_created_after_start_is_picked_up_and_again_after_it_is_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    let host = host(dir.path(), &[built("tests")], &policies);
    assert_eq!(host.call("ok", "{}").unwrap().output, r#""ok""#, "no directory, no policies");

    std::fs::create_dir(&policies).unwrap();
    std::fs::copy(policy("stamp"), policies.join("50-stamp.wasm")).unwrap();
    settled(&host);
    assert_eq!(host.call("ok", "{}").unwrap().output, r#"{"stamped":"ok"}"#);

    std::fs::remove_dir_all(&policies).unwrap();
    settled(&host);
    let (_, reason) = crate::support::refused(host.call("ok", "{}"));
    assert!(reason.contains("policies: the directory does not exist"), "{reason}");

    std::fs::create_dir(&policies).unwrap();
    std::fs::copy(policy("stamp"), policies.join("50-stamp.wasm")).unwrap();
    settled(&host);
    assert_eq!(host.call("ok", "{}").unwrap().output, r#"{"stamped":"ok"}"#, "back");
}

#[test]
fn many_rapid_changes_while_calls_go_on_end_in_the_final_state() {
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools");
    let policies = dir.path().join("policies");
    std::fs::create_dir(&tools).unwrap();
    std::fs::create_dir(&policies).unwrap();
    let echo = std::fs::read(component("tools", "echo")).unwrap();
    let csv = std::fs::read(component("tools", "csv-stats")).unwrap();
    let stamp = std::fs::read(policy("stamp")).unwrap();
    let scripted = std::fs::read(policy("scripted")).unwrap();
    std::fs::write(tools.join("a.wasm"), &echo).unwrap();
    let host = host(dir.path(), &[tools.clone(), built("tests")], &policies);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Calls meanwhile, so that reloads run while files change under them.
        scope.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = host.call("ok", "{}");
            }
        });
        for n in 0..40 {
            let (tool, guard) = if n % 2 == 0 { (&csv, &stamp) } else { (&echo, &scripted) };
            std::fs::write(tools.join("a.wasm"), tool).unwrap();
            std::fs::write(policies.join("50-p.wasm"), guard).unwrap();
            if n % 7 == 0 {
                std::fs::remove_file(tools.join("a.wasm")).unwrap();
                std::fs::write(tools.join("a.wasm"), tool).unwrap();
            }
        }
        // The final state: csv-stats and stamp.
        std::fs::write(tools.join("a.wasm"), &csv).unwrap();
        std::fs::write(policies.join("50-p.wasm"), &stamp).unwrap();
        settled(&host);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert_eq!(host.call("ok", "{}").unwrap().output, r#"{"stamped":"ok"}"#);
    assert!(host.call("csv_stats", CSV).is_ok());
    assert!(matches!(host.call("echo", "{}"), Err(CallError::UnknownTool(_))));
}

#[test]
fn a_call_with_unchanged_directories_lists_no_directory() {
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools");
    let policies = dir.path().join("policies");
    std::fs::create_dir(&tools).unwrap();
    std::fs::create_dir(&policies).unwrap();
    std::fs::copy(component("tools", "echo"), tools.join("a.wasm")).unwrap();
    std::fs::copy(policy("scripted"), policies.join("50-p.wasm")).unwrap();
    let host = host(dir.path(), std::slice::from_ref(&tools), &policies);
    settled(&host);
    host.call("echo", r#"{"text": "first"}"#).unwrap();
    let (tools_before, policies_before) = (host.tools_watch_stats(), host.policies().watch_stats());
    for n in 0..20 {
        host.call("echo", &json!({"text": n.to_string()}).to_string()).unwrap();
    }
    assert_eq!(host.tools_watch_stats().looks, tools_before.looks, "{tools_before:?}");
    assert_eq!(host.policies().watch_stats().looks, policies_before.looks, "{policies_before:?}");

    // A change: the next call lists the tool directories once, and reloads.
    std::fs::copy(component("tools", "csv-stats"), tools.join("b.wasm")).unwrap();
    settled(&host);
    host.call("csv_stats", CSV).unwrap();
    let after = host.tools_watch_stats();
    assert_eq!(after.looks, tools_before.looks + 1, "{after:?}");
    assert_eq!(after.reloads, tools_before.reloads + 1, "{after:?}");
    assert_eq!(host.policies().watch_stats().looks, policies_before.looks, "untouched");
    host.call("csv_stats", CSV).unwrap();
    assert_eq!(host.tools_watch_stats().looks, after.looks);
}

#[cfg(unix)]
#[test]
fn a_tool_directory_that_is_a_symbolic_link_is_polled_and_still_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let tools = dir.path().join("tools");
    std::os::unix::fs::symlink(&real, &tools).unwrap();
    std::fs::copy(component("tools", "echo"), real.join("a.wasm")).unwrap();
    let host = host(dir.path(), std::slice::from_ref(&tools), &dir.path().join("policies"));
    assert!(host.tools_watch_stats().polling, "{:?}", host.tools_watch_stats());
    assert_eq!(names(&host), ["echo"]);

    std::fs::copy(component("tools", "csv-stats"), real.join("b.wasm")).unwrap();
    settled(&host);
    assert!(host.call("csv_stats", CSV).is_ok(), "the poller saw it");
    assert!(host.tools_watch_stats().polls > 0);
}
