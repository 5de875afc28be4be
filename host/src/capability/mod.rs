//! Host interfaces offered to plugins, one file per capability. Each file owns its grant
//! type (a `moat.toml` table), its limits, its per-call state and its host trait impl.
//!
//! Nothing is granted by default. [`Grants`] is the one place where configuration becomes
//! authority; [`CallCaps`] is what one call may do and what it has done so far: the effects
//! it staged, to be committed or rolled back by the pipeline.

pub(crate) mod bindings;
pub mod wasi;

/// Returns a refusal to the guest (`Ok(Err(..))` of a trappable host function).
macro_rules! refuse {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(refusal) => return Ok(Err(refusal)),
        }
    };
}

pub mod fs;
pub mod http;
pub mod kv;
pub mod log;
pub(crate) mod meters;
pub mod secrets;
pub mod sql;

use crate::call::{decide, CallView, CheckPoint, Effect, EffectKind, Escalator, Gate, NotApproved, Verdict};
use crate::runtime::exec::CallState;
use crate::controls::principal::{Meter, PrincipalMeters};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker};

/// The WIT interfaces this host provides, as `namespace:package/interface@version`.
pub const PROVIDED: &[&str] = &[
    "moat:plugin/types@0.1.0",
    "moat:plugin/log@0.1.0",
    "moat:plugin/fs@0.1.0",
    "moat:plugin/sql@0.1.0",
    "moat:plugin/http@0.1.0",
    "moat:plugin/kv@0.1.0",
    "moat:plugin/secrets@0.1.0",
];

/// The WASI 0.2 interfaces a tool built by componentize-py or componentize-js imports, which
/// moat provides in a restricted context (`exec::wasi_context`): nothing preopened, no
/// network, an empty environment, output captured into the call's log. Any 0.2.x version
/// links.
pub const WASI: &[&str] = &[
    "wasi:cli/environment@0.2.0",
    "wasi:cli/exit@0.2.0",
    "wasi:cli/stderr@0.2.0",
    "wasi:cli/stdin@0.2.0",
    "wasi:cli/stdout@0.2.0",
    "wasi:cli/terminal-input@0.2.0",
    "wasi:cli/terminal-output@0.2.0",
    "wasi:cli/terminal-stderr@0.2.0",
    "wasi:cli/terminal-stdin@0.2.0",
    "wasi:cli/terminal-stdout@0.2.0",
    "wasi:clocks/monotonic-clock@0.2.0",
    "wasi:clocks/wall-clock@0.2.0",
    "wasi:filesystem/preopens@0.2.0",
    "wasi:filesystem/types@0.2.0",
    "wasi:io/error@0.2.0",
    "wasi:io/poll@0.2.0",
    "wasi:io/streams@0.2.0",
    "wasi:random/insecure@0.2.0",
    "wasi:random/insecure-seed@0.2.0",
    "wasi:random/random@0.2.0",
    "wasi:sockets/instance-network@0.2.0",
    "wasi:sockets/ip-name-lookup@0.2.0",
    "wasi:sockets/network@0.2.0",
    "wasi:sockets/tcp@0.2.0",
    "wasi:sockets/tcp-create-socket@0.2.0",
    "wasi:sockets/udp@0.2.0",
    "wasi:sockets/udp-create-socket@0.2.0",
];

/// Handles one call may hold at once (open directories, connections).
pub const MAX_HANDLES: usize = 64;

/// Adds every provided interface to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    crate::capability::bindings::ToolPlugin::add_to_linker::<CallState, HasSelf<CallState>>(linker, |state| {
        state
    })
}

/// What one tool is granted, from `[tools.NAME.grants]`. Nothing by default.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Directory or file grants, by the name the tool opens them with.
    #[serde(default)]
    pub fs: BTreeMap<String, fs::FsGrant>,
    /// SQLite databases, by the name the tool opens them with.
    #[serde(default)]
    pub sql: BTreeMap<String, sql::SqlGrant>,
    /// Outbound HTTP.
    pub http: Option<http::HttpGrant>,
    /// The tool's key-value namespace.
    pub kv: Option<kv::KvGrant>,
    /// Names of secrets (from the top-level `[secrets]` table) the tool may read.
    #[serde(default)]
    pub secrets: Vec<String>,
}

impl Grants {
    /// Resolves relative paths against `base` (the config file's directory).
    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        for grant in self.fs.values_mut() {
            grant.path = resolve(base, &grant.path);
        }
        for grant in self.sql.values_mut() {
            grant.path = resolve(base, &grant.path);
        }
    }
}

pub(crate) fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_relative() {
        base.join(path)
    } else {
        path.to_owned()
    }
}

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
    fn task_total(&self, task: &str, key: &str) -> u64 {
        self.meters.total(task, key).unwrap_or_else(|error| {
            tracing::error!("task `{task}`: meter {key} unreadable, so it counts as full: {error}");
            u64::MAX
        })
    }
}

/// A magnitude limit that would be exceeded (defined with the principals' windows, which
/// report the same way).
pub use crate::controls::principal::Over;

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
    counts: HashMap<String, u64>,
    /// The per-task limit of each meter key charged, checked again on commit.
    per_task: HashMap<String, u64>,
    /// The effects that happened (staged), in order.
    pub effects: Vec<Effect>,
    /// Everything the call touched, reads included, for the session's history.
    pub touched: Vec<(EffectKind, String)>,
    pub fs: fs::FsCall,
    pub sql: sql::SqlCall,
    pub kv: kv::KvCall,
    pub http: http::HttpCall,
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
            fs: fs::FsCall::default(),
            sql: sql::SqlCall::default(),
            kv: kv::KvCall::default(),
            http: http::HttpCall::default(),
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
        let decided = decide(verdict, CheckPoint::Effect, &self.call, self.shared.escalator.as_ref());
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
        let take_back = |problem: String| match meters.take_back(&self.task, &self.counts) {
            Ok(()) => problem,
            Err(also) => format!("{problem}; task meters: {also}"),
        };
        let (store, namespace) = (&self.shared.kv, &*self.plugin);
        if let Err(problem) =
            self.kv.commit(store, namespace, self.grants.kv.as_ref(), self.deadline)
        {
            return Err(take_back(problem));
        }
        if let Err(problem) = self.sql.commit() {
            let problem = match self.kv.revert(store, namespace, self.deadline) {
                Ok(()) => problem,
                Err(also) => format!("{problem}; {also}"),
            };
            return Err(take_back(problem));
        }
        self.fs.commit();
        Ok(())
    }

    /// Undoes every staged effect, newest first. Reports what could not be undone.
    pub fn rollback(&mut self) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Err(problem) = self.sql.rollback() {
            problems.push(problem);
        }
        self.kv.rollback();
        if let Err(problem) = self.fs.rollback(self.journal.as_deref(), &self.call) {
            problems.push(problem);
        }
        problems.extend(self.http.irreversible());
        self.effects.clear();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}
