//! Node labels, normalized with MCC's rules.
//!
//! A label is lowercase, keeps only letters and digits (Unicode-aware), and is at most
//! [`MAX_LEN`] bytes long (cut on a character boundary). A node without a usable label gets a
//! random one. The rules live in `mcc-admission`, which signs labels into certificates:
//! normalize with [`mcc_admission::normalize_label`].

/// Longest label in bytes.
pub use mcc_admission::MAX_LABEL_LEN as MAX_LEN;

/// A random label.
pub use mcc_admission::random_label as random;

#[cfg(test)]
mod tests {
    use super::*;
    use mcc_admission::normalize_label;

    #[test]
    fn lowercases_and_drops_other_characters() {
        assert_eq!(normalize_label("My-Node_01!").as_deref(), Some("mynode01"));
        assert_eq!(
            normalize_label("  Kitchen Pi 3 ").as_deref(),
            Some("kitchenpi3")
        );
    }

    #[test]
    fn keeps_unicode_letters() {
        assert_eq!(normalize_label("Ünïcode-Ω").as_deref(), Some("ünïcodeω"));
    }

    #[test]
    fn at_most_30_bytes_on_a_char_boundary() {
        assert_eq!(normalize_label(&"a".repeat(40)).unwrap().len(), 30);
        // 'ä' is two bytes: 15 fit exactly, a 16th would make 32.
        assert_eq!(normalize_label(&"ä".repeat(20)).unwrap(), "ä".repeat(15));
        assert_eq!(
            normalize_label(&format!("a{}", "ä".repeat(20)))
                .unwrap()
                .len(),
            29
        );
    }

    #[test]
    fn empty_after_normalization_is_none() {
        assert_eq!(normalize_label(""), None);
        assert_eq!(normalize_label("--- !!"), None);
    }

    #[test]
    fn random_labels_are_normalized() {
        let l = random();
        assert_eq!(normalize_label(&l).as_deref(), Some(l.as_str()));
        assert_ne!(random(), random());
    }
}
