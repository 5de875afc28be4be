//! Timing helpers (latency percentiles, throughput with N threads) and the result table.

use std::fmt::Write;
use std::time::{Duration, Instant};

/// Times `calls` calls of `call` one by one, after `calls / 10` (at least 20) untimed ones.
pub fn latencies(calls: usize, mut call: impl FnMut(usize)) -> Latency {
    for i in 0..(calls / 10).max(20) {
        call(usize::MAX - i);
    }
    let mut times: Vec<Duration> = (0..calls)
        .map(|i| {
            let started = Instant::now();
            call(i);
            started.elapsed()
        })
        .collect();
    times.sort();
    Latency { p50: percentile(&times, 50.0), p99: percentile(&times, 99.0) }
}

/// The `p`th percentile of sorted `times` (nearest rank).
pub fn percentile(times: &[Duration], p: f64) -> Duration {
    if times.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * times.len() as f64).ceil() as usize;
    times[rank.clamp(1, times.len()) - 1]
}

/// Calls per second with `threads` threads each making `calls / threads` calls of
/// `call(thread, i)` at once.
pub fn throughput(threads: usize, calls: usize, call: impl Fn(usize, usize) + Sync) -> f64 {
    let each = (calls / threads).max(1);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let call = &call;
            scope.spawn(move || (0..each).for_each(|i| call(thread, i)));
        }
    });
    (each * threads) as f64 / started.elapsed().as_secs_f64()
}

#[derive(Clone, Copy)]
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
}

/// One line of the table.
pub struct Row {
    pub what: String,
    pub latency: Option<Latency>,
    /// Calls per second at concurrency 1, 4 and 16.
    pub throughput: Option<[f64; 3]>,
    /// Any other figure, with its unit.
    pub other: Option<String>,
    /// Against the target, if the row has one.
    pub target: Option<String>,
}

impl Row {
    pub fn new(what: impl Into<String>) -> Row {
        Row { what: what.into(), latency: None, throughput: None, other: None, target: None }
    }
    pub fn latency(mut self, latency: Latency) -> Row {
        self.latency = Some(latency);
        self
    }
    pub fn throughput(mut self, throughput: [f64; 3]) -> Row {
        self.throughput = Some(throughput);
        self
    }
    pub fn other(mut self, other: impl Into<String>) -> Row {
        self.other = Some(other.into());
        self
    }
    pub fn target(mut self, target: impl Into<String>) -> Row {
        self.target = Some(target.into());
        self
    }
}

/// The rows, in the order measured.
#[derive(Default)]
pub struct Table {
    rows: Vec<Row>,
}

impl Table {
    pub fn push(&mut self, row: Row) {
        let shown = match (&row.latency, &row.other) {
            (Some(l), _) => format!("p50 {} p99 {}", micros(l.p50), micros(l.p99)),
            (None, Some(other)) => other.clone(),
            (None, None) => String::new(),
        };
        eprintln!("  {}: {shown}", row.what);
        self.rows.push(row);
    }

    pub fn render(&self, took: Duration) -> String {
        let mut out = String::new();
        let machine = machine();
        let _ = writeln!(
            out,
            "moat {} · {machine} · run took {:.0} s\n",
            env!("CARGO_PKG_VERSION"),
            took.as_secs_f64()
        );
        out.push_str("| what | p50 | p99 | calls/s at 1 | at 4 | at 16 | other | target |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|---|---|\n");
        for row in &self.rows {
            let (p50, p99) = match row.latency {
                Some(l) => (micros(l.p50), micros(l.p99)),
                None => (String::new(), String::new()),
            };
            let [t1, t4, t16] = match row.throughput {
                Some(t) => t.map(|t| format!("{t:.0}")),
                None => [String::new(), String::new(), String::new()],
            };
            let other = row.other.clone().unwrap_or_default();
            let target = row.target.clone().unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | {p50} | {p99} | {t1} | {t4} | {t16} | {other} | {target} |",
                row.what
            );
        }
        out
    }
}

/// A duration in microseconds, with a decimal below 10 us.
pub fn micros(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 10.0 {
        format!("{us:.2} us")
    } else {
        format!("{us:.0} us")
    }
}

/// "ok" or "missed by N%" against a bound, smaller being better.
pub fn against(measured: f64, bound: f64, text: &str) -> String {
    if measured <= bound {
        format!("{text}: met")
    } else {
        format!("{text}: missed ({:.1}x)", measured / bound)
    }
}

/// The CPU model and the number of CPUs, from /proc/cpuinfo.
fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cpus} x {model}")
}

/// Bytes of memory private to this process (its own pages, resident), from
/// /proc/self/smaps_rollup.
pub fn private_bytes(pid: Option<u32>) -> u64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/smaps_rollup"),
        None => "/proc/self/smaps_rollup".into(),
    };
    kib_fields(&path, &["Private_Clean:", "Private_Dirty:"]) * 1024
}

/// Resident set size of process `pid`, from /proc/PID/status.
pub fn resident_bytes(pid: u32) -> u64 {
    kib_fields(&format!("/proc/{pid}/status"), &["VmRSS:"]) * 1024
}

fn kib_fields(path: &str, fields: &[&str]) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let field = fields.iter().find(|f| line.starts_with(**f))?;
            line[field.len()..].trim().trim_end_matches("kB").trim().parse::<u64>().ok()
        })
        .sum()
}
