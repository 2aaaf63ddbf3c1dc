//! `did:key` (ed25519) identifiers and signed DID documents.
//!
//! A DID is `did:key:z` + base58btc(multicodec varint `0xed 0x01` + 32-byte ed25519 public key).
//! The record value stored under `/did/<did>` is a [`SignedDocument`]: the W3C DID Core JSON
//! document, a sequence number and an ed25519 signature by the DID's own key over
//! [`signing_bytes`].

use libp2p::identity::ed25519;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Prefix of every `did:key`.
const DID_KEY_PREFIX: &str = "did:key:";
/// Multibase prefix of base58btc.
const BASE58BTC: char = 'z';
/// Multicodec `ed25519-pub` (0xed) as an unsigned varint.
const ED25519_PUB_CODEC: [u8; 2] = [0xed, 0x01];
/// Domain separation for signatures over DID documents.
const SIGNING_DOMAIN: &[u8] = b"mcc-did-v1\n";
/// Bounds on base58 text before decoding it (decoding is quadratic in the length):
/// 34 bytes encode to at most 47 characters, 64 bytes to at most 88.
const MAX_KEY_B58_LEN: usize = 64;
const MAX_SIGNATURE_B58_LEN: usize = 100;

/// Why a DID or a signed DID document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DidError {
    /// The DID does not start with `did:key:`.
    #[error("not a did:key")]
    NotDidKey,
    /// A `did:key` of another key type than ed25519.
    #[error("unsupported did:key key type (only ed25519 is supported)")]
    UnsupportedKeyType,
    /// Malformed multibase / base58 / key bytes / signature bytes.
    #[error("bad encoding: {0}")]
    BadEncoding(String),
    /// The document is not a JSON object with a string `id`, or cannot be signed.
    #[error("bad document: {0}")]
    BadDocument(String),
    /// The document's `id` is not the DID of the signing key.
    #[error("the document id {found:?} is not the signer's DID {expected:?}")]
    IdMismatch {
        /// The signer's DID.
        expected: String,
        /// The document's `id`.
        found: String,
    },
    /// The signature does not verify with the DID's key.
    #[error("the signature does not verify with the DID's key")]
    BadSignature,
    /// The record value is not a JSON signed document.
    #[error("malformed signed document JSON: {0}")]
    Json(String),
}

/// `did:key:z6Mk...` for an ed25519 public key.
pub fn did_from_public(pk: &ed25519::PublicKey) -> String {
    format!("{DID_KEY_PREFIX}{}", multibase_key(pk))
}

/// The multibase (`z6Mk...`) form of an ed25519 public key: the method-specific id of its
/// `did:key` and the `publicKeyMultibase` of its verification method.
fn multibase_key(pk: &ed25519::PublicKey) -> String {
    let mut bytes = Vec::with_capacity(ED25519_PUB_CODEC.len() + 32);
    bytes.extend_from_slice(&ED25519_PUB_CODEC);
    bytes.extend_from_slice(&pk.to_bytes());
    format!("{BASE58BTC}{}", bs58::encode(bytes).into_string())
}

/// The ed25519 key inside a `did:key`.
pub fn public_from_did(did: &str) -> Result<ed25519::PublicKey, DidError> {
    let multibase = did
        .strip_prefix(DID_KEY_PREFIX)
        .ok_or(DidError::NotDidKey)?;
    let encoded = multibase.strip_prefix(BASE58BTC).ok_or_else(|| {
        DidError::BadEncoding("the multibase prefix is not 'z' (base58btc)".into())
    })?;
    if encoded.is_empty() {
        return Err(DidError::BadEncoding(
            "no key after the multibase prefix".into(),
        ));
    }
    if encoded.len() > MAX_KEY_B58_LEN {
        return Err(DidError::BadEncoding(format!(
            "{} base58 characters is too long for a key",
            encoded.len()
        )));
    }
    let bytes = bs58::decode(encoded)
        .into_vec()
        .map_err(|e| DidError::BadEncoding(e.to_string()))?;
    let key = bytes
        .strip_prefix(&ED25519_PUB_CODEC[..])
        .ok_or(DidError::UnsupportedKeyType)?;
    if key.len() != 32 {
        return Err(DidError::BadEncoding(format!(
            "an ed25519 key of {} bytes (expected 32)",
            key.len()
        )));
    }
    ed25519::PublicKey::try_from_bytes(key).map_err(|e| DidError::BadEncoding(e.to_string()))
}

