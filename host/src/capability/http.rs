//! `http`: outbound requests to allow-listed origins, with size, count and time limits.
//!
//! The host follows redirects itself, checking every target against the allow-list again.
//! A request that is not read-only (any method but GET, HEAD and OPTIONS) is an effect: the
//! gate sees it before it is sent, and once sent it is reported as impossible to undo.
//! No proxy from the environment is used, and bodies are never decompressed, so every size
//! is a size on the wire.

use super::CallCaps;
use crate::call::Effect;
use crate::call::EffectKind;
use crate::capability::bindings::moat::plugin::http::{Header, Host, HttpError, Request, Response};
use crate::capability::CapsView;
use crate::capability::{Capability, Caps, Context, HasCaps, PerCall};
use crate::undo::Undo;
use crate::units::{ByteSize, Millis};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::io::Read;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use ureq::http::{self, header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use wasmtime::component::Linker;

/// The methods a tool may name, as the WIT contract lists them.
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// The methods that only read: not effects, never shown to the gate.
const READ_ONLY: &[&str] = &["GET", "HEAD", "OPTIONS"];

/// Headers a tool may set on one request.
pub const MAX_HEADERS: usize = 32;
/// Total size of the headers a tool may set on one request (names and values).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Largest response head (status line and headers) read from a server.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Headers the host owns: connection management, framing and the target itself. A tool
/// setting one is refused, so it can neither smuggle a second request nor reroute one.
const FORBIDDEN_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "expect",
    "host",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers that carry credentials: dropped when a redirect leaves the origin.
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "cookie"];

/// `[tools.NAME.grants.http]`: where the tool may send requests, and how much.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpGrant {
    /// Origins the tool may reach, such as `"https://api.example.com"` or
    /// `"http://127.0.0.1:8080"`: scheme, host and port must match exactly (a missing port
    /// is the scheme's default). Checked again for every redirect target.
    pub allow: Vec<Origin>,
    /// Methods the tool may use; GET and HEAD by default. Any method but GET, HEAD and
    /// OPTIONS is an effect, shown to the gate before it is sent.
    #[serde(default = "default_methods", deserialize_with = "methods")]
    pub methods: Vec<String>,
    /// The largest request body the tool may send.
    #[serde(default = "default_max_request")]
    pub max_request: ByteSize,
    /// The largest response body the tool may receive; a larger one is refused, and at
    /// most one byte more than this is ever read.
    #[serde(default = "default_max_response")]
    pub max_response: ByteSize,
    /// Time for one request with its redirects, from the first connection to the last
    /// byte of the response; never longer than what is left of the call's wall time.
    #[serde(default = "default_timeout")]
    pub timeout: Millis,
    /// Redirects followed for one request; one more is refused.
    #[serde(default = "default_max_redirects")]
    pub max_redirects: u32,
    /// Requests one call may send, each redirect followed counting as one.
    #[serde(default = "default_requests_per_call")]
    pub requests_per_call: u64,
}

fn default_methods() -> Vec<String> {
    vec!["GET".to_owned(), "HEAD".to_owned()]
}
fn default_max_request() -> ByteSize {
    ByteSize::kib(64)
}
fn default_max_response() -> ByteSize {
    ByteSize::mib(1)
}
fn default_timeout() -> Millis {
    Millis(10_000)
}
fn default_max_redirects() -> u32 {
    5
}
fn default_requests_per_call() -> u64 {
    20
}

/// Reads `methods`: each one of [`METHODS`], in any case; kept in upper case.
fn methods<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(deserializer)?;
    names
        .into_iter()
        .map(|name| {
            let upper = name.to_ascii_uppercase();
            if METHODS.contains(&upper.as_str()) {
                Ok(upper)
            } else {
                Err(serde::de::Error::custom(format!(
                    "`{name}` is not an http method a tool can use ({})",
                    METHODS.join(", ")
                )))
            }
        })
        .collect()
}

/// An origin on an allow-list: scheme, host and port, normalized (lower case, the default
/// port filled in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// The host name or address, in lower case (an IPv6 address keeps its brackets).
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// The origin of an absolute http or https URL; says why there is none.
    fn of(uri: &Uri) -> Result<Origin, String> {
        let scheme = uri.scheme_str().map(str::to_ascii_lowercase);
        let default_port = match scheme.as_deref() {
            Some("http") => 80,
            Some("https") => 443,
            Some(other) => return Err(format!("the scheme `{other}` is not http or https")),
            None => return Err("it is not absolute (no scheme)".to_owned()),
        };
        let Some(authority) = uri.authority() else {
            return Err("it has no host".to_owned());
        };
        if authority.as_str().contains('@') {
            return Err("it has user information before the host".to_owned());
        }
        let host = authority.host().to_ascii_lowercase();
        if host.is_empty() {
            return Err("it has no host".to_owned());
        }
        let port = authority.port_u16().unwrap_or(default_port);
        Ok(Origin { scheme: scheme.unwrap_or_default(), host, port })
    }
}

