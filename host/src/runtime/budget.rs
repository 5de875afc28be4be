//! Per-call budgets (fuel, memory, wall time, output size) and the limiter that enforces the
//! memory and table budgets inside a store.

use crate::units::{ByteSize, Millis};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// Hard limits for one call. Every call runs on a fresh store with these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Budgets {
    /// Fuel units; about one per WebAssembly instruction.
    pub fuel: u64,
    /// Linear memory, summed over the instance's memories.
    pub memory: ByteSize,
    /// Wall-clock time from instantiation to the returned result.
    pub wall_time: Millis,
    /// Bytes of output the tool may return.
    pub output: ByteSize,
    /// Elements over all tables (function tables of the guest).
    pub table_elements: u32,
}

impl Default for Budgets {
    fn default() -> Budgets {
        Budgets {
            fuel: 1_000_000_000,
            memory: ByteSize::mib(64),
            wall_time: Millis(5_000),
            output: ByteSize::mib(1),
            table_elements: 20_000,
        }
    }
}

/// Per-tool overrides of [`Budgets`]; unset fields keep the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetOverrides {
    pub fuel: Option<u64>,
    pub memory: Option<ByteSize>,
    pub wall_time: Option<Millis>,
    pub output: Option<ByteSize>,
    pub table_elements: Option<u32>,
}

impl Budgets {
    /// These budgets with every field set in `overrides` replaced.
    pub fn with(self, overrides: &BudgetOverrides) -> Budgets {
        Budgets {
            fuel: overrides.fuel.unwrap_or(self.fuel),
            memory: overrides.memory.unwrap_or(self.memory),
            wall_time: overrides.wall_time.unwrap_or(self.wall_time),
            output: overrides.output.unwrap_or(self.output),
            table_elements: overrides.table_elements.unwrap_or(self.table_elements),
        }
    }
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

/// What one call consumed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub fuel: u64,
    /// Peak linear memory over the call, summed over memories.
    pub peak_memory: u64,
    pub wall_time: Duration,
    pub output_bytes: u64,
}

/// A `ResourceLimiter` over the linear memories and tables of one call's store.
///
/// A refused growth is recorded, so that when the guest then traps (a Rust guest aborts when
/// its allocator fails) the host reports the memory budget, not a bare trap.
#[derive(Debug)]
pub struct Limiter {
    memory_limit: u64,
    table_limit: u64,
    memory: u64,
    peak_memory: u64,
    tables: u64,
    /// The total the guest asked for when a growth was refused.
    pub(crate) refused_memory: Option<u64>,
    pub(crate) refused_table: Option<u64>,
}

impl Limiter {
    pub fn new(budgets: &Budgets) -> Limiter {
        Limiter {
            memory_limit: budgets.memory.0,
            table_limit: u64::from(budgets.table_elements),
            memory: 0,
            peak_memory: 0,
            tables: 0,
            refused_memory: None,
            refused_table: None,
        }
    }

    pub fn peak_memory(&self) -> u64 {
        self.peak_memory
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let wanted = self.memory + (desired as u64).saturating_sub(current as u64);
        if wanted > self.memory_limit {
            self.refused_memory = Some(wanted);
            return Ok(false);
        }
        self.memory = wanted;
        self.peak_memory = self.peak_memory.max(wanted);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let wanted = self.tables + (desired as u64).saturating_sub(current as u64);
        if wanted > self.table_limit {
            self.refused_table = Some(wanted);
            return Ok(false);
        }
        self.tables = wanted;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn memory_is_summed_over_memories_and_refused_past_the_limit() {
        let budgets = Budgets { memory: ByteSize(100), ..Budgets::default() };
        let mut limiter = Limiter::new(&budgets);
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(limiter.memory_growing(0, 40, None).unwrap());
        assert!(!limiter.memory_growing(40, 41, None).unwrap());
        assert_eq!(limiter.refused_memory, Some(101));
        assert_eq!(limiter.peak_memory(), 100);
    }

    #[test]
    fn overrides_replace_only_the_fields_they_set() {
        let overrides = BudgetOverrides { fuel: Some(7), ..BudgetOverrides::default() };
        let budgets = Budgets::default().with(&overrides);
        assert_eq!(budgets.fuel, 7);
        assert_eq!(budgets.memory, Budgets::default().memory);
    }
}
