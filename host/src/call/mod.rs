//! The call's own types, the ground floor every other module stands on: what a caller asks
//! ([`CallRequest`]), what it gets ([`CallResponse`], with its [`WindowInfo`]), the call as
//! every check sees it ([`CallView`], with its session's [`HistoryEntry`]s and the [`Note`]s
//! of its verdicts and escalations), and what it consumed ([`Usage`]). What checks answer
//! and how an answer becomes an outcome is `check.rs`; how a person is asked, `ask.rs`.

mod ask;
mod check;

pub use ask::{binding, escalate, Decision, DenyAll, Escalation, Escalator, NotApproved, Override};
pub(crate) use check::attach;
pub use check::{decide, AllowAll, Chain, CheckPoint, Effect, EffectKind, Gate, Stakes, Verdict};

use crate::budget::BudgetOverrides;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One call as a caller makes it.
#[derive(Clone, Debug, Default)]
pub struct CallRequest {
    pub tool: String,
    /// A JSON object, as text (shared, not copied, by the call's checks).
    pub args: Arc<str>,
    /// The task the call belongs to: per-task limits add up over its calls. Without one,
    /// the call is a task of its own.
    pub task: Option<String>,
    /// The session: `check-call` sees its recent calls. Default: the task.
    pub session: Option<String>,
    /// Who is calling, as the embedder knows it: the connection, the token (`moat serve`
    /// sets it per transport, `moat call` to the local user). Never taken from the agent's
    /// message. Default: `local`.
    pub principal: Option<String>,
    /// The agent's confidence in this action, 0 to 1.
    pub confidence: Option<f64>,
    /// The model's reasoning, shown to guards (and recorded).
    pub reasoning: Option<String>,
    /// Tokens the model used for this step, as the caller reports them: added to the
    /// task's token budget.
    pub model_tokens: Option<u64>,
    /// Replaces budgets of this call only. The embedder decides who may set these: an agent
    /// must never be able to raise its own limits.
    pub budgets: BudgetOverrides,
    /// Set to stop the call in flight (an MCP cancel, a client gone): its effects are rolled
    /// back and it is recorded as cancelled.
    pub cancel: Option<crate::cancel::Cancel>,
    /// The tools this caller may call (a named token's `tools`), as the embedder knows it;
    /// `None`: all. Another is refused before it runs, and recorded.
    pub tools: Option<Vec<String>>,
}

impl CallRequest {
    pub fn new(tool: &str, args: &str) -> CallRequest {
        CallRequest { tool: tool.to_owned(), args: Arc::from(args), ..CallRequest::default() }
    }
}

/// A successful call: the tool's output (JSON text, as rewritten by policies), what the
/// call consumed, the effects it had (now committed), and what shadow policies would have
/// done.
#[derive(Clone, Debug)]
pub struct CallResponse {
    pub output: String,
    pub usage: Usage,
    pub effects: Vec<Effect>,
    pub shadow: Vec<String>,
    /// Set when the output was over the token window: `output` is one window of it, and
    /// this says where it stands and how to read on (the `read_more` tool).
    pub window: Option<WindowInfo>,
}

/// Where a windowed output stands, returned beside the window's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowInfo {
    /// Read on with `read_more {"cursor": ...}`; `None` at the end.
    pub cursor: Option<String>,
    /// Bytes of the output before this window.
    pub offset: u64,
    pub total_bytes: u64,
    pub total_tokens: u64,
    /// Tokens in this window.
    pub tokens: u64,
}

/// What one call consumed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub fuel: u64,
    /// Peak linear memory over the call, summed over memories.
    pub peak_memory: u64,
    pub wall_time: Duration,
    pub output_bytes: u64,
}

/// One earlier call of the same session.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub tool: String,
    /// The kinds of effect the call actually had, and their targets, in order.
    pub effects: Vec<EffectKind>,
    pub targets: Vec<String>,
    pub ok: bool,
}

/// One call, as every check sees it.
#[derive(Debug, Default, Serialize)]
pub struct CallView {
    pub tool: String,
    /// The arguments, JSON text, valid against the tool's schema.
    pub args: std::sync::Arc<str>,
    pub task: String,
    pub session: String,
    /// Who is calling, as the host knows it (the connection, the token): never a name the
    /// agent chose. Task and session are the agent's labels inside it.
    pub principal: String,
    /// Set when the call is cancelled in flight.
    #[serde(skip)]
    pub cancel: crate::cancel::Cancel,
    pub confidence: Option<f64>,
    pub reasoning: Option<String>,
    /// The effects the tool declares.
    pub effects: Vec<EffectKind>,
    /// The session's recent calls, oldest first.
    pub history: Vec<HistoryEntry>,
    /// The tool's output budget for this call: a guard's rewrite of the output is an
    /// output too, held to it. `None` outside a call's pipeline.
    #[serde(skip)]
    pub output_budget: Option<crate::units::ByteSize>,
    /// What shadow policies would have done; collected for the response (and the audit).
    #[serde(skip)]
    pub(crate) shadow: Mutex<Vec<String>>,
    /// Every verdict and escalation of the call so far, for the audit log.
    #[serde(skip)]
    pub(crate) notes: Mutex<Vec<Note>>,
    /// Who decides this call's escalations, when not the host's escalator (an MCP client
    /// that can ask its user).
    #[serde(skip)]
    pub(crate) escalator: crate::call::Override,
}

/// Something a check or a person decided about a call, as the audit log records it.
#[derive(Clone, Debug, PartialEq)]
pub enum Note {
    /// One guard's (or the confidence gate's) verdict at one point.
    Verdict { stage: CheckPoint, guard: String, verdict: Verdict, shadow: bool, micros: u64 },
    /// A person was asked (or nobody could be).
    Escalation {
        stage: CheckPoint,
        channel: String,
        reason: String,
        decision: crate::call::Decision,
        /// Whether moat verified who decided (false: the MCP client reported it).
        verified: bool,
    },
}

impl CallView {
    /// Notes what a shadow policy would have done.
    pub fn note_shadow(&self, note: String) {
        tracing::info!(tool = %self.tool, "{note}");
        self.shadow.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(note);
    }

    /// Notes a verdict or an escalation for the audit log.
    pub fn note(&self, note: Note) {
        self.notes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(note);
    }

    pub(crate) fn peek_notes(&self) -> Vec<Note> {
        self.notes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub(crate) fn take_notes(&self) -> Vec<Note> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    pub(crate) fn take_shadow(&self) -> Vec<String> {
        std::mem::take(&mut *self.shadow.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}
