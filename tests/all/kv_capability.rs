//! The `kv` capability under attack, driven by the `effects` plugin's `kv_script` (several
//! operations in one call): bytes written and keys removed or overwritten are charged to the
//! call's and the task's meters like every capability's; the namespace's quota (keys, bytes)
//! holds whatever the order of operations, and against calls committing at once; a refused
//! operation changes nothing, meters included; a store locked by another process ends the
//! call by its deadline.

use crate::support::built;
use moat::escalation::{Decision, Escalation, Escalator};
use moat::{CallError, CallRequest, Config, Effect, Gate, Host, Verdict};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// A host over the test plugins in `dir`, `kv_script` granted kv with `keys` (TOML lines).
fn host_in(dir: &Path, keys: &str) -> Host {
    builder_in(dir, keys).build().map(|(host, _)| host).expect("the host starts")
}

fn builder_in(dir: &Path, keys: &str) -> moat::HostBuilder {
    let path = dir.join("moat.toml");
    let toml = format!("[confidence]\nhigh = 0\n[tools.kv_script.grants.kv]\n{keys}\n");
    std::fs::write(&path, toml).expect("moat.toml is written");
    let mut config = Config::load(&path).expect("moat.toml is valid");
    crate::support::without_controls(&mut config);
    config.plugins.tools = vec![built("tests")];
    Host::builder(config)
}

fn set(key: &str, value: &str) -> Value {
    json!({"op": "set", "key": key, "value": value})
}

fn delete(key: &str) -> Value {
    json!({"op": "delete", "key": key})
}

fn script(ops: &[Value]) -> String {
    json!({ "ops": ops }).to_string()
}

/// Runs `ops` in one call of `task`.
fn run(host: &Host, task: &str, ops: &[Value]) -> Result<Vec<String>, CallError> {
    let mut request = CallRequest::new("kv_script", &script(ops));
    request.task = Some(task.to_owned());
    let response = host.run(&request)?;
    Ok(serde_json::from_str(&response.output).expect("kv_script answers a list"))
}

fn refusal(outcome: Result<Vec<String>, CallError>) -> String {
    match outcome {
        Err(CallError::Tool { message, .. }) => message,
        other => panic!("expected a kv refusal, got {other:?}"),
    }
}

/// Every key and value of the store, straight from SQLite (none before the store exists).
fn stored(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let path = dir.join(".moat/kv.sqlite");
    if !path.exists() {
        return Vec::new();
    }
    let db = rusqlite::Connection::open(path).expect("the store opens");
    let mut rows = db.prepare("SELECT key, value FROM kv ORDER BY key").expect("a query");
    let rows = rows.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).expect("rows");
    rows.collect::<Result<_, _>>().expect("rows read")
}

#[test]
fn bytes_written_are_charged_per_call_and_per_task_and_a_refused_call_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_in(dir.path(), "write_per_call = 100\nwrite_per_task = 150");
    // Key and value bytes count: 2 + 48 = 50 each.
    let fifty = "x".repeat(48);
    assert_eq!(run(&host, "t", &[set("k1", &fifty), set("k2", &fifty)]).unwrap(), ["ok", "ok"]);
    let message = refusal(run(&host, "t2", &[set("k3", &fifty), set("k4", &fifty), set("k5", "")]));
    assert_eq!(
        message,
        "LimitExceeded(\"would write 2 B to `k5`; limit 100 B per call (100 B used)\")"
    );
    // The task has used 100 of 150: one more key of 50 bytes, not two.
    run(&host, "t", &[set("k6", &fifty)]).unwrap();
    let message = refusal(run(&host, "t", &[set("k7", &fifty)]));
    assert!(message.contains("limit 150 B per task (150 B used)"), "{message}");
    let keys: Vec<String> = stored(dir.path()).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["k1", "k2", "k6"], "refused calls wrote nothing");
}

#[test]
fn deleting_or_overwriting_a_value_is_charged_as_a_deletion_and_rewriting_it_as_is_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_in(dir.path(), "deletes_per_call = 3");
    let keys: Vec<Value> = (0..6).map(|n| set(&format!("k{n}"), "original")).collect();
    run(&host, "setup", &keys).unwrap();
    // The same value again destroys nothing.
    let same: Vec<Value> = (0..6).map(|n| set(&format!("k{n}"), "original")).collect();
    run(&host, "same", &same).unwrap();
    // Three overwrites (even with an empty value) and a deletion: the fourth is refused.
    let ops = [set("k0", ""), set("k1", ""), delete("k2"), set("k3", "")];
    let message = refusal(run(&host, "wipe", &ops));
    assert_eq!(
        message,
        "LimitExceeded(\"would overwrite `k3`; limit 3 keys deleted or overwritten per call (3 used)\")"
    );
    assert!(stored(dir.path()).iter().all(|(_, value)| value == b"original"), "nothing changed");
    // A key set and then deleted in one call destroyed nothing that was stored before it.
    run(&host, "new", &[set("fresh", "v"), delete("fresh"), set("fresh", "w")]).unwrap();
}

