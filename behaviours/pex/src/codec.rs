//! Wire format of `/mcc/pex/1.0.0` (see the crate docs): encoding and decoding as plain
//! functions over bytes, and the request-response [`Codec`] that reads with a size cap.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use serde::{Deserialize, Serialize};

/// A peer as shared: its id and the addresses to dial it at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRecord {
    pub peer_id: PeerId,
    pub addrs: Vec<Multiaddr>,
}

/// Why a message could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The message is longer than allowed.
    #[error("message exceeds the maximum of {max} bytes")]
    TooLarge { max: usize },
    /// The message is not a JSON object of the expected shape.
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<CodecError> for io::Error {
    fn from(e: CodecError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

#[derive(Serialize, Deserialize)]
struct WireMessage {
    #[serde(default)]
    peers: Vec<WirePeer>,
}

#[derive(Serialize, Deserialize)]
struct WirePeer {
    id: String,
    #[serde(default)]
    addrs: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct WireAck {}

/// Encodes a message with at most `max_addrs` addresses per peer.
pub fn encode(peers: &[PeerRecord], max_addrs: usize) -> Vec<u8> {
    let msg = WireMessage {
        peers: peers
            .iter()
            .map(|p| WirePeer {
                id: p.peer_id.to_base58(),
                addrs: p
                    .addrs
                    .iter()
                    .take(max_addrs)
                    .map(|a| a.to_string())
                    .collect(),
            })
            .collect(),
    };
    // Serializing strings into a Vec cannot fail.
    serde_json::to_vec(&msg).unwrap_or_default()
}

/// Decodes a message: at most `max_peers` peers with at most `max_addrs` addresses each;
/// entries with an unreadable id, and unreadable addresses, are skipped.
pub fn decode(
    bytes: &[u8],
    max_peers: usize,
    max_addrs: usize,
) -> Result<Vec<PeerRecord>, CodecError> {
    expect_object(bytes)?;
    let msg: WireMessage = serde_json::from_slice(bytes)?;
    Ok(msg
        .peers
        .into_iter()
        .filter_map(|p| {
            let peer_id = p.id.parse::<PeerId>().ok()?;
            let addrs = p
                .addrs
                .iter()
                .filter_map(|a| a.parse::<Multiaddr>().ok())
                .take(max_addrs)
                .collect();
            Some(PeerRecord { peer_id, addrs })
        })
        .take(max_peers)
        .collect())
}

/// Decodes an acknowledgement (any JSON object).
pub fn decode_ack(bytes: &[u8]) -> Result<(), CodecError> {
    expect_object(bytes)?;
    serde_json::from_slice::<WireAck>(bytes)?;
    Ok(())
}

fn expect_object(bytes: &[u8]) -> Result<(), CodecError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        let e = <serde_json::Error as serde::de::Error>::custom("expected a JSON object");
        return Err(CodecError::Json(e));
    }
    Ok(())
}

/// Reads `io` to its end, failing as soon as more than `max` bytes arrive.
pub async fn read_capped<T: AsyncRead + Unpin>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Ok(out);
        }
        if out.len() + n > max {
            return Err(CodecError::TooLarge { max }.into());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// The request-response codec: a request is a list of peers, the response an
/// acknowledgement.
#[derive(Debug, Clone)]
pub struct Codec {
    max_message_size: usize,
    max_peers: usize,
    max_addrs: usize,
}

impl Codec {
    pub fn new(config: &crate::Config) -> Self {
        Self {
            max_message_size: config.max_message_size(),
            max_peers: config.max_peers_per_message(),
            max_addrs: config.max_addrs_per_peer(),
        }
    }
}

impl libp2p::request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Vec<PeerRecord>;
    type Response = ();

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Self::Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_capped(io, self.max_message_size).await?;
        Ok(decode(&bytes, self.max_peers, self.max_addrs)?)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<()>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_capped(io, self.max_message_size).await?;
        Ok(decode_ack(&bytes)?)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Self::Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&encode(&req, self.max_addrs)).await?;
        io.close().await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, _: ()) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(b"{}").await?;
        io.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(addrs: &[&str]) -> PeerRecord {
        PeerRecord {
            peer_id: PeerId::random(),
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn a_message_round_trips() {
        let peers = vec![
            record(&["/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/udp/1/quic-v1"]),
            record(&[]),
        ];
        assert_eq!(decode(&encode(&peers, 8), 32, 8).unwrap(), peers);
    }

    #[test]
    fn counts_are_capped_on_both_sides() {
        let peers: Vec<PeerRecord> = (0..40)
            .map(|i| record(&[&format!("/ip4/127.0.0.1/tcp/{i}"), "/ip4/127.0.0.2/tcp/1"]))
            .collect();
        let bytes = encode(&peers, 1);
        let got = decode(&bytes, 32, 8).unwrap();
        assert_eq!(got.len(), 32);
        assert!(got.iter().all(|p| p.addrs.len() == 1));
        assert!(decode(&encode(&peers, 8), 32, 1).unwrap()[0].addrs.len() == 1);
    }

    #[test]
    fn unreadable_entries_are_skipped_not_fatal() {
        let good = PeerId::random();
        let text = format!(
            r#"{{"peers":[{{"id":"nope","addrs":[]}},{{"id":"{good}","addrs":["/future/1","/ip4/127.0.0.1/tcp/5"]}}],"new":1}}"#
        );
        let got = decode(text.as_bytes(), 32, 8).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].peer_id, good);
        assert_eq!(got[0].addrs, vec!["/ip4/127.0.0.1/tcp/5".parse().unwrap()]);
    }

    #[test]
    fn malformed_and_truncated_messages_are_errors() {
        assert!(decode(b"", 32, 8).is_err());
        assert!(decode(b"[1,2]", 32, 8).is_err());
        assert!(decode(br#"{"peers":[{"id":"x""#, 32, 8).is_err());
        assert!(decode(br#"{"peers":5}"#, 32, 8).is_err());
        assert!(decode_ack(b"{}").is_ok());
        assert!(decode_ack(br#"{"later":true}"#).is_ok());
        assert!(decode_ack(b"null").is_err());
    }

    #[test]
    fn oversized_input_is_refused_before_buffering_it_all() {
        let big = vec![b' '; 10_000];
        let mut reader = futures::io::Cursor::new(big);
        let e = futures::executor::block_on(read_capped(&mut reader, 4096)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let mut reader = futures::io::Cursor::new(b"{}".to_vec());
        assert_eq!(
            futures::executor::block_on(read_capped(&mut reader, 4096)).unwrap(),
            b"{}"
        );
    }
}