impl std::str::FromStr for Origin {
    type Err = String;

    fn from_str(text: &str) -> Result<Origin, String> {
        let bad = |why: &str| {
            format!(
                "`{text}` is not an origin such as `https://api.example.com` or \
                 `http://127.0.0.1:8080`: {why}"
            )
        };
        let uri: Uri = text.parse().map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty()) {
            return Err(bad("an origin has no path or query"));
        }
        Origin::of(&uri).map_err(|why| bad(&why))
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match (self.scheme.as_str(), self.port) {
            ("http", 80) | ("https", 443) => Ok(()),
            (_, port) => write!(f, ":{port}"),
        }
    }
}

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Origin, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The `http` capability.
pub(crate) struct Http;

impl Capability for Http {
    const INTERFACE: &'static str = "moat:plugin/http@0.1.0";
    type Grant = Option<HttpGrant>;
    type Call = HttpCall;

    fn add_to_linker<T: HasCaps>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        crate::capability::bindings::moat::plugin::http::add_to_linker::<T, Caps>(linker, T::caps)
    }
}

/// The requests one call has sent that cannot be taken back.
#[derive(Default)]
pub struct HttpCall {
    sent: Vec<String>,
}

impl PerCall for HttpCall {
    /// A request sent cannot be taken back: one problem per request.
    fn rollback(&mut self, _: &Context<'_>) -> Result<(), String> {
        match self.sent.is_empty() {
            true => Ok(()),
            false => Err(self
                .sent
                .iter()
                .map(|r| format!("cannot undo {r}: already sent"))
                .collect::<Vec<_>>()
                .join("; ")),
        }
    }
}

impl Host for CapsView<'_> {
    fn send(&mut self, request: Request) -> wasmtime::Result<Result<Response, HttpError>> {
        let grants = self.caps.grants.clone();
        let Some(grant) = &grants.http else {
            return Ok(Err(HttpError::NotGranted(format!(
                "tool `{}` has no http grant",
                self.caps.tool
            ))));
        };
        Ok(send(self.caps, grant, request))
    }
}

/// One request as it goes out: changed by redirects.
struct Outgoing {
    method: String,
    uri: Uri,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
}

