//! What checks see: the call ([`CallView`]), each effect before it happens ([`Effect`]), and
//! what they answer ([`Verdict`]); and the [`Gate`] that asks them. Guard policies are one
//! gate; tests use others.

use crate::plugin::EffectKind;
use serde::Serialize;
use std::sync::Mutex;

/// One side effect a tool is about to have, described for a guard.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Effect {
    /// The capability: `fs`, `sql`, `http`, `kv`.
    pub capability: &'static str,
    pub kind: EffectKind,
    /// A path, a table, a URL, a key.
    pub target: String,
    /// The numbers: bytes, rows affected and table size, method, ...
    pub detail: serde_json::Value,
    /// How to undo it once committed; set by the capability after the effect happened.
    #[serde(skip)]
    pub undo: Option<crate::undo::Undo<crate::undo::Bytes>>,
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
    pub(crate) escalator: crate::escalation::Override,
}

/// Something a check or a person decided about a call, as the audit log records it.
#[derive(Clone, Debug, PartialEq)]
pub enum Note {
    /// One guard's (or the confidence gate's) verdict at one point.
    Verdict { stage: &'static str, guard: String, verdict: Verdict, shadow: bool, micros: u64 },
    /// A person was asked (or nobody could be).
    Escalation {
        stage: String,
        channel: String,
        reason: String,
        decision: crate::escalation::Decision,
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

/// What a check answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refuse, with a reason for the agent.
    Deny(String),
    /// Ask a person first, with the reason shown to them.
    Escalate(String),
    /// Replace the output with this (JSON text). Only after the call; elsewhere it allows.
    Rewrite(String),
}

/// Asked before every call, before every effect, and after every call. A `Deny` after the
/// call rolls back the call's staged effects. Implementations run on the call path: they
/// must be bounded.
pub trait Gate: Send + Sync {
    /// Before the call runs.
    fn check_call(&self, call: &CallView) -> Verdict {
        let _ = call;
        Verdict::Allow
    }

    /// Before an effect happens (a file write, a SQL statement, a non-read-only request).
    fn check_effect(&self, call: &CallView, effect: &Effect) -> Verdict {
        let _ = (call, effect);
        Verdict::Allow
    }

    /// After the tool returned `output`, before anything is committed.
    fn check_result(&self, call: &CallView, output: &str) -> Verdict {
        let _ = (call, output);
        Verdict::Allow
    }
}

/// The gate of a host without guards: allows everything.
pub struct AllowAll;

impl Gate for AllowAll {}

/// Several gates asked in order, combined as policies are: any deny wins, then any escalate;
/// rewrites apply in order, each gate seeing the output as rewritten so far.
pub struct Chain(pub Vec<std::sync::Arc<dyn Gate>>);

impl Chain {
    fn combine(&self, mut ask: impl FnMut(&dyn Gate, Option<&str>) -> Verdict) -> Verdict {
        let mut escalate = None;
        let mut rewritten: Option<String> = None;
        for gate in &self.0 {
            match ask(gate.as_ref(), rewritten.as_deref()) {
                Verdict::Allow => {}
                Verdict::Deny(reason) => return Verdict::Deny(reason),
                Verdict::Escalate(reason) => {
                    escalate.get_or_insert(reason);
                }
                Verdict::Rewrite(text) => rewritten = Some(text),
            }
        }
        match (escalate, rewritten) {
            (Some(reason), _) => Verdict::Escalate(reason),
            (None, Some(text)) => Verdict::Rewrite(text),
            (None, None) => Verdict::Allow,
        }
    }
}

impl Gate for Chain {
    fn check_call(&self, call: &CallView) -> Verdict {
        self.combine(|gate, _| match gate.check_call(call) {
            Verdict::Rewrite(_) => Verdict::Allow,
            other => other,
        })
    }

    fn check_effect(&self, call: &CallView, effect: &Effect) -> Verdict {
        self.combine(|gate, _| match gate.check_effect(call, effect) {
            Verdict::Rewrite(_) => Verdict::Allow,
            other => other,
        })
    }

    fn check_result(&self, call: &CallView, output: &str) -> Verdict {
        self.combine(|gate, rewritten| gate.check_result(call, rewritten.unwrap_or(output)))
    }
}
