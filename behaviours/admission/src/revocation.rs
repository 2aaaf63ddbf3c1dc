//! Revocation lists published by a CA.

use std::collections::BTreeSet;

use libp2p::PeerId;
use libp2p::identity::ed25519;

use crate::cert::{Certificate, MAX_PEER_ID_LEN, Serial, read_ed25519, read_peer_id};
use crate::error::{CertError, DecodeError, SignError};
use crate::wire::{self, Kind, Reader, SIGNATURE_LEN, Writer};

/// Largest encoded revocation list accepted, in bytes (about 60 000 serials).
pub const MAX_REVOCATION_LIST_LEN: usize = 1 << 20;

/// The content of a revocation list; see [`RevocationList::sign`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevocationFields {
    /// Sequence number; a list with a higher one replaces a lower one.
    pub sequence: u64,
    /// When it was issued, unix seconds.
    pub issued_at: u64,
    /// Revoked certificate serials.
    pub serials: BTreeSet<Serial>,
    /// Revoked peers (every certificate for them).
    pub peers: BTreeSet<PeerId>,
}

/// A CA-signed list of revoked serials and peers.
///
/// Equality compares the exact encoding.
#[derive(Clone, Debug)]
pub struct RevocationList {
    issuer: ed25519::PublicKey,
    fields: RevocationFields,
    signature: [u8; SIGNATURE_LEN],
    encoded: Vec<u8>,
}

impl PartialEq for RevocationList {
    fn eq(&self, other: &Self) -> bool {
        self.encoded == other.encoded
    }
}

impl Eq for RevocationList {}

impl RevocationList {
    /// Signs a revocation list with the CA key.
    pub fn sign(
        ca_key: &ed25519::Keypair,
        fields: RevocationFields,
    ) -> Result<RevocationList, SignError> {
        let issuer = ca_key.public();
        let mut w = Writer::new(Kind::RevocationList);
        w.raw(&issuer.to_bytes());
        w.u64(fields.sequence);
        w.u64(fields.issued_at);
        let too_large = |len| SignError::TooLarge {
            field: "revocation list",
            len,
            max: MAX_REVOCATION_LIST_LEN,
        };
        let serial_count =
            u32::try_from(fields.serials.len()).map_err(|_| too_large(usize::MAX))?;
        w.u32(serial_count);
        for s in &fields.serials {
            w.raw(&s.0);
        }
        let peer_count = u32::try_from(fields.peers.len()).map_err(|_| too_large(usize::MAX))?;
        w.u32(peer_count);
        for p in &fields.peers {
            let bytes = p.to_bytes();
            if bytes.len() > MAX_PEER_ID_LEN {
                return Err(SignError::TooLarge {
                    field: "peer id",
                    len: bytes.len(),
                    max: MAX_PEER_ID_LEN,
                });
            }
            w.short(&bytes);
        }
        let len = w.len() + SIGNATURE_LEN;
        if len > MAX_REVOCATION_LIST_LEN {
            return Err(too_large(len));
        }
        let (encoded, signature) = w.sign(|tbs| ca_key.sign(tbs));
        Ok(RevocationList {
            issuer,
            fields,
            signature,
            encoded,
        })
    }

