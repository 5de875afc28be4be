//! moat as an MCP server: every loaded tool as an MCP tool, every call through
//! [`Host::run`].
//!
//! - `tools/list`: one tool per [`crate::ToolSpec`] (its JSON Schema as `inputSchema`, its
//!   effects as annotations), plus the built-in `read_more`.
//! - `tools/call`: a [`CallRequest`] from the arguments and the request's `_meta` (the keys
//!   are in [`meta`]), run on a blocking thread. Without `moat/task`, the call's task is the
//!   MCP session: one per connection.
//! - Every refusal or failure of a call ([`CallError`]) is a tool result with
//!   `isError: true`, its text and `structuredContent` `{"error": {"kind", "message",
//!   "retryable", "hint"}}`, so the model can read it and act. So is an unknown tool: the
//!   spec counts it among protocol errors, but clients show protocol errors to the model
//!   opaquely, while this answer lists the tools there are. JSON-RPC errors are kept for
//!   requests that are malformed: a line that is not JSON (`-32700`), a message that is
//!   not a request (`-32600`), a `_meta` key of the wrong type (`-32602`).
//!
//! Nothing here grants permissions, loads plugins or changes policies: the server offers
//! the tools the configuration loaded, under the configuration's rules.

mod elicit;
mod http;
pub mod meta;
pub mod result;
mod stdio;

pub use crate::config::{AdminConfig, Auth, ServeConfig};
pub use elicit::Elicitor;
pub use http::{http_token, serve_http, token_path, HttpServer, ENDPOINT};

pub use stdio::{serve_io, serve_stdio};

use crate::audit::AuditError;
use crate::bounded::Bounded;
use crate::escalation::{ClientDecides, Escalator};
use crate::{CallError, CallRequest, CallResponse, Host};
use meta::CallMeta;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use std::sync::{Arc, Mutex};

/// How often a session looks for changes of the tool directories.
const LOOK: std::time::Duration = std::time::Duration::from_secs(1);

/// Tasks one connection remembers having seen; past this, the least recently used goes.
const TASKS: usize = 10_000;

const INSTRUCTIONS: &str = "moat runs each tool sandboxed, under budgets and policies. A \
refused call comes back as an error result whose structuredContent.error says the kind, \
whether retrying can help, and what to do instead. When an output is too long, the answer \
says so and gives a cursor: call read_more with it to read on. Optional _meta keys of \
tools/call: moat/task, moat/session, moat/confidence (0 to 1), moat/reasoning, \
moat/modelTokens, moat/prompt (the task's prompt), moat/taskOutput (ends the task).";

/// Why serving stopped other than by the client closing the connection.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the MCP session did not start: {0}")]
    Start(String),
    #[error("the MCP server failed: {0}")]
    Failed(String),
}

/// Cancels a call when dropped, unless disarmed: the handler's future dropped mid-call (its
/// client gone) cancels the call it started.
struct CancelOnDrop(Option<crate::cancel::Cancel>);

impl CancelOnDrop {
    fn new(cancel: crate::cancel::Cancel) -> CancelOnDrop {
        CancelOnDrop(Some(cancel))
    }

    /// The call ended: dropping the guard no longer cancels it (and its handle is freed:
    /// forgetting the guard instead would leak it, once per call).
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(cancel) = &self.0 {
            cancel.cancel();
        }
    }
}

/// The calls in flight on one connection: cancelled, and waited for, when it ends.
#[derive(Default)]
pub(crate) struct InFlight {
    calls: Mutex<Vec<(u64, crate::cancel::Cancel)>>,
    next: std::sync::atomic::AtomicU64,
}

/// One call's place in [`InFlight`], given up when dropped.
pub(crate) struct InFlightCall<'a> {
    inflight: &'a InFlight,
    id: u64,
}

