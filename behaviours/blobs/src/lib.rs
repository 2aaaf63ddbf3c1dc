//! Content-addressed blobs for mcc.
//!
//! - [`unixfs`]: cuts a file into 1 MiB raw blocks and builds the UnixFS dag-pb root in the
//!   balanced layout (at most 174 links per node) exactly as IPFS does, so the root CID equals
//!   `ipfs add --cid-version=1 --raw-leaves --chunker=size-1048576`. Also decodes dag-pb nodes.
//! - [`dag_pb`]: a lenient reader of the links of any dag-pb node.
//! - [`transfer`]: the `/mcc/blobs/1.0.0` protocol on mcc-streams: a seeder serves blocks
//!   from a [`BlockStore`]; a fetcher downloads a DAG from several seeders in parallel and
//!   verifies every block before storing it.

pub mod dag_pb;
pub mod transfer;
pub mod unixfs;

pub use cid::Cid;

/// Size of a leaf chunk.
pub const CHUNK_SIZE: usize = 1024 * 1024;
/// Most links in one dag-pb node (the IPFS balanced layout's width).
pub const MAX_LINKS: usize = 174;
/// Most links accepted in a dag-pb node made elsewhere: Helia and other js importers put up
/// to 1024 children in a node, kubo [`MAX_LINKS`].
pub const MAX_DECODE_LINKS: usize = 1024;
/// Largest block accepted from a peer (a leaf is at most [`CHUNK_SIZE`]; a dag-pb node with
/// [`MAX_LINKS`] links is a few KiB).
pub const MAX_BLOCK_SIZE: usize = CHUNK_SIZE + 64 * 1024;

/// Multicodec of raw blocks.
pub const RAW: u64 = 0x55;
/// Multicodec of dag-pb blocks.
pub const DAG_PB: u64 = 0x70;
/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;

/// The CIDv1 (sha2-256) of `data` under `codec` ([`RAW`] or [`DAG_PB`]).
pub fn cid_of(codec: u64, data: &[u8]) -> Cid {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(data);
    // A 32-byte digest always fits a 64-byte multihash.
    let mh = cid::multihash::Multihash::<64>::wrap(SHA2_256, &digest)
        .unwrap_or_else(|_| unreachable!("32 bytes fit"));
    Cid::new_v1(codec, mh)
}

/// Whether `data` is the block `cid` names (sha2-256 only; other hashes are refused).
pub fn verify(cid: &Cid, data: &[u8]) -> bool {
    cid.hash().code() == SHA2_256 && cid_of(cid.codec(), data) == *cid
}

/// Where blocks live: implemented by mcc's disk store (and by test stores).
///
/// Calls may block on disk I/O; async callers run them on a blocking thread.
pub trait BlockStore: Send + Sync + 'static {
    /// Whether the block is stored.
    fn has(&self, cid: &Cid) -> bool;
    /// The block's bytes, if stored.
    fn get(&self, cid: &Cid) -> std::io::Result<Option<Vec<u8>>>;
    /// Stores a block the caller has verified against its CID.
    fn put(&self, cid: &Cid, data: &[u8]) -> std::io::Result<()>;
}
