//! The call pipeline: every call goes through [`Host::run`], top to bottom.

use crate::audit::staged::Journal;
use crate::audit::{trail, Audit, AuditError, Event};
use crate::bounded;
use crate::call::{
    decide, CallRequest, CallResponse, CallView, Chain, CheckPoint, DenyAll, Escalator, Gate,
    Override, Usage, Verdict, WindowInfo,
};
use crate::capability::kv::KvStore;
use crate::capability::secrets::{Revealed, SecretStore};
use crate::capability::{CallCaps, Grants, Shared};
use crate::config::Config;
use crate::controls::{Controls, Passage};
use crate::error::{CallError, LoadError, Stage};
use crate::guard::facts::Facts;
use crate::guard::Policies;
use crate::metrics::{Metrics, Observed};
use crate::plugin::builtin::Builtin;
use crate::plugin::registry::{Found, Registry};
use crate::plugin::trust::Trust;
use crate::plugin::watch::{Stalled, WatchStats, Watched};
use crate::plugin::{call, validate, Plugin, ToolSpec};
use crate::runtime::compile_cache::{CompileCache, Compiler};
use crate::runtime::exec::Runtime;
use crate::session::Sessions;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How often the tool and policy directories are listed when they cannot be watched (they
/// are watched for changes otherwise: `plugin/watch.rs`).
pub const TOOLS_LOOK: Duration = crate::plugin::watch::POLL;

/// A running moat: the engine, the configuration, the loaded tools and policies.
pub struct Host {
    runtime: Runtime,
    config: Config,
    /// The tools in force; replaced whole when the tool directories change (a call keeps
    /// the version it started with).
    registry: RwLock<Arc<Registry>>,
    /// The tool directories, watched: when they change, the next call reloads them (one
    /// reload at a time).
    tools_seen: Watched,
    /// Bumped at each reload of the tools: MCP sessions tell their clients the list changed.
    tools_version: tokio::sync::watch::Sender<u64>,
    policies: Arc<Policies>,
    /// Each configured tool's grants, shared by its calls.
    grants: HashMap<String, Arc<Grants>>,
    /// Each session's recent calls, for `check-call`, and the tasks begun.
    sessions: Sessions,
    audit: Option<Arc<Audit>>,
    controls: Controls,
    metrics: Arc<Metrics>,
}

/// What a call consumed and revealed, for its audit records.
#[derive(Default)]
struct Spent {
    /// The call's id in the audit log (its `call` record's `seq`; 0 without a log).
    call: u64,
    usage: Usage,
    secrets: Revealed,
    passage: Passage,
}

/// Builds a [`Host`]: the configuration, plus optionally an extra gate (asked after the
/// policies) and the way to ask a person.
pub struct HostBuilder {
    config: Config,
    gate: Option<Arc<dyn Gate>>,
    escalator: Arc<dyn Escalator>,
}

impl HostBuilder {
    /// A gate asked after the policies, at every point.
    pub fn gate(mut self, gate: Arc<dyn Gate>) -> HostBuilder {
        self.gate = Some(gate);
        self
    }

    /// Who decides escalations (default: nobody, so they are denied).
    pub fn escalator(mut self, escalator: Arc<dyn Escalator>) -> HostBuilder {
        self.escalator = escalator;
        self
    }

    /// Builds the engine and loads the tools and policies. Files that cannot be loaded are
    /// returned beside the host; their tools and policies are not in force.
    pub fn build(self) -> wasmtime::Result<(Host, Vec<LoadError>)> {
        let config = self.config;
        let engine = crate::runtime::engine::new_engine(&config.engine, config.largest_table())?;
        let cache = config.compile_cache_dir().and_then(|dir| {
            let max_size = config.compile_cache.max_size.0;
            CompileCache::open(&dir, max_size).inspect_err(|e| tracing::warn!("{e}")).ok()
        });
        let trust = Trust::from_config(&config.plugins)?;
        let max_component_size = config.plugins.max_component_size.0;
        let admit: crate::runtime::compile_cache::Admit =
            Arc::new(move |path, bytes| trust.check(path, bytes));
        let compiler = Compiler::new(engine, cache, admit, max_component_size);
        let facts = Arc::new(Facts::new(config.facts.clone()));
        let source = crate::guard::PolicySource {
            dir: config.plugins.policies.clone(),
            required: config.plugins.policies_named,
            on_error: config.plugins.on_policy_error,
        };
        let (policies, mut errors) =
            Policies::load(&compiler, Some(source), config.policies.clone(), facts)?;
        let policies = Arc::new(policies);
        let mut gates: Vec<Arc<dyn Gate>> = vec![policies.clone()];
        gates.extend(self.gate);
        // Started before the components compile: it builds its tokenizer meanwhile.
        let controls = Controls::new(crate::controls::Settings {
            state_dir: config.state_dir.clone(),
            principal: config.limits.principal.clone(),
            breakers: config.breakers.clone(),
            loops: config.loops.clone(),
            task: config.task.clone(),
            alerts: config.alerts.clone(),
            alert_log: config.alert_log(),
            tokenizer: config.tokenizer,
            window: config.window.clone(),
        })?;
        let shared = Shared::new(
            SecretStore::new(config.secrets.clone()),
            KvStore::new(config.state_dir.join("kv.sqlite")),
            Arc::new(Chain(gates)),
            self.escalator,
            crate::capability::meters::TaskMeters::new(controls.state())?,
            controls.principals(),
        );
        let runtime = Runtime::new(compiler, shared)?;
        // Watched before the first load, so that no change after it goes unseen.
        let tools_seen = Watched::new("tool directories", config.plugins.tools.clone());
        let (registry, tool_errors) =
            Registry::load(&runtime, &config.plugins.tools, &config.budgets);
        errors.extend(tool_errors);
        let grants = config
            .tools
            .iter()
            .map(|(name, tool)| (name.clone(), Arc::new(tool.grants.clone())))
            .collect();
        let audit = match config.audit.enabled {
            true => {
                let dir = config.audit.dir(&config.state_dir);
                let keys = config.audit.key_files(&config.state_dir);
                Some(Arc::new(Audit::open(&dir, &keys, &config.audit)?))
            }
            false => None,
        };
        let metrics = Arc::new(Metrics::new());
        let host = Host {
            runtime,
            config,
            registry: RwLock::new(Arc::new(registry)),
            tools_seen,
            tools_version: tokio::sync::watch::Sender::new(0),
            policies,
            grants,
            sessions: Sessions::default(),
            audit,
            controls,
            metrics,
        };
        host.record_load_refusals(&errors);
        Ok((host, errors))
    }
}

impl Host {
    pub fn builder(config: Config) -> HostBuilder {
        HostBuilder { config, gate: None, escalator: Arc::new(DenyAll) }
    }

    /// A host with the configured policies and nobody to decide escalations.
    pub fn new(config: Config) -> wasmtime::Result<(Host, Vec<LoadError>)> {
        Host::builder(config).build()
    }

    /// A host whose effects and results are also checked by `gate`.
    pub fn with_gate(
        config: Config,
        gate: Arc<dyn Gate>,
    ) -> wasmtime::Result<(Host, Vec<LoadError>)> {
        Host::builder(config).gate(gate).build()
    }

    /// Every tool offered, by name.
    pub fn tools(&self) -> Vec<ToolSpec> {
        self.registry().tools().map(|(_, tool)| tool.clone()).collect()
    }

    /// The registry of loaded plugins, as it is now.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Reloads the tools if the watcher saw a tool directory change (a file added, replaced
    /// or removed) since the last reload and its listing did change. Nothing changed, this
    /// costs one atomic load, no directory is listed. A file that no longer loads keeps its
    /// previous version in force, and is logged. One reload at a time: while one runs,
    /// calls go on with the tools in force rather than wait for a compile. True if it
    /// reloaded.
    pub fn reload_tools_if_changed(&self) -> bool {
        let dirs = &self.config.plugins.tools;
        let reloaded = self.tools_seen.reload_if_changed(|| {
            let (registry, errors) =
                self.registry().reload(&self.runtime, dirs, &self.config.budgets);
            for error in &errors {
                tracing::error!(
                    "tool not (re)loaded, any previous version stays in force: {error}"
                );
            }
            self.record_load_refusals(&errors);
            *self.registry.write().unwrap_or_else(|poisoned| poisoned.into_inner()) =
                Arc::new(registry);
            self.tools_version.send_modify(|version| *version += 1);
            tracing::info!("the tools were reloaded");
        });
        reloaded.is_some()
    }

    /// Waits until the watchers of the tool and policy directories have taken in every
    /// change made to them before this call, at most `timeout` in all: the next call then
    /// reloads what changed. They take changes in by themselves within milliseconds (or
    /// [`TOOLS_LOOK`] where a directory is polled); this is for tests, and for whoever
    /// changes a directory and must know that the next call sees it. The error names the
    /// directories whose watcher did not answer in time.
    pub fn wait_for_watchers(&self, timeout: Duration) -> Result<(), Stalled> {
        let started = Instant::now();
        self.tools_seen.settle(timeout)?;
        self.policies.wait_for_watcher(timeout.saturating_sub(started.elapsed()))
    }

    /// What the watcher of the tool directories has done (for the policies directory:
    /// [`Policies::watch_stats`]).
    pub fn tools_watch_stats(&self) -> WatchStats {
        self.tools_seen.stats()
    }

    /// Records in the audit log (if it is on) the component files that were not loaded.
    fn record_load_refusals(&self, errors: &[LoadError]) {
        let Some(audit) = self.audit.as_ref().filter(|_| !errors.is_empty()) else { return };
        let events = crate::plugin::load_refused(errors, self.config.plugins.max_component_size.0);
        if let Err(error) = audit.record(events) {
            tracing::error!("the refusal to load a plugin could not be audited: {error}");
        }
    }

    /// Changes whenever the tools are reloaded.
    pub fn watch_tools(&self) -> tokio::sync::watch::Receiver<u64> {
        self.tools_version.subscribe()
    }

    /// The policies in force.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Calls `tool` with `args` (a JSON object, as text) under the configured budgets.
    pub fn call(&self, tool: &str, args: &str) -> Result<CallResponse, CallError> {
        self.run(&CallRequest::new(tool, args))
    }

    /// Runs one call through the pipeline, recorded in the audit log from end to end.
    pub fn run(&self, request: &CallRequest) -> Result<CallResponse, CallError> {
        self.run_with(request, None)
    }

    /// [`Host::run`], with the call's escalations decided by `escalator` instead of the
    /// host's (an MCP client that can ask its user, for a call it made).
    ///
    /// The pipeline, top to bottom: each numbered step is one line here and a module of its
    /// own. Steps 1 to 7 are [`Host::steps`]; any failure after the tool ran rolls back
    /// everything it staged.
    pub fn run_with(
        &self,
        request: &CallRequest,
        escalator: Option<Arc<dyn Escalator>>,
    ) -> Result<CallResponse, CallError> {
        let started = Instant::now();
        self.reload_tools_if_changed();
        let registry = self.registry();
        let found = registry.find(&request.tool);
        let call = Arc::new(self.view(request, found.map(Found::spec), escalator));
        let tool = Observed::tool_label(&call, found.is_some()).to_owned();
        let span = span(&tool, &call);
        let _entered = span.enter();
        // 0. The call is recorded before anything happens: a call the log cannot record does
        //    not run.
        let id = self.record_call(&call, found)?;
        span.record("gen_ai.tool.call.id", id);
        let mut spent = Spent { call: id, ..Spent::default() };
        // 1-7. The call itself: admitted, validated, checked, run, checked again, windowed
        //    and committed (or rolled back).
        let outcome = self.steps(request, &call, found, &mut spent);
        let outcome = outcome.map_err(|error| spent.secrets.redact_error(error));
        // 8. What the call teaches the task's ledger, the breakers and the loop detector.
        let redact = |text: &str| spent.secrets.redact(text);
        let controls =
            self.controls.after(id, &call, &outcome, &spent.passage, &spent.usage, &redact);
        let notes = call.peek_notes();
        let transitions: Vec<Event> =
            controls.iter().filter(|e| matches!(e, Event::Breaker { .. })).cloned().collect();
        // 9. Verdicts, escalations, effects (with how to undo them), breakers, alerts and
        //    the result, synced as `[audit] durability` says before the caller hears of it.
        let outcome = self.record_end(id, &call, outcome, &spent, controls);
        if let Err(error) = &outcome {
            span.record("error.type", error.kind());
        }
        // 10. The metrics.
        self.metrics.observe(&Observed {
            tool: &tool,
            outcome: &outcome,
            elapsed: started.elapsed(),
            fuel: spent.usage.fuel,
            tokens: spent.passage.tokens,
            notes: &notes,
            controls: &transitions,
        });
        outcome
    }

    /// The host's Prometheus metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Steps 1 to 7 of [`Host::run_with`].
    fn steps(
        &self,
        request: &CallRequest,
        call: &Arc<CallView>,
        found: Option<Found<'_>>,
        spent: &mut Spent,
    ) -> Result<CallResponse, CallError> {
        let tool = request.tool.as_str();
        // 1. Admission: the tool exists and this caller may call it; the task's budgets are
        //    not used up; the tool's breaker and the task's are closed (or this is a probe).
        let (plugin, spec) = match self.admit(request, call, found, spent)? {
            Found::Plugin(plugin, spec) => (plugin, spec),
            Found::Builtin(builtin) => return self.builtin(builtin, request, spent),
        };
        // 2. Input validation: the arguments against the tool's JSON Schema.
        spec.schema.check(tool, &request.args)?;
        // 3. Pre-call checks: loops, the confidence gate, then the policies (either of which
        //    may ask a person).
        if let Err(refusal) = self.before(call, spec, spent) {
            self.sessions.remember(call, &[], false);
            return Err(refusal);
        }
        // 4. Execution on a fresh instance under the tool's budgets. Every effect is checked
        //    by the policies as it happens, and staged, not yet final.
        let (result, usage, mut caps) = self.execute(request, call, plugin, spent);
        // 5-7. Output, post-call checks, window, commit; or everything rolled back.
        match self.settle(call, result, &mut caps, spent) {
            Ok((output, window)) => {
                self.sessions.remember(call, &caps.touched, true);
                let usage = Usage { output_bytes: output.len() as u64, ..usage };
                spent.usage = usage;
                let effects = std::mem::take(&mut caps.effects);
                Ok(CallResponse { output, usage, effects, shadow: call.take_shadow(), window })
            }
            Err(error) => {
                self.sessions.remember(call, &caps.touched, false);
                Err(caps.roll_back(error))
            }
        }
    }

    /// Step 1: the model's own tokens for this step counted against the task's budget
    /// first; the tool found and allowed to this caller; not cancelled; the task budgets
    /// and breakers.
    fn admit<'a>(
        &self,
        request: &CallRequest,
        call: &CallView,
        found: Option<Found<'a>>,
        spent: &mut Spent,
    ) -> Result<Found<'a>, CallError> {
        let tool = request.tool.as_str();
        if let Some(tokens) = request.model_tokens {
            self.controls.add_model_tokens(call, tokens)?;
        }
        let found = found.ok_or_else(|| CallError::UnknownTool(tool.to_owned()))?;
        let allowed = |tools: &Vec<String>| tools.iter().any(|t| t == tool);
        if matches!(found, Found::Plugin(..)) && !request.tools.as_ref().is_none_or(allowed) {
            let reason = format!("`{}` may not call it ([serve.tokens] tools)", call.principal);
            return Err(CallError::Denied {
                tool: tool.to_owned(),
                stage: Stage::BeforeCall,
                reason,
            });
        }
        if call.cancel.is_cancelled() && matches!(found, Found::Plugin(..)) {
            return Err(CallError::Cancelled { tool: tool.to_owned(), stage: Stage::BeforeCall });
        }
        self.controls.admit(call, &mut spent.passage)?;
        Ok(found)
    }

    /// A built-in tool's call, once admitted. Reading on in a windowed output: its whole
    /// passed every check when it was made.
    fn builtin(
        &self,
        builtin: Builtin,
        request: &CallRequest,
        spent: &mut Spent,
    ) -> Result<CallResponse, CallError> {
        let (output, window) = match builtin {
            Builtin::ReadMore => {
                let name = &builtin.spec().name;
                self.controls.read_more(name, &request.args, &mut spent.passage)?
            }
        };
        let usage = Usage { output_bytes: output.len() as u64, ..Usage::default() };
        Ok(CallResponse { output, usage, effects: Vec::new(), shadow: Vec::new(), window })
    }

    /// Step 3: the loop check, the confidence gate, `check-call`.
    fn before(&self, call: &CallView, spec: &ToolSpec, spent: &mut Spent) -> Result<(), CallError> {
        self.controls.check_loop(call, &mut spent.passage)?;
        let stakes = self.config.tools.get(&call.tool).and_then(|t| t.stakes);
        let stakes = stakes.unwrap_or_else(|| spec.derived_stakes());
        let verdict = crate::guard::confidence::verdict(&self.config.confidence, stakes, call)?;
        self.decide(call, CheckPoint::Confidence, verdict)?;
        let not_loaded = self.policies.reload_if_changed();
        self.record_load_refusals(&not_loaded);
        let verdict = self.runtime.shared.gate.check_call(call);
        self.decide(call, CheckPoint::Call, verdict).map(drop)
    }

    /// Step 4: the call's capabilities (its grants, its secrets loaded now and redacted from
    /// all it says, its journal), then the tool on a fresh instance.
    fn execute(
        &self,
        request: &CallRequest,
        call: &Arc<CallView>,
        plugin: &Plugin,
        spent: &mut Spent,
    ) -> (Result<String, CallError>, Usage, CallCaps) {
        let budgets = self.config.budgets_for(&request.tool).with(&request.budgets);
        let deadline = Instant::now() + budgets.wall_time.duration();
        let grants = self.grants.get(&request.tool).cloned().unwrap_or_default();
        let shared = self.runtime.shared.clone();
        let mut caps = CallCaps::new(call.clone(), plugin.name.clone(), grants, shared, deadline);
        caps.secrets = self.runtime.shared.secrets.for_call(&caps.grants.secrets);
        // Changes made in place are recorded, with their undo, before they happen.
        caps.journal = self.audit.clone().map(|audit| Arc::new(Journal::new(audit, spent.call)));
        let engine = &self.runtime.engine;
        let (result, usage, mut caps) =
            call::call(engine, &plugin.pre, &plugin.name, caps, &request.args, &budgets);
        spent.passage.ran = true;
        spent.usage = usage;
        spent.secrets = caps.secrets.clone();
        // An effect refused by a policy or a person ends the call so, whatever the tool made
        // of the refusal it was told of (mostly an error of its own).
        let result = match (result, caps.refusal.take()) {
            (Err(_), Some(refusal)) => Err(refusal.error(&call.tool, Stage::DuringCall)),
            (result, _) => result,
        };
        (result, usage, caps)
    }

    /// Steps 5 to 7, after the tool ran; any error here rolls back what it staged.
    fn settle(
        &self,
        call: &CallView,
        result: Result<String, CallError>,
        caps: &mut CallCaps,
        spent: &mut Spent,
    ) -> Result<(String, Option<WindowInfo>), CallError> {
        let tool = call.tool.as_str();
        let cancelled = |stage| CallError::Cancelled { tool: tool.to_owned(), stage };
        // Cancelled while it ran, however it ended: nothing it staged stands.
        if call.cancel.is_cancelled() {
            return Err(cancelled(Stage::DuringCall));
        }
        // 5. Output: JSON, as the contract promises, with every secret value redacted (errors
        //    are, when the call ends).
        let output = result?;
        validate::check_output(tool, &output)?;
        let output = caps.secrets.redact_output(output);
        // 6. Post-call checks: output validation, fact checks, redaction. A "no" now still
        //    undoes every staged effect. A rewrite is an output too: redacted again.
        let output = caps.secrets.redact_output(self.check_result(call, output)?);
        // 7. The output as the agent gets it (whole, or its first window and a cursor), then
        //    the commit, unless the call was cancelled meanwhile (its checks may have waited
        //    for a person). Windowing first: nothing can fail after the commit.
        let (output, window) = self.controls.window(tool, output, &mut spent.passage)?;
        if call.cancel.is_cancelled() {
            return Err(cancelled(Stage::AfterCall));
        }
        caps.commit().map_err(|reason| CallError::Host {
            tool: tool.to_owned(),
            reason: format!("commit failed: {reason}"),
        })?;
        Ok((output, window))
    }

    /// Records that a task began, with the prompt it was given. Calls of a task not begun
    /// this way begin it without a prompt.
    pub fn start_task(&self, task: &str, prompt: Option<&str>) -> Result<(), AuditError> {
        let task = &*bounded::name(task);
        self.sessions.started(task);
        let Some(audit) = &self.audit else { return Ok(()) };
        let prompt = prompt.map(|p| audit.text(p)).transpose()?;
        audit.record(vec![Event::TaskStart { task: task.to_owned(), prompt }]).map(|_| ())
    }

    /// Records that a task ended, with its final output as the caller reports it.
    pub fn end_task(&self, task: &str, output: Option<&str>) -> Result<(), AuditError> {
        let task = &*bounded::name(task);
        let Some(audit) = &self.audit else { return Ok(()) };
        let output = output.map(|o| audit.text(o)).transpose()?;
        audit.record(vec![Event::TaskEnd { task: task.to_owned(), output }]).map(|_| ())
    }

    /// The audit log, unless `[audit] enabled = false`.
    pub fn audit(&self) -> Option<&Audit> {
        self.audit.as_deref()
    }

    /// Writes the call's first record (after its task's, for a new task); returns its `seq`,
    /// the call's id in the log (0 without a log).
    fn record_call(&self, call: &CallView, found: Option<Found<'_>>) -> Result<u64, CallError> {
        let Some(audit) = &self.audit else { return Ok(0) };
        let refused = |e: AuditError| CallError::Audit {
            tool: call.tool.clone(),
            reason: format!("not run: the audit log cannot record it: {e}"),
        };
        let mut events = Vec::new();
        if self.sessions.started(&call.task) {
            events.push(Event::TaskStart { task: call.task.clone(), prompt: None });
        }
        let component = found.and_then(Found::plugin).map(|p| (p.name.as_ref(), p.hash));
        events.push(trail::call(audit, call, component).map_err(refused)?);
        audit.write(events).map_err(refused)
    }

    fn record_end(
        &self,
        id: u64,
        call: &CallView,
        outcome: Result<CallResponse, CallError>,
        spent: &Spent,
        controls: Vec<Event>,
    ) -> Result<CallResponse, CallError> {
        let Some(audit) = &self.audit else { return outcome };
        let ending = trail::Ending {
            outcome: &outcome,
            usage: &spent.usage,
            secrets: &spent.secrets,
            tokens: spent.passage.tokens,
        };
        let recorded = trail::end(audit, id, call, ending).and_then(|mut events| {
            events.extend(controls);
            audit.record(events)
        });
        match (recorded, outcome) {
            (Ok(_), outcome) => outcome,
            (Err(e), Ok(_)) => Err(CallError::Audit {
                tool: call.tool.clone(),
                reason: format!(
                    "ran and its effects were committed, but the audit log could not record it: {e}"
                ),
            }),
            (Err(e), Err(error)) => Err(CallError::Audit {
                tool: call.tool.clone(),
                reason: format!("{error}; and the audit log could not record it: {e}"),
            }),
        }
    }

    /// The call as checks see it, with its session's history. Names longer than
    /// [`bounded::MAX_NAME`] are keyed (and recorded) by their head and hash.
    fn view(
        &self,
        request: &CallRequest,
        spec: Option<&ToolSpec>,
        escalator: Option<Arc<dyn Escalator>>,
    ) -> CallView {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let task = match &request.task {
            Some(task) => bounded::name(task).into_owned(),
            None => {
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                format!("call-{}-{n}", std::process::id())
            }
        };
        let session = match &request.session {
            Some(session) => bounded::name(session).into_owned(),
            None => task.clone(),
        };
        let history = self.sessions.history(&session);
        CallView {
            tool: bounded::name(&request.tool).into_owned(),
            args: request.args.clone(),
            task,
            session,
            principal: request.principal.clone().unwrap_or_else(|| "local".to_owned()),
            cancel: request.cancel.clone().unwrap_or_default(),
            confidence: request.confidence,
            reasoning: request.reasoning.clone(),
            effects: spec.map(|spec| spec.effects.clone()).unwrap_or_default(),
            history,
            output_budget: Some(
                self.config.budgets_for(&request.tool).with(&request.budgets).output,
            ),
            shadow: Mutex::default(),
            notes: Mutex::default(),
            escalator: Override(escalator),
        }
    }

    /// `check-result` on the output; a rewrite held to the tool's output budget whichever
    /// gate rewrote it (policies already hold each rewrite to theirs as well, naming both).
    fn check_result(&self, call: &CallView, output: String) -> Result<String, CallError> {
        let verdict = self.runtime.shared.gate.check_result(call, &output);
        let Some(rewritten) = self.decide(call, CheckPoint::Result, verdict)? else {
            return Ok(output);
        };
        match crate::guard::oversized_rewrite(&rewritten, call.output_budget, None) {
            Some(reason) => {
                Err(CallError::Denied { tool: call.tool.clone(), stage: Stage::AfterCall, reason })
            }
            None => Ok(rewritten),
        }
    }

    /// [`decide`] on the host's escalator, a refusal as the call's error.
    fn decide(
        &self,
        call: &CallView,
        point: CheckPoint,
        verdict: Verdict,
    ) -> Result<Option<String>, CallError> {
        decide(verdict, point, call, self.runtime.shared.escalator.as_ref())
            .map_err(|refusal| refusal.error(&call.tool, point.stage()))
    }
}

/// The span of one call, named as OpenTelemetry's GenAI conventions name a tool's execution.
fn span(tool: &str, call: &CallView) -> tracing::Span {
    tracing::info_span!(
        "execute_tool",
        otel.name = %format_args!("execute_tool {tool}"),
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = %tool,
        gen_ai.tool.call.id = tracing::field::Empty,
        moat.task = %call.task,
        error.r#type = tracing::field::Empty,
    )
}
