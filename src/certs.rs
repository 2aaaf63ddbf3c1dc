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

use std::io;
use std::path::{Path, PathBuf};

use libp2p::PeerId;
use libp2p::identity::{Keypair, ed25519};
use mcc_admission::{
    CertError, Certificate, CertificateFields, CertificateRequest, DecodeError, KeyError,
    Permissions, RevocationFields, RevocationList, Serial, SignError, format_unix, keys,
    normalize_label_or_random, now_unix,
};
use serde::Serialize;

use crate::fsutil;

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

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |error| Error::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn write_text(path: &Path, text: &str, mode: u32) -> Result<(), Error> {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(b'\n');
    fsutil::write_atomic(path, &bytes, mode).map_err(io_err(path))
}

/// Writes a secret key file: mode 0600 and never over an existing file, even one created
/// after [`refuse_existing`] looked.
fn write_secret(path: &Path, text: &str, what: &'static str) -> Result<(), Error> {
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

fn refuse_existing(path: &Path, what: &'static str) -> Result<(), Error> {
    // symlink_metadata: a dangling symlink counts as existing too.
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(Error::Exists {
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(())
}

fn read_text(path: &Path) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    String::from_utf8(bytes).map_err(|_| Error::Invalid {
        path: path.to_path_buf(),
        reason: "not a text file (expected one line of base64)".into(),
    })
}

fn private_key_text(key: &Keypair, path: &Path) -> Result<String, Error> {
    keys::private_key_to_base64(key).map_err(|error| Error::Key {
        path: path.to_path_buf(),
        error,
    })
}

fn ed25519_of(key: &Keypair, path: &Path) -> Result<ed25519::Keypair, Error> {
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

/// A CA certificate's structure: CA flag, issued by its own key, valid self-signature.
fn check_ca_structure(ca: &Certificate, path: &Path) -> Result<(), Error> {
    let verify = |error| Error::Verify {
        path: path.to_path_buf(),
        error,
    };
    if !ca.is_ca() {
        return Err(verify(CertError::NotCa));
    }
    if keys::peer_id_of(ca.issuer()) != ca.peer_id() {
        return Err(verify(CertError::CaNotSelfSigned));
    }
    ca.verify_signature(ca.issuer())
        .map_err(|_| verify(CertError::CaBadSignature))
}

/// The CA key and certificate of a CA folder, checked to belong together.
fn load_ca(ca_dir: &Path) -> Result<(ed25519::Keypair, Certificate, PathBuf), Error> {
    let key_path = ca_dir.join(CA_KEY_FILE);
    let cert_path = ca_dir.join(CA_CERT_FILE);
    let key = load_private_key(&key_path)?;
    let key = ed25519_of(&key, &key_path)?;
    let cert = load_certificate(&cert_path)?;
    check_ca_structure(&cert, &cert_path)?;
    if cert.issuer() != &key.public() {
        return Err(Error::Invalid {
            path: cert_path,
            reason: format!(
                "this CA certificate is for key {}, but {} is key {}: they do not belong together",
                cert.peer_id(),
                key_path.display(),
                keys::peer_id_of(&key.public())
            ),
        });
    }
    Ok((key, cert, cert_path))
}

/// Creates a CA in `dir`: `ca.key` (0600) and a self-signed `ca.crt` named `name`, valid for
/// `days`. Refuses to overwrite an existing CA.
pub fn ca_init(dir: &Path, name: &str, days: f64) -> Result<Written, Error> {
    let now = now_unix();
    let (not_before, not_after) = window(now, days)?;
    let key_path = dir.join(CA_KEY_FILE);
    let cert_path = dir.join(CA_CERT_FILE);
    refuse_existing(&key_path, "the CA key (remove the CA folder to start over)")?;
    refuse_existing(&cert_path, "the CA certificate (remove it to start over)")?;

    let key = keys::generate();
    let ed = ed25519_of(&key, &key_path)?;
    let cert = Certificate::new_ca(&ed, name, not_before, not_after)?;
    let key_text = private_key_text(&key, &key_path)?;

    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    write_secret(
        &key_path,
        &key_text,
        "the CA key (remove the CA folder to start over)",
    )?;
    write_text(&cert_path, &cert.to_base64(), PUBLIC_MODE)?;
    Ok(Written {
        cert: Some(cert_path),
        key: Some(key_path),
        ..Written::default()
    })
}

/// Signs the certificate request at `request` with the CA in `ca_dir`, valid for `days`,
/// granting `permissions` (default: those requested). Writes the certificate to `out`
/// (default: the request path with extension `crt`).
pub fn ca_sign(
    request: &Path,
    ca_dir: &Path,
    permissions: Option<Permissions>,
    days: f64,
    out: Option<&Path>,
) -> Result<(Written, Certificate), Error> {
    let now = now_unix();
    let (not_before, not_after) = window(now, days)?;
    let req = load_request(request)?;
    req.verify().map_err(|error| Error::Verify {
        path: request.to_path_buf(),
        error,
    })?;
    let (ca_key, ca_cert, ca_cert_path) = load_ca(ca_dir)?;
    ca_cert.verify_ca(now).map_err(|error| Error::Verify {
        path: ca_cert_path.clone(),
        error,
    })?;

    let out = match out {
        Some(p) => p.to_path_buf(),
        None => request.with_extension("crt"),
    };
    if out == request {
        return Err(Error::Invalid {
            path: out,
            reason: "the output would replace the request; pass -o OUT".into(),
        });
    }

    let mut fields = CertificateFields::from_request(&req, not_before, not_after);
    if let Some(p) = permissions {
        fields.permissions = p;
    }
    let cert = Certificate::sign(&ca_key, fields)?;

    let mut warnings = Vec::new();
    if cert.not_after() > ca_cert.not_after() {
        warnings.push(format!(
            "the CA certificate {} expires at {}, before this certificate ({}): the certificate \
             stops being accepted then",
            ca_cert_path.display(),
            format_unix(ca_cert.not_after()),
            format_unix(cert.not_after())
        ));
    }
    if cert.permissions().is_empty() {
        warnings.push("the certificate grants no permissions".into());
    }

    write_text(&out, &cert.to_base64(), PUBLIC_MODE)?;
    Ok((
        Written {
            cert: Some(out),
            warnings,
            ..Written::default()
        },
        cert,
    ))
}

/// What `mcc ca revoke` takes: a serial, a peer id or a certificate file.
fn parse_target(target: &str, ca: &Certificate) -> Result<Revoked, Error> {
    let path = Path::new(target);
    if path.is_file() {
        let cert = load_certificate(path)?;
        if cert.issuer() != ca.issuer() {
            return Err(Error::Invalid {
                path: path.to_path_buf(),
                reason: format!(
                    "this certificate was issued by {}, not by this CA; not revoking it",
                    keys::peer_id_of(cert.issuer())
                ),
            });
        }
        if cert.is_ca() {
            return Err(Error::Invalid {
                path: path.to_path_buf(),
                reason: "this is the CA certificate itself; to retire a CA, stop trusting it"
                    .into(),
            });
        }
        return Ok(Revoked::Serial(cert.serial()));
    }
    if let Ok(serial) = target.parse::<Serial>() {
        return Ok(Revoked::Serial(serial));
    }
    if let Ok(peer) = target.trim().parse::<PeerId>() {
        return Ok(Revoked::Peer(peer));
    }
    Err(Error::BadTarget(target.to_string()))
}

enum Revoked {
    Serial(Serial),
    Peer(PeerId),
}

/// Adds `targets` (serials, peer ids or certificate files) to the CA's revocation list
/// (`ca_dir/revocations.crl`, created at sequence 1, else its sequence + 1), signs and writes it.
/// A list over `max_len` bytes (the nodes' `--max-record-size`: it travels as one DHT record)
/// is refused and nothing is written.
pub fn ca_revoke(
    ca_dir: &Path,
    targets: &[String],
    max_len: usize,
) -> Result<(Written, RevocationList), Error> {
    let (ca_key, ca_cert, _) = load_ca(ca_dir)?;
    let parsed = targets
        .iter()
        .map(|t| parse_target(t, &ca_cert))
        .collect::<Result<Vec<_>, _>>()?;
    if parsed.is_empty() {
        return Err(Error::NoTargets);
    }

    let path = ca_dir.join(REVOCATIONS_FILE);
    let mut fields = match std::fs::symlink_metadata(&path) {
        Ok(_) => {
            let old = load_revocations(&path)?;
            old.verify(&ca_cert).map_err(|error| Error::Verify {
                path: path.clone(),
                error,
            })?;
            old.to_fields()
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => RevocationFields::default(),
        Err(error) => return Err(Error::Io { path, error }),
    };
    for t in parsed {
        match t {
            Revoked::Serial(s) => fields.serials.insert(s),
            Revoked::Peer(p) => fields.peers.insert(p),
        };
    }
    fields.sequence = fields.sequence.saturating_add(1);
    fields.issued_at = now_unix();
    let list = RevocationList::sign(&ca_key, fields)?;
    let size = list.to_bytes().len();
    if size > max_len {
        return Err(Error::ListTooLarge { size, max: max_len });
    }
    write_text(&path, &list.to_base64(), PUBLIC_MODE)?;
    Ok((
        Written {
            revocations: Some(path),
            ..Written::default()
        },
        list,
    ))
}

/// Creates a node identity for a CA to certify: a new ed25519 key (`key_out`, 0600), a
/// self-signed certificate with every permission (`cert_out`, usable until the CA signs one)
/// and a certificate request (`request_out`) to hand to the CA. `label` is normalized with
/// MCC's rules (random when absent or empty). Refuses to overwrite an existing key or
/// certificate.
pub fn newcert(
    cert_out: &Path,
    key_out: &Path,
    request_out: &Path,
    label: Option<&str>,
    days: f64,
) -> Result<Written, Error> {
    let now = now_unix();
    let (not_before, not_after) = window(now, days)?;
    refuse_existing(key_out, "a private key")?;
    refuse_existing(cert_out, "a certificate")?;
    let distinct = cert_out != key_out && cert_out != request_out && key_out != request_out;
    if !distinct {
        return Err(Error::Invalid {
            path: cert_out.to_path_buf(),
            reason: "the certificate, key and request need three different paths".into(),
        });
    }

    let key = keys::generate();
    let ed = ed25519_of(&key, key_out)?;
    let label = normalize_label_or_random(label);
    let peer_id = key.public().to_peer_id();
    let cert = Certificate::sign(
        &ed,
        CertificateFields::new(peer_id, &label, Permissions::all(), not_before, not_after),
    )?;
    let request = CertificateRequest::sign(&ed, &label, Permissions::all(), now)?;
    let key_text = private_key_text(&key, key_out)?;

    write_secret(key_out, &key_text, "a private key")?;
    write_text(cert_out, &cert.to_base64(), PUBLIC_MODE)?;
    write_text(request_out, &request.to_base64(), PUBLIC_MODE)?;
    Ok(Written {
        cert: Some(cert_out.to_path_buf()),
        key: Some(key_out.to_path_buf()),
        request: Some(request_out.to_path_buf()),
        ..Written::default()
    })
}

/// What a file holds, for `mcc cert show`. Fields that do not apply to the kind are absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Shown {
    /// `certificate`, `ca_certificate`, `request`, `revocation_list` or `private_key`.
    pub kind: String,
    pub path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Peer id form of the issuing key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_signed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before_utc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after_utc: Option<String>,
    /// `valid`, `expired` or `not yet valid` (the time window only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Days until `not_after` (negative once expired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<f64>,
    /// Whether the signature checks out, where the file alone allows checking it (requests
    /// and self-signed certificates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_valid: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at_utc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_at_utc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serials: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<String>>,
}

fn permission_names(p: &Permissions) -> Vec<String> {
    p.names().map(str::to_string).collect()
}

fn days_left(not_after: u64, now: u64) -> f64 {
    let secs = not_after as f64 - now as f64;
    (secs / DAY_SECS * 100.0).round() / 100.0
}

/// "30 days", "1 day", "5 hours", "12 minutes".
fn duration_words(secs: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if secs >= 86_400 {
        plural((secs + 43_200) / 86_400, "day")
    } else if secs >= 3_600 {
        plural((secs + 1_800) / 3_600, "hour")
    } else {
        plural(secs.div_ceil(60), "minute")
    }
}

impl Shown {
    fn certificate(path: &Path, cert: &Certificate, now: u64) -> Shown {
        let issuer = keys::peer_id_of(cert.issuer());
        let self_signed = issuer == cert.peer_id();
        let status = if now < cert.not_before() {
            "not yet valid"
        } else if now >= cert.not_after() {
            "expired"
        } else {
            "valid"
        };
        Shown {
            kind: if cert.is_ca() {
                "ca_certificate"
            } else {
                "certificate"
            }
            .into(),
            path: path.to_path_buf(),
            peer_id: Some(cert.peer_id().to_string()),
            label: Some(cert.label().to_string()),
            permissions: Some(permission_names(cert.permissions())),
            serial: Some(cert.serial().to_string()),
            issuer: Some(issuer.to_string()),
            self_signed: Some(self_signed),
            not_before: Some(cert.not_before()),
            not_before_utc: Some(format_unix(cert.not_before())),
            not_after: Some(cert.not_after()),
            not_after_utc: Some(format_unix(cert.not_after())),
            status: Some(status.into()),
            expires_in_days: Some(days_left(cert.not_after(), now)),
            signature_valid: self_signed.then(|| cert.verify_signature(cert.issuer()).is_ok()),
            ..Shown::default()
        }
    }

    fn request(path: &Path, req: &CertificateRequest) -> Shown {
        Shown {
            kind: "request".into(),
            path: path.to_path_buf(),
            peer_id: Some(req.peer_id().to_string()),
            label: Some(req.label().to_string()),
            permissions: Some(permission_names(req.permissions())),
            signature_valid: Some(req.verify().is_ok()),
            created_at: Some(req.created_at()),
            created_at_utc: Some(format_unix(req.created_at())),
            ..Shown::default()
        }
    }

    fn revocations(path: &Path, list: &RevocationList) -> Shown {
        Shown {
            kind: "revocation_list".into(),
            path: path.to_path_buf(),
            issuer: Some(keys::peer_id_of(list.issuer()).to_string()),
            sequence: Some(list.sequence()),
            issued_at: Some(list.issued_at()),
            issued_at_utc: Some(format_unix(list.issued_at())),
            serials: Some(list.serials().iter().map(Serial::to_string).collect()),
            peers: Some(list.peers().iter().map(PeerId::to_string).collect()),
            ..Shown::default()
        }
    }

    fn private_key(path: &Path, key: &Keypair) -> Shown {
        Shown {
            kind: "private_key".into(),
            path: path.to_path_buf(),
            peer_id: Some(key.public().to_peer_id().to_string()),
            ..Shown::default()
        }
    }

    /// Readable text: one `name  value` line per field.
    pub fn human(&self) -> String {
        let mut rows: Vec<(&str, String)> = Vec::new();
        let kind = match self.kind.as_str() {
            "certificate" if self.self_signed == Some(true) => "certificate (self-signed)",
            "certificate" => "certificate",
            "ca_certificate" => "CA certificate",
            "request" => "certificate request",
            "revocation_list" => "revocation list",
            "private_key" => "private key",
            other => other,
        };
        rows.push(("file", self.path.display().to_string()));
        rows.push(("kind", kind.to_string()));
        if let Some(l) = &self.label {
            rows.push(("label", l.clone()));
        }
        if let Some(p) = &self.peer_id {
            rows.push(("peer id", p.clone()));
        }
        if let Some(p) = &self.permissions {
            let text = if p.is_empty() {
                "(none)".to_string()
            } else {
                p.join(", ")
            };
            rows.push(("permissions", text));
        }
        if let Some(s) = &self.serial {
            rows.push(("serial", s.clone()));
        }
        if let Some(i) = &self.issuer {
            let own = if self.self_signed == Some(true) {
                " (itself)"
            } else {
                ""
            };
            rows.push(("issuer", format!("{i}{own}")));
        }
        if let Some(t) = &self.created_at_utc {
            rows.push(("created", t.clone()));
        }
        if let Some(t) = &self.not_before_utc {
            rows.push(("valid from", t.clone()));
        }
        if let Some(t) = &self.not_after_utc {
            rows.push(("valid until", t.clone()));
            let left = self.expires_in_days.unwrap_or(0.0);
            let status = match self.status.as_deref() {
                Some("expired") => format!("EXPIRED at {t}"),
                Some("not yet valid") => format!(
                    "NOT YET VALID (valid from {})",
                    self.not_before_utc.as_deref().unwrap_or("?")
                ),
                _ => {
                    let secs = (left * DAY_SECS).max(0.0) as u64;
                    format!("valid, expires in {}", duration_words(secs))
                }
            };
            rows.push(("status", status));
        }
        if let Some(v) = self.signature_valid {
            rows.push(("signature", if v { "valid" } else { "INVALID" }.to_string()));
        }
        if let Some(s) = self.sequence {
            rows.push(("sequence", s.to_string()));
        }
        if let Some(t) = &self.issued_at_utc {
            rows.push(("issued", t.clone()));
        }
        if let Some(s) = &self.serials {
            rows.push(("revoked serials", list_or_none(s)));
        }
        if let Some(p) = &self.peers {
            rows.push(("revoked peers", list_or_none(p)));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<width$}  {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".into()
    } else {
        items.join(", ")
    }
}

/// Describes the certificate, CA certificate, request, revocation list or private key in
/// `path`, with the validity judged at `now` (unix seconds).
pub fn show(path: &Path, now: u64) -> Result<Shown, Error> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let Ok(text) = std::str::from_utf8(&bytes) else {
        // Not text: maybe the binary identity.key of a data folder.
        return load_private_key(path)
            .map(|k| Shown::private_key(path, &k))
            .map_err(|_| Error::Unrecognized {
                path: path.to_path_buf(),
                detail: " (binary data)".into(),
            });
    };
    let cert_err = match Certificate::from_base64(text) {
        Ok(c) => return Ok(Shown::certificate(path, &c, now)),
        Err(e) => e,
    };
    let req_err = match CertificateRequest::from_base64(text) {
        Ok(r) => return Ok(Shown::request(path, &r)),
        Err(e) => e,
    };
    let list_err = match RevocationList::from_base64(text) {
        Ok(l) => return Ok(Shown::revocations(path, &l)),
        Err(e) => e,
    };
    if let Ok(k) = load_private_key(path) {
        return Ok(Shown::private_key(path, &k));
    }
    // Report the error of the kind the data claims to be, if it is an mcc object at all.
    let specific = [cert_err, req_err, list_err].into_iter().find(|e| {
        !matches!(
            e,
            DecodeError::BadMagic { .. }
                | DecodeError::WrongKind { .. }
                | DecodeError::Base64(_)
                | DecodeError::TooLarge { .. }
        )
    });
    Err(Error::Unrecognized {
        path: path.to_path_buf(),
        detail: specific.map(|e| format!(": {e}")).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// A CA folder and a node's files (`node.crt`, `node.key`, `node.csr`) in `dir`.
    fn setup(dir: &Path, label: Option<&str>) -> (PathBuf, Written) {
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

    #[test]
    fn ca_init_writes_key_and_self_signed_ca_and_refuses_twice() {
        let d = tmp();
        let ca = d.path().join("a").join("ca");
        let w = ca_init(&ca, "Home CA", 1.0).unwrap();
        assert_eq!(w.key.as_deref(), Some(ca.join(CA_KEY_FILE).as_path()));
        let cert = load_certificate(&ca.join(CA_CERT_FILE)).unwrap();
        let now = now_unix();
        cert.verify_ca(now).unwrap();
        assert_eq!(cert.label(), "homeca");
        assert!(cert.not_before() <= now - CLOCK_SKEW_SECS + 1);
        assert!((cert.not_after() as i64 - (now + 86_400) as i64).abs() <= 2);
        let key = load_private_key(&ca.join(CA_KEY_FILE)).unwrap();
        assert_eq!(key.public().to_peer_id(), cert.peer_id());
        assert!(
            std::fs::read_to_string(ca.join(CA_CERT_FILE))
                .unwrap()
                .ends_with('\n')
        );
        #[cfg(unix)]
        assert_eq!(mode(&ca.join(CA_KEY_FILE)), 0o600);

        let before = std::fs::read(ca.join(CA_KEY_FILE)).unwrap();
        let err = ca_init(&ca, "Home CA", 1.0).unwrap_err();
        assert!(matches!(err, Error::Exists { .. }), "{err}");
        assert!(err.to_string().contains("ca.key"), "{err}");
        assert_eq!(std::fs::read(ca.join(CA_KEY_FILE)).unwrap(), before);
    }

    #[test]
    fn days_must_be_positive_and_finite() {
        let d = tmp();
        for days in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e12] {
            let err = ca_init(&d.path().join("ca"), "x", days).unwrap_err();
            assert!(matches!(err, Error::InvalidDays(_)), "{days}: {err}");
        }
        assert!(!d.path().join("ca").exists());
        let w = ca_init(&d.path().join("ca"), "x", 0.5).unwrap();
        let cert = load_certificate(w.cert.as_deref().unwrap()).unwrap();
        let span = cert.not_after() - cert.not_before();
        assert_eq!(span, 43_200 + CLOCK_SKEW_SECS);
    }

    #[test]
    fn newcert_writes_key_cert_and_request() {
        let d = tmp();
        let (_, w) = setup(d.path(), Some("Kitchen Pi!"));
        let key = load_private_key(w.key.as_deref().unwrap()).unwrap();
        let cert = load_certificate(w.cert.as_deref().unwrap()).unwrap();
        let req = load_request(w.request.as_deref().unwrap()).unwrap();
        req.verify().unwrap();
        let peer = key.public().to_peer_id();
        assert_eq!(cert.peer_id(), peer);
        assert_eq!(req.peer_id(), peer);
        assert_eq!(cert.label(), "kitchenpi");
        assert_eq!(req.label(), "kitchenpi");
        assert!(!cert.is_ca());
        assert_eq!(cert.permissions(), &Permissions::all());
        assert_eq!(keys::peer_id_of(cert.issuer()), peer);
        cert.verify_signature(cert.issuer()).unwrap();
        #[cfg(unix)]
        assert_eq!(mode(w.key.as_deref().unwrap()), 0o600);

        // Never replaces a key.
        let err = newcert(
            &d.path().join("other.crt"),
            w.key.as_deref().unwrap(),
            &d.path().join("other.csr"),
            None,
            1.0,
        )
        .unwrap_err();
        assert!(matches!(err, Error::Exists { .. }), "{err}");
        assert!(!d.path().join("other.crt").exists());
    }

    #[test]
    fn newcert_without_label_gets_a_random_one() {
        let d = tmp();
        let (_, w) = setup(d.path(), Some("!!!"));
        let cert = load_certificate(w.cert.as_deref().unwrap()).unwrap();
        assert!(cert.label().starts_with("node"), "{}", cert.label());
    }

    #[test]
    fn sign_request_with_chosen_permissions() {
        let d = tmp();
        let (ca, w) = setup(d.path(), Some("kitchen"));
        let req_path = w.request.clone().unwrap();
        let (written, cert) =
            ca_sign(&req_path, &ca, Some("rpc:call".parse().unwrap()), 5.0, None).unwrap();
        assert_eq!(
            written.cert.as_deref(),
            Some(d.path().join("node.crt").as_path())
        );
        assert!(written.warnings.is_empty(), "{:?}", written.warnings);
        let ca_cert = load_certificate(&ca.join(CA_CERT_FILE)).unwrap();
        let now = now_unix();
        cert.verify(&ca_cert, now, None).unwrap();
        assert_eq!(cert.label(), "kitchen");
        assert_eq!(permission_names(cert.permissions()), ["rpc:call"]);
        assert_eq!(load_certificate(&d.path().join("node.crt")).unwrap(), cert);

        // Default permissions: the requested ones; a certificate outliving the CA warns.
        let out = d.path().join("long.crt");
        let (written, cert) = ca_sign(&req_path, &ca, None, 30.0, Some(&out)).unwrap();
        assert_eq!(cert.permissions(), &Permissions::all());
        assert_eq!(written.warnings.len(), 1, "{:?}", written.warnings);
        assert!(out.exists());
    }

    #[test]
    fn sign_refuses_tampered_requests_and_mismatched_ca() {
        let d = tmp();
        let (ca, w) = setup(d.path(), Some("kitchen"));
        let req_path = w.request.clone().unwrap();
        let mut req = load_request(&req_path).unwrap().to_bytes();
        // Change a byte of the label: still decodes, signature no longer matches.
        let i = 5 + 32 + 1;
        req[i] = if req[i] == b'x' { b'y' } else { b'x' };
        let bad = d.path().join("bad.csr");
        std::fs::write(
            &bad,
            format!(
                "{}\n",
                CertificateRequest::from_bytes(&req).unwrap().to_base64()
            ),
        )
        .unwrap();
        let err = ca_sign(&bad, &ca, None, 1.0, None).unwrap_err();
        assert!(matches!(err, Error::Verify { .. }), "{err}");
        assert!(err.to_string().contains("bad.csr"), "{err}");
        assert!(!d.path().join("bad.crt").exists());

        // A CA folder whose key is not the certificate's.
        let other = d.path().join("other");
        ca_init(&other, "other", 1.0).unwrap();
        std::fs::copy(other.join(CA_KEY_FILE), ca.join(CA_KEY_FILE)).unwrap();
        let err = ca_sign(&req_path, &ca, None, 1.0, None).unwrap_err();
        assert!(err.to_string().contains("do not belong together"), "{err}");
    }

    #[test]
    fn revoke_bumps_the_sequence_and_accepts_every_target_kind() {
        let d = tmp();
        let (ca, w) = setup(d.path(), Some("kitchen"));
        let (signed, cert) = ca_sign(w.request.as_deref().unwrap(), &ca, None, 1.0, None).unwrap();
        let cert_path = signed.cert.unwrap();

        let (written, list) =
            ca_revoke(&ca, &[cert_path.to_string_lossy().into_owned()], 65536).unwrap();
        assert_eq!(list.sequence(), 1);
        assert!(list.serials().contains(&cert.serial()));
        let path = written.revocations.unwrap();
        assert_eq!(path, ca.join(REVOCATIONS_FILE));
        let ca_cert = load_certificate(&ca.join(CA_CERT_FILE)).unwrap();
        load_revocations(&path).unwrap().verify(&ca_cert).unwrap();

        let serial = "00112233445566778899aabbccddeeff".to_string();
        let peer = keys::generate().public().to_peer_id();
        let (_, list) = ca_revoke(&ca, &[serial.clone(), peer.to_string()], 65536).unwrap();
        assert_eq!(list.sequence(), 2);
        assert_eq!(list.serials().len(), 2);
        assert!(list.serials().contains(&serial.parse().unwrap()));
        assert!(list.peers().contains(&peer));
        assert!(cert.verify(&ca_cert, now_unix(), Some(&list)).is_err());

        for bad in ["nonsense", "0011"] {
            let err = ca_revoke(&ca, &[bad.to_string()], 65536).unwrap_err();
            assert!(matches!(err, Error::BadTarget(_)), "{err}");
        }
        // A certificate of another CA is refused; the list is unchanged.
        let other = d.path().join("other");
        ca_init(&other, "other", 1.0).unwrap();
        let err = ca_revoke(
            &ca,
            &[other.join(CA_CERT_FILE).display().to_string()],
            65536,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not by this CA"), "{err}");
        let err =
            ca_revoke(&ca, &[ca.join(CA_CERT_FILE).display().to_string()], 65536).unwrap_err();
        assert!(err.to_string().contains("CA certificate itself"), "{err}");
        assert!(matches!(ca_revoke(&ca, &[], 65536), Err(Error::NoTargets)));
        assert_eq!(load_revocations(&path).unwrap().sequence(), 2);
    }

    /// L8: a list that would not fit one DHT record (`--max-record-size`) is refused, and the
    /// list on disk stays as it was.
    #[test]
    fn revoke_refuses_a_list_larger_than_a_record() {
        let d = tmp();
        let (ca, _) = setup(d.path(), Some("kitchen"));
        let (written, small) =
            ca_revoke(&ca, &["00112233445566778899aabbccddeeff".into()], 65536).unwrap();
        let path = written.revocations.unwrap();
        // 5000 serials of 16 bytes: over 64 KiB.
        let many: Vec<String> = (0..5000u32).map(|i| format!("{i:032x}")).collect();
        let err = ca_revoke(&ca, &many, 65536).unwrap_err();
        assert!(
            matches!(err, Error::ListTooLarge { max: 65536, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("--max-record-size"), "{err}");
        assert_eq!(load_revocations(&path).unwrap(), small);
        // With room for it (a node with a larger --max-record-size), it is written.
        let (_, big) = ca_revoke(&ca, &many, 1 << 20).unwrap();
        assert_eq!(big.serials().len(), 5001);
    }

    #[test]
    fn show_describes_every_kind() {
        let d = tmp();
        let (ca, w) = setup(d.path(), Some("kitchen"));
        let now = now_unix();

        let s = show(w.cert.as_deref().unwrap(), now).unwrap();
        assert_eq!(s.kind, "certificate");
        assert_eq!(s.self_signed, Some(true));
        assert_eq!(s.status.as_deref(), Some("valid"));
        assert_eq!(s.permissions.as_deref(), Some(&["all".to_string()][..]));
        assert_eq!(s.signature_valid, Some(true));
        assert!(s.human().contains("expires in 365 days"), "{}", s.human());

        let expired = show(w.cert.as_deref().unwrap(), now + 400 * 86_400).unwrap();
        assert_eq!(expired.status.as_deref(), Some("expired"));
        assert!(expired.expires_in_days.unwrap() < 0.0);
        assert!(
            expired.human().contains("EXPIRED at"),
            "{}",
            expired.human()
        );
        let early = show(w.cert.as_deref().unwrap(), now - 3600).unwrap();
        assert_eq!(early.status.as_deref(), Some("not yet valid"));

        let s = show(&ca.join(CA_CERT_FILE), now).unwrap();
        assert_eq!(s.kind, "ca_certificate");
        assert_eq!(s.label.as_deref(), Some("mccca"));

        let s = show(w.request.as_deref().unwrap(), now).unwrap();
        assert_eq!(s.kind, "request");
        assert_eq!(s.signature_valid, Some(true));

        let s = show(w.key.as_deref().unwrap(), now).unwrap();
        assert_eq!(s.kind, "private_key");
        assert!(
            !s.human()
                .contains(&std::fs::read_to_string(w.key.unwrap()).unwrap())
        );

        let (signed, cert) = ca_sign(w.request.as_deref().unwrap(), &ca, None, 1.0, None).unwrap();
        let (rev, _) =
            ca_revoke(&ca, &[signed.cert.unwrap().display().to_string()], 65536).unwrap();
        let s = show(rev.revocations.as_deref().unwrap(), now).unwrap();
        assert_eq!(s.kind, "revocation_list");
        assert_eq!(s.sequence, Some(1));
        assert_eq!(s.serials, Some(vec![cert.serial().to_string()]));
        let json = serde_json::to_value(&s).unwrap();
        assert!(json.get("label").is_none());
        assert_eq!(json["sequence"], 1);

        let junk = d.path().join("junk.txt");
        std::fs::write(&junk, "hello world").unwrap();
        let err = show(&junk, now).unwrap_err();
        assert!(err.to_string().contains("junk.txt"), "{err}");
        let err = show(&d.path().join("missing"), now).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn private_keys_load_from_identity_files_too() {
        let d = tmp();
        let key = crate::identity::load_or_create(d.path()).unwrap();
        let loaded = load_private_key(&d.path().join(crate::identity::KEY_FILE)).unwrap();
        assert_eq!(loaded.public(), key.public());
    }

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
