//! The reliability controls around each call, as the pipeline uses them: task budgets and
//! circuit breakers at admission, loop detection before the call, output windows and token
//! counting after it, and afterwards what the call teaches the breakers, the loop detector
//! and the task's ledger, with alerts for a person when one of them stops something.

pub mod alert;
pub mod breaker;
pub mod calibrate;
pub mod loops;
pub mod principal;
pub mod task_budget;
pub mod tokens;
pub mod window;

use crate::audit::Event;
use crate::bounded::Bounded;
use crate::call::CallResponse;
use crate::call::CallView;
use crate::call::WindowInfo;
use crate::controls::alert::{Alert, AlertKind, Alerts};
use crate::controls::breaker::{Admitted, Breakers};
use crate::controls::loops::{Loops, Ticket};
use crate::controls::principal::{Meter, Over, PrincipalMeters};
use crate::controls::task_budget::{TaskBudgetError, TaskLedger};
use crate::controls::tokens::Tokenizer;
use crate::controls::tokens::TokenizerKind;
use crate::controls::window::WindowConfig;
use crate::controls::window::{Window, Windows};
use crate::error::{CallError, ToolErrorKind};
use crate::state::StateDb;
use std::sync::{Arc, Mutex};

/// Tasks whose used-up budgets are remembered as told; past this, the least recent go (and
/// would be told again).
const TOLD: usize = 10_000;

/// What the controls are configured with: their sections of the configuration, which the
/// builder hands them.
pub(crate) struct Settings {
    /// Where the state database lives.
    pub state_dir: std::path::PathBuf,
    pub principal: crate::controls::principal::PrincipalLimits,
    pub breakers: crate::controls::breaker::BreakerConfig,
    pub loops: crate::controls::loops::LoopConfig,
    pub task: crate::controls::task_budget::TaskBudgets,
    pub alerts: crate::controls::alert::AlertConfig,
    /// The alert log's file.
    pub alert_log: std::path::PathBuf,
    pub tokenizer: TokenizerKind,
    pub window: WindowConfig,
}

pub(crate) struct Controls {
    state: Arc<StateDb>,
    /// Each principal's windows (calls, tokens; the capabilities' magnitudes go through
    /// `CallCaps::charge`).
    principals: Arc<PrincipalMeters>,
    breakers: Breakers,
    loops: Loops,
    ledger: TaskLedger,
    alerts: Alerts,
    /// Built with the host (the tokenizer's tables are static: nothing is left for the
    /// first call to build).
    windows: Windows,
    /// Tasks whose used-up budgets a person was told of (once each).
    told: Mutex<Bounded<(String, &'static str), ()>>,
}

/// What the controls learned while the call went through the pipeline.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Passage {
    /// The call passed the breakers (and may be one of their probes).
    pub admitted: Option<Admitted>,
    /// The call passed the loop check, and was counted there as made.
    pub loop_ticket: Option<Ticket>,
    /// The tool ran.
    pub ran: bool,
    /// Tokens of the output the caller was given.
    pub tokens: u64,
}

impl Controls {
    pub fn new(settings: Settings) -> wasmtime::Result<Controls> {
        let Settings {
            state_dir,
            principal,
            breakers,
            loops,
            task,
            alerts,
            alert_log,
            tokenizer,
            window,
        } = settings;
        let state = Arc::new(StateDb::open(&state_dir)?);
        Ok(Controls {
            principals: Arc::new(PrincipalMeters::new(state.clone(), principal)?),
            state: state.clone(),
            breakers: Breakers::new(state.clone(), breakers)?,
            loops: Loops::new(state.clone(), loops)?,
            ledger: TaskLedger::new(state, task)?,
            alerts: Alerts::new(alerts, alert_log)?,
            windows: Windows::new(window, Tokenizer::new(tokenizer)),
            told: Mutex::new(Bounded::new(TOLD)),
        })
    }

    /// The state database the controls (and the task meters) keep their state in.
    pub fn state(&self) -> Arc<StateDb> {
        self.state.clone()
    }

    /// The principals' windows, shared with the capabilities.
    pub fn principals(&self) -> Arc<PrincipalMeters> {
        self.principals.clone()
    }

