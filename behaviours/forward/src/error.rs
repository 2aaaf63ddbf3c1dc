//! Error types: refusals sent on the wire and the errors of [`open`](crate::open) and
//! [`serve`](crate::serve).

use std::fmt;
use std::num::NonZeroU8;

/// Why the provider refused a tunnel.
///
/// Sent on the wire as one status byte ([`Refusal::code`]) followed by a short UTF-8 message.
/// A status this version does not know (a newer provider's) is read as [`Refusal::Unknown`],
/// and the message that came with it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// No service of that name is registered.
    UnknownService,
    /// The local service refused the connection (nothing listens on its port).
    Refused,
    /// The local service could not be reached (any other connect error, or a connect timeout).
    Unreachable,
    /// The requesting peer may not use this service.
    Forbidden,
    /// The provider has too many tunnels open.
    Busy,
    /// The request was malformed.
    BadRequest,
    /// A status byte this version does not know (never 0, which means "ok").
    Unknown(NonZeroU8),
}

impl Refusal {
    /// All refusals this version knows, in code order.
    pub const ALL: [Refusal; 6] = [
        Refusal::UnknownService,
        Refusal::Refused,
        Refusal::Unreachable,
        Refusal::Forbidden,
        Refusal::Busy,
        Refusal::BadRequest,
    ];

    /// The status byte of this refusal on the wire (never 0, which means "ok").
    pub const fn code(self) -> u8 {
        match self {
            Refusal::UnknownService => 1,
            Refusal::Refused => 2,
            Refusal::Unreachable => 3,
            Refusal::Forbidden => 4,
            Refusal::Busy => 5,
            Refusal::BadRequest => 6,
            Refusal::Unknown(code) => code.get(),
        }
    }

    /// The refusal of a status byte: `None` for 0 (ok), [`Refusal::Unknown`] for a code this
    /// version does not know.
    pub const fn from_code(code: u8) -> Option<Refusal> {
        match code {
            1 => Some(Refusal::UnknownService),
            2 => Some(Refusal::Refused),
            3 => Some(Refusal::Unreachable),
            4 => Some(Refusal::Forbidden),
            5 => Some(Refusal::Busy),
            6 => Some(Refusal::BadRequest),
            _ => match NonZeroU8::new(code) {
                Some(code) => Some(Refusal::Unknown(code)),
                None => None,
            },
        }
    }

    /// The snake_case name of this refusal (`"unknown"` for every [`Refusal::Unknown`];
    /// `Display` adds its code).
    pub const fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownService => "unknown_service",
            Refusal::Refused => "refused",
            Refusal::Unreachable => "unreachable",
            Refusal::Forbidden => "forbidden",
            Refusal::Busy => "busy",
            Refusal::BadRequest => "bad_request",
            Refusal::Unknown(_) => "unknown",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Unknown(code) => write!(f, "unknown refusal {code}"),
            known => f.write_str(known.as_str()),
        }
    }
}

/// Why [`open`](crate::open) failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The provider answered with a refusal.
    #[error("{code}: {message}")]
    Refused {
        /// The reason.
        code: Refusal,
        /// The provider's explanation (possibly empty).
        message: String,
    },
    /// No stream could be opened: the peer does not support the protocol, cannot be dialed, or
    /// the connection failed.
    #[error("cannot open a stream to the peer: {0}")]
    Stream(#[source] mcc_streams::OpenError),
    /// The stream failed during the handshake, or the answer was malformed.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// Opening the stream and the handshake took longer than the timeout.
    #[error("handshake timed out")]
    Timeout,
    /// The service name does not pass [`validate_name`](crate::validate_name).
    #[error("invalid service name: {0}")]
    InvalidName(String),
}

/// Why [`serve`](crate::serve) stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another task already accepts streams of [`PROTOCOL_NAME`](crate::PROTOCOL_NAME) on this
    /// behaviour.
    #[error("protocol already registered")]
    AlreadyRegistered,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for refusal in Refusal::ALL {
            assert_ne!(refusal.code(), 0);
            assert_eq!(Refusal::from_code(refusal.code()), Some(refusal));
        }
        assert_eq!(Refusal::from_code(0), None);
        for code in [7, 255] {
            let unknown = Refusal::from_code(code).expect("a refusal");
            assert!(matches!(unknown, Refusal::Unknown(c) if c.get() == code));
            assert_eq!(unknown.code(), code);
        }
    }

    #[test]
    fn display_is_snake_case() {
        assert_eq!(Refusal::UnknownService.to_string(), "unknown_service");
        assert_eq!(Refusal::BadRequest.to_string(), "bad_request");
        let err = OpenError::Refused {
            code: Refusal::Forbidden,
            message: "not for you".into(),
        };
        assert_eq!(err.to_string(), "forbidden: not for you");
        let newer = Refusal::from_code(42).expect("a refusal");
        assert_eq!(newer.to_string(), "unknown refusal 42");
    }
}
