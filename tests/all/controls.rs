//! Circuit breakers and loop detection, driven by simulated agents: a failing tool opens its
//! breaker at the threshold, a probe after the cool-down closes or reopens it, the state
//! survives a restart; a task making no progress is stopped; a session repeating itself is
//! refused at the limit, told what it repeats.

use crate::support::built;
use moat::audit::read::{lines, Line};
use moat::audit::{self, Event};
use moat::{CallError, CallRequest, Config, Host};
use std::path::Path;
use std::time::Duration;

/// A host over the test plugins with `toml` added to its configuration; its state lives in
/// `dir`.
fn host_in(dir: &Path, toml: &str) -> Host {
    let path = dir.join("moat.toml");
    let tests = built("tests").display().to_string();
    let text = format!(
        "state_dir = \"state\"\n[plugins]\ntools = [{tests:?}]\n\
         [confidence]\nhigh = 0\n{toml}"
    );
    std::fs::write(&path, text).unwrap();
    let (host, errors) = Host::new(Config::load(&path).unwrap()).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    host
}

fn call(host: &Host, tool: &str, args: &str, task: &str) -> Result<String, CallError> {
    let request = CallRequest { task: Some(task.into()), ..CallRequest::new(tool, args) };
    host.run(&request).map(|response| response.output)
}

const FAIL: &str = r#"{"fail": true}"#;
const SUCCEED: &str = r#"{"fail": false}"#;

fn breaker_refusal(outcome: Result<String, CallError>) -> String {
    match outcome {
        Err(CallError::Breaker(refusal)) => refusal.to_string(),
        other => panic!("expected a breaker refusal, got {other:?}"),
    }
}

fn loop_refusal(outcome: Result<String, CallError>) -> String {
    match outcome {
        Err(CallError::Loop { reason, .. }) => reason,
        other => panic!("expected a loop refusal, got {other:?}"),
    }
}

const TOOL_BREAKER: &str = "[breakers]\nfailures = 3\nfailure_rate = 0\ncool_down = \"2s\"\n\
                            task_failures = 0\ntask_no_progress = 0\n[loops]\nretries = 0\n\
                            repeats = 0\nsame_error = 0\n";

#[test]
fn a_tool_failing_three_times_opens_its_breaker_and_a_successful_probe_closes_it() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_in(dir.path(), TOOL_BREAKER);
    for n in 0..3 {
        let error = call(&host, "flaky", FAIL, &format!("t{n}")).unwrap_err();
        assert!(matches!(error, CallError::Tool { .. }), "{error}");
    }
    // Open: refused at once, even a call that would succeed, with the reason and when.
    let refusal = breaker_refusal(call(&host, "flaky", SUCCEED, "t3"));
    assert!(refusal.starts_with("tool `flaky` is unavailable: its circuit breaker opened"));
    assert!(refusal.contains("3 consecutive failures"), "{refusal}");
    assert!(refusal.contains("retry in 1.") || refusal.contains("retry in 2.0"), "{refusal}");
    // Other tools are not affected.
    assert_eq!(call(&host, "ok", "{}", "t3").unwrap(), r#""ok""#);
    // After the cool-down, one probe goes through; its success closes the breaker. (The
    // cool-down is long enough that a machine stalled for a moment between the calls above
    // still sees the breaker open.)
    std::thread::sleep(Duration::from_millis(2_100));
    assert_eq!(call(&host, "flaky", SUCCEED, "t4").unwrap(), r#""ok""#);
    assert_eq!(call(&host, "flaky", SUCCEED, "t5").unwrap(), r#""ok""#);
    // Every change of position is in the audit log.
    let changes: Vec<(String, String)> = records(dir.path())
        .into_iter()
        .filter_map(|event| match event {
            Event::Breaker { name, to, .. } if name == "flaky" => Some((name, to)),
            _ => None,
        })
        .collect();
    assert_eq!(changes, [("flaky".into(), "open".into()), ("flaky".into(), "closed".into())]);
}

#[test]
fn a_failed_probe_reopens_the_breaker_for_another_cool_down() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_in(dir.path(), TOOL_BREAKER);
    for n in 0..3 {
        call(&host, "flaky", FAIL, &format!("t{n}")).unwrap_err();
    }
    std::thread::sleep(Duration::from_millis(2_100));
    assert!(matches!(call(&host, "flaky", FAIL, "t4"), Err(CallError::Tool { .. })));
    let refusal = breaker_refusal(call(&host, "flaky", SUCCEED, "t5"));
    assert!(refusal.contains("a probe after the cool-down failed"), "{refusal}");
    assert!(refusal.contains("first: 3 consecutive failures"), "{refusal}");
}

#[test]
fn an_open_breaker_stays_open_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_in(dir.path(), &TOOL_BREAKER.replace("\"2s\"", "\"1min\""));
    for n in 0..3 {
        call(&host, "flaky", FAIL, &format!("t{n}")).unwrap_err();
    }
    drop(host);
    let host = host_in(dir.path(), &TOOL_BREAKER.replace("\"2s\"", "\"1min\""));
    let refusal = breaker_refusal(call(&host, "flaky", SUCCEED, "t9"));
    assert!(refusal.contains("3 consecutive failures"), "{refusal}");
}

