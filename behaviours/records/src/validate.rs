//! Validation of record values against their keys, and choice between versions.

use std::collections::HashMap;

use libp2p::PeerId;
use mcc_admission::{CertError, DecodeError, RevocationList, keys::peer_id_of};

use crate::{
    did::{self, SignedDocument},
    key::{KeyError, Kind, classify},
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
    /// A CA revocation list (`/mcc/revocations/<issuer>`) whose signature verified.
    Revocations {
        /// The CA's peer id (named by the key, equal to the list's issuer key).
        issuer: PeerId,
        /// The list's sequence number.
        sequence: u64,
    },
}

/// Why a value is not a valid revocation list for its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevocationListError {
    /// The value does not decode as a revocation list.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The list is issued by another CA than the key names.
    #[error("issued by {list}, but the key names {key}")]
    IssuerMismatch {
        /// The CA the key names.
        key: PeerId,
        /// The list's issuer.
        list: PeerId,
    },
    /// The signature does not verify with the issuer key.
    #[error(transparent)]
    Signature(#[from] CertError),
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
    /// The value is not a revocation list signed by the CA the key names (boxed: it holds
    /// two peer ids).
    #[error("invalid revocation list: {0}")]
    RevocationList(#[source] Box<RevocationListError>),
    /// The DID document or revocation list is not newer than the stored one.
    #[error("sequence {new} is not higher than the stored {current}")]
    Stale {
        /// The offered sequence number.
        new: u64,
        /// The stored sequence number.
        current: u64,
    },
}

impl From<RevocationListError> for ValidationError {
    fn from(e: RevocationListError) -> Self {
        ValidationError::RevocationList(Box::new(e))
    }
}

/// Validates key and value (not freshness: see [`check_replace`]). `max_value_size` applies to
/// the value bytes.
pub fn validate(
    key: &[u8],
    value: &[u8],
    max_value_size: usize,
) -> Result<Validated, ValidationError> {
    let (_, rest, kind) = classify(key)?;
    if value.len() > max_value_size {
        return Err(ValidationError::TooLarge {
            size: value.len(),
            max: max_value_size,
        });
    }
    match kind {
        Kind::Free => Ok(Validated::Mcc),
        Kind::Revocations(issuer) => {
            let list = RevocationList::from_bytes(value).map_err(RevocationListError::from)?;
            let list_issuer = peer_id_of(list.issuer());
            if list_issuer != issuer {
                return Err(RevocationListError::IssuerMismatch {
                    key: issuer,
                    list: list_issuer,
                }
                .into());
            }
            list.verify_issuer_signature()
                .map_err(RevocationListError::from)?;
            Ok(Validated::Revocations {
                issuer,
                sequence: list.sequence(),
            })
        }
        Kind::Did => {
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
/// DID documents and revocation lists: a higher sequence number than `current`'s, or a
/// byte-identical value (a republish, accepted as a no-op). Free `/mcc/` records: always. A
/// `current` that does not parse (as a signed document or a revocation list) does not block
/// the replacement.
pub fn check_replace(key: &[u8], current: &[u8], new: &[u8]) -> Result<(), ValidationError> {
    let (_, _, kind) = classify(key)?;
    if current == new {
        return Ok(());
    }
    let (new, current) = match kind {
        Kind::Free => return Ok(()),
        Kind::Did => {
            let new = SignedDocument::from_bytes(new)?;
            let Ok(current) = SignedDocument::from_bytes(current) else {
                return Ok(());
            };
            (new.seq, current.seq)
        }
        Kind::Revocations(_) => {
            let new = RevocationList::from_bytes(new).map_err(RevocationListError::from)?;
            let Ok(current) = RevocationList::from_bytes(current) else {
                return Ok(());
            };
            (new.sequence(), current.sequence())
        }
    };
    if new > current {
        Ok(())
    } else {
        Err(ValidationError::Stale { new, current })
    }
}

/// Among several versions of one key's value, the index of the best valid one: for DID
/// documents and revocation lists the highest sequence number (ties: the first), for free
/// `/mcc/` records the value held by most (ties: the first seen). `None` if none is valid.
pub fn select_best(key: &[u8], values: &[&[u8]], max_value_size: usize) -> Option<usize> {
    let (_, _, kind) = classify(key).ok()?;
    match kind {
        Kind::Did | Kind::Revocations(_) => {
            let mut best: Option<(usize, u64)> = None;
            for (i, value) in values.iter().enumerate() {
                let seq = match validate(key, value, max_value_size) {
                    Ok(Validated::Did { seq, .. }) => seq,
                    Ok(Validated::Revocations { sequence, .. }) => sequence,
                    Ok(Validated::Mcc) | Err(_) => continue,
                };
                if best.is_none_or(|(_, best_seq)| seq > best_seq) {
                    best = Some((i, seq));
                }
            }
            best.map(|(i, _)| i)
        }
        Kind::Free => {
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
    use std::collections::BTreeSet;

    use libp2p::identity::ed25519;
    use mcc_admission::{Certificate, RevocationFields, Serial, keys};
    use serde_json::json;

    use super::*;
    use crate::{
        did::{default_document, did_from_public, signing_bytes},
        key::{did_key, mcc_key, revocations_key},
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

    fn ca_key() -> ed25519::Keypair {
        keys::to_ed25519(&keys::generate()).unwrap()
    }

    fn ca_peer(ca: &ed25519::Keypair) -> PeerId {
        peer_id_of(&ca.public())
    }

    fn revocations(ca: &ed25519::Keypair, sequence: u64) -> Vec<u8> {
        RevocationList::sign(
            ca,
            RevocationFields {
                sequence,
                issued_at: 1_000 + sequence,
                serials: [Serial([sequence as u8; 16])].into(),
                peers: BTreeSet::new(),
            },
        )
        .unwrap()
        .to_bytes()
    }

    /// `list` with its sequence number overwritten (no longer matching its signature).
    fn with_sequence(list: &[u8], sequence: u64) -> Vec<u8> {
        // magic (3) · kind (1) · version (1) · issuer key (32) · sequence (8)
        const SEQUENCE_AT: usize = 5 + 32;
        let mut bytes = list.to_vec();
        bytes[SEQUENCE_AT..SEQUENCE_AT + 8].copy_from_slice(&sequence.to_be_bytes());
        assert_eq!(
            RevocationList::from_bytes(&bytes).unwrap().sequence(),
            sequence
        );
        bytes
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
    fn validates_revocation_lists() {
        let ca = ca_key();
        let issuer = ca_peer(&ca);
        let key = revocations_key(&issuer);
        let value = revocations(&ca, 4);
        // The same list a node checks against its trusted CA certificate.
        let ca_cert = Certificate::new_ca(&ca, "CA", 0, 2_000_000_000).unwrap();
        RevocationList::from_bytes(&value)
            .unwrap()
            .verify(&ca_cert)
            .unwrap();
        assert_eq!(
            validate(key.as_bytes(), &value, MAX),
            Ok(Validated::Revocations {
                issuer,
                sequence: 4
            })
        );
        assert_eq!(
            validate(key.as_bytes(), &value, value.len() - 1),
            Err(ValidationError::TooLarge {
                size: value.len(),
                max: value.len() - 1
            })
        );
    }

    #[test]
    fn refuses_forged_and_malformed_revocation_lists() {
        let ca = ca_key();
        let key = revocations_key(&ca_peer(&ca));
        let value = revocations(&ca, 1);
        // Sequence raised after signing.
        let forged = with_sequence(&value, 9);
        assert_eq!(
            validate(key.as_bytes(), &forged, MAX),
            Err(RevocationListError::Signature(CertError::RevocationListBadSignature).into())
        );
        // Signature altered.
        let mut bad_signature = value.clone();
        *bad_signature.last_mut().unwrap() ^= 1;
        assert_eq!(
            validate(key.as_bytes(), &bad_signature, MAX),
            Err(RevocationListError::Signature(CertError::RevocationListBadSignature).into())
        );
        // Garbage, truncation, and another kind of mcc object.
        let ca_cert = Certificate::new_ca(&ca, "CA", 0, 2_000_000_000).unwrap();
        for garbage in [
            &b"garbage"[..],
            b"",
            &value[..value.len() - 1],
            ca_cert.as_bytes(),
        ] {
            let result = validate(key.as_bytes(), garbage, MAX);
            assert!(
                matches!(&result, Err(ValidationError::RevocationList(e))
                    if matches!(**e, RevocationListError::Decode(_))),
                "{result:?}"
            );
            assert!(
                result
                    .unwrap_err()
                    .to_string()
                    .starts_with("invalid revocation list: ")
            );
        }
    }

    #[test]
    fn revocation_list_issuer_must_be_the_keys() {
        let a = ca_key();
        let b = ca_key();
        // A valid list of B stored under A's key.
        let key = revocations_key(&ca_peer(&a));
        let err = validate(key.as_bytes(), &revocations(&b, 1), MAX).unwrap_err();
        assert_eq!(
            err,
            RevocationListError::IssuerMismatch {
                key: ca_peer(&a),
                list: ca_peer(&b)
            }
            .into()
        );
        assert_eq!(
            err.to_string(),
            format!(
                "invalid revocation list: issued by {}, but the key names {}",
                ca_peer(&b),
                ca_peer(&a)
            )
        );
    }

    #[test]
    fn other_mcc_keys_stay_free() {
        let ca = ca_key();
        let list = revocations(&ca, 1);
        for key in [
            mcc_key("revocationsX"),
            mcc_key("revocations"),
            mcc_key(&format!("revocationsX/{}", ca_peer(&ca))),
            mcc_key("other"),
        ] {
            assert_eq!(validate(key.as_ref(), b"anything", MAX), Ok(Validated::Mcc));
            assert_eq!(validate(key.as_ref(), &list, MAX), Ok(Validated::Mcc));
            assert_eq!(check_replace(key.as_ref(), &list, b"older?"), Ok(()));
        }
        assert!(matches!(
            validate(b"/mcc/revocations/not-a-peer", b"anything", MAX),
            Err(ValidationError::Key(KeyError::InvalidCa(_)))
        ));
    }

    #[test]
    fn replace_rules_for_revocation_lists() {
        let ca = ca_key();
        let key = revocations_key(&ca_peer(&ca));
        let v1 = revocations(&ca, 1);
        let v2 = revocations(&ca, 2);
        assert_eq!(check_replace(key.as_bytes(), &v1, &v2), Ok(()));
        assert_eq!(check_replace(key.as_bytes(), &v2, &v2), Ok(()));
        assert_eq!(
            check_replace(key.as_bytes(), &v2, &v1),
            Err(ValidationError::Stale { new: 1, current: 2 })
        );
        // Same sequence, different content.
        let v2_other = RevocationList::sign(
            &ca,
            RevocationFields {
                sequence: 2,
                ..RevocationFields::default()
            },
        )
        .unwrap()
        .to_bytes();
        assert_eq!(
            check_replace(key.as_bytes(), &v2, &v2_other),
            Err(ValidationError::Stale { new: 2, current: 2 })
        );
        // A garbage current value does not block a valid one; a garbage new one is refused.
        assert_eq!(check_replace(key.as_bytes(), b"garbage", &v1), Ok(()));
        assert!(matches!(
            check_replace(key.as_bytes(), &v1, b"garbage"),
            Err(ValidationError::RevocationList(e)) if matches!(*e, RevocationListError::Decode(_))
        ));
    }

    #[test]
    fn select_best_revocations_picks_highest_valid_sequence() {
        let a = ca_key();
        let b = ca_key();
        let key = revocations_key(&ca_peer(&a));
        let v1 = revocations(&a, 1);
        let v3 = revocations(&a, 3);
        let forged9 = with_sequence(&v1, 9);
        let other_ca = revocations(&b, 10);
        let values: Vec<&[u8]> = vec![&v1, &forged9, &v3, b"junk", &other_ca, &v3];
        assert_eq!(select_best(key.as_bytes(), &values, MAX), Some(2));
        assert_eq!(select_best(key.as_bytes(), &[&forged9, b"x"], MAX), None);
        assert_eq!(select_best(key.as_bytes(), &[], MAX), None);
        // Oversized versions do not count.
        assert_eq!(select_best(key.as_bytes(), &[&v3, &v1], v3.len() - 1), None);
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
