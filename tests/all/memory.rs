//! Bounded memory: whatever the agent sends, and however many names it makes up, what moat
//! keeps is bounded. A stream of distinct calls with large arguments through `moat serve
//! --stdio` leaves resident memory flat after warm-up; one large request raises the peak
//! resident memory by about twice its size; task and session names are kept by their head and hash; a
//! session's history holds previews of effect targets, never whole ones. (The 100,000-call
//! soak is in `just bench`; this one is smaller, bounded in calls, and not timed.)

use crate::mcp::Client;
use crate::support::{built, shared_compile_cache};
use moat::audit::read::{lines, Line};
use moat::audit::{self, Event};
use moat::{CallRequest, Config, Host};
use serde_json::{json, Value};
use std::path::Path;

/// A field of `/proc/PID/status`, in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status (Linux only): {e}"));
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().expect("a number of kB");
    kib * 1024
}

fn config() -> String {
    let cache = shared_compile_cache().display().to_string();
    format!("[compile_cache]\ndir = {cache:?}\n[confidence]\nhigh = 0\n")
}

/// Sends `count` distinct `ok` calls, each of its own task, with `pad` bytes of arguments
/// each, a batch at a time, and checks every answer.
fn calls(client: &mut Client, from: usize, count: usize, pad: usize) {
    const BATCH: usize = 16;
    let filler = "p".repeat(pad);
    for start in (from..from + count).step_by(BATCH) {
        let ids: Vec<Value> = (start..(start + BATCH).min(from + count))
            .map(|n| {
                // Each its own task, as many distinct names as calls.
                let args = json!({"n": n, "pad": filler});
                let meta = json!({"moat/task": format!("soak-{n}")});
                let params = json!({"name": "ok", "arguments": args, "_meta": meta});
                client.send_request("tools/call", params)
            })
            .collect();
        // Answers come as the calls finish, in any order.
        let mut waiting = ids;
        for _ in 0..4 * BATCH {
            if waiting.is_empty() {
                break;
            }
            let answer = client.next();
            if let Some(at) = waiting.iter().position(|id| *id == answer["id"]) {
                waiting.swap_remove(at);
                assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
            }
        }
        assert!(waiting.is_empty(), "no answers to {waiting:?}");
    }
}

#[test]
fn resident_memory_stays_flat_over_thousands_of_distinct_calls_with_large_arguments() {
    const PAD: usize = 32 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::start(dir.path(), &config());
    let pid = client.pid();
    calls(&mut client, 0, 1_000, PAD);
    let warm = status_bytes(pid, "VmRSS");
    calls(&mut client, 1_000, 2_000, PAD);
    let after = status_bytes(pid, "VmRSS");
    // Keeping even one copy of each call's arguments would add 2,000 x 32 KiB = 64 MiB.
    let grown = after.saturating_sub(warm);
    eprintln!(
        "resident memory after 1,000 calls {} KiB, after 3,000 {} KiB",
        warm >> 10,
        after >> 10
    );
    assert!(
        grown < 16 << 20,
        "resident memory grew by {} KiB over 2,000 calls after warm-up ({} KiB to {} KiB)",
        grown >> 10,
        warm >> 10,
        after >> 10
    );
    assert!(client.hang_up().success());
}

/// How much one `tools/call` of `tool` with `size` bytes of arguments raises the server's
/// peak resident memory (after warm-up calls, so that only this request counts).
fn peak_of_one_call(tool: &str, size: usize) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::start(dir.path(), &config());
    let pid = client.pid();
    calls(&mut client, 0, 50, 1024);
    let before = status_bytes(pid, "VmHWM");
    let args = json!({"pad": "p".repeat(size)});
    let id = client.send_request("tools/call", json!({"name": tool, "arguments": args}));
    let answer = client.answer(&id);
    assert!(answer["result"].is_object(), "{answer}");
    let peak = status_bytes(pid, "VmHWM").saturating_sub(before);
    assert!(client.hang_up().success());
    eprintln!("one {tool} call of {} MiB raised the peak by {} MiB", size >> 20, peak >> 20);
    peak
}

/// Fails unless one `tools/call` of `tool` with 12 MiB of arguments raises the peak
/// resident memory by at most 2.5 times that (measured: 1.9 times, whether the tool runs or
/// not); the bound leaves room for the allocator's pages.
fn assert_one_large_call_within_two_and_a_half_times(tool: &str) {
    const SIZE: usize = 12 << 20;
    let peak = peak_of_one_call(tool, SIZE);
    assert!(
        peak <= 5 * SIZE as u64 / 2,
        "one {tool} call of {} MiB raised the peak resident memory by {} MiB (at most 2.5 times)",
        SIZE >> 20,
        peak >> 20
    );
}

#[test]
fn one_large_request_is_read_parsed_and_recorded_within_about_twice_its_size() {
    // Refused once recorded (no such tool): the transport, the parse and the log only. At
    // most two copies are alive at once (the line and its parse; the parsed arguments and
    // their text).
    assert_one_large_call_within_two_and_a_half_times("no_such_tool");
}

#[test]
fn one_large_call_that_runs_costs_about_twice_its_size() {
    // Run: the host's copy is shared by every check; the tool's sandbox has its own copy
    // once the host's parse is gone.
    assert_one_large_call_within_two_and_a_half_times("ok");
}

fn host_in(dir: &Path, toml: &str) -> Host {
    let path = dir.join("moat.toml");
    let tests = built("tests").display().to_string();
    let cache = shared_compile_cache().display().to_string();
    let text = format!(
        "state_dir = \"state\"\n[plugins]\ntools = [{tests:?}]\n[compile_cache]\n\
         dir = {cache:?}\n[confidence]\nhigh = 0\n{toml}"
    );
    std::fs::write(&path, text).unwrap();
    let (host, errors) = Host::new(Config::load(&path).unwrap()).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    host
}

#[test]
fn a_long_task_name_is_kept_by_its_head_and_hash_and_its_limits_hold_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_in(dir.path(), "[task]\ncalls = 2\n[loops]\nrepeats = 0\n");
    let long = "t".repeat(1 << 20);
    let call = |task: &str| {
        host.run(&CallRequest { task: Some(task.to_owned()), ..CallRequest::new("ok", "{}") })
    };
    call(&long).unwrap();
    call(&long).unwrap();
    let refusal = call(&long).unwrap_err().to_string();
    assert!(refusal.contains("exceeded its calls budget"), "{refusal}");
    assert!(refusal.len() < 600, "the refusal repeats the whole name: {} bytes", refusal.len());
    // A name that differs only past the head is another task.
    call(&format!("{long}2")).unwrap();
    drop(host);
    let log = audit::log_path(&dir.path().join("state/audit"));
    let mut tasks: Vec<String> = lines(&log)
        .unwrap()
        .filter_map(|line| match line.unwrap() {
            Line::Record { record, .. } => match record.event {
                Event::Call { task, .. } => Some(task),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(tasks.len(), 4);
    assert!(tasks.iter().all(|task| task.len() <= 256 && task.starts_with("ttt")), "{tasks:?}");
    tasks.dedup();
    assert_eq!(tasks.len(), 2, "one key per long name: {tasks:?}");
}
