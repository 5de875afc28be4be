//! The http capability, driven through the `http_send` tool of the `effects` test plugin
//! against tiny servers on 127.0.0.1: only allow-listed origins and methods are reached,
//! also after redirects; sizes, time and request counts are limited; a request that is not
//! read-only is shown to the gate before it is sent and cannot be undone once sent.

use crate::support::built;
use moat::{CallError, CallResponse, Config, Effect, EffectKind, Gate, Host, Verdict};
use serde_json::json;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What a test server answers.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// Announce the body's length (otherwise the body ends when the connection closes).
    with_length: bool,
    /// Wait this long before answering.
    delay: Duration,
}

impl Reply {
    fn ok(body: &str) -> Reply {
        Reply {
            status: 200,
            headers: vec![],
            body: body.as_bytes().to_vec(),
            with_length: true,
            delay: Duration::ZERO,
        }
    }

    fn redirect(status: u16, location: &str) -> Reply {
        Reply { status, headers: vec![("Location", location.to_owned())], ..Reply::ok("") }
    }
}

/// A server on 127.0.0.1 that answers at most a few connections, one request each, and
/// records each request as `"METHOD /path body"`. It stops by itself after those
/// connections, when dropped, or at the latest after half a minute (a generous bound: a
/// loaded machine can take seconds to start the host between the server and its request).
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(connections: usize, answer: impl Fn(&str, &str) -> Reply + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (record, stopped) = (seen.clone(), stop.clone());
        thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(30);
            let mut served = 0;
            while served < connections && Instant::now() < until && !stopped.load(Ordering::SeqCst)
            {
                match listener.accept() {
                    Ok((stream, _)) => {
                        served += 1;
                        serve(stream, &answer, &record);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => {
                        eprintln!("ACCEPT ERROR {e:?}");
                        return;
                    }
                }
            }
            eprintln!(
                "SERVER {addr} EXIT served={served} stopped={}",
                stopped.load(Ordering::SeqCst)
            );
        });
        Server { addr, seen, stop }
    }

    /// A server that answers every request with `body`.
    fn answering(connections: usize, body: &'static str) -> Server {
        Server::start(connections, move |_, _| Reply::ok(body))
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Reads one request (head and a `Content-Length` body, bounded), records it, answers.
fn serve(mut stream: TcpStream, answer: &impl Fn(&str, &str) -> Reply, seen: &Mutex<Vec<String>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) if data.len() + n <= 64 * 1024 => data.extend_from_slice(&chunk[..n]),
            Ok(_) => return,
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
        .min(1024 * 1024);
    while data.len() < head_end + length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&data[head_end..]).into_owned();
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    seen.lock().unwrap().push(format!("{method} {path} {body}").trim_end().to_owned());
    let reply = answer(method, path);
    thread::sleep(reply.delay);
    let mut out = format!("HTTP/1.1 {} Test\r\nConnection: close\r\n", reply.status);
    for (name, value) in &reply.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if reply.with_length {
        out.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    out.push_str("\r\n");
    // The client may have given up (a timeout, a body too large): that is not an error here.
    let _ = stream.write_all(out.as_bytes()).and_then(|()| stream.write_all(&reply.body));
}

/// A gate that records the effects it is shown and answers with `verdict`.
struct Recording {
    verdict: Verdict,
    shown: Mutex<Vec<Effect>>,
}

impl Gate for Recording {
    fn check_effect(&self, _call: &moat::CallView, effect: &Effect) -> Verdict {
        self.shown.lock().unwrap().push(effect.clone());
        self.verdict.clone()
    }
}

fn recording(verdict: Verdict) -> Arc<Recording> {
    Arc::new(Recording { verdict, shown: Mutex::new(Vec::new()) })
}

/// A host over the test plugins whose `http_send` tool has the http grant `grant` (lines of
/// `[tools.http_send.grants.http]`; no grant at all when empty).
fn host_with(grant: &str, gate: Arc<dyn Gate>) -> (Host, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moat.toml");
    let toml = if grant.is_empty() {
        String::new()
    } else {
        format!("[tools.http_send.grants.http]\n{grant}\n")
    };
    std::fs::write(&path, toml).unwrap();
    let mut config = Config::load(&path).unwrap();
    crate::support::without_controls(&mut config);
    config.plugins.tools = vec![built("tests")];
    config.confidence.high = 0.0; // not about confidence: network calls run without one
    let (host, errors) = Host::with_gate(config, gate).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    (host, dir)
}