    /// Admission: the task's budgets are not used up, and neither the tool's breaker nor the
    /// task's is open (or this call is one of their probes).
    pub fn admit(&self, call: &CallView, passage: &mut Passage) -> Result<(), CallError> {
        let tool = &call.tool;
        if let Err(error) = self.ledger.admit(&call.task) {
            return Err(task_budget(tool, error));
        }
        // The caller's windows, whatever the task: its tokens not used up, and this call
        // counted at once (so that calls at once cannot all pass the last one).
        let principal = |meter: Meter, over: Over| CallError::PrincipalLimit {
            tool: tool.clone(),
            principal: call.principal.clone(),
            meter: meter.name(),
            scope: over.scope,
            limit: over.limit,
            used: over.used,
        };
        let principals = &self.principals;
        principals
            .check(&call.principal, Meter::Tokens, 0, 1)
            .map_err(|o| principal(Meter::Tokens, o))?;
        match principals.take(&call.principal, Meter::Calls, 1) {
            Ok(Ok(())) => {}
            Ok(Err(over)) => return Err(principal(Meter::Calls, over)),
            Err(e) => return Err(host_error(tool, e)),
        }
        let admitted = self.breakers.admit(tool, &call.task).map_err(|e| host_error(tool, e))?;
        passage.admitted = Some(admitted.map_err(CallError::Breaker)?);
        Ok(())
    }

    /// Refuses a call that repeats itself past a limit, in its session or among its
    /// principal's recent calls (whatever session labels the agent gave them); else counts
    /// it as made, in the same step (calls at once cannot all pass the last one).
    pub fn check_loop(&self, call: &CallView, passage: &mut Passage) -> Result<(), CallError> {
        let key = loops::Key::new(&call.tool, &call.args);
        match self.loops.admit(&call.session, &call.principal, &call.tool, key) {
            Ok(ticket) => {
                passage.loop_ticket = ticket;
                Ok(())
            }
            Err(loops::Refused::Loop(reason)) => {
                Err(CallError::Loop { tool: call.tool.clone(), reason })
            }
            Err(loops::Refused::State(e)) => Err(host_error(&call.tool, e)),
        }
    }

    /// The output as the caller gets it: whole when it fits the token window, else its
    /// first window and a cursor. Counts its tokens.
    pub fn window(
        &self,
        tool: &str,
        output: String,
        passage: &mut Passage,
    ) -> Result<(String, Option<WindowInfo>), CallError> {
        let window = self.windows.first(tool, output);
        Ok(framed(window, passage))
    }

