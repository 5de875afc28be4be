//! Start-up time and resident memory of moat-tokens and of tiktoken-rs, each measured in a
//! fresh process: the time of building a tokenizer and counting a first word, and VmRSS
//! before, after that, and after counting 1 MB of mixed text.
//! `cargo run -p moat-tokens --release --example footprint`.

#[path = "common/corpus.rs"]
mod corpus;

use moat_tokens::{Encoding, Tokenizer};
use std::time::Instant;

/// The process's resident set, in megabytes.
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    kb / 1024.0
}

fn measure(library: &str, encoding: Encoding) {
    let text = corpus::mixed(1_000_000);
    let before = rss_mb();
    let started = Instant::now();
    let count: Box<dyn Fn(&str) -> usize> = match library {
        "moat-tokens" => {
            let tokenizer = Tokenizer::new(encoding);
            Box::new(move |text| tokenizer.count(text))
        }
        _ => {
            let bpe = match encoding {
                Encoding::O200kBase => tiktoken_rs::o200k_base(),
                Encoding::Cl100kBase => tiktoken_rs::cl100k_base(),
            }
            .expect("tiktoken-rs builds its encodings");
            Box::new(move |text| bpe.encode_ordinary(text).len())
        }
    };
    let first = count("Hello");
    let elapsed = started.elapsed();
    let started_rss = rss_mb();
    let counted = count(&text);
    let after = rss_mb();
    println!(
        "{library:<12} {:<12} new + first count {:>9.2?} ({first} token)   VmRSS: {before:5.1} MB before, \
         {started_rss:5.1} MB after, {after:5.1} MB after counting 1 MB ({counted} tokens)",
        encoding.name(),
        elapsed,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, library, encoding] = args.as_slice() {
        let encoding =
            if encoding == "cl100k_base" { Encoding::Cl100kBase } else { Encoding::O200kBase };
        return measure(library, encoding);
    }
    let exe = std::env::current_exe().expect("the example's path");
    for encoding in ["o200k_base", "cl100k_base"] {
        for library in ["moat-tokens", "tiktoken-rs"] {
            let status = std::process::Command::new(&exe).args([library, encoding]).status();
            assert!(status.is_ok_and(|s| s.success()), "measuring {library} {encoding}");
        }
    }
}
