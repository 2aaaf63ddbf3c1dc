//! Resource caps against hostile or runaway peers ([`LimitsConfig`]): connections in total
//! and per peer, pending dials both ways, streams per connection, process memory.
//!
//! Where each cap is enforced:
//! - established and pending connections: libp2p's `connection_limits` behaviour, the first
//!   field of [`super::Behaviour`], so a refused connection costs no other behaviour
//!   anything. Persistent peers (`--peer`, pins) bypass it: the event loop keeps the bypass
//!   list in step with the address book (`event_loop/limits.rs`);
//! - process memory: libp2p's `memory_connection_limits` refuses new connections while the
//!   process uses more than [`LimitsConfig::max_memory`];
//! - streams per connection: yamux (`max_streams_per_connection`; a peer that opens more
//!   streams at once has its connection closed) and the swarm
//!   (`max_negotiating_streams`: inbound streams still choosing a protocol; more are
//!   dropped);
//! - bytes buffered per stream: yamux grants a stream a 256 KiB receive window and enlarges
//!   it only for bytes the node actually read; every mcc protocol reads bounded frames (see
//!   each crate's `MAX_*` constants), so an unread stream holds at most 256 KiB.
//!
//! Tunnels (`--max-tunnels`), RPC calls, blob uploads and relay circuits have their own caps
//! in their crates.

use libp2p::connection_limits::ConnectionLimits;

/// The daemon's `--max-memory` default: 2 GiB.
pub const DAEMON_MAX_MEMORY: usize = 2 << 30;

/// yamux needs 256 KiB of its 1 GiB connection window per stream: more streams panic.
pub const MAX_STREAMS_PER_CONNECTION: usize = 4096;

/// Resource caps (see the module doc). `None` turns a cap off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Established connections, all peers together.
    pub max_connections: Option<u32>,
    /// Established connections to one peer.
    pub max_connections_per_peer: Option<u32>,
    /// Incoming connections still in their handshake.
    pub max_pending_incoming: Option<u32>,
    /// Outgoing dials in flight.
    pub max_pending_outgoing: Option<u32>,
    /// Streams open at once on one connection, both directions (yamux).
    pub max_streams_per_connection: usize,
    /// Inbound streams negotiating their protocol at once on one connection.
    pub max_negotiating_streams: usize,
    /// Refuse new connections while the process uses more memory than this, in bytes. Off
    /// by default in the library (a process may hold many nodes: the benches run 100); the
    /// daemon's default is [`DAEMON_MAX_MEMORY`].
    pub max_memory: Option<usize>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: Some(512),
            max_connections_per_peer: Some(8),
            max_pending_incoming: Some(64),
            max_pending_outgoing: Some(256),
            max_streams_per_connection: 512,
            max_negotiating_streams: 128,
            max_memory: None,
        }
    }
}

impl LimitsConfig {
    /// The caps of libp2p's `connection_limits` behaviour.
    pub(crate) fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits::default()
            .with_max_established(self.max_connections)
            .with_max_established_per_peer(self.max_connections_per_peer)
            .with_max_pending_incoming(self.max_pending_incoming)
            .with_max_pending_outgoing(self.max_pending_outgoing)
    }

    /// The yamux settings: streams per connection, within what yamux accepts.
    pub(crate) fn yamux(&self) -> libp2p::yamux::Config {
        let mut c = libp2p::yamux::Config::default();
        c.set_max_num_streams(
            self.max_streams_per_connection
                .clamp(1, MAX_STREAMS_PER_CONNECTION),
        );
        c
    }
}
