//! Answers one request of the admin server. Every request passes the same checks first: its
//! head is UTF-8; it has no chunked body, and a body of at most [`MAX_BODY`] bytes that
//! arrives within `IO_TIMEOUT`; its `Host` names loopback (127.0.0.1, localhost, [::1]), so
//! that a web page cannot reach the server through DNS rebinding; an `Origin` it carries (a
//! browser's cross-site request) is loopback's. Then `/metrics` and `/healthz` (admin server
//! only), or the approval queue's routes.
//!
//! Errors are JSON, `{"error": "..."}`: 404 unknown, 405 a method the path does not take, 409
//! not pending (or a binding that does not match), 400 a bad request, 403 a request that does
//! not come from loopback, 411 a chunked body, 413 a body too large. A head over
//! `MAX_HEAD` bytes or `MAX_HEADERS` lines (431), or one hyper cannot parse (400: not
//! HTTP/1.x, a header line without `:`, a bad or a second, different `Content-Length`), is
//! answered by hyper itself, without a body.

use super::{IO_TIMEOUT, MAX_BODY};
use crate::escalation::{ApprovalQueue, QueueError};
use crate::metrics::Metrics;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Who decided, when a request body does not say.
const DEFAULT_BY: &str = "http (loopback)";

const JSON: &str = "application/json";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the requests are answered from.
pub(super) struct Routes {
    pub(super) queue: Arc<ApprovalQueue>,
    /// The host's metrics; `/metrics` and `/healthz` are served only when given.
    pub(super) metrics: Option<Arc<Metrics>>,
}

/// One request, read whole.
struct Asked {
    method: Method,
    /// The request target without its query: `/approvals/ID`.
    path: String,
    /// Every value UTF-8 (checked when read).
    headers: HeaderMap,
    body: Bytes,
}

impl Asked {
    fn header(&self, name: HeaderName) -> Option<&str> {
        let value = self.headers.get(name)?;
        std::str::from_utf8(value.as_bytes()).ok().map(str::trim)
    }
}

/// A status and its JSON body.
type Answer = (u16, Value);

fn error(status: u16, message: impl Into<String>) -> Answer {
    (status, json!({ "error": message.into() }))
}

/// The answer to `request`.
pub(super) async fn answer(
    request: Request<Incoming>,
    routes: Arc<Routes>,
) -> Response<Full<Bytes>> {
    let asked = match read(request).await {
        Ok(asked) => asked,
        Err(refusal) => return json_reply(refusal),
    };
    if let Err(refusal) = check_host(&asked) {
        return json_reply(refusal);
    }
    if let Some(reply) = admin(&asked, routes.metrics.as_deref()) {
        return reply;
    }
    // The queue is a SQLite file: asked on a blocking thread, so that a busy database holds
    // up no other connection.
    let answered = tokio::task::spawn_blocking(move || route(&asked, &routes.queue)).await;
    json_reply(answered.unwrap_or_else(|e| error(500, format!("the request failed: {e}"))))
}

/// The rest of `request`: its body, at most [`MAX_BODY`] bytes, within `IO_TIMEOUT`.
async fn read(request: Request<Incoming>) -> Result<Asked, Answer> {
    let (parts, body) = request.into_parts();
    if parts.headers.values().any(|value| std::str::from_utf8(value.as_bytes()).is_err()) {
        return Err(error(400, "the request head is not UTF-8"));
    }
    if parts.headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(error(411, "chunked bodies are not accepted; send Content-Length"));
    }
    // Without Transfer-Encoding the length is known (Content-Length's, or none): a body too
    // long is refused before any of it is read.
    if let Some(length) = body.size_hint().exact().filter(|&length| length > MAX_BODY as u64) {
        return Err(error(413, format!("request body of {length} bytes; at most {MAX_BODY}")));
    }
    let body = match tokio::time::timeout(IO_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => {
            return Err(error(413, format!("request body over {MAX_BODY} bytes")))
        }
        Ok(Err(e)) => return Err(error(400, format!("cannot read the request body: {e}"))),
        Err(_) => {
            let message = format!("the request body did not arrive within {IO_TIMEOUT:?}");
            return Err(error(400, message));
        }
    };
    // The target as sent: an absolute-form target (`http://host/approvals`) is no endpoint.
    let target = parts.uri.to_string();
    let path = target.split(['?', '#']).next().unwrap_or_default().to_owned();
    Ok(Asked { method: parts.method, path, headers: parts.headers, body })
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

/// Refuses a request that does not name loopback as its host, or comes from a page of
/// another origin (DNS rebinding, cross-site requests).
fn check_host(asked: &Asked) -> Result<(), Answer> {
    match asked.header(header::HOST) {
        None => return Err(error(400, "a Host header is required")),
        Some(host) if !is_loopback_host(host) => {
            return Err(error(403, format!("host `{host}` is not a loopback name")))
        }
        Some(_) => {}
    }
    if let Some(origin) = asked.header(header::ORIGIN) {
        if !is_loopback_origin(origin) {
            return Err(error(403, format!("origin `{origin}` is not a loopback origin")));
        }
    }
    Ok(())
}

/// The admin endpoints that are not the queue's: `/metrics` (Prometheus text format) and
/// `/healthz`. None for any other path, or without `metrics`.
fn admin(asked: &Asked, metrics: Option<&Metrics>) -> Option<Response<Full<Bytes>>> {
    let metrics = metrics?;
    let reply = match (asked.method.as_str(), asked.path.as_str()) {
        ("GET", "/metrics") => reply(200, PROMETHEUS, metrics.encode()),
        ("GET", "/healthz") => json_reply((200, json!({"status": "ok"}))),
        (method, path @ ("/metrics" | "/healthz")) => {
            json_reply(error(405, format!("{method} is not allowed on {path}")))
        }
        _ => return None,
    };
    Some(reply)
}

/// A decision's optional body.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    by: Option<String>,
    reason: Option<String>,
}

/// The approval queue's routes.
fn route(asked: &Asked, queue: &ApprovalQueue) -> Answer {
    let path = asked.path.as_str();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (asked.method.as_str(), segments.as_slice()) {
        ("GET", ["approvals"]) => match queue.pending() {
            Ok(rows) => (200, json!(rows)),
            Err(e) => refusal(&e),
        },
        ("GET", ["approvals", id]) => match queue.get(id) {
            Ok(row) => (200, json!(row)),
            Err(e) => refusal(&e),
        },
        ("POST", ["approvals", id, action @ ("approve" | "deny")]) => {
            let body: DecisionBody = if asked.body.iter().all(u8::is_ascii_whitespace) {
                DecisionBody::default()
            } else {
                match serde_json::from_slice(&asked.body) {
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
        (method, ["approvals"] | ["approvals", _] | ["approvals", _, "approve" | "deny"]) => {
            error(405, format!("{method} is not allowed on {path}"))
        }
        _ => error(404, format!("no such endpoint: {path}")),
    }
}

fn refusal(e: &QueueError) -> Answer {
    let status = match e {
        QueueError::Unknown(_) => 404,
        QueueError::NotPending { .. } | QueueError::BindingMismatch(_) => 409,
        QueueError::NoName | QueueError::TooLong { .. } | QueueError::Duplicate(_) => 400,
        QueueError::Store { .. } => 500,
    };
    error(status, e.to_string())
}

fn json_reply((status, body): Answer) -> Response<Full<Bytes>> {
    reply(status, JSON, body.to_string())
}

/// An answer; the connection closes after it.
fn reply(status: u16, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
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
