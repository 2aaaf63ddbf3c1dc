//! [`Config`] and the [`BlockSource`] the server side answers from.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cid::multihash::Multihash;
use libp2p::PeerId;

/// Wants one peer connection may have queued with us (the server side) by default; entries
/// beyond are dropped (answered dont-have when asked for).
pub const DEFAULT_MAX_INBOUND_WANTS: usize = 1024;
/// Wants we may have outstanding with one peer by default (the client side); Helia answers
/// every want at once, so this bounds what one peer may push at us.
pub const DEFAULT_MAX_OUTBOUND_WANTS: usize = 32;
/// How long a want waits for its answer by default.
pub const DEFAULT_WANT_TIMEOUT: Duration = Duration::from_secs(30);
/// Messages queued per connection before senders wait, by default.
pub const DEFAULT_SEND_QUEUE: usize = 16;

/// Where the server side finds blocks: keyed by multihash, so that a CIDv0 want finds a block
/// stored under its CIDv1 (and the other way round).
///
/// Calls may block on disk I/O: the connection handler makes them on tokio's blocking pool
/// (`spawn_blocking`), never in the swarm's event loop or a connection task. A block is read
/// only when the connection's send queue has room for it, so at most
/// [`Config::send_queue`] blocks per connection wait between the store and the wire, besides
/// the message being written (at most 4 MiB).
pub trait BlockSource: Send + Sync + 'static {
    /// Whether the block is stored.
    fn has(&self, hash: &Multihash<64>) -> bool;
    /// The block's bytes, if stored (and readable).
    fn get(&self, hash: &Multihash<64>) -> Option<Bytes>;
}

/// Decides whether `peer` may be served blocks (called for every inbound wantlist).
pub type Authorizer = Arc<dyn Fn(&PeerId) -> bool + Send + Sync>;

/// Settings of [`crate::Behaviour`].
#[derive(Clone)]
pub struct Config {
    max_message_size: usize,
    max_inbound_wants: usize,
    max_outbound_wants: usize,
    want_timeout: Duration,
    send_queue: usize,
    source: Option<Arc<dyn BlockSource>>,
    authorizer: Option<Authorizer>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("max_message_size", &self.max_message_size)
            .field("max_inbound_wants", &self.max_inbound_wants)
            .field("max_outbound_wants", &self.max_outbound_wants)
            .field("want_timeout", &self.want_timeout)
            .field("send_queue", &self.send_queue)
            .field("source", &self.source.is_some())
            .field("authorizer", &self.authorizer.is_some())
            .finish()
    }
}

impl Config {
    /// The defaults: messages up to [`crate::codec::MAX_MESSAGE_SIZE`] (4 MiB),
    /// [`DEFAULT_MAX_INBOUND_WANTS`], [`DEFAULT_MAX_OUTBOUND_WANTS`], [`DEFAULT_WANT_TIMEOUT`],
    /// [`DEFAULT_SEND_QUEUE`], no block source (every want is answered dont-have) and no
    /// authorizer (every peer is served).
    pub fn new() -> Self {
        Self {
            max_message_size: crate::codec::MAX_MESSAGE_SIZE,
            max_inbound_wants: DEFAULT_MAX_INBOUND_WANTS,
            max_outbound_wants: DEFAULT_MAX_OUTBOUND_WANTS,
            want_timeout: DEFAULT_WANT_TIMEOUT,
            send_queue: DEFAULT_SEND_QUEUE,
            source: None,
            authorizer: None,
        }
    }

    /// Largest frame read from a peer (at most [`crate::codec::MAX_MESSAGE_SIZE`]); a larger
    /// one drops the stream.
    pub fn with_max_message_size(mut self, v: usize) -> Self {
        self.max_message_size = v.min(crate::codec::MAX_MESSAGE_SIZE);
        self
    }

    /// Wants one peer connection may have queued with us.
    pub fn with_max_inbound_wants(mut self, v: usize) -> Self {
        self.max_inbound_wants = v.max(1);
        self
    }

    /// Wants we may have outstanding with one peer; more fail with
    /// [`crate::WantError::TooManyWants`].
    pub fn with_max_outbound_wants(mut self, v: usize) -> Self {
        self.max_outbound_wants = v.max(1);
        self
    }

    /// How long a want waits for its answer.
    pub fn with_want_timeout(mut self, v: Duration) -> Self {
        self.want_timeout = v;
        self
    }

    /// Messages queued per connection before senders wait.
    pub fn with_send_queue(mut self, v: usize) -> Self {
        self.send_queue = v.max(1);
        self
    }

    /// Where served blocks come from (`None`: serve nothing, answer dont-have).
    pub fn with_block_source(mut self, v: Option<Arc<dyn BlockSource>>) -> Self {
        self.source = v;
        self
    }

    /// Who may be served (`None`: everyone connected). A refused peer gets dont-have answers.
    pub fn with_authorizer(mut self, v: Option<Authorizer>) -> Self {
        self.authorizer = v;
        self
    }

    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    pub fn max_inbound_wants(&self) -> usize {
        self.max_inbound_wants
    }

    pub fn max_outbound_wants(&self) -> usize {
        self.max_outbound_wants
    }

    pub fn want_timeout(&self) -> Duration {
        self.want_timeout
    }

    pub fn send_queue(&self) -> usize {
        self.send_queue
    }

    pub fn block_source(&self) -> Option<&Arc<dyn BlockSource>> {
        self.source.as_ref()
    }

    pub fn authorizer(&self) -> Option<&Authorizer> {
        self.authorizer.as_ref()
    }

    pub(crate) fn serves(&self, peer: &PeerId) -> bool {
        self.source.is_some() && self.authorizer.as_ref().is_none_or(|a| a(peer))
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}
