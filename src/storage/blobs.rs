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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use mcc_blobs::{BlockStore, Cid};
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    WriteTransaction,
};

pub use super::StorageError;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const BLOBS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blobs");
const BLOB_BLOCKS: TableDefinition<BlobBlockKey, ()> = TableDefinition::new("blob_blocks");
const BLOCK_REFS: TableDefinition<&[u8], u64> = TableDefinition::new("block_refs");

/// (root CID bytes, block CID bytes).
type BlobBlockKey = (&'static [u8], &'static [u8]);

const SCHEMA_KEY: &str = "schema_version";
const NEXT_SEQ_KEY: &str = "next_seq";
const SCHEMA_VERSION: u64 = 1;

const DB_FILE: &str = "blobs.redb";
const BLOCKS_DIR: &str = "blocks";
const TMP_PREFIX: &str = ".tmp-";

const ROW_FORMAT_V1: u8 = 1;
const STATE_COMPLETE: u8 = 1;
const STATE_FETCHING: u8 = 2;
const ROW_LEN: usize = 2 + 4 * 8;

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

/// Whether a blob is complete or being fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Complete,
    Fetching,
}

/// A decoded row of the `blobs` table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BlobRow {
    state: State,
    size: u64,
    blocks: u64,
    added_ms: u64,
    seq: u64,
}

/// Why a `blobs` row could not be decoded.
#[derive(Debug, thiserror::Error)]
enum RowError {
    #[error("row has {0} bytes, expected {ROW_LEN}")]
    Length(usize),
    #[error("unknown row format {0}")]
    Format(u8),
    #[error("unknown blob state {0}")]
    State(u8),
}

/// Why a dag-pb node could not be decoded.
#[derive(Debug, thiserror::Error)]
enum PbError {
    #[error("truncated protobuf")]
    Truncated,
    #[error("varint longer than 64 bits")]
    Varint,
    #[error("unsupported protobuf wire type {0}")]
    WireType(u64),
    #[error("link without a hash")]
    MissingHash,
    #[error("link hash is not a CID: {0}")]
    Cid(String),
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

/// An add in progress: the blocks written so far. See [`BlobStore::begin_add`].
///
/// Dropping it without [`commit`](Self::commit) removes the blocks it wrote that nothing
/// else uses; after a crash, the next [`BlobStore::open`] does.
pub struct AddSession {
    store: Arc<Inner>,
    blocks: HashSet<Cid>,
}

impl fmt::Debug for AddSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddSession")
            .field("dir", &self.store.dir)
            .field("blocks", &self.blocks.len())
            .finish()
    }
}

impl AddSession {
    /// Stores a block of the file (atomically, not fsynced), unless a file of the same size is
    /// already stored under `cid` (re-adding content writes nothing). The caller computed
    /// `cid` from `data`.
    pub fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), StorageError> {
        if self.blocks.contains(cid) {
            return Ok(());
        }
        // Pin before looking at the disk, so a concurrent delete cannot remove an existing
        // copy between the check and the commit.
        self.store.pin(std::iter::once(*cid));
        self.blocks.insert(*cid);
        let path = self.store.block_path(cid);
        let stored =
            fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == to_u64(data.len()));
        if !stored {
            self.store
                .write_block(cid, data)
                .map_err(|e| io_error(&path, e))?;
        }
        Ok(())
    }

    /// Commits the blob `root` of `size` bytes made of the blocks put so far (and `root`),
    /// like [`BlobStore::commit`]. On error nothing is visible and the blocks are released as
    /// on drop.
    pub fn commit(mut self, root: &Cid, size: u64) -> Result<BlobInfo, StorageError> {
        let info = self.store.commit(root, size, self.blocks.iter().copied())?;
        let blocks: Vec<Cid> = self.blocks.drain().collect();
        self.store.unpin(&blocks);
        Ok(info)
    }

    /// Simulates a crash: forgets the session without removing its blocks.
    #[cfg(test)]
    fn crash(mut self) {
        let blocks: Vec<Cid> = self.blocks.drain().collect();
        self.store.unpin(&blocks);
    }
}

impl Drop for AddSession {
    fn drop(&mut self) {
        if self.blocks.is_empty() {
            return;
        }
        let blocks: Vec<Cid> = self.blocks.drain().collect();
        self.store.release(&blocks);
    }
}

/// What the sweep of [`BlobStore::open`] removed.
struct Swept {
    temp_files: usize,
    orphans: usize,
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

    /// Creates the tables and checks (or stamps) the schema version.
    fn prepare_schema(&self) -> Result<(), StorageError> {
        let path = self.db_path.as_path();
        self.write(|txn| {
            let has_tables = txn.list_tables()?.next().is_some();
            let mut meta = txn.open_table(META)?;
            let found = meta.get(SCHEMA_KEY)?.map(|v| v.value());
            match found {
                Some(SCHEMA_VERSION) => {}
                Some(found) => {
                    return Ok(Txn::Abort(Err(StorageError::UnsupportedVersion {
                        path: path.to_path_buf(),
                        found,
                        supported: SCHEMA_VERSION,
                    })));
                }
                // Tables but no version: this program did not write the file (it stamps the
                // version in the transaction that creates the tables).
                None if has_tables => {
                    return Ok(Txn::Abort(Err(StorageError::Corrupt {
                        path: path.to_path_buf(),
                        reason: "redb file without a blob-store schema version".into(),
                    })));
                }
                None => {
                    meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
                }
            }
            txn.open_table(BLOBS)?;
            txn.open_table(BLOB_BLOCKS)?;
            txn.open_table(BLOCK_REFS)?;
            Ok(Txn::Commit(Ok(())))
        })?
    }

    fn block_path(&self, cid: &Cid) -> PathBuf {
        let name = cid.to_string();
        self.blocks_dir.join(shard_of(&name)).join(&name)
    }