/// Checks `request` against `grant` and sends it, following redirects.
fn send(caps: &mut CallCaps, grant: &HttpGrant, request: Request) -> Result<Response, HttpError> {
    let tool = caps.tool.clone();
    let tool = tool.as_str();
    let url = request.url.as_str();
    let method = request.method.to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(HttpError::Denied(format!(
            "tool `{tool}` may not send `{}` to `{url}`: not an http method a tool can use ({})",
            request.method,
            METHODS.join(", ")
        )));
    }
    let uri = parse_url(url).map_err(|why| {
        HttpError::Denied(format!("tool `{tool}` may not send to `{url}`: {why}"))
    })?;
    let size = request.body.as_ref().map_or(0, Vec::len) as u64;
    if size > grant.max_request.0 {
        return Err(HttpError::LimitExceeded(format!(
            "tool `{tool}` would send a body of {} to `{url}`; limit {} per request",
            ByteSize(size),
            grant.max_request
        )));
    }
    let headers = request_headers(tool, url, &request.headers)?;
    let mut outgoing = Outgoing { method, uri, headers, body: request.body };
    // One budget for the request and all its redirects, within the call's wall time.
    let end = Instant::now()
        .checked_add(grant.timeout.duration())
        .map_or(caps.deadline, |end| end.min(caps.deadline));
    let mut redirected_from: Option<String> = None;
    let mut redirects = 0u32;
    loop {
        let origin = check_target(tool, grant, &outgoing, redirected_from.as_deref())?;
        let url = outgoing.uri.to_string();
        if Instant::now() >= end {
            return Err(HttpError::Timeout);
        }
        if let Err(over) = caps.charge(REQUESTS, 1, grant.requests_per_call, u64::MAX) {
            return Err(HttpError::LimitExceeded(format!(
                "tool `{tool}` would send request {} of the call to `{url}`; limit {} \
                 requests {} ({} sent)",
                over.used + 1,
                over.limit,
                over.scope,
                over.used
            )));
        }
        let effect = !READ_ONLY.contains(&outgoing.method.as_str());
        if effect {
            let size = outgoing.body.as_ref().map_or(0, Vec::len);
            let detail = serde_json::json!({ "method": outgoing.method, "bytes": size });
            let effect = Effect {
                capability: "http",
                kind: EffectKind::Network,
                target: url.clone(),
                detail,
                undo: Some(Undo::Irreversible {
                    reason: format!("{} {url} was sent", outgoing.method),
                }),
            };
            caps.admit(effect).map_err(HttpError::Denied)?;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HttpError::Timeout);
        }
        let outcome = exchange(&outgoing, left);
        if effect && outcome.as_ref().map_or_else(possibly_sent, |_| true) {
            caps.calls.http.sent.push(format!("{} {url}", outgoing.method));
        }
        let response = outcome.map_err(|e| failure(tool, &url, e))?;
        let status = response.status();
        let location = response.headers().get(header::LOCATION).cloned();
        match location {
            Some(location) if is_followed(status) => {
                let location = String::from_utf8_lossy(location.as_bytes()).into_owned();
                if redirects >= grant.max_redirects {
                    return Err(HttpError::LimitExceeded(format!(
                        "tool `{tool}` was redirected from `{url}` to `{location}` after {} \
                         redirects; limit {} redirects per request",
                        redirects, grant.max_redirects
                    )));
                }
                redirects += 1;
                // The redirect's own body is never read: dropping it closes the connection.
                drop(response);
                let next = resolve(&outgoing.uri, &location).map_err(|why| {
                    HttpError::Denied(format!(
                        "tool `{tool}` was redirected from `{url}` to `{location}`: {why}"
                    ))
                })?;
                redirect(&mut outgoing, status, next, &origin);
                redirected_from = Some(url);
            }
            _ => return read_response(tool, grant, &outgoing, response),
        }
    }
}

/// The meter key for requests sent.
const REQUESTS: &str = "http:requests";

/// Refuses a target whose origin is not allowed, or a method the grant does not allow;
/// returns the target's origin.
fn check_target(
    tool: &str,
    grant: &HttpGrant,
    outgoing: &Outgoing,
    redirected_from: Option<&str>,
) -> Result<Origin, HttpError> {
    let url = &outgoing.uri;
    let what = match redirected_from {
        Some(from) => format!("tool `{tool}` was redirected from `{from}` to `{url}`"),
        None => format!("tool `{tool}` may not send to `{url}`"),
    };
    let origin = Origin::of(url).map_err(|why| HttpError::Denied(format!("{what}: {why}")))?;
    if !grant.allow.contains(&origin) {
        let allowed: Vec<String> = grant.allow.iter().map(Origin::to_string).collect();
        let allowed = if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") };
        return Err(HttpError::Denied(format!(
            "{what}: origin `{origin}` is not in its http allow-list (allowed: {allowed})"
        )));
    }
    if !grant.methods.contains(&outgoing.method) {
        return Err(HttpError::Denied(format!(
            "tool `{tool}` may not send {} to `{url}`: its http grant allows {}",
            outgoing.method,
            grant.methods.join(", ")
        )));
    }
    Ok(origin)
}

/// An absolute http or https URL, without its fragment (never sent).
fn parse_url(url: &str) -> Result<Uri, String> {
    let url = url.split('#').next().unwrap_or_default();
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| format!("not an absolute http or https url ({e})"))?;
    Origin::of(&uri).map_err(|why| format!("not an absolute http or https url: {why}"))?;
    Ok(uri)
}

