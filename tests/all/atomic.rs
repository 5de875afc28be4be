//! Controls that hold under concurrency and across processes: calls sent at once pass a
//! loop limit or a per-task limit exactly as often as the limit says, never more; processes
//! sharing `STATE_DIR` share one loop history; a half-open breaker's probe is given back
//! whatever ends its call (a refusal by the task's breaker, the loop check, the schema, a
//! policy, a budget) and is void once its process dies or its lease expires.

use crate::support::built;
use moat::{BudgetOverrides, CallError, CallRequest, Config, Host};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// `dir/moat.toml` over the test plugins with `toml` added; state in `dir/state`, and the
/// audit log in `dir/audit-NAME` (a log has one writer: each process gets its own).
fn config_file(dir: &Path, name: &str, toml: &str) -> PathBuf {
    let path = dir.join(format!("moat-{name}.toml"));
    let tests = built("tests").display().to_string();
    let cache = crate::support::shared_compile_cache().display().to_string();
    let text = format!(
        "state_dir = \"state\"\n[plugins]\ntools = [{tests:?}]\n[compile_cache]\ndir = {cache:?}\n\
         [audit]\ndir = \"audit-{name}\"\n[confidence]\nhigh = 0\n{toml}"
    );
    std::fs::write(&path, text).expect("the config is written");
    path
}

fn host_in(dir: &Path, toml: &str) -> Host {
    let config = Config::load(&config_file(dir, "host", toml)).expect("the config is valid");
    let (host, errors) = Host::new(config).expect("the host starts");
    assert!(errors.is_empty(), "{errors:?}");
    host
}

fn call(host: &Host, tool: &str, args: &str, task: &str) -> Result<String, CallError> {
    let request = CallRequest { task: Some(task.into()), ..CallRequest::new(tool, args) };
    host.run(&request).map(|response| response.output)
}

/// `moat call TOOL --task TASK` in a process of its own, over `dir/moat-NAME.toml`.
fn moat_call(config: &Path, tool: &str, task: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_moat"));
    command.arg("--config").arg(config).args(["call", tool, "--task", task]);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

const NO_BREAKERS: &str =
    "[breakers]\nfailures = 0\nfailure_rate = 0\ntask_failures = 0\ntask_no_progress = 0\n";

#[test]
fn identical_calls_sent_at_once_pass_the_repeat_limit_exactly_as_often_as_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_in(dir.path(), &format!("{NO_BREAKERS}[loops]\nrepeats = 5\n"));
    let at_once = Barrier::new(20);
    let outcomes: Vec<Result<String, CallError>> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..20)
            .map(|_| {
                s.spawn(|| {
                    at_once.wait();
                    call(&host, "ok", "{}", "storm")
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().expect("a call thread")).collect()
    });
    let ran = outcomes.iter().filter(|o| o.is_ok()).count();
    let looped = outcomes.iter().filter(|o| matches!(o, Err(CallError::Loop { .. }))).count();
    assert_eq!((ran, looped), (5, 15), "{outcomes:?}");
}

#[test]
fn six_moat_calls_of_one_task_share_one_loop_history() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!("{NO_BREAKERS}[loops]\nrepeats = 4\n");
    let config = config_file(dir.path(), "cli", &toml);
    let runs: Vec<Output> =
        (0..6).map(|_| moat_call(&config, "ok", "T").output().expect("moat runs")).collect();
    let ran = runs.iter().filter(|run| run.status.success()).count();
    assert_eq!(ran, 4, "four run, the rest are refused");
    for refused in &runs[4..] {
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(said.contains("`ok` 4 times (limit 4)"), "{said}");
    }
}

#[test]
fn identical_calls_from_processes_at_once_pass_the_repeat_limit_exactly_as_often_as_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!("{NO_BREAKERS}[loops]\nrepeats = 3\n");
    let children: Vec<Child> = (0..6)
        .map(|n| {
            let config = config_file(dir.path(), &format!("p{n}"), &toml);
            moat_call(&config, "ok", "T").spawn().expect("moat starts")
        })
        .collect();
    let runs: Vec<Output> =
        children.into_iter().map(|c| c.wait_with_output().expect("moat ends")).collect();
    let ran = runs.iter().filter(|run| run.status.success()).count();
    let said: Vec<_> = runs.iter().map(|r| String::from_utf8_lossy(&r.stderr)).collect();
    assert_eq!(ran, 3, "{said:#?}");
    assert_eq!(said.iter().filter(|s| s.contains("(limit 3)")).count(), 3, "{said:#?}");
}

