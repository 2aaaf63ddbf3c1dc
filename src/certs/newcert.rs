//! `mcc --newcert`: a node's new key, self-signed certificate and certificate request.

use std::path::Path;

use mcc_admission::{
    Certificate, CertificateFields, CertificateRequest, Permissions, keys,
    normalize_label_or_random, now_unix,
};

use super::files::{ed25519_of, private_key_text, refuse_existing, write_secret, write_text};
use super::{Error, PUBLIC_MODE, Written, window};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::test_util::*;
    use crate::certs::*;

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
}