/// The target of a redirect from `base` to `location` (absolute, or relative to `base`).
fn resolve(base: &Uri, location: &str) -> Result<Uri, String> {
    let location = location.split('#').next().unwrap_or_default();
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map_or("", |a| a.as_str());
    let absolute = if location.starts_with("//") {
        format!("{scheme}:{location}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else if location.contains("://") {
        location.to_owned()
    } else {
        let path = base.path();
        let directory = if location.starts_with('?') {
            path
        } else {
            path.rfind('/').map_or("/", |at| &path[..=at])
        };
        format!("{scheme}://{authority}{directory}{location}")
    };
    parse_url(&absolute)
}

/// Whether a response with a `Location` header is followed.
fn is_followed(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Points `outgoing` at `next` as the redirect `status` says: 303 (and 301 or 302 after a
/// POST) becomes a GET without a body; credentials stay behind when the origin changes.
fn redirect(outgoing: &mut Outgoing, status: StatusCode, next: Uri, origin: &Origin) {
    let to_get = match status.as_u16() {
        303 => outgoing.method != "HEAD",
        301 | 302 => outgoing.method == "POST",
        _ => false,
    };
    if to_get {
        outgoing.method = "GET".to_owned();
        outgoing.body = None;
        outgoing.headers.remove(header::CONTENT_TYPE);
    }
    if Origin::of(&next).ok().as_ref() != Some(origin) {
        for name in CREDENTIAL_HEADERS {
            outgoing.headers.remove(*name);
        }
    }
    outgoing.uri = next;
}

/// The tool's headers, checked: not too many, not too large, valid, and none the host owns.
fn request_headers(tool: &str, url: &str, headers: &[Header]) -> Result<HeaderMap, HttpError> {
    if headers.len() > MAX_HEADERS {
        return Err(HttpError::LimitExceeded(format!(
            "tool `{tool}` would send {} headers to `{url}`; limit {MAX_HEADERS}",
            headers.len()
        )));
    }
    let bytes: usize = headers.iter().map(|h| h.name.len() + h.value.len()).sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(HttpError::LimitExceeded(format!(
            "tool `{tool}` would send {} of headers to `{url}`; limit {}",
            ByteSize(bytes as u64),
            ByteSize(MAX_HEADER_BYTES as u64)
        )));
    }
    let mut map = HeaderMap::new();
    for Header { name, value } in headers {
        let refuse = |why: &str| {
            HttpError::Denied(format!(
                "tool `{tool}` may not send header `{name}` to `{url}`: {why}"
            ))
        };
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| refuse("not a valid header name"))?;
        if FORBIDDEN_HEADERS.contains(&parsed.as_str()) {
            return Err(refuse("the host sets it"));
        }
        let value = HeaderValue::from_str(value).map_err(|_| refuse("not a valid header value"))?;
        map.append(parsed, value);
    }
    Ok(map)
}

/// The one client: no proxy from the environment, no redirects, no connection kept between
/// requests, status codes returned as they are.
fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .proxy(None)
            .max_redirects(0)
            .http_status_as_error(false)
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .max_response_header_size(MAX_RESPONSE_HEAD)
            .user_agent(concat!("moat/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent()
    })
}

/// Sends one request and returns the response head, with `left` for everything including
/// reading the body.
fn exchange(
    outgoing: &Outgoing,
    left: Duration,
) -> Result<http::Response<ureq::Body>, ureq::Error> {
    let method = Method::from_bytes(outgoing.method.as_bytes()).map_err(http::Error::from)?;
    let mut builder = http::Request::builder().method(method).uri(outgoing.uri.clone());
    if let Some(headers) = builder.headers_mut() {
        headers.extend(outgoing.headers.clone());
    }
    let agent = agent();
    match &outgoing.body {
        Some(body) => {
            let request = builder.body(body.as_slice())?;
            let request = agent.configure_request(request).timeout_global(Some(left)).build();
            agent.run(request)
        }
        None => {
            let request = builder.body(())?;
            let request = agent.configure_request(request).timeout_global(Some(left)).build();
            agent.run(request)
        }
    }
}

/// Whether a request that failed with `error` may have reached the server. Only a failure
/// to find or connect to it proves it did not.
fn possibly_sent(error: &ureq::Error) -> bool {
    use std::io::ErrorKind;
    match error {
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::BadUri(_) => false,
        ureq::Error::Http(_) => false,
        ureq::Error::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect) => false,
        ureq::Error::Io(e) => !matches!(
            e.kind(),
            ErrorKind::ConnectionRefused | ErrorKind::AddrNotAvailable | ErrorKind::NotFound
        ),
        _ => true,
    }
}

/// The guest's view of a client failure.
fn failure(tool: &str, url: &str, error: ureq::Error) -> HttpError {
    match error {
        ureq::Error::Timeout(_) => HttpError::Timeout,
        ureq::Error::Io(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            HttpError::Timeout
        }
        ureq::Error::LargeResponseHeader(size, limit) => HttpError::LimitExceeded(format!(
            "the response from `{url}` to tool `{tool}` has a head of at least {}; limit {}",
            ByteSize(size as u64),
            ByteSize(limit as u64)
        )),
        other => HttpError::Transport(format!("tool `{tool}` could not reach `{url}`: {other}")),
    }
}

