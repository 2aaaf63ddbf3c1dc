//! State the node keeps on disk, in its data folder (a temp folder that lives as long as the
//! node when it has none). The node opens each store once at start (`node::Builder::spawn`).
//!
//! # Stores
//!
//! - [`records`]: [`records::RedbStore`], the persistent Kademlia record store: value records
//!   (with size limits and per-source quotas) and provider records (with per-key and key-count
//!   limits), expiry, and the batched key walk that replication uses. kad reaches it through
//!   `mcc_records::ValidatingStore` and the admission guard (`node::RecordStore`).
//! - [`blobs`]: [`blobs::BlobStore`], content-addressed blocks and the blobs (DAGs) made of
//!   them: add sessions for local files, resumable partial fetches, deletion and garbage
//!   collection of unused blocks. It implements `mcc_blobs::BlockStore` for the blob protocol.
//! - [`addrbook`]: [`addrbook::AddrBook`], every peer seen with its addresses, sources and
//!   dial backoff; one JSON file written with `fsutil::write_atomic` at most every 5 s
//!   (a `kill -9` loses at most those seconds, never the file).
//!
//! # On-disk layout
//!
//! ```text
//! <data-folder>/records.redb            the record store (one redb file)
//! <data-folder>/blobs/blobs.redb        the blob index
//! <data-folder>/blobs/blocks/<xy>/<cid> one file per block, sharded by CID
//! <data-folder>/addrbook.json           the address book (JSON, replaced atomically)
//! ```
//!
//! The tables and row formats of each redb file are documented in [`records`] and [`blobs`];
//! each file stamps a schema version, and a file with an unknown version or foreign tables is
//! refused at open ([`StorageError::UnsupportedVersion`], [`StorageError::Corrupt`]). Other
//! files of the data folder (the node label, certificates, the service list) are not kept here.
//!
//! # Durability
//!
//! Everything here survives `kill -9` and keeps what it acknowledged across a power cut:
//!
//! - Every change to a redb file is one write transaction committed with
//!   `redb::Durability::Immediate` (fsynced) before the call returns, so a change is either
//!   fully on disk or absent, never half-written. A call that changes nothing aborts its
//!   transaction and costs no fsync.
//! - Block files are written to a `.tmp-*` file in their folder and renamed over the final
//!   name (atomic), so a block file is absent or complete. Blocks are fsynced (with their
//!   folders) when a blob is committed, *before* the index transaction that makes the blob
//!   visible, so a visible blob never lacks a block.
//! - What a crash leaves behind (temp files and the blocks of adds that never committed) is
//!   removed when the store is opened again; opening the record store also removes expired
//!   and undecodable rows.
//!
//! # Adding a store
//!
//! Put it in its own submodule here (a folder `storage/<name>/` with a facade in `mod.rs` once
//! it grows past one file, like [`records`] and [`blobs`]), keep its file(s) under the data
//! folder, report open and preparation errors as [`StorageError`], follow the durability rules
//! above, and open it in `node::Builder::spawn` next to the others.

pub mod addrbook;
pub mod blobs;
pub mod records;

use std::path::PathBuf;

/// Errors of the on-disk stores.
///
/// Both stores report errors while opening or preparing their files this way, and
/// [`blobs::BlobStore`] also its errors during normal operation. The record store cannot: the
/// Kademlia `RecordStore` trait has no room for them, so they are logged and mapped to the
/// closest `kad` error (see [`records`]).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database file could not be opened or created (missing folder, permissions, not a
    /// redb file, already opened by another process, ...).
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    /// A transaction on an open database failed.
    #[error("database {path}: {source}")]
    Redb { path: PathBuf, source: redb::Error },
    /// The file is a redb database but its content is not what this program wrote.
    #[error("database {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// Reading or writing a file of the store failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file was written by a newer (or unknown) version of this program.
    #[error("database {path} has schema version {found}; this build supports {supported}")]
    UnsupportedVersion {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
}
