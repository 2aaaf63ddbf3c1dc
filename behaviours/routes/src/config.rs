//! [`Config`]: limits, queues, leases and the authorizer.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;

/// Largest message payload by default (256 KiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 256 * 1024;
/// Frames queued per peer connection before a publisher waits, by default.
pub const DEFAULT_PEER_QUEUE: usize = 1024;
/// Messages queued per local subscription before they are dropped (and counted), by default.
pub const DEFAULT_SUBSCRIBER_QUEUE: usize = 1024;
/// How long an announced interest lasts unless refreshed, by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// How long a publisher waits for room in one peer's queue before dropping, by default.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest lease a peer may ask for: longer ones are cut to this.
pub const MAX_LEASE: Duration = Duration::from_secs(3600);

/// What a peer wants to do on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send us messages (we receive them).
    Publish,
    /// Register an interest with us (we send it messages).
    Subscribe,
}

/// Decides whether `peer` may do `action` on `route`. Called for every interest and every
/// inbound message, so it must be cheap.
pub type Authorizer = Arc<dyn Fn(&PeerId, Action, &str) -> bool + Send + Sync>;

/// Settings of [`crate::Behaviour`].
#[derive(Clone)]
pub struct Config {
    max_message_size: usize,
    peer_queue: usize,
    subscriber_queue: usize,
    lease: Duration,
    send_timeout: Duration,
    authorizer: Option<Authorizer>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("max_message_size", &self.max_message_size)
            .field("peer_queue", &self.peer_queue)
            .field("subscriber_queue", &self.subscriber_queue)
            .field("lease", &self.lease)
            .field("send_timeout", &self.send_timeout)
            .field("authorizer", &self.authorizer.is_some())
            .finish()
    }
}

impl Config {
    /// The defaults: messages up to [`DEFAULT_MAX_MESSAGE_SIZE`], [`DEFAULT_PEER_QUEUE`]
    /// frames per peer, [`DEFAULT_SUBSCRIBER_QUEUE`] messages per subscription, leases of
    /// [`DEFAULT_LEASE`] (refreshed every third of it), [`DEFAULT_SEND_TIMEOUT`], and no
    /// authorizer (every peer may publish and subscribe).
    pub fn new() -> Self {
        Self {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            peer_queue: DEFAULT_PEER_QUEUE,
            subscriber_queue: DEFAULT_SUBSCRIBER_QUEUE,
            lease: DEFAULT_LEASE,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            authorizer: None,
        }
    }

    /// Largest payload sent or accepted.
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Frames queued per peer connection (at least 1).
    pub fn with_peer_queue(mut self, frames: usize) -> Self {
        self.peer_queue = frames.max(1);
        self
    }

    /// Messages queued per local subscription (at least 1).
    pub fn with_subscriber_queue(mut self, messages: usize) -> Self {
        self.subscriber_queue = messages.max(1);
        self
    }

    /// Lease of our interests, at least one second and at most [`MAX_LEASE`].
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.clamp(Duration::from_secs(1), MAX_LEASE);
        self
    }

    /// How long a publisher waits for room in a peer's queue before dropping for that peer.
    pub fn with_send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// Who may publish to us and subscribe with us; `None` allows everyone.
    pub fn with_authorizer(mut self, authorizer: Option<Authorizer>) -> Self {
        self.authorizer = authorizer;
        self
    }

    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    pub fn peer_queue(&self) -> usize {
        self.peer_queue
    }

    pub fn subscriber_queue(&self) -> usize {
        self.subscriber_queue
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    pub fn send_timeout(&self) -> Duration {
        self.send_timeout
    }

    pub fn authorizer(&self) -> Option<&Authorizer> {
        self.authorizer.as_ref()
    }

    /// Whether `peer` may do `action` on `route`.
    pub(crate) fn allows(&self, peer: &PeerId, action: Action, route: &str) -> bool {
        self.authorizer
            .as_ref()
            .is_none_or(|authorize| authorize(peer, action, route))
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}
