mod common;

use common::*;
use mcc_admission::{
    CertError, Certificate, CertificateFields, CertificateRequest, DecodeError, Kind, Permission,
    Permissions, keys,
};

fn request() -> (libp2p::identity::ed25519::Keypair, CertificateRequest) {
    let k = key();
    let perms: Permissions = "services:provide, rpc:call".parse().unwrap();
    let req = CertificateRequest::sign(&k, "  Kitchen Pi 3 ", perms, NOW).unwrap();
    (k, req)
}

#[test]
fn request_round_trip_and_verify() {
    let (k, req) = request();
    req.verify().unwrap();
    assert_eq!(req.peer_id(), keys::peer_id_of(&k.public()));
    assert_eq!(req.public_key(), &k.public());
    assert_eq!(req.label(), "kitchenpi3");
    assert_eq!(req.created_at(), NOW);
    assert!(req.permissions().allows(Permission::ServicesProvide));
    let back = CertificateRequest::from_base64(&wrap(&req.to_base64(), 40)).unwrap();
    assert_eq!(back, req);
    back.verify().unwrap();
    assert_eq!(
        CertificateRequest::from_bytes(&req.to_bytes()).unwrap(),
        req
    );
}

#[test]
fn tampered_request_fails() {
    let (_, req) = request();
    let bytes = req.to_bytes();
    for i in 5..bytes.len() {
        let mut t = bytes.clone();
        t[i] ^= 0x04;
        if let Ok(r) = CertificateRequest::from_bytes(&t) {
            assert_eq!(r.verify(), Err(CertError::RequestBadSignature), "byte {i}");
        }
    }
}

#[test]
fn ca_signs_a_request() {
    let n = net();
    let (_, req) = request();
    req.verify().unwrap();
    let cert = Certificate::sign(
        &n.ca_key,
        CertificateFields::from_request(&req, NOW, NOW + DAY),
    )
    .unwrap();
    cert.verify_for_peer(&req.peer_id(), &n.ca, NOW, None)
        .unwrap();
    assert_eq!(cert.label(), "kitchenpi3");
    assert_eq!(cert.permissions(), req.permissions());
}

#[test]
fn request_is_not_a_certificate() {
    let (_, req) = request();
    assert_eq!(
        Certificate::from_bytes(&req.to_bytes()),
        Err(DecodeError::WrongKind {
            expected: Kind::Certificate,
            found: Kind::Request
        })
    );
    let err = Certificate::from_base64(&req.to_base64()).unwrap_err();
    assert!(err.to_string().contains("certificate request"), "{err}");
}
