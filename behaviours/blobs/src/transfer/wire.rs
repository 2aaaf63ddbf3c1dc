//! Requests and responses of `/mcc/blobs/1.0.0` (see the module documentation for the layout).

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::{Cid, MAX_BLOCK_SIZE};

/// The longest binary CID a request may carry (a sha2-256 CIDv1 takes 36 bytes).
pub const MAX_CID_LEN: usize = 256;

/// The longest message in a not-found or refused response.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// The kind byte of a GetBlock request.
pub(crate) const KIND_GET_BLOCK: u8 = 1;

/// Response status: the body is the block.
pub(crate) const STATUS_OK: u8 = 0;
/// Response status: the seeder does not have the block.
pub(crate) const STATUS_NOT_FOUND: u8 = 1;
/// Response status: the seeder is busy or refuses this peer.
pub(crate) const STATUS_REFUSED: u8 = 2;

/// Appends the GetBlock request for `cid` to `buf`.
pub(crate) fn encode_request(cid: &Cid, buf: &mut Vec<u8>) {
    let bytes = cid.to_bytes();
    // A `Cid` (at most a 64-byte digest plus four varints) is far shorter than MAX_CID_LEN.
    debug_assert!(bytes.len() <= MAX_CID_LEN);
    buf.reserve(3 + bytes.len());
    buf.push(KIND_GET_BLOCK);
    buf.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    buf.extend_from_slice(&bytes);
}

/// Why a request could not be read.
#[derive(Debug)]
pub(crate) enum RequestError {
    /// The stream failed or ended inside a request.
    Io(io::Error),
    /// The request is malformed.
    Bad(String),
}

/// Reads the next request: `Ok(None)` when the stream ends cleanly before it.
pub(crate) async fn read_request<R>(reader: &mut R) -> Result<Option<Cid>, RequestError>
where
    R: AsyncRead + Unpin,
{
    let mut kind = [0u8; 1];
    if reader.read(&mut kind).await.map_err(RequestError::Io)? == 0 {
        return Ok(None);
    }
    if kind[0] != KIND_GET_BLOCK {
        return Err(RequestError::Bad(format!(
            "unknown request kind {}",
            kind[0]
        )));
    }
    let mut len = [0u8; 2];
    reader
        .read_exact(&mut len)
        .await
        .map_err(RequestError::Io)?;
    let len = usize::from(u16::from_be_bytes(len));
    if len == 0 || len > MAX_CID_LEN {
        return Err(RequestError::Bad(format!(
            "CID length {len} is outside 1..={MAX_CID_LEN}"
        )));
    }
    let mut bytes = [0u8; MAX_CID_LEN];
    let bytes = &mut bytes[..len];
    reader.read_exact(bytes).await.map_err(RequestError::Io)?;
    parse_cid(bytes).map(Some).map_err(RequestError::Bad)
}

/// Parses bytes that must be exactly one binary CID.
fn parse_cid(bytes: &[u8]) -> Result<Cid, String> {
    let mut rest = bytes;
    let cid = Cid::read_bytes(&mut rest).map_err(|e| format!("invalid CID: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the CID", rest.len()));
    }
    Ok(cid)
}

/// Writes one response (no flush).
pub(crate) async fn write_response<W>(writer: &mut W, status: u8, body: &[u8]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let len = u32::try_from(body.len()).map_err(|_| io::Error::other("response body too long"))?;
    let mut header = [0u8; 5];
    header[0] = status;
    header[1..].copy_from_slice(&len.to_be_bytes());
    writer.write_all(&header).await?;
    if !body.is_empty() {
        writer.write_all(body).await?;
    }
    Ok(())
}

/// A response as the fetcher sees it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Response {
    /// The block's bytes (not verified yet).
    Block(Vec<u8>),
    /// The seeder does not have the block; its message.
    NotFound(String),
    /// The seeder is busy or refuses us; its message.
    Refused(String),
    /// A status this version does not know (a newer seeder's); the body is read as a message,
    /// under the same limit as the others.
    Unknown {
        /// The status byte.
        status: u8,
        /// The message that came with it.
        message: String,
    },
}

/// Why a response could not be read.
#[derive(Debug)]
pub(crate) enum ResponseError {
    /// The stream failed or ended (worth another stream).
    Io(io::Error),
    /// The seeder broke the protocol.
    Protocol(String),
}

