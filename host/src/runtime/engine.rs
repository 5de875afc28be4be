//! The one wasmtime `Engine` of a host: metering, the pooling instance allocator, and the
//! epoch ticker.

use serde::Deserialize;
use std::time::Duration;
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
};

/// How often the epoch advances; wall-time budgets are enforced to this granularity.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The engine-wide limit on the WebAssembly stack; unbounded recursion stops here.
pub(crate) const MAX_WASM_STACK: usize = 512 * 1024;

/// Bytes of a freed instance's memory reset in place rather than unmapped.
const KEEP_RESIDENT: usize = 2 << 20;

/// Tables per core module the pool makes room for (a module has one, almost always).
const TABLES_PER_MODULE: u32 = 4;

/// Builds the engine: fuel metering, epoch interruption, the component model, a bounded
/// stack, and (unless `settings` turn it off) the pooling allocator with copy-on-write
/// memory images, with room for tables of `largest_table` elements. If the pool's address
/// space cannot be reserved (a `ulimit -v`, say), the engine allocates on demand and says so.
pub(crate) fn new_engine(settings: &EngineConfig, largest_table: u32) -> wasmtime::Result<Engine> {
    let engine = match settings.pooling {
        true => Engine::new(&config(Some(pool(settings, largest_table)))).or_else(|error| {
            tracing::warn!(
                "the instance pool could not be set up ({error}); instances are allocated \
                 on demand (slower calls). `[engine] instances` lower reserves less."
            );
            Engine::new(&config(None))
        })?,
        false => Engine::new(&config(None))?,
    };
    start_epoch_ticker(&engine)?;
    Ok(engine)
}

fn config(pool: Option<PoolingAllocationConfig>) -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(MAX_WASM_STACK)
        .cranelift_opt_level(OptLevel::Speed)
        // A fresh instance's memory is its module's initial image, mapped copy-on-write.
        .memory_init_cow(true);
    if let Some(pool) = pool {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

fn pool(settings: &EngineConfig, largest_table: u32) -> PoolingAllocationConfig {
    let instances = settings.instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        .total_core_instances(instances)
        .total_memories(instances)
        .total_tables(instances.saturating_mul(2))
        .max_tables_per_module(TABLES_PER_MODULE)
        .table_elements(largest_table as usize)
        // Memory budgets are enforced by the store's limiter; the pool allows what 32-bit
        // WebAssembly can address.
        .max_memory_size(1 << 32)
        // A freed instance's memory is reset by writing back only the pages it dirtied
        // (found with Linux's PAGEMAP_SCAN where the kernel has it), up to this much, rather
        // than unmapping them: no page faults at the next instance, and no TLB shootdown
        // across cores at each call.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT / 16)
        .pagemap_scan(Enabled::Auto);
    pool
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

/// `[engine]`: how instances are allocated. Every call and every guard check runs on a
/// fresh instance; the pool keeps their memories and tables reserved ahead, and resets a
/// memory to its initial image by copy-on-write instead of copying it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Off: each instance's memory is mapped and unmapped at each call (slower, reserves
    /// no address space ahead).
    #[serde(default = "yes")]
    pub pooling: bool,
    /// Instances alive at once, over all calls in flight (a call holds its tool's and one
    /// guard's at most; a Python or JavaScript component counts each core module); a call
    /// past this fails instead of waiting. Each reserves address space, not memory.
    #[serde(default = "default_instances")]
    pub instances: u32,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig { pooling: true, instances: default_instances() }
    }
}

fn default_instances() -> u32 {
    1000
}

fn yes() -> bool {
    true
}
