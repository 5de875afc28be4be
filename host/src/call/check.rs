//! What checks see: the call ([`CallView`]), each effect before it happens ([`Effect`]), and
//! what they answer ([`Verdict`]); and the [`Gate`] that asks them. Guard policies are one
//! gate; tests use others.

use super::CallView;
use serde::Serialize;

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

/// A kind of effect a tool declares (`effect-kind` in WIT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EffectKind {
    Read,
    Write,
    Delete,
    Network,
    Send,
}

/// How much harm a wrong call can do (`stakes` in WIT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stakes {
    Low,
    Medium,
    High,
}

/// Says how to undo the effect staged at `index` of `effects`, once it happened.
pub(crate) fn attach(
    effects: &mut [Effect],
    index: usize,
    undo: crate::undo::Undo<crate::undo::Bytes>,
) {
    if let Some(effect) = effects.get_mut(index) {
        effect.undo = Some(undo);
    }
}

/// Where in the pipeline a call is checked: the one name of each point, for notes, metrics,
/// the audit log, escalations and errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckPoint {
    /// The confidence gate, before the call (`[confidence]`).
    Confidence,
    /// `check-call`: before the call runs.
    Call,
    /// `check-effect`: before one of its effects happens.
    Effect,
    /// `check-result`: after the tool returned, before anything is committed.
    Result,
}

impl CheckPoint {
    /// The name the audit log, the metrics and the policies' WIT use.
    pub fn name(self) -> &'static str {
        match self {
            CheckPoint::Confidence => "confidence",
            CheckPoint::Call => "check-call",
            CheckPoint::Effect => "check-effect",
            CheckPoint::Result => "check-result",
        }
    }

    /// When a refusal at this point stops the call.
    pub fn stage(self) -> crate::error::Stage {
        match self {
            CheckPoint::Confidence | CheckPoint::Call => crate::error::Stage::BeforeCall,
            CheckPoint::Effect => crate::error::Stage::DuringCall,
            CheckPoint::Result => crate::error::Stage::AfterCall,
        }
    }

    /// The point a [`CheckPoint::name`] names.
    pub fn from_name(name: &str) -> Option<CheckPoint> {
        [CheckPoint::Confidence, CheckPoint::Call, CheckPoint::Effect, CheckPoint::Result]
            .into_iter()
            .find(|point| point.name() == name)
    }

    /// Who asked, said to a person deciding an escalation.
    pub fn asker(self) -> &'static str {
        match self {
            CheckPoint::Confidence => "the confidence gate",
            CheckPoint::Call => "a policy, before the call",
            CheckPoint::Effect => "a policy, at one of the call's effects",
            CheckPoint::Result => "a policy, on the call's output",
        }
    }
}

impl std::fmt::Display for CheckPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What `verdict` at `point` comes to; the one mapping from a verdict to an outcome, used by
/// the pipeline and the capabilities alike. `Ok` goes on, with the replacement output of a
/// rewrite after the call (a rewrite anywhere else allows). A deny is `NotApproved` with
/// nobody asked; an escalation asks a person through `escalator` (or the call's own) and goes
/// on only if they approve.
pub fn decide(
    verdict: Verdict,
    point: CheckPoint,
    call: &CallView,
    escalator: &dyn super::Escalator,
) -> Result<Option<String>, super::NotApproved> {
    match verdict {
        Verdict::Allow => Ok(None),
        Verdict::Rewrite(text) if point == CheckPoint::Result => Ok(Some(text)),
        Verdict::Rewrite(_) => Ok(None),
        Verdict::Deny(reason) => Err(super::NotApproved { reason, asked: false }),
        Verdict::Escalate(reason) => {
            super::escalate(escalator, call, point, &reason).map(|()| None)
        }
    }
}
