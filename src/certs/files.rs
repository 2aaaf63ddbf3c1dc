//! Reading and writing the one-line base64 files (certificates, requests, revocation lists,
//! private keys): atomic writes, 0600 for secrets, and errors that name the file.

use std::io;
use std::path::Path;

use libp2p::identity::{Keypair, ed25519};
use mcc_admission::{Certificate, CertificateRequest, KeyError, RevocationList, keys};

use super::{Error, SECRET_MODE};
use crate::fsutil;

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |error| Error::Io {
        path: path.to_path_buf(),
        error,
    }
}

pub(super) fn write_text(path: &Path, text: &str, mode: u32) -> Result<(), Error> {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(b'\n');
    fsutil::write_atomic(path, &bytes, mode).map_err(io_err(path))
}

/// Writes a secret key file: mode 0600 and never over an existing file, even one created
/// after [`refuse_existing`] looked.
pub(super) fn write_secret(path: &Path, text: &str, what: &'static str) -> Result<(), Error> {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(b'\n');
    fsutil::write_new_atomic(path, &bytes, SECRET_MODE).map_err(|error| {
        if error.kind() == io::ErrorKind::AlreadyExists {
            Error::Exists {
                path: path.to_path_buf(),
                what,
            }
        } else {
            Error::Io {
                path: path.to_path_buf(),
                error,
            }
        }
    })
}

pub(super) fn refuse_existing(path: &Path, what: &'static str) -> Result<(), Error> {
    // symlink_metadata: a dangling symlink counts as existing too.
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(Error::Exists {
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(())
}

pub(super) fn read_text(path: &Path) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    String::from_utf8(bytes).map_err(|_| Error::Invalid {
        path: path.to_path_buf(),
        reason: "not a text file (expected one line of base64)".into(),
    })
}

pub(super) fn private_key_text(key: &Keypair, path: &Path) -> Result<String, Error> {
    keys::private_key_to_base64(key).map_err(|error| Error::Key {
        path: path.to_path_buf(),
        error,
    })
}

pub(super) fn ed25519_of(key: &Keypair, path: &Path) -> Result<ed25519::Keypair, Error> {
    keys::to_ed25519(key).map_err(|error| Error::Key {
        path: path.to_path_buf(),
        error,
    })
}

/// Reads a certificate file (structure only; no signature check).
pub fn load_certificate(path: &Path) -> Result<Certificate, Error> {
    Certificate::from_base64(&read_text(path)?).map_err(|error| Error::Decode {
        path: path.to_path_buf(),
        what: "certificate",
        error,
    })
}

/// Reads a certificate request file (structure only; see [`CertificateRequest::verify`]).
pub fn load_request(path: &Path) -> Result<CertificateRequest, Error> {
    CertificateRequest::from_base64(&read_text(path)?).map_err(|error| Error::Decode {
        path: path.to_path_buf(),
        what: "certificate request",
        error,
    })
}

/// Reads a revocation list file (structure only; see [`RevocationList::verify`]).
pub fn load_revocations(path: &Path) -> Result<RevocationList, Error> {
    RevocationList::from_base64(&read_text(path)?).map_err(|error| Error::Decode {
        path: path.to_path_buf(),
        what: "revocation list",
        error,
    })
}

/// Reads an ed25519 private key: the base64 text `--newcert` and `ca init` write, or the
/// binary `identity.key` of a data folder.
pub fn load_private_key(path: &Path) -> Result<Keypair, Error> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let from_text = match std::str::from_utf8(&bytes) {
        Ok(text) => keys::private_key_from_base64(text),
        Err(_) => Err(KeyError::Invalid("not base64 text".into())),
    };
    let err = match from_text {
        Ok(key) => return Ok(key),
        Err(e) => e,
    };
    // The data folder's identity.key: the raw protobuf encoding.
    match Keypair::from_protobuf_encoding(&bytes) {
        Ok(key) if key.key_type() == libp2p::identity::KeyType::Ed25519 => Ok(key),
        Ok(_) => Err(Error::Key {
            path: path.to_path_buf(),
            error: KeyError::NotEd25519,
        }),
        Err(_) => Err(Error::Key {
            path: path.to_path_buf(),
            error: err,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::test_util::*;

    #[test]
    fn private_keys_load_from_identity_files_too() {
        let d = tmp();
        let key = crate::identity::load_or_create(d.path()).unwrap();
        let loaded = load_private_key(&d.path().join(crate::identity::KEY_FILE)).unwrap();
        assert_eq!(loaded.public(), key.public());
    }
}
