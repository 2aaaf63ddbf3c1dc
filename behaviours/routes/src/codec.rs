//! The frames of `/mcc/routes/1.0.0` and the route name rules, as plain functions.
//!
//! Every frame is `kind (u8) | body length (u32 big-endian) | body`. The length is checked
//! against the reader's limit before anything is buffered. Bodies:
//!
//! - `1` interest: `route_len (u8) | route | tag_len (u8) | tag | lease_secs (u32 BE)`
//! - `2` withdraw: `route_len (u8) | route`
//! - `3` message: `route_len (u8) | route | seq (u64 BE) | time_unix_ms (u64 BE) | payload`
//! - any other kind: skipped whole ([`Frame::Unknown`]), so a newer peer can add kinds.

use bytes::{BufMut, Bytes, BytesMut};
use futures::{AsyncRead, AsyncReadExt};

use crate::error::{DecodeError, NameError};

/// Longest route name in bytes.
pub const MAX_ROUTE_LEN: usize = 128;
/// Longest type tag in bytes.
pub const MAX_TAG_LEN: usize = 64;
/// Bytes of a frame header: kind and body length.
pub const HEADER_LEN: usize = 5;

const KIND_INTEREST: u8 = 1;
const KIND_WITHDRAW: u8 = 2;
const KIND_MESSAGE: u8 = 3;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The sender wants the messages of `route` (of type `tag`, if set) for `lease_secs`.
    Interest {
        route: String,
        tag: Option<String>,
        lease_secs: u32,
    },
    /// The sender no longer wants `route`.
    Withdraw { route: String },
    /// One message on `route`.
    Message {
        route: String,
        seq: u64,
        time_unix_ms: u64,
        payload: Bytes,
    },
    /// A kind this version does not know; its body was skipped.
    Unknown { kind: u8, len: u32 },
}

/// Checks a route name: 1 to [`MAX_ROUTE_LEN`] bytes of lowercase letters, digits, `.`, `_`,
/// `-` and `/` (the service name rules plus `/`), starting and ending with a letter or digit,
/// with no empty segment (`a//b`).
pub fn validate_route(route: &str) -> Result<(), NameError> {
    validate(route, MAX_ROUTE_LEN)
}

/// Checks a type tag: the route name rules with at most [`MAX_TAG_LEN`] bytes.
pub fn validate_tag(tag: &str) -> Result<(), NameError> {
    validate(tag, MAX_TAG_LEN)
}

fn validate(name: &str, max: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > max {
        return Err(NameError::TooLong { max });
    }
    if let Some(c) = name
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-' | '/'))
    {
        return Err(NameError::BadChar(c));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return Err(NameError::BadEnds);
    }
    if name.contains("//") {
        return Err(NameError::EmptySegment);
    }
    Ok(())
}

fn header(buf: &mut BytesMut, kind: u8, len: usize) {
    buf.put_u8(kind);
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
}

/// Encodes an interest. `route` and `tag` must be valid (checked by the caller).
pub fn encode_interest(route: &str, tag: Option<&str>, lease_secs: u32) -> Bytes {
    let tag = tag.unwrap_or("");
    let len = 1 + route.len() + 1 + tag.len() + 4;
    let mut buf = BytesMut::with_capacity(HEADER_LEN + len);
    header(&mut buf, KIND_INTEREST, len);
    put_short(&mut buf, route);
    put_short(&mut buf, tag);
    buf.put_u32(lease_secs);
    buf.freeze()
}

/// Encodes a withdrawal.
pub fn encode_withdraw(route: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(HEADER_LEN + 1 + route.len());
    header(&mut buf, KIND_WITHDRAW, 1 + route.len());
    put_short(&mut buf, route);
    buf.freeze()
}

/// Encodes a message.
pub fn encode_message(route: &str, seq: u64, time_unix_ms: u64, payload: &[u8]) -> Bytes {
    let len = 1 + route.len() + 16 + payload.len();
    let mut buf = BytesMut::with_capacity(HEADER_LEN + len);
    header(&mut buf, KIND_MESSAGE, len);
    put_short(&mut buf, route);
    buf.put_u64(seq);
    buf.put_u64(time_unix_ms);
    buf.put_slice(payload);
    buf.freeze()
}

/// Writes a string of at most 255 bytes with its length byte (callers validated the length).
fn put_short(buf: &mut BytesMut, s: &str) {
    buf.put_u8(u8::try_from(s.len()).unwrap_or(u8::MAX));
    buf.put_slice(s.as_bytes());
}

