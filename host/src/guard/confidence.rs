//! The confidence gate (`[confidence]`): a call whose stakes have a threshold, and whose
//! agent gave a confidence below it or none, is escalated to a person before it runs. The
//! agent's confidence is its claim: it can only make the gate ask, never skip a check.

use crate::call::{CallView, CheckPoint, Note, Stakes, Verdict};
use crate::error::CallError;
use serde::Deserialize;

/// `[confidence]`: the confidence the agent must give for a call of some stakes; a call
/// below it, or without one, escalates to a person. A threshold of 0 turns the gate off for
/// those stakes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfidenceConfig {
    /// For high-stakes calls (deleting, sending, network); default 0.8.
    #[serde(default = "default_high")]
    pub high: f64,
    /// For medium-stakes calls (writing); default 0 (off).
    #[serde(default)]
    pub medium: f64,
    /// For low-stakes calls (reading); default 0 (off).
    #[serde(default)]
    pub low: f64,
}

impl Default for ConfidenceConfig {
    fn default() -> ConfidenceConfig {
        ConfidenceConfig { high: default_high(), medium: 0.0, low: 0.0 }
    }
}

fn default_high() -> f64 {
    0.8
}

impl ConfidenceConfig {
    /// The threshold for `stakes`, if calls of those stakes are gated.
    pub fn threshold(&self, stakes: Stakes) -> Option<f64> {
        let threshold = match stakes {
            Stakes::High => self.high,
            Stakes::Medium => self.medium,
            Stakes::Low => self.low,
        };
        (threshold > 0.0).then_some(threshold)
    }
}

/// What the gate says of `call`, of `stakes`: allow, or escalate with the reason; noted on
/// the call. A confidence outside 0 to 1 is an invalid argument.
pub(crate) fn verdict(
    config: &ConfidenceConfig,
    stakes: Stakes,
    call: &CallView,
) -> Result<Verdict, CallError> {
    if let Some(c) = call.confidence.filter(|c| !(0.0..=1.0).contains(c)) {
        let reason = format!("confidence {c} is not between 0 and 1");
        return Err(CallError::InvalidArguments { tool: call.tool.clone(), reason });
    }
    let Some(threshold) = config.threshold(stakes) else { return Ok(Verdict::Allow) };
    let stakes = format!("{stakes:?}").to_lowercase();
    let verdict = match call.confidence {
        Some(c) if c >= threshold => Verdict::Allow,
        Some(c) => Verdict::Escalate(format!(
            "confidence {c:.2} is below {threshold:.2} for a {stakes}-stakes call"
        )),
        None => Verdict::Escalate(format!(
            "no confidence was given for a {stakes}-stakes call (threshold {threshold:.2})"
        )),
    };
    call.note(Note::Verdict {
        stage: CheckPoint::Confidence,
        guard: "confidence".to_owned(),
        verdict: verdict.clone(),
        shadow: false,
        micros: 0,
    });
    Ok(verdict)
}
