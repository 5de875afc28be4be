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
// The vocabulary of asking lives on the ground floor (`call/ask.rs`); the channels here.
pub use crate::call::{
    binding, escalate, Decision, DenyAll, Escalation, Escalator, NotApproved, Override,
};
pub use crate::text::printable;

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

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
