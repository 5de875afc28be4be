//! Typed errors of the library: loading plugins, reading config, and calling tools.
//!
//! Messages are one line, lowercase, and name the thing and the number, so that an agent or a
//! person can act on them without reading logs.

use crate::units::ByteSize;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A component that could not be loaded. Displays as `PATH: PROBLEM` on one line.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct LoadError {
    pub path: PathBuf,
    pub problem: LoadProblem,
}

/// What is wrong with a component.
#[derive(Debug, thiserror::Error)]
pub enum LoadProblem {
    #[error("cannot read: {0}")]
    Unreadable(String),
    #[error("empty file, not a WebAssembly component")]
    Empty,
    #[error("not a WebAssembly file (it starts with {0})")]
    NotWasm(String),
    #[error(
        "a core WebAssembly module, not a component; wrap it with `moat componentize` \
         or build it for the tool-plugin world of wit/"
    )]
    CoreModule,
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error("imports `{import}`, which this host does not provide (it provides {provided})")]
    UnknownImport { import: String, provided: String },
    #[error(
        "does not export `{expected}` (it exports {found}); build it for the {world} world of wit/"
    )]
    WrongWorld { expected: String, found: String, world: &'static str },
    #[error("does not fit the {world} world: {reason}")]
    Mismatch { world: &'static str, reason: String },
    /// A component of typed exports (built for another host) with a function that cannot be
    /// a tool.
    #[error("exports `{function}`, which cannot be a tool: {reason}")]
    TypedExport { function: String, reason: String },
    /// A component of typed exports whose imports do not link with the host's interfaces.
    #[error("its imports do not fit the interfaces this host provides: {0}")]
    Link(String),
    #[error("describe() failed: {0}")]
    Describe(String),
    #[error("tool `{tool}`: {reason}")]
    BadToolInfo { tool: String, reason: String },
    #[error("offers tool `{tool}`, which {other} already offers")]
    DuplicateTool { tool: String, other: PathBuf },
    #[error("offers tool `{0}`, a name moat keeps for its own built-in tool")]
    ReservedTool(String),
    #[error("cannot list the directory: {0}")]
    Directory(String),
    /// A directory `moat.toml` names that is not there.
    #[error("the directory does not exist (is its name in moat.toml misspelt?)")]
    MissingDirectory,
    /// A policy in force that disappeared while serving.
    #[error("was in force and has been removed; restore it, or restart moat to go on without it")]
    Removed,
    /// A policy problem under `on_policy_error = "keep-last"`: the previous version stays.
    #[error("{0}; its previous version stays in force (on_policy_error = \"keep-last\")")]
    KeptLast(Box<LoadProblem>),
    /// Plugins are locked and this file is neither pinned as it is nor signed by a trusted
    /// publisher.
    #[error("refused, plugins are locked: {0}")]
    NotTrusted(String),
    #[error("is {size}, over [plugins] max_component_size ({limit}); refused unread")]
    TooLarge { size: ByteSize, limit: ByteSize },
}

/// A `moat.toml` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// The message of the TOML parser names the key, the line and the column.
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// A call ran out of one of its budgets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetExceeded {
    pub tool: String,
    pub budget: BudgetKind,
    pub limit: u64,
    pub used: u64,
}

impl fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.budget == BudgetKind::Memory { "asked for" } else { "used" };
        write!(
            f,
            "tool `{}` exceeded its {} budget: limit {}, {verb} {}",
            self.tool,
            self.budget,
            self.budget.amount(self.limit),
            self.budget.amount(self.used)
        )
    }
}

/// Why a call did not produce a result. The host keeps serving after any of these.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no tool `{0}` is loaded (see `moat tools`)")]
    UnknownTool(String),
    #[error("invalid arguments for `{tool}`: {reason}")]
    InvalidArguments { tool: String, reason: String },
    #[error("{0}")]
    Budget(BudgetExceeded),
    #[error("tool `{tool}` trapped: {reason}")]
    Trapped { tool: String, reason: String },
    /// The tool itself reported an error (`tool-error` in WIT).
    #[error("tool `{tool}` {kind}: {message}")]
    Tool { tool: String, kind: ToolErrorKind, message: String },
    #[error("tool `{tool}` returned output that is not JSON: {reason}")]
    BadOutput { tool: String, reason: String },
    /// A check refused the call: before it ran, or after (its effects were rolled back).
    #[error("tool `{tool}` was refused {stage}: {reason}")]
    Denied { tool: String, stage: Stage, reason: String },
    /// A check asked a person, and the person said no (or did not answer in time).
    #[error("tool `{tool}` was refused {stage}: {reason}")]
    Declined { tool: String, stage: Stage, reason: String },
    /// The call failed and undoing its effects failed too: the problems say what is left.
    #[error("{cause}; and undoing its effects failed: {problems}")]
    RollbackFailed { cause: Box<CallError>, problems: String },
    /// The host could not set up the call (not the plugin's fault).
    #[error("cannot run tool `{tool}`: {reason}")]
    Host { tool: String, reason: String },
    /// One of the task's budgets is used up: calls, tokens, fuel or wall time.
    #[error("task `{task}` exceeded its {budget} budget: limit {limit}, used {used}")]
    TaskBudget { task: String, budget: &'static str, limit: String, used: String },
    /// The call was cancelled in flight (an MCP cancel, or its client went away); whatever it
    /// had staged was rolled back.
    #[error("tool `{tool}` was cancelled {stage}")]
    Cancelled { tool: String, stage: Stage },
    /// A limit of the caller's principal over a rolling window is reached (calls, tokens).
    #[error(
        "tool `{tool}` was refused: its caller `{principal}` reached its limit of {limit} \
         {meter} {scope} ({used} used)"
    )]
    PrincipalLimit {
        tool: String,
        principal: String,
        meter: &'static str,
        scope: &'static str,
        limit: u64,
        used: u64,
    },
    /// A circuit breaker (of the tool, or of the task) is open.
    #[error("{0}")]
    Breaker(crate::error::Refusal),
    /// The session is repeating itself; the reason says what and what to do instead.
    #[error("tool `{tool}` was refused: {reason}")]
    Loop { tool: String, reason: String },
    /// The audit log could not record the call: before it ran (so it did not run), or after
    /// (its effects stand; the reason says so).
    #[error("tool `{tool}`: {reason}")]
    Audit { tool: String, reason: String },
}

