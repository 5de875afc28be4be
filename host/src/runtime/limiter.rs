//! The limiter that enforces a call's memory and table budgets inside its store.

use crate::budget::Budgets;

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
    use crate::units::ByteSize;
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
}