/// Reads the final response's body, at most one byte past the limit.
fn read_response(
    tool: &str,
    grant: &HttpGrant,
    outgoing: &Outgoing,
    response: http::Response<ureq::Body>,
) -> Result<Response, HttpError> {
    let url = outgoing.uri.to_string();
    let limit = grant.max_response.0;
    let too_large = |size: String| {
        HttpError::LimitExceeded(format!(
            "the response from `{url}` to tool `{tool}` is {size}; limit {}",
            grant.max_response
        ))
    };
    let (parts, body) = response.into_parts();
    if outgoing.method != "HEAD" {
        if let Some(length) = body.content_length().filter(|&length| length > limit) {
            return Err(too_large(ByteSize(length).to_string()));
        }
    }
    let mut bytes = Vec::new();
    body.into_reader()
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| failure(tool, &url, ureq::Error::from(e)))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(format!("over {}", grant.max_response)));
    }
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| Header {
            name: name.as_str().to_owned(),
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        })
        .collect();
    Ok(Response { status: parts.status.as_u16(), headers, body: bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &str) -> Result<Origin, String> {
        text.parse()
    }

    #[test]
    fn origins_are_normalized_with_default_ports() {
        let https = origin("HTTPS://API.Example.com").unwrap();
        assert_eq!(https, origin("https://api.example.com:443/").unwrap());
        assert_eq!(https.to_string(), "https://api.example.com");
        assert_eq!(origin("http://127.0.0.1:8080").unwrap().port, 8080);
        assert_ne!(origin("http://a.test").unwrap(), origin("https://a.test").unwrap());
    }

    #[test]
    fn an_origin_with_a_path_user_or_other_scheme_is_refused() {
        for bad in ["https://a.test/v1", "ftp://a.test", "https://user@a.test", "a.test", ""] {
            let error = origin(bad).unwrap_err();
            assert!(error.contains(&format!("`{bad}`")), "{error}");
        }
    }

    #[test]
    fn redirect_targets_resolve_against_the_current_url() {
        let base: Uri = "http://a.test:81/x/y?q=1".parse().unwrap();
        let to = |location| resolve(&base, location).unwrap().to_string();
        assert_eq!(to("/z"), "http://a.test:81/z");
        assert_eq!(to("z"), "http://a.test:81/x/z");
        assert_eq!(to("//b.test/z"), "http://b.test/z");
        assert_eq!(to("https://c.test/z#frag"), "https://c.test/z");
        assert!(resolve(&base, "file:///etc/passwd").is_err());
    }

    #[test]
    fn a_grant_has_modest_defaults_and_checks_methods() {
        let grant: HttpGrant = toml::from_str("allow = [\"https://a.test\"]").unwrap();
        assert_eq!(grant.methods, ["GET", "HEAD"]);
        assert_eq!(grant.max_response, ByteSize::mib(1));
        let error = toml::from_str::<HttpGrant>("allow = []\nmethods = [\"TRACE\"]").unwrap_err();
        assert!(error.to_string().contains("`TRACE` is not an http method"), "{error}");
        let error = toml::from_str::<HttpGrant>("allow = [\"https://a.test/x\"]").unwrap_err();
        assert!(error.to_string().contains("`https://a.test/x` is not an origin"), "{error}");
    }

    #[test]
    fn headers_the_host_owns_are_refused_and_headers_are_capped() {
        let header = |name: &str, value: &str| Header { name: name.into(), value: value.into() };
        let url = "http://a.test/";
        let sent = request_headers("t", url, &[header("X-Token", "1"), header("accept", "*/*")]);
        assert_eq!(sent.unwrap().len(), 2);
        for name in ["Host", "transfer-encoding", "Connection", "content-length"] {
            let refused = request_headers("t", url, &[header(name, "x")]).unwrap_err();
            assert!(matches!(&refused, HttpError::Denied(m) if m.contains(name)), "{refused:?}");
        }
        let many: Vec<Header> = (0..=MAX_HEADERS).map(|i| header(&format!("x-{i}"), "1")).collect();
        let refused = request_headers("t", url, &many).unwrap_err();
        assert!(matches!(&refused, HttpError::LimitExceeded(m) if m.contains("33 headers")));
        let big = [header("x-big", &"a".repeat(MAX_HEADER_BYTES))];
        let refused = request_headers("t", url, &big).unwrap_err();
        assert!(matches!(refused, HttpError::LimitExceeded(_)));
        let refused = request_headers("t", url, &[header("x-bad", "a\r\nb")]).unwrap_err();
        assert!(matches!(refused, HttpError::Denied(_)));
    }
}
