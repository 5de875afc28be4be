//! Per-call budgets (fuel, memory, wall time, output size, tables), as configured and as one
//! call's overrides replace them; `runtime/limiter.rs` enforces them inside a store.

use crate::units::{ByteSize, Millis};
use serde::Deserialize;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_the_fields_they_set() {
        let overrides = BudgetOverrides { fuel: Some(7), ..BudgetOverrides::default() };
        let budgets = Budgets::default().with(&overrides);
        assert_eq!(budgets.fuel, 7);
        assert_eq!(budgets.memory, Budgets::default().memory);
    }
}