fn host(grant: &str) -> (Host, tempfile::TempDir) {
    host_with(grant, Arc::new(moat::call::AllowAll))
}

/// `allow = [..]` for the given servers' origins.
fn allow(servers: &[&Server]) -> String {
    let origins: Vec<String> = servers.iter().map(|s| format!("\"{}\"", s.origin())).collect();
    format!("allow = [{}]\n", origins.join(", "))
}

fn send(
    host: &Host,
    method: &str,
    url: &str,
    body: Option<&str>,
) -> Result<CallResponse, CallError> {
    host.call("http_send", &json!({"method": method, "url": url, "body": body}).to_string())
}

/// The status and body the tool got back.
fn answer(result: Result<CallResponse, CallError>) -> (u64, String) {
    let response = result.unwrap_or_else(|e| panic!("expected a response, got {e}"));
    let output: serde_json::Value = serde_json::from_str(&response.output).unwrap();
    (output["status"].as_u64().unwrap(), output["body"].as_str().unwrap().to_owned())
}

/// The capability error the tool failed with, in its debug form (`Denied("...")`, ...).
fn failure(result: Result<CallResponse, CallError>) -> String {
    match result {
        Err(CallError::Tool { message, .. }) => message,
        other => panic!("expected a tool failure, got {other:?}"),
    }
}

#[test]
fn a_get_to_an_allowed_origin_returns_status_and_body() {
    let server = Server::start(2, |_, path| match path {
        "/missing" => Reply { status: 404, ..Reply::ok("no such thing") },
        _ => Reply::ok("hello from the server"),
    });
    let (host, _dir) = host(&allow(&[&server]));
    let got = answer(send(&host, "GET", &server.url("/greeting?lang=en"), None));
    assert_eq!(got, (200, "hello from the server".to_owned()));
    let got = answer(send(&host, "get", &server.url("/missing"), None));
    assert_eq!(got, (404, "no such thing".to_owned()));
    assert_eq!(server.seen(), ["GET /greeting?lang=en", "GET /missing"]);
}

#[test]
fn a_tool_without_an_http_grant_is_not_granted() {
    let server = Server::answering(1, "never");
    let (host, _dir) = host("");
    let error = failure(send(&host, "GET", &server.url("/"), None));
    assert_eq!(error, "NotGranted(\"tool `http_send` has no http grant\")");
    assert!(server.seen().is_empty());
}

#[test]
fn an_origin_not_on_the_allow_list_is_denied_and_never_contacted() {
    let server = Server::answering(1, "never");
    let (host, _dir) = host("allow = [\"http://127.0.0.1:1\"]");
    let url = server.url("/secret");
    let error = failure(send(&host, "GET", &url, None));
    assert_eq!(
        error,
        format!(
            "Denied(\"tool `http_send` may not send to `{url}`: origin `{}` is not in its http \
             allow-list (allowed: http://127.0.0.1:1)\")",
            server.origin()
        )
    );
    for not_http in ["file:///etc/passwd", "ftp://127.0.0.1/", "/relative"] {
        let error = failure(send(&host, "GET", not_http, None));
        assert!(error.starts_with("Denied(") && error.contains(not_http), "{error}");
    }
    assert!(server.seen().is_empty());
}

#[test]
fn a_method_not_in_the_grant_is_denied_and_never_sent() {
    let server = Server::answering(1, "never");
    let (host, _dir) = host(&allow(&[&server]));
    let url = server.url("/item/7");
    let error = failure(send(&host, "DELETE", &url, None));
    assert_eq!(
        error,
        format!(
            "Denied(\"tool `http_send` may not send DELETE to `{url}`: its http grant allows \
             GET, HEAD\")"
        )
    );
    assert!(failure(send(&host, "BREW", &url, None)).contains("not an http method"));
    assert!(server.seen().is_empty());
}

#[test]
fn a_redirect_to_an_origin_not_allowed_is_denied_and_the_target_never_contacted() {
    let elsewhere = Server::answering(1, "never");
    let target = elsewhere.url("/landing");
    let first = Server::start(1, move |_, _| Reply::redirect(302, &target));
    let (host, _dir) = host(&allow(&[&first]));
    let error = failure(send(&host, "GET", &first.url("/start"), None));
    assert!(error.starts_with("Denied("), "{error}");
    assert!(error.contains(&format!("redirected from `{}`", first.url("/start"))), "{error}");
    assert!(error.contains(&format!("origin `{}` is not in", elsewhere.origin())), "{error}");
    assert_eq!(first.seen(), ["GET /start"]);
    assert!(elsewhere.seen().is_empty());
}

