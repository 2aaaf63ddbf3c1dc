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

/// `Json` whose rejections are JSON errors too, and which takes only a JSON object (serde
/// would also read a struct from an array): 415 without `Content-Type: application/json`, 400
/// for a body that is not JSON, 422 for JSON of the wrong shape, 413 over the body limit.
pub(super) struct ApiJson<T>(pub(super) T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Expected request with `Content-Type: application/json`",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{') {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the body must be a JSON object",
            ));
        }
        let Json(value) = Json::<T>::from_bytes(&bytes)?;
        Ok(ApiJson(value))
    }
}

/// Whether the request says its body is JSON (`application/json`, or `application/*+json`).
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

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
