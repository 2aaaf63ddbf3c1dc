//! `/mcc/rpc/1.0.0`: a request or a response as a peer sends it (first byte picks which).
#![no_main]

use futures::{executor::block_on, io::Cursor};
use libfuzzer_sys::fuzz_target;
use libp2p::request_response::Codec as _;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    // Small caps so the size check is reached too.
    let mut codec = mcc_rpc::codec::Codec::new(4096, 4096);
    let mut io = Cursor::new(bytes);
    if pick & 1 == 0 {
        if let Ok(request) = block_on(codec.read_request(&mcc_rpc::PROTOCOL_NAME, &mut io)) {
            let _ = serde_json::to_vec(&request);
        }
    } else if let Ok(response) = block_on(codec.read_response(&mcc_rpc::PROTOCOL_NAME, &mut io)) {
        let _ = response.into_result();
    }
});
