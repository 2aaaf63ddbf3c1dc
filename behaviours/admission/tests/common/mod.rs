// Shared fixtures for the integration tests (included with `mod common;`).
#![allow(dead_code)]

use libp2p::identity::ed25519;
use mcc_admission::{
    Certificate, CertificateFields, Permission, Permissions, RevocationFields, RevocationList, keys,
};

pub const NOW: u64 = 1_750_000_000;
pub const DAY: u64 = 86_400;

pub fn key() -> ed25519::Keypair {
    keys::to_ed25519(&keys::generate()).unwrap()
}

pub struct Net {
    pub ca_key: ed25519::Keypair,
    pub ca: Certificate,
    pub node_key: ed25519::Keypair,
    pub cert: Certificate,
}

pub fn net() -> Net {
    let ca_key = key();
    let ca = Certificate::new_ca(&ca_key, "Test CA", NOW - 10 * DAY, NOW + 3650 * DAY).unwrap();
    let node_key = key();
    let cert = Certificate::sign(
        &ca_key,
        CertificateFields::new(
            keys::peer_id_of(&node_key.public()),
            "My-Node_01!",
            [Permission::RpcCall, Permission::ServicesConsume]
                .into_iter()
                .collect::<Permissions>(),
            NOW - DAY,
            NOW + 365 * DAY,
        ),
    )
    .unwrap();
    Net {
        ca_key,
        ca,
        node_key,
        cert,
    }
}

pub fn revocations(ca_key: &ed25519::Keypair, fields: RevocationFields) -> RevocationList {
    RevocationList::sign(ca_key, fields).unwrap()
}

/// Wraps base64 text at `width` columns with a trailing newline, like a PEM-ish file.
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::from("\n  ");
    for chunk in text.as_bytes().chunks(width) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push_str("\r\n");
    }
    out.push('\n');
    out
}
