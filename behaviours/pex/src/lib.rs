//! Peer exchange for mcc: `/mcc/pex/1.0.0`.
//!
//! Each node tells its peers which other peers it is connected to, with the addresses they
//! listen on, so that a node that joined through one peer soon knows (and can dial) the
//! others. The node decides what is shared: it calls [`Behaviour::add_peer`] when a peer is
//! worth sharing (connected, admitted, addresses known) and [`Behaviour::remove_peer`] when
//! it is not any more. The behaviour then sends every connected remote the shared peers it
//! has not yet sent to that remote, right after the connection opens and again as new peers
//! are added, at most [`Config::max_peers_per_message`] per message and one message per
//! remote every [`Config::min_interval`], and at most [`Config::max_peers_per_remote`] peers
//! to one remote while it stays connected (a joining node needs a few peers to dial, not the
//! whole network; with this bound the exchange costs a node O(its connections), whatever the
//! size of the network). A remote is never told about itself.
//!
//! # Wire format
//!
//! One request-response exchange per message, each side writing one JSON document and
//! closing its half of the stream:
//!
//! - request: `{"peers": [{"id": "12D3KooW...", "addrs": ["/ip4/192.0.2.1/tcp/9376"]}]}`;
//! - response: `{}` (an acknowledgement; unknown fields are ignored).
//!
//! Reads are capped at [`Config::max_message_size`]. An entry whose id or address does not
//! parse is skipped, not fatal (a newer peer may send address kinds this one cannot read);
//! entries beyond [`Config::max_peers_per_message`] and addresses beyond
//! [`Config::max_addrs_per_peer`] are ignored.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! let config = mcc_pex::Config::new()
//!     .with_max_peers_per_message(16)
//!     .with_min_interval(Duration::from_secs(2));
//! let mut pex = mcc_pex::Behaviour::new(config);
//! let peer = libp2p::PeerId::random();
//! pex.add_peer(peer, vec!["/ip4/192.0.2.1/tcp/9376".parse().unwrap()]);
//! assert_eq!(pex.shared_peers(), 1);
//! ```

mod behaviour;
pub mod codec;
mod config;

pub use behaviour::{Behaviour, Event};
pub use codec::{CodecError, PeerRecord};
pub use config::{
    Config, DEFAULT_MAX_ADDRS_PER_PEER, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_PEERS_PER_MESSAGE,
    DEFAULT_MAX_PEERS_PER_REMOTE, DEFAULT_MIN_INTERVAL, MAX_SHARED,
};
pub use libp2p::request_response::OutboundFailure;

/// The protocol name.
pub const PROTOCOL_NAME: libp2p::StreamProtocol = libp2p::StreamProtocol::new("/mcc/pex/1.0.0");
