//! Finding secret values in text and bytes, in every form moat looks for, and replacing them.
//!
//! Each value of at least [`MIN_REDACTED_LEN`] bytes is looked for as these *forms*:
//! - the value itself;
//! - its hex (the bytes of its UTF-8), in either case (mixed case too);
//! - its base64, standard and URL-safe, padded and unpadded, and, for each of the two
//!   alphabets, the three *fragments* a value embedded in a longer base64-encoded string can
//!   become: base64 encodes three bytes as four characters, so a value starting at a byte
//!   offset of 0, 1 or 2 (mod 3) in the encoded string is spelled by one of three strings
//!   of characters (the characters whose six bits all come from the value; the one or two
//!   at each end mixed with the neighbouring bytes differ with what surrounds it).
//!
//! Each character of a form is matched as itself or in any *spelling* of it that text
//! meant for a machine uses: percent-encoded (each UTF-8 byte as `%hh`, either case; `+` for
//! a space), a JSON or JavaScript escape (`\uhhhh`, either case, surrogate pairs for
//! characters past U+FFFF; `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`). The value's own
//! characters can each be spelled so, in any mix (whatever an encoder left alone); the
//! encodings' characters are letters and digits, matched as they are (except the hex
//! letters' case), and their `+`, `/`, `=`, `-`, `_` in any spelling (percent-encoded
//! base64 in a URL, `\/` in JSON text).
//!
//! Every occurrence of every form is found, overlapping ones included, and each run of
//! overlapping occurrences is replaced by one marker, `[redacted:NAME]`. What is left is
//! checked again; text that still holds a form after that (a value that spans the
//! marker's own text) is replaced whole.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use regex_automata::meta::Regex;
use regex_automata::Input;
use std::borrow::Cow;

/// Values shorter than this are not redacted: replacing every "ab" in an output would
/// destroy it and protect nothing. Configure real secrets.
pub const MIN_REDACTED_LEN: usize = 4;

/// The marker that does not name the secret: for a value that can be found in a marker
/// naming it, and for text in which redaction could not leave a clean result.
const UNNAMED: &str = "[redacted]";

/// Passes of redaction over one text before it is replaced whole.
const PASSES: usize = 3;

/// How the characters of a form may be spelled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The value itself: every character in any spelling.
    Value,
    /// Hex: letters in either case; digits as they are.
    Hex,
    /// Base64: letters and digits as they are; the rest in any spelling.
    Base64,
}

/// Finds and replaces a set of secret values (several values may share a name: a secret's
/// earlier values are redacted too).
pub struct Redactor {
    /// The names, by secret index.
    names: Vec<String>,
    /// The secret index of each pattern of `regex`.
    owners: Vec<usize>,
    /// Every form of every value, longest first; `None` when there is nothing to find.
    regex: Option<Regex>,
    /// Whether markers name the secret (`[redacted:NAME]`), or not: `[redacted]` when a
    /// value can be found in its own named marker, nothing at all when a value can be found
    /// in that too.
    named: bool,
    unnamed: &'static str,
    /// Set when the patterns could not be built: every text is then replaced whole.
    broken: bool,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values.
        f.debug_struct("Redactor").field("names", &self.names).finish_non_exhaustive()
    }
}

impl Default for Redactor {
    fn default() -> Redactor {
        Redactor {
            names: Vec::new(),
            owners: Vec::new(),
            regex: None,
            named: true,
            unnamed: UNNAMED,
            broken: false,
        }
    }
}

