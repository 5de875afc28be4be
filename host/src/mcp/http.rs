//! The streamable HTTP transport: `moat serve --http ADDR`, MCP at `/mcp`, one session per
//! client (rmcp's `StreamableHttpService` over hyper's HTTP/1.1, served by `http_server.rs`
//! as the admin server is).
//!
//! In front of the SDK, every request passes two checks of moat's own: the path is `/mcp`
//! (else 404), and when a token is required (`[serve] auth`: always with `token`, off
//! loopback with `auto`) it carries `Authorization: Bearer TOKEN`, compared in constant time
//! (else 401). The SDK then refuses a `Host` header that is not loopback's or listed in
//! `[serve] hosts`, and an `Origin` header not listed in `[serve] origins` (DNS rebinding,
//! cross-site requests from a browser).

use super::{McpServer, ServeConfig, ServeError};
use crate::bounded::Bounded;
use crate::config::Auth;
use crate::http_server::{self, Limits};
use crate::Host;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

/// The path of the MCP endpoint.
pub const ENDPOINT: &str = "/mcp";
/// The largest request body read: 16 MiB, as the longest line over stdio.
pub const MAX_BODY: usize = super::stdio::MAX_LINE;
/// What one connection may take: its request heads within 30 s and 64 KiB; kept alive, and
/// open as long as it is used (a session's event stream lasts as long as the session).
const LIMITS: Limits = Limits {
    head_timeout: Duration::from_secs(30),
    max_head: 64 * 1024,
    max_headers: 100,
    keep_alive: true,
    lifetime: None,
    max_connections: None,
};

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// Who a request over HTTP comes from, as its bearer token says: put in the request's
/// extensions for the MCP handler (`RequestContext::extensions`, in `http::request::Parts`).
#[derive(Clone, Debug)]
pub struct Identity {
    /// `http:NAME` for a named token, `http:token` for the token of `moat init`.
    pub principal: String,
    /// The tools it may list and call; `None`: all.
    pub tools: Option<Vec<String>>,
}

/// One accepted token: its hash and whom it stands for.
#[derive(Clone, Debug)]
struct Accepted {
    hash: blake3::Hash,
    identity: Arc<Identity>,
}

/// A bound, not yet serving, HTTP transport: its address and the tokens it wants.
pub struct HttpServer {
    listener: TcpListener,
    address: SocketAddr,
    /// The tokens a request may carry (blake3 of each); empty: none is required.
    tokens: Arc<Vec<Accepted>>,
    config: StreamableHttpServerConfig,
    max_sessions: usize,
}

