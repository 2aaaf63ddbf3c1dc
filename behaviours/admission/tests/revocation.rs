mod common;

use std::collections::BTreeSet;

use common::*;
use mcc_admission::{CertError, DecodeError, Kind, RevocationFields, RevocationList, Serial};

#[test]
fn revoked_serial_is_refused() {
    let n = net();
    let list = revocations(
        &n.ca_key,
        RevocationFields {
            sequence: 1,
            issued_at: NOW,
            serials: [n.cert.serial()].into(),
            peers: BTreeSet::new(),
        },
    );
    list.verify(&n.ca).unwrap();
    assert!(list.is_revoked(&n.cert));
    assert!(!list.is_revoked(&n.ca));
    let err = n.cert.verify(&n.ca, NOW, Some(&list)).unwrap_err();
    assert_eq!(
        err,
        CertError::Revoked {
            serial: n.cert.serial()
        }
    );
    assert!(err.to_string().contains("revoked"));
    assert!(err.to_string().contains(&n.cert.serial().to_string()));
}

#[test]
fn revoked_peer_is_refused() {
    let n = net();
    let list = revocations(
        &n.ca_key,
        RevocationFields {
            sequence: 1,
            issued_at: NOW,
            serials: BTreeSet::new(),
            peers: [n.cert.peer_id()].into(),
        },
    );
    assert_eq!(
        n.cert.verify(&n.ca, NOW, Some(&list)),
        Err(CertError::PeerRevoked {
            peer: n.cert.peer_id()
        })
    );
}

#[test]
fn unrelated_list_allows() {
    let n = net();
    let list = revocations(
        &n.ca_key,
        RevocationFields {
            sequence: 3,
            issued_at: NOW,
            serials: [Serial([7; 16])].into(),
            peers: BTreeSet::new(),
        },
    );
    n.cert.verify(&n.ca, NOW, Some(&list)).unwrap();
    let empty = revocations(&n.ca_key, RevocationFields::default());
    n.cert.verify(&n.ca, NOW, Some(&empty)).unwrap();
}

#[test]
fn list_from_another_ca_is_refused() {
    let n = net();
    let other = net();
    let list = revocations(&other.ca_key, RevocationFields::default());
    assert_eq!(
        list.verify(&n.ca),
        Err(CertError::RevocationListWrongIssuer)
    );
    assert_eq!(
        n.cert.verify(&n.ca, NOW, Some(&list)),
        Err(CertError::RevocationListWrongIssuer)
    );
    assert_eq!(list.verify(&n.cert), Err(CertError::NotCa));
}

#[test]
fn tampered_list_is_refused() {
    let n = net();
    let list = revocations(
        &n.ca_key,
        RevocationFields {
            sequence: 9,
            issued_at: NOW,
            serials: [Serial([1; 16]), n.cert.serial()].into(),
            peers: BTreeSet::new(),
        },
    );
    let bytes = list.to_bytes();
    for i in 5..bytes.len() {
        let mut t = bytes.clone();
        t[i] ^= 0x80;
        if let Ok(l) = RevocationList::from_bytes(&t) {
            assert!(l.verify(&n.ca).is_err(), "byte {i}");
        }
    }
}

#[test]
fn round_trip_and_newer_than() {
    let n = net();
    let peer = n.cert.peer_id();
    let v1 = revocations(
        &n.ca_key,
        RevocationFields {
            sequence: 1,
            issued_at: NOW,
            serials: (0..100u8).map(|i| Serial([i; 16])).collect(),
            peers: [peer].into(),
        },
    );
    let back = RevocationList::from_base64(&wrap(&v1.to_base64(), 76)).unwrap();
    assert_eq!(back, v1);
    assert_eq!(back.sequence(), 1);
    assert_eq!(back.issued_at(), NOW);
    assert_eq!(back.serials().len(), 100);
    assert!(back.peers().contains(&peer));
    assert_eq!(back.issuer(), &n.ca_key.public());
    back.verify(&n.ca).unwrap();

    let mut fields = v1.to_fields();
    fields.sequence += 1;
    fields.serials.insert(n.cert.serial());
    let v2 = revocations(&n.ca_key, fields);
    assert!(v2.newer_than(&v1));
    assert!(!v1.newer_than(&v2));
    assert!(!v2.newer_than(&v2));
    // Another CA's list never supersedes.
    let other = net();
    let foreign = revocations(
        &other.ca_key,
        RevocationFields {
            sequence: 100,
            ..RevocationFields::default()
        },
    );
    assert!(!foreign.newer_than(&v1));
}

#[test]
fn huge_counts_do_not_allocate_or_panic() {
    let n = net();
    let list = revocations(&n.ca_key, RevocationFields::default());
    let mut bytes = list.to_bytes();
    // serial count sits right after header (5) + issuer (32) + sequence (8) + issued_at (8).
    bytes[53..57].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        RevocationList::from_bytes(&bytes),
        Err(DecodeError::Truncated {
            kind: Kind::RevocationList,
            ..
        })
    ));
}
