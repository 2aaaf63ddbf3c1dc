//! Content-addressed blob storage on disk: [`BlobStore`].
//!
//! A *block* is a CID and its bytes (at most about 1 MiB). A *blob* is the DAG under a root
//! CID: a file added locally ([`BlobStore::begin_add`]) or fetched from peers
//! ([`BlobStore::begin_fetch`]). Blobs share blocks: a block is stored once, however many
//! blobs use it.
//!
//! # Layout
//!
//! ```text
//! <dir>/blobs.redb                  the index (schema version 1, below)
//! <dir>/blocks/<xy>/<cid>           one file per block, named by its CID string
//! <dir>/blocks/<xy>/.tmp-*          a block being written (removed by the next open)
//! ```
//!
//! `<cid>` is the CID's canonical string (base32 `b...` for CIDv1). `<xy>` is the two
//! characters before the last one of that string (the "next-to-last/2" sharding of IPFS'
//! flatfs). They come from the hash digest, so the blocks spread evenly over 1024 folders;
//! the first characters of a CIDv1 string are the same for every block (`bafk...`,
//! `bafy...`) and would put them all in one folder.
//!
//! | table         | key                      | value                                   |
//! |---------------|--------------------------|-----------------------------------------|
//! | `meta`        | `"schema_version"`       | `u64`                                   |
//! | `meta`        | `"next_seq"`             | `u64`: order of the next committed blob |
//! | `blobs`       | root CID bytes           | blob row                                |
//! | `blob_blocks` | (root CID, block CID)    | `()`: the blocks of a complete blob     |
//! | `block_refs`  | block CID bytes          | `u64`: complete blobs using the block   |
//!
//! A blob row is `[format=1][state: 1 complete, 2 fetching][size][blocks][added ms][seq]`,
//! the last four `u64` little-endian. `seq` orders [`BlobStore::list`] (newest first) and does
//! not move with the wall clock.
//!
//! # Crash safety
//!
//! - **Block writes are atomic.** A block is written to a `.tmp-*` file in its final folder
//!   and renamed over its final name, so a block file is either absent or complete; a
//!   half-written temp file is never visible under a CID name. Block writes are not fsynced
//!   one by one: [`BlobStore::commit`] fsyncs every block file of the blob and their folders,
//!   and only then commits the index in a redb transaction with [`Durability::Immediate`]. A
//!   blob is visible ([`BlobStore::info`], [`BlobStore::list`]) only once that transaction has
//!   committed, so a visible blob never lacks a block, even after a power cut.
//! - **Adds leave no trace until they commit.** An [`AddSession`] writes its blocks straight
//!   to their final names (so identical blocks are shared at once) and writes nothing to the
//!   index. While the session lives, its blocks are *pinned* in memory so no concurrent
//!   delete removes them. Dropping the session without committing removes the blocks it wrote
//!   that nothing else uses. If the process dies instead (`kill -9`), the blocks stay on disk
//!   but belong to no blob: [`BlobStore::open`] runs a mark-and-sweep (below) that removes
//!   them, together with leftover `.tmp-*` files.
//! - **Fetches resume.** [`BlobStore::begin_fetch`] records the root as `fetching` (fsynced)
//!   before any block is fetched. Blocks arrive through [`BlockStore::put`], which does not
//!   say which fetch they belong to; instead, the blocks a partial fetch owns are the ones
//!   reachable from its root through the dag-pb nodes already stored. The sweep keeps them,
//!   so after a restart [`BlockStore::has`] answers `true` for them and the fetch goes on from
//!   there.
//!
//! # Deletion
//!
//! A block file is removed when no complete blob lists it (`block_refs` is zero), no live
//! [`AddSession`] or running commit has pinned it, and no partial fetch reaches it from its
//! root. [`BlobStore::delete`] and a dropped [`AddSession`] check this for the blocks they
//! release; [`BlobStore::open`] checks it for every block file (mark: the `block_refs`
//! table and the blocks reachable from partial fetches; sweep: every other block file).
//! Failed removals are logged and retried by the sweep of the next open.
//!
//! # Contract for fetchers
//!
//! - Call [`BlobStore::begin_fetch`] before storing the first block of a fetch, and
//!   [`BlobStore::commit`] with the full list of the DAG's blocks when it is complete.
//! - Store a dag-pb node before relying on the blocks it links to (fetch parents first, as
//!   the links are only known from the parent anyway). A block that is reached from no stored
//!   node of a partial fetch is not known to belong to it: a concurrent delete of another
//!   blob sharing it, or the next open, may remove it (the fetch then fetches it again, or
//!   its commit fails because the block is missing).
//!
//! # Reading
//!
//! [`BlockStore::get`] verifies every block against its CID and answers "absent" (logged at
//! `warn`) for a file whose content does not match, so a block damaged on disk is never
//! served. [`BlockStore::has`] only checks that the file exists. [`BlockStore::put`] always
//! (re)writes the file, so storing a block again repairs a damaged copy;
//! [`AddSession::put`] skips blocks already stored with the right size.
//!
//! # Files
//!
//! - `mod.rs`: [`BlobStore`], [`BlobInfo`], opening, the `BlockStore` impl and the transaction
//!   helpers.
//! - `by_hash.rs`: blocks looked up by multihash (the Bitswap server's `BlockSource`).
//! - `blocks.rs`: block files on disk (paths, sharding, atomic writes, verified reads, fsync).
//! - `index.rs`: the redb tables, blob rows, committing a blob and reading the index.
//! - `add.rs`: [`AddSession`] and the in-memory pins of running adds and commits.
//! - `fetch.rs`: partial fetches and the blocks they reach.
//! - `gc.rs`: deleting blobs, removing unused blocks and the sweep at open.
//! - `tests.rs`: test helpers and tests of the store as a whole.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use mcc_blobs::{BlockStore, Cid};
use redb::{Database, Durability, ReadTransaction, ReadableDatabase, WriteTransaction};

