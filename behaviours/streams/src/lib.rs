//! Raw libp2p streams for mcc: the transport under tunnels (`mcc-forward`), blob transfers
//! (`mcc-blobs`) and user streams, with bytes that never pass through the swarm's event loop.
//!
//! A [`Behaviour`] in the swarm gives out [`Control`]s. [`Control::accept`] registers a
//! protocol and returns its [`IncomingStreams`]; [`Control::open_stream`] opens a stream to a
//! peer and answers with the negotiated [`libp2p::Stream`] or a typed [`OpenError`]
//! ([`OpenError::UnsupportedProtocol`], [`OpenError::NotConnected`], timeout, io).
//! [`Control::stats`] reports per protocol how many streams were opened, negotiated inbound,
//! accepted, are queued now, and were refused.
//!
//! # Backpressure instead of drops
//!
//! An inbound stream, once negotiated, goes into its protocol's bounded queue
//! ([`Config::with_max_queued`]). When the acceptor is slow and the queue is full, the
//! connection's handler *holds* the stream (up to [`Config::with_max_held_per_connection`]
//! per connection) and moves it into the queue as soon as there is room, woken by the queue
//! itself. Only a stream beyond both bounds is dropped (the opener sees it reset), and counted
//! as refused. Openers therefore need no retry for streams lost to a busy acceptor.
//!
//! # Opening
//!
//! An open request goes straight from the [`Control`] to the handler of the peer's newest
//! connection over a bounded channel (not through the swarm's `poll`); each connection
//! negotiates up to [`Config::with_max_opening_per_connection`] streams at once. Without a
//! connection the behaviour asks the swarm to dial the peer and the request waits for the
//! connection, or fails with [`OpenError::NotConnected`] when the dial fails.
//!
//! No wire format of its own: each stream is negotiated with multistream-select and then
//! carries the protocol's bytes.
//!
//! # Optimistic negotiation
//!
//! A handler remembers the protocols the peer listed on its connection (identify reports
//! them to every handler). A stream on such a protocol is proposed alone; on any other it is
//! proposed with a sentinel protocol behind it (see `upgrade.rs`). With the swarm set to
//! multistream-select `V1Lazy` (`libp2p::swarm::Config::with_substream_upgrade_protocol_override`)
//! the first kind is optimistic: `open_stream` returns at once and the proposal goes out with
//! the stream's first bytes, saving a round trip when the opener writes first (as tunnels and
//! blob requests do); the second kind is still confirmed first, so a peer without the protocol
//! still ends in [`OpenError::UnsupportedProtocol`]. Under plain `V1` both are confirmed.
//! Counted in [`ProtocolStats::optimistic`]. The one case an optimistic stream fails late: the
//! peer stopped accepting the protocol after it listed it; the stream then fails on its first
//! read or write.
//!
//! # Example
//!
//! ```
//! use futures::StreamExt;
//! use libp2p::StreamProtocol;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let behaviour = mcc_streams::Behaviour::new(mcc_streams::Config::new().with_max_queued(8));
//! let mut control = behaviour.control();
//! let mut incoming = control.accept(StreamProtocol::new("/echo/1.0.0")).unwrap();
//! // (the behaviour goes into a swarm; a peer opens streams with
//! // `control.open_stream(peer, StreamProtocol::new("/echo/1.0.0")).await`)
//! assert!(control.accept(StreamProtocol::new("/echo/1.0.0")).is_err());
//! drop(incoming);
//! assert!(control.accept(StreamProtocol::new("/echo/1.0.0")).is_ok());
//! # }
//! ```

mod behaviour;
mod config;
mod control;
mod error;
mod handler;
mod shared;
mod stats;
mod upgrade;

pub use behaviour::Behaviour;
pub use config::{
    Config, DEFAULT_MAX_HELD_PER_CONNECTION, DEFAULT_MAX_OPENING_PER_CONNECTION,
    DEFAULT_MAX_QUEUED, DEFAULT_NEGOTIATION_TIMEOUT, MAX_COUNTED_PROTOCOLS,
};
pub use control::{Control, IncomingStreams};
pub use error::{AlreadyRegistered, OpenError};
pub use handler::Handler;
pub use stats::ProtocolStats;
