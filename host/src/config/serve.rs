//! `[serve]` and `[admin]` of `moat.toml`: who may reach `moat serve --http`, and where the
//! admin HTTP server (approvals, metrics, health) listens.

use serde::Deserialize;
use std::collections::BTreeMap;

/// `[serve]`: the security of the streamable HTTP transport.
///
/// ```toml
/// [serve]
/// auth = "auto"                          # "auto": a bearer token off loopback; "token": always
/// hosts = ["moat.internal"]              # Host names accepted besides loopback's
/// origins = ["https://app.example.com"]  # browser origins accepted (none by default)
///
/// [serve.tokens.ci-bot]                  # a named token: the principal `http:ci-bot`
/// blake3 = "..."                         # the token's blake3 (`moat token ci-bot` makes one)
/// tools = ["echo", "db_query"]           # the tools it may list and call (default: all)
/// ```
///
/// `max_sessions = 1024` bounds the MCP sessions open at once over HTTP.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    #[serde(default)]
    pub auth: Auth,
    /// `Host` header values accepted besides `localhost`, `127.0.0.1` and `::1` (a name, or
    /// `name:port`). A request naming any other host is refused (DNS rebinding).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Browser origins (`https://app.example.com`, with `:port` or `:*`) whose pages may
    /// call the server. A request with any other `Origin` header is refused; requests
    /// without one (programs, not browsers) are not affected.
    #[serde(default)]
    pub origins: Vec<String>,
    /// Named bearer tokens, stored as their blake3. With any, every request over HTTP needs
    /// one of them (on loopback too, and the token of `moat init` no longer serves): each is
    /// a principal of its own, `http:NAME`, with the tools it may list and call.
    #[serde(default)]
    pub tokens: BTreeMap<String, NamedToken>,
    /// MCP sessions open at once over HTTP (default 1024): a new one past this closes the
    /// least recently used (its client gets 404 and starts again).
    #[serde(default)]
    pub max_sessions: Option<usize>,
}

impl ServeConfig {
    /// The default of `max_sessions`.
    pub const MAX_SESSIONS: usize = 1024;

    /// `max_sessions`, or its default.
    pub fn max_sessions(&self) -> usize {
        self.max_sessions.unwrap_or(Self::MAX_SESSIONS).max(1)
    }
}

/// `[serve.tokens.NAME]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedToken {
    /// blake3 of the token, 64 hex digits: moat never keeps the token itself.
    pub blake3: String,
    /// The tools this token may list and call (`read_more` always); default: all.
    #[serde(default)]
    pub tools: Option<Vec<String>>,
}

/// When a request must carry `Authorization: Bearer TOKEN`, the token being the contents of
/// `STATE_DIR/keys/http.token` (made by `moat init`, or by the first server that needs it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// Required unless the server listens on loopback only.
    #[default]
    Auto,
    /// Always required.
    Token,
}

/// `[admin]`: the admin HTTP server of `moat serve`.
///
/// ```toml
/// [admin]
/// http = "127.0.0.1:7879"   # GET /healthz, GET /metrics, the approval queue (/approvals)
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Loopback only (127.0.0.1, [::1], localhost); any other address stops moat at start.
    #[serde(default)]
    pub http: Option<String>,
}