/// A minimal W3C DID Core document for `did`: `@context`, `id`, one
/// `Ed25519VerificationKey2020` verification method (`<did>#<z...>`, controlled by the DID) and
/// `authentication` / `assertionMethod` referencing it.
pub fn default_document(did: &str) -> Value {
    let multibase = did.strip_prefix(DID_KEY_PREFIX).unwrap_or(did);
    let method_id = format!("{did}#{multibase}");
    json!({
        "@context": [
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/suites/ed25519-2020/v1"
        ],
        "id": did,
        "verificationMethod": [{
            "id": method_id,
            "type": "Ed25519VerificationKey2020",
            "controller": did,
            "publicKeyMultibase": multibase
        }],
        "authentication": [method_id],
        "assertionMethod": [method_id]
    })
}

/// The value stored under `/did/<did>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedDocument {
    /// The W3C DID Core document; its `id` is the DID.
    pub document: Value,
    /// Version of the document; a node only accepts a higher one than it holds.
    pub seq: u64,
    /// Multibase (`z`, base58btc) of the 64-byte ed25519 signature over [`signing_bytes`].
    pub signature: String,
}

impl SignedDocument {
    /// Signs `document` with `seq`. The document must be a JSON object; its `id` is set to the
    /// DID of `keypair` when absent and must be that DID otherwise.
    pub fn sign(
        keypair: &ed25519::Keypair,
        mut document: Value,
        seq: u64,
    ) -> Result<Self, DidError> {
        let did = did_from_public(&keypair.public());
        let object = document
            .as_object_mut()
            .ok_or_else(|| DidError::BadDocument("the document is not a JSON object".into()))?;
        match object.get("id") {
            None => {
                object.insert("id".into(), Value::String(did.clone()));
            }
            Some(Value::String(id)) if *id == did => {}
            Some(Value::String(id)) => {
                return Err(DidError::IdMismatch {
                    expected: did,
                    found: id.clone(),
                });
            }
            Some(_) => return Err(DidError::BadDocument("the id is not a string".into())),
        }
        let message = signing_bytes(&document, seq);
        // A verifier re-parses the document; make sure it canonicalizes to the same bytes
        // (e.g. no float that does not survive a JSON round trip).
        let reparsed: Value = serde_json::from_slice(&message[SIGNING_DOMAIN.len()..])
            .map_err(|e| DidError::BadDocument(e.to_string()))?;
        let reparsed_document = reparsed.get("document").unwrap_or(&Value::Null);
        if signing_bytes(reparsed_document, seq) != message {
            return Err(DidError::BadDocument(
                "the document does not survive a JSON round trip unchanged".into(),
            ));
        }
        let signature = format!(
            "{BASE58BTC}{}",
            bs58::encode(keypair.sign(&message)).into_string()
        );
        Ok(Self {
            document,
            seq,
            signature,
        })
    }

    /// The DID this document is about: its `id`, if that is a string.
    pub fn did(&self) -> Option<&str> {
        self.document.get("id").and_then(Value::as_str)
    }

    /// Checks that the document is an object whose `id` is an ed25519 `did:key`, and that the
    /// signature verifies with that key over [`signing_bytes`].
    pub fn verify(&self) -> Result<(), DidError> {
        let object = self
            .document
            .as_object()
            .ok_or_else(|| DidError::BadDocument("the document is not a JSON object".into()))?;
        let id = match object.get("id") {
            Some(Value::String(id)) => id,
            Some(_) => return Err(DidError::BadDocument("the id is not a string".into())),
            None => return Err(DidError::BadDocument("the document has no id".into())),
        };
        let public = public_from_did(id)?;
        let signature = decode_signature(&self.signature)?;
        if public.verify(&signing_bytes(&self.document, self.seq), &signature) {
            Ok(())
        } else {
            Err(DidError::BadSignature)
        }
    }

    /// The record value: canonical JSON of `{"document", "seq", "signature"}`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"{\"document\":");
        write_canonical(&self.document, &mut out);
        out.extend_from_slice(b",\"seq\":");
        out.extend_from_slice(self.seq.to_string().as_bytes());
        out.extend_from_slice(b",\"signature\":");
        write_json_string(&self.signature, &mut out);
        out.push(b'}');
        out
    }

    /// Parses a record value (JSON). Does not verify it: see [`SignedDocument::verify`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DidError> {
        serde_json::from_slice(bytes).map_err(|e| DidError::Json(e.to_string()))
    }
}

