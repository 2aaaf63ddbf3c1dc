//! Service forwarding for mcc on protocol [`PROTOCOL_NAME`] (`/mcc/forward/1.0.0`).
//!
//! A device runs a service on a local TCP port and registers it under a name. Another node
//! reaches that service by name through an (encrypted, multiplexed) libp2p stream, the way
//! `ssh -L` forwards a port. Streams are opened and accepted with [`mcc_streams`], so the
//! tunnelled bytes never pass through the swarm's event loop.
//!
//! * The opening side calls [`open`] and gets a [`Tunnel`] (a tokio `AsyncRead + AsyncWrite`),
//!   usually piped to an accepted local TCP connection with [`pipe`].
//! * The providing side runs [`serve`], which accepts inbound streams, asks a [`Resolver`] for
//!   the local address of the requested service (and whether the peer may use it), connects to
//!   it, answers, and then pipes bytes both ways, each tunnel in its own tokio task.
//!
//! # Wire format
//!
//! After protocol negotiation the opener sends one request:
//!
//! ```text
//! request = version:u8 (= 1) | name_len:u8 (1..=128) | name: name_len bytes
//! ```
//!
//! The name is UTF-8 and must pass [`validate_name`]: `[a-z0-9._-]`, starting with a letter or
//! digit. The provider answers exactly once:
//!
//! ```text
//! answer = status:u8 | message_len:u16 big-endian (<= 1024) | message: message_len bytes
//! ```
//!
//! `status` 0 means the tunnel is open; any other value is a [`Refusal`] code (see
//! [`Refusal::code`]), with a short human-readable UTF-8 message, after which the provider closes
//! the stream. After an ok answer both sides exchange raw bytes, with no framing of their own.
//! Closing the write side of the stream (a half-close) is propagated to the local TCP
//! connection as a write shutdown (EOF for the service), and vice versa, while the other
//! direction keeps flowing.
//!
//! A request with a bad version, a bad length or a name that is not valid UTF-8 or not a valid
//! service name is answered with [`Refusal::BadRequest`] and the stream is closed. The provider
//! reads the request under a timeout ([`ServerConfig::handshake_timeout`]); a peer that is too
//! slow or closes early gets no answer.
//!
//! # Limits
//!
//! A provider keeps at most [`ServerConfig::max_concurrent`] tunnels of all peers together and
//! at most [`ServerConfig::max_per_peer`] of any one peer, so that one consumer holding many
//! idle tunnels cannot lock the others out: a stream beyond either limit is answered
//! [`Refusal::Busy`], with a message saying which limit was hit. A tunnel through which nothing
//! passed for [`ServerConfig::idle_timeout`] is closed at both ends.
//!
//! # Example
//!
//! ```no_run
//! use std::{sync::Arc, time::Duration};
//! use mcc_forward::{Refusal, ServerConfig, Stats};
//! use libp2p::PeerId;
//!
//! # async fn example(behaviour: &mcc_streams::Behaviour, peer: PeerId) -> Result<(), Box<dyn std::error::Error>> {
//! // Provider: serve "web" from 127.0.0.1:8080 to everybody.
//! let resolver = |_peer: &PeerId, service: &str| match service {
//!     "web" => Ok("127.0.0.1:8080".to_string()),
//!     _ => Err(Refusal::UnknownService),
//! };
//! tokio::spawn(mcc_forward::serve(
//!     behaviour.control(),
//!     Arc::new(resolver),
//!     ServerConfig::default(),
//!     Stats::default(),
//! ));
//!
//! // Opener: forward one accepted local connection to `peer`'s "web".
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let (local, _) = listener.accept().await?;
//! let mut control = behaviour.control();
//! let tunnel = mcc_forward::open(&mut control, peer, "web", Duration::from_secs(10)).await?;
//! let (sent, received) = mcc_forward::pipe(local, tunnel).await?;
//! # let _ = (sent, received);
//! # Ok(())
//! # }
//! ```

mod client;
mod error;
mod pipe;
mod server;
mod wire;

pub use client::{Tunnel, open};
pub use error::{OpenError, Refusal, ServeError};
pub use pipe::{PIPE_BUFFER_SIZE, pipe, pipe_with_idle_timeout};
pub use server::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_PER_PEER, Resolver, ServerConfig,
    Stats, serve,
};
pub use wire::{MAX_MESSAGE_LEN, VERSION, validate_name};

/// The handshake decoders on any reader, for the fuzz targets in `fuzz/`. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use tokio::io::{AsyncRead, AsyncReadExt as _};

    /// Reads one opener request as a provider does: the service name, or why it is refused.
    pub async fn read_request<R: AsyncRead + Unpin>(reader: &mut R) -> Result<String, String> {
        crate::wire::read_request(reader)
            .await
            .map_err(|e| format!("{e:?}"))
    }

    /// Reads one provider answer (status byte included) as an opener does.
    pub async fn read_answer<R: AsyncRead + Unpin>(reader: &mut R) -> Result<(), crate::OpenError> {
        let status = reader
            .read_u8()
            .await
            .map_err(|e| crate::OpenError::Handshake(e.to_string()))?;
        crate::wire::read_answer_after(status, reader).await
    }
}

use libp2p::StreamProtocol;

/// The libp2p protocol of forwarding streams.
pub const PROTOCOL_NAME: StreamProtocol = StreamProtocol::new("/mcc/forward/1.0.0");

/// The longest service name, in bytes.
pub const MAX_SERVICE_NAME_LEN: usize = 128;
