//! What one call may do and what it has staged ([`CallCaps`]): its grants, the effects it
//! staged, its meters; admitting an effect (declared, then asked of the gate), and the commit
//! or rollback of every capability's per-call state, in the order of the list in `mod.rs`.

use super::{kv, meters, secrets};
use super::{Calls, Context, Grants};
use crate::call::{
    decide, CallView, CheckPoint, Effect, EffectKind, Escalator, Gate, NotApproved, Verdict,
};
use crate::controls::principal::Over;
use crate::controls::principal::{Meter, PrincipalMeters};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// State shared by all calls of a host: secret sources, the key-value store, what each
/// task has consumed, and the gate.
pub(crate) struct Shared {
    pub secrets: secrets::SecretStore,
    pub kv: kv::KvStore,
    pub gate: Arc<dyn Gate>,
    pub escalator: Arc<dyn Escalator>,
    /// Committed totals per (task, meter key): bytes written, files deleted, rows changed,
    /// in the state database.
    meters: meters::TaskMeters,
    /// The principals' windows over the same meters.
    principals: Arc<PrincipalMeters>,
}

impl Shared {
    pub fn new(
        secrets: secrets::SecretStore,
        kv: kv::KvStore,
        gate: Arc<dyn Gate>,
        escalator: Arc<dyn Escalator>,
        meters: meters::TaskMeters,
        principals: Arc<PrincipalMeters>,
    ) -> Shared {
        Shared { secrets, kv, gate, escalator, meters, principals }
    }

    /// What the task committed on `key`; a meter that cannot be read is full (fail closed).
    pub(super) fn task_total(&self, task: &str, key: &str) -> u64 {
        self.meters.total(task, key).unwrap_or_else(|error| {
            tracing::error!("task `{task}`: meter {key} unreadable, so it counts as full: {error}");
            u64::MAX
        })
    }
}

/// What one call may do, and what it has staged so far.
pub(crate) struct CallCaps {
    pub tool: String,
    /// The component (its file name): the kv namespace, shared by the tools it offers.
    pub plugin: Arc<str>,
    /// Task totals are kept under this id; a call without one is a task of its own.
    pub task: String,
    pub grants: Arc<Grants>,
    /// The effects the tool declared in `describe()`; any other effect is refused.
    pub declared: Vec<EffectKind>,
    /// The call as checks see it.
    pub call: Arc<CallView>,
    pub shared: Arc<Shared>,
    /// When the call's wall-time budget ends; blocking host work must finish by then. Moved
    /// later by the time spent waiting for a person.
    pub deadline: Instant,
    /// Time spent waiting for a person's decision: not charged to the call's wall time.
    pub waited: Duration,
    /// Where changes made in place (files) are recorded, with their undo, before they
    /// happen: the audit log, unless it is off.
    pub journal: Option<Arc<crate::audit::staged::Journal>>,
    /// This call's counts per meter key, added to the task's on commit.
    pub(super) counts: HashMap<String, u64>,
    /// The per-task limit of each meter key charged, checked again on commit.
    per_task: HashMap<String, u64>,
    /// The effects that happened (staged), in order.
    pub effects: Vec<Effect>,
    /// Everything the call touched, reads included, for the session's history.
    pub touched: Vec<(EffectKind, String)>,
    /// Each capability's state of the call.
    pub calls: Calls,
    pub secrets: secrets::Revealed,
    /// The first effect a policy refused, or a person did not approve: the tool hears of it
    /// as an error, and its call is then refused for that reason, not for the tool's error.
    pub refusal: Option<NotApproved>,
}

impl CallCaps {
    /// A copy of what the call may do, with nothing done: what is left in a store once the
    /// call's own state has been taken out of it.
    pub fn emptied(&self) -> CallCaps {
        let (call, plugin) = (self.call.clone(), self.plugin.clone());
        CallCaps::new(call, plugin, self.grants.clone(), self.shared.clone(), self.deadline)
    }

    pub fn new(
        call: Arc<CallView>,
        plugin: Arc<str>,
        grants: Arc<Grants>,
        shared: Arc<Shared>,
        deadline: Instant,
    ) -> CallCaps {
        CallCaps {
            tool: call.tool.clone(),
            plugin,
            task: call.task.clone(),
            grants,
            declared: call.effects.clone(),
            call,
            shared,
            deadline,
            waited: Duration::ZERO,
            journal: None,
            counts: HashMap::new(),
            per_task: HashMap::new(),
            effects: Vec::new(),
            touched: Vec::new(),
            calls: Calls::default(),
            secrets: secrets::Revealed::default(),
            refusal: None,
        }
    }

    /// Charges `amount` to the meter `key` if it stays within `per_call` and `per_task`;
    /// otherwise changes nothing and says which limit.
    pub fn charge(
        &mut self,
        key: &str,
        amount: u64,
        per_call: u64,
        per_task: u64,
    ) -> Result<(), Over> {
        let call_used = self.counts.get(key).copied().unwrap_or(0);
        if call_used.saturating_add(amount) > per_call {
            return Err(Over { scope: "per call", limit: per_call, used: call_used });
        }
        let task_used = self.shared.task_total(&self.task, key).saturating_add(call_used);
        if task_used.saturating_add(amount) > per_task {
            return Err(Over { scope: "per task", limit: per_task, used: task_used });
        }
        // The caller's windows, whatever the task: this call's charges on the same meter
        // (any grant) count as pending.
        if let Some(meter) = Meter::of_key(key) {
            let pending: u64 = self
                .counts
                .iter()
                .filter(|(k, _)| Meter::of_key(k) == Some(meter))
                .map(|(_, n)| *n)
                .sum();
            self.shared.principals.check(&self.call.principal, meter, pending, amount)?;
        }
        *self.counts.entry(key.to_owned()).or_insert(0) += amount;
        let limit = self.per_task.entry(key.to_owned()).or_insert(per_task);
        *limit = (*limit).min(per_task);
        Ok(())
    }

