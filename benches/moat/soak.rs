//! Soak: 100,000 distinct calls with 16 KiB of arguments each, every one its own task,
//! through `moat serve --stdio` (the release binary), 16 in flight at a time; resident memory
//! sampled every 10,000 calls. Flat after warm-up means moat keeps nothing per call or per
//! name beyond its bounds.

use crate::calls::setup;
use crate::component;
use crate::quick;
use crate::stats::{against, resident_bytes, Row, Table};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// Arguments of each call.
const PAD: usize = 16 * 1024;
/// Calls in flight at once.
const BATCH: usize = 16;

pub fn run(work: &Path, table: &mut Table) {
    // MOAT_BENCH_SOAK_CALLS: a longer (or shorter) soak, to see where memory levels off.
    let calls: usize =
        match std::env::var("MOAT_BENCH_SOAK_CALLS").ok().and_then(|n| n.parse().ok()) {
            Some(calls) => calls,
            None if quick() => 10_000,
            None => 100_000,
        };
    eprintln!("soak: {calls} distinct calls of {} KiB through moat serve --stdio", PAD >> 10);
    let misbehave = [component("tests/misbehave.wasm")];
    let dir = work.join("hosts/soak");
    let config = setup(&dir, &misbehave, 0, "batched", &work.join("cache"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_moat"))
        .arg("--config")
        .arg(&config)
        .args(["serve", "--stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("moat serve --stdio starts");
    let mut to = child.stdin.take().expect("piped stdin");
    let mut from = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut send = |message: Value| {
        let mut line = message.to_string();
        line.push('\n');
        to.write_all(line.as_bytes()).expect("the server reads its input");
    };
    let mut read = || {
        let mut line = String::new();
        let n = from.read_line(&mut line).expect("the server writes its output");
        assert!(n > 0, "the server closed its output");
        serde_json::from_str::<Value>(&line).expect("the server writes JSON")
    };
    send(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "moat-soak", "version": "0"}}}));
    assert_eq!(read()["id"], 0);
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    let pad = "p".repeat(PAD);
    let pid = child.id();
    let mut samples = Vec::new();
    let every = calls / 10;
    for start in (0..calls).step_by(BATCH) {
        let end = (start + BATCH).min(calls);
        for n in start..end {
            send(json!({"jsonrpc": "2.0", "id": n + 1, "method": "tools/call", "params": {
                "name": "ok", "arguments": {"n": n, "pad": pad},
                "_meta": {"moat/task": format!("soak-{n}")}}}));
        }
        // Answers, in any order; no notifications are sent to this client.
        for _ in start..end {
            let answer = read();
            assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
        }
        if end / every > start / every {
            samples.push((end, resident_bytes(pid)));
        }
    }
    drop(to);
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let mb = |bytes: u64| bytes as f64 / 1e6;
    let warm = samples.first().map(|s| s.1).unwrap_or_default();
    let last = samples.last().map(|s| s.1).unwrap_or_default();
    let most = samples.iter().map(|s| s.1).max().unwrap_or_default();
    let shown: Vec<String> =
        samples.iter().map(|(n, rss)| format!("{}k {:.1}", n / 1000, mb(*rss))).collect();
    eprintln!("soak: resident MB by calls: {}", shown.join(", "));
    let grown = mb(most.saturating_sub(warm));
    table.push(
        Row::new(format!(
            "soak: {calls} distinct calls, {} KiB arguments, each its own task, moat serve --stdio: resident memory after {}k calls, at the end (most after warm-up)",
            PAD >> 10,
            calls / 10_000
        ))
        .other(format!("{:.1} MB, {:.1} MB (most {:.1} MB)", mb(warm), mb(last), mb(most)))
        .target(against(grown, 5.0, "grows <= 5 MB after warm-up")),
    );
}
