//! Configuration of the RPC [`Behaviour`](crate::Behaviour).

use std::time::Duration;

use libp2p::StreamProtocol;

use crate::{Authorizer, PROTOCOL_NAME};

/// Default time a call may take, from sending the request to reading the response.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on the encoded size of a request (1 MiB).
pub(crate) const DEFAULT_MAX_REQUEST_SIZE: usize = 1024 * 1024;
/// Default cap on the encoded size of a response (4 MiB).
pub(crate) const DEFAULT_MAX_RESPONSE_SIZE: usize = 4 * 1024 * 1024;
/// Default number of inbound requests whose handlers may run at the same time.
pub(crate) const DEFAULT_MAX_CONCURRENT_INBOUND: usize = 256;

/// Streams per connection that the underlying request-response protocol accepts on top of
/// [`Config::max_concurrent_inbound`]; they leave room for outbound calls and for inbound
/// requests that are only answered with [`ErrorCode::Busy`](crate::ErrorCode::Busy).
const EXTRA_STREAMS_PER_CONNECTION: usize = 128;

/// Configuration of the RPC [`Behaviour`](crate::Behaviour).
///
/// The same configuration governs both directions: sizes are checked when sending and when
/// receiving.
#[derive(Clone)]
pub struct Config {
    request_timeout: Duration,
    max_request_size: usize,
    max_response_size: usize,
    max_concurrent_inbound: usize,
    protocol: StreamProtocol,
    authorizer: Option<Authorizer>,
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("request_timeout", &self.request_timeout)
            .field("max_request_size", &self.max_request_size)
            .field("max_response_size", &self.max_response_size)
            .field("max_concurrent_inbound", &self.max_concurrent_inbound)
            .field("protocol", &self.protocol)
            .field("authorizer", &self.authorizer.as_ref().map(|_| "Fn"))
            .finish()
    }
}

impl Config {
    /// The defaults: a request timeout of 10 s, requests up to 1 MiB, responses up to 4 MiB,
    /// 256 inbound handlers at once, protocol [`PROTOCOL_NAME`], and no authorizer (every
    /// peer may call every method).
    pub fn new() -> Self {
        Self {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
            max_response_size: DEFAULT_MAX_RESPONSE_SIZE,
            max_concurrent_inbound: DEFAULT_MAX_CONCURRENT_INBOUND,
            protocol: PROTOCOL_NAME,
            authorizer: None,
        }
    }

    /// Checks every inbound request with `authorizer` before its handler runs (and before the
    /// method is even looked up); its `Err` is the answer.
    pub fn with_authorizer(mut self, authorizer: Authorizer) -> Self {
        self.authorizer = Some(authorizer);
        self
    }

    /// The authorizer inbound requests pass first, if any.
    pub fn authorizer(&self) -> Option<&Authorizer> {
        self.authorizer.as_ref()
    }

    /// Sets how long a request may take, for outbound calls (until the response is read) as
    /// well as inbound ones (until the response is written, handler included).
    pub fn with_request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Sets the largest encoded request, in bytes, that is sent or accepted.
    pub fn with_max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }

    /// Sets the largest encoded response, in bytes, that is sent or accepted.
    ///
    /// A local handler whose result encodes larger than this is answered with
    /// [`ErrorCode::TooLarge`](crate::ErrorCode::TooLarge) instead.
    pub fn with_max_response_size(mut self, bytes: usize) -> Self {
        self.max_response_size = bytes;
        self
    }

    /// Sets how many inbound handlers may run at once (over all peers). Requests arriving
    /// beyond that are answered with [`ErrorCode::Busy`](crate::ErrorCode::Busy).
    pub fn with_max_concurrent_inbound(mut self, n: usize) -> Self {
        self.max_concurrent_inbound = n;
        self
    }

    /// Sets the protocol name negotiated on streams (default [`PROTOCOL_NAME`]).
    pub fn with_protocol(mut self, p: StreamProtocol) -> Self {
        self.protocol = p;
        self
    }

    /// How long a request may take.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Largest encoded request, in bytes.
    pub fn max_request_size(&self) -> usize {
        self.max_request_size
    }

    /// Largest encoded response, in bytes.
    pub fn max_response_size(&self) -> usize {
        self.max_response_size
    }

    /// How many inbound handlers may run at once.
    pub fn max_concurrent_inbound(&self) -> usize {
        self.max_concurrent_inbound
    }

    /// The protocol name negotiated on streams.
    pub fn protocol(&self) -> &StreamProtocol {
        &self.protocol
    }

    /// Stream limit per connection handed to the underlying request-response behaviour.
    pub(crate) fn max_concurrent_streams(&self) -> usize {
        self.max_concurrent_inbound
            .saturating_add(EXTRA_STREAMS_PER_CONNECTION)
    }
}
