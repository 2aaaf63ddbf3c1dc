//! The node's ed25519 identity, kept in the data folder.
//!
//! The key is stored as the libp2p protobuf encoding of the keypair in
//! `<data-folder>/identity.key` with file mode 0600. It is written atomically (temp file,
//! fsync, rename), so a crash during the first start never leaves a truncated key behind.

use std::io;
use std::path::{Path, PathBuf};

use libp2p::identity::Keypair;

use crate::fsutil;

/// File name of the identity key inside the data folder.
pub const KEY_FILE: &str = "identity.key";

/// Errors while loading or creating an identity.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot access identity key {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("identity key {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// Loads the identity from `dir`, creating (and saving) a fresh ed25519 key on first use.
pub fn load_or_create(dir: &Path) -> Result<Keypair, Error> {
    let path = dir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| Error::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            let bytes = keypair.to_protobuf_encoding().map_err(|e| Error::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            fsutil::write_atomic(&path, &bytes, 0o600).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            tracing::info!(path = %path.display(), "created new node identity");
            Ok(keypair)
        }
        Err(source) => Err(Error::Io { path, source }),
    }
}

/// A deterministic ed25519 key derived from a number, for demos and tests (`--seed N`).
///
/// Never use this for a node that matters: anyone can derive the same key.
pub fn from_seed(seed: u64) -> Keypair {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..15].copy_from_slice(b"mcc-key");
    // 32 bytes always make a valid ed25519 secret key.
    Keypair::ed25519_from_bytes(bytes).unwrap_or_else(|_| Keypair::generate_ed25519())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn corrupt_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), b"garbage").unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn seeds_are_deterministic_and_distinct() {
        let a = from_seed(1).public().to_peer_id();
        assert_eq!(a, from_seed(1).public().to_peer_id());
        assert_ne!(a, from_seed(2).public().to_peer_id());
    }
}