#[test]
fn calls_committing_at_once_cannot_pass_a_per_task_limit_together() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!("{NO_BREAKERS}[tools.kv_script.grants.kv]\nwrite_per_task = 100\n");
    let host = host_in(dir.path(), &toml);
    // Each call writes 50 bytes (key and value), alone within the task's 100.
    let at_once = Barrier::new(8);
    let outcomes: Vec<Result<String, CallError>> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..8)
            .map(|n| {
                let (host, at_once) = (&host, &at_once);
                s.spawn(move || {
                    let ops = serde_json::json!({"ops": [
                        {"op": "set", "key": format!("k{n}"), "value": "x".repeat(48)}
                    ]});
                    at_once.wait();
                    call(host, "kv_script", &ops.to_string(), "one task")
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().expect("a call thread")).collect()
    });
    let committed = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(committed, 2, "{outcomes:?}");
    for refused in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(refused.to_string().contains("per task"), "{refused}");
    }
}

// ---- breaker probes ----------------------------------------------------------------------

/// Opens `name`'s breaker in the state database, as if it had opened long ago (`ago`) or
/// just now: past its cool-down, the next call is a probe.
fn open_breaker(dir: &Path, scope: &str, name: &str, long_ago: bool) {
    let db = rusqlite::Connection::open(dir.join("state/state.sqlite")).expect("the state");
    let opened_at: i64 = if long_ago { 0 } else { i64::MAX / 2 };
    db.execute(
        "INSERT OR REPLACE INTO breakers
         (scope, name, position, consecutive, stale, recent, opened_at, reason, probes)
         VALUES (?1, ?2, 'open', 3, 0, '111', ?3, 'opened by the test', 0)",
        (scope, name, opened_at),
    )
    .expect("the breaker is written");
}

fn leases(dir: &Path) -> i64 {
    let db = rusqlite::Connection::open(dir.join("state/state.sqlite")).expect("the state");
    db.query_row("SELECT count(*) FROM breaker_probes", [], |row| row.get(0)).expect("leases")
}

fn position(dir: &Path, scope: &str, name: &str) -> String {
    let db = rusqlite::Connection::open(dir.join("state/state.sqlite")).expect("the state");
    db.query_row(
        "SELECT position FROM breakers WHERE scope = ?1 AND name = ?2",
        (scope, name),
        |row| row.get(0),
    )
    .expect("the breaker")
}

const SUCCEED: &str = r#"{"fail": false}"#;

#[test]
fn a_probe_refused_by_the_tasks_breaker_is_given_back() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_in(dir.path(), "[loops]\nrepeats = 0\nretries = 0\nsame_error = 0\n");
    open_breaker(dir.path(), "tool", "flaky", true);
    open_breaker(dir.path(), "task", "stopped", false);
    let refused = call(&host, "flaky", SUCCEED, "stopped").unwrap_err();
    assert!(refused.to_string().contains("task `stopped` is stopped"), "{refused}");
    assert_eq!(leases(dir.path()), 0, "the tool's probe was given back");
    // Any other task's call is the tool's probe, and its success closes the breaker.
    assert_eq!(call(&host, "flaky", SUCCEED, "another").unwrap(), r#""ok""#);
    assert_eq!(position(dir.path(), "tool", "flaky"), "closed");
}

