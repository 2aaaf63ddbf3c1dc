//! Revocation lists as peers publish them: binary (first byte even) or base64 text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcc_admission::RevocationList;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let decoded = if pick & 1 == 0 {
        RevocationList::from_bytes(bytes)
    } else {
        match std::str::from_utf8(bytes) {
            Ok(text) => RevocationList::from_base64(text),
            Err(_) => return,
        }
    };
    let Ok(list) = decoded else {
        return;
    };
    let _ = list.verify_issuer_signature();
    let _ = (
        list.sequence(),
        list.issued_at(),
        list.serials().len(),
        list.peers().len(),
    );
    let _ = list.newer_than(&list);
    let fields = list.to_fields();
    assert_eq!(fields.sequence, list.sequence());
    let again = RevocationList::from_bytes(list.as_bytes()).map(|l| l.to_bytes());
    assert_eq!(again.ok(), Some(list.to_bytes()));
});
