//! Guard policies: each verdict at each of the three points, shadow mode, tool scoping,
//! ordering, fail-closed verdicts, rollback after a post-call deny, confidence gating,
//! sequence rules over the session history, and hot reload of the policies directory (and
//! what a broken or removed policy does: `fail_closed.rs`).

use crate::support::{built, refused, root, Person};
use moat::escalation::Escalator;
use moat::{CallError, CallRequest, Config, Host};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub(crate) fn policy(name: &str) -> PathBuf {
    let path = root().join("target/wasm/test-policies").join(format!("{name}.wasm"));
    assert!(path.is_file(), "{} is missing: build it with `just plugins`", path.display());
    path
}

/// A sandbox: `data/` with `keep.txt`, `policies/` holding the given policies under the
/// given file names, and `moat.toml` with `toml` plus a read-write grant of `data` to the
/// effects tools.
pub(crate) struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub(crate) fn new(policies: &[(&str, &str)], toml: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/keep.txt"), "precious").unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        for (file, name) in policies {
            std::fs::copy(policy(name), dir.path().join("policies").join(file)).unwrap();
        }
        let mut text = toml.to_owned();
        for tool in ["fs_write", "fs_read", "write_then_fail"] {
            text.push_str(&format!(
                "\n[tools.{tool}.grants.fs.data]\npath = \"data\"\nmode = \"read-write\"\n"
            ));
        }
        text.push_str("\n[tools.http_send.grants.http]\nallow = [\"http://127.0.0.1:9\"]\n");
        std::fs::write(dir.path().join("moat.toml"), text).unwrap();
        Sandbox { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn host_with(&self, escalator: Arc<dyn Escalator>) -> Host {
        let mut config = Config::load(&self.path().join("moat.toml")).unwrap();
        crate::support::without_controls(&mut config);
        config.plugins.tools = vec![built("tests")];
        // Each host its own state: one audit log has one writer.
        static HOSTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = HOSTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        config.state_dir = self.path().join(format!("state-{n}"));
        let (host, errors) = Host::builder(config).escalator(escalator).build().unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        host
    }

    fn host(&self) -> Host {
        self.host_with(Arc::new(moat::escalation::DenyAll))
    }

    pub(crate) fn keep(&self) -> String {
        std::fs::read_to_string(self.path().join("data/keep.txt")).unwrap()
    }
}

/// A write of `keep.txt` with the scripted policy's orders.
pub(crate) fn write(orders: Value) -> String {
    json!({"grant": "data", "path": "keep.txt", "text": "changed", "_guard": orders}).to_string()
}

use moat::error::Stage::{AfterCall, BeforeCall, DuringCall};

#[test]
fn a_deny_before_the_call_stops_it_before_it_runs() {
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], "");
    let (stage, reason) = refused(sandbox.host().call("fs_write", &write(json!({"call": "deny"}))));
    assert_eq!(
        (stage, reason.as_str()),
        (BeforeCall, "policy `10-scripted`: scripted deny at call")
    );
    assert_eq!(sandbox.keep(), "precious");
}

#[test]
fn a_deny_of_an_effect_stops_that_effect() {
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], "");
    let (stage, reason) =
        refused(sandbox.host().call("fs_write", &write(json!({"effect": "deny"}))));
    assert_eq!(
        (stage, reason.as_str()),
        (
            DuringCall,
            "fs write of `data:keep.txt` refused by policy: policy `10-scripted`: scripted deny at effect"
        )
    );
    assert_eq!(sandbox.keep(), "precious");
}

#[test]
fn a_deny_after_the_call_rolls_its_effects_back() {
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], "");
    let (stage, reason) =
        refused(sandbox.host().call("fs_write", &write(json!({"result": "deny"}))));
    assert_eq!(
        (stage, reason.as_str()),
        (AfterCall, "policy `10-scripted`: scripted deny at result")
    );
    assert_eq!(sandbox.keep(), "precious", "the write was undone");
}

