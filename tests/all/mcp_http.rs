//! `moat serve --http`: what stands in front of the MCP sessions (the endpoint, the bearer
//! token, Host and Origin checks, bodies that are not JSON) and the admin HTTP server beside
//! it (`/healthz`, `/metrics` counting calls, refusals per guard, escalations, breakers).
//! Spoken to with raw HTTP/1.1 on loopback; the Python MCP client's sessions over HTTP are
//! in `mcp_client.rs`.

use crate::support::built;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the server may take to start (it compiles the components first).
const START: Duration = Duration::from_secs(120);

/// A `moat serve --http 127.0.0.1:0` process, killed when dropped.
struct Server {
    child: Child,
    /// `127.0.0.1:PORT` of the MCP endpoint.
    mcp: String,
    /// `127.0.0.1:PORT` of the admin server, when `[admin] http` is set.
    admin: Option<String>,
}

impl Server {
    fn start(dir: &Path, toml: &str) -> Server {
        let tools = built("tools").display().to_string();
        let tests = built("tests").display().to_string();
        let config = dir.join("moat.toml");
        let text = format!(
            "state_dir = \"state\"\n[plugins]\ntools = [{tools:?}, {tests:?}]\n\
             {toml}"
        );
        std::fs::write(&config, text).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_moat"))
            .current_dir(dir)
            .arg("--config")
            .arg(&config)
            .args(["serve", "--http", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("moat starts");
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        for (stream, source) in
            [(Box::new(stdout) as Box<dyn Read + Send>, "out"), (Box::new(stderr), "err")]
        {
            let sender = sender.clone();
            // Reads on (so moat never writes to a closed pipe) until moat closes the stream.
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let _ = sender.send((source, line));
                }
            });
        }
        let (mut mcp, mut admin) = (None, None);
        let wants_admin = toml.contains("[admin]");
        while mcp.is_none() || (wants_admin && admin.is_none()) {
            let (source, line) = lines.recv_timeout(START).expect("moat says where it serves");
            if source == "out" {
                let url = line.strip_prefix("moat: MCP over streamable HTTP at http://");
                let url = url.unwrap_or_else(|| panic!("an unexpected first line: {line}"));
                mcp = Some(url.trim_end_matches("/mcp").to_owned());
            } else if let Some(rest) = line.strip_prefix("moat: admin HTTP at http://") {
                admin = rest.split(' ').next().map(str::to_owned);
            }
        }
        Server { child, mcp: mcp.unwrap_or_default(), admin }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request; the status and the body.
fn send(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {address}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

const JSON_AND_SSE: (&str, &str) = ("Accept", "application/json, text/event-stream");
const JSON_BODY: (&str, &str) = ("Content-Type", "application/json");

fn initialize() -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw-http", "version": "0"}}})
    .to_string()
}

/// POSTs `body` to `/mcp` as an MCP client would.
fn post(server: &Server, extra: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut headers = vec![JSON_AND_SSE, JSON_BODY];
    headers.extend_from_slice(extra);
    send(&server.mcp, "POST", "/mcp", &headers, body)
}

#[test]
fn on_loopback_the_endpoint_answers_initialize_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let (status, body) = post(&server, &[], &initialize());
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"serverInfo\":{\"name\":\"moat\""), "{body}");
}

#[test]
fn with_auth_token_a_request_without_the_bearer_token_is_401_and_with_it_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "[serve]\nauth = \"token\"\n");
    let token = std::fs::read_to_string(dir.path().join("state/keys/http.token")).unwrap();
    let token = token.trim();
    assert_eq!(token.len(), 64, "32 random bytes, hex");
    let (status, body) = post(&server, &[], &initialize());
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("bearer token is required"), "{body}");
    let (status, _) = post(&server, &[("Authorization", "Bearer not-the-token")], &initialize());
    assert_eq!(status, 401);
    let bearer = format!("Bearer {token}");
    let (status, body) = post(&server, &[("Authorization", &bearer)], &initialize());
    assert_eq!(status, 200, "{body}");
    // The scheme's case does not matter (RFC 9110); the token's does.
    let lower = format!("bearer {token}");
    let (status, body) = post(&server, &[("Authorization", &lower)], &initialize());
    assert_eq!(status, 200, "{body}");
    let upper = format!("Bearer {}", token.to_uppercase());
    let (status, _) = post(&server, &[("Authorization", &upper)], &initialize());
    assert_eq!(status, 401);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("state/keys/http.token")).unwrap();
        assert_eq!(mode.permissions().mode() & 0o077, 0, "the token is readable by its owner only");
    }
}

