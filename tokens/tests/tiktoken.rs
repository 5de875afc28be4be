//! The tokens are tiktoken-rs's: on the repository's own files, on strings chosen to exercise
//! every alternative of the pre-tokenization regexes, and for every rank's bytes.

mod common;

use common::{assert_same, encodings};
use std::path::Path;

/// Every `.rs`, `.md` and `.wit` file under `dir`, but in build outputs, `node_modules` and
/// hidden directories.
fn sources(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !(name.starts_with('.') || name == "target" || name == "node_modules") {
                sources(&path, files);
            }
        } else if ["rs", "md", "wit"].iter().any(|ext| path.extension().is_some_and(|e| e == *ext))
        {
            files.push(path);
        }
    }
}

#[test]
fn every_source_file_of_the_repository_encodes_as_tiktoken_encodes_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(files.len() > 50, "found only {} files under {}", files.len(), root.display());
    for (tokenizer, reference) in encodings() {
        for file in &files {
            let Ok(text) = std::fs::read_to_string(file) else { continue };
            assert_same(tokenizer, reference, &text);
        }
    }
}

/// Strings at the edges of the regexes' alternatives.
const TRICKY: &[&str] = &[
    "",
    " ",
    "a",
    // Contractions, in every case, inside words, and alone.
    "it's I'M we'LL they'Re you'VE he'd don'T",
    "'s 'T 'LL 're 'Ve 'm 'D 'x ''s",
    "HELLO'S hello's Hello's hELLO'S",
    "'ſ 'K Straße'ſ",
    "ʼs ’s ‘t",
    // Numbers of every length up to 7 digits, and with separators.
    "1 12 123 1234 12345 123456 1234567",
    "3.14159 1,000,000 0x1F 1e-7 ١٢٣٤ ½ ⅓ Ⅻ ²³",
    "abc123def 12abc 1a2b3c",
    // Whitespace: runs, CR LF, tabs and spaces before newlines, trailing spaces.
    "a\r\nb\r\n\r\nc\r\n\r\n\r\n",
    "line  \nline\t\nline \t \n  \n\n",
    "   leading and trailing   ",
    "trailing\n   ",
    "\n  \n  x",
    "\t\t\tindented\n\t\t\t",
    "a \u{a0}b\u{3000}c\u{2028}d\u{85}e\u{b}f\u{c}g",
    "  \r\n  \r  \n",
    "x  !  ?  \n  /  ",
    "end with spaces    ",
    "\n\n\n",
    "  \n",
    " \n \n \n ",
    // Punctuation and code.
    "fn main() { println!(\"{}\", x?); }\n",
    "a/b//c///\n/// doc\n//\r\n",
    "<|endoftext|> <|fim_prefix|><|endofprompt|>",
    "?!... --- *** ### @@@ $$$ %%%",
    "https://example.com/path?query=1&x=y#frag",
    // Combining marks, emoji with ZWJ, CJK, Arabic, mixed scripts.
    "e\u{301} a\u{300}\u{301}\u{302} \u{301}\u{301} x\u{20dd}",
    "👨‍👩‍👧‍👦 🏳️‍🌈 👍🏽 🦀🦀🦀 ❤️",
    "日本語のテキスト、テスト。中文文本，测试。한국어 텍스트",
    "مرحبا بالعالم، هذا اختبار. שלום עולם",
    "Привет, мир! Γειά σου κόσμε. नमस्ते दुनिया",
    "English日本語English123日本語",
    "ǅemal ǈ ǋ Ǳ ᾈ ﬁ ﬀ",
    // Odd Unicode: replacement character, the last code point, noncharacters, controls.
    "\u{fffd}\u{fffd} \u{10ffff}\u{10ffff} \u{fffe} \u{e000}",
    "\u{0}\u{1}\u{7}\u{1b}[31mred\u{1b}[0m\u{7f}\u{9f}",
    "\u{200b}\u{200c}\u{200d}\u{feff}\u{2060}",
];

#[test]
fn tricky_strings_encode_as_tiktoken_encodes_them() {
    for (tokenizer, reference) in encodings() {
        for text in TRICKY {
            assert_same(tokenizer, reference, text);
        }
        // And together, where pieces can join across them.
        assert_same(tokenizer, reference, &TRICKY.concat());
        assert_same(tokenizer, reference, &TRICKY.join(" "));
        assert_same(tokenizer, reference, &TRICKY.join("\n  "));
    }
}

#[test]
fn whitespace_heavy_strings_split_as_the_look_ahead_splits_them() {
    let whitespace = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u{a0}", "\u{3000}", "\u{2009}"];
    let words = ["x", "Word", "12", "!", "日本", "'s", ""];
    for (tokenizer, reference) in encodings() {
        for a in whitespace {
            for b in whitespace {
                for c in whitespace {
                    for word in words {
                        let run = format!("{a}{b}{c}");
                        assert_same(tokenizer, reference, &format!("{word}{run}{word}"));
                        assert_same(tokenizer, reference, &format!("{run}{word}{run}"));
                        assert_same(tokenizer, reference, &format!("{run}{run}{run}{word}"));
                    }
                }
            }
        }
    }
}

#[test]
fn long_pieces_merge_as_tiktoken_merges_them() {
    // Pieces of 100 bytes and more take tiktoken's heap-based merge; so do ours.
    let unit = ["a", "ab", "xyz", "é", "日", "🦀", " ", "\n", "1", "!", "Zq"];
    for (tokenizer, reference) in encodings() {
        for u in unit {
            for n in [40, 49, 50, 51, 99, 100, 101, 333, 2000] {
                assert_same(tokenizer, reference, &u.repeat(n));
                assert_same(tokenizer, reference, &format!("x{}y", u.repeat(n)));
            }
        }
        let mixed: String = (0..3000).map(|i| char::from(b'a' + (i * 7 % 26) as u8)).collect();
        assert_same(tokenizer, reference, &mixed);
        assert_same(tokenizer, reference, &"a".repeat(50_000));
        assert_same(tokenizer, reference, &format!("x{}y", " ".repeat(20_000)));
    }
}

#[test]
fn every_rank_has_tiktokens_bytes() {
    for (tokenizer, reference) in encodings() {
        let mut found = 0;
        for rank in 0..tokenizer.ranks() + 1000 {
            let expected = reference.decode_bytes(&[rank]).ok();
            assert_eq!(tokenizer.token_bytes(rank), expected.as_deref(), "rank {rank}");
            found += usize::from(expected.is_some());
        }
        // o200k_base: 199,998 ordinary and 2 special tokens; cl100k_base: 100,256 and 5.
        let expected = match tokenizer.encoding() {
            moat_tokens::Encoding::O200kBase => 200_000,
            moat_tokens::Encoding::Cl100kBase => 100_261,
        };
        assert_eq!(found, expected, "{}", tokenizer.encoding());
    }
}
