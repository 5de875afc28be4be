//! The approval queue over HTTP/1.1 on loopback: list pending requests, approve or deny one;
//! as the admin server (`[admin] http`), also the host's metrics and health.
//!
//! ```text
//! GET  /metrics                 Prometheus text format (admin server only)
//! GET  /healthz                 {"status": "ok"} (admin server only)
//! GET  /approvals               the pending requests (JSON array)
//! GET  /approvals/ID            one request, whatever its status
//! POST /approvals/ID/approve    body (optional): {"by": "alice"}
//! POST /approvals/ID/deny       body (optional): {"by": "alice", "reason": "not today"}
//! ```
//!
//! Errors are JSON, `{"error": "..."}`: 404 unknown, 409 not pending (or a binding that does
//! not match), 400 a bad request, 403 a request that does not come from loopback. The server
//! binds loopback addresses only, and accepts only a `Host` header naming loopback
//! (127.0.0.1, localhost, [::1]), so a web page cannot reach it through DNS rebinding; a
//! request with an `Origin` other than loopback (a browser's cross-site request) is refused
//! too. One thread serves one connection at a time; requests are bounded in size and time.

use super::queue::{ApprovalQueue, QueueError};
use crate::metrics::Metrics;
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The largest request line and headers, in bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// The largest request body, in bytes.
pub const MAX_BODY: usize = 8 * 1024;
/// How long one connection may take to send its request or read the response.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Who decided, when a request body does not say.
const DEFAULT_BY: &str = "http (loopback)";

/// A running server; it stops when dropped.
pub struct ApprovalServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl ApprovalServer {
    /// Binds `address` (which must resolve to loopback addresses only; port 0 picks a free
    /// port) and serves `queue` on a thread of its own.
    pub fn start(queue: Arc<ApprovalQueue>, address: &str) -> Result<ApprovalServer, String> {
        ApprovalServer::start_admin(queue, None, address)
    }

    /// [`ApprovalServer::start`], serving also `/metrics` and `/healthz` when `metrics` is
    /// given: the admin HTTP server of `[admin] http`.
    pub fn start_admin(
        queue: Arc<ApprovalQueue>,
        metrics: Option<Arc<Metrics>>,
        address: &str,
    ) -> Result<ApprovalServer, String> {
        let addresses = loopback_addresses(address)?;
        let listener = TcpListener::bind(&addresses[..])
            .map_err(|e| format!("escalation.http: cannot listen on `{address}`: {e}"))?;
        let address = listener
            .local_addr()
            .map_err(|e| format!("escalation.http: cannot read the bound address: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("moat-approvals-http".into())
            .spawn(move || serve(&listener, &queue, metrics.as_deref(), &stopped))
            .map_err(|e| format!("escalation.http: cannot start its thread: {e}"))?;
        Ok(ApprovalServer { address, stop })
    }

    /// The address it listens on (with the actual port when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for ApprovalServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accepting thread so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_millis(500));
    }
}

/// Resolves `address`, refusing it unless every address it names is loopback.
pub fn loopback_addresses(address: &str) -> Result<Vec<SocketAddr>, String> {
    let addresses: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|e| {
            format!("escalation.http: `{address}` is not an address such as `127.0.0.1:7878`: {e}")
        })?
        .collect();
    if addresses.is_empty() || addresses.iter().any(|a| !a.ip().is_loopback()) {
        return Err(format!(
            "escalation.http: `{address}` is not a loopback address; the approval queue is \
             served on 127.0.0.1, [::1] or localhost only"
        ));
    }
    Ok(addresses)
}

