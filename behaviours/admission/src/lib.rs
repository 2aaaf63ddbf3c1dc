//! Admission for mcc: CA-signed node certificates and revocation lists.
//!
//! A network can be closed with `--trust-ca`: only nodes presenting a [`Certificate`] signed by
//! that root CA take part. This crate holds the formats, signing and verification:
//!
//! * [`Certificate`]: binds a [`PeerId`](libp2p::PeerId) to a label, [`Permissions`] and a
//!   validity window, signed by a CA key. A root CA certificate is self-signed and has
//!   `is_ca = true`. [`Certificate::verify`] checks a node certificate against the trusted CA,
//!   the time and an optional [`RevocationList`].
//! * [`CertificateRequest`]: what a node hands to the CA (`--newcert`), signed by the node key.
//! * [`RevocationList`]: CA-signed list of revoked serials and peers, with a sequence number.
//! * [`keys`]: ed25519 key generation and the base64 `--privkey` file format.
//! * [`normalize_label`]: MCC's label rules.
//!
//! On the network:
//!
//! * [`Behaviour`]: the `/mcc/cert/1.0.0` exchange ([`PROTOCOL_NAME`], wire format in
//!   [`codec`]). With a trusted CA ([`Config::trusted_ca`]) both sides send their certificate
//!   when a connection is established and check the other's; a peer that fails, or presents
//!   nothing within [`Config::timeout`], is told why, disconnected and banned for
//!   [`Config::ban_duration`]. Admitted peers are checked again every
//!   [`Config::recheck_interval`] (expiry, new revocation lists via
//!   [`Behaviour::set_revocations`]). Without a trusted CA it only presents its own.
//! * [`Gated`]: wraps any other behaviour so that it serves a peer only once admitted; its
//!   inbound streams wait after negotiation, its handler is not polled (so it opens nothing).
//!   [`Gates`] is the shared state, also used for permission checks ([`Gates::allows`]).
//!
//! There are no intermediate CAs: every node certificate is signed directly by the root.
//! Expiry is never silent: [`CertError::Expired`] and [`CertError::CaExpired`] say so and when,
//! and [`Certificate::expires_within`] with [`EXPIRY_WARNING`] supports warning 30 days ahead.
//!
//! # Encoding (format version 1)
//!
//! Every object is binary; files hold it as one line of standard base64 (readers ignore
//! whitespace and line breaks, and accept missing padding). Integers are big-endian. A
//! *short* field is one length byte followed by that many bytes (never empty).
//!
//! | offset | field | |
//! |---|---|---|
//! | 0 | magic | `MCC` (3 bytes) |
//! | 3 | kind | `C` certificate, `Q` request, `R` revocation list |
//! | 4 | version | `1`; anything else is refused with [`DecodeError::UnsupportedVersion`] |
//! | 5 | fields | per kind, below, in this order |
//! | end − 64 | signature | ed25519 over every byte before it (header included) |
//!
//! Because the header is signed, a signature for one kind can never be replayed as another.
//!
//! **Certificate** (`C`), at most [`MAX_CERTIFICATE_LEN`] bytes:
//! serial (16 bytes) · flags (1 byte, bit 0 = CA, other bits must be 0) · not_before (u64) ·
//! not_after (u64, exclusive) · issuer ed25519 key (32 bytes) · subject peer id (short, ≤ 128) ·
//! label (short UTF-8, ≤ 30) · permissions.
//!
//! **Permissions**: count (1 byte, ≤ 32), then each name as a short printable-ASCII field
//! (≤ 32 bytes, no comma). Names unknown to the reader are kept but grant nothing.
//!
//! **Request** (`Q`), at most [`MAX_REQUEST_LEN`] bytes: node ed25519 key (32 bytes; the peer
//! id is derived from it) · label · permissions · created_at (u64). Signed by the node key.
//!
//! **Revocation list** (`R`), at most [`MAX_REVOCATION_LIST_LEN`] bytes: issuer ed25519 key
//! (32 bytes) · sequence (u64) · issued_at (u64) · serial count (u32) then 16 bytes each ·
//! peer count (u32) then each peer id as a short field. Signed by the CA key.
//!
//! Decoders check the size limit first, never trust a count beyond the bytes present, and
//! refuse bytes after the last field. Decoding checks structure only; signatures are checked
//! by the `verify*` methods.
//!
//! ```
//! use mcc_admission::{Certificate, CertificateFields, CertificateRequest, Permissions, keys};
//!
//! let ca_key = keys::to_ed25519(&keys::generate()).unwrap();
//! let ca = Certificate::new_ca(&ca_key, "Home CA", 1_000, 2_000_000_000).unwrap();
//!
//! let node_key = keys::to_ed25519(&keys::generate()).unwrap();
//! let request = CertificateRequest::sign(&node_key, "Kitchen Pi", "rpc:call".parse().unwrap(), 1_000).unwrap();
//! request.verify().unwrap();
//! let cert = Certificate::sign(&ca_key, CertificateFields::from_request(&request, 1_000, 100_000)).unwrap();
//!
//! let text = cert.to_base64();
//! let cert = Certificate::from_base64(&text).unwrap();
//! cert.verify(&ca, 50_000, None).unwrap();
//! assert_eq!(cert.label(), "kitchenpi");
//! ```

mod behaviour;
mod cert;
pub mod codec;
mod error;
mod gate;
pub mod keys;
mod label;
mod permission;
mod request;
mod revocation;
mod time;
mod wire;

pub use behaviour::{AdmissionError, Banned, Behaviour, Config, Event, PROTOCOL_NAME};
pub use cert::{
    Certificate, CertificateFields, EXPIRY_WARNING, MAX_CERTIFICATE_LEN, MAX_PEER_ID_LEN, Serial,
    SerialParseError,
};
pub use error::{CertError, DecodeError, KeyError, PermissionError, SignError};
pub use gate::{GateError, Gated, GatedHandler, GatedUpgrade, Gates};
pub use label::{MAX_LABEL_LEN, normalize_label, normalize_label_or_random, random_label};
pub use permission::{MAX_PERMISSION_LEN, MAX_PERMISSIONS, Permission, Permissions};
pub use request::{CertificateRequest, MAX_REQUEST_LEN};
pub use revocation::{MAX_REVOCATION_LIST_LEN, RevocationFields, RevocationList};
pub use time::{format_unix, now_unix};
pub use wire::{Base64Error, FORMAT_VERSION, Kind, MAGIC};
