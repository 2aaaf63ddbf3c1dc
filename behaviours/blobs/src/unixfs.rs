//! IPFS-compatible content addressing of files: 1 MiB raw leaves under a UnixFS dag-pb tree in
//! the balanced layout.
//!
//! What [`Builder`] makes is what `ipfs add --cid-version=1 --raw-leaves
//! --chunker=size-1048576` makes:
//!
//! - the file is cut into [`CHUNK_SIZE`] chunks, each a raw block (CIDv1, codec [`RAW`],
//!   sha2-256); a file of at most one chunk is its raw block (the empty file is the raw block of
//!   no bytes);
//! - otherwise the leaves are grouped [`MAX_LINKS`] at a time under dag-pb nodes, those nodes
//!   [`MAX_LINKS`] at a time under the next level, and so on until one node, the root, is left.
//!
//! Each dag-pb node is the canonical dag-pb encoding of
//!
//! ```text
//! PBNode { Links (field 2): [PBLink { Hash (1): child CID, Name (2): "", Tsize (3) }],
//!          Data (field 1): UnixFS Data { Type (1): File = 2, filesize (3), blocksizes (4)* } }
//! ```
//!
//! with the links written before the data, `Tsize` the serialized size of the child's whole
//! subtree (a raw leaf: its length; a node: its encoding plus its links' `Tsize`s), `filesize`
//! the bytes of the file under the node and one `blocksizes` entry (not packed) per child.

use std::ops::Range;

use crate::{CHUNK_SIZE, Cid, DAG_PB, MAX_DECODE_LINKS, MAX_LINKS, RAW, cid_of, verify};

// ---------------------------------------------------------------------------------------------
// Limits on the shape of a DAG
//
// A dag-pb node may link the same child many times, and content addressing cannot stop it: a
// "DAG bomb" whose every node links [`MAX_LINKS`] times to one child has `depth + 1` distinct
// blocks but `174^depth` leaves in file order. Legitimate files repeat blocks too (a file of
// zeros is one 1 MiB leaf linked again and again, and once the run of zeros passes 174 MiB, the
// same internal node repeats), so neither "few distinct blocks" nor "declared size far above the
// distinct bytes" marks a bomb. What does: the work a reader does is one block read per leaf in
// file order, so a DAG is refused when that count is out of proportion, either absolutely
// ([`MAX_LEAVES`]) or relative to the bytes it yields ([`MIN_AVERAGE_LEAF_SIZE`]). [`measure`]
// computes the counts with one visit per distinct dag-pb node (memoised), never per leaf.

/// Most leaves (counted in file order, repeats included) a DAG may have: 4 Mi, that is 4 TiB of
/// 1 MiB leaves ([`Builder`] never makes more than one leaf per MiB). A DAG with more leaves is
/// refused whatever its blocks, so reading a blob never costs more than this many block reads.
pub const MAX_LEAVES: u64 = 1 << 22;

/// Most distinct blocks a DAG may have (the same 4 TiB): a bound on the work and memory of every
/// walk, which visits each distinct block at most once.
pub const MAX_WALK: usize = 1 << 22;

/// Most levels of dag-pb nodes between the root and a leaf (root included). A balanced DAG of
/// [`MAX_LEAVES`] leaves has 3; other layouts (trickle) have a few more. Walks keep one node per
/// level, so this bounds their memory to `MAX_DEPTH` × [`MAX_LINKS`] links.
pub const MAX_DEPTH: usize = 32;

/// Leaves a DAG may have whatever their sizes: up to this many, reading a blob costs at most a
/// few thousand block reads, a fine price even for a file of tiny chunks.
pub const FREE_LEAVES: u64 = 1 << 12;

/// Smallest average size of a leaf (the file's size over its leaves, in file order) in a DAG of
/// more than [`FREE_LEAVES`] leaves. IPFS chunkers cut 256 KiB (default) to 1 MiB (mcc) chunks,
/// content-defined ones at least 128 KiB on average; a DAG whose leaves average less than 16 KiB
/// makes a reader do far more block reads than the bytes it gets are worth (the depth-3 bomb:
/// 5.3 million reads for 5.3 MB), so it is refused.
pub const MIN_AVERAGE_LEAF_SIZE: u64 = 16 * 1024;

/// A block ready to store: `cid` names `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The block's CID (codec [`RAW`] for leaves, [`DAG_PB`] for nodes).
    pub cid: Cid,
    /// The block's bytes.
    pub data: Vec<u8>,
}

/// A decoded dag-pb node of a UnixFS file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The children, in file order.
    pub links: Vec<Link>,
    /// Bytes of the file under this node (the sum of `blocksizes`).
    pub filesize: u64,
    /// Bytes of the file under each child, one per link.
    pub blocksizes: Vec<u64>,
}

/// A link of a dag-pb node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The child's CID.
    pub cid: Cid,
    /// Serialized size of the child's whole subtree (the dag-pb `Tsize`).
    pub tsize: u64,
}

/// Why a block is not a UnixFS file node this module can use, or why a DAG walk failed.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end inside a field.
    #[error("truncated protobuf")]
    Truncated,
    /// A varint is longer than 10 bytes or overflows 64 bits.
    #[error("malformed varint")]
    BadVarint,
    /// The protobuf is not a canonical dag-pb node / UnixFS message.
    #[error("malformed protobuf: {0}")]
    Malformed(&'static str),
    /// The node is not a UnixFS file (no Data, or another Type).
    #[error("not a UnixFS file node")]
    NotFile,
    /// The node is a UnixFS directory (or HAMT shard): only files can be fetched and read.
    #[error("a UnixFS directory, not a file: fetch one of its files by its own CID")]
    Directory,
    /// The node holds file bytes inline *and* has children: unsupported. (A leaf holding its
    /// bytes inline, as importers make without `--raw-leaves`, is fine.)
    #[error("UnixFS node with both inline data and links is unsupported")]
    InlineData,
    /// More than [`MAX_DECODE_LINKS`] links or block sizes.
    #[error("more than {MAX_DECODE_LINKS} links in a node")]
    TooManyLinks,
    /// The number of links differs from the number of block sizes.
    #[error("{links} links but {blocksizes} blocksizes")]
    LinkCountMismatch {
        /// Links in the node.
        links: usize,
        /// Block sizes in the node's UnixFS data.
        blocksizes: usize,
    },
    /// Sizes disagree: `filesize` is not the sum of `blocksizes`, or a child's size differs from
    /// what its parent says.
    #[error("size mismatch: {0}")]
    SizeMismatch(&'static str),
    /// A link's hash is not a valid CID.
    #[error("bad CID in link: {0}")]
    BadCid(String),
    /// A CID in the DAG has a codec other than raw or dag-pb.
    #[error("unsupported codec {0:#x} in {1}")]
    UnsupportedCodec(u64, Cid),
    /// [`leaves`]: a block of the DAG is not available.
    #[error("missing block {0}")]
    Missing(Cid),
    /// [`leaves`]: a block does not hash to its CID (or is not sha2-256).
    #[error("block {0} does not match its CID")]
    BadBlock(Cid),
    /// The DAG is out of proportion (see [`Refusal`]): it is refused, not walked.
    #[error("blob DAG refused: {0}")]
    Refused(#[from] Refusal),
    /// The block store failed.
    #[error("block store: {0}")]
    Store(#[from] std::io::Error),
}

/// Why a DAG is refused: its shape is out of proportion (see [`MAX_LEAVES`] and the limits
/// beside it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// More than [`MAX_LEAVES`] leaves in file order.
    #[error("more than {MAX_LEAVES} leaves in file order (at least {leaves})")]
    TooManyLeaves {
        /// Leaves counted so far (a lower bound).
        leaves: u64,
    },
    /// More than [`FREE_LEAVES`] leaves averaging less than [`MIN_AVERAGE_LEAF_SIZE`] bytes.
    #[error(
        "{leaves} leaves in file order for {size} bytes: leaves average less than \
         {MIN_AVERAGE_LEAF_SIZE} bytes"
    )]
    TinyLeaves {
        /// Leaves in file order.
        leaves: u64,
        /// The file's size.
        size: u64,
    },
    /// More than [`MAX_WALK`] distinct blocks.
    #[error("more than {MAX_WALK} distinct blocks")]
    TooManyBlocks,
    /// More than [`MAX_DEPTH`] levels of dag-pb nodes.
    #[error("more than {MAX_DEPTH} levels of nodes")]
    TooDeep,
}

/// Checks a DAG of `leaves` leaves in file order and `size` bytes against [`MAX_LEAVES`],
/// [`FREE_LEAVES`] and [`MIN_AVERAGE_LEAF_SIZE`].
pub fn check_proportions(leaves: u64, size: u64) -> Result<(), Refusal> {
    if leaves > MAX_LEAVES {
        return Err(Refusal::TooManyLeaves { leaves });
    }
    if leaves > FREE_LEAVES && size / leaves < MIN_AVERAGE_LEAF_SIZE {
        return Err(Refusal::TinyLeaves { leaves, size });
    }
    Ok(())
}

