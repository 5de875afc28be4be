//! moat: runs AI-agent tools as sandboxed, metered WebAssembly components.
//!
//! A [`Host`] loads tool components from directories, validates each against the
//! `tool-plugin` world of `wit/`, and runs every call on a fresh instance under hard per-call
//! budgets (fuel, memory, wall time, output size). The call pipeline is [`Host::call`] in
//! `pipeline.rs`; each step lives in its own module.

pub mod admin;
pub mod audit;
pub mod bounded;
pub mod budget;
pub mod call;
pub mod cancel;
pub mod capability;
pub mod clock;
pub mod config;
pub mod controls;
pub mod error;
pub mod escalation;
pub mod guard;
mod http_server;
pub mod mcp;
pub mod metrics;
mod pipeline;
pub mod plugin;
pub mod redact;
pub mod runtime;
mod session;
pub mod state;
pub mod text;
pub mod undo;
pub mod units;

pub use budget::{BudgetOverrides, Budgets};
pub use call::{
    CallRequest, CallResponse, CallView, Effect, EffectKind, Gate, HistoryEntry, Stakes, Usage,
    Verdict, WindowInfo,
};
pub use config::Config;
pub use error::BudgetKind;
pub use error::{BudgetExceeded, CallError, ConfigError, LoadError};
pub use pipeline::{Host, HostBuilder, TOOLS_LOOK};
pub use plugin::ToolSpec;

/// The engine a host with `config` runs on (its metering, epochs and instance pool), for the
/// benchmark's raw-wasmtime row to measure wasmtime under the same settings. Not an API.
#[doc(hidden)]
pub fn engine_for_benchmarks(config: &Config) -> wasmtime::Result<wasmtime::Engine> {
    runtime::engine::new_engine(&config.engine, config.largest_table())
}
