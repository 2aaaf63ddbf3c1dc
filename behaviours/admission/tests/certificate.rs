mod common;

use std::time::Duration;

use common::*;
use mcc_admission::{
    CertError, Certificate, CertificateFields, EXPIRY_WARNING, Permission, Permissions, Serial,
    SignError, keys,
};

#[test]
fn sign_and_verify() {
    let n = net();
    n.cert.verify(&n.ca, NOW, None).unwrap();
    assert_eq!(n.cert.label(), "mynode01");
    assert_eq!(n.cert.peer_id(), keys::peer_id_of(&n.node_key.public()));
    assert!(n.cert.permissions().allows(Permission::RpcCall));
    assert!(!n.cert.permissions().allows(Permission::RecordsWrite));
    assert!(!n.cert.is_ca());
    assert_eq!(n.cert.issuer(), &n.ca_key.public());
    n.cert
        .verify_for_peer(&n.cert.peer_id(), &n.ca, NOW, None)
        .unwrap();
}

#[test]
fn ca_is_self_signed_with_all() {
    let n = net();
    assert!(n.ca.is_ca());
    assert_eq!(n.ca.peer_id(), keys::peer_id_of(&n.ca_key.public()));
    assert!(n.ca.permissions().allows(Permission::BlobsSeed));
    n.ca.verify_signature(&n.ca_key.public()).unwrap();
    n.ca.verify_ca(NOW).unwrap();
    // The CA certificate itself verifies against itself.
    n.ca.verify(&n.ca, NOW, None).unwrap();
}

#[test]
fn bytes_and_base64_round_trip() {
    let n = net();
    let back = Certificate::from_bytes(&n.cert.to_bytes()).unwrap();
    assert_eq!(back, n.cert);
    assert_eq!(back.serial(), n.cert.serial());
    assert_eq!(back.label(), n.cert.label());
    assert_eq!(back.permissions(), n.cert.permissions());
    assert_eq!(back.not_before(), n.cert.not_before());
    assert_eq!(back.not_after(), n.cert.not_after());
    assert_eq!(back.peer_id(), n.cert.peer_id());
    back.verify(&n.ca, NOW, None).unwrap();

    let text = n.cert.to_base64();
    assert!(!text.contains('\n'));
    assert_eq!(Certificate::from_base64(&text).unwrap(), n.cert);
    assert_eq!(Certificate::from_base64(&wrap(&text, 64)).unwrap(), n.cert);
    assert_eq!(
        Certificate::from_base64(text.trim_end_matches('=')).unwrap(),
        n.cert
    );
    let ca = Certificate::from_base64(&format!("{}\n", n.ca.to_base64())).unwrap();
    assert_eq!(ca, n.ca);
    n.cert.verify(&ca, NOW, None).unwrap();
}

#[test]
fn every_tampered_byte_is_caught() {
    let n = net();
    let bytes = n.cert.to_bytes();
    for i in 5..bytes.len() {
        let mut t = bytes.clone();
        t[i] ^= 0x01;
        // Either it no longer decodes, or the signature check fails.
        if let Ok(cert) = Certificate::from_bytes(&t) {
            let err = cert.verify(&n.ca, NOW, None).unwrap_err();
            assert!(
                matches!(
                    err,
                    CertError::BadSignature
                        | CertError::WrongIssuer { .. }
                        | CertError::UnexpectedCa
                ),
                "byte {i}: {err:?}"
            );
        }
    }
}

#[test]
fn wrong_ca_is_refused() {
    let n = net();
    let other = net();
    let err = n.cert.verify(&other.ca, NOW, None).unwrap_err();
    assert!(matches!(err, CertError::WrongIssuer { .. }), "{err:?}");
    assert!(err.to_string().contains("different CA"));
    assert_eq!(
        n.cert.verify_signature(&other.ca_key.public()),
        Err(CertError::BadSignature)
    );
}

#[test]
fn a_node_certificate_is_not_a_ca() {
    let n = net();
    assert_eq!(n.cert.verify(&n.cert, NOW, None), Err(CertError::NotCa));
}

#[test]
fn forged_ca_flag_needs_self_signature() {
    // A CA certificate must be for its own key.
    let ca_key = key();
    let mut fields = CertificateFields::ca(&ca_key.public(), "ca", NOW, NOW + DAY);
    fields.peer_id = keys::peer_id_of(&key().public());
    assert_eq!(
        Certificate::sign(&ca_key, fields),
        Err(SignError::CaNotSelfSigned)
    );
    // A CA certificate signed by another key is not a usable trust root.
    let n = net();
    let other_key = key();
    let fields = CertificateFields::ca(&other_key.public(), "ca", NOW, NOW + DAY);
    let mut fields2 = fields.clone();
    fields2.peer_id = keys::peer_id_of(&n.ca_key.public());
    let wrong = Certificate::sign(&other_key, fields2);
    assert_eq!(wrong, Err(SignError::CaNotSelfSigned));
}

