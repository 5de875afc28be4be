//! `moat serve` driven by an MCP client nobody here wrote: the official Python SDK (`mcp`,
//! pinned with hashes in `tests/mcp-client/requirements.txt`, installed into
//! `target/mcp-venv` by `just mcp-client`, which `just test` runs first). Each test runs
//! `tests/mcp-client/client.py` on a scenario, over stdio (the client spawns `moat serve
//! --stdio`) and over streamable HTTP (`moat serve --http 127.0.0.1:0`), and checks what the
//! client saw: the handshake, the tool list, results and refusals, escalations put to the
//! client's user through elicitation, a malformed request, the bearer token, and a client
//! vanishing in the middle of a call.

use crate::support::{built, root};
use moat::audit::read::{lines, Line};
use moat::audit::{self, Event};
use serde_json::{json, Value};
use std::cell::Cell;
use std::ffi::OsString;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long one client run, or one server start, may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// What the server prints once it listens, before the URL.
const LISTENING: &str = "moat: MCP over streamable HTTP at ";

/// The Python of the client's virtualenv. Fails, saying how to install it, when it is
/// missing or half-built: these tests never skip.
pub(crate) fn python() -> PathBuf {
    let venv = root().join("target/mcp-venv");
    let python = venv.join("bin/python");
    assert!(
        python.is_file() && venv.join(".moat-stamp").is_file(),
        "the Python MCP client is not installed: run `just mcp-client` \
         (`just test` does it first; it builds {} from tests/mcp-client/requirements.txt)",
        venv.display()
    );
    python
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Transport {
    Stdio,
    Http,
}

/// A sandbox for one moat: a directory with its `moat.toml` (the example tools and the test
/// plugins, no policies, state in `state/`, `extra` added), a file `data/keep.txt` a
/// high-stakes tool may remove, and for HTTP the running server.
struct Moat {
    transport: Transport,
    dir: tempfile::TempDir,
    config: PathBuf,
    server: Option<Server>,
    /// Client runs so far (each has its own output files).
    runs: Cell<usize>,
}

/// `fs_remove` may remove files in `data/`: a high-stakes call (it declares `delete`).
const REMOVE_GRANT: &str =
    "[tools.fs_remove.grants.fs.data]\npath = \"data\"\nmode = \"read-write\"\n";

impl Moat {
    fn start(transport: Transport, extra: &str) -> Moat {
        let dir = tempfile::tempdir().unwrap();
        let tools = built("tools").display().to_string();
        let tests = built("tests").display().to_string();
        let config = dir.path().join("moat.toml");
        let text = format!(
            "state_dir = \"state\"\n[plugins]\ntools = [{tools:?}, {tests:?}]\n\
             {REMOVE_GRANT}{extra}"
        );
        std::fs::write(&config, text).unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/keep.txt"), "keep me").unwrap();
        let server = match transport {
            Transport::Stdio => None,
            Transport::Http => Some(Server::start(dir.path(), &config)),
        };
        Moat { transport, dir, config, server, runs: Cell::new(0) }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// The command line serving MCP over stdio.
    fn stdio_command(&self) -> Vec<OsString> {
        let moat = env!("CARGO_BIN_EXE_moat");
        vec![
            moat.into(),
            "--config".into(),
            self.config.clone().into(),
            "serve".into(),
            "--stdio".into(),
        ]
    }

    fn url(&self) -> &str {
        &self.server.as_ref().expect("an HTTP moat").url
    }

    /// One client session running `scenario`: over stdio, a new `moat serve --stdio`; over
    /// HTTP, a new session with the running server.
    fn session(&self, scenario: Value) -> Outcome {
        self.session_with(&[], scenario)
    }

    /// [`Moat::session`], with more options for the client (`--token`).
    fn session_with(&self, options: &[&str], scenario: Value) -> Outcome {
        let mut args: Vec<OsString> = options.iter().map(OsString::from).collect();
        match self.transport {
            Transport::Stdio => {
                args.extend(["--stdio".into(), "--".into()]);
                args.extend(self.stdio_command());
            }
            Transport::Http => args.extend(["--http".into(), self.url().into()]),
        }
        self.client(args, scenario)
    }

    /// Runs client.py with `args` on `scenario`, bounded by [`TIMEOUT`].
    fn client(&self, args: Vec<OsString>, scenario: Value) -> Outcome {
        let script = root().join("tests/mcp-client/client.py");
        // Files, not pipes: a stdio server the client leaves behind keeps its stderr open.
        let n = self.runs.replace(self.runs.get() + 1);
        let stdout_path = self.path(&format!("client-{n}.out"));
        let stderr_path = self.path(&format!("client-{n}.err"));
        let mut child = Command::new(python())
            .arg(&script)
            .args(&args)
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(&stdout_path).unwrap())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("the client's Python starts");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(scenario.to_string().as_bytes()).unwrap();
        drop(stdin);
        let status = wait(&mut child, TIMEOUT);
        let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let outcome = Outcome {
            transport: self.transport,
            doc: Value::Null,
            status,
            stdout: stdout.clone(),
            stderr,
            stderr_path,
            server_log: self.server_log(),
        };
        let Some(status) = status else {
            panic!("the client did not finish within {TIMEOUT:?} (killed)\n{outcome}");
        };
        let doc = match serde_json::from_str(stdout.trim()) {
            Ok(doc) => doc,
            Err(e) => {
                panic!("the client's output is not one JSON document ({e}), {status}\n{outcome}")
            }
        };
        Outcome { doc, ..outcome }
    }

    fn server_log(&self) -> String {
        match &self.server {
            Some(server) => std::fs::read_to_string(&server.stderr).unwrap_or_default(),
            None => String::new(),
        }
    }
}

/// Waits for `child`, at most `timeout`; kills it then. `None` when it had to be killed.
fn wait(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A running `moat serve --http 127.0.0.1:0`, killed when dropped.
struct Server {
    child: Child,
    url: String,
    stderr: PathBuf,
}

impl Server {
    fn start(dir: &Path, config: &Path) -> Server {
        let stderr = dir.join("server.err");
        let mut child = Command::new(env!("CARGO_BIN_EXE_moat"))
            .current_dir(dir)
            .arg("--config")
            .arg(config)
            .args(["serve", "--http", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("moat starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        // Reads on (so the server never blocks on a full pipe); ends when moat does.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = sender.send(line);
            }
        });
        let first = lines.recv_timeout(TIMEOUT);
        let mut server = Server { child, url: String::new(), stderr };
        let url = first.as_deref().ok().and_then(|line| line.strip_prefix(LISTENING));
        match url {
            Some(url) if url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp") => {
                server.url = url.to_owned();
                server
            }
            _ => {
                let _ = server.child.kill();
                let status = server.child.wait().ok();
                let log = std::fs::read_to_string(&server.stderr).unwrap_or_default();
                panic!(
                    "`moat serve --http 127.0.0.1:0` did not say where it listens \
                     (expected one line `{LISTENING}http://127.0.0.1:PORT/mcp` within {TIMEOUT:?}); \
                     its first line: {first:?}; it ended: {status:?}; its stderr:\n{log}"
                );
            }
        }
    }

    /// `host:port` of the endpoint.
    fn address(&self) -> &str {
        let rest = self.url.strip_prefix("http://").unwrap();
        &rest[..rest.find('/').unwrap()]
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one client run printed, with everything needed to tell what went wrong.
struct Outcome {
    transport: Transport,
    doc: Value,
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    /// Where the client's stderr went (and a stdio server's, which may outlive it).
    stderr_path: PathBuf,
    server_log: String,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail = |text: &str| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        writeln!(f, "transport: {:?}; client exit: {:?}", self.transport, self.status)?;
        match self.doc {
            Value::Null => writeln!(f, "client stdout:\n{}", self.stdout)?,
            _ => writeln!(f, "client output: {:#}", self.doc)?,
        }
        writeln!(f, "client stderr (last 40 lines):\n{}", tail(&self.stderr))?;
        if !self.server_log.is_empty() {
            writeln!(f, "server stderr (last 40 lines):\n{}", tail(&self.server_log))?;
        }
        Ok(())
    }
}

impl Outcome {
    /// Checks that the session opened and the scenario ran.
    fn ran(self) -> Outcome {
        assert!(
            self.status.is_some_and(|s| s.success()) && self.doc["error"].is_null(),
            "the client's session failed\n{self}"
        );
        assert_eq!(self.doc["server"]["name"], "moat", "{self}");
        self
    }

    /// The result of step `i`, a call answered with a tool result (not an exception).
    fn result(&self, i: usize) -> &Value {
        let step = &self.doc["steps"][i];
        assert!(step["is_error"].is_boolean(), "step {i} is not a tool result: {step}\n{self}");
        step
    }

    /// The result of step `i`, checked to be a success.
    fn success(&self, i: usize) -> &Value {
        let result = self.result(i);
        assert_eq!(result["is_error"], false, "step {i} failed: {result}\n{self}");
        result
    }

    /// The `structuredContent.error` of step `i`, checked to be an error result of `kind`.
    fn refusal(&self, i: usize, kind: &str) -> &Value {
        let result = self.result(i);
        assert_eq!(result["is_error"], true, "step {i} should be refused: {result}\n{self}");
        let error = &result["structured"]["error"];
        assert_eq!(error["kind"], kind, "step {i}: {result}\n{self}");
        assert!(error["message"].is_string() && error["retryable"].is_boolean(), "{self}");
        error
    }

    fn elicitations(&self) -> &[Value] {
        self.doc["elicitations"].as_array().map(Vec::as_slice).unwrap_or_default()
    }
}

/// Runs `check` over stdio and over streamable HTTP, each on a fresh moat configured with
/// `extra`; both run, and the test fails naming each transport that failed.
fn over_both(extra: &str, check: impl Fn(&Moat)) {
    let failed: Vec<String> = [Transport::Stdio, Transport::Http]
        .into_iter()
        .filter_map(|transport| {
            let run = catch_unwind(AssertUnwindSafe(|| check(&Moat::start(transport, extra))));
            let panic = run.err()?;
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Some(format!("over {transport:?}: {message}"))
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

/// A scenario: `steps` run in one session; `elicit` the answers to elicitations, in order
/// (`None`: the client does not declare elicitation).
fn scenario(elicit: Option<&[&str]>, steps: Value) -> Value {
    json!({"elicit": elicit, "steps": steps})
}

fn remove_keep() -> Value {
    json!({"call": "fs_remove", "args": {"grant": "data", "path": "keep.txt"}})
}

#[test]
fn a_python_client_initializes_lists_the_tools_calls_one_and_sees_a_refusal() {
    // Nobody to ask: an escalation is a denial (whatever terminal the tests run at).
    over_both("[escalation]\nchannel = \"deny\"\n", |moat| {
        let steps = json!([
            {"list": true},
            {"call": "echo", "args": {"text": "hi from Python"}},
            {"call": "csv_stats", "args": {"csv": "a,b\n1,2\n3,4\n"}},
            remove_keep(),
        ]);
        let out = moat.session(scenario(None, steps)).ran();
        assert!(out.doc["server"]["protocol"].as_str().is_some_and(|p| !p.is_empty()), "{out}");
        let tools = out.doc["steps"][0]["tools"].as_array().unwrap_or_else(|| panic!("{out}"));
        let tool = |name: &str| {
            tools.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("no {name}: {out}"))
        };
        let echo = tool("echo");
        assert_eq!(echo["description"], "Returns the text it is given, unchanged.", "{out}");
        assert_eq!(echo["input_schema"]["type"], "object", "{out}");
        assert_eq!(echo["input_schema"]["required"], json!(["text"]), "{out}");
        assert_eq!(echo["input_schema"]["properties"]["text"]["type"], "string", "{out}");
        assert_eq!(echo["annotations"]["readOnlyHint"], true, "{out}");
        assert_eq!(tool("fs_remove")["annotations"]["destructiveHint"], true, "{out}");
        assert_eq!(tool("read_more")["input_schema"]["required"], json!(["cursor"]), "{out}");

        let echoed = out.success(1);
        assert_eq!(echoed["text"], r#""hi from Python""#, "{out}");
        assert!(echoed["structured"].is_null(), "a string is not an object: {out}");
        let stats = out.success(2);
        assert_eq!(stats["structured"]["rows"], 2, "{out}");
        assert_eq!(stats["structured"]["columns"]["a"]["mean"], 2.0, "{out}");

        out.refusal(3, "denied");
        assert!(
            out.result(3)["text"].as_str().unwrap().contains("no confidence was given"),
            "{out}"
        );
        assert!(out.elicitations().is_empty(), "the client did not declare elicitation: {out}");
        assert!(moat.path("data/keep.txt").exists(), "a refused call removed the file");
    });
}

#[test]
fn an_escalation_accepted_through_elicitation_lets_the_call_through() {
    over_both("[escalation]\nclient = \"allowed\"\n", |moat| {
        let out = moat.session(scenario(Some(&["accept"]), json!([remove_keep()]))).ran();
        out.success(0);
        let asked = out.elicitations();
        assert_eq!(asked.len(), 1, "{out}");
        let message = asked[0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("fs_remove"), "the question names the tool: {out}");
        assert!(message.contains("keep.txt"), "the question shows the arguments: {out}");
        let schema = &asked[0]["schema"];
        assert_eq!(schema["type"], "object", "{out}");
        assert_eq!(schema["properties"]["note"]["type"], "string", "{out}");
        assert!(!moat.path("data/keep.txt").exists(), "the approved call removed the file");
    });
}

#[test]
fn an_escalation_declined_or_cancelled_through_elicitation_refuses_the_call() {
    over_both("[escalation]\nclient = \"allowed\"\n", |moat| {
        let steps = json!([remove_keep(), remove_keep(), {"call": "echo", "args": {"text": "on"}}]);
        let out = moat.session(scenario(Some(&["decline", "cancel"]), steps)).ran();
        out.refusal(0, "escalation_declined");
        out.refusal(1, "escalation_declined");
        out.success(2);
        let answers: Vec<&Value> = out.elicitations().iter().map(|e| &e["answer"]).collect();
        assert_eq!(answers, [&json!("decline"), &json!("cancel")], "{out}");
        assert!(moat.path("data/keep.txt").exists(), "a declined call removed the file");
    });
}

#[test]
fn an_unknown_tool_and_arguments_failing_the_schema_are_error_results_and_serving_goes_on() {
    over_both("", |moat| {
        let steps = json!([
            {"call": "no_such_tool", "args": {}},
            {"call": "echo", "args": {"text": "still here"}},
            {"call": "echo", "args": {"text": 42}},
            {"call": "echo", "args": {"text": "and still"}},
        ]);
        let out = moat.session(scenario(None, steps)).ran();
        let unknown = out.refusal(0, "unknown_tool");
        assert!(unknown["tools"].as_array().unwrap().iter().any(|t| t == "echo"), "{out}");
        assert_eq!(out.success(1)["text"], r#""still here""#, "{out}");
        out.refusal(2, "invalid_arguments");
        assert!(out.result(2)["text"].as_str().unwrap().contains("invalid arguments for `echo`"));
        assert_eq!(out.success(3)["text"], r#""and still""#, "{out}");
    });
}

/// Sends one raw HTTP/1.1 POST to the server's endpoint; returns the status and the body.
fn raw_post(server: &Server, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let address = server.address();
    let mut stream = TcpStream::connect(address).expect("the server accepts connections");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    let mut request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    // Until the server closes (Connection: close); a timeout keeps what arrived.
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

#[test]
fn over_http_a_body_that_is_not_json_is_a_client_error_and_the_next_session_works() {
    let moat = Moat::start(Transport::Http, "");
    let server = moat.server.as_ref().unwrap();
    let (status, body) = raw_post(server, &[], r#"{"jsonrpc": "2.0", "id": 1, "method": "#);
    assert!((400..500).contains(&status), "HTTP {status}: {body}\n{}", moat.server_log());
    if body.contains("jsonrpc") {
        assert!(body.contains("-32700"), "a JSON-RPC answer should be a parse error: {body}");
    }
    let steps = json!([{"call": "echo", "args": {"text": "after the garbage"}}]);
    let out = moat.session(scenario(None, steps)).ran();
    assert_eq!(out.success(0)["text"], r#""after the garbage""#, "{out}");
}

#[test]
fn over_http_with_token_auth_a_client_needs_the_bearer_token() {
    let mut moat = Moat::start(Transport::Http, "[serve]\nauth = \"token\"\n");
    let token_file = moat.path("state/keys/http.token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", token_file.display(), moat.server_log()));
    let token = token.trim();
    assert!(!token.is_empty(), "an empty token");

    let init = r#"{"jsonrpc": "2.0", "id": 1, "method": "ping"}"#;
    let server = moat.server.as_ref().unwrap();
    let (status, body) = raw_post(server, &[], init);
    assert_eq!(status, 401, "without a token: {body}");
    let (status, body) = raw_post(server, &[("Authorization", "Bearer not-the-token")], init);
    assert_eq!(status, 401, "with a wrong token: {body}");

    let steps = json!([{"call": "echo", "args": {"text": "let in"}}]);
    for options in [&[][..], &["--token", "not-the-token"][..]] {
        let out = moat.session_with(options, scenario(None, steps.clone()));
        assert_eq!(out.status.map(|s| s.code()), Some(Some(1)), "{options:?}: {out}");
        assert!(out.doc["error"].is_string(), "{options:?}: {out}");
        assert!(out.doc["http_errors"].as_array().unwrap().contains(&json!(401)), "{out}");
        assert!(out.doc["steps"].as_array().is_some_and(Vec::is_empty), "{options:?}: {out}");
    }
    let out = moat.session_with(&["--token", token], scenario(None, steps)).ran();
    assert_eq!(out.success(0)["text"], r#""let in""#, "{out}");
    assert!(moat.server.as_mut().unwrap().running(), "{}", moat.server_log());
}

#[test]
fn over_http_each_named_token_is_a_principal_with_the_tools_it_may_list_and_call() {
    let (reader, writer) = ("r".repeat(64), "w".repeat(64));
    let hash = |token: &str| blake3::hash(token.as_bytes()).to_hex().to_string();
    let toml = format!(
        "[serve.tokens.reader]\nblake3 = \"{}\"\ntools = [\"echo\"]\n\
         [serve.tokens.writer]\nblake3 = \"{}\"\n",
        hash(&reader),
        hash(&writer)
    );
    let moat = Moat::start(Transport::Http, &toml);
    // With named tokens, loopback needs one too.
    let server = moat.server.as_ref().unwrap();
    let (status, body) = raw_post(server, &[], r#"{"jsonrpc": "2.0", "id": 1, "method": "ping"}"#);
    assert_eq!(status, 401, "without a token: {body}");

    let steps = json!([
        {"list": true},
        {"call": "echo", "args": {"text": "read"}},
        {"call": "csv_stats", "args": {"csv": "a\n1\n"}},
    ]);
    let out = moat.session_with(&["--token", &reader], scenario(None, steps.clone())).ran();
    let listed: Vec<&str> = out.doc["steps"][0]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{out}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(listed, ["echo", "read_more"], "the reader lists its tools only: {out}");
    assert_eq!(out.success(1)["text"], r#""read""#, "{out}");
    let refused = out.refusal(2, "denied");
    assert!(
        refused["message"].as_str().unwrap_or_default().contains("`http:reader` may not call it"),
        "{out}"
    );
    let out = moat.session_with(&["--token", &writer], scenario(None, steps)).ran();
    out.success(2);

    // Each call's record names the token it came with, the refused one too.
    let principals: Vec<String> = lines(&audit::log_path(&moat.path("state/audit")))
        .unwrap()
        .filter_map(|line| match line.ok()? {
            Line::Record { record, .. } => match record.event {
                Event::Call { principal, .. } => Some(principal),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let expected = ["http:reader", "http:reader", "http:writer", "http:writer"];
    assert_eq!(principals, expected, "{principals:?}");
}

/// The tools of the calls in moat's audit log so far (a record being written is skipped).
fn calls_recorded(moat: &Moat) -> Vec<String> {
    lines(&audit::log_path(&moat.path("state/audit")))
        .unwrap()
        .filter_map(|line| match line {
            Ok(Line::Record { record, .. }) => match record.event {
                Event::Call { tool, .. } => Some(tool),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// `spin` loops until its wall time (8 s) stops it: long enough to hang up in the middle.
const SLOW_SPIN: &str = "[tools.spin.budgets]\nfuel = 1_000_000_000_000\nwall_time = \"8s\"\n";

fn vanish_during_spin() -> Value {
    scenario(
        None,
        json!([
            {"call": "echo", "args": {"text": "before"}},
            {"disconnect_during": "spin", "args": {}, "after": 1.0},
        ]),
    )
}

#[test]
fn over_http_a_client_vanishing_mid_call_leaves_the_server_serving_the_next_one() {
    let mut moat = Moat::start(Transport::Http, SLOW_SPIN);
    let out = moat.session(vanish_during_spin()).ran();
    out.success(0);
    assert_eq!(out.doc["steps"][1], json!({"disconnected": "spin"}), "{out}");
    // The call had reached moat when the client went.
    assert_eq!(calls_recorded(&moat), ["echo", "spin"], "{out}");
    let steps = json!([{"call": "echo", "args": {"text": "next client"}}]);
    let next = moat.session(scenario(None, steps)).ran();
    assert_eq!(next.success(0)["text"], r#""next client""#, "{next}");
    assert!(moat.server.as_mut().unwrap().running(), "{}", moat.server_log());
}

#[test]
fn over_stdio_a_client_vanishing_mid_call_stops_the_server_with_status_0() {
    let moat = Moat::start(Transport::Stdio, SLOW_SPIN);
    // The client spawns the server through a shell that records its pid (the client starts it
    // in a process group of its own) and moat's exit status, since the client is gone by then.
    let shim = moat.path("serve");
    let mut args: Vec<OsString> =
        vec!["--stdio".into(), "--".into(), "/bin/sh".into(), "-c".into()];
    args.push(
        r#"echo $$ > "$0.pid"; "$@"; echo $? > "$0.status.tmp"; mv "$0.status.tmp" "$0.status""#
            .into(),
    );
    args.push(shim.clone().into());
    args.extend(moat.stdio_command());
    let out = moat.client(args, vanish_during_spin()).ran();
    out.success(0);
    assert_eq!(out.doc["steps"][1], json!({"disconnected": "spin"}), "{out}");

    let status_file = moat.path("serve.status");
    let start = Instant::now();
    while !status_file.exists() && start.elapsed() < TIMEOUT {
        std::thread::sleep(Duration::from_millis(50));
    }
    if !status_file.exists() {
        // Still running: stop the shell and moat (their process group), then fail.
        if let Ok(pid) = std::fs::read_to_string(moat.path("serve.pid")) {
            let _ =
                Command::new("kill").args(["-KILL", "--", &format!("-{}", pid.trim())]).status();
        }
        panic!("moat did not exit within {TIMEOUT:?} of its client vanishing\n{out}");
    }
    let status = std::fs::read_to_string(&status_file).unwrap();
    let log = std::fs::read_to_string(&out.stderr_path).unwrap_or_default();
    assert_eq!(status.trim(), "0", "moat's exit status; its stderr:\n{log}");
    assert_eq!(calls_recorded(&moat), ["echo", "spin"], "the call had reached moat: {log}");
}