mod add;
mod blocks;
mod by_hash;
mod fetch;
mod gc;
mod index;
#[cfg(test)]
mod tests;

pub use super::StorageError;
pub use add::AddSession;

use blocks::BLOCKS_DIR;
use index::DB_FILE;

/// A complete blob, as [`BlobStore::info`] and [`BlobStore::list`] report it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct BlobInfo {
    /// Root CID (CIDv1, base32).
    pub cid: String,
    /// Size of the content in bytes, as given to [`BlobStore::commit`].
    pub size: u64,
    /// Whether every block is stored (always `true` for what the store reports today).
    pub complete: bool,
    /// Number of distinct blocks of the blob, root included.
    pub blocks: u64,
    /// When the blob was committed, in Unix-epoch milliseconds.
    pub added_unix_ms: u64,
}

/// Blocks and blobs in a folder. See the [module docs](self).
///
/// `Send + Sync`; methods take `&self` and may block on disk I/O. Clones share the store.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStore")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

struct Inner {
    dir: PathBuf,
    blocks_dir: PathBuf,
    db_path: PathBuf,
    db: Database,
    /// Blocks held by live add sessions and running commits (CID → holders). The lock also
    /// serialises the decisions to remove block files.
    pins: Mutex<HashMap<Cid, usize>>,
}

/// What a write transaction should do when its body is done.
enum Txn<T> {
    Commit(T),
    Abort(T),
}

impl BlobStore {
    /// Opens the store in `dir`, creating the folder, `blocks/` and `blobs.redb` as needed.
    ///
    /// Removes leftover `.tmp-*` files and every block file that belongs to no complete blob
    /// and to no partial fetch (the blocks of adds that never committed). Partial fetches are
    /// kept so they resume. This reads the names of all block files once.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        let blocks_dir = dir.join(BLOCKS_DIR);
        fs::create_dir_all(&blocks_dir).map_err(|e| io_error(&blocks_dir, e))?;
        let db_path = dir.join(DB_FILE);
        let db = Database::create(&db_path).map_err(|source| StorageError::Open {
            path: db_path.clone(),
            source,
        })?;
        let inner = Inner {
            dir: dir.to_path_buf(),
            blocks_dir,
            db_path,
            db,
            pins: Mutex::new(HashMap::new()),
        };
        inner.prepare_schema()?;
        let swept = inner.sweep()?;
        tracing::debug!(dir = %dir.display(), temp_files = swept.temp_files,
            orphan_blocks = swept.orphans, "opened blob store");
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The folder the store lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Starts adding a local file. Blocks are written as they come
    /// ([`AddSession::put`]); nothing is visible in [`list`](Self::list) or
    /// [`info`](Self::info) until [`AddSession::commit`].
    pub fn begin_add(&self) -> Result<AddSession, StorageError> {
        Ok(AddSession {
            store: Arc::clone(&self.inner),
            blocks: HashSet::new(),
        })
    }

