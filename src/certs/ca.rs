//! The certificate authority: `mcc ca init` (a CA folder) and `mcc ca sign` (a node
//! certificate from a request).

use std::path::{Path, PathBuf};

use libp2p::identity::ed25519;
use mcc_admission::{
    CertError, Certificate, CertificateFields, Permissions, format_unix, keys, now_unix,
};

use super::files::{
    ed25519_of, io_err, load_certificate, load_private_key, load_request, private_key_text,
    refuse_existing, write_secret, write_text,
};
use super::{CA_CERT_FILE, CA_KEY_FILE, Error, PUBLIC_MODE, Written, window};

/// A CA certificate's structure: CA flag, issued by its own key, valid self-signature.
pub(super) fn check_ca_structure(ca: &Certificate, path: &Path) -> Result<(), Error> {
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
pub(super) fn load_ca(ca_dir: &Path) -> Result<(ed25519::Keypair, Certificate, PathBuf), Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::show::permission_names;
    use crate::certs::test_util::*;
    use crate::certs::*;
    use mcc_admission::CertificateRequest;

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
}
