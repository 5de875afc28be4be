//! End to end over MCP: `moat serve --stdio` (the release binary) in three setups, and a null
//! server that answers without doing anything (the floor), all driven by one minimal
//! newline-JSON-RPC client with sequential `tools/call`s of echo. For each: p50 and p99, calls
//! per second, the own cost (p50 minus the floor's), the first call after start against the
//! tenth, resident memory after the run; then the start-up, and four clients at once.

use crate::calls::setup;
use crate::component;
use crate::quick;
use crate::stats::{against, latencies, resident_bytes, Latency, Row, Table};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that makes the bench binary the null server.
pub const NULL_SERVER: &str = "MOAT_BENCH_NULL_SERVER";

/// The floor: reads newline-delimited JSON-RPC, answers each request with a fixed result
/// (`initialize`'s, or an echo-shaped tool result), ignores notifications. Parses each line,
/// as any server must to find the id; does nothing else.
pub fn null_server() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return };
        let Ok(message) = serde_json::from_str::<Value>(&line) else { continue };
        let Some(id) = message.get("id") else { continue };
        let result = match message["method"].as_str() {
            Some("initialize") => json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "null", "version": "0"}
            }),
            _ => json!({"content": [{"type": "text", "text": "{}"}], "isError": false}),
        };
        let answer = json!({"jsonrpc": "2.0", "id": id, "result": result});
        if writeln!(out, "{answer}").and_then(|()| out.flush()).is_err() {
            return;
        }
    }
}

/// What the client talks to.
#[derive(Clone)]
enum Target {
    /// `moat serve --stdio` with this config.
    Moat(PathBuf),
    /// The bench binary itself as the null server.
    Null,
}

impl Target {
    fn command(&self) -> Command {
        match self {
            Target::Moat(config) => {
                let mut command = Command::new(env!("CARGO_BIN_EXE_moat"));
                command.arg("--config").arg(config).args(["serve", "--stdio"]);
                command
            }
            Target::Null => {
                let me = std::env::current_exe().expect("the bench binary's path");
                let mut command = Command::new(me);
                command.env(NULL_SERVER, "1");
                command
            }
        }
    }
}

/// One server process and the client's ends of its pipes.
struct Server {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
    next_id: u64,
}