#[test]
fn an_escalation_at_each_point_asks_a_person_and_follows_the_decision() {
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], "");
    for point in ["call", "effect", "result"] {
        let person = Person::new(true);
        let host = sandbox.host_with(person.clone());
        host.call("fs_write", &write(json!({ point: "escalate" }))).unwrap();
        assert_eq!(sandbox.keep(), "changed", "{point}: approved, so it happened");
        let asked = person.asked.lock().unwrap();
        assert_eq!(asked.len(), 1, "{point}");
        assert!(
            asked[0].reason.contains(&format!("scripted escalate at {point}")),
            "{:?}",
            asked[0]
        );
        assert_eq!(
            asked[0].binding,
            moat::escalation::binding("fs_write", &write(json!({ point: "escalate" })))
        );
        std::fs::write(sandbox.path().join("data/keep.txt"), "precious").unwrap();

        let host = sandbox.host_with(Person::new(false));
        let outcome = host.call("fs_write", &write(json!({ point: "escalate" })));
        let message = format!("{:?}", outcome.unwrap_err());
        assert!(message.contains("denied by alice: not today"), "{point}: {message}");
        assert_eq!(sandbox.keep(), "precious", "{point}: denied, so nothing changed");
    }
}

/// Approves once told to; says when it has been asked.
pub(crate) struct Gatekeeper {
    pub(crate) asked: Mutex<mpsc::Sender<()>>,
    pub(crate) release: Mutex<mpsc::Receiver<()>>,
}

impl Escalator for Gatekeeper {
    fn decide(&self, _: &moat::escalation::Escalation) -> moat::escalation::Decision {
        let _ = self.asked.lock().unwrap().send(());
        let released = self.release.lock().unwrap().recv_timeout(Duration::from_secs(60));
        assert!(released.is_ok(), "the test never released the escalation");
        moat::escalation::Decision::Approved { by: "alice".into() }
    }
}

#[test]
fn a_call_waiting_mid_effect_for_a_person_holds_up_no_other_call() {
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], "");
    let (asked_tx, asked) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let gatekeeper = Gatekeeper { asked: Mutex::new(asked_tx), release: Mutex::new(release_rx) };
    let host = sandbox.host_with(Arc::new(gatekeeper));
    std::thread::scope(|scope| {
        // Its tool instance is live, stopped inside its write, until the person decides.
        let waiting = scope.spawn(|| host.call("fs_write", &write(json!({"effect": "escalate"}))));
        asked.recv_timeout(Duration::from_secs(60)).expect("the effect escalates");
        // Meanwhile, on other threads and this one, calls run through the whole pipeline
        // (guards, tool, audit, task ledger) and finish.
        let others: Vec<_> = (0..4)
            .map(|n| {
                let host = &host;
                scope.spawn(move || {
                    for i in 0..5 {
                        let args = json!({"grant": "data", "path": "keep.txt", "n": [n, i]});
                        host.call("fs_read", &args.to_string()).unwrap();
                    }
                })
            })
            .collect();
        for other in others {
            other.join().unwrap();
        }
        host.call("fs_read", &json!({"grant": "data", "path": "keep.txt"}).to_string()).unwrap();
        assert_eq!(sandbox.keep(), "precious", "the waiting write has not happened yet");
        release.send(()).unwrap();
        waiting.join().unwrap().expect("approved, the write goes ahead");
    });
    assert_eq!(sandbox.keep(), "changed");
}

