//! Node labels, normalized with MCC's rules.
//!
//! A label is lowercase, keeps only letters and digits (Unicode-aware) and is at most
//! [`MAX_LABEL_LEN`] bytes, cut on a character boundary. A node without a usable label gets a
//! random one.

use rand::Rng;

/// Longest label in bytes.
pub const MAX_LABEL_LEN: usize = 30;

/// Normalizes a label; `None` when no letter or digit remains.
pub fn normalize_label(raw: &str) -> Option<String> {
    let mut out = String::new();
    for c in raw.chars().flat_map(char::to_lowercase) {
        if !c.is_alphanumeric() {
            continue;
        }
        if out.len() + c.len_utf8() > MAX_LABEL_LEN {
            break;
        }
        out.push(c);
    }
    (!out.is_empty()).then_some(out)
}

/// A random label such as `node7f3k2q`.
pub fn random_label() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..6)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    format!("node{tail}")
}

/// Normalizes a label, or makes a random one when nothing usable is given.
pub fn normalize_label_or_random(raw: Option<&str>) -> String {
    raw.and_then(normalize_label).unwrap_or_else(random_label)
}
