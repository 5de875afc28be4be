//! Escalation: when a guard (or the confidence gate) asks, a person decides whether one
//! exact call may go ahead. Channels: a terminal prompt, an approval queue (CLI and HTTP on
//! loopback), or an outright deny; a timeout, or nobody to ask, means deny.
//!
//! The channels `[escalation]` of `moat.toml` names ([`EscalationConfig`]):
//! [`TerminalEscalator`] (`terminal.rs`), [`QueueEscalator`] over an [`ApprovalQueue`] in
//! `STATE_DIR/approvals.sqlite` (`queue.rs`), decided by `moat approvals` or over HTTP by the
//! admin server (`admin/`, which also builds the channel configured), or [`DenyAll`].

mod config;
pub mod queue;
pub mod terminal;

pub use config::{Channel, ClientDecides, EscalationConfig};
pub use queue::{ApprovalQueue, ApprovalRequest, QueueError, QueueEscalator, Status};
pub use terminal::TerminalEscalator;
// The vocabulary of asking lives on the ground floor (`call/ask.rs`); the channels here.
pub use crate::call::{
    binding, escalate, Decision, DenyAll, Escalation, Escalator, NotApproved, Override,
};
pub use crate::text::printable;

use std::io::IsTerminal;

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
