//! Key helpers: generating ed25519 keys and the base64 `--privkey` file format.
//!
//! A private key file holds one line of base64 of the libp2p protobuf encoding of the keypair,
//! the same bytes as the node's `identity.key`. Reading also accepts a bare 32-byte ed25519
//! secret key.

use libp2p::PeerId;
use libp2p::identity::{self, Keypair, PublicKey, ed25519};

use crate::error::KeyError;
use crate::wire;

/// Largest decoded private key accepted, in bytes.
pub const MAX_PRIVATE_KEY_LEN: usize = 1024;

/// A fresh ed25519 keypair.
pub fn generate() -> Keypair {
    Keypair::generate_ed25519()
}

/// The private key as base64 text (`--privkey` file content). Treat the string as secret.
pub fn private_key_to_base64(key: &Keypair) -> Result<String, KeyError> {
    let bytes = key
        .to_protobuf_encoding()
        .map_err(|e| KeyError::Invalid(e.to_string()))?;
    Ok(wire::encode_base64(&bytes))
}

/// Reads a private key from base64 text; whitespace is ignored. Only ed25519 keys are accepted.
pub fn private_key_from_base64(text: &str) -> Result<Keypair, KeyError> {
    let mut bytes = wire::decode_base64(text, MAX_PRIVATE_KEY_LEN)?;
    let key = if bytes.len() == 32 {
        Keypair::ed25519_from_bytes(&mut bytes).map_err(|e| KeyError::Invalid(e.to_string()))?
    } else {
        Keypair::from_protobuf_encoding(&bytes).map_err(|e| KeyError::Invalid(e.to_string()))?
    };
    if key.key_type() != identity::KeyType::Ed25519 {
        return Err(KeyError::NotEd25519);
    }
    Ok(key)
}

/// The ed25519 keypair inside a libp2p keypair (what signing functions take).
pub fn to_ed25519(key: &Keypair) -> Result<ed25519::Keypair, KeyError> {
    key.clone()
        .try_into_ed25519()
        .map_err(|_| KeyError::NotEd25519)
}

/// The peer id of an ed25519 public key.
pub fn peer_id_of(key: &ed25519::PublicKey) -> PeerId {
    PeerId::from_public_key(&PublicKey::from(key.clone()))
}

/// The ed25519 key inside a peer id, when the peer id embeds it (an ed25519 peer id always
/// does: it is the identity multihash of the protobuf-encoded key).
pub fn ed25519_of_peer_id(peer: &PeerId) -> Option<ed25519::PublicKey> {
    let bytes = peer.to_bytes();
    // identity multihash: code 0x00, one-byte length, digest.
    let (&[0x00, len], digest) = bytes.split_first_chunk::<2>()? else {
        return None;
    };
    if usize::from(len) != digest.len() {
        return None;
    }
    PublicKey::try_decode_protobuf(digest)
        .ok()?
        .try_into_ed25519()
        .ok()
}
