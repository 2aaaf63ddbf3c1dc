//! A persistent Kademlia record store on [redb]: [`RedbStore`].
//!
//! It implements `libp2p::kad::store::RecordStore` with the semantics of kad's `MemoryStore`
//! (limits, errors, first-come provider lists), but keeps everything in one redb file so records
//! and provider records survive a restart. It does not look at record content: validation is the
//! job of a wrapper in front of it.
//!
//! # Durability
//!
//! Every mutating call is one write transaction committed with [`Durability::Immediate`]
//! (fsync) before it returns. A call that changes nothing (removing an absent key, a refused
//! insert) aborts its transaction instead and costs no fsync.
//!
//! # Errors
//!
//! The `RecordStore` trait cannot report I/O errors. Reads that fail are logged at `warn` and
//! answer "absent"/empty; writes that fail are logged and refused with the nearest `kad` error
//! (`MaxRecords` for `put`, `MaxProvidedKeys` for `add_provider`), so a failed write is never
//! acknowledged. Rows that cannot be decoded are logged and treated as absent, and
//! [`RedbStore::remove_expired`] deletes them.
//!
//! # Expiry
//!
//! `Instant`s cannot be persisted, so expiry times are stored as Unix-epoch milliseconds and
//! turned back into `Instant`s relative to the current time when read. An expiry therefore moves
//! with the wall clock if that is changed while a record is stored. Expired rows are kept until
//! kad removes them (it checks expiry on every read) or [`RedbStore::remove_expired`] runs;
//! [`RedbStore::open`] runs it once.
//!
//! # Layout (schema version 1)
//!
//! | table           | key                       | value                         |
//! |-----------------|---------------------------|-------------------------------|
//! | `meta`          | `"schema_version"`        | `u64`                         |
//! | `records`       | record key                | record row                    |
//! | `providers`     | (record key, provider id) | provider row                  |
//! | `provider_keys` | record key                | `()`: keys with any provider  |
//! | `provided`      | record key                | `()`: keys the local node provides |
//! | `record_sources`| record key                | `PeerId` bytes: the remote peer the record was stored for |
//!
//! # Quotas
//!
//! Records are stored on behalf of a source ([`SourcedStore::put_from`](mcc_records::SourcedStore::put_from)): the local node
//! (`None`, also what plain `put` means) or a remote peer. A new key stored for a remote peer
//! must fit [`Limits::per_source_max`] for that peer, [`Limits::remote_max`] for all remote
//! peers together and, for free `/mcc/` keys, [`Limits::remote_free_max`]: the rest of
//! `max_records` stays for this node's own writes and for DID documents and revocation lists.
//! Replacing the record of a stored key is always allowed and moves it to the new source.
//! Records stored before the `record_sources` table existed count as the local node's.
//!
//! Row encodings are described in `rows.rs`.
//!
//! # Files
//!
//! - `mod.rs`: [`RedbStore`], [`Limits`], opening, the transaction helpers and the
//!   `RecordStore` impl, which forwards to the files below.
//! - `tables.rs`: the redb table definitions and the schema check at open.
//! - `rows.rs`: encoding and decoding of record and provider rows.
//! - `values.rs`: value records (get, put with the per-source quotas, remove), [`RecordsIter`]
//!   and [`RedbStore::keys_after`], the batched key walk of replication.
//! - `providers.rs`: provider records, their limits and indexes, and [`ProvidedIter`].
//! - `expiry.rs`: stored times versus `Instant`s, and [`RedbStore::remove_expired`].
//! - `tests.rs`: test helpers and tests of the store as a whole (e.g. against `MemoryStore`).

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use libp2p::PeerId;
use libp2p::kad::store::{self, RecordStore};
use libp2p::kad::{ProviderRecord, Record, RecordKey};
use redb::{Database, Durability, ReadTransaction, ReadableDatabase, WriteTransaction};

mod clock;
mod expiry;
mod providers;
mod rows;
mod tables;
#[cfg(test)]
mod tests;
mod values;

pub use super::StorageError;
pub use providers::ProvidedIter;
pub use values::RecordsIter;

use tables::{SchemaError, prepare_schema};
use values::SourceCounts;

/// Size limits of a [`RedbStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of (value) records. A new key beyond it is refused with `MaxRecords`;
    /// replacing the record of a stored key is always allowed.
    pub max_records: usize,
    /// Maximum size of a record value in bytes; larger values are refused with `ValueTooLarge`.
    pub max_value_size: usize,
    /// Maximum number of keys this node itself provides; beyond it `add_provider` for the
    /// local node fails with `MaxProvidedKeys`.
    pub max_provided_keys: usize,
    /// Maximum number of keys for which provider records are stored at all. A provider record
    /// of another peer for a new key beyond it is refused with `MaxProvidedKeys` (this is
    /// what bounds the disk space other peers can use with provider records); the local
    /// node's own records are bounded by `max_provided_keys` instead.
    pub max_provider_keys: usize,
    /// Maximum number of other peers' provider records stored per key: a backstop only. The
    /// node wraps this store in `mcc_records::ValidatingStore`, which makes room on a full key
    /// by its per-network policy (expired records first, then diversity by the network each
    /// record came from; see `mcc_records::providers`) before it stores a new provider, so
    /// this limit is never the one that decides. Used alone, this store ignores new peers of a
    /// full key; updates of stored providers are accepted. The local node's own record does not
    /// count and is always kept (bounded by `max_provided_keys`).
    pub max_providers_per_key: usize,
}

