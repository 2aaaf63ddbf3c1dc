//! The core errors of a node and its handle ([`Error`]), and [`error_chain`] to print one with
//! its sources.

use std::path::PathBuf;

use libp2p::Multiaddr;
use mcc_rpc::CallError;

use super::{AddrError, CertificateError};

/// Errors of the node and its handle.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Identity(#[from] crate::identity::Error),
    #[error("data folder {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("transport setup failed: {0}")]
    Transport(String),
    /// A behaviour could not be built (mDNS cannot bind its socket, ...).
    #[error("cannot build the network behaviour")]
    Behaviour(#[source] libp2p::BehaviourBuilderError),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error(transparent)]
    Addr(#[from] AddrError),
    #[error("dialing {addr} failed: {reason}")]
    Dial { addr: Multiaddr, reason: String },
    #[error("call failed: {0}")]
    Call(#[from] CallError),
    #[error("the node is not running")]
    Stopped,
    #[error("the node identity must be an ed25519 key")]
    NotEd25519,
    #[error(transparent)]
    Invalid(#[from] mcc_records::ValidationError),
    #[error("no record found for {0}")]
    NotFound(String),
    #[error("record store: {0}")]
    Store(String),
    /// The record store has no room for a new record of this node (HTTP 507).
    #[error("the record store is full ({0}): raise --max-records")]
    StoreFull(String),
    #[error("every peer refused the record (is a newer version already published?)")]
    Refused,
    #[error(transparent)]
    Services(#[from] crate::services::registry::Error),
    #[error("no reachable provider of service {0}")]
    NoProvider(String),
    #[error("tunnel: {0}")]
    Tunnel(String),
    #[error("cannot listen on {address}: {reason}")]
    ListenerBind { address: String, reason: String },
    #[error("invalid peer id: {0}")]
    InvalidPeer(String),
    #[error("invalid CID {0}")]
    InvalidCid(String),
    #[error("{0}")]
    Blob(String),
    /// A blob's DAG is out of proportion (a "DAG bomb"): it is neither read nor stored.
    #[error("blob DAG refused: {0}")]
    BlobRefused(String),
    #[error(transparent)]
    Certificate(Box<CertificateError>),
    /// This node (or the peer asked) may not do this: a permission is missing.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
}

impl From<CertificateError> for Error {
    fn from(e: CertificateError) -> Self {
        Error::Certificate(Box::new(e))
    }
}

/// An error and all its sources, `: `-separated.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
