//! Certificate requests as peers send them: binary (first byte even) or base64 text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcc_admission::CertificateRequest;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let decoded = if pick & 1 == 0 {
        CertificateRequest::from_bytes(bytes)
    } else {
        match std::str::from_utf8(bytes) {
            Ok(text) => CertificateRequest::from_base64(text),
            Err(_) => return,
        }
    };
    let Ok(request) = decoded else {
        return;
    };
    let _ = request.verify();
    let _ = (request.peer_id(), request.label(), request.created_at());
    let _ = request.permissions().names().count();
    let again = CertificateRequest::from_base64(&request.to_base64()).map(|r| r.to_bytes());
    assert_eq!(again.ok(), Some(request.to_bytes()));
});