impl Limits {
    /// New keys stored on behalf of one remote peer at most: 1/16 of `max_records` (at least
    /// one).
    pub fn per_source_max(&self) -> usize {
        (self.max_records / 16).max(1)
    }

    /// New keys stored on behalf of remote peers together at most: `max_records` less 1/20
    /// (at least one) kept for this node's own writes.
    pub fn remote_max(&self) -> usize {
        self.max_records
            .saturating_sub((self.max_records / 20).max(1))
    }

    /// Free `/mcc/` keys stored on behalf of remote peers together at most: [`remote_max`]
    /// less another 1/20 (at least one) kept for DID documents and revocation lists, about
    /// 90 % of `max_records`.
    ///
    /// [`remote_max`]: Self::remote_max
    pub fn remote_free_max(&self) -> usize {
        self.remote_max()
            .saturating_sub((self.max_records / 20).max(1))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_records: 65_536,
            max_value_size: 64 * 1024,
            max_provided_keys: 65_536,
            max_provider_keys: 65_536,
            max_providers_per_key: 20,
        }
    }
}

/// A `kad` record store persisted in a redb file. See the [module docs](self).
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    local_id: PeerId,
    local_id_bytes: Vec<u8>,
    limits: Limits,
    /// Rows of the `records` table (kept equal to the table length after each commit).
    record_count: usize,
    /// Records stored on behalf of remote peers (kept equal to `record_sources`).
    sources: SourceCounts,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .field("local_id", &self.local_id)
            .field("limits", &self.limits)
            .field("records", &self.record_count)
            .finish_non_exhaustive()
    }
}

/// What a write transaction should do when its body is done.
enum Txn<T> {
    Commit(T),
    Abort(T),
}

impl RedbStore {
    /// Opens the store in the redb file at `path`, creating the file if it does not exist
    /// (its folder must exist), e.g. `<data-folder>/records.redb`.
    ///
    /// `local_id` is this node's `PeerId`: provider records with it are the ones
    /// [`provided`](RecordStore::provided) lists. Expired and undecodable rows are removed.
    pub fn open(path: &Path, local_id: PeerId, limits: Limits) -> Result<Self, StorageError> {
        let db = Database::create(path).map_err(|source| StorageError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let redb_err = |source: redb::Error| StorageError::Redb {
            path: path.to_path_buf(),
            source,
        };

        // Create the tables and check (or stamp) the schema version. An existing store is
        // only read: no commit, so no fsync before the node can start.
        let mut txn = db.begin_write().map_err(|e| redb_err(e.into()))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| redb_err(e.into()))?;
        let (record_rows, changed) = prepare_schema(&txn, path).map_err(|e| match e {
            SchemaError::Redb(e) => redb_err(e),
            SchemaError::Storage(e) => e,
        })?;
        if changed {
            txn.commit().map_err(|e| redb_err(e.into()))?;
        } else {
            txn.abort().map_err(|e| redb_err(e.into()))?;
        }

        let mut store = Self {
            db,
            path: path.to_path_buf(),
            local_id_bytes: local_id.to_bytes(),
            local_id,
            limits,
            record_count: to_usize(record_rows),
            sources: SourceCounts::default(),
        };
        store.sources = store.load_sources().map_err(redb_err)?;
        let removed = store.remove_expired();
        tracing::debug!(
            path = %path.display(),
            records = store.record_count,
            removed,
            "opened record store"
        );
        Ok(store)
    }

    /// The limits the store enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The file the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This node's `PeerId`, as given to [`open`](Self::open).
    pub fn local_id(&self) -> &PeerId {
        &self.local_id
    }

    /// Number of stored (value) records, including expired or undecodable ones not yet
    /// removed.
    pub fn len(&self) -> usize {
        self.record_count
    }

    /// Whether no (value) record is stored.
    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// Runs `body` in a write transaction with immediate durability, then commits or aborts as
    /// it says. An error drops (aborts) the transaction.
    fn write<T>(
        &self,
        body: impl FnOnce(&WriteTransaction) -> Result<Txn<T>, redb::Error>,
    ) -> Result<T, redb::Error> {
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
    }

    /// Runs `body` in a read transaction.
    fn read<T>(
        &self,
        body: impl FnOnce(&ReadTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, redb::Error> {
        let txn = self.db.begin_read()?;
        body(&txn)
    }

    fn warn_read(&self, what: &str, error: &redb::Error) {
        tracing::warn!(path = %self.path.display(), error = %error, "reading {what} failed");
    }
}

impl RecordStore for RedbStore {
    type RecordsIter<'a> = RecordsIter<'a>;
    type ProvidedIter<'a> = ProvidedIter<'a>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.get_record(k)
    }

    fn put(&mut self, r: Record) -> store::Result<()> {
        mcc_records::SourcedStore::put_from(self, r, None)
    }

    fn remove(&mut self, k: &RecordKey) {
        self.remove_record(k);
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.records_iter()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> store::Result<()> {
        self.add_provider_record(record)
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        self.provider_records(key)
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.provided_iter()
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        self.remove_provider_record(k, p);
    }
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Short hex of a key for logs.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(2 * bytes.len().min(32) + 1);
    for b in bytes.iter().take(32) {
        let _ = write!(s, "{b:02x}");
    }
    if bytes.len() > 32 {
        s.push('…');
    }
    s
}
