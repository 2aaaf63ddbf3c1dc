//! The node's ed25519 identity, kept in the data folder.
//!
//! The key is stored as the libp2p protobuf encoding of the keypair in
//! `<data-folder>/identity.key` with file mode 0600. It is written atomically (temp file,
//! fsync, rename), so a crash during the first start never leaves a truncated key behind.

use std::io;
use std::path::{Path, PathBuf};

use libp2p::identity::{Keypair, ed25519};

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
            // Never replaces a key: if another process created one meanwhile, use that one.
            match fsutil::write_new_atomic(&path, &bytes, 0o600) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "created new node identity");
                    Ok(keypair)
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_identity(&path),
                Err(source) => Err(Error::Io { path, source }),
            }
        }
        Err(source) => Err(Error::Io { path, source }),
    }
}

fn read_identity(path: &Path) -> Result<Keypair, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Keypair::from_protobuf_encoding(&bytes).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A DID key file (`mcc did keygen`): JSON `{"did": "did:key:z6Mk...", "secret_key": "z..."}`
/// with the 32-byte ed25519 secret in multibase base58btc, file mode 0600.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct DidKeyFile {
    did: String,
    secret_key: String,
}

/// Creates a new ed25519 key for a DID and writes it to `path` (refuses to overwrite).
pub fn write_did_key(path: &Path) -> Result<(ed25519::Keypair, String), Error> {
    if path.exists() {
        return Err(Error::Io {
            path: path.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::AlreadyExists,
                "file exists; not overwriting a key",
            ),
        });
    }
    let keypair = ed25519::Keypair::generate();
    let did = mcc_records::did::did_from_public(&keypair.public());
    let file = DidKeyFile {
        did: did.clone(),
        secret_key: format!("z{}", bs58::encode(keypair.secret().as_ref()).into_string()),
    };
    let bytes = serde_json::to_vec_pretty(&file).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    // No-clobber: a file created since the check above is never overwritten.
    fsutil::write_new_atomic(path, &bytes, 0o600).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((keypair, did))
}

/// Reads a DID key file written by [`write_did_key`].
pub fn read_did_key(path: &Path) -> Result<(ed25519::Keypair, String), Error> {
    let corrupt = |reason: String| Error::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file: DidKeyFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut secret = file
        .secret_key
        .strip_prefix('z')
        .and_then(|s| bs58::decode(s).into_vec().ok())
        .ok_or_else(|| corrupt("secret_key is not multibase base58btc".into()))?;
    let secret = ed25519::SecretKey::try_from_bytes(&mut secret)
        .map_err(|e| corrupt(format!("secret_key: {e}")))?;
    let keypair = ed25519::Keypair::from(secret);
    let did = mcc_records::did::did_from_public(&keypair.public());
    if did != file.did {
        return Err(corrupt(format!(
            "the key belongs to {did}, not {}",
            file.did
        )));
    }
    Ok((keypair, did))
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
    fn did_key_files_round_trip_and_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("me.key");
        let (kp, did) = write_did_key(&path).unwrap();
        let (kp2, did2) = read_did_key(&path).unwrap();
        assert_eq!(did, did2);
        assert_eq!(kp.public(), kp2.public());
        assert!(did.starts_with("did:key:z6Mk"));
        assert!(write_did_key(&path).is_err());
        std::fs::write(&path, "{\"did\":\"x\",\"secret_key\":\"zzz\"}").unwrap();
        assert!(read_did_key(&path).is_err());
    }

    #[test]
    fn seeds_are_deterministic_and_distinct() {
        let a = from_seed(1).public().to_peer_id();
        assert_eq!(a, from_seed(1).public().to_peer_id());
        assert_ne!(a, from_seed(2).public().to_peer_id());
    }
}
