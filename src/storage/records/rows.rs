//! Encoding and decoding of the rows of the `records` and `providers` tables.
//!
//! A record row is `[format=1][flags]`, then `[expires: u64 LE ms]` if flag `0x02`, then
//! `[publisher: u32 LE length + PeerId bytes]` if flag `0x01`, then the value up to the end.
//! A provider row is `[format=1][flags]`, `[expires: u64 LE ms]` if flag `0x02`, then
//! `[count: u32 LE]` and `count` times `[u32 LE length + Multiaddr bytes]`.

use libp2p::kad::{ProviderRecord, Record, RecordKey};
use libp2p::{Multiaddr, PeerId};

use super::clock::Clock;

pub(super) const ROW_FORMAT_V1: u8 = 1;
pub(super) const FLAG_PUBLISHER: u8 = 0x01;
pub(super) const FLAG_EXPIRES: u8 = 0x02;

/// Why a stored row could not be decoded (or a record not encoded).
#[derive(Debug, thiserror::Error)]
pub(super) enum RowError {
    #[error("row ends early")]
    Truncated,
    #[error("unknown row format {0}")]
    Format(u8),
    #[error("unknown flag bits {0:#04x}")]
    Flags(u8),
    #[error("{0} trailing bytes")]
    Trailing(usize),
    #[error("invalid peer id: {0}")]
    PeerId(String),
    #[error("invalid multiaddr: {0}")]
    Multiaddr(String),
    #[error("a field of {0} bytes is too long to store")]
    TooLong(usize),
}

fn put_len_prefixed(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), RowError> {
    let len = u32::try_from(bytes.len()).map_err(|_| RowError::TooLong(bytes.len()))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

pub(super) fn encode_record(r: &Record, clock: &Clock) -> Result<Vec<u8>, RowError> {
    let publisher = r.publisher.map(PeerId::to_bytes);
    let mut flags = 0;
    if publisher.is_some() {
        flags |= FLAG_PUBLISHER;
    }
    if r.expires.is_some() {
        flags |= FLAG_EXPIRES;
    }
    let mut out = Vec::with_capacity(2 + 8 + 4 + 64 + r.value.len());
    out.push(ROW_FORMAT_V1);
    out.push(flags);
    if let Some(expires) = r.expires {
        out.extend_from_slice(&clock.to_unix_ms(expires).to_le_bytes());
    }
    if let Some(publisher) = &publisher {
        put_len_prefixed(&mut out, publisher)?;
    }
    out.extend_from_slice(&r.value);
    Ok(out)
}

pub(super) fn encode_provider(p: &ProviderRecord, clock: &Clock) -> Result<Vec<u8>, RowError> {
    let mut out = Vec::with_capacity(2 + 8 + 4 + 32 * p.addresses.len());
    out.push(ROW_FORMAT_V1);
    out.push(if p.expires.is_some() { FLAG_EXPIRES } else { 0 });
    if let Some(expires) = p.expires {
        out.extend_from_slice(&clock.to_unix_ms(expires).to_le_bytes());
    }
    let count =
        u32::try_from(p.addresses.len()).map_err(|_| RowError::TooLong(p.addresses.len()))?;
    out.extend_from_slice(&count.to_le_bytes());
    for addr in &p.addresses {
        put_len_prefixed(&mut out, addr.as_ref())?;
    }
    Ok(out)
}

/// A cursor over a stored row.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RowError> {
        let (head, tail) = self.0.split_at_checked(n).ok_or(RowError::Truncated)?;
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RowError> {
        self.take(N)?.try_into().map_err(|_| RowError::Truncated)
    }

    fn u8(&mut self) -> Result<u8, RowError> {
        Ok(u8::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, RowError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, RowError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn len_prefixed(&mut self) -> Result<&'a [u8], RowError> {
        let len = usize::try_from(self.u32()?).map_err(|_| RowError::Truncated)?;
        self.take(len)
    }

    /// Reads the format byte and flags, rejecting unknown formats and flag bits.
    fn header(&mut self, known_flags: u8) -> Result<u8, RowError> {
        let format = self.u8()?;
        if format != ROW_FORMAT_V1 {
            return Err(RowError::Format(format));
        }
        let flags = self.u8()?;
        if flags & !known_flags != 0 {
            return Err(RowError::Flags(flags & !known_flags));
        }
        Ok(flags)
    }

    fn finish(self) -> Result<(), RowError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(RowError::Trailing(self.0.len()))
        }
    }
}

/// A decoded record row, borrowing its value from the stored bytes.
pub(super) struct RecordRow<'a> {
    pub(super) expires_ms: Option<u64>,
    publisher: Option<PeerId>,
    value: &'a [u8],
}

impl RecordRow<'_> {
    pub(super) fn into_record(self, key: &RecordKey, clock: &Clock) -> Record {
        Record {
            key: key.clone(),
            value: self.value.to_vec(),
            publisher: self.publisher,
            expires: self.expires_ms.map(|ms| clock.to_instant(ms)),
        }
    }
}

pub(super) fn decode_record(bytes: &[u8]) -> Result<RecordRow<'_>, RowError> {
    let mut r = Reader(bytes);
    let flags = r.header(FLAG_PUBLISHER | FLAG_EXPIRES)?;
    let expires_ms = if flags & FLAG_EXPIRES != 0 {
        Some(r.u64()?)
    } else {
        None
    };
    let publisher = if flags & FLAG_PUBLISHER != 0 {
        let bytes = r.len_prefixed()?;
        Some(PeerId::from_bytes(bytes).map_err(|e| RowError::PeerId(e.to_string()))?)
    } else {
        None
    };
    Ok(RecordRow {
        expires_ms,
        publisher,
        value: r.0,
    })
}

/// A decoded provider row (the key and provider live in the table key).
pub(super) struct ProviderRow {
    pub(super) expires_ms: Option<u64>,
    addresses: Vec<Multiaddr>,
}

impl ProviderRow {
    pub(super) fn into_record(
        self,
        key: RecordKey,
        provider: PeerId,
        clock: &Clock,
    ) -> ProviderRecord {
        ProviderRecord {
            key,
            provider,
            expires: self.expires_ms.map(|ms| clock.to_instant(ms)),
            addresses: self.addresses,
        }
    }
}

pub(super) fn decode_provider(bytes: &[u8]) -> Result<ProviderRow, RowError> {
    let mut r = Reader(bytes);
    let flags = r.header(FLAG_EXPIRES)?;
    let expires_ms = if flags & FLAG_EXPIRES != 0 {
        Some(r.u64()?)
    } else {
        None
    };
    let count = r.u32()?;
    // The count comes from disk: do not trust it for an allocation.
    let mut addresses = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(16));
    for _ in 0..count {
        let bytes = r.len_prefixed()?;
        let addr =
            Multiaddr::try_from(bytes.to_vec()).map_err(|e| RowError::Multiaddr(e.to_string()))?;
        addresses.push(addr);
    }
    r.finish()?;
    Ok(ProviderRow {
        expires_ms,
        addresses,
    })
}

pub(super) fn decode_provider_key(peer: &[u8]) -> Result<PeerId, RowError> {
    PeerId::from_bytes(peer).map_err(|e| RowError::PeerId(e.to_string()))
}

pub(super) fn decode_provider_record(
    key: &RecordKey,
    peer: &[u8],
    row: &[u8],
    clock: &Clock,
) -> Result<ProviderRecord, RowError> {
    let provider = decode_provider_key(peer)?;
    Ok(decode_provider(row)?.into_record(key.clone(), provider, clock))
}
