//! Properties of random text, for both encodings: the tokens are tiktoken-rs's, counting
//! agrees with encoding, and decoding gives the text back.

mod common;

use common::{assert_same, encodings};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Text drawn from pieces that make pre-tokenization join and split: ASCII letters and
/// punctuation, whitespace of every kind, contractions, digits, and Unicode.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[a-zA-Z]{1,6}",
        3 => prop::sample::select(vec![
            " ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\n\n", " \n", "\u{a0}", "\u{3000}",
        ])
        .prop_map(str::to_owned),
        2 => "[0-9]{1,8}",
        2 => "[!-/:-@\\[-`{-~]{1,3}",
        1 => prop::sample::select(vec!["'s", "'T", "'LL", "'re", "'ve", "'m", "'D", "'"])
            .prop_map(str::to_owned),
        2 => "\\PC{1,4}",
        1 => any::<char>().prop_map(String::from),
        1 => prop::sample::select(vec![
            "日本語", "é", "e\u{301}", "🦀", "👨‍👩‍👧", "ß", "مرحبا", "\u{fffd}", "\u{10ffff}",
            "\u{0}", "\u{1b}",
        ])
        .prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

#[test]
fn random_text_encodes_counts_and_decodes_as_tiktoken_does() {
    let mut runner =
        TestRunner::new(Config { cases: 256, failure_persistence: None, ..Config::default() });
    for (tokenizer, reference) in encodings() {
        runner
            .run(&text(), |text| {
                assert_same(tokenizer, reference, &text);
                Ok(())
            })
            .unwrap();
    }
}
