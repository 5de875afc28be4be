//! Encoding throughput of moat-tokens and of tiktoken-rs, on English, code and CJK text, for
//! both encodings: `cargo run -p moat-tokens --release --example throughput`.

#[path = "common/corpus.rs"]
mod corpus;

use moat_tokens::{Encoding, Tokenizer};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Bytes per second of `run` over `bytes` bytes: its fastest round of those in a second (the
/// machine is shared; the fastest is the least disturbed).
fn rate(bytes: usize, mut run: impl FnMut() -> usize) -> f64 {
    let started = Instant::now();
    let mut best = Duration::MAX;
    let mut rounds = 0;
    while started.elapsed() < Duration::from_secs(1) || rounds < 5 {
        let round = Instant::now();
        black_box(run());
        best = best.min(round.elapsed());
        rounds += 1;
    }
    bytes as f64 / best.as_secs_f64()
}

fn main() {
    const SIZE: usize = 1 << 20;
    let texts = [
        ("English", corpus::english(SIZE)),
        ("code", corpus::code(SIZE)),
        ("CJK", corpus::cjk(SIZE)),
    ];
    println!(
        "{:<12} {:<8} {:>14} {:>14} {:>14} {:>7}",
        "encoding", "text", "tiktoken-rs", "moat encode", "moat count", "ratio"
    );
    for (encoding, reference) in [
        (Encoding::O200kBase, tiktoken_rs::o200k_base_singleton()),
        (Encoding::Cl100kBase, tiktoken_rs::cl100k_base_singleton()),
    ] {
        let tokenizer = Tokenizer::new(encoding);
        for (name, text) in &texts {
            assert_eq!(tokenizer.encode_ordinary(text), reference.encode_ordinary(text));
            let theirs = rate(text.len(), || reference.encode_ordinary(text).len());
            let encode = rate(text.len(), || tokenizer.encode_ordinary(text).len());
            let count = rate(text.len(), || tokenizer.count(text));
            let mb = |r: f64| format!("{:.1} MB/s", r / 1e6);
            println!(
                "{:<12} {:<8} {:>14} {:>14} {:>14} {:>6.2}x",
                encoding.name(),
                name,
                mb(theirs),
                mb(encode),
                mb(count),
                encode / theirs
            );
        }
    }
}
