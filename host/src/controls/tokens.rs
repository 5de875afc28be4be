//! Counting and cutting text in model tokens, with the models' own byte-pair encodings
//! (`o200k_base`, `cl100k_base`), through `moat-tokens` (`tokens/`): tiktoken's tokens from
//! tables compiled into the binary, nothing parsed or fetched at run time, so a tokenizer
//! is ready in milliseconds and holds a few megabytes.
//!
//! Text is encoded as ordinary text: a tool that writes `<|endoftext|>` gets it counted as the
//! characters it is, never as a special token.

use moat_tokens::Encoding;
use serde::Deserialize;
use std::fmt;

/// A token's rank in its encoding.
type Rank = u32;

/// Which encoding tokens are counted in. `moat.toml` spells them `"o200k_base"` (the default:
/// GPT-4o, GPT-4.1, GPT-5, o-series) and `"cl100k_base"` (GPT-4, GPT-3.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
pub enum TokenizerKind {
    #[default]
    #[serde(rename = "o200k_base")]
    O200kBase,
    #[serde(rename = "cl100k_base")]
    Cl100kBase,
}

impl fmt::Display for TokenizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenizerKind::O200kBase => "o200k_base",
            TokenizerKind::Cl100kBase => "cl100k_base",
        })
    }
}

/// A tokenizer: a handle to an encoding's static tables, shared by every call. `Copy`,
/// `Send` and `Sync`; pass it around by value.
#[derive(Clone, Copy)]
pub struct Tokenizer {
    kind: TokenizerKind,
    bpe: moat_tokens::Tokenizer,
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer").field("kind", &self.kind).finish()
    }
}

/// A text is encoded in segments, split where every supported encoding splits anyway (so
/// counts are exact): a segment ends at the first such point past `SEGMENT` bytes. A run of
/// `MAX_SEGMENT` bytes without one (a wall of spaces, one letter repeated, a long emoji
/// string) is split there anyway. That keeps byte-pair merging fast (a megabyte of one
/// letter is one piece, merged in most of a second), at the cost of a token or so per forced
/// split, and gives `cut` short pieces to work on.
const SEGMENT: usize = 1024;
const MAX_SEGMENT: usize = 4096;
/// Retries of `cut`'s check of its last segment before it falls back to a cut by bytes.
const SHRINKS: usize = 8;

impl Tokenizer {
    /// The tokenizer of `kind`. The first call for a kind in a process compiles its
    /// pre-tokenization regex (a few milliseconds); later calls share it.
    pub fn new(kind: TokenizerKind) -> Tokenizer {
        let encoding = match kind {
            TokenizerKind::O200kBase => Encoding::O200kBase,
            TokenizerKind::Cl100kBase => Encoding::Cl100kBase,
        };
        Tokenizer { kind, bpe: moat_tokens::Tokenizer::new(encoding) }
    }

    pub fn kind(&self) -> TokenizerKind {
        self.kind
    }

    /// The number of tokens in `text`.
    pub fn count(&self, text: &str) -> u64 {
        segments(text).map(|segment| self.tokens_in(segment) as u64).sum()
    }

    /// Where to cut `text` so that `&text[..cut]` holds at most `max_tokens` tokens: the byte
    /// offset of the last token boundary within `max_tokens` tokens that is also a character
    /// boundary, so the slice is valid UTF-8 and no token is split. `text.len()` when all of
    /// it fits; 0 only for empty text. When not even the first character fits (`max_tokens`
    /// is 0, or one character is several tokens), the cut is after that one character, so
    /// that a reader cutting piece after piece always moves on.
    ///
    /// Guaranteed: `count(&text[..cut]) <= max_tokens` whenever the first character fits.
    pub fn cut(&self, text: &str, max_tokens: u64) -> usize {
        self.cut_counted(text, max_tokens).0
    }

