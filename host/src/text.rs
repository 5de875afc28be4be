//! Text shown to a person: what a tool or an agent wrote, made safe for a terminal.

use std::borrow::Cow;

/// `text` made safe to print on a terminal: control characters (but newlines, when
/// `keep_newlines`) and bidirectional overrides are shown escaped (`\u{1b}`), so that what a
/// tool or an agent wrote cannot move the cursor, recolour, or reorder what a person reads.
pub fn printable(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && !(keep_newlines && c == '\n'))
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            shown.extend(c.escape_unicode());
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}
