//! API errors: [`ApiError`] (a status and a JSON `{"error": ...}` body), how node errors map
//! to HTTP statuses, and [`ApiJson`], the `Json` extractor whose rejections are such errors.

use axum::Json;
use axum::extract::FromRequest;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::types::ErrorBody;
use crate::node;

/// An API error: a status and a JSON `{"error": ...}` body.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        Self::new(r.status(), r.body_text())
    }
}

// Each subsystem maps its own errors to a status next to its enum (`status()`, no wildcard
// arm); the message is the error with its sources.
impl From<node::Error> for ApiError {
    fn from(e: node::Error) -> Self {
        Self::new(e.status(), node::error_chain(&e))
    }
}

impl From<crate::services::Error> for ApiError {
    fn from(e: crate::services::Error) -> Self {
        Self::new(e.status(), node::error_chain(&e))
    }
}

impl From<crate::blobs::Error> for ApiError {
    fn from(e: crate::blobs::Error) -> Self {
        Self::new(e.status(), node::error_chain(&e))
    }
}

impl From<crate::routes::Error> for ApiError {
    fn from(e: crate::routes::Error) -> Self {
        Self::new(e.status(), node::error_chain(&e))
    }
}

impl From<crate::streams::Error> for ApiError {
    fn from(e: crate::streams::Error) -> Self {
        Self::new(e.status(), node::error_chain(&e))
    }
}

/// `Json` whose rejections are JSON errors too.
#[derive(FromRequest)]
#[from_request(via(Json), rejection(ApiError))]
pub(super) struct ApiJson<T>(pub(super) T);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stopped_node_is_503_with_a_json_error() {
        let resp = ApiError::from(node::Error::Stopped).into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        let body: ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(body.error, "the node is not running");
    }
}
