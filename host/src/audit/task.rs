//! `moat task rollback`: a task's committed effects, and the staged changes of its calls
//! that never finished, read back from a log that verifies, undone newest first from their
//! before-images, and the rollback itself recorded.

use super::checkpoint::parse_public;
use super::read::{lines, Line};
use super::{blobs_dir, log_path, Audit, Blobs, Event};
use crate::undo::rollback::{self, Report, Step};
use std::collections::HashSet;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TaskRollbackError {
    #[error("{0}")]
    Audit(#[from] super::AuditError),
    #[error("the audit log does not verify, so its before-images cannot be trusted: {0}")]
    Unverified(String),
    #[error("task `{0}` has no effects to undo in the audit log")]
    Nothing(String),
    #[error(transparent)]
    Rollback(#[from] rollback::RollbackError),
    #[error("{0}")]
    Read(String),
}

/// What a rollback did.
#[derive(Debug)]
pub struct RolledBack {
    pub report: Report,
    /// The `seq` of the `rollback` record.
    pub seq: u64,
}

/// The effect records of `task` that no earlier rollback undid, in log order, with the
/// `staged` records of its calls that did not finish (no `result`, as after a crash) or whose
/// own undoing failed: those changes may or may not be on disk, and are undone if they are.
/// A call killed while undoing itself said, before each change it undid, which one
/// (`undoing`): the changes it had finished undoing are left out.
/// A call that finished otherwise either committed (its `effect` records say what it left)
/// or undid its changes itself.
pub fn steps_of(dir: &Path, task: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut staged = Vec::new();
    let mut undone = HashSet::new();
    // Per call, the staged change it last said it was undoing.
    let mut marked: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    // Calls of the task that ended with every change either committed or undone.
    let mut settled = HashSet::new();
    let lines = lines(&log_path(dir)).map_err(|e| format!("cannot read the audit log: {e}"))?;
    for line in lines {
        let line = line.map_err(|e| format!("cannot read the audit log: {e}"))?;
        let Line::Record { record, .. } = line else { continue };
        match record.event {
            Event::Effect { task: t, tool, target, undo, .. } if t == task => {
                let undo = undo.unwrap_or(crate::undo::Undo::Irreversible {
                    reason: "no way to undo it was recorded".to_owned(),
                });
                steps.push(Step { seq: record.seq, tool, target, undo });
            }
            Event::Staged { call, task: t, tool, target, undo, .. } if t == task => {
                staged.push((call, Step { seq: record.seq, tool, target, undo }));
            }
            Event::Result { call, task: t, error_kind, .. }
                if t == task && error_kind.as_deref() != Some("rollback_failed") =>
            {
                settled.insert(call);
            }
            Event::Rollback { task: t, undone: seqs, .. } if t == task => undone.extend(seqs),
            // The call undid this change itself, unless this is its last mark (then it may
            // have been killed in the middle): all marks before the last are done.
            Event::Undoing { call, task: t, staged } if t == task => {
                if let Some(previous) = marked.insert(call, staged) {
                    undone.insert(previous);
                }
            }
            _ => {}
        }
    }
    steps.extend(staged.into_iter().filter(|(call, _)| !settled.contains(call)).map(|(_, s)| s));
    steps.sort_by_key(|step| step.seq);
    steps.retain(|step| !undone.contains(&step.seq));
    Ok(steps)
}

/// Rolls back `task`: verifies the log, holds it (no host may write meanwhile), undoes the
/// task's effects newest first, and records what was undone. Refuses, changing nothing, when
/// an effect cannot be undone, unless `skip_irreversible`.
pub fn roll_back_task(
    config: &super::AuditConfig,
    state_dir: &std::path::Path,
    task: &str,
    skip_irreversible: bool,
) -> Result<RolledBack, TaskRollbackError> {
    let dir = config.dir(state_dir);
    let keys = config.key_files(state_dir);
    let audit = Audit::open(&dir, &keys, config)?;
    let public = std::fs::read_to_string(&keys.public)
        .map_err(|e| TaskRollbackError::Read(format!("{}: {e}", keys.public.display())))?;
    let trusted = parse_public(&public).map_err(TaskRollbackError::Read)?;
    let report = super::verify::verify(&dir, &trusted)
        .map_err(|e| TaskRollbackError::Read(format!("cannot read the audit log: {e}")))?;
    if let Some(problem) = report.problem {
        return Err(TaskRollbackError::Unverified(problem.to_string()));
    }
    let steps = steps_of(&dir, task).map_err(TaskRollbackError::Read)?;
    if steps.is_empty() {
        return Err(TaskRollbackError::Nothing(task.to_owned()));
    }
    let blobs = blobs_dir(&dir);
    let blob = |hash: &str| Blobs::get(&blobs, hash).map_err(std::io::Error::other);
    let report = rollback::apply(&steps, &blob, skip_irreversible)?;
    let undone: Vec<u64> = report.undone.iter().map(|undone| undone.seq).collect();
    let skipped = report.skipped.clone();
    let seq = audit.record(vec![Event::Rollback { task: task.to_owned(), undone, skipped }])?;
    Ok(RolledBack { report, seq })
}
