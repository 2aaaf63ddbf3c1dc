//! DHT record validation as a node runs it on every record a peer stores or returns:
//! `key_len (u8) | key | value`.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The value limit of a node's record store is larger; a small one reaches the size check.
const MAX_VALUE: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&key_len, rest)) = data.split_first() else {
        return;
    };
    let Some((key, value)) = rest.split_at_checked(usize::from(key_len)) else {
        return;
    };
    let _ = mcc_records::parse_key(key);
    let _ = mcc_records::is_free_key(key);
    let valid = mcc_records::validate(key, value, MAX_VALUE);
    let _ = mcc_records::check_replace(key, value, value);
    let _ = mcc_records::check_replace(key, b"{}", value);
    let best = mcc_records::select_best(key, &[value, b"", value], MAX_VALUE);
    if valid.is_ok() {
        // A valid value is never beaten by an empty one; a tie goes to the first.
        assert_eq!(best, Some(0));
    }
});