impl Server {
    /// Starts the server and initializes the session; the time is from the spawn to the
    /// answer to `initialize`.
    fn start(target: &Target) -> (Server, Duration) {
        let started = Instant::now();
        let mut child = target
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server starts");
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

    /// One call of echo; every call's arguments differ, across servers too (the loop
    /// detector's history outlives a process: no loop limit is reached).
    fn echo(&mut self, i: usize) {
        let arguments = json!({"text": format!("hello from {}, call {i}", self.child.id())});
        let result = self.request("tools/call", json!({"name": "echo", "arguments": arguments}));
        assert_ne!(result["isError"], json!(true), "echo failed: {result}");
    }

    fn stop(mut self) {
        drop(self.to);
        let _ = self.child.wait();
    }
}

/// What one setup measured.
struct Measured {
    latency: Latency,
    calls_per_second: f64,
    /// The first call after start, and the tenth (medians over several starts).
    first: Duration,
    tenth: Duration,
    resident: u64,
}

/// Starts `target` `starts` times for its first and tenth calls, then once for `calls` timed
/// calls.
fn measure(target: &Target, calls: usize, starts: usize) -> Measured {
    let mut firsts = Vec::new();
    let mut tenths = Vec::new();
    for _ in 0..starts {
        let (mut server, _) = Server::start(target);
        for i in 0..10 {
            let started = Instant::now();
            server.echo(i);
            match i {
                0 => firsts.push(started.elapsed()),
                9 => tenths.push(started.elapsed()),
                _ => {}
            }
        }
        server.stop();
    }
    firsts.sort();
    tenths.sort();
    let (mut server, _) = Server::start(target);
    let started = Instant::now();
    let latency = latencies(calls, |i| server.echo(i));
    let timed = calls + (calls / 10).max(20);
    let calls_per_second = timed as f64 / started.elapsed().as_secs_f64();
    let resident = resident_bytes(server.child.id());
    server.stop();
    Measured {
        latency,
        calls_per_second,
        first: firsts[firsts.len() / 2],
        tenth: tenths[tenths.len() / 2],
        resident,
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub fn run(work: &Path, table: &mut Table) {
    eprintln!("end to end over MCP (stdio): a null server and moat serve in three setups");
    let calls = if quick() { 500 } else { 5_000 };
    let starts = if quick() { 3 } else { 5 };
    let echo = [component("tools/echo.wasm")];
    let cache = work.join("cache");
    let hosts = work.join("hosts");
    // The setups of the table: audit off and no policies; the embedded defaults
    // (durable audit) and no policies; every control on (3 allow-guards, batched audit).
    let off = Target::Moat(setup(&hosts.join("e2e-off"), &echo, 0, "off", &cache));
    let defaults = Target::Moat(setup(&hosts.join("e2e-defaults"), &echo, 0, "durable", &cache));
    let every = Target::Moat(setup(&hosts.join("e2e-every"), &echo, 3, "batched", &cache));
    // A first start of each warms the page cache and the compile cache, and checks it works.
    for target in [&off, &defaults, &every] {
        let (mut server, _) = Server::start(target);
        server.echo(0);
        server.stop();
    }

    let floor = measure(&Target::Null, calls, starts);
    row(table, "null server: answers without doing anything (the floor)", &floor, None);
    let measured = [
        ("moat serve --stdio, audit off, no policies", measure(&off, calls, starts), 60.0),
        (
            "moat serve --stdio, embedded defaults (durable audit), no policies",
            measure(&defaults, calls, starts),
            f64::NAN,
        ),
        (
            "moat serve --stdio, every control on (3 allow-guards, schema, budgets, loop history, batched audit)",
            measure(&every, calls, starts),
            100.0,
        ),
    ];
    let own = |m: &Measured| us(m.latency.p50) - us(floor.latency.p50);
    let batched_own = own(&measured[2].1);
    for (what, m, bound) in &measured {
        let target = if bound.is_nan() {
            // Durable audit against batched: what durability costs on top.
            against(own(m), 1.5 * batched_own, "own cost <= 1.5x every control on (batched)")
        } else {
            against(own(m), *bound, &format!("own cost <= {bound:.0} us"))
        };
        row(table, what, m, Some((own(m), target)));
    }
    let defaults = &measured[1].1;
    table.push(
        Row::new(format!(
            "moat serve --stdio resident memory after {calls} calls (embedded defaults)"
        ))
        .other(format!("{:.1} MB", defaults.resident as f64 / 1e6))
        .target(against(defaults.resident as f64, 30e6, "<= 30 MB")),
    );

    let startup = startup(&every);
    table.push(
        Row::new("moat serve --stdio start-up to initialize answered (warm compile cache)")
            .other(format!("{:.1} ms", startup.as_secs_f64() * 1e3))
            .target(against(startup.as_secs_f64() * 1e3, 15.0, "<= 15 ms")),
    );

    // Each client its own server and state directory: an audit log has one writer.
    let clients: Vec<Target> = (0..4)
        .map(|n| {
            let dir = hosts.join(format!("e2e-client-{n}"));
            Target::Moat(setup(&dir, &echo, 3, "batched", &cache))
        })
        .collect();
    let rate = concurrent(&clients, calls);
    table.push(
        Row::new(format!(
            "{} clients at once, each its own moat serve --stdio (and state directory), every control on",
            clients.len()
        ))
        .other(format!("{rate:.0} calls/s"))
        .target(against(4000.0 / rate, 1.0, ">= 4,000 calls/s")),
    );
}

/// One setup's row: latency, calls per second, own cost, first call against the tenth.
fn row(table: &mut Table, what: &str, m: &Measured, own: Option<(f64, String)>) {
    let first = m.first.as_secs_f64() * 1e3;
    let ratio = m.first.as_secs_f64() / m.tenth.as_secs_f64().max(1e-9);
    let mut other = format!(
        "{:.0} calls/s; first call {first:.2} ms, {ratio:.1}x the tenth; RSS {:.1} MB",
        m.calls_per_second,
        m.resident as f64 / 1e6
    );
    let row = Row::new(what).latency(m.latency);
    let row = match own {
        Some((own, target)) => {
            other = format!("own cost {own:.0} us; {other}");
            let first = against(ratio, 2.0, "first call <= 2x the tenth");
            row.target(format!("{target}; {first}"))
        }
        None => row,
    };
    table.push(row.other(other));
}

/// The median of five starts, to `initialize` answered.
fn startup(target: &Target) -> Duration {
    let mut starts: Vec<Duration> = (0..5)
        .map(|_| {
            let (server, took) = Server::start(target);
            server.stop();
            took
        })
        .collect();
    starts.sort();
    starts[2]
}

/// Calls per second with one client per target calling at once, each through its own server
/// (an MCP client over stdio starts its own).
fn concurrent(targets: &[Target], calls: usize) -> f64 {
    let clients = targets.len();
    let mut servers: Vec<Server> = targets.iter().map(|t| Server::start(t).0).collect();
    for (n, server) in servers.iter_mut().enumerate() {
        server.echo(usize::MAX - n);
    }
    let each = calls / clients;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for (n, server) in servers.iter_mut().enumerate() {
            scope.spawn(move || (0..each).for_each(|i| server.echo(n * each + i)));
        }
    });
    let rate = (each * clients) as f64 / started.elapsed().as_secs_f64();
    servers.into_iter().for_each(Server::stop);
    rate
}