impl Redactor {
    /// A redactor of `values` (`(name, value)`); values shorter than [`MIN_REDACTED_LEN`]
    /// bytes are left out.
    pub fn new(values: &[(String, String)]) -> Redactor {
        let mut names: Vec<String> = Vec::new();
        // (form length, pattern, secret index), deduplicated by pattern.
        let mut patterns: Vec<(usize, String, usize)> = Vec::new();
        for (name, value) in values.iter().filter(|(_, value)| value.len() >= MIN_REDACTED_LEN) {
            let owner = match names.iter().position(|n| n == name) {
                Some(index) => index,
                None => {
                    names.push(name.clone());
                    names.len() - 1
                }
            };
            for (form, kind) in forms(value) {
                let pattern = pattern(&form, kind);
                if !patterns.iter().any(|(_, p, _)| *p == pattern) {
                    patterns.push((form.len(), pattern, owner));
                }
            }
        }
        if patterns.is_empty() {
            return Redactor::default();
        }
        // Longest first: where two forms start at the same place, the longer one is taken.
        patterns.sort_by_key(|pattern| std::cmp::Reverse(pattern.0));
        let config = Regex::config()
            .nfa_size_limit(None)
            .which_captures(regex_automata::nfa::thompson::WhichCaptures::Implicit);
        let built = Regex::builder()
            .configure(config)
            .build_many(&patterns.iter().map(|(_, p, _)| p.as_str()).collect::<Vec<_>>());
        let owners = patterns.iter().map(|(_, _, owner)| *owner).collect();
        let (regex, broken) = match built {
            Ok(regex) => (Some(regex), false),
            Err(error) => {
                tracing::error!(
                    "secret redaction could not be prepared ({error}); every text a tool \
                     returns is replaced whole"
                );
                (None, true)
            }
        };
        let mut redactor = Redactor { names, owners, regex, named: true, unnamed: UNNAMED, broken };
        // A value found in a marker (or two side by side) would come back with the marker.
        let named: String = (0..redactor.names.len()).map(|i| redactor.marker(&[i])).collect();
        redactor.named = !redactor.finds(format!("{named}{named}").as_bytes());
        if redactor.finds(format!("{UNNAMED}{UNNAMED}").as_bytes()) && !broken {
            redactor.unnamed = "";
        }
        redactor
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.regex.is_none() && !self.broken
    }

    /// Whether `bytes` hold any form of any value.
    pub fn finds(&self, bytes: &[u8]) -> bool {
        match &self.regex {
            Some(regex) => regex.is_match(bytes),
            None => self.broken,
        }
    }

    /// `text` with every form of every value replaced by a marker; borrowed when nothing
    /// was found.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if self.broken {
            return Cow::Owned(UNNAMED.to_owned());
        }
        let Some(regex) = &self.regex else { return Cow::Borrowed(text) };
        let mut current = Cow::Borrowed(text);
        for _ in 0..PASSES {
            match self.pass(regex, &current) {
                Some(next) => current = Cow::Owned(next),
                None => return current,
            }
        }
        match regex.is_match(current.as_bytes()) {
            true => Cow::Owned(self.unnamed.to_owned()),
            false => current,
        }
    }

    /// One pass: the text with every run of overlapping occurrences replaced, or `None` if
    /// there was none.
    fn pass(&self, regex: &Regex, text: &str) -> Option<String> {
        let bytes = text.as_bytes();
        // (start, end, secret) of each occurrence, in order of start.
        let mut found: Vec<(usize, usize, usize)> = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let Some(m) = regex.search(&Input::new(bytes).range(at..)) else { break };
            found.push((m.start(), m.end(), self.owners[m.pattern().as_usize()]));
            // Occurrences may overlap: the next one may start one byte further.
            at = m.start() + 1;
        }
        if found.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        let mut i = 0;
        while i < found.len() {
            let (start, mut end, owner) = found[i];
            let mut owners = vec![owner];
            i += 1;
            while i < found.len() && found[i].0 < end {
                end = end.max(found[i].1);
                owners.push(found[i].2);
                i += 1;
            }
            // Forms are whole characters, so these are character boundaries; if not, the
            // text is not kept at all.
            let (Some(before), true) = (text.get(copied..start), text.is_char_boundary(end)) else {
                return Some(self.unnamed.to_owned());
            };
            out.push_str(before);
            owners.sort_unstable();
            owners.dedup();
            out.push_str(&self.marker(&owners));
            copied = end;
        }
        out.push_str(&text[copied..]);
        Some(out)
    }

    fn marker(&self, owners: &[usize]) -> String {
        if !self.named {
            return self.unnamed.to_owned();
        }
        let names: Vec<&str> = owners.iter().map(|&i| self.names[i].as_str()).collect();
        format!("[redacted:{}]", names.join(","))
    }
}

