//! The records of one call, built by the pipeline: the call as admitted, then every verdict
//! and escalation, every committed effect (with how to undo it), budgets hit, and the result.
//! Every secret value known is redacted from all of it, in every form redaction looks for
//! (whether or not this call asked for the secret), and an undo holding one, in an image or
//! in a path, key or table it names, is not kept.

use super::{Audit, AuditError, Event};
use crate::call::CallResponse;
use crate::call::Decision;
use crate::call::Usage;
use crate::call::{CallView, Effect, Note, Verdict};
use crate::error::CallError;
use crate::redact::Revealed;
use crate::undo::{BlobRef, Bytes, Undo};

/// The record of a call entering the pipeline, naming the component (its name and hash)
/// that will run it.
pub(crate) fn call(
    audit: &Audit,
    call: &CallView,
    component: Option<(&str, blake3::Hash)>,
) -> Result<Event, AuditError> {
    Ok(Event::Call {
        principal: call.principal.clone(),
        task: call.task.clone(),
        session: call.session.clone(),
        tool: call.tool.clone(),
        plugin: component.map(|(name, _)| name.to_owned()).unwrap_or_default(),
        plugin_hash: component.map(|(_, hash)| hash.to_hex().to_string()).unwrap_or_default(),
        args: audit.text(&call.args)?,
        reasoning: call.reasoning.as_deref().map(|r| audit.text(r)).transpose()?,
        confidence: call.confidence,
    })
}

/// How a call ended, with what it used and revealed.
pub(crate) struct Ending<'a> {
    pub outcome: &'a Result<CallResponse, CallError>,
    pub usage: &'a Usage,
    pub secrets: &'a Revealed,
    /// Tokens of the output the caller was given.
    pub tokens: u64,
}

/// The records after the call: notes, effects, budget, result.
pub(crate) fn end(
    audit: &Audit,
    id: u64,
    call: &CallView,
    ending: Ending<'_>,
) -> Result<Vec<Event>, AuditError> {
    let secrets = ending.secrets;
    let mut events: Vec<Event> =
        call.take_notes().into_iter().map(|note| noted(id, note, secrets)).collect();
    if let Ok(response) = ending.outcome {
        for effect in &response.effects {
            events.push(committed(audit, id, call, effect, secrets)?);
        }
    }
    if let Err(CallError::Budget(exceeded)) = ending.outcome {
        events.push(Event::Budget {
            call: id,
            task: call.task.clone(),
            tool: call.tool.clone(),
            budget: exceeded.budget.to_string(),
            limit: exceeded.limit,
            used: exceeded.used,
        });
    }
    let usage = ending.usage;
    let (ok, error_kind, error, output) = match ending.outcome {
        Ok(response) => (true, None, None, Some(audit.text(&response.output)?)),
        Err(error) => (false, Some(kind(error)), Some(secrets.redact(&error.to_string())), None),
    };
    let output_hash = ending
        .outcome
        .as_ref()
        .ok()
        .map(|response| blake3::hash(response.output.as_bytes()).to_hex().to_string());
    events.push(Event::Result {
        call: id,
        task: call.task.clone(),
        tool: call.tool.clone(),
        ok,
        error_kind,
        error,
        output,
        output_hash,
        output_bytes: ending.outcome.as_ref().map_or(0, |r| r.output.len() as u64),
        tokens: ending.tokens,
        fuel: usage.fuel,
        peak_memory: usage.peak_memory,
        wall_us: usage.wall_time.as_micros() as u64,
    });
    Ok(events)
}

fn noted(id: u64, note: Note, secrets: &Revealed) -> Event {
    match note {
        Note::Verdict { stage, guard, verdict, shadow, micros } => {
            let (verdict, reason) = match verdict {
                Verdict::Allow => ("allow", None),
                Verdict::Deny(reason) => ("deny", Some(reason)),
                Verdict::Escalate(reason) => ("escalate", Some(reason)),
                Verdict::Rewrite(text) => {
                    ("rewrite", Some(format!("the output was rewritten ({} bytes)", text.len())))
                }
            };
            Event::Verdict {
                call: id,
                stage: stage.name().to_owned(),
                guard,
                verdict: verdict.to_owned(),
                reason: reason.map(|r| secrets.redact(&r)),
                shadow,
                micros,
            }
        }
        Note::Escalation { stage, channel, reason, decision, verified } => {
            let (decision, by, reason) = match decision {
                Decision::Approved { by } => ("approved", Some(by), reason),
                Decision::Denied { by, reason: why } => {
                    ("denied", Some(by), format!("{reason}; denied: {why}"))
                }
                Decision::TimedOut { channel } => ("timed_out", Some(channel), reason),
            };
            // A name the client gave itself is kept apart from an identity moat checked.
            let (by, reported_by) = match verified {
                true => (by, None),
                false => (None, by),
            };
            Event::Escalation {
                call: id,
                stage: stage.name().to_owned(),
                channel,
                reason: secrets.redact(&reason),
                decision: decision.to_owned(),
                by,
                reported_by,
            }
        }
    }
}

fn committed(
    audit: &Audit,
    id: u64,
    call: &CallView,
    effect: &Effect,
    secrets: &Revealed,
) -> Result<Event, AuditError> {
    let undo = effect.undo.as_ref().map(|undo| stored(audit, undo, secrets)).transpose()?;
    let (before, after) = match &undo {
        Some(Undo::File { before, after, .. } | Undo::Key { before, after, .. }) => {
            (before.clone(), after.clone())
        }
        _ => (None, None),
    };
    Ok(Event::Effect {
        call: id,
        task: call.task.clone(),
        tool: call.tool.clone(),
        capability: effect.capability.to_owned(),
        kind: format!("{:?}", effect.kind).to_lowercase(),
        target: secrets.redact(&effect.target),
        detail: secrets.redact_json(&effect.detail),
        before,
        after,
        rows: effect.detail.get("rows").and_then(|rows| rows.as_u64()),
        undo,
    })
}

/// Stores the images of `undo` as blobs. An undo holding a secret value (in an image, or in
/// a path, key, table or column it names, which a record would show) is not stored: the
/// effect is then recorded as irreversible.
fn stored(
    audit: &Audit,
    undo: &Undo<Bytes>,
    secrets: &Revealed,
) -> Result<Undo<BlobRef>, AuditError> {
    if holds_secret(undo, secrets) {
        return Ok(Undo::Irreversible {
            reason: "its undo holds a secret value, which is never kept in the audit log"
                .to_owned(),
        });
    }
    undo.clone().store(|bytes| audit.blob(&bytes))
}

/// Whether any image or name of `undo` holds a secret value, in any form: its images as
/// `store` hands them out, and its names as its record would show them (whatever its kind).
pub(crate) fn holds_secret(undo: &Undo<Bytes>, secrets: &Revealed) -> bool {
    if secrets.is_empty() {
        return false;
    }
    let mut held = false;
    let named = undo.clone().store(|image| {
        held |= secrets.appears_in(&image);
        Ok::<_, std::convert::Infallible>(BlobRef::new())
    });
    held || named.map_or(true, |named| match serde_json::to_vec(&named) {
        Ok(record) => secrets.appears_in(&record),
        Err(_) => true,
    })
}

/// The error's kind, as the audit log names it.
fn kind(error: &CallError) -> String {
    error.kind().to_owned()
}
