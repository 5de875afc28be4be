//! Prometheus metrics of a host: calls, refusals per guard, escalations, breaker states,
//! budget use and latency, as `/metrics` of the admin HTTP server serves them.
//!
//! Every label value is bounded by configuration, never by what an agent sends: a tool
//! that is not loaded is counted as `(unknown)`, guards are the loaded policies (or
//! `confidence`), outcomes are [`CallError::kind`]s.

use crate::audit::Event;
use crate::call::Decision;
use crate::call::{CallView, Note, Verdict};
use crate::{CallError, CallResponse};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// What the tool label says of a tool that is not loaded.
pub const UNKNOWN_TOOL: &str = "(unknown)";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    tool: String,
    /// `ok`, or the error's kind.
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GuardLabels {
    guard: String,
    stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerLabels {
    scope: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    budget: String,
}

type Latency = Family<ToolLabels, Histogram, fn() -> Histogram>;

/// The metrics of one host; cheap to update from many threads at once.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: Latency,
    denials: Family<GuardLabels, Counter>,
    escalations: Family<DecisionLabels, Counter>,
    breakers: Family<BreakerLabels, Gauge>,
    exceeded: Family<BudgetLabels, Counter>,
    fuel: Family<ToolLabels, Counter>,
    output_bytes: Family<ToolLabels, Counter>,
    tokens: Family<ToolLabels, Counter>,
}

fn latency_buckets() -> Histogram {
    // 50 us to about 13 s, each bucket 4 times the one before.
    Histogram::new(exponential_buckets(0.000_05, 4.0, 10))
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("moat");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "Tool calls, by tool and outcome (ok or the error kind)",
            calls.clone(),
        );
        let latency: Latency = Family::new_with_constructor(latency_buckets);
        registry.register(
            "call_duration_seconds",
            "Time from a call's arrival to its answer, audit record included",
            latency.clone(),
        );
        let denials = Family::<GuardLabels, Counter>::default();
        registry.register(
            "denials",
            "Deny verdicts, by guard (a policy, or confidence) and check point",
            denials.clone(),
        );
        let escalations = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "escalations",
            "Calls put to a person, by decision (approved, denied, timed_out)",
            escalations.clone(),
        );
        let breakers = Family::<BreakerLabels, Gauge>::default();
        registry.register(
            "breaker_state",
            "Circuit breakers that changed position since start: 0 closed, 1 half-open, 2 open",
            breakers.clone(),
        );
        let exceeded = Family::<BudgetLabels, Counter>::default();
        registry.register(
            "budget_exceeded",
            "Calls stopped by a budget: of the call (fuel, memory, ...) or of the task (task_*)",
            exceeded.clone(),
        );
        let fuel = Family::<ToolLabels, Counter>::default();
        registry.register("fuel_consumed", "Fuel the tools' calls consumed", fuel.clone());
        let output_bytes = Family::<ToolLabels, Counter>::default();
        registry.register(
            "output_bytes",
            "Bytes of output the tools returned",
            output_bytes.clone(),
        );
        let tokens = Family::<ToolLabels, Counter>::default();
        registry.register(
            "output_tokens",
            "Tokens of output counted against task budgets",
            tokens.clone(),
        );
        Metrics {
            registry,
            calls,
            latency,
            denials,
            escalations,
            breakers,
            exceeded,
            fuel,
            output_bytes,
            tokens,
        }
    }

    /// Counts one call: its outcome, its time, what it consumed, the verdicts and
    /// escalations noted on it, and the breaker transitions it caused.
    pub(crate) fn observe(&self, call: &Observed<'_>) {
        let tool = ToolLabels { tool: call.tool.to_owned() };
        let outcome = match call.outcome {
            Ok(_) => "ok",
            Err(error) => error.kind(),
        };
        self.calls
            .get_or_create(&CallLabels { tool: tool.tool.clone(), outcome: outcome.into() })
            .inc();
        self.latency.get_or_create(&tool).observe(call.elapsed.as_secs_f64());
        self.fuel.get_or_create(&tool).inc_by(call.fuel);
        if let Ok(response) = call.outcome {
            self.output_bytes.get_or_create(&tool).inc_by(response.output.len() as u64);
        }
        if call.tokens > 0 {
            self.tokens.get_or_create(&tool).inc_by(call.tokens);
        }
        match call.outcome {
            Err(CallError::Budget(exceeded)) => {
                let budget = exceeded.budget.to_string();
                self.exceeded.get_or_create(&BudgetLabels { budget }).inc();
            }
            Err(CallError::TaskBudget { budget, .. }) => {
                let budget = format!("task_{budget}");
                self.exceeded.get_or_create(&BudgetLabels { budget }).inc();
            }
            _ => {}
        }
        for note in call.notes {
            match note {
                Note::Verdict {
                    stage, guard, verdict: Verdict::Deny(_), shadow: false, ..
                } => {
                    let labels =
                        GuardLabels { guard: guard.clone(), stage: stage.name().to_owned() };
                    self.denials.get_or_create(&labels).inc();
                }
                Note::Escalation { decision, .. } => {
                    let decision = match decision {
                        Decision::Approved { .. } => "approved",
                        Decision::Denied { .. } => "denied",
                        Decision::TimedOut { .. } => "timed_out",
                    };
                    self.escalations
                        .get_or_create(&DecisionLabels { decision: decision.into() })
                        .inc();
                }
                Note::Verdict { .. } => {}
            }
        }
        for event in call.controls {
            if let Event::Breaker { scope, name, to, .. } = event {
                let state = match to.as_str() {
                    "closed" => 0,
                    "half-open" | "half_open" => 1,
                    _ => 2,
                };
                let labels = BreakerLabels { scope: scope.clone(), name: name.clone() };
                self.breakers.get_or_create(&labels).set(state);
            }
        }
    }

    /// Every metric in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!("cannot encode the metrics: {e}");
        }
        text
    }
}

/// One finished call, as [`Metrics::observe`] reads it.
pub(crate) struct Observed<'a> {
    /// The tool's name if loaded, else [`UNKNOWN_TOOL`].
    pub tool: &'a str,
    pub outcome: &'a Result<CallResponse, CallError>,
    pub elapsed: Duration,
    pub fuel: u64,
    pub tokens: u64,
    pub notes: &'a [Note],
    pub controls: &'a [Event],
}

impl Observed<'_> {
    /// The tool label of `call`: its name when `loaded`, else [`UNKNOWN_TOOL`].
    pub fn tool_label(call: &CallView, loaded: bool) -> &str {
        if loaded {
            &call.tool
        } else {
            UNKNOWN_TOOL
        }
    }
}