#[test]
fn a_failure_rate_over_the_window_opens_the_breaker() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[breakers]\nfailures = 0\nfailure_rate = 0.5\nwindow = 4\nmin_calls = 4\n\
                task_failures = 0\ntask_no_progress = 0\n[loops]\nrepeats = 0\nretries = 0\n";
    let host = host_in(dir.path(), toml);
    for (n, args) in [FAIL, SUCCEED, FAIL].iter().enumerate() {
        let _ = call(&host, "flaky", args, &format!("t{n}"));
    }
    // 2 of the last 4 calls failed: 50%.
    call(&host, "flaky", SUCCEED, "t3").unwrap();
    let _ = call(&host, "flaky", FAIL, "t4");
    let refusal = breaker_refusal(call(&host, "flaky", SUCCEED, "t5"));
    assert!(
        refusal.contains("2 of its last 4 calls failed, a rate of 50% (limit 50%)"),
        "{refusal}"
    );
}

#[test]
fn a_task_making_no_progress_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[breakers]\ntask_no_progress = 3\ncool_down = \"1min\"\n[loops]\nrepeats = 0\n";
    let host = host_in(dir.path(), toml);
    // The first result is new; the next three bring nothing new.
    for _ in 0..4 {
        assert_eq!(call(&host, "ok", "{}", "stuck").unwrap(), r#""ok""#);
    }
    let refusal = breaker_refusal(call(&host, "ok", "{}", "stuck"));
    assert!(refusal.starts_with("task `stuck` is stopped"), "{refusal}");
    assert!(refusal.contains("3 calls in a row brought no new successful result"), "{refusal}");
    // Another task goes on.
    assert_eq!(call(&host, "ok", "{}", "fresh").unwrap(), r#""ok""#);
}

#[test]
fn a_task_whose_calls_keep_failing_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[breakers]\nfailures = 0\nfailure_rate = 0\ntask_failures = 3\n\
                cool_down = \"1min\"\n[loops]\nretries = 0\nrepeats = 0\nsame_error = 0\n";
    let host = host_in(dir.path(), toml);
    for _ in 0..3 {
        call(&host, "flaky", FAIL, "doomed").unwrap_err();
    }
    let refusal = breaker_refusal(call(&host, "ok", "{}", "doomed"));
    assert!(refusal.contains("task `doomed` is stopped"), "{refusal}");
    assert!(refusal.contains("3 calls in a row failed"), "{refusal}");
}

#[test]
fn an_agent_repeating_a_call_is_refused_at_the_limit_and_told_what_it_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_in(dir.path(), "[loops]\nrepeats = 3\n[breakers]\ntask_no_progress = 0\n");
    for _ in 0..3 {
        call(&host, "ok", "{}", "t").unwrap();
    }
    let reason = loop_refusal(call(&host, "ok", "{}", "t"));
    assert!(reason.contains("already made this exact call of `ok` 3 times (limit 3)"), "{reason}");
    // A refused call was not made: asked again, the count is the same.
    let reason = loop_refusal(call(&host, "ok", "{}", "t"));
    assert!(reason.contains("`ok` 3 times (limit 3)"), "{reason}");
    assert!(reason.contains("use the earlier result, or change the arguments"), "{reason}");
    // Another session label of the same caller is no way around it.
    let reason = loop_refusal(call(&host, "ok", "{}", "other"));
    assert!(reason.contains("`local` made this exact call of `ok`"), "{reason}");
    // Another caller is not affected.
    let request = CallRequest {
        task: Some("another caller's".into()),
        principal: Some("someone else".into()),
        ..CallRequest::new("ok", "{}")
    };
    host.run(&request).unwrap();
    let looped = records(dir.path()).into_iter().any(|e| matches!(e, Event::Loop { .. }));
    assert!(looped, "the loop is in the audit log");
}

