//! Single calls of the echo tool, from a native Rust function up to a moat call with every
//! control and durable audit; and a Python and a JavaScript tool's call.

use crate::stats::{against, latencies, throughput, Latency, Row, Table};
use crate::{component, quick};
use moat::{CallRequest, Config, Host};
use std::path::{Path, PathBuf};
use wasmtime::component::{Component, Linker, Val};
use wasmtime::Store;

/// Timed calls per latency row, and calls per throughput figure.
fn counts() -> (usize, usize) {
    if quick() {
        (500, 1_000)
    } else {
        (5_000, 8_000)
    }
}

pub fn run(work: &Path, table: &mut Table) {
    let (calls, many) = counts();
    // `MOAT_BENCH_PROFILE=raw|bare|guards|batched|durable`: only that host, called for a while,
    // for a profiler to watch.
    if let Ok(name) = std::env::var("MOAT_BENCH_PROFILE") {
        if name == "raw" {
            table.push(Row::new("profile: raw").latency(raw_wasmtime(calls * 20)));
            return;
        }
        let audit = if name == "batched" || name == "durable" { name.as_str() } else { "off" };
        let guards = if name == "bare" { 0 } else { 3 };
        let host =
            host(&work.join("hosts").join(&name), &[component("tools/echo.wasm")], guards, audit);
        let latency = latencies(calls * 4, |i| call(&host, "echo", &args(i), "profile"));
        table.push(Row::new(format!("profile: {name}")).latency(latency));
        return;
    }
    eprintln!("single calls of echo ({calls} timed per row)");
    let native = latencies(calls, |i| {
        std::hint::black_box(native_echo(&args(i)));
    });
    table.push(
        Row::new("native Rust function (the echo tool's work: parse, copy, serialize)")
            .latency(native),
    );

    let raw = raw_wasmtime(calls);
    table.push(
        Row::new("raw wasmtime: fresh instance of echo.wasm and one call (moat's engine settings)")
            .latency(raw),
    );

    let hosts = work.join("hosts");
    let cases: [(&str, &str, usize, &str); 4] = [
        ("moat call, no guards, no audit", "bare", 0, "off"),
        ("moat call, 3 allow-guards, no audit", "guards", 3, "off"),
        ("moat call, 3 allow-guards, audit batched", "batched", 3, "batched"),
        ("moat call, 3 allow-guards, audit durable", "durable", 3, "durable"),
    ];
    for (what, name, guards, audit) in cases {
        let host = host(&hosts.join(name), &[component("tools/echo.wasm")], guards, audit);
        // Durable calls each wait for an fsync: fewer of them keep the run short.
        let (calls, many) = if audit == "durable" { (calls / 5, many / 4) } else { (calls, many) };
        let latency = latencies(calls, |i| call(&host, "echo", &args(i), "latency"));
        let rates = [1, 4, 16].map(|threads| {
            throughput(threads, many, |thread, i| {
                call(&host, "echo", &args(i), &format!("c{threads}-t{thread}"))
            })
        });
        let mut row = Row::new(what).latency(latency).throughput(rates);
        if audit == "batched" {
            let p50 = latency.p50.as_secs_f64() * 1e6;
            let p99 = latency.p99.as_secs_f64() * 1e6;
            let best = rates.iter().cloned().fold(0.0, f64::max);
            row = row
                .other(format!("{:.1}x raw wasmtime (p50)", p50 / (raw.p50.as_secs_f64() * 1e6)))
                .target(format!(
                    "{}; {}; {}; {}",
                    against(p50, 100.0, "p50 <= 100 us"),
                    against(p99, 300.0, "p99 <= 300 us"),
                    against(10_000.0, best, ">= 10,000 calls/s"),
                    against(p50, 3.0 * raw.p50.as_secs_f64() * 1e6, "<= 3x raw"),
                ));
        }
        if audit == "durable" {
            let p50 = latency.p50.as_secs_f64() * 1e6;
            row = row.target(against(p50, 2_000.0, "p50 <= 2 ms"));
        }
        if name == "bare" {
            let ratio = latency.p50.as_secs_f64() / raw.p50.as_secs_f64();
            row = row.other(format!("{ratio:.1}x raw wasmtime (p50)"));
        }
        table.push(row);
    }

    let guests = [
        (
            "moat call, Python tool word_stats (componentize-py)",
            "python/word-stats.wasm",
            "word_stats",
        ),
        ("moat call, JavaScript tool slugify (componentize-js)", "js/text-tools.wasm", "slugify"),
    ];
    for (what, file, tool) in guests {
        let name = file.split('/').next().unwrap_or("guest");
        let host = host(&hosts.join(name), &[component(file)], 0, "off");
        let latency = latencies(calls / 10, |i| call(&host, tool, &args(i), "latency"));
        let p50 = latency.p50.as_secs_f64() * 1e6;
        table.push(Row::new(what).latency(latency).target(against(p50, 150.0, "p50 <= 150 us")));
    }
}

