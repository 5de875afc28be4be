//! `just bench`: every figure of BENCHMARKS.md, measured in one run, printed as one table
//! and written to `target/bench/results.md`.
//!
//! Not criterion: the figures are percentiles of single calls and throughputs of threads,
//! measured the same way for every row so that the rows compare. Each latency row runs a
//! warm-up, then times each call on its own (`Instant` around one call); p50 and p99 are of
//! those times. Each throughput is calls finished per second of wall time with N threads
//! calling at once.

mod calls;
mod e2e;
mod load;
mod soak;
mod stats;

use stats::Table;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The checkout: the components are under `target/wasm`.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A built component, or the run stops saying how to build it.
fn component(relative: &str) -> PathBuf {
    let path = root().join("target/wasm").join(relative);
    if !path.is_file() {
        eprintln!(
            "{} is missing: run `just plugins` (or `just bench`, which does)",
            path.display()
        );
        std::process::exit(2);
    }
    path
}

/// Whether to run the quick version (`-- --quick`): fewer calls, for trying the harness or
/// profiling one part (`-- --quick calls`).
fn quick() -> bool {
    std::env::args().any(|arg| arg == "--quick")
}

/// Whether the part `name` runs: all do, unless some are named (`-- calls e2e`).
fn wanted(name: &str) -> bool {
    let parts = ["calls", "load", "e2e", "soak"];
    let named: Vec<String> = std::env::args().filter(|a| parts.contains(&a.as_str())).collect();
    named.is_empty() || named.iter().any(|n| n == name)
}

fn main() {
    // Started by `e2e.rs` as the floor of its rows.
    if std::env::var_os(e2e::NULL_SERVER).is_some() {
        return e2e::null_server();
    }
    let work = root().join("target/bench");
    // What an earlier run left, but for the warm compile cache of the end-to-end server.
    for entry in ["hosts", "fifty", "results.md"] {
        let _ = std::fs::remove_dir_all(work.join(entry));
        let _ = std::fs::remove_file(work.join(entry));
    }
    std::fs::create_dir_all(&work).expect("target/bench can be created");
    let started = Instant::now();
    let mut table = Table::default();
    if wanted("calls") {
        calls::run(&work, &mut table);
    }
    if wanted("load") {
        load::run(&work, &mut table);
    }
    if wanted("e2e") {
        e2e::run(&work, &mut table);
    }
    if wanted("soak") {
        soak::run(&work, &mut table);
    }
    let report = table.render(started.elapsed());
    println!("\n{report}");
    let out = work.join("results.md");
    std::fs::write(&out, &report).expect("the results can be written");
    println!("written to {}", out.display());
}
