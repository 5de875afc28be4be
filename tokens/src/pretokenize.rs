//! Pre-tokenization: the split of a text into the pieces that byte-pair merging encodes one
//! by one, with tiktoken's regexes, as `fancy-regex` matches them (leftmost-first, every
//! match starting where the previous one ended).
//!
//! Both regexes end in the alternatives `\s+(?!\S)|\s+` (cl100k: `|\s`), whose negative
//! look-ahead the `regex` crates cannot express. A run of whitespace matched by `\s+(?!\S)`
//! is the whole run when the text ends with it, else the run but its last character (which
//! must be followed by whitespace, not by the `\S` after the run), and nothing when the run
//! is a single character followed by `\S`. So the alternation is compiled as three patterns
//! of one leftmost-first automaton, tried in order at each position (as one alternation
//! would be):
//!
//! 1. every alternative before the look-ahead, then `\s+$` (the run that ends the text);
//! 2. `\s+\s`, whose match is the run, and whose last character is then dropped;
//! 3. the last alternative, `\s+` (or `\s`).
//!
//! tiktoken-rs's cl100k regex also has possessive quantifiers (`?+`, `++`, `{1,3}+`, `*+`),
//! which no backtracking could undo there anyway (each is followed by a class it excludes,
//! or by the end of its alternative; `\s++$` cannot match with fewer spaces either): they are
//! written as the plain quantifiers they match like.

use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input};

/// o200k_base's pattern (tiktoken-rs's `O200K_BASE_PAT_STR`), with `\s+(?!\S)` rewritten.
const O200K_BASE: [&str; 3] = [
    concat!(
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"|\p{N}{1,3}",
        r"| ?[^\s\p{L}\p{N}]+[\r\n/]*",
        r"|\s*[\r\n]+",
        r"|\s+$",
    ),
    r"\s+\s",
    r"\s+",
];

/// cl100k_base's pattern (tiktoken-rs's, in `cl100k_base()`), with `\s+(?!\S)` rewritten; its
/// end-of-text case is `\s++$`, an earlier alternative already.
const CL100K_BASE: [&str; 3] = [
    concat!(
        r"'(?i:[sdmt]|ll|ve|re)",
        r"|[^\r\n\p{L}\p{N}]?\p{L}+",
        r"|\p{N}{1,3}",
        r"| ?[^\s\p{L}\p{N}]+[\r\n]*",
        r"|\s+$",
        r"|\s*[\r\n]",
    ),
    r"\s+\s",
    r"\s",
];

/// Which of the three patterns has a look-ahead character to drop.
const LOOKAHEAD: [bool; 3] = [false, true, false];

/// A compiled pre-tokenization regex.
pub(crate) struct Pretokenizer {
    regex: Regex,
}

impl Pretokenizer {
    pub(crate) fn o200k_base() -> Pretokenizer {
        Pretokenizer::new(&O200K_BASE)
    }

    pub(crate) fn cl100k_base() -> Pretokenizer {
        Pretokenizer::new(&CL100K_BASE)
    }

    fn new(patterns: &[&str; 3]) -> Pretokenizer {
        // The patterns are constants, compiled by a test of every build: this cannot fail.
        let regex = Regex::new_many(patterns).expect("the pre-tokenization patterns compile");
        Pretokenizer { regex }
    }

    /// Calls `piece` with each piece of `text`, in order. Text that no alternative matches
    /// would be skipped, as tiktoken's unanchored search skips it (none does: every character
    /// is a letter, a number, whitespace or none of these, and each has its alternative).
    #[inline]
    pub(crate) fn for_each_piece(&self, text: &str, mut piece: impl FnMut(&[u8])) {
        let mut at = 0;
        while at < text.len() {
            let input = Input::new(text).span(at..text.len()).anchored(Anchored::Yes);
            let Some(found) = self.regex.find(input) else {
                at += text[at..].chars().next().map_or(1, char::len_utf8);
                continue;
            };
            let mut end = found.end();
            if LOOKAHEAD.get(found.pattern().as_usize()) == Some(&true) {
                // `\s+\s` matched at least two characters: dropping one leaves one.
                end -= text[at..end].chars().next_back().map_or(0, char::len_utf8);
            }
            if end <= at {
                // No pattern matches the empty string; this only guards the loop.
                end = found.end().max(at + text[at..].chars().next().map_or(1, char::len_utf8));
            }
            piece(&text.as_bytes()[at..end]);
            at = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(pre: &Pretokenizer, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        pre.for_each_piece(text, |p| out.push(String::from_utf8_lossy(p).into_owned()));
        out
    }

    #[test]
    fn a_space_run_before_a_word_leaves_its_last_space_to_the_word() {
        for pre in [Pretokenizer::o200k_base(), Pretokenizer::cl100k_base()] {
            assert_eq!(pieces(&pre, "a   b"), ["a", "  ", " b"]);
            assert_eq!(pieces(&pre, "a b"), ["a", " b"]);
            assert_eq!(pieces(&pre, "a   "), ["a", "   "]);
            assert_eq!(pieces(&pre, "   "), ["   "]);
        }
    }
}
