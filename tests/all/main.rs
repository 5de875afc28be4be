//! moat's integration tests: one binary, one module per area. Guest components are built
//! once per run by `just plugins` (which `just test` runs first) into `target/wasm/`.

mod budgets;
mod cli;
mod loading;
mod support;
mod tools;
