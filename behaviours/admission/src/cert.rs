//! Node and CA certificates.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use libp2p::PeerId;
use libp2p::identity::ed25519;

use crate::error::{CertError, DecodeError, SignError};
use crate::keys::peer_id_of;
use crate::label::{MAX_LABEL_LEN, normalize_label};
use crate::permission::Permissions;
use crate::request::CertificateRequest;
use crate::revocation::RevocationList;
use crate::wire::{self, Kind, Reader, SIGNATURE_LEN, Writer};

/// Largest encoded certificate accepted, in bytes (a real one is a few hundred).
pub const MAX_CERTIFICATE_LEN: usize = 2048;
/// Longest encoded peer id accepted, in bytes.
pub const MAX_PEER_ID_LEN: usize = 128;
/// How long before expiry a node should start warning about it.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 60 * 60);

const FLAG_CA: u8 = 0x01;

/// A certificate serial number: 16 random bytes, shown as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serial(pub [u8; 16]);

impl Serial {
    /// A fresh random serial.
    pub fn random() -> Serial {
        Serial(rand::random())
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

/// A serial that is not 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid serial {0:?}: expected 32 hex digits")]
pub struct SerialParseError(pub String);

impl FromStr for Serial {
    type Err = SerialParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let err = || SerialParseError(s.to_string());
        if t.len() != 32 || !t.is_ascii() {
            return Err(err());
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|_| err())?;
        }
        Ok(Serial(out))
    }
}

/// What a CA puts into a certificate; see [`Certificate::sign`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFields {
    /// The node the certificate is for.
    pub peer_id: PeerId,
    /// Its label; normalized when signing.
    pub label: String,
    /// What it may do.
    pub permissions: Permissions,
    /// Start of validity, unix seconds.
    pub not_before: u64,
    /// End of validity (exclusive), unix seconds.
    pub not_after: u64,
    /// Whether this is a (self-signed, root) CA certificate.
    pub is_ca: bool,
    /// Serial number; `None` picks a random one.
    pub serial: Option<Serial>,
}

impl CertificateFields {
    /// Fields for a node certificate.
    pub fn new(
        peer_id: PeerId,
        label: impl Into<String>,
        permissions: Permissions,
        not_before: u64,
        not_after: u64,
    ) -> CertificateFields {
        CertificateFields {
            peer_id,
            label: label.into(),
            permissions,
            not_before,
            not_after,
            is_ca: false,
            serial: None,
        }
    }

    /// Fields for a node certificate granting what `request` asks for. The CA should call
    /// [`CertificateRequest::verify`] first, and may edit the permissions before signing.
    pub fn from_request(request: &CertificateRequest, not_before: u64, not_after: u64) -> Self {
        CertificateFields::new(
            request.peer_id(),
            request.label(),
            request.permissions().clone(),
            not_before,
            not_after,
        )
    }

    /// Fields for a root CA certificate for `ca_key`, with permission `all`.
    pub fn ca(
        ca_key: &ed25519::PublicKey,
        label: impl Into<String>,
        not_before: u64,
        not_after: u64,
    ) -> Self {
        CertificateFields {
            is_ca: true,
            ..CertificateFields::new(
                peer_id_of(ca_key),
                label,
                Permissions::all(),
                not_before,
                not_after,
            )
        }
    }
}

/// A signed certificate: binds a peer id to a label, permissions and a validity window, issued
/// by a CA key. Immutable; built by [`Certificate::sign`] or decoded.
///
/// Equality compares the exact encoding.
#[derive(Clone, Debug)]
pub struct Certificate {
    serial: Serial,
    is_ca: bool,
    not_before: u64,
    not_after: u64,
    issuer: ed25519::PublicKey,
    peer_id: PeerId,
    label: String,
    permissions: Permissions,
    signature: [u8; SIGNATURE_LEN],
    encoded: Vec<u8>,
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.encoded == other.encoded
    }
}

impl Eq for Certificate {}

impl std::hash::Hash for Certificate {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.encoded.hash(state);
    }
}