    fn has(&self, cid: &Cid) -> bool {
        self.block_path(cid).is_file()
    }

    /// Writes a block file atomically: a temp file in its folder, renamed over the final name.
    fn write_block(&self, cid: &Cid, data: &[u8]) -> io::Result<()> {
        let name = cid.to_string();
        let shard = self.blocks_dir.join(shard_of(&name));
        fs::create_dir_all(&shard)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&shard)?;
        tmp.write_all(data)?;
        tmp.persist(shard.join(&name)).map_err(|e| e.error)?;
        Ok(())
    }

    /// The verified bytes of a block; `None` if the file is missing or does not match `cid`.
    fn read_block(&self, cid: &Cid) -> io::Result<Option<Vec<u8>>> {
        let path = self.block_path(cid);
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if mcc_blobs::verify(cid, &data) {
            Ok(Some(data))
        } else {
            tracing::warn!(path = %path.display(), %cid,
                "block file does not match its CID; treating it as missing");
            Ok(None)
        }
    }

    fn lock_pins(&self) -> MutexGuard<'_, HashMap<Cid, usize>> {
        self.pins.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pin(&self, cids: impl IntoIterator<Item = Cid>) {
        let mut pins = self.lock_pins();
        for cid in cids {
            *pins.entry(cid).or_insert(0) += 1;
        }
    }

    /// Releases pins, removing nothing. Returns the blocks no longer pinned at all.
    fn unpin_in(pins: &mut HashMap<Cid, usize>, cids: &[Cid]) -> Vec<Cid> {
        let mut free = Vec::new();
        for cid in cids {
            if let Some(n) = pins.get_mut(cid) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    pins.remove(cid);
                    free.push(*cid);
                }
            }
        }
        free
    }

    fn unpin(&self, cids: &[Cid]) {
        Self::unpin_in(&mut self.lock_pins(), cids);
    }

    /// Releases the pins of a dropped add session and removes the blocks nothing uses.
    fn release(&self, cids: &[Cid]) {
        let mut pins = self.lock_pins();
        let free = Self::unpin_in(&mut pins, cids);
        match self.remove_unused(&pins, free) {
            Ok(removed) => {
                tracing::debug!(dir = %self.dir.display(), removed,
                    "removed the blocks of an abandoned add");
            }
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e,
                    "cleaning up an abandoned add failed; the next open retries");
            }
        }
    }

    fn begin_fetch(&self, root: &Cid) -> Result<(), StorageError> {
        let key = root.to_bytes();
        let row = encode_row(&BlobRow {
            state: State::Fetching,
            size: 0,
            blocks: 0,
            added_ms: now_ms(),
            seq: 0,
        });
        let path = self.db_path.as_path();
        self.write(|txn| {
            let mut blobs = txn.open_table(BLOBS)?;
            let existing = blobs.get(key.as_slice())?.map(|v| decode_row(v.value()));
            match existing {
                Some(Ok(_)) => return Ok(Txn::Abort(())),
                Some(Err(e)) => {
                    tracing::warn!(path = %path.display(), %root, error = %e,
                        "replacing undecodable blob row with a fetch");
                }
                None => {}
            }
            blobs.insert(key.as_slice(), row.as_slice())?;
            Ok(Txn::Commit(()))
        })
    }

    fn commit(
        &self,
        root: &Cid,
        size: u64,
        blocks: impl IntoIterator<Item = Cid>,
    ) -> Result<BlobInfo, StorageError> {
        let mut set: BTreeSet<Cid> = blocks.into_iter().collect();
        set.insert(*root);
        let set: Vec<Cid> = set.into_iter().collect();
        // Pinned from before the fsync until the index names them, so no concurrent delete
        // removes a block in between (one removed before the pin makes the fsync fail).
        self.pin(set.iter().copied());
        let result = self
            .sync_blocks(&set)
            .and_then(|()| self.index_blob(root, size, &set));
        self.unpin(&set);
        let row = result?;
        Ok(blob_info(root, &row))
    }

    /// Fsyncs the block files, then their folders and the `blocks` folder.
    fn sync_blocks(&self, cids: &[Cid]) -> Result<(), StorageError> {
        let mut dirs = BTreeSet::new();
        for cid in cids {
            let path = self.block_path(cid);
            sync_file(&path).map_err(|e| io_error(&path, e))?;
            if let Some(dir) = path.parent() {
                dirs.insert(dir.to_path_buf());
            }
        }
        dirs.insert(self.blocks_dir.clone());
        for dir in &dirs {
            sync_dir(dir).map_err(|e| io_error(dir, e))?;
        }
        Ok(())
    }

    /// Records `root` as complete with `blocks` (distinct), unless it already is.
    fn index_blob(&self, root: &Cid, size: u64, blocks: &[Cid]) -> Result<BlobRow, StorageError> {
        let key = root.to_bytes();
        let block_keys: Vec<Vec<u8>> = blocks.iter().map(Cid::to_bytes).collect();
        let added_ms = now_ms();
        let path = self.db_path.as_path();
        self.write(|txn| {
            let mut blobs = txn.open_table(BLOBS)?;
            let existing = blobs.get(key.as_slice())?.map(|v| decode_row(v.value()));
            match existing {
                Some(Ok(row)) if row.state == State::Complete => return Ok(Txn::Abort(row)),
                Some(Err(e)) => {
                    tracing::warn!(path = %path.display(), %root, error = %e,
                        "replacing undecodable blob row");
                }
                Some(Ok(_)) | None => {}
            }
            let mut blob_blocks = txn.open_table(BLOB_BLOCKS)?;
            let mut refs = txn.open_table(BLOCK_REFS)?;
            // Normally none: only an undecodable row can leave block links behind.
            unlink_blocks(&mut blob_blocks, &mut refs, &key)?;
            let mut meta = txn.open_table(META)?;
            let seq = meta.get(NEXT_SEQ_KEY)?.map_or(1, |v| v.value());
            meta.insert(NEXT_SEQ_KEY, seq.saturating_add(1))?;
            for block in &block_keys {
                blob_blocks.insert((key.as_slice(), block.as_slice()), ())?;
                let n = refs.get(block.as_slice())?.map_or(0, |v| v.value());
                refs.insert(block.as_slice(), n.saturating_add(1))?;
            }
            let row = BlobRow {
                state: State::Complete,
                size,
                blocks: to_u64(block_keys.len()),
                added_ms,
                seq,
            };
            blobs.insert(key.as_slice(), encode_row(&row).as_slice())?;
            Ok(Txn::Commit(row))
        })
    }

    fn info(&self, root: &Cid) -> Option<BlobInfo> {
        let key = root.to_bytes();
        let found = self.read(|txn| {
            let blobs = txn.open_table(BLOBS)?;
            Ok(blobs.get(key.as_slice())?.map(|v| decode_row(v.value())))
        });
        match found {
            Ok(Some(Ok(row))) if row.state == State::Complete => Some(blob_info(root, &row)),
            Ok(Some(Ok(_)) | None) => None,
            Ok(Some(Err(e))) => {
                tracing::warn!(path = %self.db_path.display(), %root, error = %e,
                    "ignoring undecodable blob row");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading a blob failed");
                None
            }
        }
    }

    /// Every decodable blob row (undecodable ones are logged and skipped).
    fn rows(&self) -> Result<Vec<(Cid, BlobRow)>, StorageError> {
        let path = self.db_path.as_path();
        self.read(|txn| {
            let blobs = txn.open_table(BLOBS)?;
            let mut out = Vec::new();
            for entry in blobs.range::<&[u8]>(..)? {
                let (key, row) = entry?;
                let cid = Cid::try_from(key.value());
                match (cid, decode_row(row.value())) {
                    (Ok(cid), Ok(row)) => out.push((cid, row)),
                    (Err(e), _) => {
                        tracing::warn!(path = %path.display(), error = %e,
                            "ignoring blob row with an invalid CID");
                    }
                    (Ok(cid), Err(e)) => {
                        tracing::warn!(path = %path.display(), %cid, error = %e,
                            "ignoring undecodable blob row");
                    }
                }
            }
            Ok(out)
        })
    }

    fn list(&self) -> Vec<BlobInfo> {
        let mut rows = match self.rows() {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "listing blobs failed");
                return Vec::new();
            }
        };
        rows.retain(|(_, row)| row.state == State::Complete);
        rows.sort_by_key(|(_, row)| std::cmp::Reverse(row.seq));
        rows.iter().map(|(cid, row)| blob_info(cid, row)).collect()
    }

    fn fetch_roots(&self) -> Result<Vec<Cid>, StorageError> {
        Ok(self
            .rows()?
            .into_iter()
            .filter(|(_, row)| row.state == State::Fetching)
            .map(|(cid, _)| cid)
            .collect())
    }

    /// The blocks reachable from `roots` through stored (and verified) dag-pb nodes, roots
    /// included, whether stored or not.
    ///
    /// Each distinct block is visited once, however many links lead to it, so a DAG that links
    /// the same subtree over and over (a "DAG bomb") costs its distinct blocks, not its paths.
    fn reachable(&self, roots: &[Cid]) -> Result<HashSet<Cid>, StorageError> {
        let mut seen: HashSet<Cid> = HashSet::new();
        let mut stack: Vec<Cid> = roots.to_vec();
        while let Some(cid) = stack.pop() {
            if !seen.insert(cid) || cid.codec() != mcc_blobs::DAG_PB {
                continue;
            }
            let node = self
                .read_block(&cid)
                .map_err(|e| io_error(&self.block_path(&cid), e))?;
            let Some(node) = node else { continue };
            match dag_pb_links(&node) {
                Ok(links) => stack.extend(links.into_iter().filter(|l| !seen.contains(l))),
                Err(e) => {
                    tracing::warn!(%cid, error = %e, "cannot decode dag-pb node");
                }
            }
        }
        Ok(seen)
    }

    /// Removes the files of those `candidates` that are not pinned, listed by no complete blob
    /// and reached by no partial fetch. Must be called with the pins lock held (`pins`).
    /// Returns how many files were removed.
    fn remove_unused(
        &self,
        pins: &HashMap<Cid, usize>,
        candidates: impl IntoIterator<Item = Cid>,
    ) -> Result<usize, StorageError> {
        let candidates: Vec<Cid> = candidates
            .into_iter()
            .filter(|c| !pins.contains_key(c))
            .collect();
        if candidates.is_empty() {
            return Ok(0);
        }
        let unreferenced = self.read(|txn| {
            let refs = txn.open_table(BLOCK_REFS)?;
            let mut out = Vec::new();
            for cid in candidates {
                if refs.get(cid.to_bytes().as_slice())?.is_none() {
                    out.push(cid);
                }
            }
            Ok(out)
        })?;
        if unreferenced.is_empty() {
            return Ok(0);
        }
        let needed = self.reachable(&self.fetch_roots()?)?;
        let mut removed = 0;
        for cid in unreferenced.iter().filter(|c| !needed.contains(c)) {
            let path = self.block_path(cid);
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e,
                        "cannot remove unused block; the next open retries");
                }
            }
        }
        Ok(removed)
    }

    fn delete(&self, root: &Cid) -> Result<bool, StorageError> {
        let key = root.to_bytes();
        let pins = self.lock_pins();
        // The blocks a partial fetch owns are only known by walking its DAG.
        let fetching = self.read(|txn| {
            let blobs = txn.open_table(BLOBS)?;
            Ok(blobs
                .get(key.as_slice())?
                .map(|v| decode_row(v.value()).is_ok_and(|r| r.state == State::Fetching)))
        })?;
        let Some(fetching) = fetching else {
            return Ok(false);
        };
        let mut candidates: Vec<Cid> = if fetching {
            self.reachable(std::slice::from_ref(root))?
                .into_iter()
                .collect()
        } else {
            Vec::new()
        };
        let freed = self.write(|txn| {
            let mut blobs = txn.open_table(BLOBS)?;
            if blobs.remove(key.as_slice())?.is_none() {
                return Ok(Txn::Abort(None));
            }
            let mut blob_blocks = txn.open_table(BLOB_BLOCKS)?;
            let mut refs = txn.open_table(BLOCK_REFS)?;
            let freed = unlink_blocks(&mut blob_blocks, &mut refs, &key)?;
            Ok(Txn::Commit(Some(freed)))
        })?;
        let Some(freed) = freed else {
            return Ok(false);
        };
        candidates.extend(
            freed
                .iter()
                .filter_map(|b| Cid::try_from(b.as_slice()).ok()),
        );
        // The blob is gone from the index; files left behind are swept by the next open.
        match self.remove_unused(&pins, candidates) {
            Ok(removed) => {
                tracing::debug!(%root, removed, "deleted blob");
            }
            Err(e) => {
                tracing::warn!(%root, error = %e,
                    "deleted blob but could not remove its blocks; the next open retries");
            }
        }
        Ok(true)
    }

    /// Removes `.tmp-*` files and the block files no complete blob lists and no partial fetch
    /// reaches. Runs at open, before anyone else uses the store.
    fn sweep(&self) -> Result<Swept, StorageError> {
        let needed = self.reachable(&self.fetch_roots()?)?;
        let mut swept = Swept {
            temp_files: 0,
            orphans: 0,
        };
        let dir = &self.blocks_dir;
        let shards = fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
        let txn = self.db.begin_read().map_err(|e| self.redb_error(e))?;
        let refs = txn.open_table(BLOCK_REFS).map_err(|e| self.redb_error(e))?;
        for shard in shards {
            let shard = shard.map_err(|e| io_error(dir, e))?;
            let shard_path = shard.path();
            let shard_name = shard.file_name();
            let shard_name = shard_name.to_string_lossy();
            if shard_name.starts_with(TMP_PREFIX) {
                swept.temp_files += usize::from(remove_leftover(&shard_path));
                continue;
            }
            let is_dir = shard
                .file_type()
                .map_err(|e| io_error(&shard_path, e))?
                .is_dir();
            if !is_dir {
                tracing::warn!(path = %shard_path.display(), "ignoring unexpected file");
                continue;
            }
            let files = fs::read_dir(&shard_path).map_err(|e| io_error(&shard_path, e))?;
            for file in files {
                let file = file.map_err(|e| io_error(&shard_path, e))?;
                let path = file.path();
                let name = file.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(TMP_PREFIX) {
                    swept.temp_files += usize::from(remove_leftover(&path));
                    continue;
                }
                let cid = match name.parse::<Cid>() {
                    Ok(cid) if cid.to_string() == name && shard_of(&name) == shard_name => cid,
                    _ => {
                        tracing::warn!(path = %path.display(), "ignoring unexpected file");
                        continue;
                    }
                };
                let referenced = refs
                    .get(cid.to_bytes().as_slice())
                    .map_err(|e| self.redb_error(e))?
                    .is_some();
                if referenced || needed.contains(&cid) {
                    continue;
                }
                swept.orphans += usize::from(remove_leftover(&path));
            }
        }
        if swept.orphans > 0 {
            tracing::info!(dir = %self.dir.display(), blocks = swept.orphans,
                "removed blocks of unfinished adds");
        }
        Ok(swept)
    }
}

