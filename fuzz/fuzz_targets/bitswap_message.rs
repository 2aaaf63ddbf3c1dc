//! `/ipfs/bitswap/1.2.0`: a frame body as a peer sends it (protobuf), then what the node
//! reads out of it: wantlist CIDs, block prefixes and the CIDs they make, presences. Also the
//! framing reader over the raw bytes.
#![no_main]

use futures::{executor::block_on, io::Cursor};
use libfuzzer_sys::fuzz_target;
use mcc_bitswap::Cid;
use mcc_bitswap::codec::{self, Prefix};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = codec::decode(data) {
        if let Some(wantlist) = &message.wantlist {
            for entry in &wantlist.entries {
                let _ = Cid::try_from(&entry.block[..]);
                let _ = entry.want_type();
            }
        }
        for block in &message.payload {
            if let Ok(prefix) = Prefix::from_bytes(&block.prefix) {
                let _ = prefix.cid_of(&block.data);
            }
        }
        for presence in &message.block_presences {
            let _ = Cid::try_from(&presence.cid[..]);
            let _ = presence.presence();
        }
        // What a node decodes it can encode again, and reads back the same.
        let frame = codec::encode(&message);
        if let Some((len, body)) = codec::take_varint(&frame) {
            assert_eq!(len as usize, body.len());
            let again = codec::decode(body);
            assert!(again.is_ok_and(|m| m == message));
        }
    }
    // Frames as the connection handler reads them: bounded, never more than `max`.
    let mut reader = Cursor::new(data);
    for _ in 0..8 {
        match block_on(codec::read_frame(&mut reader, 64 << 10)) {
            Ok(Some(body)) => assert!(body.len() <= 64 << 10),
            _ => break,
        }
    }
});