impl Certificate {
    /// Signs a certificate with `issuer`. The label is normalized ([`normalize_label`]); a CA
    /// certificate (`is_ca`) must be for the issuer's own peer id.
    pub fn sign(
        issuer: &ed25519::Keypair,
        fields: CertificateFields,
    ) -> Result<Certificate, SignError> {
        let label = normalize_label(&fields.label)
            .ok_or_else(|| SignError::EmptyLabel(fields.label.clone()))?;
        if fields.not_before >= fields.not_after {
            return Err(SignError::InvalidValidity {
                not_before: fields.not_before,
                not_after: fields.not_after,
            });
        }
        let issuer_public = issuer.public();
        if fields.is_ca && fields.peer_id != peer_id_of(&issuer_public) {
            return Err(SignError::CaNotSelfSigned);
        }
        fields.permissions.check_limits()?;
        let peer_bytes = fields.peer_id.to_bytes();
        if peer_bytes.len() > MAX_PEER_ID_LEN {
            return Err(SignError::TooLarge {
                field: "peer id",
                len: peer_bytes.len(),
                max: MAX_PEER_ID_LEN,
            });
        }
        let serial = fields.serial.unwrap_or_else(Serial::random);

        let mut w = Writer::new(Kind::Certificate);
        w.raw(&serial.0);
        w.u8(if fields.is_ca { FLAG_CA } else { 0 });
        w.u64(fields.not_before);
        w.u64(fields.not_after);
        w.raw(&issuer_public.to_bytes());
        w.short(&peer_bytes);
        w.short(label.as_bytes());
        fields.permissions.encode(&mut w);
        let (encoded, signature) = w.sign(|tbs| issuer.sign(tbs));

        Ok(Certificate {
            serial,
            is_ca: fields.is_ca,
            not_before: fields.not_before,
            not_after: fields.not_after,
            issuer: issuer_public,
            peer_id: fields.peer_id,
            label,
            permissions: fields.permissions,
            signature,
            encoded,
        })
    }

    /// Creates a self-signed root CA certificate for `ca_key` with permission `all`.
    pub fn new_ca(
        ca_key: &ed25519::Keypair,
        label: &str,
        not_before: u64,
        not_after: u64,
    ) -> Result<Certificate, SignError> {
        Certificate::sign(
            ca_key,
            CertificateFields::ca(&ca_key.public(), label, not_before, not_after),
        )
    }

