//! Bitswap for mcc: the block exchange of IPFS (`/ipfs/bitswap/1.2.0`, also 1.1.0 and
//! 1.0.0), so that IPFS peers (Helia, kubo) fetch blocks from an mcc node and an mcc node
//! fetches theirs.
//!
//! # Wire format
//!
//! Each message is a varint length (at most [`codec::MAX_MESSAGE_SIZE`], 4 MiB) followed by
//! a protobuf `Message` ([`codec::Message`]):
//!
//! ```text
//! Message       { 1 wantlist: Wantlist, 2 blocks: [bytes] (1.0.0), 3 payload: [Block],
//!                 4 blockPresences: [BlockPresence], 5 pendingBytes: int32 }
//! Wantlist      { 1 entries: [Entry], 2 full: bool }
//! Entry         { 1 block: CID bytes, 2 priority: int32, 3 cancel: bool,
//!                 4 wantType: 0 block | 1 have, 5 sendDontHave: bool }
//! Block         { 1 prefix: varints version, codec, hash code, digest length
//!                 (raw leaf 01 55 12 20, dag-pb 01 70 12 20, CIDv0 00 70 12 20), 2 data }
//! BlockPresence { 1 cid: CID bytes, 2 type: 0 have | 1 dont-have }
//! ```
//!
//! A stream carries any number of messages and is read until its end; answers go on a stream
//! the answering side opens itself. This crate keeps one outbound stream per connection for
//! everything it sends (wants and answers) and always sets the wantlist field (old kubo needs
//! it). Answers queued together go out in one message of at most 4 MiB (js peers such as
//! Helia pay for every message they read), and small parts are written together with the
//! block bytes after them, so that no yamux data frame carries only a few bytes (the
//! receiver answers each frame with a window update).
//!
//! # Server
//!
//! With a [`BlockSource`] in the [`Config`], each connection answers its peer's wants in
//! order: want-have with have or dont-have, want-block with the block or dont-have (when the
//! peer asked for dont-haves). Blocks are looked up by multihash, so a CIDv0 want finds a
//! block stored under its CIDv1. At most [`Config::max_inbound_wants`] wants wait per
//! connection; the lookup runs on tokio's blocking pool only once the connection's send queue
//! has room, so a block goes from the store to the wire without waiting in memory.
//!
//! # Client
//!
//! [`Handle::want`] asks one peer for a block or for whether it has it, and waits for the
//! answer (at most [`Config::want_timeout`]); [`Handle::who_has`] asks several peers at once.
//! A received block is matched to wants by the multihash of its bytes, so only blocks whose
//! bytes hash to a wanted CID are handed out. A block that comes late (its want timed out, or
//! it was answered already) is dropped quietly; a peer that sends a block that was never
//! wanted from it (among its last 4096 wants) is reported ([`Event::UnwantedBlock`]) and its
//! outstanding wants fail with [`WantError::WrongBlock`]. At most
//! [`Config::max_outbound_wants`] wants are outstanding with one peer. Wants queued together
//! go out in one message: Helia answers every message with every block still wanted, so a
//! caller that sends wants while blocks are on their way gets blocks twice (the blob fetch
//! asks in batches).
//!
//! # Example
//!
//! ```no_run
//! use libp2p::PeerId;
//! use mcc_bitswap::{Answer, Behaviour, Config, WantType};
//!
//! # async fn example(peer: PeerId, cid: cid::Cid) {
//! let behaviour = Behaviour::new(Config::new());
//! let handle = behaviour.handle();
//! // ... put `behaviour` into a swarm and connect to `peer` ...
//! match handle.want(peer, cid, WantType::Block).await {
//!     Ok(Answer::Block(data)) => println!("{} bytes", data.len()),
//!     Ok(other) => println!("{other:?}"),
//!     Err(e) => println!("{e}"),
//! }
//! # }
//! ```

mod behaviour;
pub mod codec;
mod config;
mod error;
mod handler;
mod server;
mod shared;

use libp2p::StreamProtocol;

pub use cid::{self, Cid};
/// The multihash of a [`Cid`].
pub type Multihash = cid::multihash::Multihash<64>;

pub use behaviour::Behaviour;
pub use codec::WantType;
pub use config::{
    Authorizer, BlockSource, Config, DEFAULT_MAX_INBOUND_WANTS, DEFAULT_MAX_OUTBOUND_WANTS,
    DEFAULT_SEND_QUEUE, DEFAULT_WANT_TIMEOUT,
};
pub use error::{StreamError, WantError};
pub use shared::{Answer, Event, Handle};

/// Bitswap 1.2.0 (want-have, dont-have): what Helia speaks.
pub const PROTOCOL_NAME: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.2.0");
/// Bitswap 1.1.0 (blocks with CID prefixes).
pub const PROTOCOL_1_1_0: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.1.0");
/// Bitswap 1.0.0 (bare blocks, CIDv0).
pub const PROTOCOL_1_0_0: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.0.0");
/// Every version spoken, newest first.
pub const PROTOCOLS: [StreamProtocol; 3] = [PROTOCOL_NAME, PROTOCOL_1_1_0, PROTOCOL_1_0_0];
