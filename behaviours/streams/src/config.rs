//! [`Config`]: the bounds of the stream behaviour.

use std::time::Duration;

/// Inbound streams of one protocol waiting for its acceptor (see [`Config::with_max_queued`]).
pub const DEFAULT_MAX_QUEUED: usize = 32;
/// Inbound streams one connection holds while the acceptor's queue is full.
pub const DEFAULT_MAX_HELD_PER_CONNECTION: usize = 64;
/// Outbound streams one connection negotiates at once.
pub const DEFAULT_MAX_OPENING_PER_CONNECTION: usize = 64;
/// How long protocol negotiation of a new stream may take.
pub const DEFAULT_NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Protocols with their own counters; streams of further protocols are not counted.
pub const MAX_COUNTED_PROTOCOLS: usize = 256;

/// Settings of a [`Behaviour`](crate::Behaviour).
#[derive(Debug, Clone)]
pub struct Config {
    max_queued: usize,
    max_held_per_connection: usize,
    max_opening_per_connection: usize,
    negotiation_timeout: Duration,
}

impl Config {
    /// The defaults: [`DEFAULT_MAX_QUEUED`] (32) streams queued per protocol,
    /// [`DEFAULT_MAX_HELD_PER_CONNECTION`] (64) held per connection beyond that,
    /// [`DEFAULT_MAX_OPENING_PER_CONNECTION`] (64) outbound negotiations per connection, and
    /// [`DEFAULT_NEGOTIATION_TIMEOUT`] (10 s).
    pub fn new() -> Self {
        Self {
            max_queued: DEFAULT_MAX_QUEUED,
            max_held_per_connection: DEFAULT_MAX_HELD_PER_CONNECTION,
            max_opening_per_connection: DEFAULT_MAX_OPENING_PER_CONNECTION,
            negotiation_timeout: DEFAULT_NEGOTIATION_TIMEOUT,
        }
    }

    /// Inbound streams of one protocol that wait in its acceptor's queue (at least 1).
    pub fn with_max_queued(mut self, n: usize) -> Self {
        self.max_queued = n.max(1);
        self
    }

    /// Inbound streams a connection keeps while its protocol's queue is full; one more is
    /// dropped (reset) and counted as refused.
    pub fn with_max_held_per_connection(mut self, n: usize) -> Self {
        self.max_held_per_connection = n;
        self
    }

    /// Outbound streams a connection negotiates at once (at least 1); further open requests
    /// wait for one of them.
    pub fn with_max_opening_per_connection(mut self, n: usize) -> Self {
        self.max_opening_per_connection = n.max(1);
        self
    }

    /// How long protocol negotiation of a new stream may take.
    pub fn with_negotiation_timeout(mut self, timeout: Duration) -> Self {
        self.negotiation_timeout = timeout;
        self
    }

    /// See [`Config::with_max_queued`].
    pub fn max_queued(&self) -> usize {
        self.max_queued
    }

    /// See [`Config::with_max_held_per_connection`].
    pub fn max_held_per_connection(&self) -> usize {
        self.max_held_per_connection
    }

    /// See [`Config::with_max_opening_per_connection`].
    pub fn max_opening_per_connection(&self) -> usize {
        self.max_opening_per_connection
    }

    /// See [`Config::with_negotiation_timeout`].
    pub fn negotiation_timeout(&self) -> Duration {
        self.negotiation_timeout
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}
