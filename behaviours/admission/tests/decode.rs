//! Decoding hostile input: never panics, errors are typed and say what is wrong.
mod common;

use common::*;
use mcc_admission::{
    Base64Error, Certificate, CertificateRequest, DecodeError, FORMAT_VERSION, Kind,
    MAX_CERTIFICATE_LEN, MAX_REVOCATION_LIST_LEN, RevocationFields, RevocationList,
};
use rand::{Rng, RngCore, SeedableRng};

fn all_decoders(bytes: &[u8]) {
    let _ = Certificate::from_bytes(bytes);
    let _ = CertificateRequest::from_bytes(bytes);
    let _ = RevocationList::from_bytes(bytes);
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..5_000 {
        let len = rng.gen_range(0..600);
        let mut buf = vec![0u8; len];
        rng.fill_bytes(&mut buf);
        // Sometimes start with a valid header so the field decoders get exercised.
        if len >= 5 && rng.gen_bool(0.7) {
            buf[..3].copy_from_slice(b"MCC");
            buf[3] = *[b'C', b'Q', b'R'].get(rng.gen_range(0..3)).unwrap();
            buf[4] = FORMAT_VERSION;
        }
        all_decoders(&buf);
    }
}

#[test]
fn every_truncation_is_an_error() {
    let n = net();
    let list = revocations(
        &n.ca_key,
        RevocationFields {
            sequence: 1,
            issued_at: NOW,
            serials: [n.cert.serial()].into(),
            peers: [n.cert.peer_id()].into(),
        },
    );
    let cert = n.cert.to_bytes();
    for len in 0..cert.len() {
        assert!(Certificate::from_bytes(&cert[..len]).is_err(), "len {len}");
    }
    let list = list.to_bytes();
    for len in 0..list.len() {
        assert!(
            RevocationList::from_bytes(&list[..len]).is_err(),
            "len {len}"
        );
    }
}

#[test]
fn random_mutations_never_panic() {
    let n = net();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let base = n.cert.to_bytes();
    for _ in 0..1_000 {
        let mut t = base.clone();
        for _ in 0..rng.gen_range(1..4) {
            let i = rng.gen_range(0..t.len());
            t[i] = rng.r#gen();
        }
        if let Ok(c) = Certificate::from_bytes(&t) {
            if t != base {
                assert!(c.verify_signature(&n.ca_key.public()).is_err());
            }
            let _ = c.to_string_checks();
        }
    }
}

trait Touch {
    fn to_string_checks(&self) -> usize;
}

