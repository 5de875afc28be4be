//! Execution: one call on a fresh instance in a fresh store, under hard budgets, with every
//! way it can end mapped to a typed result.

use crate::bindings::moat::plugin::log::Level;
use crate::bindings::ToolError;
use crate::bindings::{ToolInfo, ToolPluginPre};
use crate::budget::{BudgetKind, Budgets, Limiter, Usage};
use crate::capability::log::CallLog;
use crate::capability::{CallCaps, Shared, MAX_HANDLES};
use crate::engine::{self, MAX_WASM_STACK};
use crate::error::{one_line, BudgetExceeded, CallError, ToolErrorKind};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// The engine, the linker with every host interface, and the state capabilities share
/// across calls: built once per host.
pub(crate) struct Runtime {
    pub engine: Engine,
    pub linker: Linker<CallState>,
    pub shared: Arc<Shared>,
}

impl Runtime {
    pub fn new(engine: Engine, shared: Shared) -> wasmtime::Result<Runtime> {
        let mut linker = Linker::new(&engine);
        crate::capability::add_to_linker(&mut linker)?;
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        Ok(Runtime { engine, linker, shared: Arc::new(shared) })
    }
}

/// The most a call's WASI standard output or error holds; past it, writes trap.
const WASI_OUTPUT: usize = 64 * 1024;

/// The WASI context of one call: nothing preopened, no network (every socket address is
/// refused, no name lookups), an empty environment and no arguments, standard input empty,
/// standard output and error captured (then written to the call's log). Clocks and
/// randomness work.
/// Made at the first WASI use: a Rust tool, which imports none, never pays for one.
pub(crate) struct Wasi {
    ctx: WasiCtx,
    /// What the guest wrote to standard output and error.
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

fn wasi_context() -> Wasi {
    let stdout = MemoryOutputPipe::new(WASI_OUTPUT);
    let stderr = MemoryOutputPipe::new(WASI_OUTPUT);
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_ip_name_lookup(false)
        .allow_tcp(false)
        .allow_udp(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    Wasi { ctx: builder.build(), stdout, stderr }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let wasi = self.wasi.get_or_insert_with(wasi_context);
        WasiCtxView { ctx: &mut wasi.ctx, table: &mut self.table }
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
    /// WASI, restricted (see [`wasi_context`]), for components of other languages; made at
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
    let log = CallLog::new(plugin.clone(), &caps.tool);
    let state = CallState { limiter: Limiter::new(budgets), log, table, caps, wasi: None };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    // Fuel metering is on for the engine, so setting fuel cannot fail.
    let _ = store.set_fuel(budgets.fuel);
    // The wall clock of a call does not run while it waits for a person: at the deadline,
    // the time spent waiting is given back before deciding to interrupt.
    let budget = budgets.wall_time.duration();
    let started = Instant::now();
    store.set_epoch_deadline(engine::ticks_for(budget));
    store.epoch_deadline_callback(move |store| {
        let used = started.elapsed().saturating_sub(store.data().caps.waited);
        match budget.checked_sub(used) {
            Some(left) if !left.is_zero() => Ok(UpdateDeadline::Continue(engine::ticks_for(left))),
            _ => Ok(UpdateDeadline::Interrupt),
        }
    });
    store
}

/// Runs `tool` with `args` (JSON text) on a fresh instance and reports what it consumed. The
/// call's capability state comes back with its staged effects, for the pipeline to commit
/// or roll back.
pub(crate) fn call(
    engine: &Engine,
    pre: &ToolPluginPre<CallState>,
    plugin: &Arc<str>,
    caps: CallCaps,
    args: &str,
    budgets: &Budgets,
) -> (Result<String, CallError>, Usage, CallCaps) {
    let started = Instant::now();
    let tool = caps.tool.clone();
    let tool = tool.as_str();
    let mut store = new_store(engine, budgets, plugin, caps);
    let returned = pre
        .instantiate(&mut store)
        .and_then(|instance| instance.moat_plugin_tool().call_call(&mut store, tool, args));
    drain_output(&mut store);
    let usage = usage_of(&store, budgets, started);
    let result = match returned {
        Ok(Ok(output)) => check_output(tool, output, budgets, &usage),
        Ok(Err(error)) => Err(tool_error(tool, error)),
        Err(error) => Err(classify(tool, &error, &store, budgets, &usage)),
    };
    (result, usage, store.into_data().caps)
}

/// Calls `describe()` on a fresh instance under `budgets`.
pub(crate) fn describe(
    engine: &Engine,
    pre: &ToolPluginPre<CallState>,
    plugin: &Arc<str>,
    budgets: &Budgets,
    caps: CallCaps,
) -> Result<Vec<ToolInfo>, CallError> {
    let started = Instant::now();
    let mut store = new_store(engine, budgets, plugin, caps);
    let returned = pre
        .instantiate(&mut store)
        .and_then(|instance| instance.moat_plugin_tool().call_describe(&mut store));
    drain_output(&mut store);
    let usage = usage_of(&store, budgets, started);
    returned.map_err(|error| classify("describe", &error, &store, budgets, &usage))
}

/// Moves what the guest wrote to WASI's standard output (as info) and standard error (as
/// warnings: a Python traceback is quoted if the call traps) into the call's log, a line
/// each.
fn drain_output(store: &mut Store<CallState>) {
    let state = store.data_mut();
    let Some(wasi) = &state.wasi else { return };
    let streams = [(wasi.stdout.contents(), Level::Info), (wasi.stderr.contents(), Level::Warn)];
    for (bytes, level) in streams {
        let text = String::from_utf8_lossy(&bytes);
        // The guest runtime's advice about backtraces is noise here.
        let lines =
            text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("note: run with"));
        for line in lines {
            state.log.record(level, line.to_owned());
        }
    }
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

fn check_output(
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

fn tool_error(tool: &str, error: ToolError) -> CallError {
    let (kind, message) = match error {
        ToolError::InvalidInput(m) => (ToolErrorKind::InvalidInput, m),
        ToolError::Failed(m) => (ToolErrorKind::Failed, m),
        ToolError::Denied(m) => (ToolErrorKind::Denied, m),
    };
    CallError::Tool { tool: tool.to_owned(), kind, message }
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
        None => one_line(error),
    };
    if let Some(said) = state.log.last_problem() {
        reason.push_str(&format!(" (the plugin last logged: {said})"));
    }
    CallError::Trapped { tool: tool.to_owned(), reason }
}
