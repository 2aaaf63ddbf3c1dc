//! `/mcc/blobs/1.0.0`: a stream of GetBlock requests as a seeder reads them, or one response as a
//! fetcher reads it (first byte picks which).
#![no_main]

use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;
use mcc_blobs::transfer::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, mut bytes)) = data.split_first() else {
        return;
    };
    if pick & 1 == 0 {
        // A seeder reads requests until the stream ends or one is bad; each is at least 3 bytes,
        // so this loop is bounded by the input.
        while let Ok(Some(cid)) = block_on(fuzzing::read_request(&mut bytes)) {
            // A CID read off the wire encodes back to a request the seeder reads again.
            let again = fuzzing::encode_request(&cid);
            let read = block_on(fuzzing::read_request(&mut again.as_slice()));
            assert_eq!(read, Ok(Some(cid)));
        }
    } else if let Ok((status, body)) = block_on(fuzzing::read_response(&mut bytes)) {
        let limit = if status == 0 {
            mcc_blobs::MAX_BLOCK_SIZE
        } else {
            // A lossy message may grow (3 bytes per replaced byte).
            3 * mcc_blobs::transfer::MAX_MESSAGE_LEN
        };
        assert!(body.len() <= limit);
    }
});