fn decode_signature(signature: &str) -> Result<Vec<u8>, DidError> {
    let encoded = signature.strip_prefix(BASE58BTC).ok_or_else(|| {
        DidError::BadEncoding("the signature's multibase prefix is not 'z' (base58btc)".into())
    })?;
    if encoded.len() > MAX_SIGNATURE_B58_LEN {
        return Err(DidError::BadEncoding(format!(
            "{} base58 characters is too long for a signature",
            encoded.len()
        )));
    }
    let bytes = bs58::decode(encoded)
        .into_vec()
        .map_err(|e| DidError::BadEncoding(format!("signature: {e}")))?;
    if bytes.len() != 64 {
        return Err(DidError::BadEncoding(format!(
            "a signature of {} bytes (expected 64)",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// What is signed: `b"mcc-did-v1\n"` followed by the canonical JSON of
/// `{"document": document, "seq": seq}`.
pub fn signing_bytes(document: &Value, seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNING_DOMAIN.len() + 256);
    out.extend_from_slice(SIGNING_DOMAIN);
    // Keys in sorted order: "document" < "seq".
    out.extend_from_slice(b"{\"document\":");
    write_canonical(document, &mut out);
    out.extend_from_slice(b",\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.push(b'}');
    out
}

/// Canonical JSON: object keys sorted bytewise (UTF-8) at every level, no whitespace, and
/// serde_json's formatting of numbers and strings.
pub fn canonical_json(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_string(key, out);
                out.push(b':');
                write_canonical(value, out);
            }
            out.push(b'}');
        }
    }
}

/// A JSON string literal escaped as serde_json does: `"` and `\` escaped, control characters
/// below U+0020 as `\b \t \n \f \r` or `\u00xx` (lowercase hex), everything else verbatim.
fn write_json_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x09 => b"\\t",
            0x0a => b"\\n",
            0x0c => b"\\f",
            0x0d => b"\\r",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    const W3C_DID: &str = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";

    fn keypair(seed: u8) -> ed25519::Keypair {
        let mut secret = [seed; 32];
        match ed25519::SecretKey::try_from_bytes(&mut secret) {
            Ok(sk) => ed25519::Keypair::from(sk),
            Err(e) => panic!("32 bytes are a valid ed25519 secret: {e}"),
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn known_vector_rfc8032_test1() {
        // RFC 8032 §7.1 TEST 1 secret key and its public key.
        let mut secret = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let kp = ed25519::Keypair::from(ed25519::SecretKey::try_from_bytes(&mut secret).unwrap());
        assert_eq!(
            kp.public().to_bytes().to_vec(),
            hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        // Computed independently (Python big-integer base58 of ed01 || public key).
        let did = did_from_public(&kp.public());
        assert_eq!(
            did,
            "did:key:z6MktwupdmLXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMsw"
        );
        assert_eq!(public_from_did(&did).unwrap(), kp.public());
    }

    #[test]
    fn did_round_trip() {
        for seed in 0..8 {
            let pk = keypair(seed).public();
            let did = did_from_public(&pk);
            assert!(did.starts_with("did:key:z6Mk"), "{did}");
            assert_eq!(public_from_did(&did).unwrap(), pk);
        }
        let random = ed25519::Keypair::generate().public();
        assert_eq!(public_from_did(&did_from_public(&random)).unwrap(), random);
    }

    #[test]
    fn decodes_w3c_example() {
        let pk = public_from_did(W3C_DID).unwrap();
        assert_eq!(
            pk.to_bytes().to_vec(),
            hex("2e6fcce36701dc791488e0d0b1745cc1e33a4c1c9fcc41c63bd343dbbe0970e6")
        );
        assert_eq!(did_from_public(&pk), W3C_DID);
    }

    #[test]
    fn refuses_bad_dids() {
        assert_eq!(
            public_from_did("did:web:example.com"),
            Err(DidError::NotDidKey)
        );
        assert_eq!(public_from_did("z6Mk"), Err(DidError::NotDidKey));
        assert!(matches!(
            public_from_did("did:key:f00"),
            Err(DidError::BadEncoding(_))
        ));
        assert!(matches!(
            public_from_did("did:key:z0OIl"),
            Err(DidError::BadEncoding(_))
        ));
        assert!(matches!(
            public_from_did(&format!("did:key:z{}", "1".repeat(5000))),
            Err(DidError::BadEncoding(_))
        ));
        // A P-256 key (multicodec 0x1200 = varint 80 24), 33 compressed bytes.
        let mut p256 = vec![0x80, 0x24, 0x02];
        p256.extend_from_slice(&[7; 32]);
        let p256_did = format!("did:key:z{}", bs58::encode(p256).into_string());
        assert_eq!(
            public_from_did(&p256_did),
            Err(DidError::UnsupportedKeyType)
        );
        // ed25519 codec but 31 key bytes.
        let mut short = ED25519_PUB_CODEC.to_vec();
        short.extend_from_slice(&[1; 31]);
        let short_did = format!("did:key:z{}", bs58::encode(short).into_string());
        assert!(matches!(
            public_from_did(&short_did),
            Err(DidError::BadEncoding(_))
        ));
    }

    #[test]
    fn default_document_shape() {
        let did = did_from_public(&keypair(1).public());
        let doc = default_document(&did);
        let multibase = &did["did:key:".len()..];
        let method_id = format!("{did}#{multibase}");
        assert_eq!(doc["id"], did);
        assert_eq!(doc["@context"][0], "https://www.w3.org/ns/did/v1");
        let method = &doc["verificationMethod"][0];
        assert_eq!(method["id"], method_id);
        assert_eq!(method["type"], "Ed25519VerificationKey2020");
        assert_eq!(method["controller"], did);
        assert_eq!(method["publicKeyMultibase"], multibase);
        assert_eq!(doc["authentication"], json!([method_id]));
        assert_eq!(doc["assertionMethod"], json!([method_id]));
    }

    #[test]
    fn canonical_json_sorts_nested_keys() {
        let v = json!({"b": 1, "a": {"z": [3, {"y": true, "x": null}], "c": "s"}, "A": -1.5});
        let expected = br#"{"A":-1.5,"a":{"c":"s","z":[3,{"x":null,"y":true}]},"b":1}"#;
        assert_eq!(canonical_json(&v), expected.to_vec());
        // Stable: the same value built in another insertion order, and after a round trip.
        let mut other = serde_json::Map::new();
        other.insert("A".into(), json!(-1.5));
        other.insert("b".into(), json!(1));
        other.insert(
            "a".into(),
            json!({"c": "s", "z": [3, {"x": null, "y": true}]}),
        );
        assert_eq!(canonical_json(&Value::Object(other)), expected.to_vec());
        let reparsed: Value = serde_json::from_slice(expected).unwrap();
        assert_eq!(canonical_json(&reparsed), expected.to_vec());
        // Bytewise order: uppercase before lowercase, "é" (0xC3…) after ASCII.
        let v = json!({"é": 1, "z": 2, "Z": 3, "": 4});
        assert_eq!(canonical_json(&v), r#"{"":4,"Z":3,"z":2,"é":1}"#.as_bytes());
    }

    #[test]
    fn canonical_strings_and_numbers_match_serde_json() {
        let mut all_ascii = String::new();
        for c in 0u8..0x80 {
            all_ascii.push(c as char);
        }
        for s in [
            all_ascii.as_str(),
            "",
            "plain",
            "quote\" back\\slash",
            "ünïcödé ✓ 𝄞 \u{2028}\u{7f}",
        ] {
            let v = Value::String(s.to_owned());
            assert_eq!(canonical_json(&v), serde_json::to_vec(&v).unwrap(), "{s:?}");
        }
        for n in [
            json!(0),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(0.1),
            json!(1e300),
            json!(-2.5e-8),
            json!(1.0),
        ] {
            assert_eq!(canonical_json(&n), serde_json::to_vec(&n).unwrap());
        }
    }

    #[test]
    fn signing_bytes_format() {
        let doc = json!({"id": "did:key:x", "b": [1]});
        let bytes = signing_bytes(&doc, 7);
        let mut expected = b"mcc-did-v1\n".to_vec();
        expected.extend_from_slice(&canonical_json(&json!({"seq": 7, "document": doc})));
        assert_eq!(bytes, expected);
    }

    #[test]
    fn sign_then_verify() {
        let kp = keypair(3);
        let did = did_from_public(&kp.public());
        let signed = SignedDocument::sign(&kp, default_document(&did), 1).unwrap();
        assert_eq!(signed.did(), Some(did.as_str()));
        assert!(signed.signature.starts_with('z'));
        signed.verify().unwrap();

        let bytes = signed.to_bytes();
        let parsed = SignedDocument::from_bytes(&bytes).unwrap();
        assert_eq!(parsed, signed);
        parsed.verify().unwrap();
        // to_bytes is canonical JSON of the whole record.
        let as_value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(canonical_json(&as_value), bytes);
    }

    #[test]
    fn sign_sets_missing_id_and_refuses_foreign_id() {
        let kp = keypair(4);
        let did = did_from_public(&kp.public());
        let signed = SignedDocument::sign(&kp, json!({"service": []}), 0).unwrap();
        assert_eq!(signed.did(), Some(did.as_str()));
        signed.verify().unwrap();

        let other = did_from_public(&keypair(5).public());
        assert_eq!(
            SignedDocument::sign(&kp, default_document(&other), 0),
            Err(DidError::IdMismatch {
                expected: did,
                found: other
            })
        );
        assert!(matches!(
            SignedDocument::sign(&kp, json!([1, 2]), 0),
            Err(DidError::BadDocument(_))
        ));
        assert!(matches!(
            SignedDocument::sign(&kp, json!({"id": 5}), 0),
            Err(DidError::BadDocument(_))
        ));
    }

    #[test]
    fn tampering_is_detected() {
        let kp = keypair(6);
        let did = did_from_public(&kp.public());
        let signed = SignedDocument::sign(&kp, default_document(&did), 5).unwrap();

        let mut doc_changed = signed.clone();
        doc_changed.document["service"] = json!([{"id": "#x"}]);
        assert_eq!(doc_changed.verify(), Err(DidError::BadSignature));

        let mut seq_changed = signed.clone();
        seq_changed.seq = 6;
        assert_eq!(seq_changed.verify(), Err(DidError::BadSignature));

        let mut sig_changed = signed.clone();
        sig_changed.signature = format!("z{}", bs58::encode([0u8; 64]).into_string());
        assert_eq!(sig_changed.verify(), Err(DidError::BadSignature));

        let mut sig_garbage = signed.clone();
        sig_garbage.signature = "not multibase".into();
        assert!(matches!(
            sig_garbage.verify(),
            Err(DidError::BadEncoding(_))
        ));

        let mut sig_short = signed;
        sig_short.signature = format!("z{}", bs58::encode([1u8; 63]).into_string());
        assert!(matches!(sig_short.verify(), Err(DidError::BadEncoding(_))));
    }

    #[test]
    fn signature_by_another_key_is_refused() {
        let a = keypair(7);
        let b = keypair(8);
        let did_a = did_from_public(&a.public());
        // B signs a document claiming to be A's.
        let document = default_document(&did_a);
        let message = signing_bytes(&document, 9);
        let forged = SignedDocument {
            document,
            seq: 9,
            signature: format!("z{}", bs58::encode(b.sign(&message)).into_string()),
        };
        assert_eq!(forged.did(), Some(did_a.as_str()));
        assert_eq!(forged.verify(), Err(DidError::BadSignature));
    }

    #[test]
    fn verify_refuses_bad_documents() {
        let no_id = SignedDocument {
            document: json!({}),
            seq: 0,
            signature: "z".into(),
        };
        assert!(matches!(no_id.verify(), Err(DidError::BadDocument(_))));
        let not_object = SignedDocument {
            document: json!("did:key:z6Mk"),
            seq: 0,
            signature: "z".into(),
        };
        assert!(matches!(not_object.verify(), Err(DidError::BadDocument(_))));
        let not_did_key = SignedDocument {
            document: json!({"id": "did:web:example.com"}),
            seq: 0,
            signature: "z".into(),
        };
        assert_eq!(not_did_key.verify(), Err(DidError::NotDidKey));
    }

    #[test]
    fn from_bytes_refuses_garbage() {
        for bad in [
            &b""[..],
            b"null",
            b"{",
            b"{\"document\":{},\"seq\":-1,\"signature\":\"z\"}",
            b"{\"document\":{},\"signature\":\"z\"}",
            b"{\"document\":{},\"seq\":1,\"signature\":\"z\",\"extra\":1}",
        ] {
            assert!(
                matches!(SignedDocument::from_bytes(bad), Err(DidError::Json(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Deep nesting hits serde_json's recursion limit instead of overflowing the stack.
        let deep = format!(
            "{{\"document\":{}{},\"seq\":1,\"signature\":\"z\"}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(matches!(
            SignedDocument::from_bytes(deep.as_bytes()),
            Err(DidError::Json(_))
        ));
    }
}
