//! Wire format of `/mcc/cert/1.0.0`: one request and one response per stream.
//!
//! * Request: the sender's certificate, as `u16` big-endian length + certificate bytes.
//! * Response: a status byte, then `u16` length + bytes: status 0 carries the responder's
//!   certificate, status 1 a UTF-8 reason why the requester was refused (at most
//!   [`MAX_REASON_LEN`] bytes).
//!
//! Any other status (from a newer version) is read like a refusal, as
//! [`Response::Unknown`] with its status and text, so the answer stays readable.
//!
//! Anything longer than [`MAX_CERTIFICATE_LEN`] (or [`MAX_REASON_LEN`] for a text) or bytes
//! after a request make the read fail, which drops the stream.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;

use crate::MAX_CERTIFICATE_LEN;

/// Longest refusal reason sent or accepted.
pub const MAX_REASON_LEN: usize = 512;

/// A certificate as sent (decoded and verified by the behaviour, not the codec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request(pub Vec<u8>);

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The responder's certificate.
    Certificate(Vec<u8>),
    /// The requester's certificate was refused, and why.
    Refused(String),
    /// A status this version does not know (a newer peer's), with the text that came with it
    /// (at most [`MAX_REASON_LEN`] bytes, read as UTF-8 with replacement characters).
    Unknown {
        /// The status byte (neither 0 nor 1).
        status: u8,
        /// The text that came with it.
        text: String,
    },
}

/// Status byte of [`Response::Certificate`].
const STATUS_CERTIFICATE: u8 = 0;
/// Status byte of [`Response::Refused`].
const STATUS_REFUSED: u8 = 1;

/// The [`request_response::Codec`] of the exchange.
#[derive(Debug, Clone, Copy, Default)]
pub struct Codec;

/// Reads one frame of at most `max` bytes. With `to_end`, the stream must end right after it.
async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
    to_end: bool,
) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    io.read_exact(&mut len).await?;
    let len = usize::from(u16::from_be_bytes(len));
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message of {len} bytes is over the limit of {max}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    // Exactly one message per stream: anything after it is a protocol violation.
    let mut extra = [0u8; 1];
    if to_end && io.read(&mut extra).await? != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bytes after the message",
        ));
    }
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    let len = u16::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too long"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

impl request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        Ok(Request(read_frame(io, MAX_CERTIFICATE_LEN, true).await?))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut status = [0u8; 1];
        io.read_exact(&mut status).await?;
        match status[0] {
            STATUS_CERTIFICATE => Ok(Response::Certificate(
                // Not waiting for the end of the stream: a refusing peer closes the connection
                // right after its answer, and its reason must still be read.
                read_frame(io, MAX_CERTIFICATE_LEN, false).await?,
            )),
            STATUS_REFUSED => {
                let bytes = read_frame(io, MAX_REASON_LEN, false).await?;
                Ok(Response::Refused(
                    String::from_utf8_lossy(&bytes).into_owned(),
                ))
            }
            status => {
                let bytes = read_frame(io, MAX_REASON_LEN, false).await?;
                Ok(Response::Unknown {
                    status,
                    text: String::from_utf8_lossy(&bytes).into_owned(),
                })
            }
        }
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
        write_frame(io, &req.0).await
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
        match res {
            Response::Certificate(bytes) => {
                io.write_all(&[STATUS_CERTIFICATE]).await?;
                write_frame(io, &bytes).await
            }
            Response::Refused(reason) => {
                io.write_all(&[STATUS_REFUSED]).await?;
                write_frame(io, cut(&reason).as_bytes()).await
            }
            Response::Unknown { status, text } => {
                io.write_all(&[status]).await?;
                write_frame(io, cut(&text).as_bytes()).await
            }
        }
    }
}

/// `text` cut to at most [`MAX_REASON_LEN`] bytes, on a character boundary.
fn cut(text: &str) -> &str {
    let mut end = text.len().min(MAX_REASON_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;
    use request_response::Codec as _;

    const P: StreamProtocol = StreamProtocol::new("/mcc/cert/1.0.0");

    fn roundtrip_response(r: Response) -> io::Result<Response> {
        futures::executor::block_on(async {
            let mut buf = Cursor::new(Vec::new());
            Codec.write_response(&P, &mut buf, r).await?;
            let mut read = Cursor::new(buf.into_inner());
            Codec.read_response(&P, &mut read).await
        })
    }

    #[test]
    fn request_and_responses_roundtrip() {
        futures::executor::block_on(async {
            let mut buf = Cursor::new(Vec::new());
            Codec
                .write_request(&P, &mut buf, Request(vec![1, 2, 3]))
                .await
                .unwrap();
            let mut read = Cursor::new(buf.into_inner());
            assert_eq!(
                Codec.read_request(&P, &mut read).await.unwrap(),
                Request(vec![1, 2, 3])
            );
        });
        let cert = Response::Certificate(vec![9; 100]);
        assert_eq!(roundtrip_response(cert.clone()).unwrap(), cert);
        let refused = Response::Refused("certificate expired".into());
        assert_eq!(roundtrip_response(refused.clone()).unwrap(), refused);
    }

    #[test]
    fn unknown_status_decodes_to_unknown_keeping_the_text() {
        // What a newer version might send: status 7 with a text.
        let mut bytes = vec![7, 0, 9];
        bytes.extend_from_slice(b"try later");
        let read = futures::executor::block_on(Codec.read_response(&P, &mut Cursor::new(bytes)));
        assert_eq!(
            read.unwrap(),
            Response::Unknown {
                status: 7,
                text: "try later".into()
            }
        );
        let empty =
            futures::executor::block_on(Codec.read_response(&P, &mut Cursor::new(vec![200, 0, 0])));
        assert_eq!(
            empty.unwrap(),
            Response::Unknown {
                status: 200,
                text: String::new()
            }
        );
        let unknown = Response::Unknown {
            status: 9,
            text: "passed on".into(),
        };
        assert_eq!(roundtrip_response(unknown.clone()).unwrap(), unknown);
    }

    #[test]
    fn long_reason_is_cut_on_a_char_boundary() {
        let r = roundtrip_response(Response::Refused("é".repeat(400))).unwrap();
        let Response::Refused(text) = r else {
            panic!("not a refusal")
        };
        assert!(text.len() <= MAX_REASON_LEN && text.chars().all(|c| c == 'é'));
    }

    #[test]
    fn oversized_unknown_and_trailing_bytes_are_refused() {
        futures::executor::block_on(async {
            let mut big = (u16::try_from(MAX_CERTIFICATE_LEN + 1).unwrap())
                .to_be_bytes()
                .to_vec();
            big.resize(2 + MAX_CERTIFICATE_LEN + 1, 0);
            assert!(Codec.read_request(&P, &mut Cursor::new(big)).await.is_err());
            let mut long_text = vec![7];
            long_text.extend_from_slice(&u16::try_from(MAX_REASON_LEN + 1).unwrap().to_be_bytes());
            long_text.resize(3 + MAX_REASON_LEN + 1, b'x');
            assert!(
                Codec
                    .read_response(&P, &mut Cursor::new(long_text))
                    .await
                    .is_err()
            );
            assert!(
                Codec
                    .read_request(&P, &mut Cursor::new(vec![0, 1, 5, 6]))
                    .await
                    .is_err()
            );
            assert!(
                Codec
                    .read_request(&P, &mut Cursor::new(vec![0, 4, 5]))
                    .await
                    .is_err()
            );
        });
    }
}
