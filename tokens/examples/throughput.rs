//! Encoding throughput of moat-tokens and of tiktoken-rs, on English, code and CJK text, for
//! both encodings: `cargo run -p moat-tokens --release --example throughput`.

#[path = "common/corpus.rs"]
mod corpus;

use moat_tokens::{Encoding, Tokenizer};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Bytes per second of `run` over `text`, measured on chunks of about 32 KiB: each chunk's
/// fastest time over a second of rounds, summed (the machine is shared; the fastest round of
/// a short chunk is the least disturbed).
fn rate(text: &str, run: impl Fn(&str) -> usize) -> f64 {
    let mut chunks = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(32 << 10);
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (chunk, after) = rest.split_at(end);
        chunks.push(chunk);
        rest = after;
    }
    let mut best = vec![Duration::MAX; chunks.len()];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(1) {
        for (chunk, best) in chunks.iter().zip(&mut best) {
            let round = Instant::now();
            black_box(run(black_box(chunk)));
            *best = (*best).min(round.elapsed());
        }
    }
    text.len() as f64 / best.iter().sum::<Duration>().as_secs_f64()
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
            let theirs = rate(text, |t| reference.encode_ordinary(t).len());
            let encode = rate(text, |t| tokenizer.encode_ordinary(t).len());
            let count = rate(text, |t| tokenizer.count(t));
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
