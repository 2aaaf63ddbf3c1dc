//! [`Config`]: message limits and the rate limit of the peer exchange.

use std::time::Duration;

/// Most peers in one message.
pub const DEFAULT_MAX_PEERS_PER_MESSAGE: usize = 32;
/// Most addresses per peer in one message.
pub const DEFAULT_MAX_ADDRS_PER_PEER: usize = 8;
/// Largest message read, in bytes.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// Shortest time between two messages to the same remote.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Most peers the behaviour shares at once (the rest are not added).
pub const MAX_SHARED: usize = 1024;
/// Most peers one remote is told about while it stays connected.
pub const DEFAULT_MAX_PEERS_PER_REMOTE: usize = 64;

/// Settings of the peer exchange.
#[derive(Debug, Clone)]
pub struct Config {
    max_peers_per_message: usize,
    max_peers_per_remote: usize,
    max_addrs_per_peer: usize,
    max_message_size: usize,
    min_interval: Duration,
    request_timeout: Duration,
}

impl Config {
    /// The defaults: 32 peers per message ([`DEFAULT_MAX_PEERS_PER_MESSAGE`]), 8 addresses per
    /// peer ([`DEFAULT_MAX_ADDRS_PER_PEER`]), 64 KiB messages ([`DEFAULT_MAX_MESSAGE_SIZE`]),
    /// one message per remote per second ([`DEFAULT_MIN_INTERVAL`]), 64 peers per remote
    /// ([`DEFAULT_MAX_PEERS_PER_REMOTE`]), 10 s request timeout.
    pub fn new() -> Self {
        Self {
            max_peers_per_message: DEFAULT_MAX_PEERS_PER_MESSAGE,
            max_peers_per_remote: DEFAULT_MAX_PEERS_PER_REMOTE,
            max_addrs_per_peer: DEFAULT_MAX_ADDRS_PER_PEER,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            min_interval: DEFAULT_MIN_INTERVAL,
            request_timeout: Duration::from_secs(10),
        }
    }

    /// Most peers sent or read in one message (at least 1).
    pub fn with_max_peers_per_message(mut self, n: usize) -> Self {
        self.max_peers_per_message = n.max(1);
        self
    }

    /// Most peers a remote is told about while it stays connected (at least 1; at most
    /// [`MAX_SHARED`]). A joining node needs a few peers to dial, not the whole network: with
    /// this bound what a node sends is O(its connections), however large the network.
    pub fn with_max_peers_per_remote(mut self, n: usize) -> Self {
        self.max_peers_per_remote = n.clamp(1, MAX_SHARED);
        self
    }

    /// Most addresses sent or read per peer.
    pub fn with_max_addrs_per_peer(mut self, n: usize) -> Self {
        self.max_addrs_per_peer = n;
        self
    }

    /// Largest message read, in bytes.
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Shortest time between two messages to the same remote.
    pub fn with_min_interval(mut self, d: Duration) -> Self {
        self.min_interval = d;
        self
    }

    /// How long a message may wait for its acknowledgement.
    pub fn with_request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    pub fn max_peers_per_message(&self) -> usize {
        self.max_peers_per_message
    }

    pub fn max_peers_per_remote(&self) -> usize {
        self.max_peers_per_remote
    }

    pub fn max_addrs_per_peer(&self) -> usize {
        self.max_addrs_per_peer
    }

    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    pub fn min_interval(&self) -> Duration {
        self.min_interval
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}