#[test]
fn the_namespace_quota_counts_staged_keys_freed_ones_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_in(dir.path(), "max_keys = 3\nmax_bytes = 40");
    run(&host, "t", &[set("a", "1"), set("b", "2"), set("c", "3")]).unwrap();
    let message = refusal(run(&host, "t", &[set("d", "4")]));
    assert_eq!(
        message,
        "LimitExceeded(\"cannot set `d`: the namespace would hold 4 keys; limit 3 (max_keys)\")"
    );
    // Freeing a key in the same call makes room for another.
    run(&host, "t", &[delete("a"), set("d", "4")]).unwrap();
    // Bytes: keys b, c, d of one byte, values of one byte: 6. A value of 36 bytes for `b`
    // makes 6 - 1 + 36 = 41 > 40; one of 35 makes 40.
    let message = refusal(run(&host, "t", &[set("b", &"v".repeat(36))]));
    assert!(message.contains("the namespace would hold 41 B; limit 40 B (max_bytes)"), "{message}");
    run(&host, "t", &[set("b", &"v".repeat(35))]).unwrap();
}

/// A gate that escalates every kv effect, and an escalator that approves each when told.
struct Hold {
    asked: Mutex<mpsc::Sender<()>>,
    go: Mutex<mpsc::Receiver<()>>,
}

impl Gate for Hold {
    fn check_effect(&self, _: &moat::call::CallView, effect: &Effect) -> Verdict {
        match effect.capability {
            "kv" => Verdict::Escalate("held for the test".into()),
            _ => Verdict::Allow,
        }
    }
}

struct Approver(Arc<Hold>);

impl Escalator for Approver {
    fn decide(&self, _: &Escalation) -> Decision {
        self.0.asked.lock().unwrap().send(()).unwrap();
        self.0.go.lock().unwrap().recv().unwrap();
        Decision::Approved { by: "test".into() }
    }
}

#[test]
fn two_calls_committing_at_once_cannot_pass_the_quota_together() {
    let dir = tempfile::tempdir().unwrap();
    let (asked_tx, asked) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    let hold = Arc::new(Hold { asked: Mutex::new(asked_tx), go: Mutex::new(go_rx) });
    let keys = "max_keys = 2";
    let held = builder_in(dir.path(), keys)
        .gate(hold.clone())
        .escalator(Arc::new(Approver(hold)))
        .build()
        .map(|(host, _)| host)
        .unwrap();
    // The other host shares the state directory's kv store, not its audit log.
    let other_dir = tempfile::tempdir().unwrap();
    let other = {
        let path = other_dir.path().join("moat.toml");
        let state = dir.path().join(".moat");
        let toml = format!(
            "state_dir = {state:?}\n[confidence]\nhigh = 0\n[audit]\nenabled = false\n\
             [tools.kv_script.grants.kv]\n{keys}\n"
        );
        std::fs::write(&path, toml).unwrap();
        let mut config = Config::load(&path).unwrap();
        crate::support::without_controls(&mut config);
        config.plugins.tools = vec![built("tests")];
        Host::new(config).map(|(host, _)| host).unwrap()
    };
    let first = std::thread::spawn(move || run(&held, "first", &[set("a", "1")]));
    // The first call has staged one key (within the quota then) and waits for approval.
    asked.recv_timeout(Duration::from_secs(60)).expect("the first call stages its key");
    run(&other, "second", &[set("b", "2"), set("c", "3")]).expect("the second fills the quota");
    go.send(()).unwrap();
    let outcome = first.join().unwrap();
    match outcome {
        Err(CallError::Host { reason, .. }) => assert_eq!(
            reason,
            "commit failed: kv: the namespace would hold 3 keys; limit 2 (max_keys), counting \
             what other calls committed meanwhile"
        ),
        other => panic!("the first call must fail at commit, got {other:?}"),
    }
    let keys: Vec<String> = stored(dir.path()).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["b", "c"]);
}

