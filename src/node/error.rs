//! The core errors of a node and its handle ([`Error`]), why its certificate settings are
//! refused ([`CertificateError`]), and [`error_chain`] to print one with its sources.

use std::path::PathBuf;

use axum::http::StatusCode;
use libp2p::Multiaddr;
use mcc_admission::CertError;
use mcc_rpc::CallError;

use super::addr::AddrError;

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
    #[error("cannot build the network behaviour: {0}")]
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
    /// A feature (services, blobs) could not be set up at start; its own error inside.
    #[error(transparent)]
    Start(Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Certificate(Box<CertificateError>),
    /// This node (or the peer asked) may not do this: a permission is missing.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A revocation list that does not verify or cannot be installed.
    #[error("revocation list: {0}")]
    Revocations(#[source] mcc_admission::CertError),
    /// A revocation list in the DHT that does not decode.
    #[error("revocation list in the DHT: {0}")]
    RevocationsDecode(#[source] mcc_admission::DecodeError),
    /// A blocking task did not finish.
    #[error("background task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl Error {
    /// The HTTP status of this error in the REST API.
    pub fn status(&self) -> StatusCode {
        use mcc_records::ValidationError as V;
        match self {
            Error::Invalid(V::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Invalid(V::Stale { .. }) | Error::Refused => StatusCode::CONFLICT,
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::StoreFull(_) => StatusCode::INSUFFICIENT_STORAGE,
            Error::Addr(_) | Error::Revocations(_) => StatusCode::BAD_REQUEST,
            Error::Dial { .. } | Error::Call(_) => StatusCode::BAD_GATEWAY,
            Error::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Identity(_)
            | Error::DataDir { .. }
            | Error::Transport(_)
            | Error::Behaviour(_)
            | Error::Listen { .. }
            | Error::NotEd25519
            | Error::Store(_)
            | Error::Certificate(_)
            | Error::Start(_)
            | Error::RevocationsDecode(_)
            | Error::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
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

/// Why this node cannot start with its certificate settings.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error(
        "the certificate is for peer {cert}, but this node's key is {node}: start with \
         --privkey set to the key made together with the certificate"
    )]
    WrongKey { cert: String, node: String },
    #[error("this node's certificate cannot be used: {0}")]
    Invalid(CertError),
    #[error("the trusted CA certificate cannot be used: {0}")]
    BadCa(CertError),
    #[error("this node's certificate is not accepted by the trusted CA: {0}")]
    NotTrusted(CertError),
    #[error("the revocation list is not from the trusted CA: {0}")]
    BadRevocations(CertError),
    #[error("cannot create the self-signed certificate: {0}")]
    SelfSigned(String),
}