/// Removes the `(root, *)` rows of `blob_blocks` and decrements the reference counts of those
/// blocks. Returns the blocks (CID bytes) no complete blob lists any more.
fn unlink_blocks(
    blob_blocks: &mut redb::Table<'_, BlobBlockKey, ()>,
    refs: &mut redb::Table<'_, &'static [u8], u64>,
    root: &[u8],
) -> Result<Vec<Vec<u8>>, redb::Error> {
    let mut linked = Vec::new();
    for entry in blob_blocks.range((root, &[][..])..)? {
        let (k, _) = entry?;
        let (r, block) = k.value();
        if r != root {
            break;
        }
        linked.push(block.to_vec());
    }
    let mut freed = Vec::new();
    for block in linked {
        blob_blocks.remove((root, block.as_slice()))?;
        let n = refs.get(block.as_slice())?.map_or(0, |v| v.value());
        if n <= 1 {
            refs.remove(block.as_slice())?;
            freed.push(block);
        } else {
            refs.insert(block.as_slice(), n - 1)?;
        }
    }
    Ok(freed)
}

/// Removes a leftover file found by the sweep; returns whether it did.
fn remove_leftover(path: &Path) -> bool {
    match fs::remove_file(path) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove leftover file");
            false
        }
    }
}

/// The folder of a block: the two characters before the last one of its CID string.
fn shard_of(name: &str) -> &str {
    let end = name.len().saturating_sub(1);
    name.get(end.saturating_sub(2)..end).unwrap_or("__")
}