#[test]
fn a_call_in_flight_finishes_on_the_plugin_it_began_with_while_its_file_is_removed() {
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], "");
    let tools = sandbox.path().join("tools");
    std::fs::create_dir(&tools).unwrap();
    std::fs::copy(built("tests").join("effects.wasm"), tools.join("effects.wasm")).unwrap();
    let (asked_tx, asked) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let gatekeeper = Gatekeeper { asked: Mutex::new(asked_tx), release: Mutex::new(release_rx) };
    let mut config = Config::load(&sandbox.path().join("moat.toml")).unwrap();
    crate::support::without_controls(&mut config);
    config.plugins.tools = vec![tools.clone()];
    let (host, errors) = Host::builder(config).escalator(Arc::new(gatekeeper)).build().unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| host.call("fs_write", &write(json!({"effect": "escalate"}))));
        asked.recv_timeout(Duration::from_secs(60)).expect("the effect escalates");
        std::fs::remove_file(tools.join("effects.wasm")).unwrap();
        crate::support::settled(&host);
        let next = host.call("fs_read", &json!({"grant": "data", "path": "keep.txt"}).to_string());
        assert!(matches!(next, Err(CallError::UnknownTool(_))), "the next call: {next:?}");
        release.send(()).unwrap();
        waiting.join().unwrap().expect("the call in flight finishes on its plugin");
    });
    assert_eq!(sandbox.keep(), "changed");
}

#[test]
fn time_spent_waiting_for_a_person_is_not_charged_to_the_call() {
    let toml = "[tools.fs_write.budgets]\nwall_time = \"300ms\"\n";
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], toml);
    let person = Person::slow(true, std::time::Duration::from_millis(700));
    let response =
        sandbox.host_with(person).call("fs_write", &write(json!({"effect": "escalate"}))).unwrap();
    assert_eq!(sandbox.keep(), "changed");
    assert!(
        response.usage.wall_time < std::time::Duration::from_millis(300),
        "{:?}",
        response.usage
    );
}

#[test]
fn an_escalation_with_nobody_to_ask_is_a_deny() {
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], "");
    let (_, reason) = refused(sandbox.host().call("fs_write", &write(json!({"call": "escalate"}))));
    assert!(reason.contains("not approved: no decision from none (non-interactive)"), "{reason}");
}

#[test]
fn a_person_declining_is_an_escalation_declined_refusal_not_a_policy_deny() {
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], "");
    for point in ["call", "result"] {
        let host = sandbox.host_with(Person::new(false));
        let error = host.call("fs_write", &write(json!({ point: "escalate" }))).unwrap_err();
        assert_eq!(error.kind(), "escalation_declined", "{point}: {error}");
        assert!(matches!(error, moat::CallError::Declined { .. }), "{point}: {error:?}");
    }
    let error = sandbox.host().call("fs_write", &write(json!({"call": "deny"}))).unwrap_err();
    assert_eq!(error.kind(), "denied", "{error}");
}

#[test]
fn a_rewrite_replaces_the_output_and_a_rewrite_that_is_not_json_denies() {
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], "");
    let host = sandbox.host();
    let response =
        host.call("fs_read", &write(json!({"result": "rewrite:{\"redacted\":true}"}))).unwrap();
    assert_eq!(response.output, r#"{"redacted":true}"#);
    let (stage, reason) = refused(host.call("fs_read", &write(json!({"result": "not-json"}))));
    assert_eq!(stage, AfterCall);
    assert!(reason.contains("its rewrite at check-result is not JSON"), "{reason}");
    // A rewrite before the call or of an effect means nothing: the call goes ahead.
    host.call("fs_write", &write(json!({"call": "rewrite:1", "effect": "rewrite:2"}))).unwrap();
    assert_eq!(sandbox.keep(), "changed");
}

