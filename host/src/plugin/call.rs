//! Calling a plugin: through moat's `tool` interface, or a typed export converted from and to
//! JSON; each in a fresh store under the call's budgets (`runtime/exec.rs`).

use super::typed::{self, Typed};
use super::Prepared;
use crate::budget::Budgets;
use crate::call::Usage;
use crate::capability::bindings::{ToolError, ToolInfo, ToolPluginPre};
use crate::capability::CallCaps;
use crate::error::{CallError, ToolErrorKind};
use crate::runtime::exec::{in_fresh_store, within_budget, CallState};
use std::sync::Arc;
use wasmtime::Engine;

/// Runs `tool` with `args` (JSON text) on a fresh instance and reports what it consumed. The
/// call's capability state comes back with its staged effects, for the pipeline to commit
/// or roll back.
pub(crate) fn call(
    engine: &Engine,
    pre: &Prepared,
    plugin: &Arc<str>,
    caps: CallCaps,
    args: &str,
    budgets: &Budgets,
) -> (Result<String, CallError>, Usage, CallCaps) {
    match pre {
        Prepared::Moat(pre) => call_tool(engine, pre, plugin, caps, args, budgets),
        Prepared::Typed(typed) => call_typed(engine, typed, plugin, caps, args, budgets),
    }
}

/// A call through moat's `tool` interface.
fn call_tool(
    engine: &Engine,
    pre: &ToolPluginPre<CallState>,
    plugin: &Arc<str>,
    caps: CallCaps,
    args: &str,
    budgets: &Budgets,
) -> (Result<String, CallError>, Usage, CallCaps) {
    let tool = caps.tool.clone();
    let tool = tool.as_str();
    let (returned, usage, caps) = in_fresh_store(engine, plugin, caps, budgets, |store| {
        let instance = pre.instantiate(&mut *store)?;
        instance.moat_plugin_tool().call_call(store, tool, args)
    });
    let result = match returned {
        Ok(Ok(output)) => within_budget(tool, output, budgets, &usage),
        Ok(Err(error)) => Err(tool_error(tool, error)),
        Err(error) => Err(error),
    };
    (result, usage, caps)
}

/// A call of a typed export (`typed/`): the arguments converted to the function's parameters
/// first (nothing is instantiated for arguments that do not fit), then the function called on
/// a fresh instance under the same budgets, its results converted to JSON.
fn call_typed(
    engine: &Engine,
    typed: &Typed,
    plugin: &Arc<str>,
    caps: CallCaps,
    args: &str,
    budgets: &Budgets,
) -> (Result<String, CallError>, Usage, CallCaps) {
    let tool = caps.tool.clone();
    let tool = tool.as_str();
    let Some(function) = typed.function(tool) else {
        return (Err(CallError::UnknownTool(tool.to_owned())), Usage::default(), caps);
    };
    let params = match function.params(args) {
        Ok(params) => params,
        Err(invalid) => return (Err(typed::call_error(tool, invalid)), Usage::default(), caps),
    };
    let mut results = function.results();
    let (returned, usage, caps) = in_fresh_store(engine, plugin, caps, budgets, |store| {
        // What the host allocates for the results is bounded too: a value several times
        // larger than the output budget could not be returned anyway.
        let lifted = budgets.output.0.saturating_mul(RESULT_ALLOCATION_PER_OUTPUT_BYTE);
        store.set_hostcall_fuel(usize::try_from(lifted).unwrap_or(usize::MAX));
        let instance = typed.pre.instantiate(&mut *store)?;
        let func = instance
            .get_func(&mut *store, function.export)
            .ok_or_else(|| wasmtime::format_err!("its export `{tool}` is not a function"))?;
        func.call(store, &params, &mut results)
    });
    let result = returned.and_then(|()| {
        typed::output(tool, &results)
            .and_then(|output| within_budget(tool, output, budgets, &usage))
    });
    (result, usage, caps)
}

/// How many bytes the host may allocate for a typed export's results, per byte of output
/// budget (a component value takes some 30 bytes in the host, its JSON at least 2).
const RESULT_ALLOCATION_PER_OUTPUT_BYTE: u64 = 32;

/// Calls `describe()` on a fresh instance under `budgets`.
pub(crate) fn describe(
    engine: &Engine,
    pre: &ToolPluginPre<CallState>,
    plugin: &Arc<str>,
    budgets: &Budgets,
    caps: CallCaps,
) -> Result<Vec<ToolInfo>, CallError> {
    let (returned, _, _) = in_fresh_store(engine, plugin, caps, budgets, |store| {
        let instance = pre.instantiate(&mut *store)?;
        instance.moat_plugin_tool().call_describe(store)
    });
    returned
}

fn tool_error(tool: &str, error: ToolError) -> CallError {
    let (kind, message) = match error {
        ToolError::InvalidInput(m) => (ToolErrorKind::InvalidInput, m),
        ToolError::Failed(m) => (ToolErrorKind::Failed, m),
        ToolError::Denied(m) => (ToolErrorKind::Denied, m),
    };
    CallError::Tool { tool: tool.to_owned(), kind, message }
}