fn serve(
    listener: &TcpListener,
    queue: &ApprovalQueue,
    metrics: Option<&Metrics>,
    stop: &AtomicBool,
) {
    for connection in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match connection {
            Ok(stream) => handle(stream, queue, metrics),
            Err(error) => {
                tracing::debug!("approval queue http: {error}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn handle(mut stream: TcpStream, queue: &ApprovalQueue, metrics: Option<&Metrics>) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let json_reply = |(status, body): Response| (status, JSON, body.to_string());
    let (status, content_type, body) = match read_request(&mut stream) {
        Ok(request) => match check_host(&request) {
            Err(refusal) => json_reply(refusal),
            Ok(()) => {
                admin(&request, metrics).unwrap_or_else(|| json_reply(route(&request, queue)))
            }
        },
        Err(refusal) => json_reply(refusal),
    };
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        reason_phrase(status),
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes()));
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}

/// One parsed request.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

type Response = (u16, Value);

fn error(status: u16, message: impl Into<String>) -> Response {
    (status, json!({ "error": message.into() }))
}

/// Reads one request, never more than [`MAX_HEAD`] + [`MAX_BODY`] bytes.
fn read_request(stream: &mut impl Read) -> Result<Request, Response> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            break end;
        }
        if buffer.len() > MAX_HEAD {
            return Err(error(431, format!("request head over {MAX_HEAD} bytes")));
        }
        let n = stream
            .read(&mut chunk)
            .map_err(|e| error(400, format!("cannot read the request: {e}")))?;
        if n == 0 {
            return Err(error(400, "the request ended before its headers did"));
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    if head_end > MAX_HEAD {
        return Err(error(431, format!("request head over {MAX_HEAD} bytes")));
    }
    let head = std::str::from_utf8(&buffer[..head_end])
        .map_err(|_| error(400, "the request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (method, path, version) = match (
        request_line.next(),
        request_line.next(),
        request_line.next(),
        request_line.next(),
    ) {
        (Some(m), Some(p), Some(v), None) if v.starts_with("HTTP/1.") => (m, p, v),
        _ => return Err(error(400, "not an HTTP/1.x request line")),
    };
    let _ = version;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) =
            line.split_once(':').ok_or_else(|| error(400, "a header line without `:`"))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let mut request =
        Request { method: method.to_owned(), path: path.to_owned(), headers, body: Vec::new() };
    if request.header("transfer-encoding").is_some() {
        return Err(error(411, "chunked bodies are not accepted; send Content-Length"));
    }
    let length = match request.header("content-length") {
        None => 0,
        Some(text) => {
            text.parse::<usize>().map_err(|_| error(400, format!("bad Content-Length `{text}`")))?
        }
    };
    if length > MAX_BODY {
        return Err(error(413, format!("request body of {length} bytes; at most {MAX_BODY}")));
    }
    let mut body = buffer[head_end + 4..].to_vec();
    body.truncate(length);
    while body.len() < length {
        let n = stream
            .read(&mut chunk)
            .map_err(|e| error(400, format!("cannot read the request body: {e}")))?;
        if n == 0 {
            return Err(error(400, "the request ended before its body did"));
        }
        let take = n.min(length - body.len());
        body.extend_from_slice(&chunk[..take]);
    }
    request.body = body;
    Ok(request)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Whether `host` (a `Host` header value, or an origin's host with its port) names loopback:
/// `127.0.0.1`, `localhost` or `[::1]`, with or without a port.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((name, "")) => name,
            Some((name, port)) if port.strip_prefix(':').is_some_and(is_port) => name,
            _ => return false,
        }
    } else {
        match host.split_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        }
    };
    matches!(name.to_ascii_lowercase().as_str(), "127.0.0.1" | "localhost" | "::1")
}

fn is_port(digits: &str) -> bool {
    !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Whether an `Origin` header names a loopback origin (`http://127.0.0.1:7878`).
fn is_loopback_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.trim().split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https") && !rest.contains('/') && is_loopback_host(rest)
}

/// A decision's optional body.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    by: Option<String>,
    reason: Option<String>,
}