/// A child not yet linked into its parent.
#[derive(Debug, Clone)]
struct Pending {
    cid: Cid,
    /// dag-pb `Tsize` of the child.
    tsize: u64,
    /// File bytes under the child.
    filesize: u64,
}

/// Streaming builder: feed bytes in any pieces; it emits finished blocks as it goes so a caller
/// can store them without holding the file.
///
/// It holds at most one partial chunk plus the links of the open parent nodes (fewer than
/// [`MAX_LINKS`] per level). Blocks come out in an order where every child precedes its parent;
/// a file with repeated content yields the same block (same CID) more than once.
#[derive(Debug)]
pub struct Builder {
    /// Leaf size: [`CHUNK_SIZE`] (smaller in unit tests, to check deep trees cheaply).
    chunk_size: usize,
    /// Links per node: [`MAX_LINKS`] (smaller in unit tests).
    width: usize,
    /// The chunk being filled (less than `chunk_size` bytes between calls).
    chunk: Vec<u8>,
    /// `levels[k]`: children at height k (0 = leaves) waiting for their parent.
    levels: Vec<Vec<Pending>>,
    /// Bytes pushed so far.
    total: u64,
    /// Leaves emitted so far.
    leaf_count: u64,
}

impl Default for Builder {
    fn default() -> Self {
        Self::with_layout(CHUNK_SIZE, MAX_LINKS)
    }
}

impl Builder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_layout(chunk_size: usize, width: usize) -> Self {
        assert!(chunk_size > 0 && width > 1, "degenerate layout");
        Self {
            chunk_size,
            width,
            chunk: Vec::new(),
            levels: Vec::new(),
            total: 0,
            leaf_count: 0,
        }
    }

    /// Adds bytes; returns blocks completed by this call (full 1 MiB leaves and any parent nodes
    /// that became complete), in an order where every child comes before its parent.
    pub fn push(&mut self, mut data: &[u8]) -> Vec<Block> {
        let mut out = Vec::new();
        self.total += data.len() as u64;
        while !data.is_empty() {
            if self.chunk.is_empty() && data.len() >= self.chunk_size {
                // A whole chunk straight from the input: one copy, no buffering.
                let (chunk, rest) = data.split_at(self.chunk_size);
                self.emit_leaf(chunk.to_vec(), &mut out);
                data = rest;
                continue;
            }
            if self.chunk.capacity() < self.chunk_size {
                self.chunk.reserve_exact(self.chunk_size - self.chunk.len());
            }
            let take = (self.chunk_size - self.chunk.len()).min(data.len());
            let (head, rest) = data.split_at(take);
            self.chunk.extend_from_slice(head);
            data = rest;
            if self.chunk.len() == self.chunk_size {
                let chunk = std::mem::take(&mut self.chunk);
                self.emit_leaf(chunk, &mut out);
            }
        }
        out
    }

    /// Finishes: returns the remaining blocks (last leaf, open parents, root) and the root CID
    /// and total size.
    pub fn finish(mut self) -> (Vec<Block>, Cid, u64) {
        let mut out = Vec::new();
        if !self.chunk.is_empty() || self.leaf_count == 0 {
            let chunk = std::mem::take(&mut self.chunk);
            self.emit_leaf(chunk, &mut out);
        }
        let mut level = 0;
        let root = loop {
            let higher = self.levels[level + 1..].iter().any(|l| !l.is_empty());
            if !higher {
                let top = &self.levels[level];
                if top.len() == 1 {
                    // A single leaf is the file itself; a single node at the top is the root.
                    break top[0].cid;
                }
                debug_assert!(!top.is_empty(), "a file has at least one leaf");
            }
            if !self.levels[level].is_empty() {
                let links = std::mem::take(&mut self.levels[level]);
                let (block, pending) = parent(&links);
                out.push(block);
                self.add(level + 1, pending, &mut out);
            }
            level += 1;
        };
        (out, root, self.total)
    }

    fn emit_leaf(&mut self, data: Vec<u8>, out: &mut Vec<Block>) {
        let cid = cid_of(RAW, &data);
        let len = data.len() as u64;
        out.push(Block { cid, data });
        self.leaf_count += 1;
        self.add(
            0,
            Pending {
                cid,
                tsize: len,
                filesize: len,
            },
            out,
        );
    }

    /// Queues `child` at height `level`, closing every parent that reaches `width` links.
    fn add(&mut self, mut level: usize, mut child: Pending, out: &mut Vec<Block>) {
        loop {
            if self.levels.len() <= level + 1 {
                self.levels.resize_with(level + 2, Vec::new);
            }
            let pending = &mut self.levels[level];
            pending.push(child);
            if pending.len() < self.width {
                return;
            }
            let links = std::mem::take(pending);
            let (block, node) = parent(&links);
            out.push(block);
            child = node;
            level += 1;
        }
    }
}

/// Builds the dag-pb node over `children`.
fn parent(children: &[Pending]) -> (Block, Pending) {
    let blocksizes: Vec<u64> = children.iter().map(|c| c.filesize).collect();
    let filesize = blocksizes.iter().sum();
    let data = encode_parts(
        children.iter().map(|c| (&c.cid, c.tsize)),
        filesize,
        &blocksizes,
    );
    let tsize = data.len() as u64 + children.iter().map(|c| c.tsize).sum::<u64>();
    let cid = cid_of(DAG_PB, &data);
    (
        Block { cid, data },
        Pending {
            cid,
            tsize,
            filesize,
        },
    )
}

/// Convenience: all blocks and the root of an in-memory file.
pub fn build(data: &[u8]) -> (Vec<Block>, Cid, u64) {
    let mut builder = Builder::new();
    let mut blocks = builder.push(data);
    let (rest, root, size) = builder.finish();
    blocks.extend(rest);
    (blocks, root, size)
}

// ---------------------------------------------------------------------------------------------
// Encoding

const WT_VARINT: u8 = 0;
const WT_I64: u8 = 1;
const WT_LEN: u8 = 2;
const WT_I32: u8 = 5;

/// UnixFS `Data.DataType.File`.
const UNIXFS_FILE: u64 = 2;
const UNIXFS_DIRECTORY: u64 = 1;
const UNIXFS_RAW: u64 = 0;
const UNIXFS_HAMT_SHARD: u64 = 5;

