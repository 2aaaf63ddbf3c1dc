//! Typed errors of this crate.

use libp2p::PeerId;

use crate::cert::Serial;
use crate::time::format_unix;
use crate::wire::{Base64Error, Kind};

/// Why bytes or base64 text are not a valid encoding of an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The base64 text layer is broken.
    #[error("{0}")]
    Base64(#[from] Base64Error),
    /// More bytes than the object may have.
    #[error("{kind} is too large: {len} bytes (limit {max})")]
    TooLarge {
        /// What was being decoded.
        kind: Kind,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input ends in the middle of a field.
    #[error("{kind} is truncated: {field} is missing or incomplete")]
    Truncated {
        /// What was being decoded.
        kind: Kind,
        /// The first field that is incomplete.
        field: &'static str,
    },
    /// The input does not start with the `MCC` magic bytes.
    #[error("not an mcc {expected}: the data does not start with the mcc magic bytes")]
    BadMagic {
        /// What was expected.
        expected: Kind,
    },
    /// The input is a different mcc object (for example a revocation list passed as `--cert`).
    #[error("expected an mcc {expected} but this is a {found}")]
    WrongKind {
        /// What was expected.
        expected: Kind,
        /// What the data is.
        found: Kind,
    },
    /// The object tag is not one this build knows.
    #[error("expected an mcc {expected} but found unknown object type {tag:#04x}")]
    UnknownKind {
        /// What was expected.
        expected: Kind,
        /// The tag byte found.
        tag: u8,
    },
    /// The format version is not supported (written by a newer or incompatible mcc).
    #[error(
        "unsupported {kind} format version {found}: this mcc reads version {supported} \
         (was it written by a newer mcc?)"
    )]
    UnsupportedVersion {
        /// What was being decoded.
        kind: Kind,
        /// The version byte found.
        found: u8,
        /// The version this build supports.
        supported: u8,
    },
    /// A field has an impossible value.
    #[error("invalid {field} in {kind}: {reason}")]
    InvalidField {
        /// What was being decoded.
        kind: Kind,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Bytes left over after the last field.
    #[error("{kind} has {count} unexpected bytes after its last field")]
    TrailingBytes {
        /// What was being decoded.
        kind: Kind,
        /// How many bytes.
        count: usize,
    },
}

/// Why a certificate, request or revocation list does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The signature does not match the content and the issuer key.
    #[error("certificate signature is invalid: it was altered or not signed by this CA")]
    BadSignature,
    /// The certificate given as the trusted CA does not have the CA flag.
    #[error("the trusted CA certificate is not a CA certificate (is_ca is false)")]
    NotCa,
    /// The trusted CA certificate is not issued by its own key.
    #[error("the trusted CA certificate is not self-signed (its subject is not its issuer key)")]
    CaNotSelfSigned,
    /// The trusted CA certificate's self-signature is wrong.
    #[error("the trusted CA certificate has an invalid self-signature")]
    CaBadSignature,
    /// The CA certificate is past its `not_after`.
    #[error(
        "the CA certificate expired at {} (now {}): every certificate it signed is now invalid; \
         create a new CA or re-sign the CA with a later expiry",
        format_unix(*.not_after),
        format_unix(*.now)
    )]
    CaExpired {
        /// End of the CA's validity, unix seconds.
        not_after: u64,
        /// The time checked, unix seconds.
        now: u64,
    },
    /// The CA certificate is before its `not_before`.
    #[error(
        "the CA certificate is not valid yet: valid from {} (now {}; check the clock)",
        format_unix(*.not_before),
        format_unix(*.now)
    )]
    CaNotYetValid {
        /// Start of the CA's validity, unix seconds.
        not_before: u64,
        /// The time checked, unix seconds.
        now: u64,
    },
    /// The certificate is signed by the node's own key (open mode), not by the trusted CA.
    #[error(
        "certificate is self-signed, not issued by the trusted CA: start the node with --cert \
         and --privkey from the network's CA (mcc --newcert, then mcc ca sign)"
    )]
    SelfSigned,
    /// The certificate names another issuer key than the trusted CA's.
    #[error("certificate was issued by a different CA (key {issuer}), not by the trusted CA")]
    WrongIssuer {
        /// Peer id form of the certificate's issuer key.
        issuer: PeerId,
    },
    /// The certificate is past its `not_after`.
    #[error(
        "certificate expired at {} (now {}): ask the CA for a new one",
        format_unix(*.not_after),
        format_unix(*.now)
    )]
    Expired {
        /// End of validity, unix seconds.
        not_after: u64,
        /// The time checked, unix seconds.
        now: u64,
    },
    /// The certificate is before its `not_before`.
    #[error(
        "certificate is not valid yet: valid from {} (now {}; check the clock)",
        format_unix(*.not_before),
        format_unix(*.now)
    )]
    NotYetValid {
        /// Start of validity, unix seconds.
        not_before: u64,
        /// The time checked, unix seconds.
        now: u64,
    },
    /// The certificate's serial is on the revocation list.
    #[error("certificate {serial} has been revoked by the CA")]
    Revoked {
        /// The revoked serial.
        serial: Serial,
    },
    /// The certificate's peer is on the revocation list.
    #[error("peer {peer} has been revoked by the CA")]
    PeerRevoked {
        /// The revoked peer.
        peer: PeerId,
    },
    /// A CA certificate other than the trusted CA was presented (there are no intermediate CAs).
    #[error(
        "certificate is a CA certificate but not the trusted CA; intermediate CAs are not supported"
    )]
    UnexpectedCa,
    /// The certificate is valid but for another peer than the one presenting it.
    #[error("certificate is for peer {found}, not for the peer presenting it")]
    PeerMismatch {
        /// The peer named in the certificate.
        found: PeerId,
    },
    /// The revocation list was issued by another key than the trusted CA's.
    #[error("revocation list was not issued by the trusted CA")]
    RevocationListWrongIssuer,
    /// The revocation list's signature is wrong.
    #[error("revocation list signature is invalid")]
    RevocationListBadSignature,
    /// The certificate request is not signed by the key of the peer it names.
    #[error(
        "certificate request signature is invalid: it was altered or not made by that node's key"
    )]
    RequestBadSignature,
}

/// Why an object cannot be created and signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The label has no letters or digits.
    #[error("label {0:?} has no letters or digits")]
    EmptyLabel(String),
    /// `not_before` is not before `not_after`.
    #[error("validity is empty: not_before ({not_before}) must be before not_after ({not_after})")]
    InvalidValidity {
        /// Requested start.
        not_before: u64,
        /// Requested end.
        not_after: u64,
    },
    /// A CA certificate must be for the issuer's own key.
    #[error("a CA certificate must be self-signed: its peer id must be the issuing key's")]
    CaNotSelfSigned,
    /// A field exceeds its limit in the format.
    #[error("{field} too large: {len} (limit {max})")]
    TooLarge {
        /// The field.
        field: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// An unknown permission in user input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown permission {0:?}; known permissions: services:provide, services:consume, \
     records:write, blobs:seed, rpc:call, routes:publish, routes:subscribe, all"
)]
pub struct PermissionError(pub String);

/// Why a private key file cannot be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The base64 text layer is broken.
    #[error("private key: {0}")]
    Base64(#[from] Base64Error),
    /// The bytes are not a key.
    #[error("private key is not a valid libp2p key: {0}")]
    Invalid(String),
    /// The key is not ed25519.
    #[error("private key is not an ed25519 key (mcc certificates need ed25519)")]
    NotEd25519,
}
