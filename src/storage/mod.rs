//! State the node keeps on disk, in its data folder.
//!
//! - [`records`]: the persistent Kademlia record store, [`records::RedbStore`], kept in
//!   `<data-folder>/records.redb`.
//!
//! Everything here is crash-safe: each change is one [redb] transaction that is fsynced before
//! the call returns, so a killed process loses nothing that was acknowledged and never leaves a
//! half-written change behind.

pub mod blobs;
pub mod records;

use std::path::PathBuf;

/// Errors while opening or preparing on-disk storage.
///
/// Errors during normal operation are not reported this way: the Kademlia `RecordStore` trait
/// has no room for them, so they are logged and mapped to the closest `kad` error (see
/// [`records`]).
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