/// The CIDv1 of a CIDv0 (dag-pb, same multihash); other CIDs unchanged. Blocks are stored and
/// verified under CIDv1 only, so links and roots given as CIDv0 (`Qm...`, as `ipfs add` makes
/// by default) are read through this.
pub fn normalize(cid: Cid) -> Cid {
    if cid.version() == cid::Version::V0 {
        Cid::new_v1(crate::DAG_PB, *cid.hash())
    } else {
        cid
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_key(out: &mut Vec<u8>, field: u8, wire_type: u8) {
    out.push((field << 3) | wire_type);
}

fn put_bytes(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    put_key(out, field, WT_LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Canonical dag-pb bytes of a UnixFS file node: links first, then the UnixFS data.
fn encode_parts<'a>(
    links: impl Iterator<Item = (&'a Cid, u64)>,
    filesize: u64,
    blocksizes: &[u64],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(blocksizes.len() * 48 + 32);
    let mut link = Vec::with_capacity(64);
    for (cid, tsize) in links {
        link.clear();
        put_bytes(&mut link, 1, &cid.to_bytes());
        put_bytes(&mut link, 2, b"");
        put_key(&mut link, 3, WT_VARINT);
        put_varint(&mut link, tsize);
        put_bytes(&mut out, 2, &link);
    }
    let mut data = Vec::with_capacity(2 + varint_len(filesize) + 1 + blocksizes.len() * 5);
    put_key(&mut data, 1, WT_VARINT);
    put_varint(&mut data, UNIXFS_FILE);
    put_key(&mut data, 3, WT_VARINT);
    put_varint(&mut data, filesize);
    for &size in blocksizes {
        put_key(&mut data, 4, WT_VARINT);
        put_varint(&mut data, size);
    }
    put_bytes(&mut out, 1, &data);
    out
}

/// The canonical dag-pb bytes of `node`, as [`Builder`] writes them (empty link names). It
/// writes what it is given: [`decode`] accepts the result only if `node.blocksizes` has one
/// entry per link and sums to `node.filesize`.
pub fn encode(node: &Node) -> Vec<u8> {
    encode_parts(
        node.links.iter().map(|l| (&l.cid, l.tsize)),
        node.filesize,
        &node.blocksizes,
    )
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// A protobuf reader over peer bytes: every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some((&byte, rest)) = self.buf.split_first() else {
                return Err(DecodeError::Truncated);
            };
            self.buf = rest;
            if i == 9 && byte > 1 {
                return Err(DecodeError::BadVarint);
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::BadVarint)
    }

    /// A field key: (field number, wire type).
    fn key(&mut self) -> Result<(u64, u8), DecodeError> {
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err(DecodeError::Malformed("field number 0"));
        }
        Ok((field, (key & 7) as u8))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(len).map_err(|_| DecodeError::Truncated)?;
        if len > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        self.take(len)
    }

    /// Skips a field's value of wire type `wire_type`.
    fn skip(&mut self, wire_type: u8) -> Result<(), DecodeError> {
        match wire_type {
            WT_VARINT => self.varint().map(drop),
            WT_I64 => self.take(8).map(drop),
            WT_LEN => self.bytes().map(drop),
            WT_I32 => self.take(4).map(drop),
            _ => Err(DecodeError::Malformed("unsupported wire type")),
        }
    }
}

/// Decodes a dag-pb block (bounded work: reject > MAX_DECODE_LINKS links, bad varints, lengths past the
/// end; never panic on peer bytes).
///
/// The block must be canonical dag-pb (links before data, no other fields) holding a UnixFS
/// `File` whose bytes are all in its children (no inline data), with one block size per link
/// summing to `filesize`.
pub fn decode(data: &[u8]) -> Result<Node, DecodeError> {
    let mut r = Reader::new(data);
    let mut links = Vec::new();
    let mut unixfs = None;
    while !r.is_empty() {
        match r.key()? {
            (2, WT_LEN) => {
                if unixfs.is_some() {
                    return Err(DecodeError::Malformed("dag-pb links after data"));
                }
                if links.len() == MAX_DECODE_LINKS {
                    return Err(DecodeError::TooManyLinks);
                }
                links.push(decode_link(r.bytes()?)?);
            }
            (1, WT_LEN) => {
                if unixfs.is_some() {
                    return Err(DecodeError::Malformed("dag-pb data twice"));
                }
                unixfs = Some(r.bytes()?);
            }
            _ => return Err(DecodeError::Malformed("unexpected dag-pb field")),
        }
    }
    let (filesize, blocksizes, inline) = decode_unixfs(unixfs.ok_or(DecodeError::NotFile)?)?;
    if inline > 0 {
        // A dag-pb leaf (importers without raw leaves): its bytes are the inline data.
        if !links.is_empty() || !blocksizes.is_empty() {
            return Err(DecodeError::InlineData);
        }
        let inline = inline as u64;
        if filesize.is_some_and(|f| f != inline) {
            return Err(DecodeError::SizeMismatch(
                "filesize is not the length of the inline data",
            ));
        }
        return Ok(Node {
            links,
            filesize: inline,
            blocksizes,
        });
    }
    if links.len() != blocksizes.len() {
        return Err(DecodeError::LinkCountMismatch {
            links: links.len(),
            blocksizes: blocksizes.len(),
        });
    }
    let sum = blocksizes
        .iter()
        .try_fold(0u64, |acc, &s| acc.checked_add(s))
        .ok_or(DecodeError::SizeMismatch("blocksizes overflow"))?;
    let filesize = filesize.unwrap_or(sum);
    if filesize != sum {
        return Err(DecodeError::SizeMismatch(
            "filesize is not the sum of blocksizes",
        ));
    }
    Ok(Node {
        links,
        filesize,
        blocksizes,
    })
}

/// A canonical PBLink: Hash (required), then optional Name, then optional Tsize.
fn decode_link(bytes: &[u8]) -> Result<Link, DecodeError> {
    let mut r = Reader::new(bytes);
    let mut last_field = 0;
    let mut hash = None;
    let mut tsize = 0;
    while !r.is_empty() {
        let (field, wire_type) = r.key()?;
        if field <= last_field {
            return Err(DecodeError::Malformed("dag-pb link fields out of order"));
        }
        last_field = field;
        match (field, wire_type) {
            (1, WT_LEN) => hash = Some(r.bytes()?),
            (2, WT_LEN) => {
                std::str::from_utf8(r.bytes()?)
                    .map_err(|_| DecodeError::Malformed("link name is not UTF-8"))?;
            }
            (3, WT_VARINT) => tsize = r.varint()?,
            _ => return Err(DecodeError::Malformed("unexpected dag-pb link field")),
        }
    }
    let mut hash = hash.ok_or(DecodeError::Malformed("dag-pb link without hash"))?;
    let cid = Cid::read_bytes(&mut hash).map_err(|e| DecodeError::BadCid(e.to_string()))?;
    if !hash.is_empty() {
        return Err(DecodeError::BadCid("trailing bytes".into()));
    }
    Ok(Link {
        cid: normalize(cid),
        tsize,
    })
}

/// A UnixFS `Data` message of a file: (filesize, blocksizes).
fn decode_unixfs(bytes: &[u8]) -> Result<(Option<u64>, Vec<u64>, usize), DecodeError> {
    let mut r = Reader::new(bytes);
    let mut kind = None;
    let mut filesize = None;
    let mut blocksizes = Vec::new();
    let mut inline = 0;
    let push_size = |sizes: &mut Vec<u64>, size| {
        if sizes.len() == MAX_DECODE_LINKS {
            return Err(DecodeError::TooManyLinks);
        }
        sizes.push(size);
        Ok(())
    };
    while !r.is_empty() {
        match r.key()? {
            (1, WT_VARINT) => kind = Some(r.varint()?),
            (2, WT_LEN) => inline = r.bytes()?.len(),
            (3, WT_VARINT) => filesize = Some(r.varint()?),
            (4, WT_VARINT) => push_size(&mut blocksizes, r.varint()?)?,
            (4, WT_LEN) => {
                // Packed encoding: a parser must accept it for a repeated scalar.
                let mut packed = Reader::new(r.bytes()?);
                while !packed.is_empty() {
                    push_size(&mut blocksizes, packed.varint()?)?;
                }
            }
            // hashType, fanout, mode, mtime and any later fields: not needed for a file's bytes.
            (_, wire_type) => r.skip(wire_type)?,
        }
    }
    if matches!(kind, Some(UNIXFS_DIRECTORY | UNIXFS_HAMT_SHARD)) {
        return Err(DecodeError::Directory);
    }
    // Type Raw (0): the leaves of old importers, bytes inline like a File leaf.
    if kind != Some(UNIXFS_FILE) && !(kind == Some(UNIXFS_RAW) && inline > 0) {
        return Err(DecodeError::NotFile);
    }
    Ok((filesize, blocksizes, inline))
}

/// Where the file bytes a dag-pb leaf holds inline are in the block `data` (its UnixFS
/// `Data` field; an empty range when there are none). The block must [`decode`].
pub fn inline_range(data: &[u8]) -> Result<Range<usize>, DecodeError> {
    let offset = |inner: &[u8]| (inner.as_ptr() as usize).saturating_sub(data.as_ptr() as usize);
    let mut r = Reader::new(data);
    while !r.is_empty() {
        match r.key()? {
            (1, WT_LEN) => {
                let unixfs = r.bytes()?;
                let mut u = Reader::new(unixfs);
                let mut found = 0..0;
                while !u.is_empty() {
                    match u.key()? {
                        (2, WT_LEN) => {
                            let bytes = u.bytes()?;
                            let start = offset(bytes);
                            found = start..start + bytes.len();
                        }
                        (_, wire_type) => u.skip(wire_type)?,
                    }
                }
                return Ok(found);
            }
            (_, wire_type) => r.skip(wire_type)?,
        }
    }
    Ok(0..0)
}

/// Whether a decoded node is a leaf holding its bytes inline (no links, some bytes).
pub fn is_inline_leaf(node: &Node) -> bool {
    node.links.is_empty() && node.filesize > 0
}

/// The byte range of the file covered by each child of `node`, in order (prefix sums of
/// blocksizes) — used for Range requests and ordered reassembly.
pub fn child_ranges(node: &Node) -> Vec<Range<u64>> {
    let mut start = 0u64;
    node.blocksizes
        .iter()
        .map(|&size| {
            let end = start.saturating_add(size);
            let range = start..end;
            start = end;
            range
        })
        .collect()
}

/// What [`measure`] found out about a DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// The file's size: the root's `filesize` (a raw root's length).
    pub size: u64,
    /// Leaves in file order, repeats included.
    pub leaves: u64,
    /// Levels of dag-pb nodes (0 for a raw root).
    pub depth: usize,
    /// Every distinct block of the DAG, root first, each once.
    pub blocks: Vec<Cid>,
}

/// Checks that the DAG can be followed: raw or dag-pb, sha2-256, CIDv1 (what [`verify`] accepts).
fn check_cid(cid: &Cid) -> Result<(), DecodeError> {
    if cid.codec() != RAW && cid.codec() != DAG_PB {
        return Err(DecodeError::UnsupportedCodec(cid.codec(), *cid));
    }
    Ok(())
}

