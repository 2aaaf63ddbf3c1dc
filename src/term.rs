//! Output to a terminal: bytes that peers control (record values, echo replies, labels,
//! agent strings, error messages) must not reach the operator's terminal as control
//! sequences, which could rewrite the screen, set the window title or worse.
//!
//! Human output escapes every control character (C0, DEL, C1) as a visible `\x1b` / `\u{9b}`
//! sequence. Raw output (`mcc dht get`, `mcc blob get` to stdout) stays byte-exact when it
//! goes to a pipe or a file, and is escaped only when stdout is a terminal.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `s` with every control character replaced by a visible escape; table cells and one-line
/// fields use this (so a newline or tab cannot break the layout either).
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_with(s, |_| false)
}

/// Like [`escape`], but keeps newlines and tabs: for multi-line text such as a record value
/// shown on a terminal.
pub fn escape_text(s: &str) -> Cow<'_, str> {
    escape_with(s, |c| c == '\n' || c == '\t')
}

/// Raw bytes for a terminal: invalid UTF-8 becomes U+FFFD, control characters other than
/// newline and tab are escaped.
pub fn escape_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    let text = String::from_utf8_lossy(bytes);
    let lossy = matches!(text, Cow::Owned(_));
    match escape_text(&text) {
        Cow::Borrowed(_) if !lossy => Cow::Borrowed(bytes),
        escaped => Cow::Owned(escaped.into_owned().into_bytes()),
    }
}

/// JSON printed to a terminal: serde_json already escapes C0 controls inside strings, but not
/// DEL and the C1 range (U+007F..=U+009F), which some terminals act on.
pub fn escape_json(json: &str) -> Cow<'_, str> {
    if !json.chars().any(is_c1_or_del) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_c1_or_del(c) {
            // Only reachable inside JSON strings, where \uXXXX is a valid escape.
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn is_c1_or_del(c: char) -> bool {
    ('\u{7f}'..='\u{9f}').contains(&c)
}

fn escape_with(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if !c.is_control() || keep(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_untouched() {
        assert!(matches!(escape("kitchen 1.5 ms"), Cow::Borrowed(_)));
        assert!(matches!(escape_bytes(b"hello\nworld\n"), Cow::Borrowed(_)));
        assert_eq!(escape("ünïcode ✓"), "ünïcode ✓");
    }

    #[test]
    fn control_sequences_become_visible() {
        // A title change (OSC), a colour (CSI), a C1 CSI and a bell.
        let hostile = "\x1b]0;owned\x07\x1b[31mred\u{9b}2J";
        let shown = escape(hostile);
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert_eq!(shown, "\\x1b]0;owned\\x07\\x1b[31mred\\x9b2J");
        assert_eq!(escape("a\nb\tc"), "a\\x0ab\\x09c");
        assert_eq!(escape_text("a\nb\tc\x1b"), "a\nb\tc\\x1b");
    }

    #[test]
    fn raw_bytes_for_a_terminal() {
        let out = escape_bytes(b"line\n\x1b[2Jgone\xff");
        assert_eq!(&*out, "line\n\\x1b[2Jgone\u{fffd}".as_bytes());
    }

    #[test]
    fn json_keeps_valid_and_escapes_c1() {
        let json = serde_json::to_string(&serde_json::json!({"m": "a\u{9b}b\u{7f}\x1b"})).unwrap();
        let shown = escape_json(&json);
        assert!(!shown.chars().any(char::is_control), "{shown}");
        let back: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(back["m"], "a\u{9b}b\u{7f}\x1b");
    }
}
