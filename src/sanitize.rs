//! Makes untrusted strings safe to print on a terminal.
//!
//! Everything that came from the network (text, nick, room) passes through
//! [`for_terminal`] before a person sees it: control characters, bidi
//! overrides and invisible characters become visible escapes, so a peer can
//! neither drive the terminal nor disguise what it sent.

use std::fmt::Write;

/// Returns `s` with every dangerous character replaced by a visible escape
/// (`\x1b`, `\u{202e}`).
pub fn for_terminal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_dangerous(c) {
            let code = c as u32;
            if code < 0x100 {
                let _ = write!(out, "\\x{code:02x}");
            } else {
                let _ = write!(out, "\\u{{{code:04x}}}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `s` has a character [`for_terminal`] escapes: a name with one
/// is shown escaped and marked with its peer id, never passed as plain.
pub fn needs_escape(s: &str) -> bool {
    s.chars().any(is_dangerous)
}

/// A format character (Unicode's Cf: bidi controls, zero-width characters,
/// the byte-order mark, tags...): invisible, or changing how the text
/// around it is shown.
pub fn is_format(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    c.general_category() == GeneralCategory::Format
}

fn is_dangerous(c: char) -> bool {
    c.is_control() // C0, DEL and C1 (8-bit CSI is U+009B)
        || is_format(c)
        || matches!(c,
            '\u{061C}'                 // arabic letter mark
            | '\u{200B}'..='\u{200F}'  // zero-width space/joiners, LRM, RLM
            | '\u{2028}' | '\u{2029}'  // line and paragraph separators
            | '\u{202A}'..='\u{202E}'  // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'  // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}'  // bidi isolates
            | '\u{FEFF}'               // zero-width no-break space
        )
}

#[cfg(test)]
mod tests {
    use super::for_terminal;

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(for_terminal("héllo wörld ✓ 你好"), "héllo wörld ✓ 你好");
    }

    #[test]
    fn escapes_and_controls_become_visible() {
        assert_eq!(for_terminal("\x1b[31mred"), "\\x1b[31mred");
        assert_eq!(
            for_terminal("a\nb\rc\td\x07\x7f"),
            "a\\x0ab\\x0dc\\x09d\\x07\\x7f"
        );
        assert_eq!(for_terminal("\u{9b}2J"), "\\x9b2J");
        assert_eq!(for_terminal("\u{85}"), "\\x85");
    }

    #[test]
    fn bidi_and_invisible_characters_become_visible() {
        assert_eq!(for_terminal("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(for_terminal("\u{2067}x\u{2069}"), "\\u{2067}x\\u{2069}");
        assert_eq!(
            for_terminal("zero\u{200b}width\u{feff}"),
            "zero\\u{200b}width\\u{feff}"
        );
        assert_eq!(for_terminal("line\u{2028}sep"), "line\\u{2028}sep");
    }

    #[test]
    fn output_never_contains_a_control_character() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let out = for_terminal(&all);
        assert!(!out.chars().any(|c| c.is_control()));
        assert!(!out.contains('\u{202e}'));
    }
}