/// Reads, verifies and decodes dag-pb node `cid`, whose parent says it holds `expected` bytes.
fn read_node<F>(cid: &Cid, expected: Option<u64>, get: &mut F) -> Result<Node, DecodeError>
where
    F: FnMut(&Cid) -> std::io::Result<Option<Vec<u8>>>,
{
    let data = get(cid)?.ok_or(DecodeError::Missing(*cid))?;
    if !verify(cid, &data) {
        return Err(DecodeError::BadBlock(*cid));
    }
    let node = decode(&data)?;
    if expected.is_some_and(|e| e != node.filesize) {
        return Err(DecodeError::SizeMismatch(
            "a child's size differs from its parent's blocksizes",
        ));
    }
    Ok(node)
}

/// A dag-pb node on the walk of [`measure`].
struct MeasureFrame {
    cid: Cid,
    filesize: u64,
    children: Vec<(Cid, u64)>,
    next: usize,
    leaves: u64,
    depth: usize,
}

impl MeasureFrame {
    fn new(cid: Cid, node: Node) -> Self {
        let leaves = u64::from(is_inline_leaf(&node));
        let children = node
            .links
            .into_iter()
            .map(|l| l.cid)
            .zip(node.blocksizes)
            .collect();
        Self {
            cid,
            filesize: node.filesize,
            children,
            next: 0,
            leaves,
            depth: 1,
        }
    }
}

/// What [`measure`] remembers of a dag-pb node it has walked: (filesize, leaves, depth).
type Measured = (u64, u64, usize);

/// Measures the DAG under `root` and refuses it if it is out of proportion.
///
/// Reads (with `get`) and verifies every distinct dag-pb node once, never a leaf: the leaves'
/// sizes are their parents' `blocksizes` (a reader checks them when it reads the leaves). A raw
/// root is read for its size. The counts of a node are memoised, so a node linked many times
/// costs one visit and the walk is O(distinct blocks) whatever the number of leaves in file
/// order. Memory: the distinct CIDs plus [`MAX_DEPTH`] nodes.
///
/// Fails with [`DecodeError::Refused`] when the DAG breaks a limit ([`MAX_LEAVES`],
/// [`MAX_WALK`], [`MAX_DEPTH`], [`MIN_AVERAGE_LEAF_SIZE`] past [`FREE_LEAVES`]), as soon as it
/// is known; with another [`DecodeError`] on a missing, bad or inconsistent block.
pub fn measure<F>(root: &Cid, mut get: F) -> Result<Shape, DecodeError>
where
    F: FnMut(&Cid) -> std::io::Result<Option<Vec<u8>>>,
{
    use std::collections::{HashMap, HashSet};

    check_cid(root)?;
    if root.codec() == RAW {
        let data = get(root)?.ok_or(DecodeError::Missing(*root))?;
        if !verify(root, &data) {
            return Err(DecodeError::BadBlock(*root));
        }
        return Ok(Shape {
            size: data.len() as u64,
            leaves: 1,
            depth: 0,
            blocks: vec![*root],
        });
    }
    let mut blocks = vec![*root];
    let mut leaves_seen: HashSet<Cid> = HashSet::new();
    let mut nodes: HashMap<Cid, Measured> = HashMap::new();
    let node = read_node(root, None, &mut get)?;
    let mut stack = vec![MeasureFrame::new(*root, node)];
    loop {
        let Some(top) = stack.last_mut() else {
            unreachable!("the loop returns when the root's frame is popped")
        };
        let Some(&(child, size)) = top.children.get(top.next) else {
            let Some(done) = stack.pop() else {
                unreachable!("the stack is not empty")
            };
            check_proportions(done.leaves, done.filesize)?;
            let Some(parent) = stack.last_mut() else {
                return Ok(Shape {
                    size: done.filesize,
                    leaves: done.leaves,
                    depth: done.depth,
                    blocks,
                });
            };
            nodes.insert(done.cid, (done.filesize, done.leaves, done.depth));
            parent.leaves = parent.leaves.saturating_add(done.leaves);
            parent.depth = parent.depth.max(done.depth + 1);
            continue;
        };
        top.next += 1;
        check_cid(&child)?;
        if child.codec() == RAW {
            top.leaves = top.leaves.saturating_add(1);
            if leaves_seen.insert(child) {
                blocks.push(child);
            }
        } else if let Some(&(filesize, leaves, depth)) = nodes.get(&child) {
            if filesize != size {
                return Err(DecodeError::SizeMismatch(
                    "a child's size differs from its parent's blocksizes",
                ));
            }
            top.leaves = top.leaves.saturating_add(leaves);
            top.depth = top.depth.max(depth + 1);
        } else {
            if stack.len() >= MAX_DEPTH || stack.iter().any(|f| f.cid == child) {
                return Err(Refusal::TooDeep.into());
            }
            let node = read_node(&child, Some(size), &mut get)?;
            blocks.push(child);
            stack.push(MeasureFrame::new(child, node));
        }
        if top_leaves(&stack) > MAX_LEAVES {
            return Err(Refusal::TooManyLeaves {
                leaves: top_leaves(&stack),
            }
            .into());
        }
        if blocks.len() > MAX_WALK {
            return Err(Refusal::TooManyBlocks.into());
        }
    }
}

/// Leaves counted so far by the frames of a [`measure`] walk: a lower bound of the DAG's.
fn top_leaves(stack: &[MeasureFrame]) -> u64 {
    stack
        .iter()
        .fold(0u64, |total, frame| total.saturating_add(frame.leaves))
}

/// Part of a leaf that a [`Cursor`] yields: `range` of leaf `cid`, which holds `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafPart {
    /// The leaf: a raw block, or a dag-pb node holding its bytes inline (see
    /// [`inline_range`]).
    pub cid: Cid,
    /// The leaf's size according to its parent (check it against the block read).
    pub size: u64,
    /// The bytes of the leaf that fall in the wanted range.
    pub range: Range<usize>,
}

/// A dag-pb node on a [`Cursor`]'s path.
struct CursorFrame {
    children: Vec<(Cid, u64)>,
    next: usize,
    /// File offset of `children[next]`.
    offset: u64,
}

/// Yields the leaves of a DAG in file order, lazily: only the dag-pb nodes on the path to the
/// current leaf are held ([`MAX_DEPTH`] × [`MAX_LINKS`] links at most), and subtrees outside the
/// wanted byte range are skipped without being read.
///
/// Use it on a DAG [`measure`] accepted: the number of leaves then is bounded, so is the work.
pub struct Cursor {
    /// The root, until the first call.
    root: Option<(Cid, u64)>,
    want: Range<u64>,
    stack: Vec<CursorFrame>,
}

impl Cursor {
    /// A cursor over the bytes `want` of the file of `size` bytes under `root`.
    pub fn new(root: Cid, size: u64, want: Range<u64>) -> Self {
        Self {
            root: Some((root, size)),
            want,
            stack: Vec::new(),
        }
    }

    /// The part of the next leaf in the wanted range, or `None` at the end. Reads (with `get`)
    /// and verifies the dag-pb nodes it enters, never a leaf.
    pub fn next_leaf<F>(&mut self, mut get: F) -> Result<Option<LeafPart>, DecodeError>
    where
        F: FnMut(&Cid) -> std::io::Result<Option<Vec<u8>>>,
    {
        if let Some((root, size)) = self.root.take() {
            check_cid(&root)?;
            if root.codec() == RAW {
                return Ok(self.part(root, 0..size));
            }
            let node = read_node(&root, Some(size), &mut get)?;
            if is_inline_leaf(&node) {
                return Ok(self.part(root, 0..size));
            }
            self.enter(node, 0);
        }
        loop {
            let Some(top) = self.stack.last_mut() else {
                return Ok(None);
            };
            let Some(&(child, size)) = top.children.get(top.next) else {
                self.stack.pop();
                continue;
            };
            top.next += 1;
            let span = top.offset..top.offset.saturating_add(size);
            top.offset = span.end;
            if span.end <= self.want.start || span.is_empty() {
                continue;
            }
            if span.start >= self.want.end {
                self.stack.clear();
                return Ok(None);
            }
            check_cid(&child)?;
            if child.codec() == RAW {
                return Ok(self.part(child, span));
            }
            if self.stack.len() >= MAX_DEPTH {
                return Err(Refusal::TooDeep.into());
            }
            let node = read_node(&child, Some(size), &mut get)?;
            if is_inline_leaf(&node) {
                return Ok(self.part(child, span));
            }
            self.enter(node, span.start);
        }
    }

    fn enter(&mut self, node: Node, offset: u64) {
        let children = node
            .links
            .into_iter()
            .map(|l| l.cid)
            .zip(node.blocksizes)
            .collect();
        self.stack.push(CursorFrame {
            children,
            next: 0,
            offset,
        });
    }

