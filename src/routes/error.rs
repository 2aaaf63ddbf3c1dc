//! [`Error`]: what can go wrong subscribing or publishing, and the HTTP status of each.

use axum::http::StatusCode;

// The defining file of `node::Error`, not `crate::node` (which imports this module).
use crate::node::error as node;

/// Errors of [`super::Routes`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node itself failed, or this node's certificate lacks the permission.
    #[error(transparent)]
    Node(#[from] node::Error),
    /// A bad route name or type tag, or a tag other than the route's subscribers use here.
    #[error(transparent)]
    Route(#[from] mcc_routes::RouteError),
    /// The message is over the size limit.
    #[error(transparent)]
    Publish(#[from] mcc_routes::PublishError),
}

impl Error {
    /// The HTTP status of this error in the REST API.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Node(e) => e.status(),
            Error::Route(mcc_routes::RouteError::TagMismatch { .. }) => StatusCode::CONFLICT,
            Error::Route(_) => StatusCode::BAD_REQUEST,
            Error::Publish(_) => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}
