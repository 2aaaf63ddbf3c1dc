//! Error types: [`RpcError`] travels on the wire, [`CallError`] is what a local caller sees.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Machine-readable kind of an [`RpcError`], encoded in snake case on the wire
/// (`"method_not_found"`, `"invalid_params"`, ...).
///
/// A code this version does not know (sent by a newer peer) decodes to
/// [`ErrorCode::Unknown`] with its wire text, so the rest of the response stays readable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// No method of that name is registered.
    MethodNotFound,
    /// The parameters do not fit the method.
    InvalidParams,
    /// The handler failed.
    Internal,
    /// Too many requests are being handled; try again later.
    Busy,
    /// The result was too large to be sent.
    TooLarge,
    /// The caller may not use this method.
    Forbidden,
    /// A code this version does not know, as it was on the wire. Sending it re-encodes the
    /// same text.
    Unknown(String),
}

impl ErrorCode {
    /// The codes this version knows (all but [`ErrorCode::Unknown`]).
    pub const KNOWN: [ErrorCode; 6] = [
        ErrorCode::MethodNotFound,
        ErrorCode::InvalidParams,
        ErrorCode::Internal,
        ErrorCode::Busy,
        ErrorCode::TooLarge,
        ErrorCode::Forbidden,
    ];

    /// The wire name of the code, e.g. `"method_not_found"`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::MethodNotFound => "method_not_found",
            Self::InvalidParams => "invalid_params",
            Self::Internal => "internal",
            Self::Busy => "busy",
            Self::TooLarge => "too_large",
            Self::Forbidden => "forbidden",
            Self::Unknown(text) => text,
        }
    }

    /// The code whose wire name is `text`; [`ErrorCode::Unknown`] for any other text.
    pub fn from_wire(text: &str) -> Self {
        Self::KNOWN
            .into_iter()
            .find(|code| code.as_str() == text)
            .unwrap_or_else(|| Self::Unknown(text.to_owned()))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Self::from_wire(&text))
    }
}

/// Wire-level error a handler (or the remote side) returns.
///
/// Encoded as `{"code": "<snake_case code>", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RpcError {
    /// What kind of error this is.
    pub code: ErrorCode,
    /// Human-readable details.
    #[serde(default)]
    pub message: String,
}

impl RpcError {
    /// An error with the given code and message.
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        Self {
            code,
            message: msg.into(),
        }
    }

    /// An [`ErrorCode::InvalidParams`] error.
    pub fn invalid_params(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParams, msg)
    }

    /// An [`ErrorCode::Internal`] error.
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, msg)
    }
}

/// Why an outbound call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The remote answered with an error.
    #[error("remote error: {0}")]
    Remote(RpcError),
    /// No response arrived within the request timeout.
    #[error("request timed out")]
    Timeout,
    /// The connection closed before a response arrived.
    #[error("connection closed")]
    ConnectionClosed,
    /// The peer was not connected and could not be dialed.
    #[error("dial failed")]
    DialFailure,
    /// The peer does not speak the RPC protocol (the protocol name is given).
    #[error("peer does not support {0}")]
    UnsupportedProtocol(String),
    /// The encoded request exceeds the local `max_request_size`; nothing was sent.
    #[error("request too large: {size} bytes > {max}")]
    RequestTooLarge {
        /// Encoded size of the request.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The stream failed, or the response could not be read (malformed or too large).
    #[error("i/o error: {0}")]
    Io(String),
}

/// Why an inbound request got no answer (the request itself was read).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InboundFailure {
    /// The answer was not written within the request timeout (handler included).
    #[error("timed out before the answer was sent")]
    Timeout,
    /// The connection closed before the answer was sent.
    #[error("connection closed before the answer was sent")]
    ConnectionClosed,
    /// The stream's protocol could not be agreed on.
    #[error("no protocol in common")]
    UnsupportedProtocols,
    /// The answer was dropped without being sent.
    #[error("the answer was dropped")]
    ResponseOmission,
    /// The stream failed.
    #[error("i/o error")]
    Io(#[source] std::io::Error),
}

impl From<libp2p::request_response::InboundFailure> for InboundFailure {
    fn from(failure: libp2p::request_response::InboundFailure) -> Self {
        use libp2p::request_response::InboundFailure as Rr;
        match failure {
            Rr::Timeout => Self::Timeout,
            Rr::ConnectionClosed => Self::ConnectionClosed,
            Rr::UnsupportedProtocols => Self::UnsupportedProtocols,
            Rr::ResponseOmission => Self::ResponseOmission,
            Rr::Io(e) => Self::Io(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_on_the_wire_and_in_display() {
        for code in ErrorCode::KNOWN {
            let json = serde_json::to_value(&code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.to_string()));
            let back: ErrorCode = serde_json::from_value(json).unwrap();
            assert_eq!(back, code);
        }
        assert_eq!(ErrorCode::MethodNotFound.to_string(), "method_not_found");
    }

    #[test]
    fn unknown_code_decodes_to_unknown_keeping_its_text() {
        let e: RpcError =
            serde_json::from_str(r#"{"code":"rate_limited","message":"slow down"}"#).unwrap();
        assert_eq!(e.code, ErrorCode::Unknown("rate_limited".into()));
        assert_eq!(e.message, "slow down");
        assert_eq!(e.to_string(), "rate_limited: slow down");
        // Passed on unchanged.
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"code": "rate_limited", "message": "slow down"})
        );
        // A known code is never Unknown, and a non-string code is still malformed.
        assert_eq!(ErrorCode::from_wire("busy"), ErrorCode::Busy);
        assert!(serde_json::from_str::<RpcError>(r#"{"code":7}"#).is_err());
    }

    #[test]
    fn rpc_error_display_and_wire_shape() {
        let e = RpcError::invalid_params("need x");
        assert_eq!(e.to_string(), "invalid_params: need x");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"code": "invalid_params", "message": "need x"})
        );
        let no_message: RpcError = serde_json::from_str(r#"{"code":"busy"}"#).unwrap();
        assert_eq!(no_message, RpcError::new(ErrorCode::Busy, ""));
    }
}