#[test]
fn intermediate_ca_is_refused() {
    let n = net();
    let sub_key = key();
    // Signed by the root but flagged CA: not the trusted CA itself, so refused.
    let mut fields = CertificateFields::new(
        keys::peer_id_of(&sub_key.public()),
        "sub",
        Permissions::all(),
        NOW - DAY,
        NOW + DAY,
    );
    fields.is_ca = true;
    assert_eq!(
        Certificate::sign(&n.ca_key, fields),
        Err(SignError::CaNotSelfSigned)
    );
    let other_ca = Certificate::new_ca(&sub_key, "sub", NOW - DAY, NOW + DAY).unwrap();
    assert!(matches!(
        other_ca.verify(&n.ca, NOW, None),
        Err(CertError::UnexpectedCa)
    ));
}

#[test]
fn expired_and_not_yet_valid() {
    let n = net();
    let not_after = n.cert.not_after();
    assert_eq!(
        n.cert.verify(&n.ca, not_after, None),
        Err(CertError::Expired {
            not_after,
            now: not_after
        })
    );
    n.cert.verify(&n.ca, not_after - 1, None).unwrap();
    let err = n.cert.verify(&n.ca, not_after + 5, None).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("expired"), "{msg}");
    assert!(msg.contains("UTC"), "{msg}");

    let not_before = n.cert.not_before();
    assert_eq!(
        n.cert.verify(&n.ca, not_before - 1, None),
        Err(CertError::NotYetValid {
            not_before,
            now: not_before - 1
        })
    );
    assert!(
        n.cert
            .verify(&n.ca, not_before - 1, None)
            .unwrap_err()
            .to_string()
            .contains("not valid yet")
    );
    n.cert.verify(&n.ca, not_before, None).unwrap();
}

#[test]
fn expired_ca_says_so() {
    let ca_key = key();
    let ca = Certificate::new_ca(&ca_key, "ca", NOW - 10 * DAY, NOW - DAY).unwrap();
    let node = key();
    let cert = Certificate::sign(
        &ca_key,
        CertificateFields::new(
            keys::peer_id_of(&node.public()),
            "n",
            Permissions::new(),
            NOW - 5 * DAY,
            NOW + DAY,
        ),
    )
    .unwrap();
    let err = cert.verify(&ca, NOW, None).unwrap_err();
    assert_eq!(
        err,
        CertError::CaExpired {
            not_after: NOW - DAY,
            now: NOW
        }
    );
    assert!(err.to_string().contains("CA certificate expired"));
    let early = Certificate::new_ca(&ca_key, "ca", NOW + DAY, NOW + 2 * DAY).unwrap();
    assert!(matches!(
        cert.verify(&early, NOW, None),
        Err(CertError::CaNotYetValid { .. })
    ));
}

#[test]
fn expiry_helpers() {
    let n = net();
    assert_eq!(n.cert.expires_in(NOW), Some(Duration::from_secs(365 * DAY)));
    assert_eq!(n.cert.expires_in(n.cert.not_after()), None);
    assert!(!n.cert.expires_within(NOW, EXPIRY_WARNING));
    assert!(
        n.cert
            .expires_within(n.cert.not_after() - 29 * DAY, EXPIRY_WARNING)
    );
    assert!(
        n.cert
            .expires_within(n.cert.not_after() + 1, EXPIRY_WARNING)
    );
}

#[test]
fn peer_mismatch() {
    let n = net();
    let stranger = keys::peer_id_of(&key().public());
    assert!(matches!(
        n.cert.verify_for_peer(&stranger, &n.ca, NOW, None),
        Err(CertError::PeerMismatch { .. })
    ));
}

#[test]
fn sign_rejects_bad_fields() {
    let ca_key = key();
    let peer = keys::peer_id_of(&key().public());
    assert!(matches!(
        Certificate::sign(
            &ca_key,
            CertificateFields::new(peer, "!!!", Permissions::new(), NOW, NOW + 1)
        ),
        Err(SignError::EmptyLabel(_))
    ));
    assert_eq!(
        Certificate::sign(
            &ca_key,
            CertificateFields::new(peer, "x", Permissions::new(), NOW, NOW)
        ),
        Err(SignError::InvalidValidity {
            not_before: NOW,
            not_after: NOW
        })
    );
}

#[test]
fn chosen_serial_and_serial_text() {
    let ca_key = key();
    let peer = keys::peer_id_of(&key().public());
    let serial = Serial([0xab; 16]);
    let mut fields = CertificateFields::new(peer, "x", Permissions::new(), NOW, NOW + 1);
    fields.serial = Some(serial);
    let cert = Certificate::sign(&ca_key, fields).unwrap();
    assert_eq!(cert.serial(), serial);
    assert_eq!(serial.to_string(), "ab".repeat(16));
    assert_eq!(serial.to_string().parse::<Serial>().unwrap(), serial);
    assert!("abc".parse::<Serial>().is_err());
    assert!("zz".repeat(16).parse::<Serial>().is_err());
    assert!("é".repeat(16).parse::<Serial>().is_err());
    assert_ne!(Serial::random(), Serial::random());
}

#[test]
fn peer_id_key_round_trip() {
    let k = key();
    let peer = keys::peer_id_of(&k.public());
    assert_eq!(keys::ed25519_of_peer_id(&peer), Some(k.public()));
    assert_eq!(keys::ed25519_of_peer_id(&libp2p::PeerId::random()), None);
}
