//! Byte-pair merging of one piece, as tiktoken's `byte_pair_merge` does it: repeatedly merge
//! the adjacent pair of parts whose bytes form the lowest-ranked token (the leftmost of equal
//! ones), until no pair forms a token. A linear scan for pieces under `LARGE` bytes, a heap
//! above (tiktoken's `_byte_pair_merge_large`); both merge in the same order.

use crate::table::Table;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Pieces of at least this many bytes are merged with a heap (tiktoken's threshold).
pub(crate) const LARGE: usize = 100;

/// No token: a pair that does not merge.
const NONE: u32 = u32::MAX;

/// A part of a piece being merged.
#[derive(Clone, Copy)]
pub(crate) struct Part {
    /// Where it starts in the piece.
    pub(crate) start: usize,
    /// The rank of this part merged with the next, `NONE` if they do not merge.
    pair: u32,
    /// This part's rank if it was merged, `NONE` while it is a single byte.
    token: u32,
}

impl Part {
    /// This part's token (`table`'s, for the byte at `piece[self.start]` if it is single).
    #[inline]
    pub(crate) fn token(&self, table: &Table, piece: &[u8]) -> Option<u32> {
        if self.token != NONE {
            return Some(self.token);
        }
        table.byte_rank(*piece.get(self.start)?)
    }
}

/// Merges `piece` (under `LARGE` bytes) into `parts`: each final part, then one that starts
/// at `piece.len()` (so part `i` is `piece[parts[i].start..parts[i + 1].start]`).
pub(crate) fn merge_small(table: &Table, piece: &[u8], parts: &mut Vec<Part>) {
    parts.clear();
    let part = |start, pair| Part { start, pair, token: NONE };
    if piece.len() < 2 {
        parts.extend([part(0, NONE), part(piece.len(), NONE)]);
        return;
    }
    let rank = |bytes: &[u8]| table.rank(bytes).unwrap_or(NONE);
    let mut min = (NONE, usize::MAX);
    for i in 0..piece.len() - 1 {
        let r = rank(&piece[i..i + 2]);
        if r < min.0 {
            min = (r, i);
        }
        parts.push(part(i, r));
    }
    parts.push(part(piece.len() - 1, NONE));
    parts.push(part(piece.len(), NONE));

    // The rank of the pair at `i` once parts `i + 1` and `i + 2` have merged (before the
    // removal of `i + 1`).
    let pair = |parts: &[Part], i: usize| {
        if i + 3 < parts.len() {
            rank(&piece[parts[i].start..parts[i + 3].start])
        } else {
            NONE
        }
    };
    while min.0 != NONE {
        let i = min.1;
        if i > 0 {
            parts[i - 1].pair = pair(parts, i - 1);
        }
        parts[i].token = min.0;
        parts[i].pair = pair(parts, i);
        parts.remove(i + 1);
        min = (NONE, usize::MAX);
        for (i, part) in parts[..parts.len() - 1].iter().enumerate() {
            if part.pair < min.0 {
                min = (part.pair, i);
            }
        }
    }
}

/// A possible merge of the part starting at `start` with the next one, into token `rank`,
/// as one integer whose order is the merges' (the lowest rank, then the leftmost start):
/// `rank` above `START_BITS` bits of `start`. The heap holds these, reversed.
type Merge = Reverse<u64>;

/// Bits of a merge's start: pieces up to 64 TiB (an address space's worth); ranks take the
/// 18 bits above.
const START_BITS: u32 = 46;

fn merge(start: usize, rank: u32) -> Merge {
    Reverse((u64::from(rank) << START_BITS) | start as u64)
}

fn unpack(merge: Merge) -> (usize, u32) {
    let Reverse(key) = merge;
    ((key & ((1 << START_BITS) - 1)) as usize, (key >> START_BITS) as u32)
}

/// The part starting at a byte (meaningful while that byte starts a part).
struct State {
    /// Where the previous part starts.
    prev: usize,
    /// Where this part ends (the next one starts).
    end: usize,
    /// Where the next part ends.
    next_end: usize,
    /// The rank of this part merged with the next, `NONE` if they do not merge.
    next_rank: u32,
    /// This part's rank if it was merged, else `NONE` (a single byte).
    cur_rank: u32,
}

/// The tokens of `piece` (at least two bytes), merged with a heap: O(n log n) for the long
/// pieces (a megabyte of one letter is a single piece) the linear scan would take O(n²) on.
///
/// (A piece of 2⁴⁶ bytes or more, which no address space holds, would be one token or none.)
pub(crate) fn merge_large(table: &Table, piece: &[u8]) -> Vec<u32> {
    if piece.len() < 2 || (piece.len() as u64) >> START_BITS != 0 {
        return table.rank(piece).into_iter().collect();
    }
    let rank = |bytes: &[u8]| table.rank(bytes).unwrap_or(NONE);
    let mut state = Vec::with_capacity(piece.len());
    state.push(State { prev: usize::MAX, end: 1, next_end: 2, next_rank: NONE, cur_rank: NONE });
    let mut heap = BinaryHeap::with_capacity(piece.len());
    for i in 0..piece.len() - 1 {
        let r = rank(&piece[i..i + 2]);
        if r != NONE {
            heap.push(merge(i, r));
            state[i].next_rank = r;
        }
        state.push(State { prev: i, end: i + 2, next_end: i + 3, next_rank: NONE, cur_rank: NONE });
    }

    // Records the possible merge of the part at `start` with the part ending at `next_end`.
    let potential = |state: &mut [State], heap: &mut BinaryHeap<Merge>, start: usize, next_end| {
        state[start].next_end = next_end;
        state[start].next_rank = NONE;
        if next_end <= piece.len() {
            let r = rank(&piece[start..next_end]);
            if r != NONE {
                heap.push(merge(start, r));
                state[start].next_rank = r;
            }
        }
    };

    while let Some(left) = heap.pop() {
        let (left_start, left_rank) = unpack(left);
        if left_rank != state[left_start].next_rank {
            continue; // superseded by a later merge
        }
        let right_start = state[left_start].end;
        let right_end = state[left_start].next_end;
        let right_next_end = state[right_start].next_end;
        state[left_start].cur_rank = state[left_start].next_rank;
        state[left_start].end = right_end;
        potential(&mut state, &mut heap, left_start, right_next_end);
        if right_end < state.len() {
            state[right_end].prev = left_start;
        }
        if left_start > 0 {
            let prev_start = state[left_start].prev;
            potential(&mut state, &mut heap, prev_start, right_end);
        }
        state[right_start].next_rank = NONE;
    }

    let mut tokens = Vec::new();
    let mut i = 0;
    while i < state.len() {
        let end = state[i].end;
        if state[i].cur_rank != NONE {
            tokens.push(state[i].cur_rank);
        } else if let Some(r) = table.rank(&piece[i..end]) {
            // A part never merged is a single byte, and every byte is a token.
            tokens.push(r);
        }
        i = end;
    }
    tokens
}