#[test]
fn a_failing_call_retried_past_the_retry_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[loops]\nretries = 2\n[breakers]\nfailures = 0\nfailure_rate = 0\n\
                task_failures = 0\n";
    let host = host_in(dir.path(), toml);
    for _ in 0..3 {
        assert!(matches!(call(&host, "flaky", FAIL, "t"), Err(CallError::Tool { .. })));
    }
    let reason = loop_refusal(call(&host, "flaky", FAIL, "t"));
    assert!(reason.contains("this exact call of `flaky` failed 3 times in a row"), "{reason}");
    assert!(reason.contains("backend unavailable (HTTP 503)"), "{reason}");
    // The same tool with other arguments still runs.
    call(&host, "flaky", SUCCEED, "t").unwrap();
}

#[test]
fn near_identical_calls_failing_with_the_same_error_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[loops]\nsame_error = 3\n[breakers]\nfailures = 0\nfailure_rate = 0\n\
                task_failures = 0\n";
    let host = host_in(dir.path(), toml);
    for n in 0..3 {
        let args = format!(r#"{{"bytes": {}}}"#, 2_000_000 + n);
        assert!(matches!(call(&host, "huge_output", &args, "t"), Err(CallError::Budget(_))));
    }
    let reason = loop_refusal(call(&host, "huge_output", r#"{"bytes": 2000009}"#, "t"));
    assert!(
        reason.contains("the last 3 calls of `huge_output` in this session failed"),
        "{reason}"
    );
    assert!(reason.contains("output budget"), "{reason}");
    assert!(reason.contains("change the approach, not the values"), "{reason}");
}

fn records(dir: &Path) -> Vec<Event> {
    lines(&audit::log_path(&dir.join("state/audit")))
        .unwrap()
        .filter_map(|line| match line.unwrap() {
            Line::Record { record, .. } => Some(record.event),
            _ => None,
        })
        .collect()
}

#[test]
fn a_ten_megabyte_output_is_windowed_and_reading_on_returns_every_byte_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_in(dir.path(), "[task]\ntokens = 100_000_000\n[window]\ntokens = 50_000\n");
    let request = CallRequest {
        budgets: moat::BudgetOverrides {
            output: Some(moat::units::ByteSize::mib(16)),
            ..Default::default()
        },
        task: Some("big".into()),
        ..CallRequest::new("lines", r#"{"count": 250000}"#)
    };
    let first = host.run(&request).unwrap();
    let window = first.window.clone().expect("the output is over the window");
    assert!(window.total_bytes > 10_000_000, "{window:?}");
    assert!(window.tokens <= 50_000, "{window:?}");
    let mut whole = first.output;
    let mut cursor = window.cursor;
    let mut windows = 1;
    while let Some(at) = cursor {
        let args = serde_json::json!({ "cursor": at }).to_string();
        let request =
            CallRequest { task: Some("big".into()), ..CallRequest::new("read_more", &args) };
        let next = host.run(&request).unwrap();
        let window = next.window.expect("a window of a windowed output");
        assert_eq!(window.offset, whole.len() as u64, "each window starts where the last ended");
        assert!(window.tokens <= 50_000);
        whole.push_str(&next.output);
        cursor = window.cursor;
        windows += 1;
    }
    assert!(windows > 10, "{windows} windows");
    let lines: Vec<String> =
        (0..250000).map(|n| format!("line {n}: café ✓ naïve 🦀 {}\n", n * 7919 % 10007)).collect();
    let expected = serde_json::to_string(&lines.concat()).unwrap();
    assert_eq!(whole.len(), expected.len());
    assert!(whole == expected, "the windows put together are the output, byte for byte");
    // A forged cursor is a clear refusal.
    let forged = CallRequest::new("read_more", r#"{"cursor": "0000-1"}"#);
    let error = host.run(&forged).unwrap_err().to_string();
    assert!(error.contains("was not given out by this moat process"), "{error}");
}

/// A windowed output of `lines` in `task`, and the cursor to read on.
fn windowed(host: &Host, task: &str) -> String {
    let request =
        CallRequest { task: Some(task.into()), ..CallRequest::new("lines", r#"{"count": 2000}"#) };
    let first = host.run(&request).unwrap();
    first.window.and_then(|w| w.cursor).expect("the output is over the window")
}

fn read_more(host: &Host, cursor: &str, task: &str) -> Result<String, CallError> {
    call(host, "read_more", &serde_json::json!({ "cursor": cursor }).to_string(), task)
}

#[test]
fn reading_on_is_a_call_counted_and_refused_once_the_tasks_budget_is_used_up() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_in(dir.path(), "[task]\ncalls = 2\n[window]\ntokens = 200\n");
    let cursor = windowed(&host, "t");
    read_more(&host, &cursor, "t").unwrap();
    match read_more(&host, &cursor, "t") {
        Err(CallError::TaskBudget { budget, limit, used, .. }) => {
            assert_eq!((budget, limit.as_str()), ("calls", "2"));
            assert_eq!(used, "2 (this would be call 3)");
        }
        other => panic!("expected the task's call budget, got {other:?}"),
    }
}

#[test]
fn reading_on_is_refused_while_the_tasks_breaker_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[window]\ntokens = 200\n[breakers]\nfailures = 0\ntask_failures = 2\n\
                cool_down = \"60min\"\n[loops]\nretries = 0\nrepeats = 0\nsame_error = 0\n";
    let host = host_in(dir.path(), toml);
    let cursor = windowed(&host, "t");
    for _ in 0..2 {
        call(&host, "flaky", FAIL, "t").unwrap_err();
    }
    let refusal = breaker_refusal(read_more(&host, &cursor, "t"));
    assert!(refusal.contains("task `t`"), "{refusal}");
    read_more(&host, &cursor, "another").unwrap();
}

#[test]
fn each_task_budget_stops_work_at_its_limit_with_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_in(dir.path(), "[task]\ncalls = 3\n[loops]\nrepeats = 0\n");
    for _ in 0..3 {
        call(&host, "ok", "{}", "short").unwrap();
    }
    let error = call(&host, "ok", "{}", "short").unwrap_err().to_string();
    assert_eq!(
        error,
        "task `short` exceeded its calls budget: limit 3, used 3 (this would be call 4)"
    );

    drop(host);
    let host = host_in(dir.path(), "[task]\ntokens = 100\n[loops]\nrepeats = 0\n");
    // Output tokens and the model's own tokens add up.
    let request = CallRequest {
        task: Some("chatty".into()),
        model_tokens: Some(95),
        ..CallRequest::new("ok", "{}")
    };
    host.run(&request).unwrap();
    // 95 model tokens, 3 output tokens (`"ok"`), then 95 more: over.
    let error = host.run(&request).unwrap_err().to_string();
    assert_eq!(error, "task `chatty` exceeded its tokens budget: limit 100, used 193");

    drop(host);
    let host = host_in(dir.path(), "[task]\nfuel = 1_000_000\n");
    let _ = call(&host, "spin", "{}", "hot");
    let error = call(&host, "ok", "{}", "hot").unwrap_err().to_string();
    assert!(
        error.starts_with("task `hot` exceeded its fuel budget: limit 1000000, used "),
        "{error}"
    );
}

#[test]
fn a_stopped_task_alerts_a_person_through_the_webhook() {
    let receiver = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    let received = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = receiver.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        while !String::from_utf8_lossy(&request).contains("}") {
            let n = stream.read(&mut buffer).unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buffer[..n]);
        }
        stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[breakers]\ntask_no_progress = 2\n[loops]\nrepeats = 0\n[alerts]\nstderr = false\n\
         webhook = \"http://127.0.0.1:{port}/alerts\"\n"
    );
    let host = host_in(dir.path(), &toml);
    for _ in 0..3 {
        call(&host, "ok", "{}", "stuck").unwrap();
    }
    drop(host); // delivers what is queued
    let request = received.join().unwrap();
    assert!(request.starts_with("POST /alerts HTTP/1.1"), "{request}");
    let body: serde_json::Value =
        serde_json::from_str(&request[request.find('{').unwrap()..]).unwrap();
    assert_eq!(body["kind"], "task_stopped");
    assert_eq!(body["task"], "stuck");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("2 calls in a row brought no new successful result"), "{message}");
}