#[test]
fn a_store_locked_by_another_process_ends_the_call_by_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_in(dir.path(), "");
    run(&host, "t", &[set("a", "1")]).unwrap(); // the store exists
    let locker = rusqlite::Connection::open(dir.path().join(".moat/kv.sqlite")).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE; INSERT INTO kv VALUES ('x', 'y', x'00');").unwrap();
    let mut request = CallRequest::new("kv_script", &script(&[set("b", "2")]));
    request.budgets.wall_time = Some(moat::units::Millis(300));
    let started = Instant::now();
    let outcome = std::thread::scope(|scope| {
        let call = scope.spawn(|| host.run(&request));
        // Bounded, so that a hang fails the test instead of CI: far above any deadline here.
        while !call.is_finished() {
            assert!(started.elapsed() < Duration::from_secs(60), "the call hung on the lock");
            std::thread::sleep(Duration::from_millis(20));
        }
        call.join().unwrap()
    });
    match outcome {
        Err(CallError::Host { reason, .. }) => {
            assert!(reason.contains("is locked by another process"), "{reason}")
        }
        other => panic!("expected the commit to give up on the lock, got {other:?}"),
    }
    locker.execute_batch("ROLLBACK").unwrap();
    let keys: Vec<String> = stored(dir.path()).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["a"]);
}

/// Denies the kv effects on `k1`.
struct DenyK1;

impl Gate for DenyK1 {
    fn check_effect(&self, _: &moat::call::CallView, effect: &Effect) -> Verdict {
        match (effect.capability, effect.target.as_str()) {
            ("kv", "k1") => Verdict::Deny("not k1".into()),
            _ => Verdict::Allow,
        }
    }
}

#[test]
fn an_operation_the_gate_refuses_is_not_charged() {
    let dir = tempfile::tempdir().unwrap();
    let host = builder_in(dir.path(), "write_per_call = 10")
        .gate(Arc::new(DenyK1))
        .build()
        .map(|(host, _)| host)
        .unwrap();
    // Each set uses 6 of the 10 bytes: had the refused one been charged, the second would
    // be over the limit. The tool goes on after the refusal, and its call commits the rest.
    let ops = json!({"ops": [set("k1", "1234"), set("k2", "1234")], "go_on": true});
    let output = host.call("kv_script", &ops.to_string()).unwrap().output;
    let said: Vec<String> = serde_json::from_str(&output).unwrap();
    assert!(said[0].contains("Denied") && said[0].contains("not k1"), "{said:?}");
    assert_eq!(said[1], "ok");
    let keys: Vec<String> = stored(dir.path()).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["k2"]);
}

/// One operation of a generated script.
#[derive(Clone, Debug)]
enum Op {
    Set(u8, usize),
    Delete(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6, 0usize..20).prop_map(|(k, n)| Op::Set(k, n)),
        (0u8..6).prop_map(Op::Delete)
    ]
}

#[test]
fn whatever_the_operations_the_store_never_holds_more_than_its_quota_and_a_refused_call_changes_nothing(
) {
    let dir = tempfile::tempdir().unwrap();
    let host = host_in(dir.path(), "max_keys = 4\nmax_bytes = 30\ndeletes_per_call = 2");
    let mut runner = crate::support::fuzz_runner(24);
    runner
        .run(&proptest::collection::vec(op(), 1..8), |ops| {
            let before = stored(dir.path());
            let json: Vec<Value> = ops
                .iter()
                .map(|op| match op {
                    Op::Set(k, n) => set(&format!("k{k}"), &"v".repeat(*n)),
                    Op::Delete(k) => delete(&format!("k{k}")),
                })
                .collect();
            let outcome = run(&host, "prop", &json);
            let after = stored(dir.path());
            let bytes: usize = after.iter().map(|(k, v)| k.len() + v.len()).sum();
            prop_assert!(after.len() <= 4 && bytes <= 30, "{after:?}");
            match outcome {
                Ok(_) => {
                    // The store holds exactly what the script leaves, applied to before.
                    let mut model: std::collections::BTreeMap<String, Vec<u8>> =
                        before.into_iter().collect();
                    for op in &ops {
                        match op {
                            Op::Set(k, n) => {
                                model.insert(format!("k{k}"), vec![b'v'; *n]);
                            }
                            Op::Delete(k) => {
                                model.remove(&format!("k{k}"));
                            }
                        }
                    }
                    prop_assert_eq!(after, model.into_iter().collect::<Vec<_>>());
                }
                Err(CallError::Tool { message, .. }) => {
                    prop_assert!(message.starts_with("LimitExceeded("), "{}", message);
                    prop_assert_eq!(after, before, "a refused call changed the store");
                }
                Err(other) => prop_assert!(false, "unexpected ending: {}", other),
            }
            Ok(())
        })
        .unwrap();
}
