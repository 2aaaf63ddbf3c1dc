//! DHT keys the node derives from strings: the provider key of a name (rendezvous key,
//! `/mcc/service/<name>`).
//!
//! The other key helpers live with their feature: `blobs::provider_key` (a CID's multihash)
//! and `services::service_key` (built on [`provider_key`]).

use libp2p::kad::RecordKey;

/// The provider key of a string (rendezvous key, `/mcc/service/<name>`): the sha2-256
/// multihash of its bytes.
pub fn provider_key(key: &str) -> RecordKey {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    // Multihash: code 0x12 (sha2-256), length 32, digest.
    let mut mh = Vec::with_capacity(34);
    mh.extend_from_slice(&[0x12, 0x20]);
    mh.extend_from_slice(&digest);
    RecordKey::new(&mh)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_key_is_a_sha256_multihash() {
        let k = provider_key("mcc");
        assert_eq!(k.as_ref().len(), 34);
        assert_eq!(&k.as_ref()[..2], &[0x12, 0x20]);
        assert_ne!(provider_key("a"), provider_key("b"));
    }
}