fn sync_file(path: &Path) -> io::Result<()> {
    // Some platforms can only flush a file opened for writing.
    fs::OpenOptions::new()
        .read(true)
        .write(!cfg!(unix))
        .open(path)?
        .sync_all()
}

fn sync_dir(path: &Path) -> io::Result<()> {
    match fs::File::open(path) {
        Ok(dir) => {
            let synced = dir.sync_all();
            // Not every platform can fsync a folder.
            if cfg!(unix) { synced } else { Ok(()) }
        }
        Err(e) if cfg!(unix) => Err(e),
        Err(_) => Ok(()),
    }
}

/// An I/O error on a file of the store, reported as a storage error of that file.
fn io_error(path: &Path, source: io::Error) -> StorageError {
    StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn blob_info(root: &Cid, row: &BlobRow) -> BlobInfo {
    BlobInfo {
        cid: root.to_string(),
        size: row.size,
        complete: row.state == State::Complete,
        blocks: row.blocks,
        added_unix_ms: row.added_ms,
    }
}

fn encode_row(row: &BlobRow) -> [u8; ROW_LEN] {
    let mut out = [0u8; ROW_LEN];
    out[0] = ROW_FORMAT_V1;
    out[1] = match row.state {
        State::Complete => STATE_COMPLETE,
        State::Fetching => STATE_FETCHING,
    };
    for (i, v) in [row.size, row.blocks, row.added_ms, row.seq]
        .into_iter()
        .enumerate()
    {
        out[2 + i * 8..10 + i * 8].copy_from_slice(&v.to_le_bytes());
    }
    out
}

fn decode_row(bytes: &[u8]) -> Result<BlobRow, RowError> {
    let bytes: &[u8; ROW_LEN] = bytes
        .try_into()
        .map_err(|_| RowError::Length(bytes.len()))?;
    let [format, state, rest @ ..] = bytes;
    if *format != ROW_FORMAT_V1 {
        return Err(RowError::Format(*format));
    }
    let state = match *state {
        STATE_COMPLETE => State::Complete,
        STATE_FETCHING => State::Fetching,
        other => return Err(RowError::State(other)),
    };
    let mut fields = rest.chunks_exact(8).map(|c| {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        u64::from_le_bytes(b)
    });
    let mut next = || fields.next().unwrap_or(0);
    Ok(BlobRow {
        state,
        size: next(),
        blocks: next(),
        added_ms: next(),
        seq: next(),
    })
}

/// The CIDs a dag-pb node links to (`PBNode.Links[].Hash`), in order.
fn dag_pb_links(node: &[u8]) -> Result<Vec<Cid>, PbError> {
    let mut links = Vec::new();
    let mut rest = node;
    while !rest.is_empty() {
        let (field, wire) = read_key(&mut rest)?;
        if field == 2 && wire == WIRE_LEN {
            let link = read_bytes(&mut rest)?;
            links.push(link_hash(link)?);
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcc_blobs::{DAG_PB, RAW, cid_of};

    fn open(dir: &Path) -> BlobStore {
        BlobStore::open(dir).expect("open")
    }

    fn raw(data: &[u8]) -> (Cid, Vec<u8>) {
        (cid_of(RAW, data), data.to_vec())
    }

    fn varint(mut n: u64, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    fn field_bytes(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
        varint((field << 3) | WIRE_LEN, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }

    /// A dag-pb node linking `links` (with names and sizes, as UnixFS writes them).
    fn node(links: &[Cid]) -> (Cid, Vec<u8>) {
        let mut out = Vec::new();
        for l in links {
            let mut link = Vec::new();
            field_bytes(1, &l.to_bytes(), &mut link);
            field_bytes(2, b"", &mut link);
            varint((3 << 3) | WIRE_VARINT, &mut link);
            varint(1_048_576, &mut link);
            field_bytes(2, &link, &mut out);
        }
        // Data: a UnixFS File message.
        field_bytes(1, &[0x08, 0x02], &mut out);
        (cid_of(DAG_PB, &out), out)
    }

    /// A blob of `leaves` under a dag-pb root, as (root, all blocks).
    fn dag(leaves: &[(Cid, Vec<u8>)]) -> (Cid, Vec<(Cid, Vec<u8>)>) {
        let links: Vec<Cid> = leaves.iter().map(|(c, _)| *c).collect();
        let (root, data) = node(&links);
        let mut blocks = vec![(root, data)];
        blocks.extend(leaves.iter().cloned());
        (root, blocks)
    }

    fn add(store: &BlobStore, blocks: &[(Cid, Vec<u8>)], root: &Cid) -> BlobInfo {
        let mut session = store.begin_add().expect("begin");
        for (cid, data) in blocks {
            session.put(cid, data).expect("put");
        }
        let size = blocks.iter().map(|(_, d)| d.len() as u64).sum();
        session.commit(root, size).expect("commit")
    }

    /// Names of all block files (and anything else) under `blocks/`.
    fn files(dir: &Path) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for shard in fs::read_dir(dir.join(BLOCKS_DIR)).expect("read_dir") {
            let shard = shard.expect("entry");
            if shard.file_type().expect("type").is_dir() {
                for f in fs::read_dir(shard.path()).expect("read_dir") {
                    out.insert(f.expect("entry").file_name().to_string_lossy().into_owned());
                }
            } else {
                out.insert(shard.file_name().to_string_lossy().into_owned());
            }
        }
        out
    }

    fn names(cids: &[Cid]) -> BTreeSet<String> {
        cids.iter().map(Cid::to_string).collect()
    }

    #[test]
    fn add_commit_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let leaves = [raw(b"one"), raw(b"two"), raw(b"three")];
        let (root, blocks) = dag(&leaves);
        let store = open(dir.path());
        let info = add(&store, &blocks, &root);
        assert_eq!(info.cid, root.to_string());
        assert!(info.cid.starts_with('b'));
        assert_eq!(info.size, 11 + blocks[0].1.len() as u64);
        assert!(info.complete);
        assert_eq!(info.blocks, 4);
        assert!(info.added_unix_ms > 0);
        assert_eq!(store.info(&root), Some(info.clone()));
        assert_eq!(store.list(), vec![info.clone()]);
        let path = store.block_path(&leaves[0].0);
        assert!(path.starts_with(dir.path().join("blocks")));
        assert_eq!(
            path.file_name().and_then(|n| n.to_str()),
            Some(&*leaves[0].0.to_string())
        );
        drop(store);

        let store = open(dir.path());
        assert_eq!(store.info(&root), Some(info.clone()));
        assert_eq!(store.list(), vec![info]);
        assert!(store.partial_fetches().is_empty());
        for (cid, data) in &blocks {
            assert!(store.has(cid));
            assert_eq!(store.get(cid).expect("get"), Some(data.clone()));
        }
        let blocks: Vec<Cid> = blocks.iter().map(|(c, _)| *c).collect();
        assert_eq!(files(dir.path()), names(&blocks));
        // Adding the same content again changes nothing.
        let again = add(&store, &[raw(b"one")], &root);
        assert_eq!(Some(again), store.info(&root));
        assert_eq!(store.list().len(), 1);
    }

    #[test]
    fn dropped_add_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shared = raw(b"shared");
        let (kept_root, kept) = dag(&[shared.clone(), raw(b"kept")]);
        let store = open(dir.path());
        add(&store, &kept, &kept_root);

        let (root, blocks) = dag(&[shared.clone(), raw(b"unique 1"), raw(b"unique 2")]);
        let mut session = store.begin_add().expect("begin");
        for (cid, data) in &blocks {
            session.put(cid, data).expect("put");
        }
        assert!(store.has(&blocks[2].0));
        drop(session);
        assert!(store.info(&root).is_none());
        assert_eq!(store.list().len(), 1);
        let kept_cids: Vec<Cid> = kept.iter().map(|(c, _)| *c).collect();
        assert_eq!(files(dir.path()), names(&kept_cids));
        drop(store);

        let store = open(dir.path());
        assert!(store.info(&root).is_none());
        assert_eq!(files(dir.path()), names(&kept_cids));
        assert_eq!(store.get(&shared.0).expect("get"), Some(shared.1));
    }

    #[test]
    fn crash_during_add_is_swept_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let (kept_root, kept) = dag(&[raw(b"kept")]);
        add(&store, &kept, &kept_root);

        let (root, blocks) = dag(&[raw(b"a"), raw(b"b"), raw(b"c")]);
        let mut session = store.begin_add().expect("begin");
        for (cid, data) in &blocks {
            session.put(cid, data).expect("put");
        }
        session.crash();
        // A block put outside any fetch or add, and half-written temp files.
        let loose = raw(b"loose");
        store.put(&loose.0, &loose.1).expect("put");
        let shard = store.block_path(&blocks[1].0);
        let shard = shard.parent().expect("shard");
        fs::write(shard.join(".tmp-abc123"), b"half").expect("write");
        fs::write(dir.path().join(BLOCKS_DIR).join(".tmp-xyz"), b"half").expect("write");
        // Foreign files are left alone.
        fs::write(shard.join("README"), b"mine").expect("write");
        drop(store);

        let store = open(dir.path());
        assert!(store.info(&root).is_none());
        assert_eq!(store.list().len(), 1);
        assert!(store.partial_fetches().is_empty());
        for (cid, _) in &blocks {
            assert!(!store.has(cid));
        }
        assert!(!store.has(&loose.0));
        let mut expected: Vec<Cid> = kept.iter().map(|(c, _)| *c).collect();
        expected.sort();
        let mut want = names(&expected);
        want.insert("README".into());
        assert_eq!(files(dir.path()), want);
        for (cid, data) in &kept {
            assert_eq!(store.get(cid).expect("get").as_ref(), Some(data));
        }
    }

    const CRASH_DIR_ENV: &str = "MCC_BLOBS_TEST_CRASH_DIR";

    /// The child of `process_death_mid_add`: commits a blob, starts an add and a fetch, then
    /// exits without running any destructor (as if killed).
    #[test]
    #[ignore = "run by process_death_mid_add in a child process"]
    fn crash_child() {
        let Some(dir) = std::env::var_os(CRASH_DIR_ENV) else {
            return;
        };
        let store = open(Path::new(&dir));
        let (kept_root, kept) = dag(&[raw(b"kept")]);
        add(&store, &kept, &kept_root);
        let (_, blocks) = dag(&[raw(b"a"), raw(b"b")]);
        let mut session = store.begin_add().expect("begin");
        for (cid, data) in &blocks {
            session.put(cid, data).expect("put");
        }
        let (fetch_root, fetch_blocks) = dag(&[raw(b"f1"), raw(b"f2")]);
        store.begin_fetch(&fetch_root).expect("begin fetch");
        for (cid, data) in &fetch_blocks[..2] {
            store.put(cid, data).expect("put");
        }
        std::process::exit(42);
    }

    #[test]
    fn process_death_mid_add() {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = std::process::Command::new(std::env::current_exe().expect("exe"))
            .args(["--exact", "storage::blobs::tests::crash_child", "--ignored"])
            .env(CRASH_DIR_ENV, dir.path())
            .stdout(std::process::Stdio::null())
            .status()
            .expect("spawn");
        assert_eq!(status.code(), Some(42));

        let store = open(dir.path());
        let (kept_root, kept) = dag(&[raw(b"kept")]);
        let (add_root, added) = dag(&[raw(b"a"), raw(b"b")]);
        let (fetch_root, fetched) = dag(&[raw(b"f1"), raw(b"f2")]);
        assert_eq!(
            store.list().into_iter().map(|i| i.cid).collect::<Vec<_>>(),
            vec![kept_root.to_string()]
        );
        assert!(store.info(&add_root).is_none());
        assert_eq!(store.partial_fetches(), vec![fetch_root]);
        for (cid, _) in &added {
            assert!(!store.has(cid));
        }
        let mut want: Vec<Cid> = kept.iter().map(|(c, _)| *c).collect();
        want.extend(fetched[..2].iter().map(|(c, _)| *c));
        assert_eq!(files(dir.path()), names(&want));
    }

    #[test]
    fn fetch_resumes_after_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let leaves = [raw(b"l1"), raw(b"l2"), raw(b"l3")];
        let (root, blocks) = dag(&leaves);
        let store = open(dir.path());
        store.begin_fetch(&root).expect("begin");
        store.begin_fetch(&root).expect("idempotent");
        assert_eq!(store.partial_fetches(), vec![root]);
        for (cid, data) in &blocks[..3] {
            store.put(cid, data).expect("put");
        }
        let loose = raw(b"not part of the fetch");
        store.put(&loose.0, &loose.1).expect("put");
        assert!(store.info(&root).is_none());
        assert!(store.list().is_empty());
        drop(store);

        let store = open(dir.path());
        assert_eq!(store.partial_fetches(), vec![root]);
        for (cid, data) in &blocks[..3] {
            assert!(store.has(cid));
            assert_eq!(store.get(cid).expect("get").as_ref(), Some(data));
        }
        assert!(!store.has(&blocks[3].0));
        assert!(!store.has(&loose.0));
        assert!(store.info(&root).is_none());

        // Committing with a block missing fails and shows nothing.
        let cids: Vec<Cid> = blocks.iter().map(|(c, _)| *c).collect();
        assert!(store.commit(&root, 6, &cids).is_err());
        assert!(store.info(&root).is_none());
        assert_eq!(store.partial_fetches(), vec![root]);

        store.put(&blocks[3].0, &blocks[3].1).expect("put");
        let info = store.commit(&root, 6, &cids).expect("commit");
        assert_eq!(info.blocks, 4);
        assert!(store.partial_fetches().is_empty());
        assert_eq!(store.list(), vec![info.clone()]);
        store.begin_fetch(&root).expect("no-op on a complete blob");
        assert!(store.partial_fetches().is_empty());
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.info(&root), Some(info));
        assert_eq!(files(dir.path()), names(&cids));
    }

    #[test]
    fn delete_keeps_shared_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let shared = raw(b"shared");
        let (a, a_blocks) = dag(&[shared.clone(), raw(b"only a")]);
        let (b, b_blocks) = dag(&[raw(b"only b"), shared.clone()]);
        add(&store, &a_blocks, &a);
        add(&store, &b_blocks, &b);

        assert!(store.delete(&a).expect("delete"));
        assert!(!store.delete(&a).expect("delete again"));
        assert!(store.info(&a).is_none());
        let b_cids: Vec<Cid> = b_blocks.iter().map(|(c, _)| *c).collect();
        assert_eq!(files(dir.path()), names(&b_cids));
        for (cid, data) in &b_blocks {
            assert_eq!(store.get(cid).expect("get").as_ref(), Some(data));
        }
        drop(store);
        let store = open(dir.path());
        assert_eq!(files(dir.path()), names(&b_cids));
        assert!(store.delete(&b).expect("delete"));
        assert!(files(dir.path()).is_empty());
        assert!(store.list().is_empty());
        assert!(!store.delete(&raw(b"never").0).expect("unknown"));
    }

    #[test]
    fn delete_keeps_blocks_of_partial_fetches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let shared = raw(b"shared");
        let (a, a_blocks) = dag(&[shared.clone(), raw(b"only a")]);
        add(&store, &a_blocks, &a);

        let x = raw(b"x");
        let (f, f_blocks) = dag(&[shared.clone(), x.clone(), raw(b"not yet")]);
        store.begin_fetch(&f).expect("begin");
        store.put(&f_blocks[0].0, &f_blocks[0].1).expect("put root");
        store.put(&x.0, &x.1).expect("put");
        // The fetch finds `shared` already stored and does not fetch it.

        assert!(store.delete(&a).expect("delete"));
        assert!(store.has(&shared.0));
        assert!(!store.has(&a_blocks[0].0));
        assert!(!store.has(&a_blocks[2].0));
        assert_eq!(files(dir.path()), names(&[f, shared.0, x.0]));

        // Deleting the partial fetch removes what it had.
        assert!(store.delete(&f).expect("delete fetch"));
        assert!(store.partial_fetches().is_empty());
        assert!(files(dir.path()).is_empty());
    }

    #[test]
    fn concurrent_adds_of_the_same_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let (root, blocks) = dag(&[raw(b"same"), raw(b"content")]);
        let mut first = store.begin_add().expect("begin");
        let mut second = store.begin_add().expect("begin");
        for (cid, data) in &blocks {
            first.put(cid, data).expect("put");
            second.put(cid, data).expect("put");
        }
        drop(first);
        for (cid, _) in &blocks {
            assert!(store.has(cid), "kept for the second add");
        }
        let info = second.commit(&root, 11).expect("commit");
        assert_eq!(store.list(), vec![info]);
    }

    #[test]
    fn corrupted_block_is_not_served() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let leaf = raw(b"precious");
        let (root, blocks) = dag(std::slice::from_ref(&leaf));
        add(&store, &blocks, &root);
        fs::write(store.block_path(&leaf.0), b"PRECIOUS").expect("overwrite");
        assert_eq!(store.get(&leaf.0).expect("get"), None);
        let shared: Arc<dyn BlockStore> = Arc::new(store.clone());
        assert_eq!(shared.get(&leaf.0).expect("get"), None);
        // The other block is fine.
        assert_eq!(store.get(&root).expect("get"), Some(blocks[0].1.clone()));
        // Storing the block again (a fetcher that found it missing) repairs it.
        shared.put(&leaf.0, &leaf.1).expect("put");
        assert_eq!(store.get(&leaf.0).expect("get"), Some(leaf.1.clone()));
        // An add of the same content rewrites a truncated copy.
        fs::write(store.block_path(&leaf.0), b"PREC").expect("truncate");
        add(&store, &blocks, &root);
        assert_eq!(store.get(&leaf.0).expect("get"), Some(leaf.1));
    }

    #[test]
    fn list_is_newest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let mut roots = Vec::new();
        for i in 0..4u8 {
            let leaf = raw(&[i; 3]);
            add(&store, std::slice::from_ref(&leaf), &leaf.0);
            roots.push(leaf.0.to_string());
        }
        let listed = |s: &BlobStore| s.list().into_iter().map(|i| i.cid).collect::<Vec<_>>();
        let mut newest_first = roots.clone();
        newest_first.reverse();
        assert_eq!(listed(&store), newest_first);
        let second: Cid = roots[1].parse().expect("cid");
        assert!(store.delete(&second).expect("delete"));
        newest_first.retain(|c| *c != roots[1]);
        assert_eq!(listed(&store), newest_first);
        drop(store);
        let store = open(dir.path());
        assert_eq!(listed(&store), newest_first);
        let leaf = raw(b"latest");
        add(&store, std::slice::from_ref(&leaf), &leaf.0);
        assert_eq!(listed(&store)[0], leaf.0.to_string());
    }

    #[test]
    fn works_as_a_block_store_trait_object() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let blocks: Arc<dyn BlockStore> = Arc::new(store.clone());
        let (cid, data) = raw(b"via the trait");
        assert!(!blocks.has(&cid));
        assert_eq!(blocks.get(&cid).expect("get"), None);
        blocks.put(&cid, &data).expect("put");
        blocks.put(&cid, &data).expect("put twice");
        assert!(blocks.has(&cid));
        assert_eq!(blocks.get(&cid).expect("get"), Some(data));
        let info = store.commit(&cid, 13, &[]).expect("commit");
        assert_eq!(info.blocks, 1);
        let from_thread = std::thread::spawn(move || blocks.has(&cid))
            .join()
            .expect("thread");
        assert!(from_thread);
    }

    #[test]
    fn open_rejects_foreign_and_newer_databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = Database::create(dir.path().join(DB_FILE)).expect("create");
            let txn = db.begin_write().expect("write");
            {
                let table: TableDefinition<u64, u64> = TableDefinition::new("other");
                txn.open_table(table)
                    .expect("table")
                    .insert(1, 2)
                    .expect("insert");
            }
            txn.commit().expect("commit");
        }
        assert!(matches!(
            BlobStore::open(dir.path()),
            Err(StorageError::Corrupt { .. })
        ));

        let dir = tempfile::tempdir().expect("tempdir");
        drop(open(dir.path()));
        {
            let db = Database::create(dir.path().join(DB_FILE)).expect("open");
            let txn = db.begin_write().expect("write");
            txn.open_table(META)
                .expect("meta")
                .insert(SCHEMA_KEY, 99)
                .expect("insert");
            txn.commit().expect("commit");
        }
        assert!(matches!(
            BlobStore::open(dir.path()),
            Err(StorageError::UnsupportedVersion { found: 99, .. })
        ));

        let dir = tempfile::tempdir().expect("tempdir");
        let first = open(dir.path());
        assert!(matches!(
            BlobStore::open(dir.path()),
            Err(StorageError::Open { .. })
        ));
        drop(first);
    }

    #[test]
    fn rows_and_dag_pb_decode() {
        let row = BlobRow {
            state: State::Fetching,
            size: u64::MAX,
            blocks: 7,
            added_ms: 1_700_000_000_000,
            seq: 3,
        };
        assert_eq!(decode_row(&encode_row(&row)).expect("decode"), row);
        assert!(matches!(decode_row(&[1, 1]), Err(RowError::Length(2))));
        let mut bad = encode_row(&row);
        bad[1] = 9;
        assert!(matches!(decode_row(&bad), Err(RowError::State(9))));
        bad[0] = 2;
        assert!(matches!(decode_row(&bad), Err(RowError::Format(2))));

        let a = raw(b"a").0;
        let b = raw(b"b").0;
        let (_, bytes) = node(&[a, b]);
        assert_eq!(dag_pb_links(&bytes).expect("links"), vec![a, b]);
        assert_eq!(dag_pb_links(&node(&[]).1).expect("links"), vec![]);
        assert!(matches!(
            dag_pb_links(&bytes[..bytes.len() - 1]),
            Err(PbError::Truncated)
        ));
        assert!(matches!(dag_pb_links(&[0x13]), Err(PbError::WireType(3))));
        assert!(matches!(
            dag_pb_links(&[0x12, 0x02, 0x18, 0x01]),
            Err(PbError::MissingHash)
        ));
        assert!(matches!(dag_pb_links(&[0x80; 11]), Err(PbError::Varint)));
        // Fixed-width fields are skipped.
        let mut fixed = vec![0x19];
        fixed.extend_from_slice(&[0; 8]);
        fixed.extend_from_slice(&[0x1d, 0, 0, 0, 0]);
        assert_eq!(dag_pb_links(&fixed).expect("links"), vec![]);

        assert_eq!(shard_of("bafkreiabcdefxyz"), "xy");
        assert_eq!(shard_of("b"), "");
    }

    #[test]
    fn deleting_a_partial_dag_bomb_walks_each_block_once() {
        // Depth 4: 174^4 paths to the leaf, 5 distinct blocks.
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let leaf = raw(b"x");
        store.put(&leaf.0, &leaf.1).unwrap();
        let mut child = leaf.0;
        for _ in 0..4 {
            let (cid, data) = node(&vec![child; mcc_blobs::MAX_LINKS]);
            store.put(&cid, &data).unwrap();
            child = cid;
        }
        store.begin_fetch(&child).unwrap();
        let started = std::time::Instant::now();
        drop(store);
        // Opening walks the partial fetch (and keeps its blocks)...
        let store = open(dir.path());
        assert_eq!(files(dir.path()).len(), 5);
        // ...and so does deleting it.
        assert!(store.delete(&child).unwrap());
        assert!(files(dir.path()).is_empty());
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn types_are_thread_safe() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<BlobStore>();
        send_sync::<AddSession>();
    }
}