    /// [`Tokenizer::cut`], and `count(&text[..cut])` with it (without counting twice).
    pub fn cut_counted(&self, text: &str, max_tokens: u64) -> (usize, u64) {
        let max = usize::try_from(max_tokens).unwrap_or(usize::MAX);
        let mut used = 0;
        let mut start = 0;
        for segment in segments(text) {
            let tokens = self.encode(segment);
            if tokens.len() <= max - used {
                used += tokens.len();
                start += segment.len();
                continue;
            }
            let (end, tokens) = self.cut_segment(segment, &tokens, max - used);
            if start + end > 0 {
                return (start + end, (used + tokens) as u64);
            }
            let end = first_char(text);
            return (end, self.count(&text[..end]));
        }
        (text.len(), used as u64)
    }

    /// The cut of one segment (whose encoding is `tokens`) at `max` tokens, checked, and the
    /// tokens before it.
    fn cut_segment(&self, segment: &str, tokens: &[Rank], max: usize) -> (usize, usize) {
        let mut end = self.boundary(segment, tokens, max);
        for _ in 0..SHRINKS {
            if end == 0 {
                return (0, 0);
            }
            // Alone, a segment's prefix can (rarely, at its very end) tokenize differently
            // than inside the segment: make sure it fits, and cut it again if not.
            let prefix = self.encode(&segment[..end]);
            if prefix.len() <= max {
                return (end, prefix.len());
            }
            end = self.boundary(&segment[..end], &prefix, max);
        }
        self.cut_bytes(&segment[..end], max)
    }

    /// The cut of a segment whose cut would not settle, at `max` bytes: every token is at least one byte, so it holds at most `max` tokens.
    fn cut_bytes(&self, segment: &str, max: usize) -> (usize, usize) {
        let end = segment.floor_char_boundary(max);
        (end, self.tokens_in(&segment[..end]).min(end))
    }

    /// The byte offset after the first `max` of `tokens` (the encoding of `text`), moved back
    /// to the nearest token boundary that is a character boundary. 0 when there is none.
    fn boundary(&self, text: &str, tokens: &[Rank], max: usize) -> usize {
        let mut kept = max.min(tokens.len());
        let Some(bytes) = self.bpe.decode_bytes(&tokens[..kept]) else {
            return 0;
        };
        let mut end = bytes.len().min(text.len());
        while !text.is_char_boundary(end) && kept > 0 {
            kept -= 1;
            let token = self.bpe.token_bytes(tokens[kept]).map_or(end, <[u8]>::len);
            end = end.saturating_sub(token);
        }
        if text.is_char_boundary(end) {
            end
        } else {
            0
        }
    }

    /// The encoding of one segment.
    fn encode(&self, segment: &str) -> Vec<Rank> {
        self.bpe.encode_ordinary(segment)
    }

    /// The tokens in one segment.
    fn tokens_in(&self, segment: &str) -> usize {
        self.bpe.count(segment)
    }
}

/// The segments of `text`, in order (see [`SEGMENT`]).
fn segments(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len();
        let mut previous = None;
        for (at, c) in rest.char_indices() {
            if at >= MAX_SEGMENT || (at >= SEGMENT && previous.is_some_and(|p| splits(p, c))) {
                end = at;
                break;
            }
            previous = Some(c);
        }
        let (segment, after) = rest.split_at(end);
        rest = after;
        Some(segment)
    })
}

/// Whether both encodings always end a piece between `before` and `after`, whatever comes
/// around them (so a text cut there encodes as its two halves do): before a space that
/// follows a non-space, and between ASCII letters, digits and punctuation, except where
/// punctuation precedes a letter (`"name` is one piece) and around apostrophes (`'s`).
fn splits(before: char, after: char) -> bool {
    #[derive(PartialEq)]
    enum Class {
        Letter,
        Digit,
        Punctuation,
        Other,
    }
    let class = |c: char| match c {
        '\'' => Class::Other,
        c if c.is_ascii_alphabetic() => Class::Letter,
        c if c.is_ascii_digit() => Class::Digit,
        c if c.is_ascii_punctuation() => Class::Punctuation,
        _ => Class::Other,
    };
    if after == ' ' {
        return !before.is_whitespace();
    }
    match (class(before), class(after)) {
        (Class::Other, _) | (_, Class::Other) | (Class::Punctuation, Class::Letter) => false,
        (b, a) => b != a,
    }
}

