//! The handshake: one request from the opener, one answer from the provider (see the crate
//! documentation for the layout).

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::{MAX_SERVICE_NAME_LEN, OpenError, Refusal};

/// The version byte that starts every request.
pub const VERSION: u8 = 1;

/// The longest message of an answer, in bytes.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// Status byte of an ok answer.
const STATUS_OK: u8 = 0;

/// Checks a service name: 1..=[`MAX_SERVICE_NAME_LEN`] bytes of `[a-z0-9._-]`, starting with a
/// lowercase letter or a digit.
pub fn validate_name(name: &str) -> Result<(), OpenError> {
    let invalid = |why: String| Err(OpenError::InvalidName(why));
    if name.is_empty() {
        return invalid("the name is empty".into());
    }
    if name.len() > MAX_SERVICE_NAME_LEN {
        return invalid(format!(
            "the name is {} bytes long, the limit is {MAX_SERVICE_NAME_LEN}",
            name.len()
        ));
    }
    for (i, c) in name.char_indices() {
        let allowed = c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
        if !allowed {
            return invalid(format!(
                "{c:?} at byte {i} is not allowed (use a-z, 0-9, '.', '_', '-')"
            ));
        }
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return invalid("the name must start with a letter or a digit".into());
    }
    Ok(())
}

/// Encodes the request for a (valid) service name.
pub(crate) fn encode_request(name: &str) -> Vec<u8> {
    debug_assert!(name.len() <= MAX_SERVICE_NAME_LEN);
    let mut buf = Vec::with_capacity(2 + name.len());
    buf.push(VERSION);
    buf.push(name.len() as u8);
    buf.extend_from_slice(name.as_bytes());
    buf
}

/// Why a request could not be read.
#[derive(Debug)]
pub(crate) enum RequestError {
    /// The stream failed or ended early: there is nobody to answer.
    Io(io::Error),
    /// The request is malformed: answer [`Refusal::BadRequest`] with this message.
    Bad(String),
}

/// Reads one request and returns the requested service name. Reads no byte past the request.
pub(crate) async fn read_request<R>(reader: &mut R) -> Result<String, RequestError>
where
    R: AsyncRead + Unpin,
{
    let mut header = [0u8; 2];
    reader
        .read_exact(&mut header)
        .await
        .map_err(RequestError::Io)?;
    let [version, len] = header;
    if version != VERSION {
        return Err(RequestError::Bad(format!(
            "unsupported version {version}, expected {VERSION}"
        )));
    }
    let len = usize::from(len);
    if len == 0 || len > MAX_SERVICE_NAME_LEN {
        return Err(RequestError::Bad(format!(
            "service name length {len} is outside 1..={MAX_SERVICE_NAME_LEN}"
        )));
    }
    let mut name = vec![0u8; len];
    reader
        .read_exact(&mut name)
        .await
        .map_err(RequestError::Io)?;
    let name = String::from_utf8(name)
        .map_err(|_| RequestError::Bad("service name is not valid UTF-8".into()))?;
    validate_name(&name).map_err(|e| RequestError::Bad(e.to_string()))?;
    Ok(name)
}

/// Writes one answer (`None` = ok) and flushes. Messages longer than [`MAX_MESSAGE_LEN`] are
/// cut at a character boundary.
pub(crate) async fn write_answer<W>(
    writer: &mut W,
    refusal: Option<Refusal>,
    message: &str,
) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let message = truncate(message, MAX_MESSAGE_LEN);
    let status = refusal.map_or(STATUS_OK, Refusal::code);
    let len = u16::try_from(message.len()).unwrap_or(0);
    let mut buf = Vec::with_capacity(3 + message.len());
    buf.push(status);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&message.as_bytes()[..usize::from(len)]);
    writer.write_all(&buf).await?;
    writer.flush().await
}

/// Reads the rest of an answer whose status byte was already read: `Ok(())` when the tunnel is
/// open, the refusal otherwise. Reads no byte past the answer.
pub(crate) async fn read_answer_after<R>(status: u8, reader: &mut R) -> Result<(), OpenError>
where
    R: AsyncRead + Unpin,
{
    let mut len = [0u8; 2];
    reader.read_exact(&mut len).await.map_err(io_failure)?;
    let len = usize::from(u16::from_be_bytes(len));
    if len > MAX_MESSAGE_LEN {
        return Err(OpenError::Handshake(format!(
            "answer message of {len} bytes exceeds the limit of {MAX_MESSAGE_LEN}"
        )));
    }
    let mut message = vec![0u8; len];
    reader.read_exact(&mut message).await.map_err(io_failure)?;
    if status == STATUS_OK {
        return Ok(());
    }
    let message = String::from_utf8_lossy(&message).into_owned();
    match Refusal::from_code(status) {
        Some(code) => Err(OpenError::Refused { code, message }),
        // 0 was answered above.
        None => Ok(()),
    }
}

