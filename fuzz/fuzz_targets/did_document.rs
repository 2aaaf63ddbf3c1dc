//! Signed DID documents (the values under `/did/`) and `did:key` strings as peers send them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcc_records::did;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(public) = did::public_from_did(text)
    {
        // A DID that parses names the key that makes it.
        assert_eq!(did::did_from_public(&public), text);
    }
    let Ok(signed) = did::SignedDocument::from_bytes(data) else {
        return;
    };
    let _ = signed.did();
    let verified = signed.verify();
    let _ = did::canonical_json(&signed.document);
    let encoded = signed.to_bytes();
    if verified.is_ok() {
        // The canonical re-encoding of a verified document still verifies.
        let again = did::SignedDocument::from_bytes(&encoded).map(|s| s.verify());
        assert!(matches!(again, Ok(Ok(()))));
    }
});
