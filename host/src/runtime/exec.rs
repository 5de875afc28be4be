//! Execution: one call on a fresh instance in a fresh store, under hard budgets, with every
//! way it can end mapped to a typed result.

use crate::budget::Budgets;
use crate::call::Usage;
use crate::capability::log::CallLog;
use crate::capability::wasi::Wasi;
use crate::capability::{CallCaps, Shared, MAX_HANDLES};
use crate::error::BudgetKind;
use crate::error::{one_line, BudgetExceeded, CallError};
use crate::runtime::compile_cache::Compiler;
use crate::runtime::engine::{self, MAX_WASM_STACK};
use crate::runtime::limiter::Limiter;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtxView, WasiView};

/// The engine, the linker with every host interface, and the state capabilities share
/// across calls: built once per host.
pub(crate) struct Runtime {
    pub engine: Engine,
    /// The engine again, with the compile cache.
    pub compiler: Compiler,
    pub linker: Linker<CallState>,
    pub shared: Arc<Shared>,
}

impl Runtime {
    pub fn new(compiler: Compiler, shared: Shared) -> wasmtime::Result<Runtime> {
        let engine = compiler.engine.clone();
        let mut linker = Linker::new(&engine);
        crate::capability::add_to_linker::<CallState>(&mut linker)?;
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        Ok(Runtime { engine, compiler, linker, shared: Arc::new(shared) })
    }
}

impl crate::capability::HasCaps for CallState {
    fn caps(&mut self) -> crate::capability::CapsView<'_> {
        crate::capability::CapsView {
            caps: &mut self.caps,
            table: &mut self.table,
            log: &mut self.log,
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        Wasi::view(&mut self.wasi, &mut self.table)
    }
}

/// The data of one call's store.
pub(crate) struct CallState {
    pub limiter: Limiter,
    pub log: CallLog,
    /// Handles (resources) the guest holds, with a capacity limit.
    pub table: ResourceTable,
    /// What the call may do and what it has staged.
    pub caps: CallCaps,
    /// WASI, restricted (see [`Wasi`]), for components of other languages; made at
    /// the first use.
    pub wasi: Option<Wasi>,
}

/// A store for one call from `plugin`, with the budgets armed.
fn new_store(
    engine: &Engine,
    budgets: &Budgets,
    plugin: &Arc<str>,
    caps: CallCaps,
) -> Store<CallState> {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_HANDLES);
    let log = CallLog::new(plugin.clone(), &caps.tool).redacting(caps.secrets.clone());
    let state = CallState { limiter: Limiter::new(budgets), log, table, caps, wasi: None };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    // Fuel metering is on for the engine, so setting fuel cannot fail.
    let _ = store.set_fuel(budgets.fuel);
    // The wall clock of a call does not run while it waits for a person: at the deadline,
    // the time spent waiting is given back before deciding to interrupt.
    // It also looks, at least every `cancel::CHECK_EVERY`, whether the call was cancelled.
    let budget = budgets.wall_time.duration();
    let started = Instant::now();
    let check = engine::ticks_for(crate::cancel::CHECK_EVERY);
    store.set_epoch_deadline(engine::ticks_for(budget).min(check));
    store.epoch_deadline_callback(move |store| {
        if store.data().caps.call.cancel.is_cancelled() {
            return Ok(UpdateDeadline::Interrupt);
        }
        let used = started.elapsed().saturating_sub(store.data().caps.waited);
        match budget.checked_sub(used) {
            Some(left) if !left.is_zero() => {
                Ok(UpdateDeadline::Continue(engine::ticks_for(left).min(check)))
            }
            _ => Ok(UpdateDeadline::Interrupt),
        }
    });
    store
}