/// Reads one response; the body goes straight into a buffer of its announced size.
pub(crate) async fn read_response<R>(reader: &mut R) -> Result<Response, ResponseError>
where
    R: AsyncRead + Unpin,
{
    let mut header = [0u8; 5];
    reader
        .read_exact(&mut header)
        .await
        .map_err(ResponseError::Io)?;
    let status = header[0];
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let limit = match status {
        STATUS_OK => MAX_BLOCK_SIZE,
        _ => MAX_MESSAGE_LEN,
    };
    if len > limit {
        return Err(ResponseError::Protocol(format!(
            "response of {len} bytes exceeds the limit of {limit}"
        )));
    }
    let mut body = vec![0u8; len];
    reader
        .read_exact(&mut body)
        .await
        .map_err(ResponseError::Io)?;
    if status == STATUS_OK {
        return Ok(Response::Block(body));
    }
    let message = String::from_utf8_lossy(&body).into_owned();
    Ok(match status {
        STATUS_NOT_FOUND => Response::NotFound(message),
        STATUS_REFUSED => Response::Refused(message),
        status => Response::Unknown { status, message },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RAW, cid_of};

    #[tokio::test]
    async fn request_round_trip() {
        let a = cid_of(RAW, b"a");
        let b = cid_of(RAW, b"b");
        let mut buf = Vec::new();
        encode_request(&a, &mut buf);
        encode_request(&b, &mut buf);
        assert_eq!(buf[0], KIND_GET_BLOCK);
        assert_eq!(usize::from(u16::from_be_bytes([buf[1], buf[2]])), 36);
        let mut reader = &buf[..];
        assert_eq!(read_request(&mut reader).await.ok(), Some(Some(a)));
        assert_eq!(read_request(&mut reader).await.ok(), Some(Some(b)));
        assert_eq!(read_request(&mut reader).await.ok(), Some(None));
    }

    #[tokio::test]
    async fn bad_requests() {
        let cid = cid_of(RAW, b"a").to_bytes();
        let mut trailing = vec![1, 0, 37];
        trailing.extend_from_slice(&cid);
        trailing.push(0);
        let mut short = vec![1, 0, 35];
        short.extend_from_slice(&cid[..35]);
        let cases: [&[u8]; 6] = [
            b"\x02\x00\x01\x01",
            b"\x01\x00\x00",
            b"\x01\x01\x01",
            b"\x01\x00\x04junk",
            &trailing,
            &short,
        ];
        for bytes in cases {
            let mut reader = bytes;
            assert!(
                matches!(read_request(&mut reader).await, Err(RequestError::Bad(_))),
                "{bytes:?}"
            );
        }
        let mut truncated: &[u8] = &[1, 0, 36, 1, 2];
        assert!(matches!(
            read_request(&mut truncated).await,
            Err(RequestError::Io(_))
        ));
    }

    #[tokio::test]
    async fn response_round_trip() {
        let mut buf = Vec::new();
        write_response(&mut buf, STATUS_OK, b"block").await.unwrap();
        write_response(&mut buf, STATUS_NOT_FOUND, b"")
            .await
            .unwrap();
        write_response(&mut buf, STATUS_REFUSED, b"busy")
            .await
            .unwrap();
        assert_eq!(&buf[..10], b"\x00\x00\x00\x00\x05block");
        let mut reader = &buf[..];
        assert_eq!(
            read_response(&mut reader).await.ok(),
            Some(Response::Block(b"block".to_vec()))
        );
        assert_eq!(
            read_response(&mut reader).await.ok(),
            Some(Response::NotFound(String::new()))
        );
        assert_eq!(
            read_response(&mut reader).await.ok(),
            Some(Response::Refused("busy".into()))
        );
        assert!(matches!(
            read_response(&mut reader).await,
            Err(ResponseError::Io(_))
        ));
    }

    #[tokio::test]
    async fn unknown_status_decodes_to_unknown_keeping_the_message() {
        // What a newer seeder might send: status 7 with a message, then a normal answer.
        let mut buf = vec![7u8, 0, 0, 0, 4];
        buf.extend_from_slice(b"slow");
        write_response(&mut buf, STATUS_OK, b"next").await.unwrap();
        let mut reader = &buf[..];
        assert_eq!(
            read_response(&mut reader).await.ok(),
            Some(Response::Unknown {
                status: 7,
                message: "slow".into()
            })
        );
        // The stream stays in step: the next answer is read as usual.
        assert_eq!(
            read_response(&mut reader).await.ok(),
            Some(Response::Block(b"next".to_vec()))
        );
    }

    #[tokio::test]
    async fn malformed_responses() {
        let too_big = (MAX_BLOCK_SIZE as u32 + 1).to_be_bytes();
        let mut oversized = vec![STATUS_OK];
        oversized.extend_from_slice(&too_big);
        let mut long_message = vec![STATUS_NOT_FOUND];
        long_message.extend_from_slice(&(MAX_MESSAGE_LEN as u32 + 1).to_be_bytes());
        let mut long_unknown = vec![7u8];
        long_unknown.extend_from_slice(&(MAX_MESSAGE_LEN as u32 + 1).to_be_bytes());
        for bytes in [&oversized[..], &long_message, &long_unknown] {
            let mut reader = bytes;
            assert!(
                matches!(
                    read_response(&mut reader).await,
                    Err(ResponseError::Protocol(_))
                ),
                "{bytes:?}"
            );
        }
        let mut truncated: &[u8] = &[0, 0, 0, 0, 9, 1, 2];
        assert!(matches!(
            read_response(&mut truncated).await,
            Err(ResponseError::Io(_))
        ));
    }
}
