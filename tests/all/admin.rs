//! The admin HTTP server as a client on loopback meets it (`moat::admin::ApprovalServer`, the
//! server of `[admin] http` and `[escalation] http`): the headers of every answer, one
//! request per connection, the limits on a request's head, body and time, unknown routes and
//! methods, and the loopback `Host` and `Origin` checks on every route. The queue's own
//! routes are in `escalation.rs`; the admin server of `moat serve` in `mcp_http.rs`.

use moat::admin::{ApprovalServer, IO_TIMEOUT, MAX_BODY, MAX_HEAD, MAX_HEADERS};
use moat::escalation::{ApprovalQueue, Escalation, Status};
use moat::metrics::Metrics;
use serde_json::Value;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The bound of every wait of these tests (well past [`IO_TIMEOUT`]).
const BOUND: Duration = Duration::from_secs(20);

/// An admin server (metrics too, unless `queue_only`) over a fresh queue holding one pending
/// request.
struct Admin {
    _dir: tempfile::TempDir,
    queue: Arc<ApprovalQueue>,
    server: ApprovalServer,
    metrics: Option<Arc<Metrics>>,
    /// The pending request's id.
    id: String,
}

fn start(queue_only: bool) -> Admin {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(ApprovalQueue::in_state_dir(dir.path()).unwrap());
    let asked = Escalation::new("db_execute", r#"{"sql":"DELETE FROM t"}"#, "t", "p", "why");
    queue.submit(&asked, Duration::from_secs(600)).unwrap();
    let metrics = (!queue_only).then(|| Arc::new(Metrics::new()));
    let server =
        ApprovalServer::start_admin(queue.clone(), metrics.clone(), "127.0.0.1:0").unwrap();
    Admin { _dir: dir, queue, server, metrics, id: asked.id }
}

/// An answer: its status, its headers (names lowercased) and its body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Everything the server sends on one connection, after `request`, until it closes it.
fn exchange(address: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect_timeout(&address, BOUND).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    if let Err(e) = stream.read_to_end(&mut response) {
        // A server that closes with part of a request unread resets the connection: what
        // came before the reset is its answer.
        assert!(e.kind() == ErrorKind::ConnectionReset && !response.is_empty(), "{e}");
    }
    response
}

fn parse(response: &[u8]) -> Answer {
    let response = String::from_utf8_lossy(response);
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok());
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Answer { status: status.expect("a status"), headers, body: body.to_owned() }
}

/// `METHOD PATH` with a loopback `Host`, `extra` header lines and `body`.
fn request(address: SocketAddr, method: &str, path: &str, extra: &str, body: &str) -> Answer {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        address.port(),
        body.len()
    );
    parse(&exchange(address, request.as_bytes()))
}

