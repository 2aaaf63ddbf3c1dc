//! [`Error`]: what can go wrong with services, listeners and tunnels, and the HTTP status
//! each failure maps to.
//!
//! Each variant keeps its source (`Error::source`) and, as elsewhere in mcc, also shows its
//! text, so `to_string()` says everything; `node::error_chain` skips the repeated text.

use axum::http::StatusCode;

use super::registry;
// The defining file of `node::Error`, not `crate::node` (which imports this module).
use crate::node::error as node;

/// Errors of [`super::Services`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node itself failed (stopped, or this node's certificate forbids it).
    #[error(transparent)]
    Node(#[from] node::Error),
    /// The saved services and listeners.
    #[error(transparent)]
    Registry(#[from] registry::Error),
    /// A provider pin that starts like a DID but is not a valid `did:key`.
    #[error("invalid peer id: {did}: {source}")]
    InvalidDid {
        did: String,
        #[source]
        source: mcc_records::did::DidError,
    },
    /// A provider pin that is neither a peer id, a DID nor a label.
    #[error(
        "invalid peer id: {0:?} is neither a peer id, a did:key DID, nor a label (lowercase \
         letters and digits)"
    )]
    InvalidPin(String),
    #[error("no reachable provider of service {0}")]
    NoProvider(String),
    /// This node's own service did not accept a connection in time.
    #[error("tunnel: {address}: connect timed out")]
    ConnectTimeout { address: String },
    /// This node's own service refused the connection.
    #[error("tunnel: {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    /// A remote provider did not open the tunnel.
    #[error("tunnel: {0}")]
    Open(#[source] mcc_forward::OpenError),
    /// The provider's certificate does not allow it to provide services.
    #[error("forbidden: provider {0} lacks the services:provide permission")]
    ProviderForbidden(libp2p::PeerId),
    #[error("cannot listen on {address}: {source}")]
    ListenerBind {
        address: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The HTTP status of this error in the REST API.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Node(e) => e.status(),
            Error::Registry(e) => e.status(),
            Error::InvalidDid { .. } | Error::InvalidPin(_) => StatusCode::BAD_REQUEST,
            Error::NoProvider(_) => StatusCode::NOT_FOUND,
            Error::ConnectTimeout { .. } | Error::Connect { .. } | Error::Open(_) => {
                StatusCode::BAD_GATEWAY
            }
            Error::ProviderForbidden(_) => StatusCode::FORBIDDEN,
            Error::ListenerBind { .. } => StatusCode::CONFLICT,
        }
    }
}
