//! `/mcc/admission/*` request-response frames: a request (certificate bytes, decoded as the
//! behaviour does) or a response (first byte picks which).
#![no_main]

use futures::{executor::block_on, io::Cursor};
use libfuzzer_sys::fuzz_target;
use libp2p::request_response::Codec as _;
use mcc_admission::{Certificate, PROTOCOL_NAME, codec};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let mut codec = codec::Codec;
    let mut io = Cursor::new(bytes);
    if pick & 1 == 0 {
        if let Ok(codec::Request(cert)) = block_on(codec.read_request(&PROTOCOL_NAME, &mut io)) {
            assert!(cert.len() <= mcc_admission::MAX_CERTIFICATE_LEN);
            let _ = Certificate::from_bytes(&cert);
        }
    } else if let Ok(codec::Response::Certificate(cert)) =
        block_on(codec.read_response(&PROTOCOL_NAME, &mut io))
    {
        let _ = Certificate::from_bytes(&cert);
    }
});