/// Decodes one frame body of `kind`.
pub fn decode_body(kind: u8, body: Bytes) -> Result<Frame, DecodeError> {
    let mut r = Cursor { buf: body, pos: 0 };
    let frame = match kind {
        KIND_INTEREST => {
            let route = r.route()?;
            let tag = r.short()?;
            let tag = if tag.is_empty() {
                None
            } else {
                validate_tag(&tag).map_err(DecodeError::BadTag)?;
                Some(tag)
            };
            let lease_secs = u32::from_be_bytes(r.array()?);
            r.end()?;
            Frame::Interest {
                route,
                tag,
                lease_secs,
            }
        }
        KIND_WITHDRAW => {
            let route = r.route()?;
            r.end()?;
            Frame::Withdraw { route }
        }
        KIND_MESSAGE => {
            let route = r.route()?;
            let seq = u64::from_be_bytes(r.array()?);
            let time_unix_ms = u64::from_be_bytes(r.array()?);
            Frame::Message {
                route,
                seq,
                time_unix_ms,
                payload: r.rest(),
            }
        }
        kind => Frame::Unknown {
            kind,
            len: u32::try_from(r.buf.len()).unwrap_or(u32::MAX),
        },
    };
    Ok(frame)
}

/// Decodes one whole frame (header and body) from `bytes`, with a body limit.
pub fn decode_frame(bytes: &[u8], max_body: usize) -> Result<Frame, DecodeError> {
    let (head, body) = bytes
        .split_at_checked(HEADER_LEN)
        .ok_or(DecodeError::Truncated)?;
    let kind = head[0];
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > max_body {
        return Err(DecodeError::TooLarge { len, max: max_body });
    }
    if body.len() < len {
        return Err(DecodeError::Truncated);
    }
    if body.len() > len {
        return Err(DecodeError::Trailing);
    }
    decode_body(kind, Bytes::copy_from_slice(body))
}

/// What [`read_frame`] got.
#[derive(Debug)]
pub enum Read {
    /// A frame (or a frame whose body did not decode: the stream is still in step).
    Frame(Result<Frame, DecodeError>),
    /// The stream ended cleanly between two frames.
    End,
}

/// Reads one frame; fails on I/O errors, a body over `max_body` (checked before buffering) or
/// an end of stream inside a frame.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_body: usize,
) -> Result<Read, crate::error::ReadError> {
    use crate::error::ReadError;
    let mut head = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = reader.read(&mut head[got..]).await.map_err(ReadError::Io)?;
        if n == 0 {
            return if got == 0 {
                Ok(Read::End)
            } else {
                Err(ReadError::Decode(DecodeError::Truncated))
            };
        }
        got += n;
    }
    let kind = head[0];
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > max_body {
        return Err(ReadError::Decode(DecodeError::TooLarge {
            len,
            max: max_body,
        }));
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ReadError::Decode(DecodeError::Truncated)
        } else {
            ReadError::Io(e)
        }
    })?;
    Ok(Read::Frame(decode_body(kind, Bytes::from(body))))
}

struct Cursor {
    buf: Bytes,
    pos: usize,
}

impl Cursor {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn short(&mut self) -> Result<String, DecodeError> {
        let [len] = self.array::<1>()?;
        let s = self.take(usize::from(len))?;
        String::from_utf8(s.to_vec()).map_err(|_| DecodeError::NotUtf8)
    }

    fn route(&mut self) -> Result<String, DecodeError> {
        let route = self.short()?;
        validate_route(&route).map_err(DecodeError::BadRoute)?;
        Ok(route)
    }

    fn rest(&mut self) -> Bytes {
        let rest = self.buf.slice(self.pos.min(self.buf.len())..);
        self.pos = self.buf.len();
        rest
    }

    fn end(&self) -> Result<(), DecodeError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(DecodeError::Trailing)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names_follow_the_service_rules_plus_slash() {
        for good in [
            "sensors/temp",
            "a",
            "a.b_c-9/x/y",
            &"x".repeat(MAX_ROUTE_LEN),
        ] {
            assert_eq!(validate_route(good), Ok(()), "{good}");
        }
        assert_eq!(validate_route(""), Err(NameError::Empty));
        assert!(matches!(
            validate_route(&"x".repeat(MAX_ROUTE_LEN + 1)),
            Err(NameError::TooLong { .. })
        ));
        assert_eq!(validate_route("Temp"), Err(NameError::BadChar('T')));
        assert_eq!(validate_route("a b"), Err(NameError::BadChar(' ')));
        assert_eq!(validate_route("/a"), Err(NameError::BadEnds));
        assert_eq!(validate_route("a/"), Err(NameError::BadEnds));
        assert_eq!(validate_route("-a"), Err(NameError::BadEnds));
        assert_eq!(validate_route("a//b"), Err(NameError::EmptySegment));
    }

