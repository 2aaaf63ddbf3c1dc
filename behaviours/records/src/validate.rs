//! Validation of record values against their keys, and choice between versions.

use std::collections::HashMap;

use crate::{
    did::{self, SignedDocument},
    key::{KeyError, Namespace, parse_key},
};

/// Outcome of validating one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validated {
    /// A free `/mcc/` record.
    Mcc,
    /// A DID document whose signature verified.
    Did {
        /// The DID (the key's rest, equal to the document's `id`).
        did: String,
        /// The document's sequence number.
        seq: u64,
    },
}

/// Why a record is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The key is malformed or in an unknown namespace.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The value is over the size limit.
    #[error("value of {size} bytes is over the limit of {max}")]
    TooLarge {
        /// Size of the value in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The value is not a valid signed DID document.
    #[error("invalid DID document: {0}")]
    Did(#[from] did::DidError),
    /// The document is about another DID than the key names.
    #[error("the DID in the key ({key}) is not the document's ({document})")]
    DidMismatch {
        /// The DID in the key.
        key: String,
        /// The document's `id`.
        document: String,
    },
    /// The DID document is not newer than the stored one.
    #[error("sequence {new} is not higher than the stored {current}")]
    Stale {
        /// The offered sequence number.
        new: u64,
        /// The stored sequence number.
        current: u64,
    },
}

/// Validates key and value (not freshness: see [`check_replace`]). `max_value_size` applies to
/// the value bytes.
pub fn validate(
    key: &[u8],
    value: &[u8],
    max_value_size: usize,
) -> Result<Validated, ValidationError> {
    let (namespace, rest) = parse_key(key)?;
    if value.len() > max_value_size {
        return Err(ValidationError::TooLarge {
            size: value.len(),
            max: max_value_size,
        });
    }
    match namespace {
        Namespace::Mcc => Ok(Validated::Mcc),
        Namespace::Did => {
            let signed = SignedDocument::from_bytes(value)?;
            if let Some(id) = signed.did()
                && id != rest
            {
                return Err(ValidationError::DidMismatch {
                    key: rest.to_owned(),
                    document: id.to_owned(),
                });
            }
            signed.verify()?;
            Ok(Validated::Did {
                did: rest.to_owned(),
                seq: signed.seq,
            })
        }
    }
}

/// Whether `new` may replace `current`, both already valid for `key`.
///
/// DID documents: `new.seq > current.seq`, or a byte-identical value (a republish, accepted as a
/// no-op). `/mcc/` records: always. A `current` that does not parse as a signed document does
/// not block the replacement.
pub fn check_replace(key: &[u8], current: &[u8], new: &[u8]) -> Result<(), ValidationError> {
    let (namespace, _) = parse_key(key)?;
    if namespace == Namespace::Mcc || current == new {
        return Ok(());
    }
    let new = SignedDocument::from_bytes(new)?;
    let Ok(current) = SignedDocument::from_bytes(current) else {
        return Ok(());
    };
    if new.seq > current.seq {
        Ok(())
    } else {
        Err(ValidationError::Stale {
            new: new.seq,
            current: current.seq,
        })
    }
}

/// Among several versions of one key's value, the index of the best valid one: for DID
/// documents the highest sequence number (ties: the first), for `/mcc/` records the value held
/// by most (ties: the first seen). `None` if none is valid.
pub fn select_best(key: &[u8], values: &[&[u8]], max_value_size: usize) -> Option<usize> {
    let (namespace, _) = parse_key(key).ok()?;
    match namespace {
        Namespace::Did => {
            let mut best: Option<(usize, u64)> = None;
            for (i, value) in values.iter().enumerate() {
                if let Ok(Validated::Did { seq, .. }) = validate(key, value, max_value_size)
                    && best.is_none_or(|(_, best_seq)| seq > best_seq)
                {
                    best = Some((i, seq));
                }
            }
            best.map(|(i, _)| i)
        }
        Namespace::Mcc => {
            // value -> (count, index of first occurrence)
            let mut counts: HashMap<&[u8], (usize, usize)> = HashMap::new();
            for (i, value) in values.iter().enumerate() {
                if value.len() > max_value_size {
                    continue;
                }
                counts.entry(value).or_insert((0, i)).0 += 1;
            }
            counts
                .into_values()
                .max_by(|(count_a, first_a), (count_b, first_b)| {
                    count_a.cmp(count_b).then(first_b.cmp(first_a))
                })
                .map(|(_, first)| first)
        }
    }
}

#[cfg(test)]
mod tests {
    use libp2p::identity::ed25519;
    use serde_json::json;

    use super::*;
    use crate::{
        did::{default_document, did_from_public, signing_bytes},
        key::{did_key, mcc_key},
    };

    const MAX: usize = 64 * 1024;

    fn keypair(seed: u8) -> ed25519::Keypair {
        let mut secret = [seed; 32];
        ed25519::Keypair::from(ed25519::SecretKey::try_from_bytes(&mut secret).unwrap())
    }

    fn did_of(kp: &ed25519::Keypair) -> String {
        did_from_public(&kp.public())
    }

    fn signed(kp: &ed25519::Keypair, seq: u64) -> Vec<u8> {
        let mut doc = default_document(&did_of(kp));
        doc["seqNote"] = json!(seq);
        SignedDocument::sign(kp, doc, seq).unwrap().to_bytes()
    }

    /// A document claiming to be `victim`'s, signed by `forger`.
    fn forged(victim: &ed25519::Keypair, forger: &ed25519::Keypair, seq: u64) -> Vec<u8> {
        let document = default_document(&did_of(victim));
        let message = signing_bytes(&document, seq);
        SignedDocument {
            document,
            seq,
            signature: format!("z{}", bs58::encode(forger.sign(&message)).into_string()),
        }
        .to_bytes()
    }

    #[test]
    fn validates_mcc_records() {
        let key = mcc_key("k");
        assert_eq!(validate(key.as_ref(), b"anything", MAX), Ok(Validated::Mcc));
        assert_eq!(validate(key.as_ref(), b"", MAX), Ok(Validated::Mcc));
        assert_eq!(validate(key.as_ref(), &[0u8; 10], 10), Ok(Validated::Mcc));
        assert_eq!(
            validate(key.as_ref(), &[0u8; 11], 10),
            Err(ValidationError::TooLarge { size: 11, max: 10 })
        );
    }

    #[test]
    fn refuses_bad_keys() {
        assert_eq!(
            validate(b"/foo/bar", b"v", MAX),
            Err(ValidationError::Key(KeyError::UnknownNamespace(
                "foo".into()
            )))
        );
        assert_eq!(
            validate(b"", b"v", MAX),
            Err(ValidationError::Key(KeyError::Empty))
        );
    }

    #[test]
    fn validates_did_documents() {
        let kp = keypair(1);
        let did = did_of(&kp);
        let key = did_key(&did);
        assert_eq!(
            validate(key.as_ref(), &signed(&kp, 3), MAX),
            Ok(Validated::Did { did, seq: 3 })
        );
    }

    #[test]
    fn refuses_forged_and_malformed_did_documents() {
        let a = keypair(1);
        let b = keypair(2);
        let key = did_key(&did_of(&a));
        assert_eq!(
            validate(key.as_ref(), &forged(&a, &b, 1), MAX),
            Err(ValidationError::Did(did::DidError::BadSignature))
        );
        assert!(matches!(
            validate(key.as_ref(), b"not json", MAX),
            Err(ValidationError::Did(did::DidError::Json(_)))
        ));
        let value = signed(&a, 1);
        assert_eq!(
            validate(key.as_ref(), &value, value.len() - 1),
            Err(ValidationError::TooLarge {
                size: value.len(),
                max: value.len() - 1
            })
        );
    }

    #[test]
    fn did_in_key_must_be_the_documents() {
        let a = keypair(1);
        let b = keypair(2);
        // A valid document of B stored under A's key.
        let key = did_key(&did_of(&a));
        assert_eq!(
            validate(key.as_ref(), &signed(&b, 1), MAX),
            Err(ValidationError::DidMismatch {
                key: did_of(&a),
                document: did_of(&b)
            })
        );
    }

    #[test]
    fn replace_rules_for_dids() {
        let kp = keypair(1);
        let key = did_key(&did_of(&kp));
        let v1 = signed(&kp, 1);
        let v2 = signed(&kp, 2);
        assert_eq!(check_replace(key.as_ref(), &v1, &v2), Ok(()));
        assert_eq!(check_replace(key.as_ref(), &v2, &v2), Ok(()));
        assert_eq!(
            check_replace(key.as_ref(), &v2, &v1),
            Err(ValidationError::Stale { new: 1, current: 2 })
        );
        // Same seq, different content.
        let mut other_doc = default_document(&did_of(&kp));
        other_doc["service"] = json!([]);
        let v2_other = SignedDocument::sign(&kp, other_doc, 2).unwrap().to_bytes();
        assert_eq!(
            check_replace(key.as_ref(), &v2, &v2_other),
            Err(ValidationError::Stale { new: 2, current: 2 })
        );
        // A garbage current value does not block a valid one.
        assert_eq!(check_replace(key.as_ref(), b"garbage", &v1), Ok(()));
    }

    #[test]
    fn replace_rules_for_mcc() {
        let key = mcc_key("k");
        assert_eq!(check_replace(key.as_ref(), b"a", b"b"), Ok(()));
        assert_eq!(check_replace(key.as_ref(), b"b", b"a"), Ok(()));
        assert!(matches!(
            check_replace(b"/x/k", b"a", b"b"),
            Err(ValidationError::Key(_))
        ));
    }

    #[test]
    fn select_best_did_picks_highest_valid_seq() {
        let a = keypair(1);
        let b = keypair(2);
        let key = did_key(&did_of(&a));
        let v1 = signed(&a, 1);
        let v3 = signed(&a, 3);
        let forged9 = forged(&a, &b, 9);
        let other_did = signed(&b, 10);
        let values: Vec<&[u8]> = vec![&v1, &forged9, &v3, b"junk", &other_did, &v3];
        assert_eq!(select_best(key.as_ref(), &values, MAX), Some(2));
        assert_eq!(select_best(key.as_ref(), &[&forged9, b"x"], MAX), None);
        assert_eq!(select_best(key.as_ref(), &[], MAX), None);
    }

    #[test]
    fn select_best_mcc_majority() {
        let key = mcc_key("k");
        let values: Vec<&[u8]> = vec![b"a", b"b", b"b", b"c", b"a", b"b"];
        assert_eq!(select_best(key.as_ref(), &values, MAX), Some(1));
        // Tie between a and b: first seen wins.
        let values: Vec<&[u8]> = vec![b"c", b"a", b"b", b"b", b"a"];
        assert_eq!(select_best(key.as_ref(), &values, MAX), Some(1));
        // Oversized values do not count.
        let values: Vec<&[u8]> = vec![b"long", b"long", b"s"];
        assert_eq!(select_best(key.as_ref(), &values, 2), Some(2));
        assert_eq!(select_best(b"/nope/k", &values, MAX), None);
    }
}
