//! What the integration tests share: both encodings, each with tiktoken-rs's, the reference.

use moat_tokens::{Encoding, Tokenizer};
use tiktoken_rs::CoreBPE;

/// Every encoding, with its tokenizer and tiktoken-rs's.
pub fn encodings() -> [(Tokenizer, &'static CoreBPE); 2] {
    [
        (Tokenizer::new(Encoding::O200kBase), tiktoken_rs::o200k_base_singleton()),
        (Tokenizer::new(Encoding::Cl100kBase), tiktoken_rs::cl100k_base_singleton()),
    ]
}

/// Asserts that `text` encodes to tiktoken-rs's tokens, counts as many, and decodes back.
#[track_caller]
pub fn assert_same(tokenizer: Tokenizer, reference: &CoreBPE, text: &str) {
    let tokens = tokenizer.encode_ordinary(text);
    let expected = reference.encode_ordinary(text);
    if tokens != expected {
        let show = |t: &[u32]| -> Vec<String> {
            t.iter()
                .map(|&r| String::from_utf8_lossy(tokenizer.token_bytes(r).unwrap_or(b"?")).into())
                .collect()
        };
        panic!(
            "{}: {text:?}\n   ours: {:?}\ntiktoken: {:?}",
            tokenizer.encoding(),
            show(&tokens),
            show(&expected)
        );
    }
    assert_eq!(tokenizer.count(text), tokens.len(), "{}: count of {text:?}", tokenizer.encoding());
    assert_eq!(
        tokenizer.decode_bytes(&tokens).as_deref(),
        Some(text.as_bytes()),
        "{}: decoding {text:?}",
        tokenizer.encoding()
    );
}