    #[test]
    fn frames_round_trip() {
        let cases = [
            (
                encode_interest("sensors/temp", Some("json"), 60),
                Frame::Interest {
                    route: "sensors/temp".into(),
                    tag: Some("json".into()),
                    lease_secs: 60,
                },
            ),
            (
                encode_interest("a", None, 1),
                Frame::Interest {
                    route: "a".into(),
                    tag: None,
                    lease_secs: 1,
                },
            ),
            (
                encode_withdraw("a/b"),
                Frame::Withdraw {
                    route: "a/b".into(),
                },
            ),
            (
                encode_message("a/b", 7, 1_700_000_000_000, b"hello"),
                Frame::Message {
                    route: "a/b".into(),
                    seq: 7,
                    time_unix_ms: 1_700_000_000_000,
                    payload: Bytes::from_static(b"hello"),
                },
            ),
        ];
        for (bytes, frame) in cases {
            assert_eq!(decode_frame(&bytes, 1024), Ok(frame));
        }
    }

    #[test]
    fn message_wire_bytes_are_as_documented() {
        let bytes = encode_message("r", 1, 2, b"x");
        let want: Vec<u8> = [
            &[3u8, 0, 0, 0, 19][..],
            &[1, b'r'],
            &1u64.to_be_bytes(),
            &2u64.to_be_bytes(),
            b"x",
        ]
        .concat();
        assert_eq!(&bytes[..], &want[..]);
    }

    #[test]
    fn truncated_frames_are_errors() {
        let bytes = encode_message("a/b", 7, 1, b"hello");
        for cut in 0..bytes.len() {
            assert_eq!(
                decode_frame(&bytes[..cut], 1024),
                Err(DecodeError::Truncated),
                "cut at {cut}"
            );
        }
        // A body whose own fields run short of its length.
        let mut short = BytesMut::new();
        header(&mut short, KIND_MESSAGE, 3);
        short.put_slice(&[1, b'a', 0]);
        assert_eq!(decode_frame(&short, 1024), Err(DecodeError::Truncated));
    }

    #[test]
    fn oversized_frames_are_refused_before_buffering() {
        let bytes = encode_message("a", 1, 1, &[0u8; 100]);
        assert!(matches!(
            decode_frame(&bytes, 50),
            Err(DecodeError::TooLarge { len: 118, max: 50 })
        ));
        let mut huge = BytesMut::new();
        header(&mut huge, KIND_MESSAGE, u32::MAX as usize);
        let got = futures::executor::block_on(read_frame(&mut &huge[..], 1024));
        assert!(matches!(
            got,
            Err(crate::error::ReadError::Decode(
                DecodeError::TooLarge { .. }
            ))
        ));
    }

    #[test]
    fn unknown_kinds_are_skipped_and_the_stream_stays_in_step() {
        let mut stream = BytesMut::new();
        header(&mut stream, 200, 3);
        stream.put_slice(b"new");
        stream.put_slice(&encode_withdraw("a"));
        let mut reader = &stream[..];
        let first = futures::executor::block_on(read_frame(&mut reader, 1024));
        assert!(matches!(
            first,
            Ok(Read::Frame(Ok(Frame::Unknown { kind: 200, len: 3 })))
        ));
        let second = futures::executor::block_on(read_frame(&mut reader, 1024));
        assert!(matches!(
            second,
            Ok(Read::Frame(Ok(Frame::Withdraw { route }))) if route == "a"
        ));
        let end = futures::executor::block_on(read_frame(&mut reader, 1024));
        assert!(matches!(end, Ok(Read::End)));
    }

    #[test]
    fn bad_names_and_trailing_bytes_are_errors() {
        let mut bad = BytesMut::new();
        header(&mut bad, KIND_WITHDRAW, 3);
        bad.put_slice(&[2, b'A', b'b']);
        assert_eq!(
            decode_frame(&bad, 1024),
            Err(DecodeError::BadRoute(NameError::BadChar('A')))
        );
        let mut trailing = BytesMut::new();
        header(&mut trailing, KIND_WITHDRAW, 3);
        trailing.put_slice(&[1, b'a', 0]);
        assert_eq!(decode_frame(&trailing, 1024), Err(DecodeError::Trailing));
        let mut not_utf8 = BytesMut::new();
        header(&mut not_utf8, KIND_WITHDRAW, 2);
        not_utf8.put_slice(&[1, 0xff]);
        assert_eq!(decode_frame(&not_utf8, 1024), Err(DecodeError::NotUtf8));
    }
}
