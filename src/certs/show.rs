//! `mcc cert show`: what a certificate, CA certificate, request, revocation list or private
//! key file holds, as JSON fields or readable lines.

use std::path::{Path, PathBuf};

use libp2p::PeerId;
use libp2p::identity::Keypair;
use mcc_admission::{
    Certificate, CertificateRequest, DecodeError, Permissions, RevocationList, Serial, format_unix,
    keys,
};
use serde::Serialize;

use super::files::{io_err, load_private_key};
use super::{DAY_SECS, Error};

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

pub(super) fn permission_names(p: &Permissions) -> Vec<String> {
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
    use crate::certs::test_util::*;
    use crate::certs::*;
    use mcc_admission::now_unix;

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
}
