//! Redaction: every form of a secret value (`redactor.rs`), redaction of parsed JSON string by
//! string (`json.rs`), and [`Revealed`], one call's secrets and the redactor of every value
//! known, applied wherever text a tool controls leaves the call (its output, its log, the
//! audit log, what a person is shown).

mod json;
pub mod redactor;

pub use redactor::{Redactor, MIN_REDACTED_LEN};
use std::sync::Arc;

/// One call's secrets: the granted ones as loaded at its start, and the redactor of every
/// value known then, to apply wherever text the tool controls would leave the call.
#[derive(Clone, Default)]
pub struct Revealed {
    values: Vec<(String, Result<String, String>)>,
    redactor: Arc<Redactor>,
}

impl std::fmt::Debug for Revealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values.
        let names: Vec<&str> = self.values.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Revealed").field("granted", &names).finish_non_exhaustive()
    }
}

impl Revealed {
    /// The secrets `values` (each loaded, or why not) of one call, with the redactor of
    /// every value known.
    pub(crate) fn new(
        values: Vec<(String, Result<String, String>)>,
        redactor: Arc<Redactor>,
    ) -> Revealed {
        Revealed { values, redactor }
    }

    /// The value of the granted secret `name` as loaded at the start of the call, or why it
    /// could not be; `None` if it was not loaded.
    pub(crate) fn value(&self, name: &str) -> Option<&Result<String, String>> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, value)| value)
    }

    /// A call's secrets made of `values` alone (for tests and embedders' checks).
    pub fn of(values: &[(String, String)]) -> Revealed {
        let loaded = values.iter().map(|(n, v)| (n.clone(), Ok(v.clone()))).collect();
        Revealed { values: loaded, redactor: Arc::new(Redactor::new(values)) }
    }

    /// `text` with every known value, in every form, replaced by `[redacted:NAME]`.
    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text).into_owned()
    }

    /// A tool's output redacted: JSON string by string (keys too), each as it reads after
    /// its escapes are undone, and written back as JSON; any other text as text.
    pub fn redact_output(&self, output: String) -> String {
        if self.redactor.is_empty() {
            return output;
        }
        if serde_json::from_str::<serde::de::IgnoredAny>(&output).is_ok() {
            match json::redact_text(&self.redactor, &output) {
                Ok(Some(redacted)) => return redacted,
                Ok(None) => return output,
                Err(()) => {}
            }
        }
        self.redact(&output)
    }

    /// `value` with every string redacted, keys included.
    pub fn redact_json(&self, value: &serde_json::Value) -> serde_json::Value {
        json::redact_value(&self.redactor, value)
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.redactor.is_empty()
    }

    /// Whether `bytes` hold a known value, in any form.
    pub fn appears_in(&self, bytes: &[u8]) -> bool {
        self.redactor.finds(bytes)
    }

    /// Removes every secret value from every text of an error: a tool controls some of each
    /// (its messages, and what checks, commits and rollbacks quote of its effects' targets).
    pub fn redact_error(&self, error: crate::error::CallError) -> crate::error::CallError {
        use crate::error::CallError as E;
        if self.is_empty() {
            return error;
        }
        let r = |text: String| self.redact(&text);
        match error {
            E::UnknownTool(tool) => E::UnknownTool(r(tool)),
            E::InvalidArguments { tool, reason } => E::InvalidArguments { tool, reason: r(reason) },
            E::Trapped { tool, reason } => E::Trapped { tool, reason: r(reason) },
            E::Tool { tool, kind, message } => E::Tool { tool, kind, message: r(message) },
            E::BadOutput { tool, reason } => E::BadOutput { tool, reason: r(reason) },
            E::Denied { tool, stage, reason } => E::Denied { tool, stage, reason: r(reason) },
            E::Declined { tool, stage, reason } => E::Declined { tool, stage, reason: r(reason) },
            E::RollbackFailed { cause, problems } => E::RollbackFailed {
                cause: Box::new(self.redact_error(*cause)),
                problems: r(problems),
            },
            E::Host { tool, reason } => E::Host { tool, reason: r(reason) },
            E::Loop { tool, reason } => E::Loop { tool, reason: r(reason) },
            E::Audit { tool, reason } => E::Audit { tool, reason: r(reason) },
            // Numbers and names from the configuration and the host only.
            other @ (E::Budget(_)
            | E::TaskBudget { .. }
            | E::PrincipalLimit { .. }
            | E::Cancelled { .. }
            | E::Breaker(_)) => other,
        }
    }
}