#[test]
fn a_rewrite_is_an_output_held_to_the_tools_output_budget_and_the_guards() {
    let toml = "[tools.fs_write.budgets]\noutput = \"64KiB\"\n\
                [policies.10-scripted.budgets]\noutput = \"1MiB\"\nmemory = \"64MiB\"\n";
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], toml);
    let host = sandbox.host();
    // Within both budgets: the rewrite is the output.
    let small = host.call("fs_write", &write(json!({"result": "bloat:65536"}))).unwrap();
    let whole = small.window.map_or(small.output.len() as u64, |window| window.total_bytes);
    assert_eq!(whole, 65536, "the output (in token windows) is the rewrite");
    // One byte over the tool's 64 KiB: denied, naming both budgets; the write is undone.
    std::fs::write(sandbox.path().join("data/keep.txt"), "precious").unwrap();
    let (stage, reason) = refused(host.call("fs_write", &write(json!({"result": "bloat:65537"}))));
    assert_eq!(stage, AfterCall);
    assert_eq!(
        reason,
        "policy `10-scripted`: its rewrite of the output is 64.0 KiB (65537 bytes), over the \
         output budgets (the tool's 64 KiB (65536 bytes), the guard's 1 MiB (1048576 bytes))"
    );
    assert_eq!(sandbox.keep(), "precious", "the write was rolled back");
    // Seven megabytes: over both.
    let (_, reason) = refused(host.call("fs_write", &write(json!({"result": "bloat:7340032"}))));
    assert!(reason.contains("is 7 MiB (7340032 bytes)"), "{reason}");

    // A tool with a large budget is still held to the guard's.
    let toml = "[tools.fs_write.budgets]\noutput = \"16MiB\"\n\
                [policies.10-scripted.budgets]\noutput = \"1MiB\"\nmemory = \"64MiB\"\n";
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], toml);
    let (_, reason) =
        refused(sandbox.host().call("fs_write", &write(json!({"result": "bloat:1048577"}))));
    assert!(reason.contains("the guard's 1 MiB (1048576 bytes)"), "{reason}");
}

/// A gate of the embedder's own, rewriting every output to `size` bytes.
struct Bloat(usize);

impl moat::Gate for Bloat {
    fn check_result(&self, _: &moat::call::CallView, _: &str) -> moat::Verdict {
        moat::Verdict::Rewrite(format!("\"{}\"", "x".repeat(self.0 - 2)))
    }
}

#[test]
fn a_rewrite_by_any_gate_is_held_to_the_tools_output_budget() {
    let sandbox = Sandbox::new(&[], "[tools.fs_write.budgets]\noutput = \"4KiB\"\n");
    let mut config = Config::load(&sandbox.path().join("moat.toml")).unwrap();
    crate::support::without_controls(&mut config);
    config.plugins.tools = vec![built("tests")];
    config.state_dir = sandbox.path().join("state-gate");
    for (size, ok) in [(4096, true), (4097, false)] {
        let (host, _) = Host::with_gate(config.clone(), Arc::new(Bloat(size))).unwrap();
        match host.call("fs_write", &write(json!({}))) {
            Ok(response) if ok => assert_eq!(
                response.window.map_or(response.output.len() as u64, |w| w.total_bytes),
                size as u64
            ),
            Err(CallError::Denied { stage: AfterCall, reason, .. }) if !ok => assert_eq!(
                reason,
                "its rewrite of the output is 4.0 KiB (4097 bytes), over the output budgets \
                 (the tool's 4 KiB (4096 bytes))"
            ),
            other => panic!("a rewrite of {size} bytes under a 4 KiB budget: {other:?}"),
        }
    }
}

