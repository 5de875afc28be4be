//! End to end: `moat serve --stdio` (the release binary) driven by a minimal newline-JSON-RPC
//! client, sequential calls of echo with every control on; its start-up and resident memory.

use crate::calls::setup;
use crate::component;
use crate::quick;
use crate::stats::{against, latencies, resident_bytes, Row, Table};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// One `moat serve --stdio` and the client's ends of its pipes.
struct Server {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
    next_id: u64,
}

impl Server {
    /// Starts the server and initializes the session; the time is from the spawn to the
    /// answer to `initialize`.
    fn start(config: &Path) -> (Server, Duration) {
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_moat"))
            .arg("--config")
            .arg(config)
            .args(["serve", "--stdio"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("moat serve --stdio starts");
        let to = child.stdin.take().expect("piped stdin");
        let from = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut server = Server { child, to, from, next_id: 0 };
        server.request(
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "moat-bench", "version": "0"}
            }),
        );
        let took = started.elapsed();
        server.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        (server, took)
    }

    fn send(&mut self, message: &Value) {
        let mut line = message.to_string();
        line.push('\n');
        self.to.write_all(line.as_bytes()).expect("the server reads its input");
        self.to.flush().expect("the server reads its input");
    }

    /// Sends a request and reads lines up to its answer (skipping notifications).
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let mut line = String::new();
        loop {
            line.clear();
            let read = self.from.read_line(&mut line).expect("the server writes its output");
            assert!(read > 0, "the server closed its output during {method}");
            let message: Value = serde_json::from_str(&line).expect("the server writes JSON");
            if message["id"] == json!(id) {
                assert!(message.get("error").is_none(), "{method} failed: {message}");
                return message["result"].clone();
            }
        }
    }

    fn stop(mut self) {
        drop(self.to);
        let _ = self.child.wait();
    }
}

pub fn run(work: &Path, table: &mut Table) {
    eprintln!("end to end through moat serve --stdio");
    // Set up like the other hosts: echo, 3 allow-guards, batched audit, defaults otherwise.
    let echo = [component("tools/echo.wasm")];
    let config = setup(&work.join("hosts/e2e"), &echo, 3, "batched", &work.join("cache"));
    // A first start warms the page cache and checks the session works.
    let (server, _) = Server::start(&config);
    server.stop();
    let mut starts: Vec<Duration> = (0..5)
        .map(|_| {
            let (server, took) = Server::start(&config);
            server.stop();
            took
        })
        .collect();
    starts.sort();
    let startup = starts[2];

    let (mut server, _) = Server::start(&config);
    let calls = if quick() { 500 } else { 5_000 };
    let latency = latencies(calls, |i| {
        let result = server.request(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": format!("hello, call {i}")}}),
        );
        assert_ne!(result["isError"], json!(true), "echo failed: {result}");
    });
    let resident = resident_bytes(server.child.id());
    server.stop();
    let p50 = latency.p50.as_secs_f64() * 1e6;
    table.push(
        Row::new("moat serve --stdio, echo, every control on (3 allow-guards, schema, budgets, loop history, batched audit), own client")
            .latency(latency)
            .target(against(p50, 200.0, "p50 <= 200 us")),
    );
    table.push(
        Row::new("moat serve --stdio start-up to initialize answered (warm compile cache)")
            .other(format!("{:.1} ms", startup.as_secs_f64() * 1e3))
            .target(against(startup.as_secs_f64() * 1e3, 15.0, "<= 15 ms")),
    );
    table.push(
        Row::new(format!("moat serve --stdio resident memory after {calls} calls"))
            .other(format!("{:.1} MB", resident as f64 / 1e6))
            .target(against(resident as f64, 25e6, "<= 25 MB")),
    );
}
