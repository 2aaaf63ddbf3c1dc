//! Certificate files: a CA folder (`mcc ca init|sign|revoke`), node certificates and keys
//! (`mcc --newcert`), and reading any of them (`mcc cert show`).
//!
//! Every file holds one line of base64 (the formats of [`mcc_admission`]) and a newline.
//! Private keys are written with mode 0600, everything else 0644, always atomically.
//!
//! A CA folder holds:
//!
//! * `ca.key`: the CA private key (keep it secret, ideally offline);
//! * `ca.crt`: the self-signed CA certificate, what nodes trust with `--trust-ca`;
//! * `revocations.crl`: the latest revocation list, once something was revoked.
//!
//! Layout: `ca.rs` creates a CA and signs requests, `newcert.rs` makes a node's key,
//! certificate and request, `revoke.rs` keeps the CA's revocation list, `show.rs` describes
//! any of these files, `files.rs` reads and writes them, `error.rs` holds [`Error`].

use std::path::PathBuf;

use serde::Serialize;

mod ca;
mod error;
mod files;
mod newcert;
mod revoke;
mod show;

pub use ca::{ca_init, ca_sign};
pub use error::Error;
pub use files::{load_certificate, load_private_key, load_request, load_revocations};
pub use newcert::newcert;
pub use revoke::ca_revoke;
pub use show::{Shown, show};

/// File name of the CA private key in a CA folder.
pub const CA_KEY_FILE: &str = "ca.key";
/// File name of the CA certificate in a CA folder.
pub const CA_CERT_FILE: &str = "ca.crt";
/// File name of the revocation list in a CA folder.
pub const REVOCATIONS_FILE: &str = "revocations.crl";
/// Default validity of a CA certificate, in days.
pub const DEFAULT_CA_DAYS: f64 = 3650.0;
/// Default validity of a node certificate, in days.
pub const DEFAULT_CERT_DAYS: f64 = 365.0;
/// Default CA name.
pub const DEFAULT_CA_NAME: &str = "mcc CA";
/// Certificates start this many seconds in the past, so a slightly slow clock elsewhere
/// accepts them at once.
pub const CLOCK_SKEW_SECS: u64 = 60;

const SECRET_MODE: u32 = 0o600;
const PUBLIC_MODE: u32 = 0o644;
const DAY_SECS: f64 = 86_400.0;
/// Longest validity accepted: about 10 000 years (keeps the arithmetic far from overflow).
const MAX_DAYS: f64 = 3_650_000.0;

/// Files written by a command. Serialized for `--json` with only the keys that apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Written {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocations: Option<PathBuf>,
    /// Things the user should know (the command still succeeded).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Written {
    /// `name: path` lines, one per file, in a fixed order.
    pub fn lines(&self) -> Vec<String> {
        [
            ("cert", &self.cert),
            ("key", &self.key),
            ("request", &self.request),
            ("revocations", &self.revocations),
        ]
        .into_iter()
        .filter_map(|(name, p)| p.as_ref().map(|p| format!("{name}: {}", p.display())))
        .collect()
    }
}

/// Validity in seconds for `days`: a positive, finite number of days (fractions allowed).
fn validity_secs(days: f64) -> Result<u64, Error> {
    if !days.is_finite() || days <= 0.0 || days > MAX_DAYS {
        return Err(Error::InvalidDays(days));
    }
    let secs = (days * DAY_SECS).round();
    if secs < 1.0 {
        return Err(Error::InvalidDays(days));
    }
    Ok(secs as u64)
}

/// `(not_before, not_after)` for a certificate made at `now` lasting `days`.
fn window(now: u64, days: f64) -> Result<(u64, u64), Error> {
    let secs = validity_secs(days)?;
    Ok((
        now.saturating_sub(CLOCK_SKEW_SECS),
        now.saturating_add(secs),
    ))
}

#[cfg(test)]
mod test_util {
    use std::path::{Path, PathBuf};

    use super::*;

    pub(super) fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[cfg(unix)]
    pub(super) fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// A CA folder and a node's files (`node.crt`, `node.key`, `node.csr`) in `dir`.
    pub(super) fn setup(dir: &Path, label: Option<&str>) -> (PathBuf, Written) {
        let ca = dir.join("ca");
        ca_init(&ca, DEFAULT_CA_NAME, 10.0).unwrap();
        let w = newcert(
            &dir.join("node.crt"),
            &dir.join("node.key"),
            &dir.join("node.csr"),
            label,
            DEFAULT_CERT_DAYS,
        )
        .unwrap();
        (ca, w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_serializes_only_present_paths() {
        let w = Written {
            cert: Some("a.crt".into()),
            key: Some("a.key".into()),
            ..Written::default()
        };
        assert_eq!(
            serde_json::to_value(&w).unwrap(),
            serde_json::json!({"cert": "a.crt", "key": "a.key"})
        );
        assert_eq!(w.lines(), ["cert: a.crt", "key: a.key"]);
    }
}
