//! Wire format of `/mcc/rpc/1.0.0`: one JSON document per stream direction.
//!
//! * request: `{"method": "<name>", "params": <any JSON>}` (`params` defaults to `null`);
//! * response: `{"result": <any JSON>}` or `{"error": {"code": "<code>", "message": "..."}}`.
//!   A code this version does not know is read as
//!   [`ErrorCode::Unknown`](crate::ErrorCode::Unknown), not rejected.
//!
//! Each side writes its whole message and then closes its half of the stream, so a message ends
//! where the stream ends. Reads are capped: at most the configured maximum is ever buffered, and a
//! longer message is rejected. Malformed or oversized input is an [`io::Error`] of kind
//! [`io::ErrorKind::InvalidData`] carrying a [`CodecError`]; request-response then drops the
//! stream.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    RpcError,
    config::{DEFAULT_MAX_REQUEST_SIZE, DEFAULT_MAX_RESPONSE_SIZE},
};

/// A request on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Name of the method to run.
    pub method: String,
    /// Parameters, any JSON value; `null` when absent.
    #[serde(default)]
    pub params: Value,
}

/// A response on the wire: exactly one of `result` or `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// The method succeeded: `{"result": ...}`.
    Result(Value),
    /// The method failed: `{"error": {"code": ..., "message": ...}}`.
    Error(RpcError),
}

impl Response {
    /// The response as a `Result`.
    pub fn into_result(self) -> Result<Value, RpcError> {
        match self {
            Self::Result(v) => Ok(v),
            Self::Error(e) => Err(e),
        }
    }
}

impl From<Result<Value, RpcError>> for Response {
    fn from(r: Result<Value, RpcError>) -> Self {
        match r {
            Ok(v) => Self::Result(v),
            Err(e) => Self::Error(e),
        }
    }
}

/// Why a message could not be decoded; found inside the [`io::Error`]s the [`Codec`] returns.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The message is longer than allowed.
    #[error("message exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The maximum that applied.
        max: usize,
    },
    /// The message is not valid JSON of the expected shape.
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<CodecError> for io::Error {
    fn from(e: CodecError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// The [`libp2p::request_response::Codec`] for `/mcc/rpc/1.0.0`.
#[derive(Debug, Clone)]
pub struct Codec {
    max_request_size: usize,
    max_response_size: usize,
}

impl Default for Codec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_REQUEST_SIZE, DEFAULT_MAX_RESPONSE_SIZE)
    }
}

impl Codec {
    /// A codec that accepts requests of at most `max_request_size` bytes and responses of at
    /// most `max_response_size` bytes.
    pub fn new(max_request_size: usize, max_response_size: usize) -> Self {
        Self {
            max_request_size,
            max_response_size,
        }
    }

    /// Largest request read, in bytes.
    pub fn max_request_size(&self) -> usize {
        self.max_request_size
    }

    /// Largest response read, in bytes.
    pub fn max_response_size(&self) -> usize {
        self.max_response_size
    }
}

impl libp2p::request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_capped(io, self.max_request_size).await?;
        decode(&bytes)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_capped(io, self.max_response_size).await?;
        decode(&bytes)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_whole(io, &req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_whole(io, &res).await
    }
}

/// Decodes a message, which must be a JSON object (serde would also take a JSON array for a
/// struct, which is not part of the wire format).
fn decode<M: for<'de> Deserialize<'de>>(bytes: &[u8]) -> io::Result<M> {
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first.is_some_and(|b| *b != b'{') {
        let e = <serde_json::Error as serde::de::Error>::custom("expected a JSON object");
        return Err(CodecError::Json(e).into());
    }
    serde_json::from_slice(bytes).map_err(|e| CodecError::Json(e).into())
}

async fn write_whole<T, M>(io: &mut T, message: &M) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
    M: Serialize,
{
    let bytes = serde_json::to_vec(message).map_err(CodecError::Json)?;
    io.write_all(&bytes).await?;
    io.close().await
}

/// Buffer size of the first read; the buffer then doubles up to the cap.
const INITIAL_READ_BUFFER: usize = 1024;

