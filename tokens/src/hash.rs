//! The hash of a token's bytes, shared by `build.rs` (which lays out the tables) and the
//! library (which probes them): both must compute exactly the same function.

/// A slot of the hash table is a little-endian `u64`: an ordinary token's rank (the low
/// `RANK_BITS`), where its bytes start in the bytes blob (`OFFSET_BITS`), how many there are
/// (`LEN_BITS`), and the top `64 - SHIFT` bits of its hash: all a lookup needs to find and
/// check a token, in one read.
pub const RANK_BITS: u32 = 18;
/// The rank field's mask (every rank of the supported encodings is below it).
pub const RANK_MASK: u32 = (1 << RANK_BITS) - 1;
/// Bits of a token's offset in the bytes blob (4 MiB; o200k_base's blob is 1.4 MB).
pub const OFFSET_BITS: u32 = 22;
/// Bits of a token's length (the longest token of either encoding has 128 bytes).
pub const LEN_BITS: u32 = 8;
/// Where the fingerprint starts.
pub const SHIFT: u32 = RANK_BITS + OFFSET_BITS + LEN_BITS;
/// A slot that holds no token (its rank field is no rank).
pub const EMPTY: u64 = u64::MAX;
/// No token, in the direct tables of two-byte tokens.
pub const NO_TOKEN: u32 = u32::MAX;

/// The slot of token `rank`, whose bytes are `bytes[offset..offset + len]` and hash `hash`.
/// None if a field does not fit. (Only `build.rs` makes slots.)
#[allow(dead_code)]
pub fn slot(rank: u32, offset: usize, len: usize, hash: u64) -> Option<u64> {
    let fits = |value: u64, bits: u32| value < 1 << bits;
    (fits(rank.into(), RANK_BITS) && fits(offset as u64, OFFSET_BITS) && fits(len as u64, LEN_BITS))
        .then(|| {
            u64::from(rank)
                | (offset as u64) << RANK_BITS
                | (len as u64) << (RANK_BITS + OFFSET_BITS)
                | fingerprint(hash)
        })
}

/// A slot's fields: rank, offset, length.
#[inline(always)]
pub fn fields(slot: u64) -> (u32, usize, usize) {
    let field = |at: u32, bits: u32| (slot >> at) & ((1 << bits) - 1);
    (
        slot as u32 & RANK_MASK,
        field(RANK_BITS, OFFSET_BITS) as usize,
        field(RANK_BITS + OFFSET_BITS, LEN_BITS) as usize,
    )
}

/// The bits of a slot that a hash fixes: its top ones, in place.
#[inline(always)]
pub fn fingerprint(hash: u64) -> u64 {
    hash >> SHIFT << SHIFT
}

/// A 64-bit hash of `bytes`, foldhash-like: each 64-bit word of the input (read as
/// overlapping words, so short keys cost one multiplication) is mixed into the state with a
/// folded 64×64→128-bit multiplication, whose low and high halves are both well mixed (the
/// slot index comes from the low bits, the fingerprint from the high ones).
#[inline]
pub fn hash(bytes: &[u8]) -> u64 {
    const SEED: u64 = 0x243f_6a88_85a3_08d3;
    const K: [u64; 4] = [
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
        0x4528_21e6_38d0_1377,
    ];
    let len = bytes.len();
    let mut h = SEED ^ (len as u64).wrapping_mul(K[3]);
    if len <= 8 {
        let word = if len >= 4 {
            (u64::from(u32_at(bytes, 0)) << 32) | u64::from(u32_at(bytes, len - 4))
        } else if len > 0 {
            (u64::from(bytes[0]) << 16)
                | (u64::from(bytes[len / 2]) << 8)
                | u64::from(bytes[len - 1])
        } else {
            0
        };
        return fold(word ^ K[0], h ^ K[1]);
    }
    let mut rest = bytes;
    while rest.len() > 16 {
        h = fold(u64_at(rest, 0) ^ K[0], h ^ K[1]);
        rest = &rest[8..];
    }
    // 9 to 16 bytes left: the first eight and the last eight.
    h = fold(u64_at(rest, 0) ^ K[2], h ^ K[1]);
    fold(u64_at(rest, rest.len() - 8) ^ K[0], h ^ K[3])
}

/// The two halves of `a × b`, xor-ed.
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

/// The little-endian `u32` at `at` (0 past the end, which callers never read).
#[inline(always)]
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    bytes.get(at..at + 4).and_then(|b| b.try_into().ok()).map_or(0, u32::from_le_bytes)
}

/// The little-endian `u64` at `at` (0 past the end, which callers never read).
#[inline(always)]
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes)
}
