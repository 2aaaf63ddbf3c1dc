//! `/mcc/forward/1.0.0` handshake: an opener's request as a provider reads it, or a provider's
//! answer as an opener reads it (first byte picks which).
#![no_main]

use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, mut bytes)) = data.split_first() else {
        return;
    };
    if pick & 1 == 0 {
        if let Ok(name) = block_on(mcc_forward::fuzzing::read_request(&mut bytes)) {
            // A name the provider accepts is a valid name.
            assert!(mcc_forward::validate_name(&name).is_ok());
        }
    } else {
        let _ = block_on(mcc_forward::fuzzing::read_answer(&mut bytes));
    }
});
