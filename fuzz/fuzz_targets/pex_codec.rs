//! `/mcc/pex/1.0.0`: a peer list (request) or an acknowledgement (response) as a peer sends
//! it (first byte picks which).
#![no_main]

use futures::{executor::block_on, io::Cursor};
use libfuzzer_sys::fuzz_target;
use libp2p::request_response::Codec as _;

const MAX_PEERS: usize = 8;
const MAX_ADDRS: usize = 4;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    if pick & 1 == 0 {
        if let Ok(peers) = mcc_pex::codec::decode(bytes, MAX_PEERS, MAX_ADDRS) {
            assert!(peers.len() <= MAX_PEERS);
            assert!(peers.iter().all(|p| p.addrs.len() <= MAX_ADDRS));
            // What a node decodes it can pass on, and the next peer reads the same.
            let again = mcc_pex::codec::decode(
                &mcc_pex::codec::encode(&peers, MAX_ADDRS),
                MAX_PEERS,
                MAX_ADDRS,
            );
            assert_eq!(again.ok(), Some(peers));
        }
    } else {
        let _ = mcc_pex::codec::decode_ack(bytes);
    }
    // The whole codec as request-response drives it, with the default limits.
    let mut codec = mcc_pex::codec::Codec::new(&mcc_pex::Config::default());
    let _ = block_on(codec.read_request(&mcc_pex::PROTOCOL_NAME, &mut Cursor::new(bytes)));
});