#[test]
fn rewrites_apply_in_file_name_order() {
    let args = write(json!({"result": "rewrite:\"scripted\""}));
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted"), ("20-stamp.wasm", "stamp")], "");
    assert_eq!(sandbox.host().call("fs_read", &args).unwrap().output, r#"{"stamped":"scripted"}"#);
    let sandbox = Sandbox::new(&[("10-stamp.wasm", "stamp"), ("20-scripted.wasm", "scripted")], "");
    assert_eq!(sandbox.host().call("fs_read", &args).unwrap().output, r#""scripted""#);
}

#[test]
fn a_deny_wins_over_an_earlier_escalation() {
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted"), ("20-stamp.wasm", "stamp")], "");
    let person = Person::new(true);
    let args =
        json!({"grant": "data", "path": "keep.txt", "_guard": {"call": "escalate"}, "_deny": true});
    let (_, reason) = refused(sandbox.host_with(person.clone()).call("fs_read", &args.to_string()));
    assert_eq!(reason, "policy `20-stamp`: stamp denies calls marked _deny");
    assert!(person.asked.lock().unwrap().is_empty(), "nobody is asked about a denied call");
}

#[test]
fn a_shadow_policy_changes_nothing_and_says_what_it_would_have_done() {
    let toml = "[policies.10-scripted]\nmode = \"shadow\"\n";
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], toml);
    let response =
        sandbox.host().call("fs_write", &write(json!({"call": "deny", "result": "deny"}))).unwrap();
    assert_eq!(sandbox.keep(), "changed");
    assert_eq!(
        response.shadow,
        vec![
            "shadow policy `10-scripted` would deny (scripted deny at call) at check-call"
                .to_owned(),
            "shadow policy `10-scripted` would deny (scripted deny at result) at check-result"
                .to_owned(),
        ]
    );
}

#[test]
fn a_policy_scoped_to_some_tools_leaves_the_others_alone() {
    let toml = "[policies.10-scripted]\ntools = [\"fs_read\"]\n";
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], toml);
    let host = sandbox.host();
    host.call("fs_write", &write(json!({"call": "deny"}))).unwrap();
    refused(host.call("fs_read", &write(json!({"call": "deny"}))));
}

#[test]
fn a_guard_that_traps_runs_away_or_hogs_memory_denies_the_call() {
    let toml = "[policies.10-scripted.budgets]\nwall_time = \"300ms\"\nmemory = \"16 MiB\"\n";
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], toml);
    let host = sandbox.host();
    let cases = [
        ("trap", "wasm `unreachable` instruction executed (it last logged: panic at"),
        ("spin", "ran out of fuel (limit 200000000)"),
        ("hog", "ran out of memory (limit 16 MiB)"),
    ];
    for (order, expected) in cases {
        let (stage, reason) = refused(host.call("fs_write", &write(json!({"call": order}))));
        assert_eq!(stage, BeforeCall);
        assert!(
            reason.starts_with("policy `10-scripted`: failed, so the call is denied: "),
            "{reason}"
        );
        assert!(reason.contains(expected), "{order}: {reason}");
    }
    assert_eq!(sandbox.keep(), "precious");
    host.call("fs_write", &write(json!({}))).expect("the host serves on");
}

#[test]
fn a_guard_past_its_wall_time_denies_the_call() {
    let toml = "[policies.10-scripted.budgets]\nwall_time = \"200ms\"\nfuel = 100_000_000_000\n";
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], toml);
    let (_, message) = refused(sandbox.host().call("fs_write", &write(json!({"effect": "spin"}))));
    assert!(message.contains("ran past its wall time (limit 200 ms) at check-effect"), "{message}");
    assert_eq!(sandbox.keep(), "precious");
}

#[test]
fn every_check_runs_on_an_instance_that_never_checked_before_and_its_clock_starts_then() {
    // Guard instances are made ahead, off the call path; each serves exactly one check.
    let toml = "[policies.10-scripted.budgets]\nwall_time = \"200ms\"\n";
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], toml);
    let host = sandbox.host();
    let fresh = json!({"call": "fresh", "effect": "fresh", "result": "fresh"});
    for _ in 0..10 {
        host.call("fs_write", &write(fresh.clone())).expect("every check on a new instance");
    }
    // The instances waiting now were made longer ago than a check's wall time.
    std::thread::sleep(Duration::from_millis(500));
    host.call("fs_write", &write(fresh)).expect("a check's wall time starts at the check");
}