#[test]
fn redirects_within_the_allow_list_are_followed() {
    let second = Server::start(2, |_, path| match path {
        "/next" => Reply::redirect(301, "/end"),
        _ => Reply::ok("arrived"),
    });
    let target = second.url("/next");
    let first = Server::start(1, move |_, _| Reply::redirect(302, &target));
    let (host, _dir) = host(&allow(&[&first, &second]));
    let got = answer(send(&host, "GET", &first.url("/start"), None));
    assert_eq!(got, (200, "arrived".to_owned()));
    assert_eq!(first.seen(), ["GET /start"]);
    assert_eq!(second.seen(), ["GET /next", "GET /end"]);
}

#[test]
fn redirects_past_the_limit_are_refused() {
    let server = Server::start(3, |_, path| match path {
        "/a" => Reply::redirect(302, "/b"),
        "/b" => Reply::redirect(302, "/c"),
        _ => Reply::ok("too far"),
    });
    let (host, _dir) = host(&format!("{}max_redirects = 1", allow(&[&server])));
    let error = failure(send(&host, "GET", &server.url("/a"), None));
    assert!(error.starts_with("LimitExceeded("), "{error}");
    assert!(error.contains(&format!("redirected from `{}` to `/c`", server.url("/b"))));
    assert!(error.contains("limit 1 redirects per request"), "{error}");
    assert_eq!(server.seen(), ["GET /a", "GET /b"]);
}

#[test]
fn the_requests_per_call_limit_counts_every_redirect() {
    let server = Server::start(3, |_, path| match path {
        "/a" => Reply::redirect(307, "/b"),
        "/b" => Reply::redirect(307, "/c"),
        _ => Reply::ok("third"),
    });
    let (host, _dir) = host(&format!("{}requests_per_call = 2", allow(&[&server])));
    let error = failure(send(&host, "GET", &server.url("/a"), None));
    assert_eq!(
        error,
        format!(
            "LimitExceeded(\"tool `http_send` would send request 3 of the call to `{}`; limit 2 \
             requests per call (2 sent)\")",
            server.url("/c")
        )
    );
    assert_eq!(server.seen(), ["GET /a", "GET /b"]);
}

#[test]
fn a_response_over_max_response_is_limit_exceeded_with_or_without_a_length() {
    let server = Server::start(2, |_, path| Reply {
        with_length: path == "/announced",
        ..Reply::ok(&"x".repeat(4096))
    });
    let (host, _dir) = host(&format!("{}max_response = \"1 KiB\"", allow(&[&server])));
    let announced = failure(send(&host, "GET", &server.url("/announced"), None));
    assert_eq!(
        announced,
        format!(
            "LimitExceeded(\"the response from `{}` to tool `http_send` is 4 KiB; limit 1 KiB\")",
            server.url("/announced")
        )
    );
    let streamed = failure(send(&host, "GET", &server.url("/streamed"), None));
    assert!(streamed.starts_with("LimitExceeded("), "{streamed}");
    assert!(streamed.contains("is over 1 KiB; limit 1 KiB"), "{streamed}");
}

#[test]
fn a_request_body_over_max_request_is_limit_exceeded_and_never_sent() {
    let server = Server::answering(1, "never");
    let grant = format!("{}methods = [\"POST\"]\nmax_request = 16", allow(&[&server]));
    let (host, _dir) = host(&grant);
    let url = server.url("/upload");
    let error = failure(send(&host, "POST", &url, Some(&"y".repeat(100))));
    assert_eq!(
        error,
        format!(
            "LimitExceeded(\"tool `http_send` would send a body of 100 B to `{url}`; limit 16 B \
             per request\")"
        )
    );
    assert!(server.seen().is_empty());
}

