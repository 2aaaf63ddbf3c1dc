//! Namespaced record keys: `/<namespace>/<rest>`.

use std::fmt;

use libp2p::{PeerId, kad::RecordKey};

use crate::did;

/// Namespace of free key-value records.
pub const MCC_NAMESPACE: &str = "mcc";
/// Namespace of DID documents.
pub const DID_NAMESPACE: &str = "did";
/// Start of the rest of a `/mcc/` key that holds a CA's revocation list:
/// `/mcc/revocations/<CA peer id>`. Every `/mcc/` key starting so is validated as one.
pub const REVOCATIONS_PREFIX: &str = "revocations/";
/// Maximum length of a record key, in bytes.
pub const MAX_KEY_LEN: usize = 512;

/// The namespaces mcc accepts records for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// `/mcc/<key>`: free key-value records, except `/mcc/revocations/<CA peer id>`: a
    /// revocation list signed by that CA.
    Mcc,
    /// `/did/<did>`: signed DID documents.
    Did,
}

impl Namespace {
    /// The namespace as it appears in a key (`"mcc"`, `"did"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Mcc => MCC_NAMESPACE,
            Namespace::Did => DID_NAMESPACE,
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a record key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key has no bytes at all.
    #[error("the key is empty")]
    Empty,
    /// The key is longer than [`MAX_KEY_LEN`].
    #[error("the key is {len} bytes long, over the limit of {max}")]
    TooLong {
        /// Length of the key in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The key is not UTF-8.
    #[error("the key is not valid UTF-8")]
    NotUtf8,
    /// The key contains a control character.
    #[error("the key contains a control character")]
    ControlChar,
    /// The key does not look like `/<namespace>/<rest>`.
    #[error("the key does not look like /<namespace>/<rest>")]
    NoNamespace,
    /// The namespace is not one mcc knows.
    #[error("unknown key namespace {0:?} (known: {MCC_NAMESPACE}, {DID_NAMESPACE})")]
    UnknownNamespace(String),
    /// Nothing follows the namespace (`/mcc/`).
    #[error("the key has nothing after its namespace")]
    MissingRest,
    /// A `/did/` key whose rest is not a valid `did:key`.
    #[error("the key's DID is not a valid ed25519 did:key: {0}")]
    InvalidDid(String),
    /// A `/mcc/revocations/` key that does not end in an ed25519 peer id (base58).
    #[error("the key's CA is not an ed25519 peer id: {0}")]
    InvalidCa(String),
}

/// What a valid key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A free `/mcc/` record.
    Free,
    /// A `/did/` document.
    Did,
    /// A `/mcc/revocations/<ca>` list, with the CA's peer id.
    Revocations(PeerId),
}

/// Parses a record key: UTF-8, `/<ns>/<rest>`, rest non-empty, at most [`MAX_KEY_LEN`] bytes,
/// no control characters. For [`Namespace::Did`], rest must also be a valid ed25519 `did:key`;
/// for [`Namespace::Mcc`], a rest starting with [`REVOCATIONS_PREFIX`] must continue with an
/// ed25519 peer id and nothing else.
pub fn parse_key(key: &[u8]) -> Result<(Namespace, &str), KeyError> {
    classify(key).map(|(namespace, rest, _)| (namespace, rest))
}

/// Whether `key` is a valid free `/mcc/` key: a record anyone with `records:write` may write,
/// neither a DID document nor a revocation list (whose values are signed).
pub fn is_free_key(key: &[u8]) -> bool {
    matches!(classify(key), Ok((_, _, Kind::Free)))
}

