//! moat: runs AI-agent tools as sandboxed, metered WebAssembly components.
//!
//! A [`Host`] loads tool components from directories, validates each against the
//! `tool-plugin` world of `wit/`, and runs every call on a fresh instance under hard per-call
//! budgets (fuel, memory, wall time, output size). The call pipeline is [`Host::call`] in
//! `pipeline.rs`; each step lives in its own module.
//!
//! A program embeds it as the `moat` command does (`cli/`): load a `moat.toml`, build a host,
//! run requests. The caller's identity is the embedder's to set, never the agent's.
//!
//! ```no_run
//! use moat::{CallRequest, Config, Host};
//! use std::path::Path;
//!
//! let config = Config::load(Path::new("moat.toml"))?;
//! let escalator = config.escalator()?; // the approval channel `[escalation]` names
//! let (host, skipped) = Host::builder(config).escalator(escalator).build()?;
//! for error in &skipped {
//!     eprintln!("not loaded: {error}"); // the other components still load
//! }
//! let request = CallRequest {
//!     tool: "echo".into(),
//!     args: r#"{"message": "hello"}"#.into(),
//!     task: Some("report-42".into()),
//!     principal: Some("billing-service".into()),
//!     ..CallRequest::default()
//! };
//! let response = host.run(&request)?; // or a typed `CallError` saying why not
//! println!("{}", response.output);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

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
