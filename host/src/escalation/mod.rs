//! Escalation: when a guard (or the confidence gate) asks, a person decides whether one
//! exact call may go ahead. Channels: a terminal prompt, an approval queue (CLI and HTTP on
//! loopback), or an outright deny; a timeout, or nobody to ask, means deny.

use serde::Serialize;

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
    Approved { by: String },
    Denied { by: String, reason: String },
    /// Nobody decided in time, or there was nobody to ask: deny.
    TimedOut { channel: String },
}

/// A way to ask a person. `decide` blocks until a decision or the timeout.
pub trait Escalator: Send + Sync {
    fn decide(&self, escalation: &Escalation) -> Decision;
}

/// Nobody to ask: every escalation is denied at once. The default of a non-interactive host.
pub struct DenyAll;

impl Escalator for DenyAll {
    fn decide(&self, _escalation: &Escalation) -> Decision {
        Decision::TimedOut { channel: "none (non-interactive)".into() }
    }
}