/// [`parse_key`], also saying what the key holds.
pub(crate) fn classify(key: &[u8]) -> Result<(Namespace, &str, Kind), KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLong {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    let text = std::str::from_utf8(key).map_err(|_| KeyError::NotUtf8)?;
    if text.chars().any(char::is_control) {
        return Err(KeyError::ControlChar);
    }
    let (ns, rest) = text
        .strip_prefix('/')
        .and_then(|after| after.split_once('/'))
        .ok_or(KeyError::NoNamespace)?;
    if ns.is_empty() {
        return Err(KeyError::NoNamespace);
    }
    let namespace = match ns {
        MCC_NAMESPACE => Namespace::Mcc,
        DID_NAMESPACE => Namespace::Did,
        other => return Err(KeyError::UnknownNamespace(other.to_owned())),
    };
    if rest.is_empty() {
        return Err(KeyError::MissingRest);
    }
    let kind = match namespace {
        Namespace::Did => {
            did::public_from_did(rest).map_err(|e| KeyError::InvalidDid(e.to_string()))?;
            Kind::Did
        }
        Namespace::Mcc => match rest.strip_prefix(REVOCATIONS_PREFIX) {
            Some(ca) => Kind::Revocations(parse_ca(ca)?),
            None => Kind::Free,
        },
    };
    Ok((namespace, rest, kind))
}

/// The CA of a revocations key: a canonical base58 peer id embedding an ed25519 key.
fn parse_ca(text: &str) -> Result<PeerId, KeyError> {
    let ca: PeerId = text
        .parse()
        .map_err(|e| KeyError::InvalidCa(format!("{text:?}: {e}")))?;
    if mcc_admission::keys::ed25519_of_peer_id(&ca).is_none() {
        return Err(KeyError::InvalidCa(format!(
            "{ca} does not embed an ed25519 key"
        )));
    }
    if ca.to_string() != text {
        return Err(KeyError::InvalidCa(format!(
            "{text:?} is not written as {ca}"
        )));
    }
    Ok(ca)
}

/// The record key `/mcc/<rest>`.
pub fn mcc_key(rest: &str) -> RecordKey {
    RecordKey::new(&format!("/{MCC_NAMESPACE}/{rest}"))
}

/// The record key `/did/<did>`.
pub fn did_key(did: &str) -> RecordKey {
    RecordKey::new(&format!("/{DID_NAMESPACE}/{did}"))
}

/// The record key `/mcc/revocations/<ca>` of the revocation list of the CA whose ed25519 key
/// has the peer id `ca` (only such peer ids make valid keys).
pub fn revocations_key(ca: &PeerId) -> String {
    format!("/{MCC_NAMESPACE}/{REVOCATIONS_PREFIX}{ca}")
}

