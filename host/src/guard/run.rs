//! Running one guard check: a fresh instance of the policy in a fresh store, under the
//! policy's budgets; whatever goes wrong becomes a deny that says so (fail closed).
//! Instances are made ahead on the reaper thread, so a check usually finds one ready; each
//! serves exactly one check.

use super::{default_guard_budgets, Mode, PolicyConfig};
use crate::budget::Budgets;
use crate::call::EffectKind;
use crate::call::{CallView, Effect, Verdict};
use crate::capability::log::CallLog;
use crate::capability::wasi::Wasi;
use crate::capability::{MAX_HANDLES, WASI};
use crate::error::{one_line, LoadError, LoadProblem};
use crate::guard::facts::Facts;
use crate::plugin::{compile, World};
use crate::runtime::compile_cache::Compiler;
use crate::runtime::engine;
use crate::runtime::limiter::Limiter;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtxView, WasiView};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "guard-plugin",
        imports: { default: trappable },
        with: {
            "moat:plugin/types": crate::capability::bindings::moat::plugin::types,
            "moat:plugin/log": crate::capability::bindings::moat::plugin::log,
        },
    });
}

use bindings::exports::moat::plugin::guard as wit;
pub(crate) use bindings::moat::plugin::facts as facts_wit;
use bindings::{GuardPlugin, GuardPluginPre};

/// Instances of a policy kept ready, at most: a call's check-call and check-result.
const AHEAD: usize = 2;

/// The interfaces a guard may import: nothing that changes the world.
const GUARD_WORLD: World = World {
    name: "guard-plugin",
    export: "moat:plugin/guard@0.1.0",
    provided: &["moat:plugin/types@0.1.0", "moat:plugin/log@0.1.0", "moat:plugin/facts@0.1.0"],
    // Restricted as for tools (see `Wasi`): for guards built by componentize-py or -js.
    wasi: WASI,
};

/// The data of one guard check's store.
pub(crate) struct GuardState {
    pub limiter: Limiter,
    pub log: CallLog,
    pub facts: Arc<Facts>,
    /// When the check's wall time ends: `facts` queries end by then too.
    pub deadline: std::time::Instant,
    /// Handles a WASI guest holds, with a capacity limit.
    table: ResourceTable,
    /// Restricted WASI, made at the first use (a Rust guard imports none).
    wasi: Option<Wasi>,
}

impl WasiView for GuardState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        Wasi::view(&mut self.wasi, &mut self.table)
    }
}

impl crate::capability::bindings::moat::plugin::log::Host for GuardState {
    fn log(
        &mut self,
        level: crate::capability::bindings::moat::plugin::log::Level,
        message: String,
    ) -> wasmtime::Result<()> {
        self.log.record(level, message);
        Ok(())
    }
}

/// Where a check happens, with what it looks at.
#[derive(Clone)]
pub(crate) enum Point<'a> {
    Call,
    Effect(&'a Effect),
    Result(&'a str),
}

impl Point<'_> {
    pub fn at(&self) -> crate::call::CheckPoint {
        match self {
            Point::Call => crate::call::CheckPoint::Call,
            Point::Effect(_) => crate::call::CheckPoint::Effect,
            Point::Result(_) => crate::call::CheckPoint::Result,
        }
    }
}

/// A loaded policy.
#[derive(Clone)]
pub struct Policy {
    /// The file name without `.wasm`: how config and messages name it.
    pub name: String,
    pub path: PathBuf,
    pub hash: blake3::Hash,
    /// What the guard says it checks.
    pub description: String,
    pub mode: Mode,
    tools: Option<Vec<String>>,
    pub(crate) budgets: Budgets,
    pre: GuardPluginPre<GuardState>,
    ahead: Ahead,
}

/// A policy's instances made ahead, not yet called, each in its own store. Shared by the
/// clones of a policy (same component, same budgets); dropped with the last of them.
#[derive(Clone, Default)]
struct Ahead(Arc<Mutex<Vec<Ready>>>);

struct Ready {
    store: Store<GuardState>,
    guard: GuardPlugin,
}

impl Ahead {
    fn take(&self) -> Option<Ready> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    /// Keeps `ready` unless enough are kept already.
    fn put(&self, ready: Ready) {
        let mut kept = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if kept.len() < AHEAD {
            kept.push(ready);
        }
    }
}

impl Policy {
    pub fn applies_to(&self, tool: &str) -> bool {
        self.tools.as_ref().is_none_or(|tools| tools.iter().any(|t| t == tool))
    }
}