#[test]
fn a_sequence_rule_sees_what_the_session_touched_before() {
    let sandbox = Sandbox::new(&[("10-stamp.wasm", "stamp")], "[confidence]\nhigh = 0\n");
    std::fs::write(sandbox.path().join("data/confidential.txt"), "the plan").unwrap();
    let host = sandbox.host();
    let session = |tool: &str, args: Value| CallRequest {
        session: Some("s1".into()),
        ..CallRequest::new(tool, &args.to_string())
    };
    let get = json!({"method": "GET", "url": "http://127.0.0.1:9/"});
    // Before the read, the request is allowed by the policy (and fails to connect).
    assert!(matches!(host.run(&session("http_send", get.clone())), Err(CallError::Tool { .. })));
    host.run(&session("fs_read", json!({"grant": "data", "path": "confidential.txt"}))).unwrap();
    let (_, reason) = refused(host.run(&session("http_send", get.clone())));
    assert_eq!(reason, "policy `10-stamp`: no outbound network after reading a confidential file");
    // Another session has its own history.
    let other = CallRequest {
        session: Some("s2".into()),
        ..CallRequest::new("http_send", &get.to_string())
    };
    assert!(matches!(host.run(&other), Err(CallError::Tool { .. })));
}

#[test]
fn a_high_stakes_call_without_enough_confidence_escalates() {
    let sandbox = Sandbox::new(&[], "[confidence]\nhigh = 0.8\n");
    let args = json!({"grant": "data", "path": "keep.txt"}).to_string();
    let with = |confidence: Option<f64>| CallRequest {
        confidence,
        ..CallRequest::new("fs_remove", &args)
    };
    let person = Person::new(false);
    let host = sandbox.host_with(person.clone());
    let (stage, reason) = refused(host.run(&with(None)));
    assert_eq!(stage, BeforeCall);
    assert!(
        reason.contains("no confidence was given for a high-stakes call (threshold 0.80)"),
        "{reason}"
    );
    let (_, reason) = refused(host.run(&with(Some(0.42))));
    assert!(reason.contains("confidence 0.42 is below 0.80 for a high-stakes call"), "{reason}");
    assert_eq!(person.asked.lock().unwrap().len(), 2);
    assert!(sandbox.path().join("data/keep.txt").exists());
    let sure = Person::new(false);
    sandbox.host_with(sure.clone()).run(&with(Some(0.95))).unwrap_err(); // fs_remove has no grant
    assert!(sure.asked.lock().unwrap().is_empty(), "confident enough: nobody is asked");
}

#[test]
fn a_confidence_outside_zero_to_one_is_invalid() {
    let sandbox = Sandbox::new(&[], "");
    let args = json!({"grant": "data", "path": "keep.txt"}).to_string();
    for confidence in [1.5, -0.1, f64::NAN] {
        let request =
            CallRequest { confidence: Some(confidence), ..CallRequest::new("fs_read", &args) };
        let error = sandbox.host().run(&request).unwrap_err().to_string();
        assert!(error.contains("is not between 0 and 1"), "{confidence}: {error}");
    }
}

#[test]
fn low_stakes_calls_need_no_confidence() {
    let sandbox = Sandbox::new(&[], "");
    sandbox
        .host()
        .call("fs_read", &json!({"grant": "data", "path": "keep.txt"}).to_string())
        .unwrap();
}

#[test]
fn arguments_are_checked_against_the_tool_schema_before_anything_runs() {
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], "");
    let host = sandbox.host();
    let error =
        host.call("fs_write", &json!({"grant": "data", "path": 5}).to_string()).unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("invalid arguments for `fs_write`: at /path: 5 is not of type"),
        "{message}"
    );
}

