//! moat's integration tests: one binary, one module per area. Guest components are built
//! once per run by `just plugins` (which `just test` runs first) into `target/wasm/`.

mod alerts;
mod audit;
mod audit_cli;
mod budgets;
mod calibrate;
mod capabilities;
mod cases;
mod cli;
mod controls;
mod crash;
mod deadlines;
mod escalation;
mod fail_closed;
mod foreign;
mod fs_limits;
mod fuzz;
mod guards;
mod hostile;
mod http_capability;
mod javascript;
mod kv_capability;
mod loading;
mod mcp;
mod mcp_client;
mod mcp_http;
mod policies;
mod python;
mod reliability;
mod rollback;
mod secrets;
mod sql_capability;
mod sql_limits;
mod support;
mod tools;
mod trust;