/// The end of the first character of `text` (0 when it is empty).
fn first_char(text: &str) -> usize {
    text.chars().next().map_or(0, char::len_utf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o200k() -> Tokenizer {
        Tokenizer::new(TokenizerKind::O200kBase)
    }

    #[test]
    fn kinds_deserialize_from_their_encoding_names() {
        #[derive(Deserialize)]
        struct Config {
            tokenizer: TokenizerKind,
        }
        let parse = |text: &str| toml::from_str::<Config>(text).map(|c| c.tokenizer);
        assert_eq!(parse("tokenizer = \"o200k_base\"").ok(), Some(TokenizerKind::O200kBase));
        assert_eq!(parse("tokenizer = \"cl100k_base\"").ok(), Some(TokenizerKind::Cl100kBase));
        assert!(parse("tokenizer = \"gpt2\"").is_err());
        assert_eq!(TokenizerKind::default().to_string(), "o200k_base");
    }

    #[test]
    fn a_token_split_inside_a_character_is_never_a_cut() {
        let tokenizer = o200k();
        // Rare CJK and emoji are encoded as byte-level tokens, several per character.
        let text = "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🦀🦀🦀";
        for max in 0..=tokenizer.count(text) {
            let cut = tokenizer.cut(text, max);
            assert!(text.is_char_boundary(cut), "cut {cut} at {max} tokens");
            assert!(cut > 0);
        }
    }

    /// Random strings over characters that make pieces join or split.
    fn tricky_strings(count: usize) -> Vec<String> {
        const ALPHABET: &[&str] = &[
            " ", "  ", "\n", "\r\n", "\t", "'", "'s", "s", "A", "ab", "Zz", "1", "12345", "\"",
            ":", ",", "/", "{", "é", "e\u{301}", "🦀", "日本", "\u{a0}", "ß", ".", "-", "_",
            "\u{301}", "'LL", "ʼ", "x1", "9a", "!\n/", "\u{3000}",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        (0..count)
            .map(|_| {
                (0..40)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        ALPHABET[(seed % ALPHABET.len() as u64) as usize]
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_text_split_where_segments_split_encodes_as_its_two_halves_do() {
        for kind in [TokenizerKind::O200kBase, TokenizerKind::Cl100kBase] {
            let bpe = Tokenizer::new(kind).bpe;
            for text in tricky_strings(3000) {
                let whole = bpe.encode_ordinary(&text);
                let mut previous = None;
                for (at, c) in text.char_indices() {
                    if previous.is_some_and(|p| splits(p, c)) {
                        let mut halves = bpe.encode_ordinary(&text[..at]);
                        halves.extend(bpe.encode_ordinary(&text[at..]));
                        assert_eq!(halves, whole, "{kind}: {text:?} split at {at}");
                    }
                    previous = Some(c);
                }
            }
        }
    }

    #[test]
    fn segmenting_a_long_ordinary_text_does_not_change_its_count() {
        let mut text = String::new();
        for i in 0..3000 {
            text.push_str(&format!(
                "{{\"id\":{i},\"name\":\"Zoë 🦀\",\"url\":\"https://example.com/a/{i}?q=x\"}}\n\
                 It's {i} o'clock — naïve café, 日本語のテキスト、テスト。 fn main() {{ x += 1; }}\n"
            ));
        }
        for kind in [TokenizerKind::O200kBase, TokenizerKind::Cl100kBase] {
            let tokenizer = Tokenizer::new(kind);
            assert!(segments(&text).count() > 100);
            let whole = tokenizer.bpe.encode_ordinary(&text).len() as u64;
            assert_eq!(tokenizer.count(&text), whole, "{kind}");
        }
    }

    #[test]
    fn special_token_text_is_counted_as_ordinary_text() {
        assert!(o200k().count("<|endoftext|>") > 1);
    }
}
