//! The `/mcc/blobs/1.0.0` block transfer protocol ([`PROTOCOL_NAME`]) on [`mcc_streams`].
//!
//! * A seeder runs [`serve`]: it accepts streams and answers block requests from a
//!   [`BlockStore`](crate::BlockStore), each stream in its own tokio task.
//! * A fetcher calls [`fetch`]: it downloads the whole DAG under a root CID from several seeders
//!   in parallel (one stream and one worker per seeder, pulling from a shared queue), verifies
//!   every block against its CID and stores it.
//!
//! # Wire format
//!
//! One stream carries many requests, one after the other. The fetcher may send several requests
//! before reading the answers (pipelining); the seeder answers them in order.
//!
//! ```text
//! request  = kind:u8 (= 1, GetBlock) | cid_len:u16 big-endian (1..=MAX_CID_LEN) | cid: binary CID
//! response = status:u8 | len:u32 big-endian | body: len bytes
//! ```
//!
//! `status` is 0 (ok: `body` is the block, at most [`MAX_BLOCK_SIZE`](crate::MAX_BLOCK_SIZE)
//! bytes), 1 (not found) or 2 (busy or refused); after 1 and 2 the body is an optional UTF-8
//! message of at most [`MAX_MESSAGE_LEN`] bytes. Any other status (a newer seeder's) is read
//! the same way, as a status with a message, and the fetcher drops that seeder for the download.
//! At a malformed request (unknown kind, bad CID length, bytes that are not exactly one CID) a
//! seeder stops reading, answers the requests before it and drops the stream: the kind decides
//! the layout of what follows, so an unknown kind cannot be skipped. A fetcher drops the stream,
//! and the seeder for the download, at a malformed response (body too long).
//!
//! A seeder closes a stream that stays idle (no request) for [`IDLE_TIMEOUT`]; the fetcher
//! opens a new one when it needs it again.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use libp2p::PeerId;
//! use mcc_blobs::{BlockStore, Cid, transfer};
//!
//! # async fn example(
//! #     behaviour: &mcc_streams::Behaviour,
//! #     store: Arc<dyn BlockStore>,
//! #     seeders: Vec<PeerId>,
//! #     root: Cid,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! // Seeder: serve every block of `store`.
//! let stats = transfer::ServeStats::default();
//! tokio::spawn(transfer::serve(behaviour.control(), store.clone(), stats.clone()));
//!
//! // Fetcher: download the DAG under `root` into `store`.
//! let reports = transfer::fetch(behaviour.control(), seeders, root, store, |p| {
//!     println!("{} bytes of {:?}", p.bytes_done, p.total_bytes);
//! })
//! .await?;
//! for report in reports {
//!     println!("{}: {} blocks", report.peer, report.blocks);
//! }
//! # Ok(())
//! # }
//! ```

mod fetch;
mod server;
mod wire;

use std::time::Duration;

use libp2p::{PeerId, StreamProtocol};

pub use fetch::{
    AllowSeeder, FetchConfig, NewSeeder, RemoteAnswer, RemoteBlocks, RemoteSeeders, fetch,
    fetch_streaming, fetch_with,
};
pub use server::{ServeStats, serve, serve_with};
pub use wire::{MAX_CID_LEN, MAX_MESSAGE_LEN};

/// The wire decoders on any reader, for the fuzz targets in `fuzz/`. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use tokio::io::AsyncRead;

    use crate::Cid;

    /// Reads one GetBlock request as a seeder does: `Ok(None)` at a clean end of stream.
    pub async fn read_request<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Option<Cid>, String> {
        super::wire::read_request(reader)
            .await
            .map_err(|e| format!("{e:?}"))
    }

    /// Reads one response as a fetcher does: its status byte and body (a message is lossy
    /// UTF-8).
    pub async fn read_response<R: AsyncRead + Unpin>(
        reader: &mut R,
    ) -> Result<(u8, Vec<u8>), String> {
        use super::wire::Response;
        match super::wire::read_response(reader).await {
            Ok(Response::Block(body)) => Ok((super::wire::STATUS_OK, body)),
            Ok(Response::NotFound(m)) => Ok((super::wire::STATUS_NOT_FOUND, m.into_bytes())),
            Ok(Response::Refused(m)) => Ok((super::wire::STATUS_REFUSED, m.into_bytes())),
            Ok(Response::Unknown { status, message }) => Ok((status, message.into_bytes())),
            Err(e) => Err(format!("{e:?}")),
        }
    }

    /// Encodes a GetBlock request (for seed inputs).
    pub fn encode_request(cid: &Cid) -> Vec<u8> {
        let mut buf = Vec::new();
        super::wire::encode_request(cid, &mut buf);
        buf
    }
}

/// The libp2p protocol of block transfer streams.
pub const PROTOCOL_NAME: StreamProtocol = StreamProtocol::new("/mcc/blobs/1.0.0");

/// How long a seeder keeps a stream open without a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Why [`serve`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another task already accepts [`PROTOCOL_NAME`] streams on this behaviour.
    #[error("{PROTOCOL_NAME} streams are already accepted on this behaviour")]
    AlreadyRegistered,
}

/// Progress of a [`fetch`], for progress bars.
///
/// Blocks that were already in the store count as done. A block that the DAG links more than
/// once counts once per link, so that `bytes_done` reaches `total_bytes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Blocks stored (or found in the store).
    pub blocks_done: u64,
    /// Bytes of those blocks.
    pub bytes_done: u64,
    /// Bytes of all blocks of the DAG (the root's size plus its links' `Tsize`s), known once the
    /// root is decoded.
    pub total_bytes: Option<u64>,
    /// Seeders still in use.
    pub seeders: usize,
}

/// Why a [`fetch`] failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No seeder was given, and blocks are missing.
    #[error("no seeders to fetch from")]
    NoSeeders,
    /// Every seeder was dropped, or none of those left has a missing block.
    #[error("all seeders failed with {missing} blocks missing (last: {last})")]
    AllSeedersFailed {
        /// Blocks known to be missing (their descendants, not known yet, are not counted).
        missing: usize,
        /// The last reason a seeder was dropped, or which block nobody has.
        last: String,
    },
    /// A block of the DAG is not a UnixFS node this crate can follow (or names an unsupported
    /// codec or hash).
    #[error("cannot follow the DAG: {0}")]
    Decode(String),
    /// The DAG is out of proportion (see [`unixfs::measure`](crate::unixfs::measure)): a "DAG
    /// bomb" whose few blocks stand for far more leaves than their bytes are worth.
    #[error("blob DAG refused: {0}")]
    Refused(#[from] crate::unixfs::Refusal),
    /// The block store failed.
    #[error("block store: {0}")]
    Store(std::io::Error),
    /// The runtime stopped the fetch's tasks.
    #[error("the fetch was cancelled")]
    Cancelled,
}

/// What one seeder did during a [`fetch`].
#[derive(Debug, Clone)]
pub struct SeederReport {
    /// The seeder.
    pub peer: PeerId,
    /// Blocks it sent that were verified and stored.
    pub blocks: u64,
    /// Bytes of those blocks.
    pub bytes: u64,
    /// Why it was dropped for this download, if it was (for example "sent a block that does not
    /// match its CID").
    pub dropped: Option<String>,
}
