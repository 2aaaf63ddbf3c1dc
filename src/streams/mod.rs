//! User streams: socket-style byte streams between nodes, by name, for embedders and shells
//! (`mcc stream listen|connect`, `/api/v1/streams/...`).
//!
//! [`Streams`] is the handle (over the node's [`Network`], as `node.streams()`), with its
//! [`Error`]; [`Listener`] yields the incoming streams on one name; [`Stream`] is one stream,
//! tokio `AsyncRead + AsyncWrite`.
//!
//! Each name is its own libp2p protocol, `/mcc/stream/1.0.0/<name>` ([`protocol`]), opened on
//! the node's shared `mcc_streams::Control`: no wire format of its own, the bytes are the
//! application's. A stream runs on whatever connection the node has to the peer (direct,
//! relayed, hole-punched) and, under `--trust-ca`, only between admitted peers. Permissions
//! (under `--trust-ca`; an open network allows everything): listening needs this node's
//! `services:provide`, and an incoming stream is accepted only from a peer holding
//! `services:consume`; opening needs this node's `services:consume`, and the stream is kept
//! only if the peer holds `services:provide` (the same rules as services and tunnels).
//!
//! ```no_run
//! # async fn demo(a: mcc::Node, b: mcc::Node) -> Result<(), Box<dyn std::error::Error>> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let mut incoming = b.listen_streams("chat")?;
//! let mut out = a.open_stream(b.peer_id(), "chat").await?;
//! out.write_all(b"ping").await?;
//! out.shutdown().await?; // half-close: b reads to the end and can still answer
//! if let Some((_from, mut stream)) = incoming.accept().await {
//!     let mut got = Vec::new();
//!     stream.read_to_end(&mut got).await?;
//!     stream.write_all(b"pong").await?;
//!     stream.shutdown().await?;
//! }
//! let mut answer = Vec::new();
//! out.read_to_end(&mut answer).await?;
//! # Ok(()) }
//! ```

mod error;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use libp2p::{PeerId, StreamProtocol};
use mcc_admission::{Gates, Permission};

pub use self::error::Error;
pub use self::stream::{Listener, Stream};
use crate::node::network::Network;

/// The protocol prefix; a stream named `chat` is `/mcc/stream/1.0.0/chat`.
pub const PROTOCOL_PREFIX: &str = "/mcc/stream/1.0.0/";
/// Longest stream name.
pub const MAX_NAME_LEN: usize = 64;
/// How long [`Streams::open`] waits for the peer (dial included) by default.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// Checks a stream name: 1 to [`MAX_NAME_LEN`] characters of `A-Z a-z 0-9 . _ -`.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(name.to_string()))
    }
}

/// The libp2p protocol of the stream `name`.
pub fn protocol(name: &str) -> Result<StreamProtocol, Error> {
    validate_name(name)?;
    StreamProtocol::try_from_owned(format!("{PROTOCOL_PREFIX}{name}"))
        .map_err(|_| Error::InvalidName(name.to_string()))
}

/// The user streams of a node: a cloneable handle over the node's [`Network`].
#[derive(Clone)]
pub struct Streams {
    net: Network,
    gates: Gates,
    open_timeout: Duration,
}

impl Streams {
    /// The streams of a node on `net`; `gates` says which peers hold which permissions.
    pub(crate) fn new(net: Network, gates: Gates) -> Self {
        Self {
            net,
            gates,
            open_timeout: DEFAULT_OPEN_TIMEOUT,
        }
    }

    /// The same handle with another bound on [`Streams::open`] (dial included).
    pub fn with_open_timeout(mut self, timeout: Duration) -> Self {
        self.open_timeout = timeout;
        self
    }

    /// Listens on `name`: the returned [`Listener`] yields every incoming stream until it is
    /// dropped. One listener per name per node ([`Error::AlreadyListening`]).
    pub fn listen(&self, name: &str) -> Result<Listener, Error> {
        let protocol = protocol(name)?;
        self.net.may(Permission::ServicesProvide)?;
        let incoming = self
            .net
            .control()
            .accept(protocol)
            .map_err(|_| Error::AlreadyListening(name.to_string()))?;
        Ok(Listener::new(
            incoming,
            self.gates.clone(),
            name,
            self.net.clone(),
        ))
    }

    /// Opens the stream `name` to `peer`, dialing it through its known addresses if it is not
    /// connected, within the open timeout ([`DEFAULT_OPEN_TIMEOUT`]).
    pub async fn open(&self, peer: PeerId, name: &str) -> Result<Stream, Error> {
        let protocol = protocol(name)?;
        if peer == self.net.peer_id() {
            return Err(Error::SelfStream);
        }
        self.net.may(Permission::ServicesConsume)?;
        let mut control = self.net.control();
        let opened =
            tokio::time::timeout(self.open_timeout, control.open_stream(peer, protocol)).await;
        let stream = match opened {
            Ok(Ok(stream)) => stream,
            Ok(Err(mcc_streams::OpenError::UnsupportedProtocol(_))) => {
                return Err(Error::NotListening {
                    peer,
                    name: name.to_string(),
                });
            }
            Ok(Err(source)) => {
                return Err(Error::Open {
                    peer,
                    name: name.to_string(),
                    source: Box::new(source),
                });
            }
            Err(_) => {
                return Err(Error::Timeout {
                    peer,
                    name: name.to_string(),
                    secs: self.open_timeout.as_secs(),
                });
            }
        };
        // The stream only opens once the peer is admitted, so its certificate is known.
        if !self.gates.allows(&peer, Permission::ServicesProvide) {
            return Err(Error::PeerForbidden(peer));
        }
        Ok(Stream::new(stream, peer, Arc::from(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["chat", "a", "A.b_c-9", &"x".repeat(MAX_NAME_LEN)] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a/b",
            "a b",
            "é",
            "chat\n",
            &"x".repeat(MAX_NAME_LEN + 1),
        ] {
            assert!(
                matches!(validate_name(bad), Err(Error::InvalidName(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_protocol_carries_the_name() {
        assert_eq!(
            protocol("chat").map(|p| p.to_string()).ok().as_deref(),
            Some("/mcc/stream/1.0.0/chat")
        );
    }

    #[test]
    fn errors_map_to_statuses() {
        use axum::http::StatusCode;
        assert_eq!(
            Error::InvalidName("a b".into()).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            Error::AlreadyListening("chat".into()).status(),
            StatusCode::CONFLICT
        );
        let peer = PeerId::random();
        let timeout = Error::Timeout {
            peer,
            name: "chat".into(),
            secs: 1,
        };
        assert_eq!(timeout.status(), StatusCode::GATEWAY_TIMEOUT);
    }
}
