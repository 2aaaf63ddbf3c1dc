//! `mcc ca revoke`: adds serials and peers to the CA's signed revocation list.

use std::io;
use std::path::Path;

use libp2p::PeerId;
use mcc_admission::{Certificate, RevocationFields, RevocationList, Serial, keys, now_unix};

use super::ca::load_ca;
use super::files::{load_certificate, load_revocations, write_text};
use super::{Error, PUBLIC_MODE, REVOCATIONS_FILE, Written};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::test_util::*;
    use crate::certs::*;

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
}