    /// Records that a fetch of `root` is in progress, so its blocks are kept and the fetch
    /// can resume after a restart. Idempotent; does nothing for a complete blob.
    pub fn begin_fetch(&self, root: &Cid) -> Result<(), StorageError> {
        self.inner.begin_fetch(root)
    }

    /// Marks `root` complete, after an add or a fetch: records `size` and the set of its
    /// `blocks` (the root is added if missing; duplicates are ignored).
    ///
    /// First fsyncs every block file and their folders (failing if a block is missing), then
    /// commits the index durably; only then does the blob appear in [`list`](Self::list) and
    /// [`info`](Self::info). Committing a root that is already complete changes nothing and
    /// returns its info.
    pub fn commit(&self, root: &Cid, size: u64, blocks: &[Cid]) -> Result<BlobInfo, StorageError> {
        self.inner.commit(root, size, blocks.iter().copied())
    }

    /// The complete blob `root`, if stored (`None` for a partial fetch).
    pub fn info(&self, root: &Cid) -> Option<BlobInfo> {
        self.inner.info(root)
    }

    /// All complete blobs, the most recently committed first.
    pub fn list(&self) -> Vec<BlobInfo> {
        self.inner.list()
    }

    /// Roots of the fetches begun and not committed (nor deleted), in CID byte order.
    pub fn partial_fetches(&self) -> Vec<Cid> {
        self.inner.fetch_roots().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading partial fetches failed");
            Vec::new()
        })
    }

    /// Deletes the blob `root`, complete or partial, and the block files no other blob,
    /// partial fetch or running add uses. Returns `false` if `root` is unknown.
    pub fn delete(&self, root: &Cid) -> Result<bool, StorageError> {
        self.inner.delete(root)
    }

    /// The file that holds (or would hold) block `cid`.
    pub fn block_path(&self, cid: &Cid) -> PathBuf {
        self.inner.block_path(cid)
    }
}

impl BlockStore for BlobStore {
    fn has(&self, cid: &Cid) -> bool {
        self.inner.has(cid)
    }

    /// Reads and verifies the block; a file whose content does not match `cid` is logged and
    /// reported absent.
    fn get(&self, cid: &Cid) -> io::Result<Option<Vec<u8>>> {
        self.inner.read_block(cid)
    }

    /// Writes the block atomically (not fsynced: [`BlobStore::commit`] does that). An
    /// existing file is replaced, so storing a block again repairs a damaged copy (fetchers
    /// only store the blocks they miss).
    fn put(&self, cid: &Cid, data: &[u8]) -> io::Result<()> {
        self.inner.write_block(cid, data)
    }
}

impl Inner {
    fn redb_error(&self, source: impl Into<redb::Error>) -> StorageError {
        StorageError::Redb {
            path: self.db_path.clone(),
            source: source.into(),
        }
    }

    /// Runs `body` in a write transaction with immediate durability, then commits or aborts as
    /// it says. An error drops (aborts) the transaction.
    fn write<T>(
        &self,
        body: impl FnOnce(&WriteTransaction) -> Result<Txn<T>, redb::Error>,
    ) -> Result<T, StorageError> {
        let run = || -> Result<T, redb::Error> {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(Durability::Immediate)?;
            match body(&txn)? {
                Txn::Commit(v) => {
                    txn.commit()?;
                    Ok(v)
                }
                Txn::Abort(v) => {
                    txn.abort()?;
                    Ok(v)
                }
            }
        };
        run().map_err(|e| self.redb_error(e))
    }

    /// Runs `body` in a read transaction.
    fn read<T>(
        &self,
        body: impl FnOnce(&ReadTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StorageError> {
        let run = || -> Result<T, redb::Error> {
            let txn = self.db.begin_read()?;
            body(&txn)
        };
        run().map_err(|e| self.redb_error(e))
    }
}

/// An I/O error on a file of the store, reported as a storage error of that file.
fn io_error(path: &Path, source: io::Error) -> StorageError {
    StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