    /// Gives back `amount` charged to `key` by this call, for an operation refused after its
    /// charge (by the gate, say): a refusal changes nothing, meters included.
    pub fn uncharge(&mut self, key: &str, amount: u64) {
        if let Some(used) = self.counts.get_mut(key) {
            *used = used.saturating_sub(amount);
        }
    }

    /// Checks that the tool declared `effect`'s kind, then asks the gate; an allowed effect
    /// is recorded as staged.
    pub fn admit(&mut self, effect: Effect) -> Result<(), String> {
        let kind = format!("{:?}", effect.kind).to_lowercase();
        if self.call.cancel.is_cancelled() {
            return Err(format!("the call was cancelled: no more effects (`{}`)", effect.target));
        }
        if !self.declared.contains(&effect.kind) {
            return Err(format!(
                "tool `{}` did not declare the `{kind}` effect, so it may not {kind} `{}`",
                self.tool, effect.target
            ));
        }
        let what = format!("{} {kind} of `{}`", effect.capability, effect.target);
        let verdict = match self.shared.gate.check_effect(&self.call, &effect) {
            Verdict::Deny(reason) => Verdict::Deny(format!("{what} refused by policy: {reason}")),
            // A person (or an MCP client) is shown it: no secret value in it.
            Verdict::Escalate(reason) => {
                Verdict::Escalate(self.secrets.redact(&format!("{what}: {reason}")))
            }
            other => other,
        };
        let asked = Instant::now();
        let decided =
            decide(verdict, CheckPoint::Effect, &self.call, self.shared.escalator.as_ref());
        // The time a person took is not the tool's.
        self.waited += asked.elapsed();
        self.deadline += asked.elapsed();
        if let Err(refusal) = decided {
            let reason = refusal.reason.clone();
            self.refusal.get_or_insert(refusal);
            return Err(reason);
        }
        self.touched.push((effect.kind, effect.target.clone()));
        self.effects.push(effect);
        Ok(())
    }

    /// Makes every staged effect final and adds the call's counts to its task.
    /// The counts first, checked again against the task's limits and the principal's
    /// windows and added in one transaction (another call of the task may have committed
    /// since this one was charged); a count that no longer fits, or a meter that cannot be
    /// written, refuses the commit. Then kv: its commit may still refuse (the namespace's
    /// quota, counted again with what other calls committed); if the sql commit then fails,
    /// the kv changes are put back. A crash after the counts counts more, never less.
    pub fn commit(&mut self) -> Result<(), String> {
        let meters = &self.shared.meters;
        let principals = &self.shared.principals;
        let principal = &self.call.principal;
        match meters.commit(&self.task, &self.counts, &self.per_task, principals, principal) {
            Ok(Ok(())) => {}
            Ok(Err((key, over))) => {
                return Err(format!(
                    "{key}: limit {} {} would be exceeded (used {} by calls committed \
                     meanwhile, {} more by this call): nothing it did stands",
                    over.limit,
                    over.scope,
                    over.used,
                    self.counts.get(&key).copied().unwrap_or(0),
                ));
            }
            Err(e) => return Err(format!("task meters: {e}")),
        }
        // (The principal's windows keep the counts of a commit that fails below: more,
        // never less.)
        let Err(problem) = self.commit_each() else { return Ok(()) };
        match self.shared.meters.take_back(&self.task, &self.counts) {
            Ok(()) => Err(problem),
            Err(also) => Err(format!("{problem}; task meters: {also}")),
        }
    }

    /// Commits each capability's state in the list's order; when one fails, the ones
    /// committed before it are reverted, newest first.
    fn commit_each(&mut self) -> Result<(), String> {
        let (calls, context) = self.split();
        let mut each = calls.each();
        for at in 0..each.len() {
            if let Err(problem) = each[at].commit(&context) {
                let mut problems = vec![problem];
                for committed in each[..at].iter_mut().rev() {
                    problems.extend(committed.revert(&context).err());
                }
                return Err(problems.join("; "));
            }
        }
        Ok(())
    }

    /// [`CallCaps::rollback`], for a call that fails with `cause`: `cause` itself, or what
    /// could not be undone along with it.
    pub fn roll_back(&mut self, cause: crate::error::CallError) -> crate::error::CallError {
        match self.rollback() {
            Ok(()) => cause,
            Err(problems) => {
                tracing::error!(tool = %self.tool, %problems, "rollback incomplete");
                crate::error::CallError::RollbackFailed { cause: Box::new(cause), problems }
            }
        }
    }

    /// The capabilities' per-call states, and what their commits and rollbacks see of the
    /// call beside them.
    fn split(&mut self) -> (&mut Calls, Context<'_>) {
        let context = Context {
            shared: &self.shared,
            plugin: &self.plugin,
            grants: &self.grants,
            deadline: self.deadline,
            journal: self.journal.as_deref(),
            call: &self.call,
        };
        (&mut self.calls, context)
    }

    /// Undoes every staged effect, newest first. Reports what could not be undone.
    pub fn rollback(&mut self) -> Result<(), String> {
        let (calls, context) = self.split();
        let problems: Vec<String> =
            calls.each().into_iter().filter_map(|call| call.rollback(&context).err()).collect();
        self.effects.clear();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}
