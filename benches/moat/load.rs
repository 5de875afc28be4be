//! Loading 50 components (cold and warm compile cache), and the private memory an idle
//! loaded plugin costs.

use crate::calls::setup;
use crate::component;
use crate::stats::{against, private_bytes, Row, Table};
use moat::{Config, Host};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const COMPONENTS: usize = 50;

pub fn run(work: &Path, table: &mut Table) {
    eprintln!("loading {COMPONENTS} components");
    let fifty = work.join("fifty");
    let components = distinct_components(&fifty.join("components"));
    let cache = fifty.join("cache");
    let empty = median(3, |n| start(&fifty.join(format!("empty-{n}")), &[], &cache).1);
    table.push(
        Row::new("host start, no tools (engine, tokenizer, empty registry)").other(ms(empty)),
    );
    let cold = start(&fifty.join("cold"), &components, &cache).1;
    table.push(
        Row::new(format!("host start with {COMPONENTS} components, cold compile cache"))
            .other(ms(cold)),
    );
    let warm = median(5, |n| start(&fifty.join(format!("warm-{n}")), &components, &cache).1);
    let loading = warm.saturating_sub(empty);
    table.push(
        Row::new(format!("host start with {COMPONENTS} components, warm compile cache"))
            .other(format!("{} ({} over no tools)", ms(warm), ms(loading)))
            .target(against(loading.as_secs_f64() * 1e3, 100.0, "<= 100 ms")),
    );

    // One host, idle, before and after its tool directory receives the 50 components.
    let (host, _) = start(&fifty.join("idle"), &[], &cache);
    let tools = fifty.join("idle/tools");
    std::thread::sleep(Duration::from_millis(300));
    let before = private_bytes(None);
    for component in &components {
        std::fs::copy(component, tools.join(component.file_name().expect("a file"))).expect("copy");
    }
    host.wait_for_watchers(Duration::from_secs(60)).expect("the watcher takes the copies in");
    assert!(host.reload_tools_if_changed(), "the 50 components were not picked up");
    assert_eq!(host.tools().len(), COMPONENTS, "every component loads");
    std::thread::sleep(Duration::from_millis(300));
    let each = private_bytes(None).saturating_sub(before) / COMPONENTS as u64;
    table.push(
        Row::new("private memory per idle loaded plugin (echo, 100 KB component)")
            .other(format!("{:.0} KiB", each as f64 / 1024.0))
            .target(against(each as f64, 1024.0 * 1024.0, "<= 1 MiB")),
    );
    drop(host);
}

/// 50 copies of bench-echo.wasm whose tool is named `bench_echo_00` to `bench_echo_49`: 50
/// components that differ (in their hashes too) and do not clash.
fn distinct_components(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("target/bench/fifty");
    let bytes = std::fs::read(component("bench/bench-echo.wasm")).expect("bench-echo.wasm");
    let name = b"bench_echo_00";
    let at: Vec<usize> =
        bytes.windows(name.len()).enumerate().filter(|(_, w)| w == name).map(|(i, _)| i).collect();
    assert_eq!(at.len(), 1, "bench-echo.wasm holds its tool name exactly once");
    (0..COMPONENTS)
        .map(|n| {
            let mut copy = bytes.clone();
            copy[at[0] + name.len() - 2..at[0] + name.len()]
                .copy_from_slice(format!("{n:02}").as_bytes());
            let path = dir.join(format!("bench-echo-{n:02}.wasm"));
            std::fs::write(&path, copy).expect("a component can be written");
            path
        })
        .collect()
}

/// Starts a host in `dir` whose tool directory holds `tools`, compile cache `cache`, audit
/// off; the time is Host::new's (the configuration read and the start).
fn start(dir: &Path, tools: &[PathBuf], cache: &Path) -> (Host, Duration) {
    let path = setup(dir, tools, 0, "off", cache);
    let started = Instant::now();
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let (host, errors) = Host::new(config).unwrap_or_else(|e| panic!("{e}"));
    let took = started.elapsed();
    assert!(errors.is_empty(), "bench components do not load: {errors:?}");
    (host, took)
}

/// The median of `runs` measurements.
fn median(runs: usize, mut measure: impl FnMut(usize) -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..runs).map(&mut measure).collect();
    times.sort();
    times[runs / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
