//! The hash of a token's bytes, shared by `build.rs` (which lays out the tables) and the
//! library (which probes them): both must compute exactly the same function.

/// Bits of a slot that hold the rank; the ones above hold a fingerprint of the hash.
pub const RANK_BITS: u32 = 18;
/// The rank field's mask (every rank of the supported encodings is below it).
pub const RANK_MASK: u32 = (1 << RANK_BITS) - 1;
/// A slot that holds no token.
pub const EMPTY: u32 = u32::MAX;

/// A 64-bit hash of `bytes`: eight bytes at a time, then a final avalanche (MurmurHash3's
/// `fmix64`) so that both the low bits (the slot) and the high bits (the fingerprint) vary.
#[inline]
pub fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(K).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The fingerprint stored with a rank in its slot: the hash's top bits, placed above the rank.
#[inline]
pub fn fingerprint(hash: u64) -> u32 {
    ((hash >> (64 - (32 - RANK_BITS))) as u32) << RANK_BITS
}