    /// The part of the leaf at file bytes `span` that is wanted, if any.
    fn part(&self, cid: Cid, span: Range<u64>) -> Option<LeafPart> {
        let from = self.want.start.max(span.start);
        let to = self.want.end.min(span.end);
        if from >= to {
            return None;
        }
        // Both fit a leaf's length, which is a usize.
        let start = usize::try_from(from - span.start).ok()?;
        let end = usize::try_from(to - span.start).ok()?;
        Some(LeafPart {
            cid,
            size: span.end - span.start,
            range: start..end,
        })
    }
}

/// Walks a DAG whose blocks are in `get` (a closure returning a block by CID) and yields the
/// leaves' CIDs in file order, checking every block's hash; errors on a missing or bad block.
/// Leaves that hold no file bytes (an empty leaf, or a subtree of size 0) are not listed, as
/// [`Cursor`] skips them too, so the list can be shorter than [`Shape::leaves`], which counts
/// every leaf for the proportion checks.
///
/// The root may be a raw block (a one-chunk file) or a dag-pb UnixFS file node. Every child's
/// size must match its parent's `blocksizes` entry. The DAG is [`measure`]d first, so one out of
/// proportion is refused before any leaf is listed; each distinct leaf is read and verified once.
pub fn leaves<F>(root: &Cid, mut get: F) -> Result<Vec<(Cid, u64)>, DecodeError>
where
    F: FnMut(&Cid) -> Option<Vec<u8>>,
{
    let shape = measure(root, |c| Ok(get(c)))?;
    if root.codec() == RAW {
        // Read and verified by `measure`.
        return Ok(vec![(*root, shape.size)]);
    }
    let mut cursor = Cursor::new(*root, shape.size, 0..shape.size);
    let mut checked = std::collections::HashSet::new();
    let mut out = Vec::new();
    while let Some(part) = cursor.next_leaf(|c| Ok(get(c)))? {
        if checked.insert(part.cid) {
            let data = get(&part.cid).ok_or(DecodeError::Missing(part.cid))?;
            if !verify(&part.cid, &data) {
                return Err(DecodeError::BadBlock(part.cid));
            }
            let len = if part.cid.codec() == DAG_PB {
                inline_range(&data)?.len()
            } else {
                data.len()
            };
            if len as u64 != part.size {
                return Err(DecodeError::SizeMismatch(
                    "a child's size differs from its parent's blocksizes",
                ));
            }
        }
        out.push((part.cid, part.size));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Deterministic, non-repeating test bytes.
    fn bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn mem_store(blocks: &[Block]) -> HashMap<Cid, Vec<u8>> {
        blocks
            .iter()
            .map(|b| (b.cid, b.data.clone()))
            .collect::<HashMap<_, _>>()
    }

    #[test]
    fn varints() {
        for v in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            let mut r = Reader::new(&out);
            assert_eq!(r.varint().unwrap(), v);
            assert!(r.is_empty());
        }
        // 11 bytes, and a 10th byte that overflows.
        assert!(matches!(
            Reader::new(&[0xff; 11]).varint(),
            Err(DecodeError::BadVarint)
        ));
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert!(matches!(
            Reader::new(&over).varint(),
            Err(DecodeError::BadVarint)
        ));
        assert!(matches!(
            Reader::new(&[0x80, 0x80]).varint(),
            Err(DecodeError::Truncated)
        ));
    }

    #[test]
    fn small_files_are_their_raw_block() {
        for data in [Vec::new(), vec![7], bytes(CHUNK_SIZE, 1)] {
            let (blocks, root, size) = build(&data);
            assert_eq!(size, data.len() as u64);
            assert_eq!(root, cid_of(RAW, &data));
            assert_eq!(
                blocks,
                vec![Block {
                    cid: root,
                    data: data.clone()
                }]
            );
        }
        assert_eq!(
            build(b"").1.to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
    }

    #[test]
    fn two_chunk_node_layout() {
        let data = bytes(CHUNK_SIZE + 5, 2);
        let (blocks, root, size) = build(&data);
        assert_eq!(size, data.len() as u64);
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0].cid, cid_of(RAW, &data[..CHUNK_SIZE]));
        assert_eq!(blocks[1].cid, cid_of(RAW, &data[CHUNK_SIZE..]));
        assert_eq!(blocks[2].cid, root);
        assert_eq!(root.codec(), DAG_PB);

        let node = decode(&blocks[2].data).unwrap();
        assert_eq!(node.filesize, data.len() as u64);
        assert_eq!(node.blocksizes, vec![CHUNK_SIZE as u64, 5]);
        assert_eq!(
            node.links,
            vec![
                Link {
                    cid: blocks[0].cid,
                    tsize: CHUNK_SIZE as u64
                },
                Link {
                    cid: blocks[1].cid,
                    tsize: 5
                },
            ]
        );
        assert_eq!(
            child_ranges(&node),
            vec![
                0..CHUNK_SIZE as u64,
                CHUNK_SIZE as u64..CHUNK_SIZE as u64 + 5
            ]
        );
        // Exact bytes: links (field 2) with an empty name, then the UnixFS data (field 1).
        let mut expected = Vec::new();
        for b in &blocks[..2] {
            let cid = b.cid.to_bytes();
            expected.extend([
                0x12,
                cid.len() as u8 + 2 + 2 + 1 + varint_len(b.data.len() as u64) as u8,
            ]);
            expected.extend([0x0a, cid.len() as u8]);
            expected.extend(&cid);
            expected.extend([0x12, 0x00, 0x18]);
            put_varint(&mut expected, b.data.len() as u64);
        }
        expected.extend([0x0a, 0x0c, 0x08, 0x02, 0x18]);
        put_varint(&mut expected, data.len() as u64);
        expected.extend([0x20, 0x80, 0x80, 0x40, 0x20, 0x05]);
        assert_eq!(blocks[2].data, expected);
        assert_eq!(encode(&node), blocks[2].data);
    }

    /// What the js importer's balanced layout does, written the plain way: all leaves, then
    /// whole levels of `width`-sized batches until one node is left.
    fn reference(data: &[u8], chunk_size: usize, width: usize) -> (Vec<Block>, Cid) {
        let mut blocks = Vec::new();
        let mut level: Vec<Pending> = data
            .chunks(chunk_size)
            .map(<[u8]>::to_vec)
            .chain(data.is_empty().then(Vec::new))
            .map(|chunk| {
                let cid = cid_of(RAW, &chunk);
                let len = chunk.len() as u64;
                blocks.push(Block { cid, data: chunk });
                Pending {
                    cid,
                    tsize: len,
                    filesize: len,
                }
            })
            .collect();
        if level.len() > 1 {
            loop {
                level = level
                    .chunks(width)
                    .map(|children| {
                        let (block, node) = parent(children);
                        blocks.push(block);
                        node
                    })
                    .collect();
                if level.len() == 1 {
                    break;
                }
            }
        }
        (blocks, level[0].cid)
    }

    fn build_with(data: &[u8], chunk_size: usize, width: usize, piece: usize) -> BuildOut {
        let mut builder = Builder::with_layout(chunk_size, width);
        let mut blocks = Vec::new();
        for p in data.chunks(piece.max(1)) {
            blocks.extend(builder.push(p));
        }
        let (rest, root, size) = builder.finish();
        blocks.extend(rest);
        (blocks, root, size)
    }

    type BuildOut = (Vec<Block>, Cid, u64);

    /// Deep trees with tiny chunks and widths: the streaming builder makes the same blocks as
    /// the level-by-level reference, children before parents, for every size up to 4 levels.
    #[test]
    fn builder_matches_level_by_level_layout() {
        let data = bytes(200, 8);
        for (chunk_size, width) in [(1, 2), (3, 3), (2, 4), (5, 7)] {
            let lens = (0..=40).chain([53, 63, 64, 65, 81, 100, 127, 128, 129, 150, 200]);
            for len in lens {
                let data = &data[..len];
                let (mut expected, root) = reference(data, chunk_size, width);
                for piece in [1, 7, len] {
                    let (mut blocks, got_root, size) = build_with(data, chunk_size, width, piece);
                    assert_eq!(size, len as u64);
                    assert_eq!(got_root, root, "len {len} chunk {chunk_size} width {width}");
                    assert_eq!(blocks.last().map(|b| b.cid), Some(root));
                    // Children before parents.
                    let mut seen = std::collections::HashSet::new();
                    for b in &blocks {
                        if b.cid.codec() == DAG_PB {
                            for l in decode(&b.data).unwrap().links {
                                assert!(seen.contains(&l.cid));
                            }
                        }
                        seen.insert(b.cid);
                    }
                    blocks.sort_by_key(|b| b.cid);
                    expected.sort_by_key(|b| b.cid);
                    assert_eq!(blocks, expected);
                }
            }
        }
    }

    /// Two levels (width 3, 4-byte chunks): sizes, Tsizes and the walk back to the leaves.
    #[test]
    fn two_levels_tsize_and_order() {
        // 4 chunks: [c0 c1 c2] [c3 tail] under the root; zero chunks repeat, which also checks
        // that a repeated block is emitted every time.
        let mut data = vec![0u8; 4 * 4];
        data.extend_from_slice(b"tl");
        let (blocks, root, size) = build_with(&data, 4, 3, 5);
        assert_eq!(size, 18);
        let zero = cid_of(RAW, &[0; 4]);
        let tail = cid_of(RAW, b"tl");
        // Three leaves, their node, the fourth leaf and the tail, their node, the root.
        assert_eq!(blocks.len(), 8);
        assert!(blocks[..3].iter().all(|b| b.cid == zero));
        let first = &blocks[3];
        let n1 = decode(&first.data).unwrap();
        assert_eq!(
            n1.links,
            vec![
                Link {
                    cid: zero,
                    tsize: 4
                };
                3
            ]
        );
        assert_eq!((n1.filesize, n1.blocksizes.clone()), (12, vec![4, 4, 4]));
        assert_eq!(blocks[4].cid, zero);
        assert_eq!(blocks[5].cid, tail);
        let second = &blocks[6];
        let n2 = decode(&second.data).unwrap();
        assert_eq!(
            n2.links,
            vec![
                Link {
                    cid: zero,
                    tsize: 4
                },
                Link {
                    cid: tail,
                    tsize: 2
                }
            ]
        );
        assert_eq!(blocks[7].cid, root);
        let r = decode(&blocks[7].data).unwrap();
        assert_eq!(r.filesize, 18);
        assert_eq!(r.blocksizes, vec![12, 6]);
        assert_eq!(
            r.links,
            vec![
                Link {
                    cid: first.cid,
                    tsize: first.data.len() as u64 + 12
                },
                Link {
                    cid: second.cid,
                    tsize: second.data.len() as u64 + 6
                },
            ]
        );
        assert_eq!(child_ranges(&r), vec![0..12, 12..18]);
        // leaves() gives the file back in order.
        let store = mem_store(&blocks);
        let found = leaves(&root, |c| store.get(c).cloned()).unwrap();
        assert_eq!(
            found,
            vec![(zero, 4), (zero, 4), (zero, 4), (zero, 4), (tail, 2)]
        );
    }

    #[test]
    fn leaves_in_file_order() {
        let data = bytes(3 * CHUNK_SIZE + 1000, 3);
        let (blocks, root, _) = build(&data);
        let store = mem_store(&blocks);
        let found = leaves(&root, |c| store.get(c).cloned()).unwrap();
        let mut file = Vec::new();
        for (cid, len) in &found {
            let leaf = &store[cid];
            assert_eq!(leaf.len() as u64, *len);
            file.extend_from_slice(leaf);
        }
        assert_eq!(file, data);

        // A one-chunk file: the root is the leaf.
        let (blocks, root, _) = build(b"hello");
        let store = mem_store(&blocks);
        assert_eq!(
            leaves(&root, |c| store.get(c).cloned()).unwrap(),
            vec![(root, 5)]
        );
    }

    #[test]
    fn leaves_errors() {
        let data = bytes(2 * CHUNK_SIZE + 3, 4);
        let (blocks, root, _) = build(&data);
        let full = mem_store(&blocks);

        let mut missing = full.clone();
        missing.remove(&blocks[1].cid);
        assert!(matches!(
            leaves(&root, |c| missing.get(c).cloned()),
            Err(DecodeError::Missing(c)) if c == blocks[1].cid
        ));

        let mut bad = full.clone();
        bad.get_mut(&blocks[0].cid).unwrap()[0] ^= 1;
        assert!(matches!(
            leaves(&root, |c| bad.get(c).cloned()),
            Err(DecodeError::BadBlock(c)) if c == blocks[0].cid
        ));

        // A node whose blocksizes lie about a child (its CID is honest, its content is not).
        let mut node = decode(&full[&root]).unwrap();
        node.blocksizes[2] += 1;
        node.filesize += 1;
        let lying = encode(&node);
        let lying_cid = cid_of(DAG_PB, &lying);
        let mut store = full.clone();
        store.insert(lying_cid, lying);
        assert!(matches!(
            leaves(&lying_cid, |c| store.get(c).cloned()),
            Err(DecodeError::SizeMismatch(_))
        ));

        // Other codecs are refused before any lookup.
        let cbor = Cid::new_v1(0x71, *root.hash());
        assert!(matches!(
            leaves(&cbor, |_| unreachable!()),
            Err(DecodeError::UnsupportedCodec(0x71, _))
        ));
    }

    /// The review's "DAG bomb": `depth` dag-pb levels, each node linking `fanout` times to the
    /// same child, over one 1-byte raw leaf. `depth + 1` distinct blocks, `fanout^depth` leaves.
    /// Found by the `unixfs_dag` fuzz target: `measure` counts an empty leaf, `leaves` (like
    /// the cursor) skips it; the sizes agree.
    #[test]
    fn empty_leaves_are_counted_but_not_listed() {
        let (a, empty, b) = (b"ab".to_vec(), Vec::new(), b"cd".to_vec());
        let cids = [cid_of(RAW, &a), cid_of(RAW, &empty), cid_of(RAW, &b)];
        let node = Node {
            links: cids.iter().map(|&cid| Link { cid, tsize: 2 }).collect(),
            filesize: 4,
            blocksizes: vec![2, 0, 2],
        };
        let data = encode(&node);
        let root = cid_of(DAG_PB, &data);
        let blocks = HashMap::from([(cids[0], a), (cids[1], empty), (cids[2], b), (root, data)]);
        let shape = measure(&root, |c| Ok(blocks.get(c).cloned())).unwrap();
        assert_eq!((shape.leaves, shape.size), (3, 4));
        let listed = leaves(&root, |c| blocks.get(c).cloned()).unwrap();
        assert_eq!(listed, vec![(cids[0], 2), (cids[2], 2)]);
    }

    fn bomb(depth: u32, fanout: usize) -> (HashMap<Cid, Vec<u8>>, Cid) {
        let leaf = b"x".to_vec();
        let mut child = cid_of(RAW, &leaf);
        let mut blocks = HashMap::from([(child, leaf)]);
        let (mut size, mut tsize) = (1u64, 1u64);
        for _ in 0..depth {
            let node = Node {
                links: vec![Link { cid: child, tsize }; fanout],
                filesize: size * fanout as u64,
                blocksizes: vec![size; fanout],
            };
            let data = encode(&node);
            tsize = data.len() as u64 + tsize * fanout as u64;
            size *= fanout as u64;
            child = cid_of(DAG_PB, &data);
            blocks.insert(child, data);
        }
        (blocks, child)
    }

    /// A block getter over `blocks` that counts its calls.
    fn counting(
        blocks: &HashMap<Cid, Vec<u8>>,
        gets: &std::cell::Cell<usize>,
    ) -> impl FnMut(&Cid) -> std::io::Result<Option<Vec<u8>>> {
        move |c| {
            gets.set(gets.get() + 1);
            Ok(blocks.get(c).cloned())
        }
    }

    #[test]
    fn dag_bombs_are_refused_after_one_visit_per_distinct_block() {
        for depth in [2, 3, 4] {
            let (blocks, root) = bomb(depth, MAX_LINKS);
            let started = std::time::Instant::now();
            let gets = std::cell::Cell::new(0);
            let refused = measure(&root, counting(&blocks, &gets));
            match refused {
                Err(DecodeError::Refused(Refusal::TinyLeaves { leaves, size })) if depth == 2 => {
                    assert_eq!((leaves, size), (174 * 174, 174 * 174));
                }
                // Refused at its first subtree already (the same one at every depth).
                Err(DecodeError::Refused(Refusal::TinyLeaves { leaves, .. })) if depth > 2 => {
                    assert_eq!(leaves, 174 * 174);
                }
                other => panic!("depth {depth}: {other:?}"),
            }
            // Only the dag-pb nodes are read, each once: no per-leaf work, no per-leaf memory.
            assert!(
                gets.get() <= depth as usize,
                "depth {depth}: {} gets",
                gets.get()
            );
            assert!(matches!(
                leaves(&root, |c| blocks.get(c).cloned()),
                Err(DecodeError::Refused(_))
            ));
            assert!(
                started.elapsed() < std::time::Duration::from_secs(2),
                "depth {depth} took {:?}",
                started.elapsed()
            );
        }
        // One level of repeats is a tiny file cut oddly, not a bomb.
        let (blocks, root) = bomb(1, MAX_LINKS);
        assert_eq!(
            leaves(&root, |c| blocks.get(c).cloned()).unwrap(),
            vec![(cid_of(RAW, b"x"), 1); MAX_LINKS]
        );
    }

    #[test]
    fn too_many_leaves_are_refused_even_when_large() {
        // 174^3 leaves that claim 1 MiB each (the sizes are only checked when a leaf is read):
        // more than MAX_LEAVES, refused with two node reads.
        let leaf = cid_of(RAW, b"x");
        let mut blocks = HashMap::new();
        let (mut child, mut size) = (leaf, CHUNK_SIZE as u64);
        for _ in 0..3 {
            let data = encode(&Node {
                links: vec![
                    Link {
                        cid: child,
                        tsize: 1
                    };
                    MAX_LINKS
                ],
                filesize: size * MAX_LINKS as u64,
                blocksizes: vec![size; MAX_LINKS],
            });
            size *= MAX_LINKS as u64;
            child = cid_of(DAG_PB, &data);
            blocks.insert(child, data);
        }
        let gets = std::cell::Cell::new(0);
        assert!(matches!(
            measure(&child, counting(&blocks, &gets)),
            Err(DecodeError::Refused(Refusal::TooManyLeaves { .. }))
        ));
        assert_eq!(gets.get(), 3);
    }

    #[test]
    fn proportions() {
        assert!(check_proportions(MAX_LEAVES, MAX_LEAVES * CHUNK_SIZE as u64).is_ok());
        assert!(check_proportions(MAX_LEAVES + 1, u64::MAX).is_err());
        assert!(check_proportions(FREE_LEAVES, 0).is_ok());
        assert!(check_proportions(FREE_LEAVES + 1, 0).is_err());
        let n = FREE_LEAVES * 10;
        assert!(check_proportions(n, n * MIN_AVERAGE_LEAF_SIZE).is_ok());
        assert!(check_proportions(n, n * MIN_AVERAGE_LEAF_SIZE - 1).is_err());
    }

    #[test]
    fn chains_deeper_than_max_depth_are_refused() {
        let leaf = b"abc".to_vec();
        let mut child = cid_of(RAW, &leaf);
        let mut tsize = 3;
        let mut blocks = HashMap::from([(child, leaf)]);
        for _ in 0..=MAX_DEPTH {
            let data = encode(&Node {
                links: vec![Link { cid: child, tsize }],
                filesize: 3,
                blocksizes: vec![3],
            });
            tsize += data.len() as u64;
            child = cid_of(DAG_PB, &data);
            blocks.insert(child, data);
        }
        assert!(matches!(
            measure(&child, |c| Ok(blocks.get(c).cloned())),
            Err(DecodeError::Refused(Refusal::TooDeep))
        ));
    }

    #[test]
    fn a_file_of_zeros_repeats_blocks_and_is_read_lazily() {
        // 400 MiB of zeros: one leaf 400 times, and the node over 174 of them twice.
        let mib = 400u64;
        let zero = vec![0u8; CHUNK_SIZE];
        let mut builder = Builder::new();
        let mut blocks = HashMap::new();
        for _ in 0..mib {
            blocks.extend(builder.push(&zero).into_iter().map(|b| (b.cid, b.data)));
        }
        let (rest, root, size) = builder.finish();
        blocks.extend(rest.into_iter().map(|b| (b.cid, b.data)));
        assert_eq!(size, mib * CHUNK_SIZE as u64);
        assert_eq!(blocks.len(), 4, "root, full node, last node, zero leaf");

        let gets = std::cell::Cell::new(0);
        let shape = measure(&root, counting(&blocks, &gets)).unwrap();
        assert_eq!((shape.size, shape.leaves, shape.depth), (size, mib, 2));
        assert_eq!(shape.blocks.len(), 4);
        assert_eq!(shape.blocks[0], root);
        assert_eq!(gets.get(), 3, "each dag-pb node once");

        // The whole file: every leaf in order, nodes read as the cursor enters them.
        let zero_cid = cid_of(RAW, &zero);
        let mut cursor = Cursor::new(root, size, 0..size);
        let mut n = 0;
        while let Some(part) = cursor.next_leaf(|c| Ok(blocks.get(c).cloned())).unwrap() {
            assert_eq!(part.cid, zero_cid);
            assert_eq!(part.range, 0..CHUNK_SIZE);
            assert!(cursor.stack.len() <= 2);
            n += 1;
        }
        assert_eq!(n, mib);

        // A range deep inside: only the nodes on its path are read.
        let start = 300 * CHUNK_SIZE as u64 + 5;
        let gets = std::cell::Cell::new(0);
        let mut get = counting(&blocks, &gets);
        let mut cursor = Cursor::new(root, size, start..start + CHUNK_SIZE as u64);
        let first = cursor.next_leaf(&mut get).unwrap().unwrap();
        assert_eq!(first.range, 5..CHUNK_SIZE);
        let second = cursor.next_leaf(&mut get).unwrap().unwrap();
        assert_eq!(second.range, 0..5);
        assert_eq!(cursor.next_leaf(&mut get).unwrap(), None);
        assert_eq!(gets.get(), 2, "the root and one node");
    }

    #[test]
    fn cursor_ranges_match_the_file() {
        let data = bytes(3 * CHUNK_SIZE + 1000, 9);
        let (blocks, root, size) = build(&data);
        let store = mem_store(&blocks);
        let len = data.len() as u64;
        let c = CHUNK_SIZE as u64;
        for want in [0..len, 0..1, c - 1..c + 1, 2 * c..3 * c, len - 1..len, 5..5] {
            let mut cursor = Cursor::new(root, size, want.clone());
            let mut got = Vec::new();
            while let Some(part) = cursor.next_leaf(|c| Ok(store.get(c).cloned())).unwrap() {
                let leaf = &store[&part.cid];
                assert_eq!(leaf.len() as u64, part.size);
                got.extend_from_slice(&leaf[part.range]);
            }
            assert_eq!(
                got,
                &data[want.start as usize..want.end as usize],
                "{want:?}"
            );
        }
        // A raw root.
        let (blocks, root, size) = build(b"hello");
        let store = mem_store(&blocks);
        let mut cursor = Cursor::new(root, size, 1..3);
        let part = cursor
            .next_leaf(|c| Ok(store.get(c).cloned()))
            .unwrap()
            .unwrap();
        assert_eq!((part.cid, part.size, part.range), (root, 5, 1..3));
        assert_eq!(cursor.next_leaf(|_| unreachable!()).unwrap(), None);
    }

    #[test]
    fn round_trips() {
        let cids: Vec<Cid> = (0..MAX_LINKS as u8)
            .map(|i| cid_of(if i % 2 == 0 { RAW } else { DAG_PB }, &[i]))
            .collect();
        for n in [0, 1, 2, 17, MAX_LINKS] {
            let node = Node {
                links: cids[..n]
                    .iter()
                    .enumerate()
                    .map(|(i, &cid)| Link {
                        cid,
                        tsize: (i as u64) << (i % 60),
                    })
                    .collect(),
                blocksizes: (0..n as u64).map(|i| i * 1_000_003).collect(),
                filesize: (0..n as u64).map(|i| i * 1_000_003).sum(),
            };
            let bytes = encode(&node);
            assert_eq!(decode(&bytes).unwrap(), node, "{n} links");
        }
    }

    #[test]
    fn decode_accepts_go_and_js_variants() {
        // Packed blocksizes, absent names and Tsize, and metadata fields are all valid.
        let cid = cid_of(RAW, b"x");
        let mut link = Vec::new();
        put_bytes(&mut link, 1, &cid.to_bytes());
        let mut unixfs = Vec::new();
        put_key(&mut unixfs, 1, WT_VARINT);
        put_varint(&mut unixfs, UNIXFS_FILE);
        put_bytes(&mut unixfs, 2, b"");
        let mut packed = Vec::new();
        put_varint(&mut packed, 1);
        put_bytes(&mut unixfs, 4, &packed);
        put_key(&mut unixfs, 7, WT_VARINT);
        put_varint(&mut unixfs, 0o644);
        put_bytes(&mut unixfs, 8, &[0x08, 0x01]);
        let mut block = Vec::new();
        put_bytes(&mut block, 2, &link);
        put_bytes(&mut block, 1, &unixfs);
        assert_eq!(
            decode(&block).unwrap(),
            Node {
                links: vec![Link { cid, tsize: 0 }],
                filesize: 1,
                blocksizes: vec![1],
            }
        );
    }

    fn unixfs_data(kind: u64, inline: &[u8], filesize: u64, sizes: &[u64]) -> Vec<u8> {
        let mut out = Vec::new();
        put_key(&mut out, 1, WT_VARINT);
        put_varint(&mut out, kind);
        if !inline.is_empty() {
            put_bytes(&mut out, 2, inline);
        }
        put_key(&mut out, 3, WT_VARINT);
        put_varint(&mut out, filesize);
        for &s in sizes {
            put_key(&mut out, 4, WT_VARINT);
            put_varint(&mut out, s);
        }
        out
    }

    #[test]
    fn decode_rejects_bad_nodes() {
        let (blocks, root, _) = build(&bytes(2 * CHUNK_SIZE + 9, 5));
        let good = mem_store(&blocks)[&root].clone();
        assert!(decode(&good).is_ok());

        // Every truncation fails cleanly.
        for len in 0..good.len() {
            assert!(decode(&good[..len]).is_err(), "truncated to {len}");
        }
        // Trailing garbage.
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());

        let wrap = |links: &[Vec<u8>], data: Option<&[u8]>| {
            let mut out = Vec::new();
            for l in links {
                put_bytes(&mut out, 2, l);
            }
            if let Some(d) = data {
                put_bytes(&mut out, 1, d);
            }
            out
        };
        let link = |cid: &Cid| {
            let mut l = Vec::new();
            put_bytes(&mut l, 1, &cid.to_bytes());
            put_bytes(&mut l, 2, b"");
            put_key(&mut l, 3, WT_VARINT);
            put_varint(&mut l, 1);
            l
        };
        let leaf = cid_of(RAW, b"x");
        let file1 = unixfs_data(UNIXFS_FILE, b"", 1, &[1]);

        // Not a file: no data, a directory, inline data.
        assert!(matches!(
            decode(&wrap(&[link(&leaf)], None)),
            Err(DecodeError::NotFile)
        ));
        assert!(matches!(
            decode(&wrap(&[], Some(&unixfs_data(1, b"", 0, &[])))),
            Err(DecodeError::Directory)
        ));
        assert!(matches!(
            decode(&wrap(
                &[link(&leaf)],
                Some(&unixfs_data(UNIXFS_FILE, b"abc", 4, &[1]))
            )),
            Err(DecodeError::InlineData)
        ));
        // A leaf with its bytes inline: decoded, and its bytes found.
        let inline = wrap(&[], Some(&unixfs_data(UNIXFS_FILE, b"abc", 3, &[])));
        let node = decode(&inline).unwrap();
        assert!(is_inline_leaf(&node) && node.filesize == 3);
        assert_eq!(&inline[inline_range(&inline).unwrap()], b"abc");
        assert!(matches!(
            decode(&wrap(&[], Some(&unixfs_data(UNIXFS_FILE, b"abc", 4, &[])))),
            Err(DecodeError::SizeMismatch(_))
        ));
        // Data before links; data twice; an unknown dag-pb field.
        let mut swapped = Vec::new();
        put_bytes(&mut swapped, 1, &file1);
        put_bytes(&mut swapped, 2, &link(&leaf));
        assert!(matches!(decode(&swapped), Err(DecodeError::Malformed(_))));
        let mut twice = wrap(&[link(&leaf)], Some(&file1));
        put_bytes(&mut twice, 1, &file1);
        assert!(matches!(decode(&twice), Err(DecodeError::Malformed(_))));
        let mut unknown = wrap(&[link(&leaf)], Some(&file1));
        put_key(&mut unknown, 3, WT_VARINT);
        put_varint(&mut unknown, 1);
        assert!(matches!(decode(&unknown), Err(DecodeError::Malformed(_))));
        // Counts and sizes that disagree.
        assert!(matches!(
            decode(&wrap(
                &[link(&leaf), link(&leaf)],
                Some(&unixfs_data(UNIXFS_FILE, b"", 1, &[1]))
            )),
            Err(DecodeError::LinkCountMismatch {
                links: 2,
                blocksizes: 1
            })
        ));
        assert!(matches!(
            decode(&wrap(
                &[link(&leaf)],
                Some(&unixfs_data(UNIXFS_FILE, b"", 2, &[1]))
            )),
            Err(DecodeError::SizeMismatch(_))
        ));
        assert!(matches!(
            decode(&wrap(
                &[link(&leaf), link(&leaf)],
                Some(&unixfs_data(UNIXFS_FILE, b"", 0, &[u64::MAX, 2]))
            )),
            Err(DecodeError::SizeMismatch(_))
        ));
        // Bad CIDs: garbage, trailing bytes, missing hash.
        let mut bad_cid = Vec::new();
        put_bytes(&mut bad_cid, 1, &[0x01, 0x55, 0x12, 0x20, 0x00]);
        assert!(matches!(
            decode(&wrap(&[bad_cid], Some(&file1))),
            Err(DecodeError::BadCid(_))
        ));
        let mut trailing = leaf.to_bytes();
        trailing.push(0);
        let mut trailing_link = Vec::new();
        put_bytes(&mut trailing_link, 1, &trailing);
        assert!(matches!(
            decode(&wrap(&[trailing_link], Some(&file1))),
            Err(DecodeError::BadCid(_))
        ));
        let mut no_hash = Vec::new();
        put_bytes(&mut no_hash, 2, b"");
        assert!(matches!(
            decode(&wrap(&[no_hash], Some(&file1))),
            Err(DecodeError::Malformed(_))
        ));
        // Link fields out of order.
        let mut reordered = Vec::new();
        put_bytes(&mut reordered, 2, b"");
        put_bytes(&mut reordered, 1, &leaf.to_bytes());
        assert!(matches!(
            decode(&wrap(&[reordered], Some(&file1))),
            Err(DecodeError::Malformed(_))
        ));
        // A length past the end.
        assert!(matches!(
            decode(&[0x12, 0x7f, 0x00]),
            Err(DecodeError::Truncated)
        ));
        // A huge length must not allocate or overflow.
        let mut huge = vec![0x12];
        put_varint(&mut huge, u64::MAX);
        assert!(matches!(decode(&huge), Err(DecodeError::Truncated)));
        // Groups and field number 0.
        assert!(decode(&[0x13]).is_err());
        assert!(decode(&[0x02, 0x00]).is_err());
    }

    #[test]
    fn decode_rejects_too_many_links() {
        let leaf = cid_of(RAW, b"x");
        let n = MAX_DECODE_LINKS + 1;
        let node = Node {
            links: vec![
                Link {
                    cid: leaf,
                    tsize: 1
                };
                n
            ],
            filesize: n as u64,
            blocksizes: vec![1; n],
        };
        assert!(matches!(
            decode(&encode(&node)),
            Err(DecodeError::TooManyLinks)
        ));
        // Too many blocksizes alone is refused too (bounded work on the UnixFS message).
        let mut out = Vec::new();
        put_bytes(&mut out, 1, &unixfs_data(UNIXFS_FILE, b"", 0, &[0; 10_000]));
        assert!(matches!(decode(&out), Err(DecodeError::TooManyLinks)));
    }

    #[test]
    fn decode_garbage_never_panics() {
        let mut x = 0x1234_5678_9abc_def0u64;
        for round in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 200) as usize;
            let mut data = bytes(len, x);
            // Bias towards plausible structure: start with a link or data key.
            if round % 2 == 0 && !data.is_empty() {
                data[0] = if round % 4 == 0 { 0x12 } else { 0x0a };
            }
            let _ = decode(&data);
        }
        // Bit flips of a real node.
        let (blocks, root, _) = build(&bytes(2 * CHUNK_SIZE + 1, 6));
        let good = mem_store(&blocks)[&root].clone();
        for i in 0..good.len() * 8 {
            let mut flipped = good.clone();
            flipped[i / 8] ^= 1 << (i % 8);
            let _ = decode(&flipped);
        }
    }

    #[test]
    fn builder_in_odd_pieces_matches_build() {
        let data = bytes(3 * CHUNK_SIZE + 777, 7);
        let expected = build(&data);
        for piece in [
            1usize << 20,
            1,
            4093,
            65_536,
            CHUNK_SIZE - 1,
            CHUNK_SIZE + 1,
        ] {
            let mut builder = Builder::new();
            let mut blocks = Vec::new();
            let mut rest = &data[..];
            let mut n = 0usize;
            while !rest.is_empty() {
                // Vary the piece size around `piece`; after 2000 single bytes, go faster.
                let size = match piece {
                    1 if n > 2000 => 100_003,
                    p => p + n % 7,
                }
                .min(rest.len());
                let (head, tail) = rest.split_at(size);
                blocks.extend(builder.push(head));
                blocks.extend(builder.push(&[]));
                rest = tail;
                n += 1;
            }
            let (more, root, size) = builder.finish();
            blocks.extend(more);
            assert_eq!((blocks, root, size), expected, "pieces of {piece}");
        }
    }

    #[test]
    fn builder_emits_leaves_as_they_fill() {
        let mut builder = Builder::new();
        assert!(builder.push(&vec![1u8; CHUNK_SIZE - 1]).is_empty());
        let out = builder.push(&[1, 2]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data.len(), CHUNK_SIZE);
        assert_eq!(builder.chunk.len(), 1);
        let (rest, root, size) = builder.finish();
        assert_eq!(size, CHUNK_SIZE as u64 + 1);
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[1].cid, root);
    }
}
