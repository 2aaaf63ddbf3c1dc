//! [`Error`]: what can go wrong with blobs, and the HTTP status each failure maps to.
//!
//! Each variant keeps its source (`Error::source`) and, as elsewhere in mcc, also shows its
//! text, so `to_string()` says everything; `node::error_chain` skips the repeated text.

use axum::http::StatusCode;
use mcc_blobs::{Cid, transfer, unixfs};

// The defining file of `node::Error`, not `crate::node` (which imports this module).
use crate::node::error as node;

/// Why a CID string does not parse.
pub type CidError = <Cid as TryFrom<&'static str>>::Error;

/// Errors of [`super::Blobs`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node itself failed (stopped, or this node's certificate forbids it).
    #[error(transparent)]
    Node(#[from] node::Error),
    #[error("invalid CID {cid:?}: {source}")]
    InvalidCid {
        cid: String,
        #[source]
        source: CidError,
    },
    #[error("invalid CID {0}: not a raw or dag-pb CID")]
    UnsupportedCodec(String),
    /// The blob is not stored here.
    #[error("blob {0} is not stored here")]
    NotFound(Cid),
    /// No peer seeds the blob (or none may).
    #[error("no reachable seeder of blob {0}")]
    NoSeeder(Cid),
    /// A blob's DAG is out of proportion (a "DAG bomb"): it is neither read nor stored.
    #[error("blob DAG refused: {root}: {reason}")]
    Refused {
        root: Cid,
        #[source]
        reason: unixfs::Refusal,
    },
    /// A block of the DAG is not a UnixFS node this node can follow.
    #[error("{root}: {source}")]
    Dag {
        root: Cid,
        #[source]
        source: Box<unixfs::DecodeError>,
    },
    /// Downloading from the seeders failed.
    #[error("fetching {cid}: {source}")]
    Fetch {
        cid: Cid,
        #[source]
        source: Box<transfer::FetchError>,
    },
    #[error("reading the upload: {0}")]
    Upload(#[source] std::io::Error),
    /// The blob store failed.
    #[error("blob store: {0}")]
    Store(#[from] crate::storage::StorageError),
    /// A block could not be read.
    #[error("blob store: {0}")]
    Io(#[source] std::io::Error),
    /// A blocking store task did not finish.
    #[error("blob store: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl Error {
    /// The HTTP status of this error in the REST API.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Node(e) => e.status(),
            Error::InvalidCid { .. } | Error::UnsupportedCodec(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) | Error::NoSeeder(_) => StatusCode::NOT_FOUND,
            Error::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            // As before the split: every other blob failure answers 502.
            Error::Dag { .. }
            | Error::Fetch { .. }
            | Error::Upload(_)
            | Error::Store(_)
            | Error::Io(_)
            | Error::Task(_) => StatusCode::BAD_GATEWAY,
        }
    }
}