#[test]
fn every_answer_says_its_type_and_no_store_and_closes_the_connection() {
    let admin = start(false);
    let address = admin.server.address();
    let health = request(address, "GET", "/healthz", "", "");
    assert_eq!((health.status, health.body.as_str()), (200, r#"{"status":"ok"}"#));
    assert_eq!(health.header("content-type"), Some("application/json"));
    assert_eq!(health.header("cache-control"), Some("no-store"));
    assert_eq!(health.header("connection"), Some("close"));
    assert_eq!(health.header("content-length"), Some("15"));

    let metrics = request(address, "GET", "/metrics", "", "");
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    assert_eq!(metrics.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let encoded = admin.metrics.as_ref().map(|metrics| metrics.encode());
    assert_eq!(Some(metrics.body.as_str()), encoded.as_deref(), "the host's metrics, as encoded");
    assert!(metrics.body.ends_with("# EOF\n"), "{}", metrics.body);

    let refused = request(address, "GET", "/nope", "", "");
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert_eq!(refused.header("cache-control"), Some("no-store"));

    // Two requests sent at once on one connection: one answer, then the connection closes.
    let host = format!("Host: 127.0.0.1:{}", address.port());
    let twice =
        format!("GET /healthz HTTP/1.1\r\n{host}\r\n\r\nGET /approvals HTTP/1.1\r\n{host}\r\n\r\n");
    let answered = String::from_utf8_lossy(&exchange(address, twice.as_bytes())).into_owned();
    assert_eq!(answered.matches("HTTP/1.1 ").count(), 1, "{answered}");
    assert!(answered.ends_with(r#"{"status":"ok"}"#), "{answered}");
}

#[test]
fn a_body_over_the_limit_is_413_before_it_is_read_and_decides_nothing() {
    let admin = start(false);
    let address = admin.server.address();
    let approve = format!("/approvals/{}/approve", admin.id);

    // A body one byte over: refused with what the limit is.
    let body = format!("{{\"by\": \"dana\"}}{}", " ".repeat(MAX_BODY + 1 - 14));
    let refused = request(address, "POST", &approve, "", &body);
    assert_eq!(refused.status, 413, "{}", refused.body);
    let message = format!("request body of {} bytes; at most {MAX_BODY}", MAX_BODY + 1);
    assert_eq!(refused.json()["error"], message.as_str());
    // Announced but never sent: refused at once, not waited for.
    let start = Instant::now();
    let head =
        format!("POST {approve} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n");
    assert_eq!(parse(&exchange(address, head.as_bytes())).status, 413);
    assert!(start.elapsed() < IO_TIMEOUT, "refused before any of the body was read");
    // A chunked body is not taken at all.
    let chunked = format!(
        "POST {approve} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
         e\r\n{{\"by\": \"dana\"}}\r\n0\r\n\r\n"
    );
    let refused = parse(&exchange(address, chunked.as_bytes()));
    assert_eq!(refused.status, 411, "{}", refused.body);
    assert_eq!(refused.json()["error"], "chunked bodies are not accepted; send Content-Length");
    assert_eq!(admin.queue.get(&admin.id).unwrap().status, Status::Pending, "none of it decided");

    // Exactly at the limit: taken.
    let body = format!("{{\"by\": \"dana\"}}{}", " ".repeat(MAX_BODY - 14));
    let approved = request(address, "POST", &approve, "", &body);
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(approved.json()["decided_by"], "dana");
}

#[test]
fn a_head_over_the_limit_or_with_too_many_headers_is_431_and_the_server_serves_on() {
    let admin = start(false);
    let address = admin.server.address();
    let long = format!("X-Long: {}\r\n", "a".repeat(MAX_HEAD));
    assert_eq!(request(address, "GET", "/healthz", &long, "").status, 431);
    let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
    assert!(many.len() < MAX_HEAD, "too many lines, not too many bytes");
    assert_eq!(request(address, "GET", "/healthz", &many, "").status, 431);
    // A head that never ends, sent whole: refused once it is over the limit.
    let endless = format!("GET /healthz HTTP/1.1\r\nX-Long: {}", "a".repeat(2 * MAX_HEAD));
    assert_eq!(parse(&exchange(address, endless.as_bytes())).status, 431);
    // Not HTTP/1.x at all.
    assert_eq!(parse(&exchange(address, b"hello\r\n\r\n")).status, 400);
    let fine: String = (1..MAX_HEADERS - 1).map(|i| format!("X-{i}: 1\r\n")).collect();
    assert_eq!(request(address, "GET", "/healthz", &fine, "").status, 200);
}

#[test]
fn a_slow_head_is_cut_off_a_slow_body_refused_and_others_served_meanwhile() {
    let admin = start(false);
    let address = admin.server.address();
    let start = Instant::now();
    // Half a head, and half a body: each then waits for the rest.
    let mut slow_head = TcpStream::connect_timeout(&address, BOUND).unwrap();
    slow_head.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n").unwrap();
    let mut slow_body = TcpStream::connect_timeout(&address, BOUND).unwrap();
    let approve = format!("/approvals/{}/approve", admin.id);
    let head =
        format!("POST {approve} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 20\r\n\r\n{{");
    slow_body.write_all(head.as_bytes()).unwrap();

    // Meanwhile, the server answers everyone else.
    for _ in 0..3 {
        assert_eq!(request(address, "GET", "/healthz", "", "").status, 200);
    }
    assert!(start.elapsed() < IO_TIMEOUT, "served while the slow ones wait");

    // The head that does not end within IO_TIMEOUT: the connection is closed, unanswered.
    slow_head.set_read_timeout(Some(BOUND)).unwrap();
    let mut said = Vec::new();
    let _ = slow_head.read_to_end(&mut said);
    assert!(said.is_empty(), "{}", String::from_utf8_lossy(&said));
    // The body that does not arrive within IO_TIMEOUT: 400, and nothing decided.
    slow_body.set_read_timeout(Some(BOUND)).unwrap();
    let mut said = Vec::new();
    slow_body.read_to_end(&mut said).unwrap();
    let refused = parse(&said);
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.json()["error"], "the request body did not arrive within 5s");
    assert!(start.elapsed() < BOUND);
    assert_eq!(admin.queue.get(&admin.id).unwrap().status, Status::Pending);
}

#[test]
fn unknown_routes_are_404_and_wrong_methods_405_with_json_errors() {
    let admin = start(false);
    let address = admin.server.address();
    let id = &admin.id;
    let cases = [
        ("GET", "/nope".to_owned(), 404, "no such endpoint: /nope".to_owned()),
        ("GET", "/approvals/a/b/c".to_owned(), 404, "no such endpoint: /approvals/a/b/c".into()),
        ("GET", "/metrics/".to_owned(), 404, "no such endpoint: /metrics/".into()),
        // An absolute-form target is no endpoint of this server.
        (
            "GET",
            "http://127.0.0.1/approvals".into(),
            404,
            "no such endpoint: http://127.0.0.1/approvals".into(),
        ),
        ("POST", "/metrics".into(), 405, "POST is not allowed on /metrics".into()),
        ("DELETE", "/healthz".into(), 405, "DELETE is not allowed on /healthz".into()),
        ("PUT", "/approvals".into(), 405, "PUT is not allowed on /approvals".into()),
        (
            "DELETE",
            format!("/approvals/{id}"),
            405,
            format!("DELETE is not allowed on /approvals/{id}"),
        ),
        (
            "GET",
            format!("/approvals/{id}/deny"),
            405,
            format!("GET is not allowed on /approvals/{id}/deny"),
        ),
        ("get", "/healthz".into(), 405, "get is not allowed on /healthz".into()),
    ];
    for (method, path, status, message) in cases {
        let answer = request(address, method, &path, "", "");
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
        assert_eq!(answer.json()["error"], message.as_str(), "{method} {path}");
    }
    // The query is not part of the route.
    assert_eq!(request(address, "GET", "/healthz?x=1", "", "").status, 200);
    assert_eq!(request(address, "GET", "/approvals/?all", "", "").status, 200);
    assert_eq!(admin.queue.get(id).unwrap().status, Status::Pending);

    // The queue's own server has no metrics and no health.
    let queue_only = start(true);
    let address = queue_only.server.address();
    for path in ["/metrics", "/healthz"] {
        let answer = request(address, "GET", path, "", "");
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
        assert_eq!(answer.json()["error"], format!("no such endpoint: {path}").as_str());
    }
    assert_eq!(request(address, "GET", "/approvals", "", "").status, 200);
}

#[test]
fn every_route_refuses_a_foreign_host_or_origin() {
    let admin = start(false);
    let address = admin.server.address();
    let approve = format!("/approvals/{}/approve", admin.id);
    for path in ["/metrics", "/healthz", "/approvals", approve.as_str(), "/nope"] {
        let method = if path == approve { "POST" } else { "GET" };
        let head = format!("{method} {path} HTTP/1.1\r\nHost: evil.example:80\r\n\r\n");
        let refused = parse(&exchange(address, head.as_bytes()));
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
        assert_eq!(refused.json()["error"], "host `evil.example:80` is not a loopback name");
        for origin in ["null", "https://evil.example", "http://127.0.0.1:1/x", "file://"] {
            let extra = format!("Origin: {origin}\r\n");
            let refused = request(address, method, path, &extra, "");
            assert_eq!(refused.status, 403, "{path} from {origin}: {}", refused.body);
            let message = format!("origin `{origin}` is not a loopback origin");
            assert_eq!(refused.json()["error"], message.as_str());
        }
        let head = format!("{method} {path} HTTP/1.0\r\n\r\n");
        let refused = parse(&exchange(address, head.as_bytes()));
        assert_eq!(refused.status, 400, "{path}: {}", refused.body);
        assert_eq!(refused.json()["error"], "a Host header is required");
    }
    // A head that is not UTF-8 is refused whole.
    let mut head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Name: caf".to_vec();
    head.extend_from_slice(b"\xe9\r\n\r\n");
    let refused = parse(&exchange(address, &head));
    assert_eq!(
        (refused.status, refused.json()["error"].as_str()),
        (400, Some("the request head is not UTF-8"))
    );
    assert_eq!(admin.queue.get(&admin.id).unwrap().status, Status::Pending, "none of it decided");

    // Loopback's own names and origins are served.
    for (host, origin) in [
        ("127.0.0.1", "http://127.0.0.1:7879"),
        ("LOCALHOST:7879", "https://localhost"),
        ("[::1]:7879", "http://[::1]:7879"),
    ] {
        let head = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n\r\n");
        assert_eq!(parse(&exchange(address, head.as_bytes())).status, 200, "{host} {origin}");
    }
}

#[test]
fn a_dropped_server_has_closed_its_port() {
    let admin = start(false);
    let address = admin.server.address();
    assert_eq!(request(address, "GET", "/healthz", "", "").status, 200);
    drop(admin.server);
    let refused = TcpStream::connect_timeout(&address, BOUND).err();
    assert!(refused.is_some(), "nothing listens on {address} once the server is dropped");
}