    /// Decodes a certificate (binary form). Checks structure only, not the signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<Certificate, DecodeError> {
        let opened = Reader::open(bytes, Kind::Certificate, MAX_CERTIFICATE_LEN)?;
        let mut r = opened.reader;
        let serial = Serial(r.array("serial")?);
        let flags = r.u8("flags")?;
        if flags & !FLAG_CA != 0 {
            return Err(r.invalid("flags", format!("unknown flag bits {flags:#04x}")));
        }
        let not_before = r.u64("not_before")?;
        let not_after = r.u64("not_after")?;
        if not_before >= not_after {
            return Err(r.invalid("validity", "not_before is not before not_after"));
        }
        let issuer = read_ed25519(&mut r, "issuer key")?;
        let peer_id = read_peer_id(&mut r)?;
        let label = read_label(&mut r)?;
        let permissions = Permissions::decode(&mut r)?;
        r.finish()?;
        Ok(Certificate {
            serial,
            is_ca: flags & FLAG_CA != 0,
            not_before,
            not_after,
            issuer,
            peer_id,
            label,
            permissions,
            signature: opened.signature,
            encoded: bytes.to_vec(),
        })
    }

    /// The binary encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encoded.clone()
    }

    /// The binary encoding, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.encoded
    }

    /// The binary encoding as one line of base64 (the `--cert` / `--trust-ca` file content).
    pub fn to_base64(&self) -> String {
        wire::encode_base64(&self.encoded)
    }

    /// Decodes base64 text; whitespace and line breaks anywhere are ignored.
    pub fn from_base64(text: &str) -> Result<Certificate, DecodeError> {
        Certificate::from_bytes(&wire::decode_base64(text, MAX_CERTIFICATE_LEN)?)
    }

    /// Checks the signature against `issuer_public` (only the signature: no times, no CA flag).
    pub fn verify_signature(&self, issuer_public: &ed25519::PublicKey) -> Result<(), CertError> {
        count_signature_check();
        let tbs = &self.encoded[..self.encoded.len() - SIGNATURE_LEN];
        if issuer_public.verify(tbs, &self.signature) {
            Ok(())
        } else {
            Err(CertError::BadSignature)
        }
    }

    /// Checks that this is a usable root CA at `now`: CA flag, self-issued, valid
    /// self-signature, within its validity window.
    pub fn verify_ca(&self, now: u64) -> Result<(), CertError> {
        self.check_ca_structure()?;
        self.check_ca_window(now)
    }

    /// The validity window of a CA certificate, as the CA errors.
    fn check_ca_window(&self, now: u64) -> Result<(), CertError> {
        if now < self.not_before {
            return Err(CertError::CaNotYetValid {
                not_before: self.not_before,
                now,
            });
        }
        if now >= self.not_after {
            return Err(CertError::CaExpired {
                not_after: self.not_after,
                now,
            });
        }
        Ok(())
    }

    /// CA flag, self-issued, valid self-signature (no time check).
    pub(crate) fn check_ca_structure(&self) -> Result<(), CertError> {
        if !self.is_ca {
            return Err(CertError::NotCa);
        }
        if self.peer_id != peer_id_of(&self.issuer) {
            return Err(CertError::CaNotSelfSigned);
        }
        self.verify_signature(&self.issuer)
            .map_err(|_| CertError::CaBadSignature)
    }

    /// Full check of this certificate against the trusted root CA at `now`:
    ///
    /// 1. `trusted_ca` is a valid, self-signed CA certificate within its validity window;
    /// 2. this certificate is issued by the CA's key and its signature verifies;
    /// 3. `now` is within this certificate's validity window;
    /// 4. if `revocations` is given: the list is signed by the CA and names neither this
    ///    certificate's serial nor its peer id.
    ///
    /// A CA certificate other than `trusted_ca` itself is refused (no intermediate CAs).
    pub fn verify(
        &self,
        trusted_ca: &Certificate,
        now: u64,
        revocations: Option<&RevocationList>,
    ) -> Result<(), CertError> {
        trusted_ca.verify_ca(now)?;
        if let Some(list) = revocations {
            list.verify(trusted_ca)?;
        }
        self.verify_checked(trusted_ca, now, revocations)
    }

    /// [`verify_for_peer`](Self::verify_for_peer) with a trusted CA whose structure and
    /// self-signature ([`Certificate::verify_ca`]) and a revocation list whose signature
    /// ([`RevocationList::verify`]) the caller has already checked: only this certificate's
    /// signature is verified, plus the time windows and the list's entries.
    pub fn verify_for_peer_checked(
        &self,
        peer: &PeerId,
        trusted_ca: &Certificate,
        now: u64,
        revocations: Option<&RevocationList>,
    ) -> Result<(), CertError> {
        trusted_ca.check_ca_window(now)?;
        self.verify_checked(trusted_ca, now, revocations)?;
        if &self.peer_id != peer {
            return Err(CertError::PeerMismatch {
                found: self.peer_id,
            });
        }
        Ok(())
    }

    /// Checks again a certificate that passed [`verify_for_peer`](Self::verify_for_peer) or
    /// [`verify_for_peer_checked`](Self::verify_for_peer_checked) with the same `trusted_ca`:
    /// no signature is verified, only the time windows of the CA and the certificate and the
    /// revocation list's entries (its signature checked by the caller).
    pub fn recheck_verified(
        &self,
        trusted_ca: &Certificate,
        now: u64,
        revocations: Option<&RevocationList>,
    ) -> Result<(), CertError> {
        trusted_ca.check_ca_window(now)?;
        self.check_validity(now)?;
        if let Some(list) = revocations {
            list.check(self)?;
        }
        Ok(())
    }

    /// The checks of [`verify`](Self::verify) that do not concern the CA and list signatures.
    fn verify_checked(
        &self,
        trusted_ca: &Certificate,
        now: u64,
        revocations: Option<&RevocationList>,
    ) -> Result<(), CertError> {
        if self.is_ca && self != trusted_ca {
            return Err(CertError::UnexpectedCa);
        }
        if self.issuer != trusted_ca.issuer {
            if peer_id_of(&self.issuer) == self.peer_id {
                return Err(CertError::SelfSigned);
            }
            return Err(CertError::WrongIssuer {
                issuer: peer_id_of(&self.issuer),
            });
        }
        self.verify_signature(&trusted_ca.issuer)?;
        self.check_validity(now)?;
        if let Some(list) = revocations {
            list.check(self)?;
        }
        Ok(())
    }

    /// [`verify`](Self::verify), and that the certificate is for `peer` (the peer presenting it
    /// on an authenticated connection).
    pub fn verify_for_peer(
        &self,
        peer: &PeerId,
        trusted_ca: &Certificate,
        now: u64,
        revocations: Option<&RevocationList>,
    ) -> Result<(), CertError> {
        self.verify(trusted_ca, now, revocations)?;
        if &self.peer_id != peer {
            return Err(CertError::PeerMismatch {
                found: self.peer_id,
            });
        }
        Ok(())
    }

    /// Whether `now` is within the validity window, as an error that says which end failed.
    pub fn check_validity(&self, now: u64) -> Result<(), CertError> {
        if now < self.not_before {
            return Err(CertError::NotYetValid {
                not_before: self.not_before,
                now,
            });
        }
        if now >= self.not_after {
            return Err(CertError::Expired {
                not_after: self.not_after,
                now,
            });
        }
        Ok(())
    }

    /// Time left until expiry; `None` once expired.
    pub fn expires_in(&self, now: u64) -> Option<Duration> {
        (now < self.not_after).then(|| Duration::from_secs(self.not_after - now))
    }

    /// Whether the certificate expires within `window` of `now` (or already has); use with
    /// [`EXPIRY_WARNING`] to warn ahead of time.
    pub fn expires_within(&self, now: u64, window: Duration) -> bool {
        self.expires_in(now).is_none_or(|left| left <= window)
    }

    /// The serial number.
    pub fn serial(&self) -> Serial {
        self.serial
    }

    /// Whether this is a CA certificate.
    pub fn is_ca(&self) -> bool {
        self.is_ca
    }

    /// Start of validity, unix seconds.
    pub fn not_before(&self) -> u64 {
        self.not_before
    }

    /// End of validity (exclusive), unix seconds.
    pub fn not_after(&self) -> u64 {
        self.not_after
    }

    /// The issuer's ed25519 public key.
    pub fn issuer(&self) -> &ed25519::PublicKey {
        &self.issuer
    }

    /// The peer the certificate is for.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The node's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The granted permissions.
    pub fn permissions(&self) -> &Permissions {
        &self.permissions
    }
}