impl HttpServer {
    /// Binds `address`; reads (or makes) the bearer token in `state_dir` if `serve` asks for
    /// one at this address.
    pub async fn bind(
        address: &str,
        serve: &ServeConfig,
        state_dir: &Path,
    ) -> Result<HttpServer, ServeError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| ServeError::Start(format!("cannot listen on `{address}`: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| ServeError::Start(format!("cannot read the bound address: {e}")))?;
        let loopback = address.ip().is_loopback();
        let mut tokens = Vec::new();
        for (name, named) in &serve.tokens {
            let hash = blake3::Hash::from_hex(named.blake3.trim()).map_err(|_| {
                ServeError::Start(format!(
                    "[serve.tokens.{name}] blake3 is not 64 hex digits (`moat token {name}` \
                     makes a token and prints its line)"
                ))
            })?;
            let principal = format!("http:{name}");
            let identity = Arc::new(Identity { principal, tools: named.tools.clone() });
            tokens.push(Accepted { hash, identity });
        }
        let needed = matches!((serve.auth, loopback), (Auth::Token, _) | (Auth::Auto, false));
        if tokens.is_empty() && needed {
            let token = http_token(state_dir).map_err(ServeError::Start)?;
            let identity = Arc::new(Identity { principal: "http:token".into(), tools: None });
            tokens.push(Accepted { hash: blake3::hash(token.as_bytes()), identity });
        }
        let mut hosts: Vec<String> =
            ["localhost", "127.0.0.1", "::1"].iter().map(|h| (*h).to_owned()).collect();
        if !address.ip().is_unspecified() && !loopback {
            hosts.push(address.ip().to_string());
        }
        hosts.extend(serve.hosts.iter().cloned());
        let config = StreamableHttpServerConfig::default()
            .with_allowed_hosts(hosts)
            .with_allowed_origins(serve.origins.clone())
            .enforce_origin_validation();
        let max_sessions = serve.max_sessions();
        Ok(HttpServer { listener, address, tokens: Arc::new(tokens), config, max_sessions })
    }

    /// The address it listens on (with the port chosen when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The endpoint's URL.
    pub fn url(&self) -> String {
        format!("http://{}{ENDPOINT}", self.address)
    }

    /// Whether requests need a bearer token.
    pub fn needs_token(&self) -> bool {
        !self.tokens.is_empty()
    }
}

/// Serves MCP sessions over `server` until `stop` is cancelled.
pub async fn serve_http(
    host: Arc<Host>,
    server: HttpServer,
    stop: CancellationToken,
) -> Result<(), ServeError> {
    let config = server.config.with_cancellation_token(stop.child_token());
    // Each request's principal is its token's (an `Identity` in its extensions); without
    // tokens, loopback's.
    let factory =
        move || Ok(McpServer::with_random_session(host.clone()).with_principal("http:loopback"));
    let sessions = Arc::new(LocalSessionManager::default());
    let service = StreamableHttpService::new(factory, sessions.clone(), config);
    let open = Arc::new(Open {
        sessions: sessions.clone(),
        used: Mutex::new(Bounded::new(server.max_sessions)),
    });
    let tokens = server.tokens;
    let handler = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        let mut service = service.clone();
        let tokens = tokens.clone();
        let sessions = sessions.clone();
        let open = open.clone();
        async move {
            match authorize(&request, &tokens) {
                Ok(Some(identity)) => {
                    request.extensions_mut().insert(identity);
                }
                Ok(None) => {}
                Err(refusal) => return Ok::<_, Infallible>(*refusal),
            }
            if let Some(refusal) = unknown_session(&request, &sessions).await {
                return Ok(refusal);
            }
            let session = session_of(request.headers());
            let deleting = request.method() == http::Method::DELETE;
            match read_body(request).await {
                Ok(request) => {
                    let response = service.call(request).await;
                    if let Ok(response) = &response {
                        open.used(session, deleting, response).await;
                    }
                    response
                }
                Err(refusal) => Ok(refusal),
            }
        }
    });
    http_server::serve(server.listener, LIMITS, stop, handler).await;
    Ok(())
}

/// The sessions open, by last use: past `[serve] max_sessions`, a new session closes the
/// least recently used one (the SDK keeps every session it made until it is deleted, even
/// after it timed out, so this is also what forgets those).
struct Open {
    sessions: Arc<LocalSessionManager>,
    used: Mutex<Bounded<Arc<str>, ()>>,
}

impl Open {
    /// Notes a request of `session` (deleted when `deleting`) and the session its answer
    /// opened, closing the least recently used one if that makes too many.
    async fn used(&self, session: Option<Arc<str>>, deleting: bool, answer: &Response<Body>) {
        use rmcp::transport::streamable_http_server::session::SessionManager;
        let opened = session_of(answer.headers());
        let evicted = {
            let mut used = self.used.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match (&session, deleting) {
                (Some(id), true) => {
                    used.remove(id);
                }
                (Some(id), false) => {
                    used.get(id);
                }
                (None, _) => {}
            }
            opened.filter(|_| !deleting).and_then(|id| used.put(&id, ())).map(|(id, ())| id)
        };
        if let Some(id) = evicted {
            tracing::info!(session = %id, "too many MCP sessions open: closing the least recently used");
            if let Err(e) = self.sessions.close_session(&id).await {
                tracing::warn!(session = %id, "cannot close the session: {e}");
            }
        }
    }
}

/// The `Mcp-Session-Id` header's value.
fn session_of(headers: &http::HeaderMap) -> Option<Arc<str>> {
    let id = headers.get("mcp-session-id")?.to_str().ok()?;
    Some(Arc::from(id))
}

/// The answer to a `DELETE` of a session this server does not hold: 404, as the MCP
/// streamable HTTP transport says (the SDK would answer 202). Without the header the SDK
/// answers 400 itself.
async fn unknown_session(
    request: &Request<Incoming>,
    sessions: &LocalSessionManager,
) -> Option<Response<Body>> {
    use rmcp::transport::streamable_http_server::session::SessionManager;
    if request.method() != http::Method::DELETE {
        return None;
    }
    let id = request.headers().get("mcp-session-id")?.to_str().unwrap_or_default();
    let known = sessions.has_session(&Arc::<str>::from(id)).await.unwrap_or(false);
    (!known).then(|| reply(StatusCode::NOT_FOUND, &format!("no such session: {id}")))
}