fn args(i: usize) -> String {
    format!(r#"{{"text": "hello, call {i}"}}"#)
}

/// What echo does, natively: parse the arguments, take the text, serialize the output.
fn native_echo(args: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Args {
        text: String,
    }
    let parsed: Args = serde_json::from_str(args).expect("valid arguments");
    serde_json::to_string(&parsed.text).expect("a string serializes")
}

/// A host whose tool directory holds `tools`, with `guards` copies of the always-allowing
/// test policy, and audit `off`, `batched` or `durable`; compile cache `target/bench/cache`.
pub fn host(dir: &Path, tools: &[PathBuf], guards: usize, audit: &str) -> Host {
    let cache = dir.parent().and_then(Path::parent).map(|work| work.join("cache"));
    let config =
        setup(dir, tools, guards, audit, &cache.expect("hosts live in target/bench/hosts"));
    let config = Config::load(&config).unwrap_or_else(|e| panic!("{e}"));
    let (host, errors) = Host::new(config).unwrap_or_else(|e| panic!("{e}"));
    assert!(errors.is_empty(), "bench plugins do not load: {errors:?}");
    host
}

/// Writes a bench host's directory: `tools/` holding `tools`, `policies/` holding `guards`
/// copies of the always-allowing test policy, and its `moat.toml` (returned).
pub fn setup(dir: &Path, tools: &[PathBuf], guards: usize, audit: &str, cache: &Path) -> PathBuf {
    let tool_dir = dir.join("tools");
    let policy_dir = dir.join("policies");
    std::fs::create_dir_all(&tool_dir).expect("bench directories");
    std::fs::create_dir_all(&policy_dir).expect("bench directories");
    for tool in tools {
        std::fs::copy(tool, tool_dir.join(tool.file_name().expect("a file"))).expect("copy");
    }
    for n in 1..=guards {
        let to = policy_dir.join(format!("allow-{n}.wasm"));
        std::fs::copy(component("test-policies/scripted.wasm"), to).expect("copy");
    }
    let path = dir.join("moat.toml");
    std::fs::write(&path, host_config(audit, cache)).expect("the config can be written");
    path
}

/// The configuration of a bench host (tools in `tools/`, policies in `policies/`): every
/// control at its default, but a task may make many calls.
fn host_config(audit: &str, cache: &Path) -> String {
    let audit = match audit {
        "off" => "enabled = false".to_owned(),
        durability => format!("durability = \"{durability}\""),
    };
    format!(
        "state_dir = \"state\"\n\
         [plugins]\ntools = [\"tools\"]\npolicies = \"policies\"\n\
         [audit]\n{audit}\n\
         [task]\ncalls = 1000000000\n\
         [compile_cache]\ndir = \"{}\"\n\
         [engine]\npooling = {}\n",
        cache.display(),
        // `MOAT_BENCH_POOLING=false`: what the instance pool saves.
        std::env::var("MOAT_BENCH_POOLING").as_deref() != Ok("false"),
    )
}

/// One call in `task`, made by a caller of its own per task: the threads of a throughput run
/// are distinct agents (each its own principal), as they would be through `moat serve`.
fn call(host: &Host, tool: &str, args: &str, task: &str) {
    let request = CallRequest {
        task: Some(task.to_owned()),
        principal: Some(format!("bench-{task}")),
        ..CallRequest::new(tool, args)
    };
    if let Err(error) = host.run(&request) {
        panic!("a bench call failed: {error}");
    }
}

/// A fresh instance of echo.wasm and one call of its `call` export per iteration, straight on
/// wasmtime: an engine with moat's settings (fuel, epochs, the instance pool), imports
/// stubbed, no pipeline.
fn raw_wasmtime(calls: usize) -> Latency {
    let engine = moat::engine_for_benchmarks(&Config::default()).expect("an engine");
    let component = Component::from_file(&engine, component("tools/echo.wasm")).expect("echo");
    let mut linker: Linker<()> = Linker::new(&engine);
    linker.define_unknown_imports_as_traps(&component).expect("stubs");
    let pre = linker.instantiate_pre(&component).expect("instance pre");
    let tool = component.get_export_index(None, "moat:plugin/tool@0.1.0").expect("tool export");
    let export = component.get_export_index(Some(&tool), "call").expect("call export");
    latencies(calls, |i| {
        let mut store = Store::new(&engine, ());
        store.set_fuel(100_000_000).expect("fuel is on");
        store.set_epoch_deadline(1_000);
        let instance = pre.instantiate(&mut store).expect("instantiates");
        let func = instance.get_func(&mut store, export).expect("call is a function");
        let params = [Val::String("echo".into()), Val::String(args(i))];
        let mut results = [Val::Bool(false)];
        func.call(&mut store, &params, &mut results).expect("echo answers");
        std::hint::black_box(&results);
    })
}