/// A short, printable rendering of a (possibly hostile) key for logs.
pub(crate) fn display_key(key: &[u8]) -> String {
    const MAX_SHOWN: usize = 128;
    let shown = &key[..key.len().min(MAX_SHOWN)];
    let mut out: String = String::from_utf8_lossy(shown).escape_debug().collect();
    if key.len() > MAX_SHOWN {
        out.push_str(&format!("…({} bytes)", key.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const W3C_DID: &str = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";

    #[test]
    fn parses_mcc_keys() {
        assert_eq!(parse_key(b"/mcc/hello"), Ok((Namespace::Mcc, "hello")));
        assert_eq!(parse_key(b"/mcc/a/b/c"), Ok((Namespace::Mcc, "a/b/c")));
        assert_eq!(
            parse_key("/mcc/grüße".as_bytes()),
            Ok((Namespace::Mcc, "grüße"))
        );
        assert_eq!(
            parse_key(mcc_key("x y").as_ref()),
            Ok((Namespace::Mcc, "x y"))
        );
    }

    #[test]
    fn parses_did_keys() {
        let key = did_key(W3C_DID);
        assert_eq!(parse_key(key.as_ref()), Ok((Namespace::Did, W3C_DID)));
    }

    #[test]
    fn refuses_malformed_keys() {
        assert_eq!(parse_key(b""), Err(KeyError::Empty));
        assert_eq!(parse_key(b"mcc/hello"), Err(KeyError::NoNamespace));
        assert_eq!(parse_key(b"/mcc"), Err(KeyError::NoNamespace));
        assert_eq!(parse_key(b"//hello"), Err(KeyError::NoNamespace));
        assert_eq!(parse_key(b"/"), Err(KeyError::NoNamespace));
        assert_eq!(parse_key(b"/mcc/"), Err(KeyError::MissingRest));
        assert_eq!(
            parse_key(b"/ipns/hello"),
            Err(KeyError::UnknownNamespace("ipns".into()))
        );
        assert_eq!(
            parse_key(b"/MCC/hello"),
            Err(KeyError::UnknownNamespace("MCC".into()))
        );
        assert_eq!(parse_key(b"/mcc/\xff\xfe"), Err(KeyError::NotUtf8));
        assert_eq!(parse_key(b"/mcc/a\nb"), Err(KeyError::ControlChar));
        assert_eq!(parse_key(b"/mcc/a\0b"), Err(KeyError::ControlChar));
        assert_eq!(
            parse_key("/mcc/a\u{85}b".as_bytes()),
            Err(KeyError::ControlChar)
        );
    }

    #[test]
    fn length_limit() {
        let longest = format!("/mcc/{}", "a".repeat(MAX_KEY_LEN - 5));
        assert_eq!(longest.len(), MAX_KEY_LEN);
        assert!(parse_key(longest.as_bytes()).is_ok());
        let too_long = format!("{longest}a");
        assert_eq!(
            parse_key(too_long.as_bytes()),
            Err(KeyError::TooLong {
                len: MAX_KEY_LEN + 1,
                max: MAX_KEY_LEN
            })
        );
    }

    #[test]
    fn refuses_invalid_dids() {
        for bad in [
            "/did/hello",
            "/did/did:web:example.com",
            "/did/did:key:",
            "/did/did:key:z",
            "/did/did:key:6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
            "/did/did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2do0",
            "/did/did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2do",
            // A P-256 did:key (multicodec 0x1200).
            "/did/did:key:zDnaerDaTF5BXEavCrfRZEk316dpbLsfPDZ3WJ5hRTPFU2169",
        ] {
            assert!(
                matches!(parse_key(bad.as_bytes()), Err(KeyError::InvalidDid(_))),
                "{bad} was not refused as an invalid DID"
            );
        }
    }

    #[test]
    fn parses_revocations_keys() {
        let ca = mcc_admission::keys::generate().public().to_peer_id();
        let key = revocations_key(&ca);
        assert_eq!(key, format!("/mcc/revocations/{ca}"));
        let rest = format!("revocations/{ca}");
        assert_eq!(
            parse_key(key.as_bytes()),
            Ok((Namespace::Mcc, rest.as_str()))
        );
        assert_eq!(
            classify(key.as_bytes()),
            Ok((Namespace::Mcc, rest.as_str(), Kind::Revocations(ca)))
        );
        // Other /mcc/ keys stay free, including look-alikes.
        for free in [
            "/mcc/revocations",
            "/mcc/revocationsX",
            &format!("/mcc/revocationsX/{ca}"),
            &format!("/mcc/other/revocations/{ca}"),
            "/mcc/other",
        ] {
            assert_eq!(
                classify(free.as_bytes()).map(|(_, _, kind)| kind),
                Ok(Kind::Free),
                "{free}"
            );
        }
    }

    #[test]
    fn refuses_invalid_revocations_cas() {
        let ca = mcc_admission::keys::generate().public().to_peer_id();
        // A peer id whose key is not embedded (sha256 multihash, as for RSA keys).
        let hashed = PeerId::from_bytes(&[&[0x12, 0x20][..], &[7; 32]].concat()).unwrap();
        for bad in [
            "/mcc/revocations/".to_owned(),
            "/mcc/revocations/hello".to_owned(),
            format!("/mcc/revocations/{ca}/x"),
            format!("/mcc/revocations/{ca} "),
            format!("/mcc/revocations/1{ca}"),
            format!("/mcc/revocations/{hashed}"),
        ] {
            assert!(
                matches!(parse_key(bad.as_bytes()), Err(KeyError::InvalidCa(_))),
                "{bad} was not refused as an invalid CA: {:?}",
                parse_key(bad.as_bytes())
            );
        }
    }

    #[test]
    fn display_key_is_printable_and_bounded() {
        assert_eq!(display_key(b"/mcc/a\nb"), "/mcc/a\\nb");
        let long = vec![b'a'; 1000];
        let shown = display_key(&long);
        assert!(shown.len() < 200);
        assert!(shown.ends_with("(1000 bytes)"));
    }
}