/// Who the request comes from, or the answer to a request moat refuses before the SDK sees
/// it: a path other than [`ENDPOINT`], or a missing or wrong bearer token. `Ok(None)`: no
/// token is required here.
fn authorize(
    request: &Request<Incoming>,
    tokens: &[Accepted],
) -> Result<Option<Arc<Identity>>, Box<Response<Body>>> {
    let path = request.uri().path();
    if path != ENDPOINT {
        return Err(Box::new(reply(
            StatusCode::NOT_FOUND,
            &format!("no such endpoint: {path}; MCP is at {ENDPOINT}"),
        )));
    }
    if tokens.is_empty() {
        return Ok(None);
    }
    let given = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            // The scheme is case-insensitive (RFC 9110 section 11.1).
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .map(|given| blake3::hash(given.trim().as_bytes()));
    // blake3::Hash compares in constant time; every token is compared.
    let mut found = None;
    for accepted in tokens {
        if given == Some(accepted.hash) {
            found = Some(accepted.identity.clone());
        }
    }
    if let Some(identity) = found {
        return Ok(Some(identity));
    }
    let mut refusal = reply(
        StatusCode::UNAUTHORIZED,
        "a bearer token is required: Authorization: Bearer <a token of [serve.tokens], or the \
         contents of STATE_DIR/keys/http.token>",
    );
    refusal
        .headers_mut()
        .insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
    Err(Box::new(refusal))
}

/// The request with its body read whole: at most [`MAX_BODY`] bytes, and JSON, or it is
/// answered here (413; 400 with a JSON-RPC parse error, as stdio answers a line that is not
/// JSON) rather than by the SDK's bare `415`.
async fn read_body(request: Request<Incoming>) -> Result<Request<Full<Bytes>>, Response<Body>> {
    let (parts, body) = request.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            let message = format!("the request body is over {MAX_BODY} bytes");
            return Err(reply(StatusCode::PAYLOAD_TOO_LARGE, &message));
        }
        Err(e) => {
            return Err(reply(StatusCode::BAD_REQUEST, &format!("cannot read the body: {e}")))
        }
    };
    if parts.method == http::Method::POST {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
            let error = serde_json::json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": {"code": -32700, "message": format!("Parse error: not JSON: {e}")}
            });
            let mut response = Response::new(Full::new(Bytes::from(error.to_string())).boxed());
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            return Err(response);
        }
        // Not a JSON-RPC message, but its id is readable: answered with that id.
        if let Some(mut error) = super::stdio::invalid_request(&bytes) {
            error.pop(); // The line's newline.
            let mut response = Response::new(Full::new(Bytes::from(error)).boxed());
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            return Err(response);
        }
    }
    Ok(Request::from_parts(parts, Full::new(bytes)))
}

fn reply(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({"error": message}).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

/// Where the bearer token of `moat serve --http` lives.
pub fn token_path(state_dir: &Path) -> PathBuf {
    state_dir.join("keys").join("http.token")
}

/// The bearer token in `state_dir`, made (32 random bytes, hex, readable by the owner only)
/// if there is none. A token file others can read is refused, as the audit key is.
pub fn http_token(state_dir: &Path) -> Result<String, String> {
    let path = token_path(state_dir);
    match std::fs::read_to_string(&path) {
        Ok(token) => {
            check_private(&path)?;
            let token = token.trim().to_owned();
            if token.len() < 32 {
                return Err(format!(
                    "{}: the token is shorter than 32 characters; delete it and run `moat init`",
                    path.display()
                ));
            }
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes)
                .map_err(|e| format!("cannot make a token: no randomness: {e}"))?;
            let token = hex::encode(bytes);
            write_private(&path, &token)?;
            tracing::info!(path = %path.display(), "made the HTTP bearer token");
            Ok(token)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} can be read by others (mode {:o}): `chmod 600` it",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), String> {
    Ok(())
}

fn write_private(path: &Path, token: &str) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(fail)?;
    std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)
}
