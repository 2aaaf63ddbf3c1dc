//! Errors: bad names, undecodable frames, failed reads and publishes.

use thiserror::Error;

/// Why a route name or type tag is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NameError {
    #[error("the name is empty")]
    Empty,
    #[error("the name is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("the name contains {0:?} (allowed: a-z 0-9 . _ - /)")]
    BadChar(char),
    #[error("the name must start and end with a letter or digit")]
    BadEnds,
    #[error("the name has an empty segment (//)")]
    EmptySegment,
}

/// Why a frame body did not decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("the frame is truncated")]
    Truncated,
    #[error("the frame body has {len} bytes, more than the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("bytes after the end of the frame body")]
    Trailing,
    #[error("a name is not UTF-8")]
    NotUtf8,
    #[error("bad route name: {0}")]
    BadRoute(#[source] NameError),
    #[error("bad type tag: {0}")]
    BadTag(#[source] NameError),
}

/// Why reading a stream of frames stopped.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("reading the stream: {0}")]
    Io(#[source] std::io::Error),
    #[error("{0}")]
    Decode(#[source] DecodeError),
}

/// Why a subscription or a publisher could not be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RouteError {
    #[error("bad route name {route:?}: {reason}")]
    BadRoute { route: String, reason: NameError },
    #[error("bad type tag {tag:?}: {reason}")]
    BadTag { tag: String, reason: NameError },
    #[error("a route with subscribers here uses type tag {existing:?}, not {requested:?}")]
    TagMismatch {
        existing: Option<String>,
        requested: Option<String>,
    },
}

/// Why a message was not published.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PublishError {
    #[error("the message has {len} bytes, more than the limit of {max}")]
    TooLarge { len: usize, max: usize },
}