/// The engine's guard linker and the facts guards may read.
pub(crate) struct GuardRuntime {
    engine: Engine,
    compiler: Compiler,
    linker: Linker<GuardState>,
    facts: Arc<Facts>,
}

impl GuardRuntime {
    pub fn new(compiler: &Compiler, facts: Arc<Facts>) -> wasmtime::Result<GuardRuntime> {
        let engine = &compiler.engine;
        let mut linker = Linker::new(engine);
        bindings::GuardPlugin::add_to_linker::<GuardState, HasSelf<GuardState>>(
            &mut linker,
            |s| s,
        )?;
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        Ok(GuardRuntime { engine: engine.clone(), compiler: compiler.clone(), linker, facts })
    }

    /// Loads the policy at `path`, and asks it to describe itself.
    pub fn load(&self, path: &Path, name: &str, config: PolicyConfig) -> Result<Policy, LoadError> {
        let fail = |problem| LoadError { path: path.to_owned(), problem };
        let (bytes, component) = compile(&self.compiler, path, GUARD_WORLD)?;
        let mismatch = |e: wasmtime::Error| {
            fail(LoadProblem::Mismatch { world: GUARD_WORLD.name, reason: one_line(&e) })
        };
        let pre = GuardPluginPre::new(self.linker.instantiate_pre(&component).map_err(mismatch)?)
            .map_err(mismatch)?;
        let budgets = default_guard_budgets().with(&config.budgets);
        let mut store = new_store(&self.engine, &self.facts, name, &budgets);
        let info = pre
            .instantiate(&mut store)
            .and_then(|guard| guard.moat_plugin_guard().call_describe(&mut store));
        drain_output(&mut store);
        let info = info.map_err(|e| {
            let mut why = one_line(&e);
            if let Some(said) = store.data().log.last_problem() {
                why.push_str(&format!(" (it last logged: {said})"));
            }
            fail(LoadProblem::Describe(why))
        })?;
        Ok(Policy {
            name: name.to_owned(),
            path: path.to_owned(),
            hash: blake3::hash(&bytes),
            description: info.description,
            mode: config.mode,
            tools: config.tools,
            budgets,
            pre,
            ahead: Ahead::default(),
        })
    }

    /// Has an instance of `policy` made on the reaper thread, unless enough are ready (or
    /// the reaper is busy: then a check instantiates its own).
    fn prepare(&self, policy: &Policy) {
        if policy.ahead.len() >= AHEAD {
            return;
        }
        let (engine, facts) = (self.engine.clone(), self.facts.clone());
        let (pre, ahead) = (policy.pre.clone(), policy.ahead.clone());
        let (name, budgets) = (policy.name.clone(), policy.budgets);
        let _ = crate::runtime::reaper::later(move || {
            if ahead.len() >= AHEAD {
                return;
            }
            let mut store = new_store(&engine, &facts, &name, &budgets);
            // One that fails to instantiate is not kept: the check's own attempt says why.
            if let Ok(guard) = pre.instantiate(&mut store) {
                ahead.put(Ready { store, guard });
            }
        });
    }

    /// An instance of `policy` for one check, with its wall time starting now: one made
    /// ahead if there is one, else a new one.
    fn instance(&self, policy: &Policy) -> (Store<GuardState>, wasmtime::Result<GuardPlugin>) {
        let ready = policy.ahead.take();
        self.prepare(policy);
        match ready {
            Some(Ready { mut store, guard }) => {
                // Its fuel and memory are as instantiation left them, as for a new one.
                store.set_epoch_deadline(engine::ticks_for(policy.budgets.wall_time.duration()));
                store.data_mut().deadline =
                    std::time::Instant::now() + policy.budgets.wall_time.duration();
                (store, Ok(guard))
            }
            None => {
                let mut store = new_store(&self.engine, &self.facts, &policy.name, &policy.budgets);
                let guard = policy.pre.instantiate(&mut store);
                (store, guard)
            }
        }
    }