#[test]
fn a_slow_server_times_out_within_the_grant_timeout() {
    let server =
        Server::start(1, |_, _| Reply { delay: Duration::from_secs(3), ..Reply::ok("late") });
    let (host, _dir) = host(&format!("{}timeout = \"300ms\"", allow(&[&server])));
    let started = Instant::now();
    let error = failure(send(&host, "GET", &server.url("/slow"), None));
    assert_eq!(error, "Timeout");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[test]
fn a_post_is_shown_to_the_gate_first_and_a_denial_means_it_is_never_sent() {
    let server = Server::answering(1, "never");
    let gate = recording(Verdict::Deny("no posting today".into()));
    let grant = format!("{}methods = [\"GET\", \"POST\"]", allow(&[&server]));
    let (host, _dir) = host_with(&grant, gate.clone());
    let url = server.url("/orders");
    let (stage, reason) = crate::support::refused(send(&host, "POST", &url, Some("{\"qty\": 3}")));
    assert_eq!(stage, moat::error::Stage::DuringCall);
    assert_eq!(reason, format!("http network of `{url}` refused by policy: no posting today"));
    let shown = gate.shown.lock().unwrap().clone();
    assert_eq!(
        shown,
        [Effect {
            capability: "http",
            kind: EffectKind::Network,
            target: url.clone(),
            detail: json!({"method": "POST", "bytes": 10}),
            undo: Some(moat::undo::Undo::Irreversible { reason: format!("POST {url} was sent") }),
        }]
    );
    assert!(server.seen().is_empty());
}

#[test]
fn reads_are_not_shown_to_the_gate_and_an_allowed_post_is_reported_as_an_effect() {
    let server = Server::answering(2, "done");
    let gate = recording(Verdict::Allow);
    let grant = format!("{}methods = [\"GET\", \"POST\"]", allow(&[&server]));
    let (host, _dir) = host_with(&grant, gate.clone());
    assert_eq!(answer(send(&host, "GET", &server.url("/list"), None)).1, "done");
    assert!(gate.shown.lock().unwrap().is_empty());
    let response = send(&host, "POST", &server.url("/orders"), Some("qty=3")).unwrap();
    assert_eq!(response.effects.len(), 1);
    assert_eq!(response.effects[0].target, server.url("/orders"));
    assert_eq!(gate.shown.lock().unwrap().len(), 1);
    assert_eq!(server.seen(), ["GET /list", "POST /orders qty=3"]);
}

#[test]
fn a_sent_post_is_reported_as_impossible_to_undo_when_the_call_fails() {
    let server = Server::start(1, |_, _| Reply::ok(&"z".repeat(2048)));
    let grant = format!("{}methods = [\"POST\"]\nmax_response = \"1 KiB\"", allow(&[&server]));
    let (host, _dir) = host(&grant);
    let url = server.url("/charge");
    match send(&host, "POST", &url, Some("amount=5")) {
        Err(CallError::RollbackFailed { cause, problems }) => {
            assert!(matches!(*cause, CallError::Tool { .. }), "{cause}");
            assert_eq!(problems, format!("cannot undo POST {url}: already sent"));
        }
        other => panic!("expected a rollback failure, got {other:?}"),
    }
    assert_eq!(server.seen(), ["POST /charge amount=5"]);
}

#[test]
fn an_origin_that_does_not_parse_is_refused_when_the_config_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moat.toml");
    std::fs::write(&path, "[tools.http_send.grants.http]\nallow = [\"https://api.test/v1\"]\n")
        .unwrap();
    let error = Config::load(&path).unwrap_err().to_string();
    assert!(error.contains("`https://api.test/v1` is not an origin"), "{error}");
}

/// The request gives up when the call's wall time ends, long before the grant's timeout.
#[test]
fn a_request_never_outlives_the_call_wall_time() {
    let server =
        Server::start(1, |_, _| Reply { delay: Duration::from_secs(3), ..Reply::ok("late") });
    let (host, _dir) = host(&allow(&[&server]));
    let mut request = moat::CallRequest::new(
        "http_send",
        &json!({"method": "GET", "url": server.url("/slow")}).to_string(),
    );
    request.budgets.wall_time = Some(moat::units::Millis(400));
    let started = Instant::now();
    let result = host.run(&request);
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    // The request timed out at the deadline; the guest either saw that (and failed with it)
    // or was stopped by the wall-time budget before it could.
    match result {
        Err(CallError::Tool { message, .. }) => assert_eq!(message, "Timeout"),
        Err(CallError::Budget(exceeded)) => {
            assert_eq!(exceeded.budget, moat::BudgetKind::WallTime)
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}
