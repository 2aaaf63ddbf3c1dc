//! Admission certificates as peers present them: binary (first byte even) or base64 text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcc_admission::Certificate;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let decoded = if pick & 1 == 0 {
        Certificate::from_bytes(bytes)
    } else {
        match std::str::from_utf8(bytes) {
            Ok(text) => Certificate::from_base64(text),
            Err(_) => return,
        }
    };
    let Ok(cert) = decoded else {
        return;
    };
    // Everything a node does with a certificate it decoded, against itself as the CA.
    let now = cert.not_before().saturating_add(1);
    let _ = cert.verify_signature(cert.issuer());
    let _ = cert.verify_ca(now);
    let _ = cert.check_validity(now);
    let _ = cert.expires_in(now);
    let _ = cert.verify_for_peer(&cert.peer_id(), &cert, now, None);
    let _ = (cert.serial().to_string(), cert.label(), cert.is_ca());
    let _ = cert.permissions().names().count();
    // The encoding round-trips.
    let again = Certificate::from_base64(&cert.to_base64()).map(|c| c.to_bytes());
    assert_eq!(again.ok(), Some(cert.to_bytes()));
});
