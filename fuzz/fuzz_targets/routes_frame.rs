//! `/mcc/routes/1.0.0` frames as a peer's stream carries them: read one after the other until
//! the end or an error, and also as one whole frame.
#![no_main]

use futures::{executor::block_on, io::Cursor};
use libfuzzer_sys::fuzz_target;
use mcc_routes::codec::{self, Frame, Read};

const MAX_BODY: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let _ = codec::decode_frame(data, MAX_BODY);
    let mut io = Cursor::new(data);
    // Each frame takes at least its header: bounded by the input.
    while let Ok(Read::Frame(frame)) = block_on(codec::read_frame(&mut io, MAX_BODY)) {
        let Ok(frame) = frame else {
            continue;
        };
        // A frame a node accepts encodes back to the same frame.
        let again = match &frame {
            Frame::Interest {
                route,
                tag,
                lease_secs,
            } => codec::encode_interest(route, tag.as_deref(), *lease_secs),
            Frame::Withdraw { route } => codec::encode_withdraw(route),
            Frame::Message {
                route,
                seq,
                time_unix_ms,
                payload,
            } => codec::encode_message(route, *seq, *time_unix_ms, payload),
            Frame::Unknown { .. } => continue,
        };
        assert_eq!(codec::decode_frame(&again, usize::MAX).ok(), Some(frame));
    }
});
