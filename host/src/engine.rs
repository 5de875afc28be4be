//! The one wasmtime `Engine` of a host, configured for metering, and its epoch ticker.

use std::time::Duration;
use wasmtime::{Config, Engine, OptLevel};

/// How often the epoch advances; wall-time budgets are enforced to this granularity.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The engine-wide limit on the WebAssembly stack; unbounded recursion stops here.
pub(crate) const MAX_WASM_STACK: usize = 512 * 1024;

/// Builds the engine: fuel metering, epoch interruption, the component model, a bounded stack.
pub(crate) fn new_engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(MAX_WASM_STACK)
        .cranelift_opt_level(OptLevel::Speed);
    let engine = Engine::new(&config)?;
    start_epoch_ticker(&engine)?;
    Ok(engine)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped. Without it
/// no wall-time deadline could fire, so failing to start it fails the engine.
fn start_epoch_ticker(engine: &Engine) -> wasmtime::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("moat-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map_err(|e| wasmtime::format_err!("cannot start the epoch thread: {e}"))?;
    Ok(())
}

/// The number of epoch ticks that covers `budget`, rounded up, plus one for the tick in
/// progress when the call starts.
pub(crate) fn ticks_for(budget: Duration) -> u64 {
    let tick = EPOCH_TICK.as_micros().max(1);
    (budget.as_micros().div_ceil(tick) as u64).saturating_add(1)
}
