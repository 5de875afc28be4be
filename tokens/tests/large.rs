//! No input makes the tokenizer panic: a megabyte of one character, where tiktoken-rs's
//! backtracking regex gives up, is encoded, counted and decoded like any text.

use moat_tokens::{Encoding, Tokenizer};

const MIB: usize = 1 << 20;

#[track_caller]
fn assert_round_trip(text: &str) {
    for encoding in [Encoding::O200kBase, Encoding::Cl100kBase] {
        let tokenizer = Tokenizer::new(encoding);
        let tokens = tokenizer.encode_ordinary(text);
        assert!(!tokens.is_empty());
        assert!(tokens.len() <= text.len());
        assert_eq!(tokenizer.count(text), tokens.len(), "{encoding}");
        assert_eq!(tokenizer.decode_bytes(&tokens).as_deref(), Some(text.as_bytes()));
    }
}

#[test]
fn a_mebibyte_of_spaces_is_encoded() {
    assert_round_trip(&" ".repeat(MIB));
}

#[test]
fn a_long_run_of_spaces_before_a_word_is_encoded() {
    // The look-ahead's case: the run but its last space, then " x".
    assert_round_trip(&format!("{}x", " ".repeat(MIB / 16)));
}

#[test]
fn a_mebibyte_of_one_letter_is_encoded() {
    assert_round_trip(&"a".repeat(MIB));
}

#[test]
fn a_mebibyte_of_emoji_is_encoded() {
    assert_round_trip(&"🦀".repeat(MIB / 4));
}

#[test]
fn long_runs_of_newlines_and_digits_are_encoded() {
    assert_round_trip(&"\n".repeat(MIB / 16));
    assert_round_trip(&"7".repeat(MIB / 16));
}
