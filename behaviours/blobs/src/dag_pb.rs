//! A lenient dag-pb reader: the CIDs a node links to, whatever else it holds (unknown fields
//! are skipped; no UnixFS checks). The node's blob store uses it to find every block a partial
//! fetch owns. [`crate::unixfs::decode`] is the strict decoder for reading files.

use crate::Cid;

/// Why a dag-pb node could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PbError {
    /// The bytes end inside a field.
    #[error("truncated protobuf")]
    Truncated,
    /// A varint is longer than 64 bits.
    #[error("varint longer than 64 bits")]
    Varint,
    /// A field of a wire type protobuf does not have (3, 4: groups; 6, 7).
    #[error("unsupported protobuf wire type {0}")]
    WireType(u64),
    /// A `PBLink` without its `Hash`.
    #[error("link without a hash")]
    MissingHash,
    /// A `PBLink.Hash` that is not a CID.
    #[error("link hash is not a CID: {0}")]
    Cid(String),
}

/// The CIDs a dag-pb node links to (`PBNode.Links[].Hash`), in order, CIDv0 links as CIDv1.
pub fn links(node: &[u8]) -> Result<Vec<Cid>, PbError> {
    let mut links = Vec::new();
    let mut rest = node;
    while !rest.is_empty() {
        let (field, wire) = read_key(&mut rest)?;
        if field == 2 && wire == WIRE_LEN {
            let link = read_bytes(&mut rest)?;
            // Stored under CIDv1: a CIDv0 link names the same block.
            links.push(crate::unixfs::normalize(link_hash(link)?));
        } else {
            skip_field(&mut rest, wire)?;
        }
    }
    Ok(links)
}

/// `PBLink.Hash` of an encoded `PBLink`.
fn link_hash(link: &[u8]) -> Result<Cid, PbError> {
    let mut hash = None;
    let mut rest = link;
    while !rest.is_empty() {
        let (field, wire) = read_key(&mut rest)?;
        if field == 1 && wire == WIRE_LEN {
            hash = Some(read_bytes(&mut rest)?);
        } else {
            skip_field(&mut rest, wire)?;
        }
    }
    let hash = hash.ok_or(PbError::MissingHash)?;
    Cid::try_from(hash).map_err(|e| PbError::Cid(e.to_string()))
}

const WIRE_VARINT: u64 = 0;
const WIRE_I64: u64 = 1;
const WIRE_LEN: u64 = 2;
const WIRE_I32: u64 = 5;

fn read_varint(buf: &mut &[u8]) -> Result<u64, PbError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or(PbError::Truncated)?;
        *buf = rest;
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return Err(PbError::Varint);
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(PbError::Varint)
}

fn read_key(buf: &mut &[u8]) -> Result<(u64, u64), PbError> {
    let key = read_varint(buf)?;
    Ok((key >> 3, key & 7))
}

fn read_bytes<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], PbError> {
    let len = usize::try_from(read_varint(buf)?).map_err(|_| PbError::Truncated)?;
    if len > buf.len() {
        return Err(PbError::Truncated);
    }
    let (bytes, rest) = buf.split_at(len);
    *buf = rest;
    Ok(bytes)
}

fn skip_field(buf: &mut &[u8], wire: u64) -> Result<(), PbError> {
    let skip = match wire {
        WIRE_VARINT => return read_varint(buf).map(drop),
        WIRE_LEN => return read_bytes(buf).map(drop),
        WIRE_I64 => 8,
        WIRE_I32 => 4,
        other => return Err(PbError::WireType(other)),
    };
    *buf = buf.get(skip..).ok_or(PbError::Truncated)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DAG_PB, RAW, cid_of};

    fn field(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
        out.push(((field << 3) | WIRE_LEN) as u8);
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }

    /// A dag-pb node linking `links`, each with an empty name and a size.
    fn node(links: &[Cid]) -> Vec<u8> {
        let mut out = Vec::new();
        for l in links {
            let mut link = Vec::new();
            field(1, &l.to_bytes(), &mut link);
            field(2, b"", &mut link);
            link.extend_from_slice(&[(3 << 3) | WIRE_VARINT as u8, 0x80, 0x80, 0x40]);
            field(2, &link, &mut out);
        }
        field(1, &[0x08, 0x02], &mut out);
        out
    }

    #[test]
    fn reads_links_and_skips_the_rest() {
        let a = cid_of(RAW, b"a");
        let b = cid_of(DAG_PB, b"b");
        let bytes = node(&[a, b]);
        assert_eq!(links(&bytes).expect("links"), vec![a, b]);
        assert_eq!(links(&node(&[])).expect("links"), vec![]);
        assert!(matches!(
            links(&bytes[..bytes.len() - 1]),
            Err(PbError::Truncated)
        ));
        assert!(matches!(links(&[0x13]), Err(PbError::WireType(3))));
        assert!(matches!(
            links(&[0x12, 0x02, 0x18, 0x01]),
            Err(PbError::MissingHash)
        ));
        assert!(matches!(links(&[0x80; 11]), Err(PbError::Varint)));
        // Fixed-width fields are skipped.
        let mut fixed = vec![0x19];
        fixed.extend_from_slice(&[0; 8]);
        fixed.extend_from_slice(&[0x1d, 0, 0, 0, 0]);
        assert_eq!(links(&fixed).expect("links"), vec![]);
    }
}