/// Refuses a request that does not name loopback as its host, or comes from a page of
/// another origin (DNS rebinding, cross-site requests).
fn check_host(request: &Request) -> Result<(), Response> {
    match request.header("host") {
        None => return Err(error(400, "a Host header is required")),
        Some(host) if !is_loopback_host(host) => {
            return Err(error(403, format!("host `{host}` is not a loopback name")))
        }
        Some(_) => {}
    }
    if let Some(origin) = request.header("origin") {
        if !is_loopback_origin(origin) {
            return Err(error(403, format!("origin `{origin}` is not a loopback origin")));
        }
    }
    Ok(())
}

/// The admin endpoints that are not the queue's: `/metrics` (Prometheus text format) and
/// `/healthz`. None for any other path.
fn admin(request: &Request, metrics: Option<&Metrics>) -> Option<(u16, &'static str, String)> {
    let path = request.path.split(['?', '#']).next().unwrap_or_default();
    let metrics = metrics?;
    let reply = match (request.method.as_str(), path) {
        ("GET", "/metrics") => (200, PROMETHEUS, metrics.encode()),
        ("GET", "/healthz") => (200, JSON, json!({"status": "ok"}).to_string()),
        (_, "/metrics" | "/healthz") => {
            let (status, body) = error(405, format!("{} is not allowed on {path}", request.method));
            (status, JSON, body.to_string())
        }
        _ => return None,
    };
    Some(reply)
}

const JSON: &str = "application/json";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

fn route(request: &Request, queue: &ApprovalQueue) -> Response {
    let path = request.path.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["approvals"]) => match queue.pending() {
            Ok(rows) => (200, json!(rows)),
            Err(e) => refusal(&e),
        },
        ("GET", ["approvals", id]) => match queue.get(id) {
            Ok(row) => (200, json!(row)),
            Err(e) => refusal(&e),
        },
        ("POST", ["approvals", id, action @ ("approve" | "deny")]) => {
            let body: DecisionBody = if request.body.iter().all(u8::is_ascii_whitespace) {
                DecisionBody::default()
            } else {
                match serde_json::from_slice(&request.body) {
                    Ok(body) => body,
                    Err(e) => {
                        return error(400, format!("the body is not {{\"by\", \"reason\"}}: {e}"))
                    }
                }
            };
            let by = body.by.unwrap_or_else(|| DEFAULT_BY.to_owned());
            let result = if *action == "approve" {
                if body.reason.is_some() {
                    return error(400, "an approval takes no `reason`");
                }
                queue.approve(id, &by)
            } else {
                queue.deny(id, &by, body.reason.as_deref().unwrap_or("no reason given"))
            };
            match result {
                Ok(row) => (200, json!(row)),
                Err(e) => refusal(&e),
            }
        }
        (_, ["approvals"] | ["approvals", _] | ["approvals", _, "approve" | "deny"]) => {
            error(405, format!("{} is not allowed on {path}", request.method))
        }
        _ => error(404, format!("no such endpoint: {path}")),
    }
}

fn refusal(e: &QueueError) -> Response {
    let status = match e {
        QueueError::Unknown(_) => 404,
        QueueError::NotPending { .. } | QueueError::BindingMismatch(_) => 409,
        QueueError::NoName | QueueError::TooLong { .. } | QueueError::Duplicate(_) => 400,
        QueueError::Store { .. } => 500,
    };
    error(status, e.to_string())
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_are_loopback_hosts() {
        for host in
            ["127.0.0.1", "127.0.0.1:7878", "localhost", "LOCALHOST:80", "[::1]", "[::1]:7878"]
        {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:7878",
            "127.0.0.1.evil.example",
            "localhost.evil.example:80",
            "127.0.0.1:",
            "127.0.0.1:80:80",
            "[::1]x",
            "10.0.0.1:7878",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
        assert!(is_loopback_origin("http://127.0.0.1:7878"));
        assert!(!is_loopback_origin("http://evil.example"));
        assert!(!is_loopback_origin("null"));
    }
}
