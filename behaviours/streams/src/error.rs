//! The errors of opening and accepting streams.

use std::io;

use libp2p::{PeerId, StreamProtocol};

/// Why [`Control::open_stream`](crate::Control::open_stream) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The peer does not speak the protocol (multistream-select said no).
    #[error("the peer does not support {0}")]
    UnsupportedProtocol(StreamProtocol),
    /// There is no connection to the peer and none could be made.
    #[error("not connected to {peer}: {reason}")]
    NotConnected {
        peer: PeerId,
        /// What the dial said, or why none was tried.
        reason: String,
    },
    /// The connection closed before the stream was negotiated.
    #[error("the connection closed before the stream was open")]
    ConnectionClosed,
    /// Negotiation did not finish within the configured timeout.
    #[error("stream negotiation timed out")]
    Timeout,
    /// The stream failed during negotiation.
    #[error("stream negotiation failed: {0}")]
    Io(#[source] io::Error),
}

/// [`Control::accept`](crate::Control::accept) was called for a protocol that is accepted
/// already.
#[derive(Debug, thiserror::Error)]
#[error("the protocol {0} is already accepted")]
pub struct AlreadyRegistered(pub StreamProtocol);
