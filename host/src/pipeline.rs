//! The call pipeline: every call goes through [`Host::call`], top to bottom.

use crate::budget::{BudgetOverrides, Usage};
use crate::config::Config;
use crate::error::{CallError, LoadError};
use crate::exec::{self, Runtime};
use crate::plugin::ToolSpec;
use crate::registry::Registry;

/// A running moat: the engine, the configuration and the loaded plugins.
pub struct Host {
    runtime: Runtime,
    config: Config,
    registry: Registry,
}

/// One call as a caller makes it.
#[derive(Clone, Debug, Default)]
pub struct CallRequest {
    pub tool: String,
    /// A JSON object, as text.
    pub args: String,
    /// Replaces budgets of this call only. The embedder decides who may set these: an agent
    /// must never be able to raise its own limits.
    pub budgets: BudgetOverrides,
}

impl CallRequest {
    pub fn new(tool: &str, args: &str) -> CallRequest {
        CallRequest {
            tool: tool.to_owned(),
            args: args.to_owned(),
            budgets: BudgetOverrides::default(),
        }
    }
}

/// A successful call: the tool's output (JSON text) and what the call consumed.
#[derive(Clone, Debug)]
pub struct CallResponse {
    pub output: String,
    pub usage: Usage,
}

impl Host {
    /// Starts a host: builds the engine and loads the tool directories of `config`. Files
    /// that cannot be loaded are returned beside the host; their tools are not offered.
    pub fn new(config: Config) -> wasmtime::Result<(Host, Vec<LoadError>)> {
        let runtime = Runtime::new()?;
        let (registry, errors) = Registry::load(&runtime, &config.plugins.tools, &config.budgets);
        Ok((Host { runtime, config, registry }, errors))
    }

    /// Every tool offered, by name.
    pub fn tools(&self) -> impl Iterator<Item = &ToolSpec> {
        self.registry.tools().map(|(_, tool)| tool)
    }

    /// The registry of loaded plugins.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Calls `tool` with `args` (a JSON object, as text) under the configured budgets.
    pub fn call(&self, tool: &str, args: &str) -> Result<CallResponse, CallError> {
        self.run(&CallRequest::new(tool, args))
    }

    /// Runs one call through the pipeline.
    pub fn run(&self, request: &CallRequest) -> Result<CallResponse, CallError> {
        let (tool, args) = (request.tool.as_str(), request.args.as_str());
        // 1. Admission: the tool exists.
        let (plugin, _spec) =
            self.registry.get(tool).ok_or_else(|| CallError::UnknownTool(tool.to_owned()))?;
        // 2. Input validation: the arguments are a JSON object.
        check_arguments(tool, args)?;
        // 3. Execution on a fresh instance under the tool's budgets.
        let budgets = self.config.budgets_for(tool).with(&request.budgets);
        let (result, mut usage) =
            exec::call(&self.runtime.engine, &plugin.pre, &plugin.name, tool, args, &budgets);
        let output = result?;
        // 4. Output: JSON, as the contract promises.
        check_output(tool, &output)?;
        usage.output_bytes = output.len() as u64;
        Ok(CallResponse { output, usage })
    }
}

fn check_arguments(tool: &str, args: &str) -> Result<(), CallError> {
    let invalid = |reason: String| CallError::InvalidArguments { tool: tool.to_owned(), reason };
    let value: serde_json::Value =
        serde_json::from_str(args).map_err(|e| invalid(format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(invalid(format!("expected a JSON object, got {}", json_kind(&value))));
    }
    Ok(())
}

fn check_output(tool: &str, output: &str) -> Result<(), CallError> {
    serde_json::from_str::<serde::de::IgnoredAny>(output)
        .map(|_| ())
        .map_err(|e| CallError::BadOutput { tool: tool.to_owned(), reason: e.to_string() })
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
