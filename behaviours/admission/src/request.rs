//! Certificate requests: what `--newcert` writes for a CA to sign.

use libp2p::PeerId;
use libp2p::identity::ed25519;

use crate::cert::{read_ed25519, read_label};
use crate::error::{CertError, DecodeError, SignError};
use crate::keys::peer_id_of;
use crate::label::normalize_label;
use crate::permission::Permissions;
use crate::wire::{self, Kind, Reader, SIGNATURE_LEN, Writer};

/// Largest encoded request accepted, in bytes.
pub const MAX_REQUEST_LEN: usize = 2048;

/// A node's request for a certificate: its public key (hence peer id), label and the
/// permissions it asks for, signed with the node's own key to prove it holds it.
///
/// Equality compares the exact encoding.
#[derive(Clone, Debug)]
pub struct CertificateRequest {
    public_key: ed25519::PublicKey,
    peer_id: PeerId,
    label: String,
    permissions: Permissions,
    created_at: u64,
    signature: [u8; SIGNATURE_LEN],
    encoded: Vec<u8>,
}

impl PartialEq for CertificateRequest {
    fn eq(&self, other: &Self) -> bool {
        self.encoded == other.encoded
    }
}

impl Eq for CertificateRequest {}

impl CertificateRequest {
    /// Creates a request signed by the node key. The label is normalized.
    pub fn sign(
        node_key: &ed25519::Keypair,
        label: &str,
        permissions: Permissions,
        created_at: u64,
    ) -> Result<CertificateRequest, SignError> {
        let label =
            normalize_label(label).ok_or_else(|| SignError::EmptyLabel(label.to_string()))?;
        permissions.check_limits()?;
        let public_key = node_key.public();
        let mut w = Writer::new(Kind::Request);
        w.raw(&public_key.to_bytes());
        w.short(label.as_bytes());
        permissions.encode(&mut w);
        w.u64(created_at);
        let (encoded, signature) = w.sign(|tbs| node_key.sign(tbs));
        Ok(CertificateRequest {
            peer_id: peer_id_of(&public_key),
            public_key,
            label,
            permissions,
            created_at,
            signature,
            encoded,
        })
    }

    /// Checks that the request is signed by the key it names.
    pub fn verify(&self) -> Result<(), CertError> {
        let tbs = &self.encoded[..self.encoded.len() - SIGNATURE_LEN];
        if self.public_key.verify(tbs, &self.signature) {
            Ok(())
        } else {
            Err(CertError::RequestBadSignature)
        }
    }

    /// Decodes a request (binary form). Checks structure only, not the signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<CertificateRequest, DecodeError> {
        let opened = Reader::open(bytes, Kind::Request, MAX_REQUEST_LEN)?;
        let mut r = opened.reader;
        let public_key = read_ed25519(&mut r, "node key")?;
        let label = read_label(&mut r)?;
        let permissions = Permissions::decode(&mut r)?;
        let created_at = r.u64("created_at")?;
        r.finish()?;
        Ok(CertificateRequest {
            peer_id: peer_id_of(&public_key),
            public_key,
            label,
            permissions,
            created_at,
            signature: opened.signature,
            encoded: bytes.to_vec(),
        })
    }

    /// The binary encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encoded.clone()
    }

    /// The binary encoding as one line of base64.
    pub fn to_base64(&self) -> String {
        wire::encode_base64(&self.encoded)
    }

    /// Decodes base64 text; whitespace and line breaks anywhere are ignored.
    pub fn from_base64(text: &str) -> Result<CertificateRequest, DecodeError> {
        CertificateRequest::from_bytes(&wire::decode_base64(text, MAX_REQUEST_LEN)?)
    }

    /// The requesting node's public key.
    pub fn public_key(&self) -> &ed25519::PublicKey {
        &self.public_key
    }

    /// The requesting node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The requested label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The requested permissions.
    pub fn permissions(&self) -> &Permissions {
        &self.permissions
    }

    /// When the request was made, unix seconds (as claimed by the node).
    pub fn created_at(&self) -> u64 {
        self.created_at
    }
}
