//! Tests of the codec: round trips, prefixes, limits, truncated and garbage input.

use super::*;

fn raw_cid(data: &[u8]) -> Cid {
    Prefix {
        version: 1,
        codec: 0x55,
        hash: SHA2_256,
        digest_len: 32,
    }
    .cid_of(data)
    .unwrap()
}

#[test]
fn a_message_round_trips_through_a_frame() {
    let cid = raw_cid(b"hello");
    let message = Message {
        wantlist: Some(Wantlist {
            entries: vec![Entry {
                block: Bytes::from(cid.to_bytes()),
                priority: 1,
                cancel: false,
                want_type: WantType::Have.into(),
                send_dont_have: true,
            }],
            full: false,
        }),
        payload: vec![Block {
            prefix: Prefix::of(&cid).to_bytes(),
            data: Bytes::from_static(b"hello"),
        }],
        block_presences: vec![BlockPresence {
            cid: Bytes::from(cid.to_bytes()),
            r#type: Presence::DontHave.into(),
        }],
        ..Message::default()
    };
    let frame = encode(&message);
    let (len, body) = take_varint(&frame).unwrap();
    assert_eq!(len as usize, body.len());
    let back = decode(body).unwrap();
    assert_eq!(back, message);
    assert_eq!(back.block_presences[0].presence(), Presence::DontHave);
    let entry = &back.wantlist.as_ref().unwrap().entries[0];
    assert_eq!(entry.want_type(), WantType::Have);
}

#[test]
fn a_message_in_parts_is_the_same_frame() {
    let presence = BlockPresence {
        cid: Bytes::from(raw_cid(b"x").to_bytes()),
        r#type: Presence::Have.into(),
    };
    for data in [Bytes::new(), Bytes::from(vec![9u8; 300_000])] {
        for wantlist in [None, Some(Wantlist::default())] {
            for blocks in 0..3 {
                for presences in [Vec::new(), vec![presence.clone()]] {
                    let message = Message {
                        wantlist: wantlist.clone(),
                        payload: (0..blocks)
                            .map(|i| Block {
                                prefix: Bytes::from_static(&[1, 0x55, 0x12, 0x20]),
                                data: data.slice(i.min(data.len())..),
                            })
                            .collect(),
                        block_presences: presences,
                        pending_bytes: blocks as i32,
                        ..Message::default()
                    };
                    let parts = encode_parts(&message);
                    assert_eq!(parts.concat(), encode(&message).to_vec());
                    // The block bytes are not copied.
                    for block in message.payload.iter().filter(|b| !b.data.is_empty()) {
                        assert!(parts.iter().any(|p| p.as_ptr() == block.data.as_ptr()));
                    }
                }
            }
        }
    }
}

#[test]
fn prefixes_are_the_ones_ipfs_uses() {
    let raw = raw_cid(b"x");
    assert_eq!(&Prefix::of(&raw).to_bytes()[..], &[0x01, 0x55, 0x12, 0x20]);
    let v0 = Prefix {
        version: 0,
        codec: DAG_PB,
        hash: SHA2_256,
        digest_len: 32,
    };
    assert_eq!(&v0.to_bytes()[..], &[0x00, 0x70, 0x12, 0x20]);
    let cid = v0.cid_of(b"node").unwrap();
    assert_eq!(cid.version(), cid::Version::V0);
    assert_eq!(Prefix::of(&cid), v0);
}

#[test]
fn unknown_enum_values_are_kept() {
    assert_eq!(WantType::from(7), WantType::Unknown(7));
    assert_eq!(i32::from(WantType::Unknown(7)), 7);
    assert_eq!(Presence::from(9), Presence::Unknown(9));
}

#[test]
fn bad_prefixes_and_hashes_are_errors() {
    assert!(Prefix::from_bytes(&[0x01, 0x55]).is_err());
    assert!(Prefix::from_bytes(&[0xff; 40]).is_err());
    let blake = Prefix {
        version: 1,
        codec: 0x55,
        hash: 0x1e,
        digest_len: 32,
    };
    assert!(matches!(
        blake.cid_of(b"x"),
        Err(DecodeError::UnsupportedHash { .. })
    ));
    let v0_raw = Prefix {
        version: 0,
        codec: 0x55,
        hash: SHA2_256,
        digest_len: 32,
    };
    assert!(v0_raw.cid_of(b"x").is_err());
}

#[test]
fn garbage_and_truncated_bodies_are_errors_not_panics() {
    assert!(decode(&[0xff, 0xff, 0xff]).is_err());
    let frame = encode(&Message {
        payload: vec![Block {
            prefix: Bytes::from_static(&[1, 0x55, 0x12, 0x20]),
            data: Bytes::from(vec![7u8; 100]),
        }],
        ..Message::default()
    });
    let body = &frame[1..];
    for cut in 0..body.len() {
        let _ = decode(&body[..cut]);
    }
    assert!(decode(&body[..body.len() - 1]).is_err());
    assert!(matches!(
        decode(&vec![0u8; MAX_MESSAGE_SIZE + 1]),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn frames_over_the_limit_are_refused_before_reading() {
    let mut buf = BytesMut::new();
    put_varint(&mut buf, 5_000_000);
    let mut reader = &buf[..];
    let got = futures::executor::block_on(read_frame(&mut reader, MAX_MESSAGE_SIZE));
    assert!(matches!(got, Err(ReadError::TooLarge { .. })));
    let mut empty: &[u8] = &[];
    let got = futures::executor::block_on(read_frame(&mut empty, MAX_MESSAGE_SIZE));
    assert!(matches!(got, Ok(None)));
    let mut bad: &[u8] = &[0xff; 11];
    let got = futures::executor::block_on(read_frame(&mut bad, MAX_MESSAGE_SIZE));
    assert!(matches!(got, Err(ReadError::BadLength)));
    let mut cut: &[u8] = &[5, 1, 2];
    let got = futures::executor::block_on(read_frame(&mut cut, MAX_MESSAGE_SIZE));
    assert!(matches!(got, Err(ReadError::Io(_))));
}