fn io_failure(e: io::Error) -> OpenError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        OpenError::Handshake("the provider closed the stream before answering".into())
    } else {
        OpenError::Handshake(e.to_string())
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_answer(reader: &mut &[u8]) -> Result<(), OpenError> {
        let mut status = [0u8; 1];
        reader.read_exact(&mut status).await.map_err(io_failure)?;
        read_answer_after(status[0], reader).await
    }

    #[test]
    fn names() {
        for ok in [
            "echo",
            "a",
            "0",
            "web-1.local_x",
            &"a".repeat(MAX_SERVICE_NAME_LEN),
        ] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Echo",
            "-echo",
            ".echo",
            "_echo",
            "e cho",
            "e/cho",
            "écho",
            "echo\n",
            &"a".repeat(MAX_SERVICE_NAME_LEN + 1),
        ] {
            assert!(
                matches!(validate_name(bad), Err(OpenError::InvalidName(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abc", 2), "ab");
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate("", 0), "");
    }

    #[tokio::test]
    async fn request_round_trip() {
        let bytes = encode_request("echo");
        assert_eq!(bytes, b"\x01\x04echo");
        let mut reader = &bytes[..];
        assert_eq!(read_request(&mut reader).await.ok(), Some("echo".into()));
    }

    #[tokio::test]
    async fn bad_requests() {
        let cases: [&[u8]; 6] = [
            b"\x02\x04echo",
            b"\x01\x00",
            b"\x01\x81",
            b"\x01\x02\xff\xfe",
            b"\x01\x04ECHO",
            b"\x01\x04-ech",
        ];
        for bytes in cases {
            let mut reader = bytes;
            assert!(
                matches!(read_request(&mut reader).await, Err(RequestError::Bad(_))),
                "{bytes:?}"
            );
        }
        let mut truncated: &[u8] = b"\x01\x04ec";
        assert!(matches!(
            read_request(&mut truncated).await,
            Err(RequestError::Io(_))
        ));
    }

    #[tokio::test]
    async fn answer_round_trip() {
        let mut buf = Vec::new();
        write_answer(&mut buf, None, "").await.ok();
        assert_eq!(buf, [0, 0, 0]);
        assert!(read_answer(&mut &buf[..]).await.is_ok());

        let mut buf = Vec::new();
        write_answer(&mut buf, Some(Refusal::Busy), "too many")
            .await
            .ok();
        match read_answer(&mut &buf[..]).await {
            Err(OpenError::Refused { code, message }) => {
                assert_eq!(code, Refusal::Busy);
                assert_eq!(message, "too many");
            }
            other => panic!("unexpected {other:?}"),
        }

        let mut buf = Vec::new();
        let long = "é".repeat(MAX_MESSAGE_LEN);
        write_answer(&mut buf, Some(Refusal::Forbidden), &long)
            .await
            .ok();
        assert_eq!(buf.len(), 3 + MAX_MESSAGE_LEN);
    }

    #[tokio::test]
    async fn unknown_status_decodes_to_unknown_refusal_keeping_the_message() {
        // What a newer provider might send: status 42 with a message.
        let mut answer = vec![42u8, 0, 10];
        answer.extend_from_slice(b"over quota");
        match read_answer(&mut &answer[..]).await {
            Err(OpenError::Refused { code, message }) => {
                assert_eq!(code.code(), 42);
                assert!(matches!(code, Refusal::Unknown(_)));
                assert_eq!(message, "over quota");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn malformed_answers() {
        let too_long = [0u8, 0x04, 0x01];
        assert!(matches!(
            read_answer(&mut &too_long[..]).await,
            Err(OpenError::Handshake(_))
        ));
        let short = [0u8, 0];
        assert!(matches!(
            read_answer(&mut &short[..]).await,
            Err(OpenError::Handshake(_))
        ));
    }
}
