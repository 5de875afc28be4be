//! Running components: the one engine and its epoch ticker (`engine.rs`), the compile cache
//! (`compile_cache.rs`), the budgets and the limiter that enforces them (`budget.rs`), one
//! call in a fresh store (`exec.rs`), and the reaper that keeps store teardown off the call
//! path (`reaper.rs`).

pub mod compile_cache;
pub(crate) mod engine;
pub(crate) mod exec;
pub mod limiter;
pub(crate) mod reaper;