    /// The next window of an output, for the built-in `read_more` tool (`tool`, as the
    /// error names it).
    pub fn read_more(
        &self,
        tool: &str,
        args: &str,
        passage: &mut Passage,
    ) -> Result<(String, Option<WindowInfo>), CallError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Args {
            cursor: String,
        }
        let invalid =
            |reason: String| CallError::InvalidArguments { tool: tool.to_owned(), reason };
        let args: Args = serde_json::from_str(args)
            .map_err(|e| invalid(format!("{e}; expected {{\"cursor\": \"...\"}}")))?;
        let window = self.windows.next(&args.cursor).map_err(|e| invalid(e.to_string()))?;
        Ok(framed(window, passage))
    }

    /// What the call teaches the ledger, the breakers and the loop detector; returns the
    /// audit records of what they did (breakers that changed, a loop, a task budget used up,
    /// alerts raised).
    pub fn after(
        &self,
        id: u64,
        call: &CallView,
        outcome: &Result<CallResponse, CallError>,
        passage: &Passage,
        usage: &crate::call::Usage,
        redact: &dyn Fn(&str) -> String,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        // A call that ran, or a window read on, is charged (a refused call is not).
        if passage.admitted.is_some() || passage.tokens > 0 {
            if let Err(e) = self.principals.add(&call.principal, Meter::Tokens, passage.tokens) {
                tracing::error!("principal `{}`: tokens not counted: {e}", call.principal);
            }
            let charged =
                self.ledger.charge(&call.task, usage.fuel, usage.wall_time, passage.tokens);
            match charged {
                Err(TaskBudgetError::Exceeded { budget, limit, used, .. }) => {
                    events.extend(self.used_up(call, budget, &limit, &used));
                }
                Err(e) => tracing::error!("task ledger: {e}"),
                Ok(_) => {}
            }
        }
        if let Err(CallError::TaskBudget { budget, limit, used, .. }) = outcome {
            events.extend(self.used_up(call, budget, limit, used));
        }
        if let Err(CallError::Loop { tool, reason }) = outcome {
            let (session, tool) = (call.session.clone(), tool.clone());
            events.push(Event::Loop { call: id, session, tool, reason: reason.clone() });
            let message = format!("session {}: {reason}", call.session);
            let alert = Alert::new(AlertKind::LoopDetected, message).with_tool(&call.tool);
            events.push(self.raise(alert.with_task(&call.task).with_session(&call.session)));
        }
        // Only a call the loop check counted is recorded there (one it refused was not made).
        if let Some(ticket) = passage.loop_ticket {
            let error = outcome.as_ref().err().map(|e| redact(&e.to_string()));
            if let Err(e) = self.loops.record(ticket, &call.session, error.as_deref()) {
                tracing::error!("loop detection: outcome not recorded: {e}");
            }
        }
        let Some(admitted) = passage.admitted else { return events };
        let hash = outcome.as_ref().ok().map(|r| blake3::hash(r.output.as_bytes()).to_hex());
        let result = breaker::Outcome {
            ran: passage.ran,
            tool_failed: outcome.as_ref().err().is_some_and(tool_to_blame),
            failed: outcome.is_err(),
            output: hash.as_ref().map(|h| h.as_str()),
        };
        let transitions = match self.breakers.record(&call.tool, &call.task, admitted, result) {
            Ok(transitions) => transitions,
            Err(e) => {
                tracing::error!("breakers: {e}");
                Vec::new()
            }
        };
        for t in transitions {
            if t.to == breaker::Position::Open {
                let (kind, what) = match t.scope {
                    breaker::Scope::Tool => (AlertKind::BreakerOpen, "tool"),
                    breaker::Scope::Task => (AlertKind::TaskStopped, "task"),
                };
                let message = format!("{what} `{}`: circuit breaker opened: {}", t.name, t.reason);
                let alert = Alert::new(kind, message).with_tool(&call.tool).with_task(&call.task);
                events.push(self.raise(alert));
            }
            events.push(Event::Breaker {
                scope: t.scope.name().to_owned(),
                name: t.name,
                from: t.from.name().to_owned(),
                to: t.to.name().to_owned(),
                reason: t.reason,
            });
        }
        events
    }

    /// Tells a person, once per task and budget, that the task used it up.
    fn used_up(
        &self,
        call: &CallView,
        budget: &'static str,
        limit: &str,
        used: &str,
    ) -> Option<Event> {
        let mut told = self.told.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !told.insert_new(&(call.task.clone(), budget), ()) {
            return None;
        }
        let message = format!(
            "task `{}` used up its {budget} budget (limit {limit}, used {used}); its calls are \
             refused",
            call.task
        );
        let alert = Alert::new(AlertKind::BudgetExhausted, message);
        Some(self.raise(alert.with_tool(&call.tool).with_task(&call.task)))
    }

    /// Adds the model tokens a caller reports to the task's ledger; an exhausted budget
    /// refuses the task's next call.
    pub fn add_model_tokens(&self, call: &CallView, tokens: u64) -> Result<(), CallError> {
        if let Err(e) = self.principals.add(&call.principal, Meter::Tokens, tokens) {
            return Err(host_error(&call.tool, e));
        }
        match self.ledger.add_model_tokens(&call.task, tokens) {
            Ok(_) => Ok(()),
            Err(error) => Err(task_budget("", error)),
        }
    }

    /// Tells a person (stderr, the alert log, the webhook; never blocking) and returns the
    /// audit record of it.
    fn raise(&self, alert: Alert) -> Event {
        let event = Event::Alert {
            kind: alert.kind.name().to_owned(),
            tool: alert.tool.clone(),
            task: alert.task.clone(),
            message: alert.message.clone(),
        };
        self.alerts.raise(alert);
        event
    }
}

/// The window's text and where it stands; `None` when the output came whole.
fn framed(window: Window, passage: &mut Passage) -> (String, Option<WindowInfo>) {
    passage.tokens = window.window_tokens;
    let whole = window.offset == 0 && window.text.len() as u64 == window.total_bytes;
    let info = (!whole).then(|| WindowInfo {
        cursor: window.cursor.clone(),
        offset: window.offset,
        total_bytes: window.total_bytes,
        total_tokens: window.total_tokens,
        tokens: window.window_tokens,
    });
    (window.text, info)
}

fn task_budget(tool: &str, error: TaskBudgetError) -> CallError {
    match error {
        TaskBudgetError::Exceeded { task, budget, limit, used } => {
            CallError::TaskBudget { task, budget, limit, used }
        }
        TaskBudgetError::State(e) => host_error(tool, e),
    }
}

fn host_error(tool: &str, error: impl std::fmt::Display) -> CallError {
    CallError::Host { tool: tool.to_owned(), reason: error.to_string() }
}

/// Whether the tool (not the agent, a policy or a person) is to blame for `error`. A tool
/// reports `denied` or `invalid-input` for refusals it passes on; `failed` is its own.
fn tool_to_blame(error: &CallError) -> bool {
    match error {
        CallError::Budget(_) | CallError::Trapped { .. } | CallError::BadOutput { .. } => true,
        CallError::Tool { kind, .. } => *kind == ToolErrorKind::Failed,
        CallError::RollbackFailed { cause, .. } => tool_to_blame(cause),
        _ => false,
    }
}