impl InFlight {
    fn add(&self, cancel: &crate::cancel::Cancel) -> InFlightCall<'_> {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut calls = self.calls.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        calls.push((id, cancel.clone()));
        InFlightCall { inflight: self, id }
    }

    /// Cancels every call in flight and waits (at most `within`) for them to end: rolled
    /// back and recorded, not cut off by the process exiting.
    pub(crate) async fn cancel_all(&self, within: std::time::Duration) {
        let started = std::time::Instant::now();
        loop {
            {
                let calls = self.calls.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if calls.is_empty() {
                    return;
                }
                for (_, cancel) in calls.iter() {
                    cancel.cancel();
                }
            }
            if started.elapsed() >= within {
                tracing::warn!("calls still in flight after {within:?}: stopping anyway");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for InFlightCall<'_> {
    fn drop(&mut self) {
        let mut calls = self.inflight.calls.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        calls.retain(|(id, _)| *id != self.id);
    }
}

/// The MCP server of one connection, over a shared [`Host`].
pub struct McpServer {
    host: Arc<Host>,
    /// The MCP session's id: the task of calls that name none.
    session: String,
    /// Who is calling, as the transport knows it (`stdio`, `http:token`, `http:loopback`):
    /// per-principal controls hold over every session label the agent gives.
    principal: String,
    /// Tasks seen on this connection: a task's prompt is recorded the first time.
    tasks: Mutex<Bounded<String, ()>>,
    /// Its calls in flight.
    inflight: Arc<InFlight>,
}

impl McpServer {
    /// A server for one connection; `session` names it (in the audit log, as the task of
    /// calls without `moat/task`).
    pub fn new(host: Arc<Host>, session: String) -> McpServer {
        McpServer {
            host,
            session,
            principal: "mcp".to_owned(),
            tasks: Mutex::new(Bounded::new(TASKS)),
            inflight: Arc::default(),
        }
    }

    /// Who a request comes from: over HTTP its token's identity, else this connection's
    /// principal; and the tools it may list and call (`None`: all).
    fn caller(&self, context: &RequestContext<RoleServer>) -> (String, Option<Vec<String>>) {
        let identity = context
            .extensions
            .get::<::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Arc<http::Identity>>());
        match identity {
            Some(identity) => (identity.principal.clone(), identity.tools.clone()),
            None => (self.principal.clone(), None),
        }
    }

    /// Its calls in flight, for the transport to cancel when the connection ends.
    pub(crate) fn inflight(&self) -> Arc<InFlight> {
        self.inflight.clone()
    }

    /// The same server, its calls belonging to `principal` (what the transport verified).
    pub fn with_principal(mut self, principal: &str) -> McpServer {
        self.principal = principal.to_owned();
        self
    }

    /// A server for one connection, with a fresh random session id (`mcp-` and 16 hex
    /// digits).
    pub fn with_random_session(host: Arc<Host>) -> McpServer {
        let mut bytes = [0u8; 8];
        // Without randomness the id is still unique enough per process: the time.
        if getrandom::fill(&mut bytes).is_err() {
            let nanos = crate::clock::since_epoch().as_nanos() as u64;
            bytes = nanos.to_le_bytes();
        }
        McpServer::new(host, format!("mcp-{}", hex::encode(bytes)))
    }

    /// The session id: the default task.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// Whether this connection sees `task` for the first time (and from now on, knows it).
    fn first_seen(&self, task: &str) -> bool {
        let mut tasks = self.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        tasks.insert_new(&task.to_owned(), ())
    }

    fn forget(&self, task: &str) {
        self.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(task);
    }

    fn tool_names(&self) -> Vec<String> {
        self.host.tools().into_iter().map(|tool| tool.name).collect()
    }
}

/// One call as the blocking thread runs it: the task's start (with its prompt) when this is
/// the task's first call here, the call, and the task's end when the caller says so.
struct Job {
    request: CallRequest,
    /// The client's user, when it can be asked (elicitation); else the host's channel.
    escalator: Option<Arc<dyn Escalator>>,
    task: String,
    prompt: Option<String>,
    task_output: Option<String>,
}

/// The call's outcome, and a note when the task's end could not be recorded.
fn run_job(host: &Host, job: Job) -> (Result<CallResponse, CallError>, Option<String>) {
    let audit_error = |e: AuditError| CallError::Audit {
        tool: job.request.tool.clone(),
        reason: format!("cannot record the start of task `{}`: {e}", job.task),
    };
    let outcome = match job.prompt.as_deref() {
        Some(prompt) => host.start_task(&job.task, Some(prompt)).map_err(audit_error),
        None => Ok(()),
    }
    .and_then(|()| host.run_with(&job.request, job.escalator.clone()));
    let note = job.task_output.as_deref().and_then(|output| {
        host.end_task(&job.task, Some(output))
            .err()
            .map(|e| format!("[moat] the end of task `{}` could not be recorded: {e}", job.task))
    });
    (outcome, note)
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities =
            ServerCapabilities::builder().enable_tools().enable_tool_list_changed().build();
        let mut info = ServerConfig::new(capabilities);
        info.server_info = Implementation::new("moat", env!("CARGO_PKG_VERSION"));
        info.with_instructions(INSTRUCTIONS)
    }

    /// From now on, tells the client when the tools change: the tool directories are looked
    /// at every [`LOOK`], and a reload (by this session's look, another's, or a call's)
    /// sends `notifications/tools/list_changed`. Ends when the client is gone.
    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let host = self.host.clone();
        let peer = context.peer;
        let mut version = host.watch_tools();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = version.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if peer.notify_tool_list_changed().await.is_err() {
                            return;
                        }
                    }
                    () = tokio::time::sleep(LOOK) => {
                        if peer.is_transport_closed() {
                            return;
                        }
                        let host = host.clone();
                        // Loading a component compiles it: not on the runtime's threads.
                        let _ = tokio::task::spawn_blocking(move || host.reload_tools_if_changed()).await;
                    }
                }
            }
        });
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let (_, allowed) = self.caller(&context);
        let may = |name: &str| allowed.as_ref().is_none_or(|tools| tools.iter().any(|t| t == name));
        let mut tools: Vec<_> =
            self.host.tools().iter().filter(|spec| may(&spec.name)).map(result::tool).collect();
        tools.extend(self.host.registry().builtins().map(result::tool));
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // The SDK moves the request's `_meta` to the context; read both, the request last.
        let mut fields = context.meta.0 .0.clone();
        if let Some(meta) = &request.meta {
            fields.extend(meta.0 .0.clone());
        }
        let meta =
            CallMeta::parse(&fields).map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        let (principal, allowed) = self.caller(&context);
        let task = match &meta.task {
            Some(task) => crate::bounded::name(task).into_owned(),
            None => self.session.clone(),
        };
        let first = self.first_seen(&task);
        // The arguments as text, once; the parsed ones are dropped here.
        let args = serde_json::Value::Object(request.arguments.unwrap_or_default()).to_string();
        let args: Arc<str> = args.into();
        let ends = meta.task_output.is_some();
        let escalation = &self.host.config().escalation;
        let timeout = escalation.timeout.duration();
        // The client decides only where the operator allowed it, and never under "deny".
        let client_may_decide = escalation.client == ClientDecides::Allowed
            && escalation.channel != crate::escalation::Channel::Deny;
        let escalator =
            Elicitor::for_client(&context.peer, tokio::runtime::Handle::current(), timeout)
                .filter(|_| client_may_decide)
                .map(|elicitor| Arc::new(elicitor) as Arc<dyn Escalator>);
        // Cancelled when the client cancels the request, or goes away (the handler dropped).
        let cancel = crate::cancel::Cancel::new();
        let guard = CancelOnDrop::new(cancel.clone());
        let watcher = {
            let (ct, cancel) = (context.ct.clone(), cancel.clone());
            tokio::spawn(async move {
                ct.cancelled().await;
                cancel.cancel();
            })
        };
        let inflight = self.inflight.add(&cancel);
        let job = Job {
            escalator,
            request: CallRequest {
                tool: request.name.to_string(),
                args,
                task: Some(task.clone()),
                session: meta.session,
                principal: Some(principal),
                confidence: meta.confidence,
                reasoning: meta.reasoning,
                model_tokens: meta.model_tokens,
                budgets: Default::default(),
                cancel: Some(cancel.clone()),
                tools: allowed.clone(),
            },
            task: task.clone(),
            prompt: meta.prompt.filter(|_| first),
            task_output: meta.task_output,
        };
        let host = self.host.clone();
        let (outcome, note) =
            tokio::task::spawn_blocking(move || run_job(&host, job)).await.map_err(|e| {
                ErrorData::internal_error(format!("the call did not finish: {e}"), None)
            })?;
        watcher.abort();
        guard.disarm();
        drop(inflight);
        if ends {
            self.forget(&task);
        }
        let mut answer = match &outcome {
            Ok(response) => result::success(response),
            Err(error) => {
                let mut names = self.tool_names();
                if let Some(tools) = &allowed {
                    names.retain(|name| tools.contains(name));
                }
                result::refusal(error, &names)
            }
        };
        if let Some(note) = note {
            answer.content.push(rmcp::model::ContentBlock::text(note));
        }
        Ok(answer.into())
    }
}
