//! [`Error`]: what can go wrong listening on or opening a user stream, and the HTTP status
//! each failure maps to.

use axum::http::StatusCode;
use libp2p::PeerId;

// The defining file of `node::Error`, not `crate::node` (which imports this module).
use crate::node::error as node;

/// Errors of [`super::Streams`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node itself failed (stopped, or this node's certificate forbids it).
    #[error(transparent)]
    Node(#[from] node::Error),
    /// A stream name outside 1–64 characters of `A-Z a-z 0-9 . _ -`.
    #[error("invalid stream name {0:?}: use 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'")]
    InvalidName(String),
    /// A peer id that does not parse.
    #[error("invalid peer id {0:?}")]
    InvalidPeer(String),
    /// A stream to this node itself (libp2p does not dial itself).
    #[error("cannot open a stream to this node itself")]
    SelfStream,
    /// Something on this node already listens on this name.
    #[error("already listening on stream {0}")]
    AlreadyListening(String),
    /// The peer is connected but nothing there listens on this name.
    #[error("peer {peer} does not listen on stream {name}")]
    NotListening { peer: PeerId, name: String },
    /// The peer could not be reached, or the stream failed while opening.
    #[error("cannot open stream {name} to {peer}: {source}")]
    Open {
        peer: PeerId,
        name: String,
        #[source]
        source: Box<mcc_streams::OpenError>,
    },
    /// The peer was not reached, or did not answer, in time.
    #[error("cannot open stream {name} to {peer}: timed out after {secs} s")]
    Timeout {
        peer: PeerId,
        name: String,
        secs: u64,
    },
    /// Under `--trust-ca`: the peer's certificate lacks `services:provide`, so it may not
    /// accept user streams.
    #[error("forbidden: peer {0} lacks the services:provide permission")]
    PeerForbidden(PeerId),
}

impl Error {
    /// The HTTP status of this error in the REST API.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Node(e) => e.status(),
            Error::InvalidName(_) | Error::InvalidPeer(_) | Error::SelfStream => {
                StatusCode::BAD_REQUEST
            }
            Error::AlreadyListening(_) => StatusCode::CONFLICT,
            Error::NotListening { .. } | Error::Open { .. } => StatusCode::BAD_GATEWAY,
            Error::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Error::PeerForbidden(_) => StatusCode::FORBIDDEN,
        }
    }
}