    /// Decodes a list (binary form). Checks structure only, not the signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<RevocationList, DecodeError> {
        let opened = Reader::open(bytes, Kind::RevocationList, MAX_REVOCATION_LIST_LEN)?;
        let mut r = opened.reader;
        let issuer = read_ed25519(&mut r, "issuer key")?;
        let sequence = r.u64("sequence")?;
        let issued_at = r.u64("issued_at")?;
        let serial_count = r.u32("serial count")? as usize;
        // Each serial takes 16 bytes: refuse counts the input cannot hold.
        if serial_count > r.remaining() / 16 {
            return Err(truncated(&r, "serials"));
        }
        let mut serials = BTreeSet::new();
        for _ in 0..serial_count {
            serials.insert(Serial(r.array("serials")?));
        }
        let peer_count = r.u32("peer count")? as usize;
        // Each peer takes at least 2 bytes (length and one byte).
        if peer_count > r.remaining() / 2 {
            return Err(truncated(&r, "peers"));
        }
        let mut peers = BTreeSet::new();
        for _ in 0..peer_count {
            peers.insert(read_peer_id(&mut r)?);
        }
        r.finish()?;
        Ok(RevocationList {
            issuer,
            fields: RevocationFields {
                sequence,
                issued_at,
                serials,
                peers,
            },
            signature: opened.signature,
            encoded: bytes.to_vec(),
        })
    }

    /// The binary encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encoded.clone()
    }

    /// The binary encoding, borrowed (for example as a DHT record value).
    pub fn as_bytes(&self) -> &[u8] {
        &self.encoded
    }

    /// The binary encoding as one line of base64.
    pub fn to_base64(&self) -> String {
        wire::encode_base64(&self.encoded)
    }

    /// Decodes base64 text; whitespace and line breaks anywhere are ignored.
    pub fn from_base64(text: &str) -> Result<RevocationList, DecodeError> {
        RevocationList::from_bytes(&wire::decode_base64(text, MAX_REVOCATION_LIST_LEN)?)
    }

    /// Checks that the list is issued and signed by the key of `ca` (and that `ca` is a
    /// self-signed CA certificate; its validity window is not checked here).
    pub fn verify(&self, ca: &Certificate) -> Result<(), CertError> {
        ca.check_ca_structure()?;
        if &self.issuer != ca.issuer() {
            return Err(CertError::RevocationListWrongIssuer);
        }
        self.verify_issuer_signature()
    }

    /// Checks only that the signature verifies with the list's own [`issuer`](Self::issuer)
    /// key, not that this key is a trusted CA (for that, see [`verify`](Self::verify)).
    pub fn verify_issuer_signature(&self) -> Result<(), CertError> {
        crate::cert::count_signature_check();
        let tbs = &self.encoded[..self.encoded.len() - SIGNATURE_LEN];
        if self.issuer.verify(tbs, &self.signature) {
            Ok(())
        } else {
            Err(CertError::RevocationListBadSignature)
        }
    }

    /// Whether the list names `cert`'s serial or peer. Does not verify the list.
    pub fn is_revoked(&self, cert: &Certificate) -> bool {
        self.check(cert).is_err()
    }

    /// Like [`is_revoked`](Self::is_revoked), as an error saying why.
    pub fn check(&self, cert: &Certificate) -> Result<(), CertError> {
        if self.fields.serials.contains(&cert.serial()) {
            return Err(CertError::Revoked {
                serial: cert.serial(),
            });
        }
        if self.fields.peers.contains(&cert.peer_id()) {
            return Err(CertError::PeerRevoked {
                peer: cert.peer_id(),
            });
        }
        Ok(())
    }

    /// Whether this list supersedes `other`: same issuer and a higher sequence number.
    pub fn newer_than(&self, other: &RevocationList) -> bool {
        self.issuer == other.issuer && self.fields.sequence > other.fields.sequence
    }

    /// The issuing CA key.
    pub fn issuer(&self) -> &ed25519::PublicKey {
        &self.issuer
    }

    /// The sequence number.
    pub fn sequence(&self) -> u64 {
        self.fields.sequence
    }

    /// When the list was issued, unix seconds.
    pub fn issued_at(&self) -> u64 {
        self.fields.issued_at
    }

    /// Revoked serials.
    pub fn serials(&self) -> &BTreeSet<Serial> {
        &self.fields.serials
    }

    /// Revoked peers.
    pub fn peers(&self) -> &BTreeSet<PeerId> {
        &self.fields.peers
    }

    /// The content, to build the next list: bump `sequence`, add entries, sign again.
    pub fn to_fields(&self) -> RevocationFields {
        self.fields.clone()
    }
}

fn truncated(r: &Reader<'_>, field: &'static str) -> DecodeError {
    DecodeError::Truncated {
        kind: r.kind(),
        field,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys;
    use crate::wire::HEADER_LEN;

    fn ca_key() -> ed25519::Keypair {
        keys::to_ed25519(&keys::generate()).unwrap()
    }

    #[test]
    fn verify_issuer_signature_checks_the_embedded_key() {
        let key = ca_key();
        let list = RevocationList::sign(
            &key,
            RevocationFields {
                sequence: 1,
                issued_at: 1_000,
                serials: [Serial([7; 16])].into(),
                peers: BTreeSet::new(),
            },
        )
        .unwrap();
        assert_eq!(list.verify_issuer_signature(), Ok(()));
        let decoded = RevocationList::from_bytes(list.as_bytes()).unwrap();
        assert_eq!(decoded.verify_issuer_signature(), Ok(()));

        // Content altered after signing (sequence 1 -> 3).
        let sequence_at = HEADER_LEN + 32;
        let mut bytes = list.to_bytes();
        bytes[sequence_at + 7] = 3;
        let altered = RevocationList::from_bytes(&bytes).unwrap();
        assert_eq!(altered.sequence(), 3);
        assert_eq!(
            altered.verify_issuer_signature(),
            Err(CertError::RevocationListBadSignature)
        );

        // Another key named as issuer.
        let mut bytes = list.to_bytes();
        bytes[HEADER_LEN..sequence_at].copy_from_slice(&ca_key().public().to_bytes());
        let reissued = RevocationList::from_bytes(&bytes).unwrap();
        assert_eq!(
            reissued.verify_issuer_signature(),
            Err(CertError::RevocationListBadSignature)
        );

        // Signature altered.
        let mut bytes = list.to_bytes();
        *bytes.last_mut().unwrap() ^= 1;
        let altered = RevocationList::from_bytes(&bytes).unwrap();
        assert_eq!(
            altered.verify_issuer_signature(),
            Err(CertError::RevocationListBadSignature)
        );

        // verify() reuses it: the right CA, a bad signature.
        let ca = Certificate::new_ca(&key, "CA", 0, 2_000_000_000).unwrap();
        assert_eq!(list.verify(&ca), Ok(()));
        assert_eq!(
            altered.verify(&ca),
            Err(CertError::RevocationListBadSignature)
        );
    }
}