impl CallError {
    /// The budget this error reports, if it is a budget error.
    pub fn budget(&self) -> Option<&BudgetExceeded> {
        match self {
            CallError::Budget(exceeded) => Some(exceeded),
            _ => None,
        }
    }

    /// The error's kind, one snake_case word, as the audit log and the MCP server name it.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::UnknownTool(_) => "unknown_tool",
            CallError::InvalidArguments { .. } => "invalid_arguments",
            CallError::Budget(_) => "budget",
            CallError::Trapped { .. } => "trapped",
            CallError::Tool { .. } => "tool_error",
            CallError::BadOutput { .. } => "bad_output",
            CallError::Denied { .. } => "denied",
            CallError::Declined { .. } => "escalation_declined",
            CallError::RollbackFailed { .. } => "rollback_failed",
            CallError::Host { .. } => "host",
            CallError::Audit { .. } => "audit",
            CallError::Breaker(_) => "breaker",
            CallError::Loop { .. } => "loop",
            CallError::TaskBudget { .. } => "task_budget",
            CallError::PrincipalLimit { .. } => "principal_limit",
            CallError::Cancelled { .. } => "cancelled",
        }
    }
}

/// When a call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    BeforeCall,
    /// While it ran: one of its effects was refused, and its staged effects rolled back.
    DuringCall,
    /// After the call ran; its staged effects were rolled back.
    AfterCall,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::BeforeCall => "before it ran",
            Stage::DuringCall => "while it ran, and its effects were rolled back",
            Stage::AfterCall => "after it ran, and its effects were rolled back",
        })
    }
}

/// The three kinds of `tool-error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolErrorKind {
    InvalidInput,
    Failed,
    Denied,
}

impl fmt::Display for ToolErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ToolErrorKind::InvalidInput => "rejected its input",
            ToolErrorKind::Failed => "failed",
            ToolErrorKind::Denied => "was denied",
        })
    }
}

/// Squeezes a multi-line error (wasmtime's, with causes) onto one line.
pub(crate) fn one_line(error: &dyn fmt::Display) -> String {
    let text = format!("{error:#}");
    let mut line =
        text.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
    if line.len() > 400 {
        let mut end = 400;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    line
}

/// Which budget a call ran out of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetKind {
    Fuel,
    Memory,
    WallTime,
    Output,
    /// The engine-wide WebAssembly stack limit (unbounded recursion).
    Stack,
    Table,
}

impl BudgetKind {
    /// Formats an amount of this budget with its unit.
    pub fn amount(self, value: u64) -> String {
        match self {
            BudgetKind::Fuel => format!("{value} fuel"),
            BudgetKind::Memory | BudgetKind::Output | BudgetKind::Stack => {
                ByteSize(value).to_string()
            }
            BudgetKind::WallTime => format!("{value} ms"),
            BudgetKind::Table => format!("{value} elements"),
        }
    }
}

impl fmt::Display for BudgetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BudgetKind::Fuel => "fuel",
            BudgetKind::Memory => "memory",
            BudgetKind::WallTime => "wall-time",
            BudgetKind::Output => "output",
            BudgetKind::Stack => "stack",
            BudgetKind::Table => "table",
        })
    }
}

/// Whose breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Tool,
    Task,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Tool => "tool",
            Scope::Task => "task",
        }
    }
}

/// A call refused because a breaker is open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub scope: Scope,
    pub name: String,
    /// Why it opened.
    pub reason: String,
    /// When a probe may go through (zero while half-open with its probes in flight).
    pub retry_in: Duration,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.scope {
            Scope::Tool => format!("tool `{}` is unavailable: its circuit breaker", self.name),
            Scope::Task => format!("task `{}` is stopped: its circuit breaker", self.name),
        };
        let retry = match self.retry_in.as_millis() {
            0 => "a probe call is already testing it; retry after it ends".to_owned(),
            ms => format!("retry in {:.1} s", ms as f64 / 1000.0),
        };
        write!(f, "{what} opened ({}); {retry}", self.reason)
    }
}