#[test]
fn policies_reload_for_the_next_call_when_added_or_replaced() {
    let sandbox = Sandbox::new(&[], "");
    let host = sandbox.host();
    let policies = sandbox.path().join("policies");
    let read = json!({"grant": "data", "path": "keep.txt"}).to_string();
    assert_eq!(host.call("fs_read", &read).unwrap().output, r#""precious""#);
    // Added.
    std::fs::copy(policy("stamp"), policies.join("50-stamp.wasm")).unwrap();
    crate::support::settled(&host);
    assert_eq!(host.call("fs_read", &read).unwrap().output, r#"{"stamped":"precious"}"#);
    // Replaced by another policy.
    std::fs::copy(policy("scripted"), policies.join("50-stamp.wasm")).unwrap();
    crate::support::settled(&host);
    assert_eq!(host.call("fs_read", &read).unwrap().output, r#""precious""#);
    let deny = json!({"grant": "data", "path": "keep.txt", "_guard": {"call": "deny"}}).to_string();
    refused(host.call("fs_read", &deny));
    // Broken, removed: `fail_closed.rs`.
}

/// The spans opened in this process: name, and each field as text. Installs a global
/// subscriber, so it may run only in a process of its own (`support::alone`), where no other
/// test registers callsites at the same time.
fn recorded_spans() -> impl Fn() -> Vec<(String, Vec<(String, String)>)> {
    use tracing_subscriber::layer::{Context, SubscriberExt};
    type Spans = Arc<std::sync::Mutex<Vec<(String, Vec<(String, String)>)>>>;
    struct Fields<'a>(&'a mut Vec<(String, String)>);
    impl tracing::field::Visit for Fields<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.push((field.name().to_owned(), format!("{value:?}")));
        }
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            self.0.push((field.name().to_owned(), value.to_owned()));
        }
    }
    struct Recorder(Spans);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: Context<'_, S>,
        ) {
            let mut fields = Vec::new();
            attrs.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().push((attrs.metadata().name().to_owned(), fields));
        }
        fn on_record(
            &self,
            _: &tracing::span::Id,
            values: &tracing::span::Record<'_>,
            _: Context<'_, S>,
        ) {
            if let Some(last) = self.0.lock().unwrap().last_mut() {
                values.record(&mut Fields(&mut last.1));
            }
        }
    }
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(Recorder(spans.clone()));
    tracing::subscriber::set_global_default(subscriber).expect("no other subscriber is set");
    move || spans.lock().unwrap().clone()
}

#[test]
fn each_call_is_an_execute_tool_span_and_counted_in_the_metrics_with_its_guards_denials() {
    if !crate::support::alone(
        module_path!(),
        "each_call_is_an_execute_tool_span_and_counted_in_the_metrics_with_its_guards_denials",
    ) {
        return; // it passed in a process of its own
    }
    let spans = recorded_spans();
    let sandbox = Sandbox::new(&[("10-scripted.wasm", "scripted")], "");
    let host = sandbox.host();
    host.call("fs_write", &write(json!({}))).unwrap();
    host.call("fs_write", &write(json!({"call": "deny"}))).unwrap_err();
    let spans = spans();
    let tools: Vec<_> = spans.iter().filter(|(name, _)| name == "execute_tool").collect();
    assert_eq!(tools.len(), 2, "{spans:?}");
    for (_, fields) in &tools {
        let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(field("gen_ai.operation.name"), Some("execute_tool"), "{fields:?}");
        assert_eq!(field("gen_ai.tool.name"), Some("fs_write"), "{fields:?}");
        assert!(field("gen_ai.tool.call.id").is_some(), "{fields:?}");
    }
    let field =
        |i: usize, name: &str| tools[i].1.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(field(0, "error.type"), None);
    assert_eq!(field(1, "error.type").as_deref(), Some("denied"));

    let metrics = host.metrics().encode();
    for line in [
        "moat_calls_total{tool=\"fs_write\",outcome=\"ok\"} 1",
        "moat_calls_total{tool=\"fs_write\",outcome=\"denied\"} 1",
        "moat_denials_total{guard=\"10-scripted\",stage=\"check-call\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no `{line}` in:\n{metrics}");
    }
    host.call("no_such_tool", "{}").unwrap_err();
    let metrics = host.metrics().encode();
    let unknown = "moat_calls_total{tool=\"(unknown)\",outcome=\"unknown_tool\"} 1";
    assert!(metrics.lines().any(|l| l == unknown), "an agent's tool name is no label:\n{metrics}");
}