#[test]
fn a_foreign_host_or_origin_is_refused_against_dns_rebinding() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let (status, body) = post(&server, &[("Host", "evil.example")], &initialize());
    assert_eq!(status, 403, "{body}");
    let (status, body) = post(&server, &[("Origin", "http://evil.example")], &initialize());
    assert_eq!(status, 403, "{body}");
    let dir = tempfile::tempdir().unwrap();
    let toml = "[serve]\norigins = [\"http://app.example:8080\"]\nhosts = [\"moat.internal\"]\n";
    let server = Server::start(dir.path(), toml);
    let (status, body) = post(&server, &[("Origin", "http://app.example:8080")], &initialize());
    assert_eq!(status, 200, "a listed origin: {body}");
    let (status, body) = post(&server, &[("Host", "moat.internal")], &initialize());
    assert_eq!(status, 200, "a listed host: {body}");
}

#[test]
fn a_body_that_is_not_json_is_a_400_parse_error_and_serving_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let (status, body) = post(&server, &[], "{\"jsonrpc\": \"2.0\", \"id\": 1, ");
    assert_eq!(status, 400, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], -32700, "{body}");
    assert_eq!(post(&server, &[], &initialize()).0, 200);
    let (status, body) = send(&server.mcp, "GET", "/elsewhere", &[], "");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("MCP is at /mcp"), "{body}");
}

#[test]
fn a_config_with_a_misspelt_serve_key_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("moat.toml"), "[serve]\nauht = \"token\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_moat"))
        .current_dir(dir.path())
        .args(["--config", "moat.toml", "serve", "--http", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("auht"), "{stderr}");
}

#[test]
fn the_admin_server_reports_health_and_counts_calls_refusals_and_escalations() {
    let dir = tempfile::tempdir().unwrap();
    // Nobody decides escalations here (with an admin server, `auto` would queue them).
    let toml = "[admin]\nhttp = \"127.0.0.1:0\"\n[confidence]\nhigh = 0.8\n\
                [escalation]\nchannel = \"deny\"\n";
    let server = Server::start(dir.path(), toml);
    let admin = server.admin.clone().expect("the admin address is printed");
    let (status, body) = send(&admin, "GET", "/healthz", &[], "");
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ok\"}"));

    // A session: one call that succeeds, one the confidence gate denies (nobody to ask).
    let (status, body) = post(&server, &[], &initialize());
    assert_eq!(status, 200, "{body}");
    let session = session_id(&server);
    let session = ("Mcp-Session-Id", session.as_str());
    let version = ("Mcp-Protocol-Version", "2025-06-18");
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post(&server, &[session, version], &initialized.to_string());
    let call = |id: u64, tool: &str, args: Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": tool, "arguments": args}})
        .to_string()
    };
    let (status, body) =
        post(&server, &[session, version], &call(2, "echo", json!({"text": "hi"})));
    assert_eq!(status, 200, "{body}");
    let args = json!({"grant": "data", "path": "keep.txt"});
    let (status, body) = post(&server, &[session, version], &call(3, "fs_remove", args));
    assert!(status == 200 && body.contains("\"isError\":true"), "{body}");

    let (status, metrics) = send(&admin, "GET", "/metrics", &[], "");
    assert_eq!(status, 200, "{metrics}");
    for line in [
        "moat_calls_total{tool=\"echo\",outcome=\"ok\"} 1",
        "moat_calls_total{tool=\"fs_remove\",outcome=\"denied\"} 1",
        "moat_escalations_total{decision=\"timed_out\"} 1",
        "moat_call_duration_seconds_count{tool=\"echo\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no `{line}` in:\n{metrics}");
    }
    let (status, _) = send(&admin, "GET", "/healthz", &[("Host", "evil.example")], "");
    assert_eq!(status, 403, "the admin server checks Host too");
}