/// Reads `io` to its end, failing with [`CodecError::TooLarge`] as soon as more than `max`
/// bytes arrive. The buffer never grows beyond `max` bytes.
async fn read_capped<T>(io: &mut T, max: usize) -> io::Result<Vec<u8>>
where
    T: AsyncRead + Unpin,
{
    let mut buf: Vec<u8> = Vec::new();
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            if filled >= max {
                // The buffer is full: the message is acceptable only if the stream ends here.
                let mut probe = [0u8; 1];
                return match read_retrying(io, &mut probe).await? {
                    0 => Ok(buf),
                    _ => Err(CodecError::TooLarge { max }.into()),
                };
            }
            let new_len = buf
                .len()
                .saturating_mul(2)
                .max(INITIAL_READ_BUFFER)
                .min(max);
            buf.reserve_exact(new_len - buf.len());
            buf.resize(new_len, 0);
        }
        let n = read_retrying(io, &mut buf[filled..]).await?;
        if n == 0 {
            buf.truncate(filled);
            return Ok(buf);
        }
        filled += n;
    }
}

async fn read_retrying<T>(io: &mut T, buf: &mut [u8]) -> io::Result<usize>
where
    T: AsyncRead + Unpin,
{
    loop {
        match io.read(buf).await {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Encoded length of `value` in bytes, computed without buffering the encoding.
pub(crate) fn encoded_len<M: Serialize>(value: &M) -> Result<usize, serde_json::Error> {
    struct Counter(usize);
    impl io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, value)?;
    Ok(counter.0)
}

#[cfg(test)]
mod tests {
    use std::{
        pin::Pin,
        task::{Context, Poll},
    };

    use futures::{executor::block_on, io::Cursor};
    use libp2p::request_response::Codec as _;
    use serde_json::json;

    use super::*;
    use crate::{ErrorCode, PROTOCOL_NAME};

    fn inner_codec_error(e: &io::Error) -> &CodecError {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<CodecError>())
            .expect("io::Error should carry a CodecError")
    }

    #[test]
    fn request_roundtrip_and_wire_shape() {
        let mut codec = Codec::default();
        let req = Request {
            method: "echo".into(),
            params: json!({"a": [1, 2, {"b": null}], "s": "ü"}),
        };
        let mut out = Cursor::new(Vec::new());
        block_on(codec.write_request(&PROTOCOL_NAME, &mut out, req.clone())).unwrap();
        let bytes = out.into_inner();
        let wire: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(wire, json!({"method": "echo", "params": req.params}));
        assert_eq!(encoded_len(&req).unwrap(), bytes.len());

        let read = block_on(codec.read_request(&PROTOCOL_NAME, &mut Cursor::new(bytes))).unwrap();
        assert_eq!(read, req);
    }

    #[test]
    fn missing_params_default_to_null() {
        let mut codec = Codec::default();
        let read = block_on(codec.read_request(
            &PROTOCOL_NAME,
            &mut Cursor::new(br#"{"method":"ping"}"#.to_vec()),
        ))
        .unwrap();
        assert_eq!(read.method, "ping");
        assert_eq!(read.params, Value::Null);
    }

    #[test]
    fn response_roundtrip_and_wire_shape() {
        let mut codec = Codec::default();
        for (res, wire) in [
            (
                Response::Result(json!([1, "x"])),
                json!({"result": [1, "x"]}),
            ),
            (Response::Result(Value::Null), json!({"result": null})),
            (
                Response::Error(RpcError::new(ErrorCode::Forbidden, "no")),
                json!({"error": {"code": "forbidden", "message": "no"}}),
            ),
        ] {
            let mut out = Cursor::new(Vec::new());
            block_on(codec.write_response(&PROTOCOL_NAME, &mut out, res.clone())).unwrap();
            let bytes = out.into_inner();
            assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), wire);
            let read =
                block_on(codec.read_response(&PROTOCOL_NAME, &mut Cursor::new(bytes))).unwrap();
            assert_eq!(read, res);
        }
    }

    #[test]
    fn malformed_input_is_invalid_data() {
        let mut codec = Codec::default();
        let cases: [&[u8]; 8] = [
            b"",
            b"{",
            b"not json",
            b"\xff\xfe\x00",
            br#"{"params": 1}"#,
            br#"{"method": 5}"#,
            br#"{"method": "a"} trailing"#,
            br#"["method", "a"]"#,
        ];
        for bytes in cases {
            let err = block_on(codec.read_request(&PROTOCOL_NAME, &mut Cursor::new(bytes)))
                .expect_err("malformed request must be rejected");
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(matches!(inner_codec_error(&err), CodecError::Json(_)));
        }

        let bad_responses: [&[u8]; 5] = [
            b"{}",
            br#"{"result": 1, "error": {"code": "busy", "message": ""}}"#,
            br#"{"error": {"code": 3, "message": ""}}"#,
            br#"{"error": "text"}"#,
            br#"{"other": 1}"#,
        ];
        for bytes in bad_responses {
            let err = block_on(codec.read_response(&PROTOCOL_NAME, &mut Cursor::new(bytes)))
                .expect_err("malformed response must be rejected");
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        }
    }

    #[test]
    fn response_with_an_unknown_error_code_is_readable() {
        let mut codec = Codec::default();
        let bytes: &[u8] = br#"{"error": {"code": "quota_exceeded", "message": "try tomorrow"}}"#;
        let read = block_on(codec.read_response(&PROTOCOL_NAME, &mut Cursor::new(bytes))).unwrap();
        assert_eq!(
            read.into_result(),
            Err(RpcError::new(
                ErrorCode::Unknown("quota_exceeded".into()),
                "try tomorrow"
            ))
        );
    }

    #[test]
    fn deeply_nested_input_is_rejected_without_overflow() {
        let mut codec = Codec::default();
        let mut bytes = br#"{"method":"x","params":"#.to_vec();
        bytes.extend(std::iter::repeat_n(b'[', 100_000));
        let err = block_on(codec.read_request(&PROTOCOL_NAME, &mut Cursor::new(bytes)))
            .expect_err("nesting beyond serde_json's limit must be rejected");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    /// A reader that yields `remaining` bytes of `b' '` in small chunks and records the
    /// largest buffer it was asked to fill.
    struct Endless {
        remaining: usize,
        served: usize,
    }

    impl AsyncRead for Endless {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.remaining).min(700);
            buf[..n].fill(b' ');
            self.remaining -= n;
            self.served += n;
            Poll::Ready(Ok(n))
        }
    }

    #[test]
    fn oversized_input_is_rejected_after_at_most_max_plus_one_bytes() {
        let max = 10_000;
        let mut codec = Codec::new(max, max);
        let mut reader = Endless {
            remaining: usize::MAX,
            served: 0,
        };
        let err = block_on(codec.read_request(&PROTOCOL_NAME, &mut reader))
            .expect_err("oversized request must be rejected");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(
            inner_codec_error(&err),
            CodecError::TooLarge { max: 10_000 }
        ));
        assert_eq!(
            reader.served,
            max + 1,
            "must stop reading right after the cap"
        );

        let mut reader = Endless {
            remaining: usize::MAX,
            served: 0,
        };
        let err = block_on(codec.read_response(&PROTOCOL_NAME, &mut reader))
            .expect_err("oversized response must be rejected");
        assert!(matches!(
            inner_codec_error(&err),
            CodecError::TooLarge { .. }
        ));
    }

    #[test]
    fn input_of_exactly_max_bytes_is_accepted() {
        let req = Request {
            method: "echo".into(),
            params: json!("x".repeat(5000)),
        };
        let bytes = serde_json::to_vec(&req).unwrap();
        let mut codec = Codec::new(bytes.len(), 0);
        let read =
            block_on(codec.read_request(&PROTOCOL_NAME, &mut Cursor::new(bytes.clone()))).unwrap();
        assert_eq!(read, req);

        let mut codec = Codec::new(bytes.len() - 1, 0);
        let err = block_on(codec.read_request(&PROTOCOL_NAME, &mut Cursor::new(bytes)))
            .expect_err("one byte over the cap");
        assert!(matches!(
            inner_codec_error(&err),
            CodecError::TooLarge { .. }
        ));
    }

    #[test]
    fn zero_cap_accepts_only_empty_streams() {
        let mut codec = Codec::new(0, 0);
        let err = block_on(codec.read_response(&PROTOCOL_NAME, &mut Cursor::new(b"{}".to_vec())))
            .expect_err("anything is too large");
        assert!(matches!(
            inner_codec_error(&err),
            CodecError::TooLarge { max: 0 }
        ));
        // An empty stream passes the size check and then fails as JSON.
        let err = block_on(codec.read_response(&PROTOCOL_NAME, &mut Cursor::new(Vec::new())))
            .expect_err("empty is not JSON");
        assert!(matches!(inner_codec_error(&err), CodecError::Json(_)));
    }
}