#[test]
fn a_probe_refused_before_it_runs_is_given_back_whatever_refused_it() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_in(dir.path(), "[loops]\nrepeats = 1\nretries = 0\nsame_error = 0\n");
    // The session `again` made this call once: a second time is a loop.
    assert_eq!(call(&host, "flaky", SUCCEED, "again").unwrap(), r#""ok""#);
    let refusals = [(r#"{"fail": "not a boolean"}"#, "schema"), (SUCCEED, "again")];
    for (args, task) in refusals {
        open_breaker(dir.path(), "tool", "flaky", true);
        let refused = call(&host, "flaky", args, task).unwrap_err();
        assert!(!matches!(refused, CallError::Breaker(_)), "{task}: {refused}");
        assert_eq!(leases(dir.path()), 0, "{task}: {refused}: the probe was given back");
        assert_eq!(position(dir.path(), "tool", "flaky"), "half-open", "{task}");
    }
    // The next call is the probe (another caller's: this one repeated it enough).
    let request = CallRequest {
        task: Some("fresh".into()),
        principal: Some("another caller".into()),
        ..CallRequest::new("flaky", SUCCEED)
    };
    assert_eq!(host.run(&request).unwrap().output, r#""ok""#);
    assert_eq!(position(dir.path(), "tool", "flaky"), "closed");
}

#[test]
fn a_probe_whose_process_was_killed_no_longer_holds_the_breaker() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[tools.spin.budgets]\nfuel = 1_000_000_000_000_000\nwall_time = \"10min\"\n";
    let host = host_in(dir.path(), toml);
    open_breaker(dir.path(), "tool", "spin", true);
    // Another process takes the probe, and spins.
    let config = config_file(dir.path(), "prober", toml);
    let mut prober = moat_call(&config, "spin", "probing").spawn().expect("moat starts");
    let started = Instant::now();
    while leases(dir.path()) == 0 {
        assert!(started.elapsed() < Duration::from_secs(120), "the probe never started");
        assert!(prober.try_wait().expect("the prober").is_none(), "the prober ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    let small = BudgetOverrides { fuel: Some(10_000), ..BudgetOverrides::default() };
    let spin = |task: &str| {
        let request = CallRequest {
            task: Some(task.into()),
            budgets: small,
            ..CallRequest::new("spin", "{}")
        };
        host.run(&request)
    };
    let refused = spin("waiting").unwrap_err().to_string();
    assert!(refused.contains("a probe call is already testing it"), "{refused}");
    // Killed (SIGKILL: it reports nothing), the probe's holder is gone: its lease is void.
    prober.kill().expect("the prober is killed");
    prober.wait().expect("the prober ends");
    let probed = spin("after the kill").unwrap_err();
    assert!(matches!(probed, CallError::Budget(_)), "the next call is the probe: {probed}");
    assert_eq!(leases(dir.path()), 0);
    assert_eq!(position(dir.path(), "tool", "spin"), "open", "the failed probe reopened it");
}

// ---- faults ------------------------------------------------------------------------------

#[test]
fn a_state_database_locked_by_another_process_refuses_calls_recorded_and_leaves_nothing_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[loops]\nrepeats = 2\n[breakers]\nfailures = 1\ncool_down = \"0s\"\n";
    let host = host_in(dir.path(), toml);
    open_breaker(dir.path(), "tool", "flaky", true);
    // Another writer holds the state database (as another process would) past the busy
    // timeout: the controls cannot be read, so the call is refused, not run.
    let holder = rusqlite::Connection::open(dir.path().join("state/state.sqlite")).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let refused = call(&host, "flaky", SUCCEED, "locked").unwrap_err();
    assert!(matches!(refused, CallError::Host { .. }), "{refused}");
    assert!(refused.to_string().contains("state database"), "{refused}");
    holder.execute_batch("ROLLBACK").unwrap();
    // Recorded, and nothing left stuck: the next call is the breaker's probe, and closes it.
    assert_eq!(leases(dir.path()), 0);
    assert_eq!(call(&host, "flaky", SUCCEED, "unlocked").unwrap(), r#""ok""#);
    assert_eq!(position(dir.path(), "tool", "flaky"), "closed");
    drop(host);
    let verified = Command::new(env!("CARGO_BIN_EXE_moat"))
        .arg("--config")
        .arg(dir.path().join("moat-host.toml"))
        .args(["audit", "verify"])
        .output()
        .expect("moat runs");
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));
    let log = moat::audit::log_path(&dir.path().join("audit-host"));
    let results = moat::audit::read::lines(&log)
        .expect("the log reads")
        .filter_map(|line| match line {
            Ok(moat::audit::read::Line::Record { record, .. }) => Some(record.event),
            _ => None,
        })
        .filter(|event| matches!(event, moat::audit::Event::Result { .. }))
        .count();
    assert_eq!(results, 2, "both calls have their result recorded");
}