/// Opens a session with a fresh `initialize` and returns its id (the response header).
fn session_id(server: &Server) -> String {
    let mut stream = TcpStream::connect(&server.mcp).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = initialize();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nAccept: application/json, text/event-stream\r\n\
         Content-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        server.mcp,
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("mcp-session-id").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no session id in:\n{response}"))
}

#[test]
fn a_client_that_cannot_elicit_waits_in_the_approval_queue_a_person_approves_on_the_admin_server() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[admin]\nhttp = \"127.0.0.1:0\"\n[escalation]\ntimeout = \"60s\"\n\
                [confidence]\nhigh = 0.8\n[tools.echo]\nstakes = \"high\"\n";
    let server = Server::start(dir.path(), toml);
    let admin = server.admin.clone().expect("the admin address is printed");
    let session = session_id(&server);
    let mcp = server.mcp.clone();
    let call = std::thread::spawn(move || {
        let headers = [
            JSON_AND_SSE,
            JSON_BODY,
            ("Mcp-Session-Id", session.as_str()),
            ("Mcp-Protocol-Version", "2025-06-18"),
        ];
        let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                          "params": {"name": "echo", "arguments": {"text": "approved"}}});
        send(&mcp, "POST", "/mcp", &headers, &body.to_string())
    });
    let start = std::time::Instant::now();
    let pending = loop {
        let (status, body) = send(&admin, "GET", "/approvals", &[], "");
        assert_eq!(status, 200, "{body}");
        let pending: Vec<Value> = serde_json::from_str(&body).unwrap();
        if let Some(first) = pending.into_iter().next() {
            break first;
        }
        assert!(start.elapsed() < START, "the call never reached the queue");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(pending["tool"], "echo", "{pending}");
    let id = pending["id"].as_str().unwrap();
    let (status, body) = send(&admin, "POST", &format!("/approvals/{id}/approve"), &[], "");
    assert_eq!(status, 200, "{body}");
    let (status, body) = call.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"isError\":false") && body.contains("approved"), "{body}");
}

#[test]
fn deleting_an_unknown_session_is_404_and_a_known_one_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let (status, said) =
        send(&server.mcp, "DELETE", "/mcp", &[("Mcp-Session-Id", "no-such-session")], "");
    assert_eq!(status, 404, "{said}");
    assert!(said.contains("no such session: no-such-session"), "{said}");
    let (status, said) = send(&server.mcp, "DELETE", "/mcp", &[], "");
    assert_eq!(status, 400, "without the header: {said}");
    let id = session_id(&server);
    let (status, said) = send(&server.mcp, "DELETE", "/mcp", &[("Mcp-Session-Id", &id)], "");
    assert!((200..300).contains(&status), "{status}: {said}");
    // Closed: deleting it again is a session this server no longer holds.
    let (status, _) = send(&server.mcp, "DELETE", "/mcp", &[("Mcp-Session-Id", &id)], "");
    assert_eq!(status, 404);
}

#[test]
fn an_invalid_request_whose_id_is_readable_is_a_400_with_that_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "");
    let (status, body) = post(&server, &[], r#"{"jsonrpc": "2.0", "id": 7, "method": 42}"#);
    assert_eq!(status, 400, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).expect("a JSON-RPC error");
    assert_eq!((error["id"].clone(), error["error"]["code"].clone()), (json!(7), json!(-32600)));
    // Serving goes on.
    assert_eq!(post(&server, &[], &initialize()).0, 200);
}

#[test]
fn past_max_sessions_a_new_session_closes_the_least_recently_used() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "[serve]\nmax_sessions = 2\n");
    let (first, second) = (session_id(&server), session_id(&server));
    // The first is used again: the second is now the least recently used.
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let headers = [("Mcp-Session-Id", first.as_str()), ("Mcp-Protocol-Version", "2025-06-18")];
    let (status, said) = post(&server, &headers, &initialized.to_string());
    assert!((200..300).contains(&status), "{status}: {said}");
    let third = session_id(&server);
    let delete = |id: &str| send(&server.mcp, "DELETE", "/mcp", &[("Mcp-Session-Id", id)], "").0;
    assert_eq!(delete(&second), 404, "the least recently used session was closed");
    assert!((200..300).contains(&delete(&first)), "the first is still open");
    assert!((200..300).contains(&delete(&third)), "the newest is open");
}
