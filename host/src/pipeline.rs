//! The call pipeline: every call goes through [`Host::run`], top to bottom.

use crate::budget::{BudgetOverrides, Usage};
use crate::capability::kv::KvStore;
use crate::capability::secrets::{Revealed, SecretStore};
use crate::capability::{CallCaps, Grants, Shared};
use crate::config::Config;
use crate::effect::{AllowAll, Effect, Gate, Verdict};
use crate::error::{CallError, LoadError};
use crate::exec::{self, Runtime};
use crate::plugin::ToolSpec;
use crate::registry::Registry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// A running moat: the engine, the configuration and the loaded plugins.
pub struct Host {
    runtime: Runtime,
    config: Config,
    registry: Registry,
    /// Each configured tool's grants, shared by its calls.
    grants: HashMap<String, Arc<Grants>>,
}

/// One call as a caller makes it.
#[derive(Clone, Debug, Default)]
pub struct CallRequest {
    pub tool: String,
    /// A JSON object, as text.
    pub args: String,
    /// The task the call belongs to: per-task limits add up over its calls. Without one,
    /// the call is a task of its own.
    pub task: Option<String>,
    /// Replaces budgets of this call only. The embedder decides who may set these: an agent
    /// must never be able to raise its own limits.
    pub budgets: BudgetOverrides,
}

impl CallRequest {
    pub fn new(tool: &str, args: &str) -> CallRequest {
        CallRequest { tool: tool.to_owned(), args: args.to_owned(), ..CallRequest::default() }
    }
}

/// A successful call: the tool's output (JSON text), what the call consumed, and the
/// effects it had (now committed).
#[derive(Clone, Debug)]
pub struct CallResponse {
    pub output: String,
    pub usage: Usage,
    pub effects: Vec<Effect>,
}

impl Host {
    /// Starts a host without a gate: every effect and result is allowed past the built-in
    /// checks. See [`Host::with_gate`].
    pub fn new(config: Config) -> wasmtime::Result<(Host, Vec<LoadError>)> {
        Host::with_gate(config, Arc::new(AllowAll))
    }

    /// Starts a host whose effects and results are checked by `gate`: builds the engine and
    /// loads the tool directories of `config`. Files that cannot be loaded are returned
    /// beside the host; their tools are not offered.
    pub fn with_gate(
        config: Config,
        gate: Arc<dyn Gate>,
    ) -> wasmtime::Result<(Host, Vec<LoadError>)> {
        let shared = Shared::new(
            SecretStore::new(config.secrets.clone()),
            KvStore::new(config.state_dir.join("kv.sqlite")),
            gate,
        );
        let runtime = Runtime::new(shared)?;
        let (registry, errors) = Registry::load(&runtime, &config.plugins.tools, &config.budgets);
        let grants = config
            .tools
            .iter()
            .map(|(name, tool)| (name.clone(), Arc::new(tool.grants.clone())))
            .collect();
        Ok((Host { runtime, config, registry, grants }, errors))
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
        let (plugin, spec) =
            self.registry.get(tool).ok_or_else(|| CallError::UnknownTool(tool.to_owned()))?;
        // 2. Input validation: the arguments are a JSON object.
        check_arguments(tool, args)?;
        // 3. Execution on a fresh instance under the tool's budgets. Every effect is checked
        //    by the gate as it happens and staged, not yet final.
        let budgets = self.config.budgets_for(tool).with(&request.budgets);
        let deadline = Instant::now() + budgets.wall_time.duration();
        let grants = self.grants.get(tool).cloned().unwrap_or_default();
        let shared = self.runtime.shared.clone();
        let declared = spec.effects.clone();
        let task = request.task.as_deref();
        let caps =
            CallCaps::new(tool, plugin.name.clone(), task, grants, declared, shared, deadline);
        let engine = &self.runtime.engine;
        let (result, mut usage, mut caps) =
            exec::call(engine, &plugin.pre, &plugin.name, caps, args, &budgets);
        // 4. Output: JSON, as the contract promises, with revealed secrets redacted.
        let output = match result.and_then(|output| check_output(tool, &caps.secrets, output)) {
            Ok(output) => output,
            Err(error) => {
                let error = redact(error, &caps.secrets);
                return Err(roll_back(&mut caps, error));
            }
        };
        // 5. Post-call check: a "no" now still undoes every staged effect.
        if let Verdict::Deny(reason) = self.runtime.shared.gate.check_result(tool, &output) {
            return Err(roll_back(&mut caps, CallError::Denied { tool: tool.to_owned(), reason }));
        }
        // 6. Commit.
        if let Err(reason) = caps.commit() {
            let error = CallError::Host {
                tool: tool.to_owned(),
                reason: format!("commit failed: {reason}"),
            };
            return Err(roll_back(&mut caps, error));
        }
        usage.output_bytes = output.len() as u64;
        Ok(CallResponse { output, usage, effects: std::mem::take(&mut caps.effects) })
    }
}

/// Undoes the call's staged effects and returns `cause`, or says what could not be undone.
fn roll_back(caps: &mut CallCaps, cause: CallError) -> CallError {
    match caps.rollback() {
        Ok(()) => cause,
        Err(problems) => {
            tracing::error!(tool = %caps.tool, %problems, "rollback incomplete");
            CallError::RollbackFailed { cause: Box::new(cause), problems }
        }
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

fn check_output(tool: &str, secrets: &Revealed, output: String) -> Result<String, CallError> {
    serde_json::from_str::<serde::de::IgnoredAny>(&output)
        .map_err(|e| CallError::BadOutput { tool: tool.to_owned(), reason: e.to_string() })?;
    Ok(if secrets.is_empty() { output } else { secrets.redact(&output) })
}

/// Removes revealed secret values from the parts of an error a tool controls.
fn redact(error: CallError, secrets: &Revealed) -> CallError {
    if secrets.is_empty() {
        return error;
    }
    match error {
        CallError::Tool { tool, kind, message } => {
            CallError::Tool { tool, kind, message: secrets.redact(&message) }
        }
        CallError::Trapped { tool, reason } => {
            CallError::Trapped { tool, reason: secrets.redact(&reason) }
        }
        CallError::BadOutput { tool, reason } => {
            CallError::BadOutput { tool, reason: secrets.redact(&reason) }
        }
        other => other,
    }
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