    /// Runs `policy`'s check at `point`; any failure is a deny saying what failed.
    pub fn check(&self, policy: &Policy, call_record: &wit::Call, point: &Point<'_>) -> Verdict {
        let (mut store, guard) = self.instance(policy);
        let answer = guard.and_then(|guard| {
            let guard = guard.moat_plugin_guard();
            match point {
                Point::Call => guard.call_check_call(&mut store, call_record),
                Point::Effect(effect) => {
                    guard.call_check_effect(&mut store, call_record, &effect_to_wit(effect))
                }
                Point::Result(output) => guard.call_check_result(&mut store, call_record, output),
            }
        });
        drain_output(&mut store);
        let verdict = match answer {
            Ok(wit::Verdict::Allow) => Verdict::Allow,
            Ok(wit::Verdict::Deny(reason)) => Verdict::Deny(reason),
            Ok(wit::Verdict::Escalate(reason)) => Verdict::Escalate(reason),
            Ok(wit::Verdict::Rewrite(text)) => match point {
                Point::Result(_) => match serde_json::from_str::<serde::de::IgnoredAny>(&text)
                    .map_err(|e| e.to_string())
                    .and_then(|_| crate::plugin::validate::check_depth(&text))
                {
                    Ok(()) => Verdict::Rewrite(text),
                    Err(e) => Verdict::Deny(format!(
                        "failed, so the call is denied: its rewrite at {} is not JSON ({e})",
                        point.at()
                    )),
                },
                _ => Verdict::Allow,
            },
            Err(error) => {
                let state = store.data();
                let mut why = match error.downcast_ref::<wasmtime::Trap>() {
                    Some(wasmtime::Trap::OutOfFuel) => {
                        format!("ran out of fuel (limit {})", policy.budgets.fuel)
                    }
                    Some(wasmtime::Trap::Interrupt) => {
                        format!("ran past its wall time (limit {})", policy.budgets.wall_time)
                    }
                    Some(trap) if state.limiter.refused_memory.is_some() => {
                        format!("ran out of memory (limit {}): {trap}", policy.budgets.memory)
                    }
                    Some(trap) => format!("trapped: {trap}"),
                    None => one_line(&error),
                };
                if let Some(said) = state.log.last_problem() {
                    why.push_str(&format!(" (it last logged: {said})"));
                }
                Verdict::Deny(format!("failed, so the call is denied: {why} at {}", point.at()))
            }
        };
        // The instance is freed off the call path.
        crate::runtime::reaper::drop_later(store);
        verdict
    }
}

/// A store for one check of the policy `name`, its budgets armed.
fn new_store(
    engine: &Engine,
    facts: &Arc<Facts>,
    name: &str,
    budgets: &Budgets,
) -> Store<GuardState> {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_HANDLES);
    let state = GuardState {
        limiter: Limiter::new(budgets),
        log: CallLog::new(Arc::from(name), "guard"),
        facts: facts.clone(),
        deadline: std::time::Instant::now() + budgets.wall_time.duration(),
        table,
        wasi: None,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    // Fuel metering is on for the engine, so setting fuel cannot fail.
    let _ = store.set_fuel(budgets.fuel);
    store.set_epoch_deadline(engine::ticks_for(budgets.wall_time.duration()));
    store.epoch_deadline_trap();
    store
}

fn kind_to_wit(kind: EffectKind) -> crate::capability::bindings::EffectKind {
    use crate::capability::bindings::EffectKind as K;
    match kind {
        EffectKind::Read => K::Read,
        EffectKind::Write => K::Write,
        EffectKind::Delete => K::Delete,
        EffectKind::Network => K::Network,
        EffectKind::Send => K::Send,
    }
}

/// The call as the `guard` interface carries it.
pub(crate) fn to_wit(call: &CallView) -> wit::Call {
    wit::Call {
        tool: call.tool.clone(),
        args: call.args.to_string(),
        task: call.task.clone(),
        session: call.session.clone(),
        confidence: call.confidence,
        reasoning: call.reasoning.clone(),
        effects: call.effects.iter().map(|k| kind_to_wit(*k)).collect(),
        history: call
            .history
            .iter()
            .map(|h| wit::HistoryEntry {
                tool: h.tool.clone(),
                effects: h.effects.iter().map(|k| kind_to_wit(*k)).collect(),
                targets: h.targets.clone(),
                ok: h.ok,
            })
            .collect(),
    }
}

fn effect_to_wit(effect: &Effect) -> wit::Effect {
    wit::Effect {
        kind: kind_to_wit(effect.kind),
        capability: effect.capability.to_owned(),
        target: effect.target.clone(),
        detail: effect.detail.to_string(),
    }
}

impl crate::capability::bindings::moat::plugin::types::Host for GuardState {}

/// Moves what a WASI guard wrote to standard output and error into its log.
fn drain_output(store: &mut Store<GuardState>) {
    let state = store.data_mut();
    Wasi::drain(&state.wasi, &mut state.log);
}