/// The forms `value` is looked for in (see the module's documentation), each at least
/// [`MIN_REDACTED_LEN`] bytes long.
fn forms(value: &str) -> Vec<(String, Kind)> {
    let bytes = value.as_bytes();
    let mut forms = vec![(value.to_owned(), Kind::Value), (hex::encode(bytes), Kind::Hex)];
    for (padded, unpadded) in [(STANDARD, STANDARD_NO_PAD), (URL_SAFE, URL_SAFE_NO_PAD)] {
        forms.push((padded.encode(bytes), Kind::Base64));
        forms.push((unpadded.encode(bytes), Kind::Base64));
        for offset in 0..3 {
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(bytes);
            let encoded = unpadded.encode(&shifted);
            // Character i holds bits 6i..6i+6 of the bytes: those from the value's first bit
            // (8 * offset) to its last (8 * (offset + len)) are its own.
            let first = (8 * offset).div_ceil(6);
            let end = (8 * (offset + bytes.len())) / 6;
            forms.push((encoded[first..end].to_owned(), Kind::Base64));
        }
    }
    forms.retain(|(form, _)| form.len() >= MIN_REDACTED_LEN);
    let mut seen = std::collections::HashSet::new();
    forms.retain(|(form, _)| seen.insert(form.clone()));
    forms
}

/// The regex of one form: each character as a group of its spellings, longest first.
fn pattern(form: &str, kind: Kind) -> String {
    let mut pattern = String::new();
    for c in form.chars() {
        let cases: Vec<char> = match kind {
            Kind::Hex if c.is_ascii_alphabetic() => {
                vec![c.to_ascii_lowercase(), c.to_ascii_uppercase()]
            }
            _ => vec![c],
        };
        let mut spellings = Vec::new();
        for c in cases {
            if kind == Kind::Value || !c.is_ascii_alphanumeric() {
                spellings.extend(escaped(c));
            }
            spellings.push(literal(c));
            if kind == Kind::Value && c == ' ' {
                spellings.push(r"\+".to_owned());
            }
        }
        pattern.push_str("(?:");
        pattern.push_str(&spellings.join("|"));
        pattern.push(')');
    }
    pattern
}

/// The escaped spellings of `c` (regexes): `\uhhhh`, `%hh` per byte, a JSON short escape.
fn escaped(c: char) -> Vec<String> {
    let mut spellings = Vec::new();
    let mut units = [0u16; 2];
    let unicode: String = c
        .encode_utf16(&mut units)
        .iter()
        .map(|unit| format!(r"\\u{}", hex_digits(u32::from(*unit), 4)))
        .collect();
    spellings.push(unicode);
    let mut utf8 = [0u8; 4];
    let percent: String = c
        .encode_utf8(&mut utf8)
        .bytes()
        .map(|byte| format!("%{}", hex_digits(u32::from(byte), 2)))
        .collect();
    spellings.push(percent);
    let short = match c {
        '"' => Some('"'),
        '\\' => Some('\\'),
        '/' => Some('/'),
        '\u{8}' => Some('b'),
        '\u{c}' => Some('f'),
        '\n' => Some('n'),
        '\r' => Some('r'),
        '\t' => Some('t'),
        _ => None,
    };
    if let Some(short) = short {
        spellings.push(format!(r"\\{}", literal(short)));
    }
    // Longest first, so that where two spellings start alike the longer is taken.
    spellings.sort_by_key(|s| std::cmp::Reverse(s.len()));
    spellings
}

/// `c` itself, as a regex.
fn literal(c: char) -> String {
    if c.is_ascii_alphanumeric() {
        c.to_string()
    } else {
        format!(r"\x{{{:X}}}", c as u32)
    }
}

