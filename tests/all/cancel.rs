//! Cancelling a call in flight (an MCP `notifications/cancelled`, a client gone, or
//! `CallRequest::cancel`): the call stops at its next interruption point, whatever it
//! staged is rolled back, it is recorded as cancelled, and an escalation it waits on is
//! withdrawn, so that an approval arriving later applies to nothing.

use crate::guards::{write, Gatekeeper, Sandbox};
use crate::mcp::Client;
use crate::support::built;
use moat::audit::read::{lines, Line};
use moat::audit::{self, Event};
use moat::cancel::Cancel;
use moat::{CallError, CallRequest, Config, Host};
use serde_json::json;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The error kinds of the `result` records of `tool` in the audit log under `state`.
fn results(state: &Path, tool: &str) -> Vec<String> {
    let mut kinds = Vec::new();
    for line in lines(&audit::log_path(&state.join("audit"))).unwrap() {
        let Ok(Line::Record { record, .. }) = line else { continue };
        if let Event::Result { tool: t, error_kind, .. } = record.event {
            if t == tool {
                kinds.push(error_kind.unwrap_or_else(|| "ok".to_owned()));
            }
        }
    }
    kinds
}

#[test]
fn a_call_cancelled_while_it_waits_mid_effect_changes_nothing_and_a_late_approval_applies_to_nothing(
) {
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], "");
    let (asked_tx, asked) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let gatekeeper = Gatekeeper { asked: Mutex::new(asked_tx), release: Mutex::new(release_rx) };
    let host = sandbox.host_with(Arc::new(gatekeeper));
    let cancel = Cancel::new();
    let request = CallRequest {
        cancel: Some(cancel.clone()),
        ..CallRequest::new("fs_write", &write(json!({"effect": "escalate"})))
    };
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| host.run(&request));
        asked.recv_timeout(Duration::from_secs(60)).expect("the effect escalates");
        cancel.cancel();
        // The person approves, too late: the call was cancelled.
        release.send(()).unwrap();
        match waiting.join().unwrap() {
            Err(CallError::Cancelled { tool, .. }) => assert_eq!(tool, "fs_write"),
            other => panic!("expected the call cancelled, got {other:?}"),
        }
    });
    assert_eq!(sandbox.keep(), "precious", "nothing was written");
}

#[test]
fn a_running_component_is_stopped_when_its_call_is_cancelled_and_its_staged_files_put_back() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let toml = "state_dir = \"state\"\n[confidence]\nhigh = 0\n\
                [tools.fs_ops.grants.fs.data]\npath = \"data\"\nmode = \"read-write\"\n\
                [tools.fs_ops.budgets]\nwall_time = \"120s\"\nfuel = 1_000_000_000_000\n";
    std::fs::write(dir.path().join("moat.toml"), toml).unwrap();
    let mut config = Config::load(&dir.path().join("moat.toml")).unwrap();
    crate::support::without_controls(&mut config);
    config.plugins.tools = vec![built("tests")];
    let (host, errors) = Host::new(config).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    // A file written, then reading on and on: far longer than the test waits.
    let mut ops = vec![json!({"op": "write", "path": "staged.txt", "text": "new"})];
    ops.extend((0..200_000).map(|_| json!({"op": "stat", "path": "staged.txt"})));
    let args = json!({"grant": "data", "ops": ops}).to_string();
    let cancel = Cancel::new();
    let request = CallRequest { cancel: Some(cancel.clone()), ..CallRequest::new("fs_ops", &args) };
    let staged = dir.path().join("data/staged.txt");
    std::thread::scope(|scope| {
        let running = scope.spawn(|| host.run(&request));
        let started = Instant::now();
        while !staged.exists() {
            assert!(started.elapsed() < Duration::from_secs(60), "the write never happened");
            std::thread::sleep(Duration::from_millis(2));
        }
        cancel.cancel();
        match running.join().unwrap() {
            Err(CallError::Cancelled { .. }) => {}
            other => panic!("expected the call cancelled, got {other:?}"),
        }
    });
    assert!(!staged.exists(), "the write was rolled back");
    assert_eq!(results(&dir.path().join("state"), "fs_ops"), ["cancelled"]);
}

#[test]
fn an_mcp_cancel_stops_the_call_it_names_and_the_server_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[tools.spin.budgets]\nwall_time = \"120s\"\nfuel = 1_000_000_000_000_000\n";
    let mut client = Client::start(dir.path(), toml);
    let id = client.send_request("tools/call", json!({"name": "spin", "arguments": {}}));
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": id, "reason": "the user changed their mind"}});
    client.send(&cancel.to_string());
    // Served on: the next call is answered (a cancelled request gets no answer).
    let next = client.call("echo", json!({"text": "after"}), json!({}));
    assert_eq!(next["isError"], false, "{next}");
    // The spin was stopped, long before its wall time, and recorded as cancelled.
    let started = Instant::now();
    loop {
        let kinds = results(&dir.path().join("state"), "spin");
        if !kinds.is_empty() {
            assert_eq!(kinds, ["cancelled"]);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the cancelled call runs on");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(client.hang_up().success());
}
