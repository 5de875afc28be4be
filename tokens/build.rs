//! Lays out each encoding's tokens as binary tables in `OUT_DIR`, which the library embeds
//! with `include_bytes!` (see `src/table.rs` for the layout). The ranks come from
//! `tiktoken-rs`, enumerated through its public `decode_bytes`; nothing is parsed at run time.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tiktoken_rs::CoreBPE;

#[path = "src/hash.rs"]
#[allow(dead_code)]
mod hash;

/// Ranks are looked for below this bound (well above the largest of either encoding), and
/// must all be below `1 << hash::RANK_BITS`.
const SCAN: u32 = 1 << 20;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/hash.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let started = Instant::now();
    let o200k = tiktoken_rs::o200k_base().expect("tiktoken-rs builds o200k_base");
    write_tables(&out, "o200k_base", &o200k);
    let cl100k = tiktoken_rs::cl100k_base().expect("tiktoken-rs builds cl100k_base");
    write_tables(&out, "cl100k_base", &cl100k);
    // How long generation took, for whoever measures the build (a warning would show in
    // every build of the workspace).
    let took = format!("tables generated in {:.2?}\n", started.elapsed());
    std::fs::write(out.join("generated.txt"), took).expect("writing generated.txt");
}

/// Writes `<name>.bytes` (every token's bytes, in rank order), `<name>.offsets` (little-endian
/// `u32`s: rank `r`'s bytes are `bytes[offsets[r]..offsets[r + 1]]`, empty for ranks that do
/// not exist) and `<name>.slots` (the open-addressing table from ordinary tokens' bytes to
/// their ranks: little-endian `u64`s, each `EMPTY` or a token's rank, offset, length and
/// fingerprint, see `src/hash.rs`), and
/// `<name>.pairs` (2¹⁶ little-endian `u32`s: the rank of each two-byte token, or `NO_TOKEN`;
/// then 2⁸: the rank of each byte).
fn write_tables(out: &Path, name: &str, bpe: &CoreBPE) {
    let specials: HashSet<&[u8]> = bpe.special_tokens().into_iter().map(str::as_bytes).collect();
    let mut tokens: Vec<(u32, Vec<u8>)> = Vec::new();
    for rank in 0..SCAN {
        if let Ok(bytes) = bpe.decode_bytes(&[rank]) {
            assert!(!bytes.is_empty(), "{name}: rank {rank} has no bytes");
            assert!(rank <= hash::RANK_MASK, "{name}: rank {rank} does not fit a slot");
            tokens.push((rank, bytes));
        }
    }
    let end = tokens.last().map_or(0, |(rank, _)| rank + 1);
    let mut bytes = Vec::new();
    let mut offsets = Vec::with_capacity(4 * (end as usize + 1));
    let mut starts = vec![0; end as usize];
    let mut next = tokens.iter().peekable();
    for rank in 0..end {
        offsets.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        if let Some((_, token)) = next.next_if(|(r, _)| *r == rank) {
            starts[rank as usize] = bytes.len();
            bytes.extend_from_slice(token);
        }
    }
    offsets.extend_from_slice(&(bytes.len() as u32).to_le_bytes());

    // Ordinary tokens only: special-token text is never one token in ordinary encoding.
    let ordinary: Vec<&(u32, Vec<u8>)> =
        tokens.iter().filter(|(_, t)| !specials.contains(t.as_slice())).collect();
    assert_eq!(tokens.len() - ordinary.len(), specials.len(), "{name}: specials have ranks");
    // The rank of every two-byte token, indexed by its bytes (a pair's first lookup while
    // merging, without hashing), then those of the single bytes.
    let mut pairs = vec![hash::NO_TOKEN; (1 << 16) + 256];
    for (rank, token) in &ordinary {
        match **token {
            [a, b] => pairs[usize::from(u16::from_le_bytes([a, b]))] = *rank,
            [byte] => pairs[(1 << 16) + usize::from(byte)] = *rank,
            _ => {}
        }
    }
    for byte in 0..=255u8 {
        assert!(
            pairs[(1 << 16) + usize::from(byte)] != hash::NO_TOKEN,
            "{name}: byte {byte} is not a token, byte-pair merging would have no start"
        );
    }
    let pairs: Vec<u8> = pairs.iter().flat_map(|s| s.to_le_bytes()).collect();
    // At most half full (both encodings: 38%): a miss, as most lookups while merging are,
    // ends in about two probes.
    let size = (ordinary.len() * 2).next_power_of_two();
    let mask = size - 1;
    let mut slots = vec![hash::EMPTY; size];
    for (rank, token) in ordinary {
        let h = hash::hash(token);
        let mut at = h as usize & mask;
        while slots[at] != hash::EMPTY {
            at = (at + 1) & mask;
        }
        let start = starts[*rank as usize];
        slots[at] = hash::slot(*rank, start, token.len(), h).unwrap_or_else(|| {
            panic!("{name}: rank {rank} ({} bytes) does not fit a slot", token.len())
        });
    }
    let slots: Vec<u8> = slots.iter().flat_map(|s| s.to_le_bytes()).collect();

    let files = [("bytes", &bytes), ("offsets", &offsets), ("slots", &slots), ("pairs", &pairs)];
    for (ext, data) in files {
        let path = out.join(format!("{name}.{ext}"));
        std::fs::write(&path, data).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}
