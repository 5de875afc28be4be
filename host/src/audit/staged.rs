//! The write-ahead part of the log: a change a capability is about to make in place (a
//! file written, removed or renamed) is recorded with its undo, as a `staged` record, before
//! it happens, and synced when the log is durable. A crash at any moment then leaves every
//! change either not made or in the log with its undo; `moat task rollback` undoes the
//! changes of a call that never finished whether or not they happened
//! ([`Undo::Pending`]). A call that fails undoes its changes in place, newest first, each
//! after an `undoing` record naming it: a crash during that undoing leaves the log saying
//! how far it got.

use super::{Audit, AuditError, Event};
use crate::call::{CallView, Effect};
use crate::redact::Revealed;
use crate::undo::{Bytes, Undo};
use std::path::PathBuf;
use std::sync::Arc;

/// Where one call's changes are recorded before they happen.
pub(crate) struct Journal {
    audit: Arc<Audit>,
    /// The `seq` of the call's `call` record.
    call: u64,
}

impl Journal {
    pub fn new(audit: Arc<Audit>, call: u64) -> Journal {
        Journal { audit, call }
    }

    /// Records that `effect` is about to happen, undone by `undo`, possibly through the
    /// staging file `scratch`; returns once the record is written (and synced, when
    /// durable). An undo holding a secret value is not stored (`trail::holds_secret`): the
    /// change is then recorded as irreversible, as its `effect` record will be. Returns the
    /// record's `seq`.
    pub fn stage(
        &self,
        call: &CallView,
        secrets: &Revealed,
        effect: &Effect,
        undo: &Undo<Bytes>,
        scratch: Option<PathBuf>,
    ) -> Result<u64, AuditError> {
        let pending = Undo::Pending { scratch, change: Box::new(undo.clone()) };
        let undo = match super::trail::holds_secret(&pending, secrets) {
            true => Undo::Irreversible {
                reason: "its undo holds a secret value, which is never kept in the audit log"
                    .to_owned(),
            },
            false => pending.store(|bytes| self.audit.blob(&bytes))?,
        };
        let event = Event::Staged {
            call: self.call,
            task: call.task.clone(),
            tool: call.tool.clone(),
            capability: effect.capability.to_owned(),
            kind: format!("{:?}", effect.kind).to_lowercase(),
            target: secrets.redact(&effect.target),
            undo,
        };
        self.audit.record(vec![event])
    }

    /// Records that the call, failing, is about to undo in place the change of its staged
    /// record `staged`: after a crash, `moat task rollback` knows which of its changes the
    /// call had undone already (all those marked before the last mark).
    pub fn undoing(&self, call: &CallView, staged: u64) -> Result<(), AuditError> {
        let event = Event::Undoing { call: self.call, task: call.task.clone(), staged };
        self.audit.record(vec![event]).map(|_| ())
    }
}