/// Runs `body` (instantiate, then call) in a fresh store for one call of `caps.tool`, under
/// `budgets`: what the guest printed goes to the call's log, a trap becomes the budget or
/// failure behind it, and the usage and capability state come back.
pub(crate) fn in_fresh_store<T>(
    engine: &Engine,
    plugin: &Arc<str>,
    caps: CallCaps,
    budgets: &Budgets,
    body: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<T>,
) -> (Result<T, CallError>, Usage, CallCaps) {
    let started = Instant::now();
    let tool = caps.tool.clone();
    let mut store = new_store(engine, budgets, plugin, caps);
    let returned = body(&mut store);
    drain_output(&mut store);
    let usage = usage_of(&store, budgets, started);
    let returned = returned.map_err(|error| classify(&tool, &error, &store, budgets, &usage));
    // The call's state comes back now (its handles and WASI dropped here); the instance is
    // freed off the call path.
    let state = store.data_mut();
    let emptied = state.caps.emptied();
    let caps = std::mem::replace(&mut state.caps, emptied);
    drop(std::mem::take(&mut state.table));
    drop(state.wasi.take());
    crate::runtime::reaper::drop_later(store);
    (returned, usage, caps)
}

/// Moves what the guest wrote to WASI's standard output and error into the call's log.
fn drain_output(store: &mut Store<CallState>) {
    let state = store.data_mut();
    Wasi::drain(&state.wasi, &mut state.log);
}

/// What the call used; its wall time leaves out the time spent waiting for a person.
fn usage_of(store: &Store<CallState>, budgets: &Budgets, started: Instant) -> Usage {
    Usage {
        fuel: budgets.fuel.saturating_sub(store.get_fuel().unwrap_or(0)),
        peak_memory: store.data().limiter.peak_memory(),
        wall_time: started.elapsed().saturating_sub(store.data().caps.waited),
        output_bytes: 0,
    }
}

pub(crate) fn within_budget(
    tool: &str,
    output: String,
    budgets: &Budgets,
    usage: &Usage,
) -> Result<String, CallError> {
    let exceeded = |budget, limit: u64, used: u64| {
        CallError::Budget(BudgetExceeded { tool: tool.to_owned(), budget, limit, used })
    };
    if output.len() as u64 > budgets.output.0 {
        return Err(exceeded(BudgetKind::Output, budgets.output.0, output.len() as u64));
    }
    // Time spent in host functions is not interrupted by the epoch; a late result is still late.
    let elapsed = usage.wall_time.as_millis() as u64;
    if elapsed > budgets.wall_time.0 {
        return Err(exceeded(BudgetKind::WallTime, budgets.wall_time.0, elapsed));
    }
    Ok(output)
}

/// Names the budget behind a trap, or reports the trap with the plugin's last complaint.
fn classify(
    tool: &str,
    error: &wasmtime::Error,
    store: &Store<CallState>,
    budgets: &Budgets,
    usage: &Usage,
) -> CallError {
    let exceeded = |budget, limit: u64, used: u64| {
        CallError::Budget(BudgetExceeded { tool: tool.to_owned(), budget, limit, used })
    };
    let state = store.data();
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => return exceeded(BudgetKind::Fuel, budgets.fuel, usage.fuel),
        Some(Trap::Interrupt) => {
            let elapsed = usage.wall_time.as_millis() as u64;
            return exceeded(BudgetKind::WallTime, budgets.wall_time.0, elapsed);
        }
        Some(Trap::StackOverflow) => {
            let limit = MAX_WASM_STACK as u64;
            return exceeded(BudgetKind::Stack, limit, limit);
        }
        _ => {}
    }
    if let Some(asked) = state.limiter.refused_memory {
        return exceeded(BudgetKind::Memory, budgets.memory.0, asked);
    }
    if let Some(asked) = state.limiter.refused_table {
        return exceeded(BudgetKind::Table, u64::from(budgets.table_elements), asked);
    }
    // A trap's own message is the useful part; wasmtime's backtrace context is noise here.
    let mut reason = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        // A fault the component model caught (a forged handle, say): what it says.
        None if error.downcast_ref::<wasmtime::WasmBacktrace>().is_some() => {
            one_line(error.root_cause())
        }
        None => one_line(error),
    };
    if let Some(said) = state.log.last_problem() {
        reason.push_str(&format!(" (the plugin last logged: {said})"));
    }
    CallError::Trapped { tool: tool.to_owned(), reason }
}