pub(crate) fn read_ed25519(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<ed25519::PublicKey, DecodeError> {
    let raw: [u8; 32] = r.array(field)?;
    ed25519::PublicKey::try_from_bytes(&raw).map_err(|e| r.invalid(field, e.to_string()))
}

pub(crate) fn read_peer_id(r: &mut Reader<'_>) -> Result<PeerId, DecodeError> {
    let raw = r.short("peer id", MAX_PEER_ID_LEN)?;
    PeerId::from_bytes(raw).map_err(|e| r.invalid("peer id", e.to_string()))
}

/// Reads a label: 1..=30 bytes of UTF-8. Normalization is enforced when signing, not here, so
/// that a different Unicode table in another build does not reject a valid certificate.
pub(crate) fn read_label(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let raw = r.short("label", MAX_LABEL_LEN)?;
    match std::str::from_utf8(raw) {
        Ok(s) if !s.chars().any(char::is_control) => Ok(s.to_string()),
        _ => Err(r.invalid("label", "not printable UTF-8")),
    }
}

#[cfg(test)]
thread_local! {
    static SIGNATURE_CHECKS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts an ed25519 signature check of a certificate or revocation list (tests only, per
/// thread).
pub(crate) fn count_signature_check() {
    #[cfg(test)]
    SIGNATURE_CHECKS.with(|c| c.set(c.get() + 1));
}

/// Signature checks made by this thread so far (tests only).
#[cfg(test)]
pub(crate) fn signature_checks() -> u64 {
    SIGNATURE_CHECKS.with(std::cell::Cell::get)
}
