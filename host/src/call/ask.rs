//! Asking a person: one call's [`Escalation`] (bound to a hash of the tool and its
//! arguments), the [`Decision`], the [`Escalator`] that asks (the channels live in
//! `escalation/`), and [`escalate`], which asks and notes what was decided.

use super::CheckPoint;
use serde::Serialize;
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
    let seed = format!("{} {} {n}", crate::clock::since_epoch().as_nanos(), std::process::id());
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

impl NotApproved {
    /// The call's error: `Declined` when a person said no (or let the request lapse on a
    /// channel they watch), a plain `Denied` when nobody could be asked or a check denied.
    pub fn error(self, tool: &str, stage: crate::error::Stage) -> crate::error::CallError {
        let tool = tool.to_owned();
        match self.asked {
            true => crate::error::CallError::Declined { tool, stage, reason: self.reason },
            false => crate::error::CallError::Denied { tool, stage, reason: self.reason },
        }
    }
}

/// Asks about `call` (its own escalator if it has one, else `escalator`), for the reason
/// given; `Ok` only if a person approved.
pub fn escalate(
    escalator: &dyn Escalator,
    call: &crate::call::CallView,
    point: CheckPoint,
    reason: &str,
) -> Result<(), NotApproved> {
    let escalator = call.escalator.0.as_deref().unwrap_or(escalator);
    let escalation = Escalation::new(&call.tool, &call.args, &call.task, point.name(), reason);
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
    call.note(crate::call::Note::Escalation {
        stage: point,
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
