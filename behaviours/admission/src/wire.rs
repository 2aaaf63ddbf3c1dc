//! The shared binary framing of every mcc admission object, and base64 text handling.
//!
//! See the crate documentation for the layout.

use std::fmt;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::error::DecodeError;

/// The three magic bytes every object starts with.
pub const MAGIC: &[u8; 3] = b"MCC";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Length of the header: magic, kind tag, version.
pub(crate) const HEADER_LEN: usize = MAGIC.len() + 2;
/// Length of an ed25519 signature.
pub(crate) const SIGNATURE_LEN: usize = 64;

/// Which object an encoding holds (the byte after the magic).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A [`Certificate`](crate::Certificate), tag `C`.
    Certificate,
    /// A [`CertificateRequest`](crate::CertificateRequest), tag `Q`.
    Request,
    /// A [`RevocationList`](crate::RevocationList), tag `R`.
    RevocationList,
}

impl Kind {
    /// The tag byte of this kind.
    pub fn tag(self) -> u8 {
        match self {
            Kind::Certificate => b'C',
            Kind::Request => b'Q',
            Kind::RevocationList => b'R',
        }
    }

    /// The kind with this tag byte.
    pub fn from_tag(tag: u8) -> Option<Kind> {
        match tag {
            b'C' => Some(Kind::Certificate),
            b'Q' => Some(Kind::Request),
            b'R' => Some(Kind::RevocationList),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Certificate => "certificate",
            Kind::Request => "certificate request",
            Kind::RevocationList => "revocation list",
        })
    }
}

/// Padding is optional when reading (people paste keys without it); written text is padded.
const TEXT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encodes bytes as standard, padded base64 on a single line (no trailing newline).
pub fn encode_base64(bytes: &[u8]) -> String {
    TEXT.encode(bytes)
}

/// Decodes base64 text, ignoring ASCII whitespace anywhere (line breaks in files), refusing text
/// that would decode to more than `max` bytes before decoding it.
pub fn decode_base64(text: &str, max: usize) -> Result<Vec<u8>, Base64Error> {
    let max_chars = max.div_ceil(3).saturating_mul(4);
    let mut compact = Vec::with_capacity(text.len().min(max_chars));
    for b in text.bytes() {
        if b.is_ascii_whitespace() {
            continue;
        }
        if compact.len() == max_chars {
            return Err(Base64Error::TooLarge { max });
        }
        compact.push(b);
    }
    if compact.is_empty() {
        return Err(Base64Error::Empty);
    }
    let bytes = TEXT
        .decode(&compact)
        .map_err(|e| Base64Error::Invalid(e.to_string()))?;
    if bytes.len() > max {
        return Err(Base64Error::TooLarge { max });
    }
    Ok(bytes)
}

/// Why base64 text could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Base64Error {
    /// Nothing but whitespace.
    #[error("the text is empty")]
    Empty,
    /// Not base64.
    #[error("not valid base64: {0}")]
    Invalid(String),
    /// Longer than the limit for the object.
    #[error("the text decodes to more than {max} bytes")]
    TooLarge {
        /// Limit in decoded bytes.
        max: usize,
    },
}

/// Builds an encoding: header, fields, then the signature over everything before it.
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new(kind: Kind) -> Writer {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(MAGIC);
        buf.push(kind.tag());
        buf.push(FORMAT_VERSION);
        Writer { buf }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn raw(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    /// A field of at most 255 bytes with a one-byte length prefix. Callers check limits first;
    /// a longer value is a bug and is cut rather than producing an undecodable encoding.
    pub(crate) fn short(&mut self, v: &[u8]) {
        debug_assert!(v.len() <= usize::from(u8::MAX));
        let v = &v[..v.len().min(usize::from(u8::MAX))];
        self.buf.push(v.len() as u8);
        self.buf.extend_from_slice(v);
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Signs everything written so far and appends the signature.
    pub(crate) fn sign(
        mut self,
        sign: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> (Vec<u8>, [u8; SIGNATURE_LEN]) {
        let sig = sign(&self.buf);
        let mut signature = [0u8; SIGNATURE_LEN];
        // ed25519 signatures are always 64 bytes.
        let n = sig.len().min(SIGNATURE_LEN);
        signature[..n].copy_from_slice(&sig[..n]);
        self.buf.extend_from_slice(&signature);
        (self.buf, signature)
    }
}

/// Reads the fields of an encoding, with typed errors instead of panics.
pub(crate) struct Reader<'a> {
    kind: Kind,
    body: &'a [u8],
    pos: usize,
}

/// An opened encoding: a reader over the fields, and the signature.
pub(crate) struct Opened<'a> {
    pub(crate) reader: Reader<'a>,
    pub(crate) signature: [u8; SIGNATURE_LEN],
}

impl<'a> Reader<'a> {
    /// Checks size, magic, kind and version, and splits off the trailing signature.
    pub(crate) fn open(bytes: &'a [u8], kind: Kind, max: usize) -> Result<Opened<'a>, DecodeError> {
        if bytes.len() > max {
            return Err(DecodeError::TooLarge {
                kind,
                len: bytes.len(),
                max,
            });
        }
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(DecodeError::BadMagic { expected: kind });
        }
        let Some(&tag) = bytes.get(MAGIC.len()) else {
            return Err(DecodeError::Truncated {
                kind,
                field: "header",
            });
        };
        match Kind::from_tag(tag) {
            Some(found) if found == kind => {}
            Some(found) => {
                return Err(DecodeError::WrongKind {
                    expected: kind,
                    found,
                });
            }
            None => {
                return Err(DecodeError::UnknownKind {
                    expected: kind,
                    tag,
                });
            }
        }
        let Some(&version) = bytes.get(MAGIC.len() + 1) else {
            return Err(DecodeError::Truncated {
                kind,
                field: "header",
            });
        };
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                kind,
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if bytes.len() < HEADER_LEN + SIGNATURE_LEN {
            return Err(DecodeError::Truncated {
                kind,
                field: "signature",
            });
        }
        let split = bytes.len() - SIGNATURE_LEN;
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(&bytes[split..]);
        Ok(Opened {
            reader: Reader {
                kind,
                body: &bytes[..split],
                pos: HEADER_LEN,
            },
            signature,
        })
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn remaining(&self) -> usize {
        self.body.len() - self.pos
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                kind: self.kind,
                field,
            });
        }
        let out = &self.body[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A one-byte-length-prefixed field of `1..=max` bytes.
    pub(crate) fn short(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<&'a [u8], DecodeError> {
        let len = usize::from(self.u8(field)?);
        if len == 0 || len > max {
            return Err(self.invalid(field, format!("length {len} is outside 1..={max}")));
        }
        self.take(len, field)
    }

    pub(crate) fn invalid(&self, field: &'static str, reason: impl Into<String>) -> DecodeError {
        DecodeError::InvalidField {
            kind: self.kind,
            field,
            reason: reason.into(),
        }
    }

    /// Ends reading; bytes left over between the fields and the signature are an error.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                kind: self.kind,
                count,
            }),
        }
    }
}