impl Touch for Certificate {
    fn to_string_checks(&self) -> usize {
        self.label().len() + self.permissions().to_string().len() + self.serial().to_string().len()
    }
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let big = vec![0u8; MAX_CERTIFICATE_LEN + 1];
    assert!(matches!(
        Certificate::from_bytes(&big),
        Err(DecodeError::TooLarge {
            kind: Kind::Certificate,
            ..
        })
    ));
    let text = "A".repeat(MAX_CERTIFICATE_LEN * 2);
    assert!(matches!(
        Certificate::from_base64(&text),
        Err(DecodeError::Base64(Base64Error::TooLarge { .. }))
    ));
    let big = vec![0u8; MAX_REVOCATION_LIST_LEN + 1];
    assert!(matches!(
        RevocationList::from_bytes(&big),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn version_mismatch_is_clear() {
    let n = net();
    let mut bytes = n.cert.to_bytes();
    bytes[4] = 2;
    let err = Certificate::from_bytes(&bytes).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnsupportedVersion {
            kind: Kind::Certificate,
            found: 2,
            supported: 1
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("version 2"), "{msg}");
    assert!(msg.contains("newer mcc"), "{msg}");
}

#[test]
fn bad_magic_kind_and_trailing() {
    let n = net();
    assert_eq!(
        Certificate::from_bytes(b"hello world, this is not a certificate"),
        Err(DecodeError::BadMagic {
            expected: Kind::Certificate
        })
    );
    let mut bytes = n.cert.to_bytes();
    bytes[3] = b'Z';
    assert!(matches!(
        Certificate::from_bytes(&bytes),
        Err(DecodeError::UnknownKind { tag: b'Z', .. })
    ));
    assert!(matches!(
        RevocationList::from_bytes(&n.cert.to_bytes()),
        Err(DecodeError::WrongKind {
            expected: Kind::RevocationList,
            found: Kind::Certificate
        })
    ));
    // An extra byte before the signature shifts everything: decoding must not accept it.
    let bytes = n.cert.to_bytes();
    let (body, sig) = bytes.split_at(bytes.len() - 64);
    let mut extended = body.to_vec();
    extended.push(0);
    extended.extend_from_slice(sig);
    assert!(matches!(
        Certificate::from_bytes(&extended),
        Err(DecodeError::TrailingBytes { count: 1, .. })
    ));
}

#[test]
fn bad_base64_text() {
    assert!(matches!(
        Certificate::from_base64("   \n\t"),
        Err(DecodeError::Base64(Base64Error::Empty))
    ));
    assert!(matches!(
        Certificate::from_base64("not base64 at all!!"),
        Err(DecodeError::Base64(Base64Error::Invalid(_)))
    ));
    assert!(matches!(
        Certificate::from_base64("héllo"),
        Err(DecodeError::Base64(Base64Error::Invalid(_)))
    ));
}

#[test]
fn unknown_permission_in_certificate_is_kept_but_grants_nothing() {
    // Build a certificate by hand with a permission name from the future, signed properly.
    let ca_key = key();
    let ca = Certificate::new_ca(&ca_key, "ca", NOW - DAY, NOW + DAY).unwrap();
    let peer = mcc_admission::keys::peer_id_of(&key().public());
    let mut body = Vec::new();
    body.extend_from_slice(b"MCCC\x01");
    body.extend_from_slice(&[9; 16]);
    body.push(0);
    body.extend_from_slice(&(NOW - DAY).to_be_bytes());
    body.extend_from_slice(&(NOW + DAY).to_be_bytes());
    body.extend_from_slice(&ca_key.public().to_bytes());
    let p = peer.to_bytes();
    body.push(p.len() as u8);
    body.extend_from_slice(&p);
    body.push(4);
    body.extend_from_slice(b"node");
    body.push(2);
    for name in [&b"rpc:call"[..], b"mesh:relay"] {
        body.push(name.len() as u8);
        body.extend_from_slice(name);
    }
    let sig = ca_key.sign(&body);
    body.extend_from_slice(&sig);

    let cert = Certificate::from_bytes(&body).unwrap();
    cert.verify(&ca, NOW, None).unwrap();
    assert_eq!(
        cert.permissions().unknown().collect::<Vec<_>>(),
        ["mesh:relay"]
    );
    assert!(
        cert.permissions()
            .allows(mcc_admission::Permission::RpcCall)
    );
    assert_eq!(cert.permissions().to_string(), "rpc:call,mesh:relay");
    assert_eq!(Certificate::from_base64(&cert.to_base64()).unwrap(), cert);

    // A non-printable permission name is refused.
    let mut bad = body.clone();
    let pos = bad.len() - 64 - 1; // last byte of "mesh:relay"
    bad[pos] = b'\n';
    assert!(matches!(
        Certificate::from_bytes(&bad),
        Err(DecodeError::InvalidField {
            field: "permission",
            ..
        })
    ));
}

/// A certificate signed by hand with the given permission names.
fn cert_with_names(names: &[&[u8]]) -> Certificate {
    let ca_key = key();
    let ca = Certificate::new_ca(&ca_key, "ca", NOW - DAY, NOW + DAY).unwrap();
    let peer = mcc_admission::keys::peer_id_of(&key().public());
    let mut body = Vec::new();
    body.extend_from_slice(b"MCCC\x01");
    body.extend_from_slice(&[9; 16]);
    body.push(0);
    body.extend_from_slice(&(NOW - DAY).to_be_bytes());
    body.extend_from_slice(&(NOW + DAY).to_be_bytes());
    body.extend_from_slice(&ca_key.public().to_bytes());
    let p = peer.to_bytes();
    body.push(p.len() as u8);
    body.extend_from_slice(&p);
    body.push(4);
    body.extend_from_slice(b"node");
    body.push(names.len() as u8);
    for name in names {
        body.push(name.len() as u8);
        body.extend_from_slice(name);
    }
    let sig = ca_key.sign(&body);
    body.extend_from_slice(&sig);
    let cert = Certificate::from_bytes(&body).unwrap();
    cert.verify(&ca, NOW, None).unwrap();
    cert
}

#[test]
fn routes_permissions_decode_and_older_certificates_still_do() {
    use mcc_admission::Permission;
    let new = cert_with_names(&[b"routes:publish", b"routes:subscribe"]);
    assert!(new.permissions().allows(Permission::RoutesPublish));
    assert!(new.permissions().allows(Permission::RoutesSubscribe));
    assert_eq!(new.permissions().unknown().count(), 0);
    assert_eq!(
        new.permissions().to_string(),
        "routes:publish,routes:subscribe"
    );
    // A certificate from before routes: it decodes, and grants routes only through `all`.
    let old = cert_with_names(&[b"services:consume", b"rpc:call"]);
    assert!(!old.permissions().allows(Permission::RoutesPublish));
    let old_all = cert_with_names(&[b"all"]);
    assert!(old_all.permissions().allows(Permission::RoutesSubscribe));
}
