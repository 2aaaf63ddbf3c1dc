//! The errors of the certificate tooling.

use std::io;
use std::path::PathBuf;

use mcc_admission::{CertError, DecodeError, KeyError, SignError};

/// Errors of the certificate tooling; each names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {error}", path = .path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("{path} already exists: not overwriting {what}", path = .path.display())]
    Exists { path: PathBuf, what: &'static str },
    #[error("{path}: not a valid mcc {what}: {error}", path = .path.display())]
    Decode {
        path: PathBuf,
        what: &'static str,
        error: DecodeError,
    },
    #[error("{path}: {error}", path = .path.display())]
    Key { path: PathBuf, error: KeyError },
    #[error("{path}: {error}", path = .path.display())]
    Verify { path: PathBuf, error: CertError },
    #[error("{path}: {reason}", path = .path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error(
        "{path}: not an mcc certificate, certificate request, revocation list or private key{detail}",
        path = .path.display()
    )]
    Unrecognized { path: PathBuf, detail: String },
    #[error("cannot sign: {0}")]
    Sign(SignError),
    #[error("--days must be a positive number of days (fractions allowed), got {0}")]
    InvalidDays(f64),
    #[error(
        "{0:?} is not a certificate serial (32 hex digits), a peer id or an existing certificate file"
    )]
    BadTarget(String),
    #[error("nothing to revoke: give certificate serials, peer ids or certificate files")]
    NoTargets,
    #[error(
        "the revocation list would be {size} bytes, over the {max} bytes a DHT record may hold \
         (--max-record-size): it could not reach the nodes; nothing was written"
    )]
    ListTooLarge { size: usize, max: usize },
}

// The underlying errors are part of each message, not `source()`s: `main` prints the whole
// chain, which would repeat them.
impl From<SignError> for Error {
    fn from(e: SignError) -> Self {
        Error::Sign(e)
    }
}
