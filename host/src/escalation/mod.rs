//! Escalation: when a guard (or the confidence gate) asks, a person decides whether one
//! exact call may go ahead. Channels: a terminal prompt, an approval queue (CLI and HTTP on
//! loopback), or an outright deny; a timeout, or nobody to ask, means deny.
//!
//! [`escalator`] builds the channel `[escalation]` of `moat.toml` asks for
//! ([`EscalationConfig`]): [`TerminalEscalator`] (`terminal.rs`), [`QueueEscalator`] over an
//! [`ApprovalQueue`] in `STATE_DIR/approvals.sqlite` (`queue.rs`), decided by `moat approvals`
//! or by [`ApprovalServer`] (`http.rs`), or [`DenyAll`].

mod config;
pub mod http;
pub mod queue;
pub mod terminal;

pub use config::{Channel, ClientDecides, EscalationConfig};
pub use http::ApprovalServer;
pub use queue::{ApprovalQueue, ApprovalRequest, QueueError, QueueEscalator, Status};
pub use terminal::TerminalEscalator;

use serde::Serialize;
use std::borrow::Cow;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

/// One call waiting for a person's decision.
#[derive(Clone, Debug, Serialize)]
pub struct Escalation {
    /// Unique id of this request for a decision (what `moat approvals approve ID` takes).
    pub id: String,
    pub tool: String,
    /// The arguments exactly as the agent sent them (JSON text).
    pub args: String,
    pub task: String,
    /// Who asked (a guard's name, or `confidence`), and why.
    pub asked_by: String,
    pub reason: String,
    /// blake3 of the tool name and the arguments: a decision applies to this call only.
    pub binding: String,
    /// Set when the call is cancelled: a channel waiting for a decision withdraws the request.
    #[serde(skip)]
    pub cancel: crate::cancel::Cancel,
}

impl Escalation {
    pub fn new(tool: &str, args: &str, task: &str, asked_by: &str, reason: &str) -> Escalation {
        let binding = binding(tool, args);
        Escalation {
            id: format!("{}-{}", &binding[..8], unique()),
            tool: tool.to_owned(),
            args: args.to_owned(),
            task: task.to_owned(),
            asked_by: asked_by.to_owned(),
            reason: reason.to_owned(),
            binding,
            cancel: crate::cancel::Cancel::default(),
        }
    }
}

/// The hash that binds a decision to one call: tool name and arguments, unambiguously.
pub fn binding(tool: &str, args: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(tool.len() as u64).to_le_bytes());
    hasher.update(tool.as_bytes());
    hasher.update(args.as_bytes());
    hasher.finalize().to_hex().to_string()
}

/// A value no other escalation of any process will have.
fn unique() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = format!("{:?} {} {n}", std::time::SystemTime::now(), std::process::id());
    blake3::hash(seed.as_bytes()).to_hex()[..8].to_owned()
}

/// What a person (or the lack of one) decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Decision {
    Approved {
        by: String,
    },
    Denied {
        by: String,
        reason: String,
    },
    /// Nobody decided in time, or there was nobody to ask: deny.
    TimedOut {
        channel: String,
    },
}

/// A way to ask a person. `decide` blocks until a decision or the timeout.
pub trait Escalator: Send + Sync {
    fn decide(&self, escalation: &Escalation) -> Decision;

    /// The channel's name, for the audit log.
    fn channel(&self) -> String {
        "custom".to_owned()
    }

    /// Whether moat itself knows who decided (a terminal, the queue's authenticated
    /// approver), or only what the other side says (an MCP client's elicitation).
    fn verifies_who_decides(&self) -> bool {
        true
    }
}

/// Nobody to ask: every escalation is denied at once. The default of a non-interactive host.
pub struct DenyAll;

impl Escalator for DenyAll {
    fn decide(&self, _escalation: &Escalation) -> Decision {
        Decision::TimedOut { channel: "none (non-interactive)".into() }
    }

    fn channel(&self) -> String {
        "none".to_owned()
    }
}

