//! Text in OpenAI model tokens (`o200k_base`, `cl100k_base`), exactly as tiktoken encodes it
//! as ordinary text, from tables compiled into the binary.
//!
//! The tokens are those of `tiktoken-rs`'s `CoreBPE::encode_ordinary`: the same
//! pre-tokenization regexes (their look-ahead emulated, see `pretokenize`), the same
//! byte-pair merging. Special-token text such as `<|endoftext|>` is just characters.
//!
//! Nothing is parsed at run time: `build.rs` enumerates every token with `tiktoken-rs` and
//! lays the tables out in the binary's read-only data (6.7 MB for `o200k_base`, 3.4 MB
//! for `cl100k_base`), of which only the pages lookups touch become resident. The only
//! start-up cost is compiling an encoding's regex, once per process, on the first
//! [`Tokenizer::new`] for it: about 5 ms for `o200k_base` (its many Unicode classes), 1.5 ms
//! for `cl100k_base`, and 2 MB of heap.
//!
//! ```
//! use moat_tokens::{Encoding, Tokenizer};
//!
//! let tokenizer = Tokenizer::new(Encoding::O200kBase);
//! let tokens = tokenizer.encode_ordinary("Hello, world!");
//! assert_eq!(tokenizer.count("Hello, world!"), tokens.len());
//! assert_eq!(tokenizer.decode_bytes(&tokens).as_deref(), Some(&b"Hello, world!"[..]));
//! ```
//!
//! No input makes it panic or backtrack: the regexes run on finite automata (linear time),
//! and long pieces (a megabyte of one letter is one piece) are merged with a heap.

mod hash;
mod merge;
mod pretokenize;
mod table;

use pretokenize::Pretokenizer;
use std::fmt;
use std::sync::OnceLock;
use table::Table;

/// An encoding: the byte-pair ranks and the pre-tokenization regex of a family of models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// GPT-4o, GPT-4.1, GPT-5, the o-series.
    O200kBase,
    /// GPT-4, GPT-3.5.
    Cl100kBase,
}

impl Encoding {
    /// The encoding's name as tiktoken spells it: `"o200k_base"`, `"cl100k_base"`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tokenizer of one encoding: a handle to static tables and to a regex compiled once per
/// process. `Copy`, `Send` and `Sync`; pass it around by value.
#[derive(Clone, Copy)]
pub struct Tokenizer {
    encoding: Encoding,
    table: &'static Table,
    pre: &'static Pretokenizer,
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer").field("encoding", &self.encoding).finish()
    }
}

impl Tokenizer {
    /// The tokenizer of `encoding`. The first call for an encoding in a process compiles its
    /// pre-tokenization regex (milliseconds, see the crate's docs); later calls
    /// only copy two references.
    pub fn new(encoding: Encoding) -> Tokenizer {
        static O200K: OnceLock<Pretokenizer> = OnceLock::new();
        static CL100K: OnceLock<Pretokenizer> = OnceLock::new();
        let (table, pre) = match encoding {
            Encoding::O200kBase => {
                (&table::O200K_BASE, O200K.get_or_init(Pretokenizer::o200k_base))
            }
            Encoding::Cl100kBase => {
                (&table::CL100K_BASE, CL100K.get_or_init(Pretokenizer::cl100k_base))
            }
        };
        Tokenizer { encoding, table, pre }
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The tokens of `text` encoded as ordinary text (as tiktoken's `encode_ordinary`).
    pub fn encode_ordinary(&self, text: &str) -> Vec<u32> {
        let mut tokens = Vec::with_capacity(text.len() / 4);
        let mut parts = Vec::new();
        self.pre.for_each_piece(text, |piece| self.encode_piece(piece, &mut parts, &mut tokens));
        tokens
    }

    /// The number of tokens of `text` (`encode_ordinary(text).len()`, without the vector).
    pub fn count(&self, text: &str) -> usize {
        let mut count = 0;
        let mut parts = Vec::new();
        self.pre.for_each_piece(text, |piece| count += self.count_piece(piece, &mut parts));
        count
    }

    /// The bytes of token `rank`, if the encoding has it. Special tokens have theirs (their
    /// text, as tiktoken decodes them), though `encode_ordinary` never produces them.
    pub fn token_bytes(&self, rank: u32) -> Option<&'static [u8]> {
        self.table.token_bytes(rank)
    }

    /// The bytes of `tokens`, back to back; None if one of them is not a token. A prefix of
    /// an encoding can end inside a character: the bytes are not always UTF-8.
    pub fn decode_bytes(&self, tokens: &[u32]) -> Option<Vec<u8>> {
        let mut bytes = Vec::with_capacity(tokens.len() * 4);
        for &rank in tokens {
            bytes.extend_from_slice(self.token_bytes(rank)?);
        }
        Some(bytes)
    }

    /// One more than the encoding's largest rank (special tokens included).
    pub fn ranks(&self) -> u32 {
        self.table.ranks()
    }

    /// Appends the tokens of one piece to `tokens` (`parts` is scratch space).
    #[inline]
    fn encode_piece(&self, piece: &[u8], parts: &mut Vec<merge::Part>, tokens: &mut Vec<u32>) {
        if let Some(rank) = self.table.rank(piece) {
            tokens.push(rank);
        } else if piece.len() < merge::LARGE {
            merge::merge_small(self.table, piece, parts);
            // Every part is a token: each starts as a byte, and merges only form tokens.
            let last = parts.len() - 1;
            tokens.extend(parts[..last].iter().filter_map(|part| part.token(self.table, piece)));
        } else {
            tokens.extend(merge::merge_large(self.table, piece));
        }
    }

    /// The number of tokens of one piece.
    #[inline]
    fn count_piece(&self, piece: &[u8], parts: &mut Vec<merge::Part>) -> usize {
        if self.table.rank(piece).is_some() {
            1
        } else if piece.len() < merge::LARGE {
            merge::merge_small(self.table, piece, parts);
            parts.len() - 1
        } else {
            merge::merge_large(self.table, piece).len()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizers_are_small_copy_send_and_sync_handles() {
        fn assert_traits<T: Copy + Send + Sync + 'static>() {}
        assert_traits::<Tokenizer>();
        assert!(std::mem::size_of::<Tokenizer>() <= 24);
    }

    #[test]
    fn encodings_are_named_as_tiktoken_names_them() {
        assert_eq!(Encoding::O200kBase.to_string(), "o200k_base");
        assert_eq!(Encoding::Cl100kBase.name(), "cl100k_base");
    }

    #[test]
    fn unknown_ranks_have_no_bytes() {
        let tokenizer = Tokenizer::new(Encoding::Cl100kBase);
        assert_eq!(tokenizer.token_bytes(u32::MAX), None);
        assert_eq!(tokenizer.token_bytes(tokenizer.ranks()), None);
        assert_eq!(tokenizer.decode_bytes(&[0, u32::MAX]), None);
        assert_eq!(tokenizer.decode_bytes(&[]), Some(Vec::new()));
    }
}