/// `value` as `digits` hex digits, each letter matching either case.
fn hex_digits(value: u32, digits: u32) -> String {
    (0..digits)
        .rev()
        .map(|i| {
            let nibble = (value >> (4 * i)) & 0xf;
            match char::from_digit(nibble, 16) {
                Some(d) if d.is_ascii_alphabetic() => {
                    format!("[{}{}]", d, d.to_ascii_uppercase())
                }
                Some(d) => d.to_string(),
                None => String::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(values: &[(&str, &str)]) -> Redactor {
        let values: Vec<(String, String)> =
            values.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        Redactor::new(&values)
    }

    #[test]
    fn a_value_and_each_of_its_encodings_are_redacted() {
        let secret = "s3cr3t-value/+?";
        let r = redactor(&[("TOKEN", secret)]);
        let b64 = STANDARD.encode(secret);
        let url = URL_SAFE_NO_PAD.encode(secret);
        let hex_upper = hex::encode_upper(secret);
        for text in [
            format!("x {secret} y"),
            format!("x {b64} y"),
            format!("x {url} y"),
            format!("x {} y", hex::encode(secret)),
            format!("x {hex_upper} y"),
            "x s3cr3t%2Dvalue%2f%2B%3F y".to_owned(),
            "x %73%33%63%72%33%74%2d%76%61%6C%75%65%2F%2B%3f y".to_owned(),
            r"x \u0073\u0033cr3t-value\/+? y".to_owned(),
        ] {
            assert_eq!(r.redact(&text), "x [redacted:TOKEN] y", "{text}");
        }
    }

    #[test]
    fn a_value_embedded_in_a_longer_base64_string_is_found_at_every_offset() {
        let secret = "correct horse battery staple";
        let r = redactor(&[("K", secret)]);
        for prefix in ["", "a", "ab", "abc", "abcd"] {
            for suffix in ["", "z", "zz", "zzz"] {
                let blob = format!("{prefix}{secret}{suffix}");
                for engine in [STANDARD, URL_SAFE_NO_PAD] {
                    let encoded = engine.encode(&blob);
                    let redacted = r.redact(&encoded);
                    let (left, right) = redacted.split_once("[redacted:K]").unwrap();
                    // What is left is the neighbours' characters and at most the one at each
                    // end that mixes their bits with the value's: never a byte of it.
                    assert!(left.len() <= (8 * prefix.len()).div_ceil(6) + 1, "{redacted}");
                    assert!(right.len() <= (8 * suffix.len()).div_ceil(6) + 3, "{redacted}");
                }
            }
        }
    }

    #[test]
    fn overlapping_and_nested_values_are_redacted_as_one_run() {
        let r = redactor(&[("A", "abcdef"), ("B", "defghi"), ("C", "bcde")]);
        assert_eq!(r.redact("xabcdefghiy"), "x[redacted:A,B,C]y");
        assert_eq!(r.redact("abcdeX bcde"), "a[redacted:C]X [redacted:C]");
        let r = redactor(&[("S", "aaaa")]);
        assert_eq!(r.redact("aaaaaaa"), "[redacted:S]");
    }

    #[test]
    fn a_value_found_in_its_own_marker_gets_an_unnamed_one() {
        let r = redactor(&[("TOKEN", "ted:TOK")]);
        assert_eq!(r.redact("a ted:TOK b"), "a [redacted] b");
        let r = redactor(&[("X", "acted")]);
        assert_eq!(r.redact("a acted b"), "a  b");
    }

    #[test]
    fn short_values_are_left_alone_and_bytes_are_searched() {
        let r = redactor(&[("A", "abc")]);
        assert!(r.is_empty());
        assert_eq!(r.redact("abc"), "abc");
        let r = redactor(&[("A", "hunter22")]);
        assert!(r.finds(b"\x00\xffhunter22\x01"));
        assert!(r.finds(hex::encode("hunter22").as_bytes()));
        assert!(!r.finds(b"hunter2"));
    }
}