/// Builds the channel `config` asks for; the approval queue lives in `state_dir`. Starts the
/// HTTP server of the queue when `config.http` is set (it lives as long as the escalator).
///
/// Fails, saying why, when `http` is not a loopback address or cannot be bound, when `http`
/// is set with a channel that does not use the queue, when the terminal channel was chosen
/// and there is no terminal, or when the queue cannot be opened.
pub fn escalator(
    config: &EscalationConfig,
    state_dir: &Path,
) -> Result<Arc<dyn Escalator>, String> {
    if let Some(address) = &config.http {
        http::loopback_addresses(address)?;
    }
    let channel = match config.channel {
        Channel::Auto if config.http.is_some() => Channel::Queue,
        Channel::Auto if interactive() => Channel::Terminal,
        // Nobody at a terminal and no queue asked for: a non-interactive session denies.
        Channel::Auto => Channel::Deny,
        chosen => chosen,
    };
    if config.http.is_some() && channel != Channel::Queue {
        return Err(format!(
            "escalation.http serves the approval queue, but escalation.channel is \"{}\": \
             use \"queue\" or \"auto\", or remove http",
            channel.name()
        ));
    }
    let timeout = config.timeout.duration();
    match channel {
        Channel::Deny => Ok(Arc::new(DenyAll)),
        Channel::Terminal => Ok(Arc::new(TerminalEscalator::open(timeout)?)),
        Channel::Auto | Channel::Queue => {
            let queue =
                Arc::new(ApprovalQueue::in_state_dir(state_dir).map_err(|e| e.to_string())?);
            let mut escalator = QueueEscalator::new(queue.clone(), timeout);
            if let Some(address) = &config.http {
                escalator = escalator.with_server(ApprovalServer::start(queue, address)?);
            }
            Ok(Arc::new(escalator))
        }
    }
}

/// The channel of a host with configuration `config`: [`escalator`] over `[escalation]`,
/// where `auto` also means the queue when the admin server (`[admin] http`) serves it.
pub fn for_config(config: &crate::Config) -> Result<Arc<dyn Escalator>, String> {
    let mut escalation = config.escalation.clone();
    if escalation.channel == Channel::Auto && config.admin.http.is_some() {
        escalation.channel = Channel::Queue;
    }
    escalator(&escalation, &config.state_dir)
}

/// Whether a person is at this process's terminal: standard input and standard error are
/// both terminals.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Who is deciding, by default: `$USER` (or `%USERNAME%`), else `unknown`.
pub fn current_user() -> String {
    ["USER", "USERNAME"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .map(|user| user.trim().to_owned())
        .find(|user| !user.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `text` made safe to print on a terminal: control characters (but newlines, when
/// `keep_newlines`) and bidirectional overrides are shown escaped (`\u{1b}`), so that what a
/// tool or an agent wrote cannot move the cursor, recolour, or reorder what a person reads.
pub fn printable(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && !(keep_newlines && c == '\n'))
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            shown.extend(c.escape_unicode());
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

/// The escalator of one call, when not the host's: see [`crate::Host::run_with`].
#[derive(Clone, Default)]
pub struct Override(pub Option<Arc<dyn Escalator>>);

impl std::fmt::Debug for Override {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(escalator) => write!(f, "Override({})", escalator.channel()),
            None => f.write_str("Override(none)"),
        }
    }
}

/// An escalation that did not end in approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotApproved {
    /// Who decided what, for the agent.
    pub reason: String,
    /// Whether someone could be asked: a person denied, or left the request unanswered on a
    /// channel they watch. False when there was nobody to ask ([`DenyAll`]).
    pub asked: bool,
}

/// Asks about `call` (its own escalator if it has one, else `escalator`), for the reason
/// given; `Ok` only if a person approved.
pub fn escalate(
    escalator: &dyn Escalator,
    call: &crate::effect::CallView,
    asked_by: &str,
    reason: &str,
) -> Result<(), NotApproved> {
    let escalator = call.escalator.0.as_deref().unwrap_or(escalator);
    let escalation = Escalation::new(&call.tool, &call.args, &call.task, asked_by, reason);
    let mut escalation = escalation;
    escalation.cancel = call.cancel.clone();
    let decision = match escalator.decide(&escalation) {
        // An approval that arrives for a cancelled call applies to nothing.
        _ if call.cancel.is_cancelled() => Decision::Denied {
            by: "moat".to_owned(),
            reason: "the call was cancelled while it waited; the request is withdrawn".to_owned(),
        },
        decision => decision,
    };
    tracing::info!(tool = %call.tool, id = %escalation.id, ?decision, "escalation decided");
    call.note(crate::effect::Note::Escalation {
        stage: asked_by.to_owned(),
        channel: escalator.channel(),
        reason: reason.to_owned(),
        decision: decision.clone(),
        verified: escalator.verifies_who_decides(),
    });
    let asked = escalator.channel() != DenyAll.channel();
    match decision {
        Decision::Approved { .. } => Ok(()),
        Decision::Denied { by, reason: why } => Err(NotApproved {
            reason: format!("escalated ({reason}) and denied by {by}: {why}"),
            asked,
        }),
        Decision::TimedOut { channel } => Err(NotApproved {
            reason: format!("escalated ({reason}) and not approved: no decision from {channel}"),
            asked,
        }),
    }
}
