//! Effects as the pipeline sees them before they happen, and the [`Gate`] that may refuse
//! them: the hook that guard policies plug into.

use crate::plugin::EffectKind;
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
}

/// What a gate says about an effect or a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refuse, with a reason for the agent.
    Deny(String),
}

/// Asked before every effect and after every call; a `Deny` after the call rolls back the
/// call's staged effects. Implementations must be cheap and must not block for long: they
/// run on the call path.
pub trait Gate: Send + Sync {
    /// Before an effect happens (a file write, a SQL statement, a non-read-only request).
    fn check_effect(&self, tool: &str, effect: &Effect) -> Verdict {
        let _ = (tool, effect);
        Verdict::Allow
    }

    /// After the tool returned `output`, before anything is committed.
    fn check_result(&self, tool: &str, output: &str) -> Verdict {
        let _ = (tool, output);
        Verdict::Allow
    }
}

/// The gate of a host without guards: allows everything.
pub struct AllowAll;

impl Gate for AllowAll {}
