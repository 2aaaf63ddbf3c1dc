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
//! Records are stored on behalf of a source ([`SourcedStore::put_from`]): the local node
//! (`None`, also what plain `put` means) or a remote peer. A new key stored for a remote peer
//! must fit [`Limits::per_source_max`] for that peer, [`Limits::remote_max`] for all remote
//! peers together and, for free `/mcc/` keys, [`Limits::remote_free_max`]: the rest of
//! `max_records` stays for this node's own writes and for DID documents and revocation lists.
//! Replacing the record of a stored key is always allowed and moves it to the new source.
//! Records stored before the `record_sources` table existed count as the local node's.
//!
//! A record row is `[format=1][flags]`, then `[expires: u64 LE ms]` if flag `0x02`, then
//! `[publisher: u32 LE length + PeerId bytes]` if flag `0x01`, then the value up to the end.
//! A provider row is `[format=1][flags]`, `[expires: u64 LE ms]` if flag `0x02`, then
//! `[count: u32 LE]` and `count` times `[u32 LE length + Multiaddr bytes]`.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use libp2p::kad::store::{self, RecordStore};
use libp2p::kad::{ProviderRecord, Record, RecordKey};
use libp2p::{Multiaddr, PeerId};
use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition, WriteTransaction,
};

pub use super::StorageError;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
const PROVIDERS: TableDefinition<ProviderKey, &[u8]> = TableDefinition::new("providers");
const PROVIDER_KEYS: TableDefinition<&[u8], ()> = TableDefinition::new("provider_keys");
const PROVIDED: TableDefinition<&[u8], ()> = TableDefinition::new("provided");
const RECORD_SOURCES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("record_sources");

/// (record key, provider `PeerId` bytes).
type ProviderKey = (&'static [u8], &'static [u8]);

const SCHEMA_KEY: &str = "schema_version";
const SCHEMA_VERSION: u64 = 1;

const ROW_FORMAT_V1: u8 = 1;
const FLAG_PUBLISHER: u8 = 0x01;
const FLAG_EXPIRES: u8 = 0x02;

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

/// How many records are stored on behalf of remote peers, in memory (rebuilt at open).
#[derive(Debug, Default)]
struct SourceCounts {
    per_peer: std::collections::HashMap<Vec<u8>, usize>,
    remote: usize,
    remote_free: usize,
}

impl SourceCounts {
    fn add(&mut self, peer: &[u8], key: &[u8]) {
        *self.per_peer.entry(peer.to_vec()).or_default() += 1;
        self.remote += 1;
        if mcc_records::is_free_key(key) {
            self.remote_free += 1;
        }
    }

    fn sub(&mut self, peer: &[u8], key: &[u8]) {
        if let Some(n) = self.per_peer.get_mut(peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_peer.remove(peer);
            }
        }
        self.remote = self.remote.saturating_sub(1);
        if mcc_records::is_free_key(key) {
            self.remote_free = self.remote_free.saturating_sub(1);
        }
    }

    fn of(&self, peer: &[u8]) -> usize {
        self.per_peer.get(peer).copied().unwrap_or(0)
    }
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

        // Create the tables and check (or stamp) the schema version.
        let mut txn = db.begin_write().map_err(|e| redb_err(e.into()))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| redb_err(e.into()))?;
        let record_rows = prepare_schema(&txn, path).map_err(|e| match e {
            SchemaError::Redb(e) => redb_err(e),
            SchemaError::Storage(e) => e,
        })?;
        txn.commit().map_err(|e| redb_err(e.into()))?;

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

    /// Number of records stored on behalf of the remote peer `peer` (see [Quotas](self#quotas)).
    pub fn records_of(&self, peer: &PeerId) -> usize {
        self.sources.of(&peer.to_bytes())
    }

    /// Number of records stored on behalf of remote peers: `(all, free /mcc/ keys)`.
    pub fn remote_records(&self) -> (usize, usize) {
        (self.sources.remote, self.sources.remote_free)
    }

    /// Up to `limit` record keys after `after` (from the first with `None`), in key order,
    /// without reading any value into memory: for walks over the whole store in batches.
    pub fn keys_after(&self, after: Option<&[u8]>, limit: usize) -> Vec<RecordKey> {
        let found = self.read(|txn| {
            let table = txn.open_table(RECORDS)?;
            let range = match after {
                Some(after) => table.range::<&[u8]>((
                    std::ops::Bound::Excluded(after),
                    std::ops::Bound::Unbounded,
                ))?,
                None => table.range::<&[u8]>(..)?,
            };
            let mut keys = Vec::new();
            for entry in range.take(limit) {
                let (key, _) = entry?;
                keys.push(RecordKey::new(&key.value()));
            }
            Ok(keys)
        });
        found.unwrap_or_else(|e| {
            self.warn_read("record keys", &e);
            Vec::new()
        })
    }

    /// Counts the records stored on behalf of remote peers (at open).
    fn load_sources(&self) -> Result<SourceCounts, redb::Error> {
        self.read(|txn| {
            let table = txn.open_table(RECORD_SOURCES)?;
            let mut counts = SourceCounts::default();
            for entry in table.iter()? {
                let (key, peer) = entry?;
                counts.add(peer.value(), key.value());
            }
            Ok(counts)
        })
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

    /// Removes expired records and provider records, and rows that cannot be decoded, in one
    /// transaction. Returns how many rows were removed (0 also when the sweep failed, which is
    /// logged).
    pub fn remove_expired(&mut self) -> usize {
        let clock = Clock::now();
        let path = self.path.as_path();
        let local = self.local_id_bytes.as_slice();
        // (record key, source) of removed records stored for remote peers.
        let mut unsourced: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let result = self.write(|txn| {
            let mut records = txn.open_table(RECORDS)?;
            let before = records.len()?;
            let mut gone: Vec<Vec<u8>> = Vec::new();
            records.retain(|key, row| {
                let keep = match decode_record(row) {
                    Ok(row) => !row.expires_ms.is_some_and(|ms| clock.is_expired(ms)),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), key = %hex(key), error = %e,
                            "removing undecodable record row");
                        false
                    }
                };
                if !keep {
                    gone.push(key.to_vec());
                }
                keep
            })?;
            let record_rows = records.len()?;
            let mut removed = before.saturating_sub(record_rows);
            drop(records);
            let mut sources = txn.open_table(RECORD_SOURCES)?;
            for key in gone {
                if let Some(peer) = sources.remove(key.as_slice())? {
                    let peer = peer.value().to_vec();
                    unsourced.push((key, peer));
                }
            }
            drop(sources);

            let mut providers = txn.open_table(PROVIDERS)?;
            let mut doomed: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            // Keys of the rows that stay (in key order), to check the indexes against.
            let mut live_keys: Vec<Vec<u8>> = Vec::new();
            let mut live_local: Vec<Vec<u8>> = Vec::new();
            for entry in providers.iter()? {
                let (k, row) = entry?;
                let (key, peer) = k.value();
                let keep =
                    match decode_provider_key(peer).and_then(|_| decode_provider(row.value())) {
                        Ok(row) => !row.expires_ms.is_some_and(|ms| clock.is_expired(ms)),
                        Err(e) => {
                            tracing::warn!(path = %path.display(), key = %hex(key), error = %e,
                                "removing undecodable provider row");
                            false
                        }
                    };
                if !keep {
                    doomed.push((key.to_vec(), peer.to_vec()));
                    continue;
                }
                if live_keys.last().is_none_or(|last| last.as_slice() != key) {
                    live_keys.push(key.to_vec());
                }
                if peer == local {
                    live_local.push(key.to_vec());
                }
            }
            let mut provider_keys = txn.open_table(PROVIDER_KEYS)?;
            let mut provided = txn.open_table(PROVIDED)?;
            for (key, peer) in &doomed {
                if remove_provider_row(
                    &mut providers,
                    &mut provider_keys,
                    &mut provided,
                    key,
                    peer,
                    local,
                )? {
                    removed += 1;
                }
            }

            let repaired = repair_indexes(
                &providers,
                &mut provider_keys,
                &mut provided,
                local,
                &live_keys,
                &live_local,
            )?;
            if repaired > 0 {
                tracing::warn!(path = %path.display(), repaired,
                    "removed provider index entries without provider records");
            }

            let outcome = (to_usize(removed), record_rows);
            Ok(if removed == 0 && repaired == 0 {
                Txn::Abort(outcome)
            } else {
                Txn::Commit(outcome)
            })
        });
        match result {
            Ok((removed, record_rows)) => {
                self.record_count = to_usize(record_rows);
                if removed > 0 {
                    for (key, peer) in &unsourced {
                        self.sources.sub(peer, key);
                    }
                }
                removed
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e,
                    "removing expired records failed");
                0
            }
        }
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

enum SchemaError {
    Redb(redb::Error),
    Storage(StorageError),
}

impl<E: Into<redb::Error>> From<E> for SchemaError {
    fn from(e: E) -> Self {
        Self::Redb(e.into())
    }
}

/// Creates all tables, checks the schema version, and returns the number of record rows.
fn prepare_schema(txn: &WriteTransaction, path: &Path) -> Result<u64, SchemaError> {
    let has_tables = txn.list_tables()?.next().is_some();
    let mut meta = txn.open_table(META)?;
    let found = meta.get(SCHEMA_KEY)?.map(|v| v.value());
    match found {
        Some(SCHEMA_VERSION) => {}
        Some(found) => {
            return Err(SchemaError::Storage(StorageError::UnsupportedVersion {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            }));
        }
        // Tables but no version: this program did not write the file (it stamps the version
        // in the transaction that creates the tables).
        None if has_tables => {
            return Err(SchemaError::Storage(StorageError::Corrupt {
                path: path.to_path_buf(),
                reason: "redb file without a record-store schema version".into(),
            }));
        }
        None => {
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
        }
    }
    let records = txn.open_table(RECORDS)?;
    txn.open_table(RECORD_SOURCES)?;
    txn.open_table(PROVIDERS)?;
    txn.open_table(PROVIDER_KEYS)?;
    txn.open_table(PROVIDED)?;
    Ok(records.len()?)
}

impl RecordStore for RedbStore {
    type RecordsIter<'a> = RecordsIter<'a>;
    type ProvidedIter<'a> = ProvidedIter<'a>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        let clock = Clock::now();
        let found = self.read(|txn| {
            let table = txn.open_table(RECORDS)?;
            let row = table.get(k.as_ref())?;
            Ok(row.map(|row| decode_record(row.value()).map(|r| r.into_record(k, &clock))))
        });
        match found {
            Ok(Some(Ok(record))) => Some(Cow::Owned(record)),
            Ok(Some(Err(e))) => {
                tracing::warn!(path = %self.path.display(), key = %hex(k.as_ref()), error = %e,
                    "ignoring undecodable record row");
                None
            }
            Ok(None) => None,
            Err(e) => {
                self.warn_read("a record", &e);
                None
            }
        }
    }

    fn put(&mut self, r: Record) -> store::Result<()> {
        mcc_records::SourcedStore::put_from(self, r, None)
    }

    fn remove(&mut self, k: &RecordKey) {
        let result = self.write(|txn| {
            let mut table = txn.open_table(RECORDS)?;
            let removed = table.remove(k.as_ref())?.is_some();
            let rows = table.len()?;
            let mut sources = txn.open_table(RECORD_SOURCES)?;
            let source = sources.remove(k.as_ref())?.map(|p| p.value().to_vec());
            Ok(if removed || source.is_some() {
                Txn::Commit((rows, source))
            } else {
                Txn::Abort((rows, source))
            })
        });
        match result {
            Ok((rows, source)) => {
                self.record_count = to_usize(rows);
                if let Some(peer) = source {
                    self.sources.sub(&peer, k.as_ref());
                }
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "removing a record failed");
            }
        }
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        let range = self.read(|txn| {
            let table = txn.open_table(RECORDS)?;
            Ok(table.range::<&[u8]>(..)?)
        });
        let range = match range {
            Ok(range) => Some(range),
            Err(e) => {
                self.warn_read("records", &e);
                None
            }
        };
        RecordsIter {
            range,
            clock: Clock::now(),
            path: &self.path,
        }
    }

    fn add_provider(&mut self, mut record: ProviderRecord) -> store::Result<()> {
        // At most a few short addresses per provider (review L2: kad stores what the peer sent).
        mcc_records::trim_provider_addresses(&mut record.addresses);
        let row = encode_provider(&record, &Clock::now()).map_err(|e| {
            tracing::warn!(error = %e, "cannot encode provider record");
            store::Error::MaxProvidedKeys
        })?;
        let key = record.key.as_ref();
        let peer = record.provider.to_bytes();
        let is_local = record.provider == self.local_id;
        let local = self.local_id_bytes.as_slice();
        let limits = &self.limits;
        let result = self.write(|txn| {
            let mut providers = txn.open_table(PROVIDERS)?;
            let mut provider_keys = txn.open_table(PROVIDER_KEYS)?;
            let mut provided = txn.open_table(PROVIDED)?;
            let id = (key, peer.as_slice());

            if providers.get(id)?.is_some() {
                // Update of a stored provider record: no limit applies.
                providers.insert(id, row.as_slice())?;
                if is_local {
                    provided.insert(key, ())?;
                }
                return Ok(Txn::Commit(Ok(())));
            }

            let key_known = provider_keys.get(key)?.is_some();
            if is_local {
                if provided.len()? >= to_u64(limits.max_provided_keys) {
                    return Ok(Txn::Abort(Err(store::Error::MaxProvidedKeys)));
                }
            } else {
                if !key_known && provider_keys.len()? >= to_u64(limits.max_provider_keys) {
                    return Ok(Txn::Abort(Err(store::Error::MaxProvidedKeys)));
                }
                // The local node's own record does not take a slot of other peers.
                let own = usize::from(providers.get((key, local))?.is_some());
                let others = count_providers(&providers, key)?.saturating_sub(own);
                if others >= limits.max_providers_per_key {
                    tracing::debug!(key = %hex(key), "provider list full, ignoring new provider");
                    return Ok(Txn::Abort(Ok(())));
                }
            }

            providers.insert(id, row.as_slice())?;
            if !key_known {
                provider_keys.insert(key, ())?;
            }
            if is_local {
                provided.insert(key, ())?;
            }
            Ok(Txn::Commit(Ok(())))
        });
        result.unwrap_or_else(|e| {
            tracing::warn!(path = %self.path.display(), error = %e,
                "storing a provider record failed");
            Err(store::Error::MaxProvidedKeys)
        })
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        let clock = Clock::now();
        let found = self.read(|txn| {
            let table = txn.open_table(PROVIDERS)?;
            let mut out = Vec::new();
            for entry in table.range(provider_range_start(key.as_ref()))? {
                let (k, row) = entry?;
                let (k_key, peer) = k.value();
                if k_key != key.as_ref() {
                    break;
                }
                match decode_provider_record(key, peer, row.value(), &clock) {
                    Ok(record) => out.push(record),
                    Err(e) => {
                        tracing::warn!(path = %self.path.display(), key = %hex(k_key), error = %e,
                            "ignoring undecodable provider row");
                    }
                }
            }
            Ok(out)
        });
        found.unwrap_or_else(|e| {
            self.warn_read("provider records", &e);
            Vec::new()
        })
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        let tables = self.read(|txn| {
            let keys = txn.open_table(PROVIDED)?.range::<&[u8]>(..)?;
            let providers = txn.open_table(PROVIDERS)?;
            Ok((keys, providers))
        });
        let tables = match tables {
            Ok(tables) => Some(tables),
            Err(e) => {
                self.warn_read("provided keys", &e);
                None
            }
        };
        ProvidedIter {
            tables,
            clock: Clock::now(),
            store: self,
        }
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        let peer = p.to_bytes();
        let local = self.local_id_bytes.as_slice();
        let result = self.write(|txn| {
            let mut providers = txn.open_table(PROVIDERS)?;
            let mut provider_keys = txn.open_table(PROVIDER_KEYS)?;
            let mut provided = txn.open_table(PROVIDED)?;
            let removed = remove_provider_row(
                &mut providers,
                &mut provider_keys,
                &mut provided,
                k.as_ref(),
                &peer,
                local,
            )?;
            Ok(if removed {
                Txn::Commit(())
            } else {
                Txn::Abort(())
            })
        });
        if let Err(e) = result {
            tracing::warn!(path = %self.path.display(), error = %e,
                "removing a provider record failed");
        }
    }
}

impl mcc_records::SourcedStore for RedbStore {
    fn put_from(&mut self, r: Record, source: Option<PeerId>) -> store::Result<()> {
        if r.value.len() > self.limits.max_value_size {
            return Err(store::Error::ValueTooLarge);
        }
        let row = encode_record(&r, &Clock::now()).map_err(|e| {
            tracing::warn!(error = %e, "cannot encode record");
            store::Error::ValueTooLarge
        })?;
        // The local node itself is no remote source.
        let source = source.filter(|p| *p != self.local_id).map(|p| p.to_bytes());
        let key = r.key.as_ref();
        let max_records = to_u64(self.limits.max_records);
        if let Some(peer) = &source {
            // Checked before the transaction; a new key only (see below).
            let exists = self.read(|txn| Ok(txn.open_table(RECORDS)?.get(key)?.is_some()));
            if let Ok(false) = exists {
                let refusal = if self.sources.of(peer) >= self.limits.per_source_max() {
                    Some("the peer's share of the record store is used up")
                } else if self.sources.remote >= self.limits.remote_max() {
                    Some("the share of the record store for other peers is used up")
                } else if mcc_records::is_free_key(key)
                    && self.sources.remote_free >= self.limits.remote_free_max()
                {
                    Some("the share of the record store for other peers' /mcc/ keys is used up")
                } else {
                    None
                };
                if let Some(reason) = refusal {
                    tracing::debug!(key = %hex(key), peer = ?PeerId::from_bytes(peer).ok(),
                        "record refused: {reason}");
                    return Err(store::Error::MaxRecords);
                }
            }
        }
        let result = self.write(|txn| {
            let mut table = txn.open_table(RECORDS)?;
            let exists = table.get(key)?.is_some();
            if !exists && table.len()? >= max_records {
                return Ok(Txn::Abort(Err(store::Error::MaxRecords)));
            }
            table.insert(key, row.as_slice())?;
            let rows = table.len()?;
            let mut sources = txn.open_table(RECORD_SOURCES)?;
            let old = match &source {
                Some(peer) => sources.insert(key, peer.as_slice())?,
                None => sources.remove(key)?,
            }
            .map(|p| p.value().to_vec());
            Ok(Txn::Commit(Ok((rows, old))))
        });
        match result {
            Ok(Ok((rows, old))) => {
                self.record_count = to_usize(rows);
                if let Some(old) = old {
                    self.sources.sub(&old, key);
                }
                if let Some(peer) = &source {
                    self.sources.add(peer, key);
                }
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "storing a record failed");
                Err(store::Error::MaxRecords)
            }
        }
    }
}

/// Iterator over all records of a [`RedbStore`], reading lazily from one snapshot.
///
/// Undecodable rows are skipped (and logged); a read error ends the iteration (logged).
pub struct RecordsIter<'a> {
    range: Option<redb::Range<'static, &'static [u8], &'static [u8]>>,
    clock: Clock,
    path: &'a Path,
}

impl<'a> Iterator for RecordsIter<'a> {
    type Item = Cow<'a, Record>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let entry = self.range.as_mut()?.next()?;
            let (key, row) = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e,
                        "reading records failed");
                    self.range = None;
                    return None;
                }
            };
            let key = key.value();
            match decode_record(row.value()) {
                Ok(row) => {
                    return Some(Cow::Owned(
                        row.into_record(&RecordKey::new(&key), &self.clock),
                    ));
                }
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), key = %hex(key), error = %e,
                        "ignoring undecodable record row");
                }
            }
        }
    }
}

/// The `provided` index of one read snapshot, in key order.
type ProvidedRange = redb::Range<'static, &'static [u8], ()>;
/// The `providers` table of one read snapshot.
type ProvidersSnapshot = ReadOnlyTable<ProviderKey, &'static [u8]>;

/// Iterator over the provider records of the local node in a [`RedbStore`], reading lazily
/// from one snapshot.
///
/// Undecodable rows are skipped (and logged); a read error ends the iteration (logged).
pub struct ProvidedIter<'a> {
    tables: Option<(ProvidedRange, ProvidersSnapshot)>,
    clock: Clock,
    store: &'a RedbStore,
}

impl<'a> ProvidedIter<'a> {
    fn next_record(&mut self) -> Result<Option<ProviderRecord>, redb::Error> {
        let local = self.store.local_id_bytes.as_slice();
        loop {
            let Some((keys, providers)) = self.tables.as_mut() else {
                return Ok(None);
            };
            let Some(entry) = keys.next() else {
                return Ok(None);
            };
            let key = entry?.0.value().to_vec();
            let Some(row) = providers.get((key.as_slice(), local))? else {
                tracing::warn!(path = %self.store.path.display(), key = %hex(&key),
                    "provided-keys index names a missing provider record");
                continue;
            };
            let key = RecordKey::from(key);
            match decode_provider(row.value()) {
                Ok(row) => return Ok(Some(row.into_record(key, self.store.local_id, &self.clock))),
                Err(e) => {
                    tracing::warn!(path = %self.store.path.display(), key = %hex(key.as_ref()),
                        error = %e, "ignoring undecodable provider row");
                }
            }
        }
    }
}

impl<'a> Iterator for ProvidedIter<'a> {
    type Item = Cow<'a, ProviderRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_record() {
            Ok(record) => record.map(Cow::Owned),
            Err(e) => {
                self.store.warn_read("provided keys", &e);
                self.tables = None;
                None
            }
        }
    }
}

/// The smallest `providers` table key for `key`: its rows follow in provider order.
fn provider_range_start(key: &[u8]) -> std::ops::RangeFrom<(&[u8], &[u8])> {
    (key, &[][..])..
}

/// Number of provider rows for `key` (a short range scan: bounded by the per-key limit).
fn count_providers(
    table: &impl ReadableTable<ProviderKey, &'static [u8]>,
    key: &[u8],
) -> Result<usize, redb::Error> {
    let mut n = 0;
    for entry in table.range(provider_range_start(key))? {
        let (k, _) = entry?;
        if k.value().0 != key {
            break;
        }
        n += 1;
    }
    Ok(n)
}

/// Removes one provider row and keeps the `provider_keys` and `provided` indexes in step.
/// Returns whether the row existed.
fn remove_provider_row(
    providers: &mut redb::Table<'_, ProviderKey, &'static [u8]>,
    provider_keys: &mut redb::Table<'_, &'static [u8], ()>,
    provided: &mut redb::Table<'_, &'static [u8], ()>,
    key: &[u8],
    peer: &[u8],
    local: &[u8],
) -> Result<bool, redb::Error> {
    if providers.remove((key, peer))?.is_none() {
        return Ok(false);
    }
    if peer == local {
        provided.remove(key)?;
    }
    if count_providers(providers, key)? == 0 {
        provider_keys.remove(key)?;
    }
    Ok(true)
}

/// Brings the `provider_keys` and `provided` indexes in line with the `providers` table:
/// drops entries without rows and adds the missing ones for `live_keys` (keys with rows) and
/// `live_local` (keys with a row of the local node). Transactions keep the indexes in step, so
/// this only matters after corruption. Returns how many entries were fixed.
fn repair_indexes(
    providers: &redb::Table<'_, ProviderKey, &'static [u8]>,
    provider_keys: &mut redb::Table<'_, &'static [u8], ()>,
    provided: &mut redb::Table<'_, &'static [u8], ()>,
    local: &[u8],
    live_keys: &[Vec<u8>],
    live_local: &[Vec<u8>],
) -> Result<usize, redb::Error> {
    let mut repaired = 0;
    for key in live_keys {
        if provider_keys.get(key.as_slice())?.is_none() {
            provider_keys.insert(key.as_slice(), ())?;
            repaired += 1;
        }
    }
    for key in live_local {
        if provided.get(key.as_slice())?.is_none() {
            provided.insert(key.as_slice(), ())?;
            repaired += 1;
        }
    }

    let mut stale: Vec<Vec<u8>> = Vec::new();
    for entry in provider_keys.iter()? {
        let key = entry?.0.value().to_vec();
        if count_providers(providers, &key)? == 0 {
            stale.push(key);
        }
    }
    for key in &stale {
        provider_keys.remove(key.as_slice())?;
    }
    repaired += stale.len();

    stale.clear();
    for entry in provided.iter()? {
        let key = entry?.0.value().to_vec();
        if providers.get((key.as_slice(), local))?.is_none() {
            stale.push(key);
        }
    }
    for key in &stale {
        provided.remove(key.as_slice())?;
    }
    repaired += stale.len();
    Ok(repaired)
}

/// "Now" on both clocks, to convert between stored Unix milliseconds and `Instant`s.
#[derive(Debug, Clone, Copy)]
struct Clock {
    instant: Instant,
    unix_ms: u64,
}

impl Clock {
    fn now() -> Self {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, millis);
        Self {
            instant: Instant::now(),
            unix_ms,
        }
    }

    fn to_unix_ms(self, at: Instant) -> u64 {
        match at.checked_duration_since(self.instant) {
            Some(ahead) => self.unix_ms.saturating_add(millis(ahead)),
            None => self
                .unix_ms
                .saturating_sub(millis(self.instant.duration_since(at))),
        }
    }

    /// The `Instant` of a stored time; times in the past give an already-expired `Instant`.
    fn to_instant(self, unix_ms: u64) -> Instant {
        if unix_ms > self.unix_ms {
            let ahead = Duration::from_millis(unix_ms - self.unix_ms);
            self.instant
                .checked_add(ahead)
                .or_else(|| {
                    self.instant
                        .checked_add(Duration::from_secs(100 * 365 * 86_400))
                })
                .unwrap_or(self.instant)
        } else {
            let behind = Duration::from_millis(self.unix_ms - unix_ms);
            self.instant.checked_sub(behind).unwrap_or(self.instant)
        }
    }

    /// Same rule as `Record::is_expired`: expired once now >= expiry.
    fn is_expired(self, unix_ms: u64) -> bool {
        self.unix_ms >= unix_ms
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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

/// Why a stored row could not be decoded (or a record not encoded).
#[derive(Debug, thiserror::Error)]
enum RowError {
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

fn encode_record(r: &Record, clock: &Clock) -> Result<Vec<u8>, RowError> {
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

fn encode_provider(p: &ProviderRecord, clock: &Clock) -> Result<Vec<u8>, RowError> {
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
struct RecordRow<'a> {
    expires_ms: Option<u64>,
    publisher: Option<PeerId>,
    value: &'a [u8],
}

impl RecordRow<'_> {
    fn into_record(self, key: &RecordKey, clock: &Clock) -> Record {
        Record {
            key: key.clone(),
            value: self.value.to_vec(),
            publisher: self.publisher,
            expires: self.expires_ms.map(|ms| clock.to_instant(ms)),
        }
    }
}

fn decode_record(bytes: &[u8]) -> Result<RecordRow<'_>, RowError> {
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
struct ProviderRow {
    expires_ms: Option<u64>,
    addresses: Vec<Multiaddr>,
}

impl ProviderRow {
    fn into_record(self, key: RecordKey, provider: PeerId, clock: &Clock) -> ProviderRecord {
        ProviderRecord {
            key,
            provider,
            expires: self.expires_ms.map(|ms| clock.to_instant(ms)),
            addresses: self.addresses,
        }
    }
}

fn decode_provider(bytes: &[u8]) -> Result<ProviderRow, RowError> {
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

fn decode_provider_key(peer: &[u8]) -> Result<PeerId, RowError> {
    PeerId::from_bytes(peer).map_err(|e| RowError::PeerId(e.to_string()))
}

fn decode_provider_record(
    key: &RecordKey,
    peer: &[u8],
    row: &[u8],
    clock: &Clock,
) -> Result<ProviderRecord, RowError> {
    let provider = decode_provider_key(peer)?;
    Ok(decode_provider(row)?.into_record(key.clone(), provider, clock))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use libp2p::kad::store::{MemoryStore, MemoryStoreConfig};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    const FILE: &str = "records.redb";

    fn open(dir: &Path, local: PeerId, limits: Limits) -> RedbStore {
        RedbStore::open(&dir.join(FILE), local, limits).expect("open store")
    }

    fn key(s: &str) -> RecordKey {
        RecordKey::new(&s)
    }

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}")
            .parse()
            .expect("valid multiaddr")
    }

    fn record(k: &str, value: &[u8]) -> Record {
        Record::new(key(k), value.to_vec())
    }

    fn assert_close(a: Option<Instant>, b: Option<Instant>) {
        match (a, b) {
            (None, None) => {}
            (Some(a), Some(b)) => {
                let diff = a.max(b).duration_since(a.min(b));
                assert!(diff < Duration::from_millis(20), "expiry moved by {diff:?}");
            }
            _ => panic!("expiry {a:?} != {b:?}"),
        }
    }

    fn provider_ids(records: &[ProviderRecord]) -> BTreeSet<PeerId> {
        records.iter().map(|p| p.provider).collect()
    }

    #[test]
    fn put_get_remove_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = open(dir.path(), PeerId::random(), Limits::default());
        assert!(store.is_empty());
        assert!(store.get(&key("a")).is_none());

        let mut r = record("a", b"hello");
        r.publisher = Some(PeerId::random());
        r.expires = Some(Instant::now() + Duration::from_secs(3600));
        store.put(r.clone()).expect("put");
        assert_eq!(store.len(), 1);
        let got = store.get(&r.key).expect("stored").into_owned();
        assert_eq!(
            (&got.key, &got.value, got.publisher),
            (&r.key, &r.value, r.publisher)
        );
        assert_close(got.expires, r.expires);

        // Replace, with no publisher or expiry and an empty value.
        let r2 = record("a", b"");
        store.put(r2.clone()).expect("replace");
        assert_eq!(store.len(), 1);
        assert_eq!(store.get(&r2.key).map(Cow::into_owned), Some(r2.clone()));
        assert_eq!(store.records().count(), 1);

        store.remove(&r2.key);
        assert!(store.get(&r2.key).is_none());
        assert!(store.is_empty());
        // Removing an absent key is a no-op.
        store.remove(&r2.key);
        assert_eq!(store.records().count(), 0);
    }

    #[test]
    fn value_too_large() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = Limits {
            max_value_size: 16,
            ..Limits::default()
        };
        let mut store = open(dir.path(), PeerId::random(), limits);
        store
            .put(record("ok", &[7; 16]))
            .expect("value at the limit");
        assert!(matches!(
            store.put(record("big", &[7; 17])),
            Err(store::Error::ValueTooLarge)
        ));
        assert!(store.get(&key("big")).is_none());
        assert_eq!(store.len(), 1);
        assert_eq!(store.limits().max_value_size, 16);
    }

    #[test]
    fn max_records_allows_replacing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = Limits {
            max_records: 2,
            ..Limits::default()
        };
        let mut store = open(dir.path(), PeerId::random(), limits);
        store.put(record("a", b"1")).expect("a");
        store.put(record("b", b"1")).expect("b");
        assert!(matches!(
            store.put(record("c", b"1")),
            Err(store::Error::MaxRecords)
        ));
        assert!(store.get(&key("c")).is_none());
        store
            .put(record("a", b"2"))
            .expect("replacing at the limit");
        assert_eq!(
            store.get(&key("a")).map(|r| r.value.clone()),
            Some(b"2".to_vec())
        );
        store.remove(&key("b"));
        store.put(record("c", b"1")).expect("room again");
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = PeerId::random();
        let now = Instant::now();
        let mut a = record("a", b"value a");
        a.publisher = Some(PeerId::random());
        a.expires = Some(now + Duration::from_secs(600));
        let b = record("b", &[0xff; 1000]);
        let mut c = record("c", b"");
        c.publisher = Some(local);
        let written = vec![a, b, c];
        {
            let mut store = open(dir.path(), local, Limits::default());
            for r in &written {
                store.put(r.clone()).expect("put");
            }
        }
        let store = open(dir.path(), local, Limits::default());
        assert_eq!(store.len(), 3);
        let mut listed: Vec<Record> = store.records().map(Cow::into_owned).collect();
        listed.sort_by(|x, y| x.key.as_ref().cmp(y.key.as_ref()));
        assert_eq!(listed.len(), written.len());
        for (want, got) in written.iter().zip(&listed) {
            assert_eq!(
                (&got.key, &got.value, got.publisher),
                (&want.key, &want.value, want.publisher)
            );
            assert_close(got.expires, want.expires);
            let single = store.get(&want.key).expect("get after reopen");
            assert_eq!(single.value, want.value);
            assert_close(single.expires, want.expires);
        }
    }

    #[test]
    fn expired_records_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = PeerId::random();
        {
            let mut store = open(dir.path(), local, Limits::default());
            let mut soon = record("soon", b"x");
            soon.expires = Some(Instant::now() + Duration::from_millis(200));
            store.put(soon).expect("put");
            let mut later = record("later", b"x");
            later.expires = Some(Instant::now() + Duration::from_secs(600));
            store.put(later).expect("put");
            let mut p = ProviderRecord::new(key("p"), PeerId::random(), vec![]);
            p.expires = Some(Instant::now() + Duration::from_millis(200));
            store.add_provider(p).expect("provider");
            let mut mine = ProviderRecord::new(key("p"), local, vec![]);
            mine.expires = Some(Instant::now() + Duration::from_millis(200));
            store.add_provider(mine).expect("own provider");
        }
        std::thread::sleep(Duration::from_millis(300));
        // Reopening sweeps expired rows.
        let mut store = open(dir.path(), local, Limits::default());
        assert!(store.get(&key("soon")).is_none());
        assert!(store.get(&key("later")).is_some());
        assert_eq!(store.len(), 1);
        assert!(store.providers(&key("p")).is_empty());
        assert_eq!(store.provided().count(), 0);

        // remove_expired on a running store.
        let mut r = record("short", b"x");
        r.expires = Some(Instant::now() + Duration::from_millis(200));
        store.put(r).expect("put");
        let mut p = ProviderRecord::new(key("q"), local, vec![]);
        p.expires = Some(Instant::now() + Duration::from_millis(200));
        store.add_provider(p).expect("provider");
        assert_eq!(store.remove_expired(), 0);
        std::thread::sleep(Duration::from_millis(300));
        // Before the sweep, an expired record reads back as expired (kad drops it lazily).
        assert!(
            store
                .get(&key("short"))
                .is_some_and(|r| r.is_expired(Instant::now()))
        );
        assert_eq!(store.remove_expired(), 2);
        assert!(store.get(&key("short")).is_none());
        assert_eq!(store.provided().count(), 0);
        assert_eq!(store.len(), 1);
        // The freed provided-key slot is usable again.
        store
            .add_provider(ProviderRecord::new(key("q"), local, vec![]))
            .expect("provide again");
    }

    #[test]
    fn providers_round_trip_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = PeerId::random();
        let remotes: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        let expires = Some(Instant::now() + Duration::from_secs(600));
        {
            let mut store = open(dir.path(), local, Limits::default());
            for (i, p) in remotes.iter().enumerate() {
                let mut r = ProviderRecord::new(key("a"), *p, vec![addr(4000 + i as u16)]);
                r.expires = expires;
                store.add_provider(r).expect("remote provider");
            }
            store
                .add_provider(ProviderRecord::new(key("a"), local, vec![]))
                .expect("own a");
            store
                .add_provider(ProviderRecord::new(key("b"), local, vec![addr(1), addr(2)]))
                .expect("own b");
            store
                .add_provider(ProviderRecord::new(key("c"), remotes[0], vec![]))
                .expect("remote c");
            // An update replaces, it does not add.
            let mut updated = ProviderRecord::new(key("c"), remotes[0], vec![addr(9)]);
            updated.expires = expires;
            store.add_provider(updated).expect("update");

            let a = store.providers(&key("a"));
            assert_eq!(a.len(), 4);
            let mut want: BTreeSet<PeerId> = remotes.iter().copied().collect();
            want.insert(local);
            assert_eq!(provider_ids(&a), want);
            let c = store.providers(&key("c"));
            assert_eq!(c.len(), 1);
            assert_eq!(c[0].addresses, vec![addr(9)]);
            assert!(store.providers(&key("none")).is_empty());
            // Keys that sort right after "a" must not leak into its range.
            assert!(store.providers(&RecordKey::new(&"a\0")).is_empty());

            let provided: BTreeSet<Vec<u8>> = store.provided().map(|p| p.key.to_vec()).collect();
            assert_eq!(provided, BTreeSet::from([b"a".to_vec(), b"b".to_vec()]));
            assert!(store.provided().all(|p| p.provider == local));
        }
        let mut store = open(dir.path(), local, Limits::default());
        let a = store.providers(&key("a"));
        assert_eq!(a.len(), 4);
        for r in &a {
            if r.provider == local {
                assert!(r.expires.is_none());
                assert!(r.addresses.is_empty());
            } else {
                assert_close(r.expires, expires);
                assert_eq!(r.addresses.len(), 1);
            }
        }
        let b = store
            .provided()
            .find(|p| p.key == key("b"))
            .expect("b provided");
        assert_eq!(b.addresses, vec![addr(1), addr(2)]);
        assert_eq!(store.providers(&key("c"))[0].addresses, vec![addr(9)]);

        store.remove_provider(&key("a"), &local);
        store.remove_provider(&key("a"), &remotes[1]);
        store.remove_provider(&key("a"), &PeerId::random()); // absent: no-op
        assert_eq!(
            provider_ids(&store.providers(&key("a"))),
            BTreeSet::from([remotes[0], remotes[2]])
        );
        let provided: Vec<RecordKey> = store.provided().map(|p| p.key.clone()).collect();
        assert_eq!(provided, vec![key("b")]);
        store.remove_provider(&key("c"), &remotes[0]);
        assert!(store.providers(&key("c")).is_empty());
    }

    #[test]
    fn full_provider_list_keeps_first_providers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = PeerId::random();
        let limits = Limits {
            max_providers_per_key: 3,
            ..Limits::default()
        };
        let mut store = open(dir.path(), local, limits);
        let peers: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
        for p in &peers {
            // Refused providers are ignored without an error, like MemoryStore does.
            store
                .add_provider(ProviderRecord::new(key("k"), *p, vec![]))
                .expect("add");
        }
        let first: BTreeSet<PeerId> = peers[..3].iter().copied().collect();
        assert_eq!(provider_ids(&store.providers(&key("k"))), first);
        // Updating a stored provider of a full key works.
        store
            .add_provider(ProviderRecord::new(key("k"), peers[0], vec![addr(5)]))
            .expect("update");
        let stored = store.providers(&key("k"));
        assert_eq!(stored.len(), 3);
        assert!(
            stored
                .iter()
                .any(|p| p.provider == peers[0] && p.addresses == vec![addr(5)])
        );
        // The local node's own record is kept even when the list is full.
        store
            .add_provider(ProviderRecord::new(key("k"), local, vec![]))
            .expect("own record");
        assert_eq!(store.providers(&key("k")).len(), 4);
        assert_eq!(store.provided().count(), 1);
        // ... and does not take a slot of other peers: the list stays full for them.
        store
            .add_provider(ProviderRecord::new(key("k"), peers[3], vec![]))
            .expect("ignored");
        assert_eq!(store.providers(&key("k")).len(), 4);
        // Once a slot frees up, a new peer gets in.
        store.remove_provider(&key("k"), &peers[1]);
        store
            .add_provider(ProviderRecord::new(key("k"), peers[4], vec![]))
            .expect("add");
        assert!(provider_ids(&store.providers(&key("k"))).contains(&peers[4]));
    }

    /// Review M1 through the node's own store stack: attackers from one network fill a key
    /// first; this node's announcement is still stored, and a provider from another network
    /// still gets in.
    #[test]
    fn squatted_key_keeps_own_record_and_other_networks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = PeerId::random();
        let limits = Limits {
            max_providers_per_key: 3,
            ..Limits::default()
        };
        let inner = open(dir.path(), local, limits);
        let mut store = mcc_records::ValidatingStore::new(
            inner,
            mcc_records::Limits {
                max_value_size: 1024,
                max_providers_per_key: 3,
            },
        )
        .with_local_peer(local);
        let from = |ip: &str| mcc_records::Origin::of_ip(ip.parse().expect("ip"));
        for _ in 0..6 {
            store
                .add_provider_from(
                    ProviderRecord::new(key("db"), PeerId::random(), vec![]),
                    from("127.0.0.1"),
                )
                .expect("attacker");
        }
        store
            .add_provider(ProviderRecord::new(key("db"), local, vec![]))
            .expect("own record");
        let honest = PeerId::random();
        store
            .add_provider_from(
                ProviderRecord::new(key("db"), honest, vec![addr(7)]),
                from("127.0.2.1"),
            )
            .expect("honest");
        let ids = provider_ids(&store.providers(&key("db")));
        assert_eq!(ids.len(), 4);
        assert!(ids.contains(&local) && ids.contains(&honest));
        assert_eq!(store.inner().provided().count(), 1);
    }

    /// Review L2: the store keeps at most a few short addresses per provider.
    #[test]
    fn provider_addresses_are_capped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = open(dir.path(), PeerId::random(), Limits::default());
        let addrs: Vec<Multiaddr> = (0..2000).map(addr).collect();
        store
            .add_provider(ProviderRecord::new(key("k"), PeerId::random(), addrs))
            .expect("add");
        let stored = store.providers(&key("k"));
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].addresses, (0..8).map(addr).collect::<Vec<_>>());
    }

    #[test]
    fn provided_and_provider_key_limits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = PeerId::random();
        let limits = Limits {
            max_provided_keys: 2,
            max_provider_keys: 3,
            ..Limits::default()
        };
        let mut store = open(dir.path(), local, limits.clone());
        let own = |k: &str| ProviderRecord::new(key(k), local, vec![]);
        store.add_provider(own("a")).expect("a");
        store.add_provider(own("b")).expect("b");
        assert!(matches!(
            store.add_provider(own("c")),
            Err(store::Error::MaxProvidedKeys)
        ));
        store
            .add_provider(own("a"))
            .expect("re-providing a key is an update");
        assert_eq!(store.provided().count(), 2);

        // Other peers' records are bounded by the number of keys overall.
        let remote = PeerId::random();
        let theirs = |k: &str| ProviderRecord::new(key(k), remote, vec![]);
        store.add_provider(theirs("a")).expect("known key");
        store.add_provider(theirs("x")).expect("third key");
        assert!(matches!(
            store.add_provider(theirs("y")),
            Err(store::Error::MaxProvidedKeys)
        ));
        assert!(store.providers(&key("y")).is_empty());

        store.remove_provider(&key("b"), &local);
        // The local node is not blocked by other peers filling the key space.
        store.add_provider(own("c")).expect("room for own key");
        assert!(matches!(
            store.add_provider(theirs("y")),
            Err(store::Error::MaxProvidedKeys)
        ));
        drop(store);

        // The counts are rebuilt from disk.
        let mut store = open(dir.path(), local, limits);
        assert!(matches!(
            store.add_provider(own("d")),
            Err(store::Error::MaxProvidedKeys)
        ));
        store.remove_provider(&key("x"), &remote);
        store.remove_provider(&key("c"), &local);
        store.add_provider(theirs("y")).expect("room again");
    }

    #[test]
    fn corrupt_rows_are_ignored_and_swept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = PeerId::random();
        let remote = PeerId::random();
        let mut store = open(dir.path(), local, Limits::default());
        store.put(record("good", b"v")).expect("put");
        store
            .add_provider(ProviderRecord::new(key("k"), remote, vec![addr(1)]))
            .expect("provider");

        let mut bad_publisher = vec![ROW_FORMAT_V1, FLAG_PUBLISHER];
        bad_publisher.extend_from_slice(&3u32.to_le_bytes());
        bad_publisher.extend_from_slice(b"bad");
        let bad_records: [(&[u8], Vec<u8>); 5] = [
            (b"format", vec![0x07, 0, 1, 2]),
            (b"empty", vec![]),
            (b"flags", vec![ROW_FORMAT_V1, 0x80]),
            (b"short-expiry", vec![ROW_FORMAT_V1, FLAG_EXPIRES, 1, 2]),
            (b"publisher", bad_publisher),
        ];
        let valid_provider_row = encode_provider(
            &ProviderRecord::new(key("k"), remote, vec![]),
            &Clock::now(),
        )
        .expect("encode");
        let mut many_addresses = vec![ROW_FORMAT_V1, 0];
        many_addresses.extend_from_slice(&u32::MAX.to_le_bytes());
        let other = PeerId::random().to_bytes();
        let local_bytes = local.to_bytes();
        let bad_providers: [(&[u8], &[u8], Vec<u8>); 4] = [
            (b"k", b"not a peer id", valid_provider_row),
            (b"k", &other, many_addresses),
            (b"k", &local_bytes, vec![ROW_FORMAT_V1, 0, 0, 0, 0, 0, 0xff]),
            (b"only-bad", &other, vec![0xff; 3]),
        ];
        {
            let txn = store.db.begin_write().expect("write");
            {
                let mut records = txn.open_table(RECORDS).expect("records");
                for (k, v) in &bad_records {
                    records.insert(*k, v.as_slice()).expect("insert");
                }
                let mut providers = txn.open_table(PROVIDERS).expect("providers");
                let mut keys = txn.open_table(PROVIDER_KEYS).expect("keys");
                for (k, p, v) in &bad_providers {
                    providers.insert((*k, *p), v.as_slice()).expect("insert");
                    keys.insert(*k, ()).expect("insert");
                }
                // A valid row of the local node that the indexes do not know.
                let own_row = encode_provider(
                    &ProviderRecord::new(key("unindexed"), local, vec![]),
                    &Clock::now(),
                )
                .expect("encode");
                providers
                    .insert(
                        (&b"unindexed"[..], local_bytes.as_slice()),
                        own_row.as_slice(),
                    )
                    .expect("insert");
                let mut provided = txn.open_table(PROVIDED).expect("provided");
                provided.insert(&b"k"[..], ()).expect("insert");
                // An index entry without a provider row.
                provided.insert(&b"dangling"[..], ()).expect("insert");
            }
            txn.commit().expect("commit");
        }

        for (k, _) in &bad_records {
            assert!(store.get(&RecordKey::new(k)).is_none());
        }
        let listed: Vec<Record> = store.records().map(Cow::into_owned).collect();
        assert_eq!(listed, vec![record("good", b"v")]);
        assert_eq!(
            provider_ids(&store.providers(&key("k"))),
            BTreeSet::from([remote])
        );
        assert!(store.providers(&key("only-bad")).is_empty());
        assert_eq!(store.provided().count(), 0);

        // A corrupt record can be replaced or removed like any other.
        store
            .put(record("format", b"fixed"))
            .expect("replace corrupt");
        assert_eq!(
            store.get(&key("format")).map(|r| r.value.clone()),
            Some(b"fixed".to_vec())
        );
        store.remove(&key("empty"));

        // The sweep removes the remaining 3 bad records and 4 bad provider rows, and repairs
        // the indexes (drops "dangling", adds "unindexed").
        assert_eq!(store.remove_expired(), 7);
        assert_eq!(store.len(), 2);
        let provided: Vec<RecordKey> = store.provided().map(|p| p.key.clone()).collect();
        assert_eq!(provided, vec![key("unindexed")]);
        assert_eq!(store.remove_expired(), 0);
        store
            .add_provider(ProviderRecord::new(key("k"), local, vec![]))
            .expect("own record after sweep");
        assert_eq!(store.provided().count(), 2);
        drop(store);
        let store = open(dir.path(), local, Limits::default());
        assert_eq!(store.len(), 2);
        assert_eq!(store.providers(&key("k")).len(), 2);
    }

    #[test]
    fn open_rejects_foreign_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = PeerId::random();

        let junk = dir.path().join("junk.redb");
        std::fs::write(&junk, b"this is not a redb file at all, not even close").expect("write");
        assert!(matches!(
            RedbStore::open(&junk, local, Limits::default()),
            Err(StorageError::Open { .. })
        ));

        let missing = dir.path().join("no-such-dir").join(FILE);
        assert!(matches!(
            RedbStore::open(&missing, local, Limits::default()),
            Err(StorageError::Open { .. })
        ));

        let foreign = dir.path().join("foreign.redb");
        {
            let db = Database::create(&foreign).expect("create");
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
            RedbStore::open(&foreign, local, Limits::default()),
            Err(StorageError::Corrupt { .. })
        ));

        let newer = dir.path().join(FILE);
        drop(open(dir.path(), local, Limits::default()));
        {
            let db = Database::create(&newer).expect("open");
            let txn = db.begin_write().expect("write");
            txn.open_table(META)
                .expect("meta")
                .insert(SCHEMA_KEY, 99)
                .expect("insert");
            txn.commit().expect("commit");
        }
        let err = RedbStore::open(&newer, local, Limits::default()).expect_err("newer schema");
        assert!(matches!(
            err,
            StorageError::UnsupportedVersion { found: 99, .. }
        ));
        assert!(err.to_string().contains("99"));
    }

    #[test]
    fn second_open_of_same_file_fails_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = open(dir.path(), PeerId::random(), Limits::default());
        let second = RedbStore::open(&dir.path().join(FILE), PeerId::random(), Limits::default());
        assert!(matches!(second, Err(StorageError::Open { .. })));
        drop(first);
    }

    #[test]
    fn types_are_thread_safe() {
        fn send_sync<T: Send + Sync + 'static>() {}
        fn send<T: Send>() {}
        send_sync::<StorageError>();
        send::<RedbStore>();
    }

    /// Random operations against both stores; every answer must match `MemoryStore`.
    #[test]
    fn behaves_like_memory_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = PeerId::random();
        let limits = Limits {
            max_records: 5,
            max_value_size: 10,
            max_provided_keys: 100,
            max_provider_keys: 6,
            max_providers_per_key: 3,
        };
        let mut ours = open(dir.path(), local, limits.clone());
        let mut theirs = MemoryStore::with_config(
            local,
            MemoryStoreConfig {
                max_records: limits.max_records,
                // MemoryStore refuses len >= max_value_bytes, RedbStore len > max_value_size.
                max_value_bytes: limits.max_value_size + 1,
                // MemoryStore counts every key with providers against this one.
                max_provided_keys: limits.max_provider_keys,
                max_providers_per_key: limits.max_providers_per_key,
            },
        );
        let keys: Vec<RecordKey> = (0..9).map(|i| RecordKey::new(&[i as u8])).collect();
        // No local provider here: MemoryStore drops it when the list is full, RedbStore keeps it.
        let peers: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
        let mut rng = StdRng::seed_from_u64(7);
        let outcome = |r: &store::Result<()>| format!("{r:?}");

        for step in 0..1500 {
            let k = &keys[rng.gen_range(0..keys.len())];
            match rng.gen_range(0..5) {
                0 | 1 => {
                    let mut r = Record::new(k.clone(), vec![step as u8; rng.gen_range(0..=12)]);
                    if rng.gen_bool(0.5) {
                        r.publisher = Some(peers[rng.gen_range(0..peers.len())]);
                    }
                    assert_eq!(
                        outcome(&ours.put(r.clone())),
                        outcome(&theirs.put(r)),
                        "step {step}"
                    );
                }
                2 => {
                    ours.remove(k);
                    theirs.remove(k);
                }
                3 => {
                    let p = peers[rng.gen_range(0..peers.len())];
                    let addrs = (0..rng.gen_range(0..3))
                        .map(|i| addr(step as u16 + i))
                        .collect();
                    let r = ProviderRecord::new(k.clone(), p, addrs);
                    assert_eq!(
                        outcome(&ours.add_provider(r.clone())),
                        outcome(&theirs.add_provider(r)),
                        "step {step}"
                    );
                }
                _ => {
                    let p = peers[rng.gen_range(0..peers.len())];
                    ours.remove_provider(k, &p);
                    theirs.remove_provider(k, &p);
                }
            }
            for k in &keys {
                assert_eq!(
                    ours.get(k).map(Cow::into_owned),
                    theirs.get(k).map(Cow::into_owned),
                    "step {step}"
                );
                let mut a: Vec<_> = ours
                    .providers(k)
                    .into_iter()
                    .map(|p| (p.provider, p.addresses))
                    .collect();
                let mut b: Vec<_> = theirs
                    .providers(k)
                    .into_iter()
                    .map(|p| (p.provider, p.addresses))
                    .collect();
                a.sort();
                b.sort();
                assert_eq!(a, b, "step {step}");
            }
            assert_eq!(ours.len(), theirs.records().count(), "step {step}");
            assert_eq!(ours.records().count(), ours.len(), "step {step}");
        }
        assert_eq!(ours.provided().count(), 0);
    }

    fn did_record(value: &[u8]) -> Record {
        let kp = libp2p::identity::ed25519::Keypair::generate();
        let did = mcc_records::did::did_from_public(&kp.public());
        Record::new(mcc_records::did_key(&did), value.to_vec())
    }

    fn mcc(k: &str) -> Record {
        Record::new(mcc_records::mcc_key(k), b"v".to_vec())
    }

    /// M6: records stored for remote peers are capped per peer and together; room stays for
    /// DID documents and for this node's own writes.
    #[test]
    fn remote_sources_are_held_to_their_quotas() {
        use mcc_records::SourcedStore as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = Limits {
            max_records: 40,
            ..Limits::default()
        };
        assert_eq!(limits.per_source_max(), 2);
        assert_eq!(limits.remote_max(), 38);
        assert_eq!(limits.remote_free_max(), 36);
        let mut store = open(dir.path(), PeerId::random(), limits);

        // One peer: two keys, then refused; replacing its keys is fine.
        let a = PeerId::random();
        store.put_from(mcc("a0"), Some(a)).expect("a0");
        store.put_from(mcc("a1"), Some(a)).expect("a1");
        assert!(matches!(
            store.put_from(mcc("a2"), Some(a)),
            Err(store::Error::MaxRecords)
        ));
        store.put_from(mcc("a1"), Some(a)).expect("replace");
        assert_eq!(store.records_of(&a), 2);

        // Many peers (Sybils) together: free keys stop at remote_free_max.
        let mut n = 2;
        let mut refused = 0;
        for i in 0..30 {
            let p = PeerId::random();
            for j in 0..2 {
                match store.put_from(mcc(&format!("s{i}-{j}")), Some(p)) {
                    Ok(()) => n += 1,
                    Err(store::Error::MaxRecords) => refused += 1,
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
        }
        assert_eq!(n, 36);
        assert_eq!(refused, 60 - 34);
        assert_eq!(store.remote_records(), (36, 36));

        // DID documents of remote peers still fit, up to remote_max.
        store
            .put_from(did_record(b"d1"), Some(PeerId::random()))
            .expect("a DID fits");
        store
            .put_from(did_record(b"d2"), Some(PeerId::random()))
            .expect("a second DID fits");
        assert!(matches!(
            store.put_from(did_record(b"d3"), Some(PeerId::random())),
            Err(store::Error::MaxRecords)
        ));
        assert_eq!(store.remote_records(), (38, 36));

        // This node's own writes still fit: the rest of max_records.
        store.put(mcc("mine1")).expect("own write");
        store.put(did_record(b"own")).expect("own DID");
        assert_eq!(store.len(), 40);
        assert!(matches!(
            store.put(mcc("mine3")),
            Err(store::Error::MaxRecords)
        ));

        // Counts survive a reopen.
        drop(store);
        let mut store = open(dir.path(), PeerId::random(), limits_40());
        assert_eq!(store.records_of(&a), 2);
        assert_eq!(store.remote_records(), (38, 36));

        // Removing a peer's record gives it its share back; a local write over a remote key
        // moves the key to this node.
        store.remove(&mcc("a0").key);
        assert_eq!(store.records_of(&a), 1);
        store.put_from(mcc("a2"), Some(a)).expect("room again");
        store.put(mcc("a2")).expect("local overwrite");
        assert_eq!(store.records_of(&a), 1);
        assert_eq!(store.remote_records(), (37, 35));
    }

    fn limits_40() -> Limits {
        Limits {
            max_records: 40,
            ..Limits::default()
        }
    }

    /// Expired records stored for a peer give its share back when swept.
    #[test]
    fn expired_remote_records_free_their_share() {
        use mcc_records::SourcedStore as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let local = PeerId::random();
        let mut store = open(dir.path(), local, limits_40());
        let a = PeerId::random();
        let mut old = mcc("old");
        old.expires = Some(Instant::now() + Duration::from_millis(50));
        store.put_from(old, Some(a)).expect("old");
        store.put_from(mcc("new"), Some(a)).expect("new");
        assert!(matches!(
            store.put_from(mcc("more"), Some(a)),
            Err(store::Error::MaxRecords)
        ));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(store.remove_expired(), 1);
        assert_eq!(store.records_of(&a), 1);
        store.put_from(mcc("more"), Some(a)).expect("share back");
        // The local node as a source is no remote peer.
        store.put_from(mcc("self"), Some(local)).expect("own");
        assert_eq!(store.remote_records(), (2, 2));
    }

    /// The replication walk reads keys in bounded batches, in order, without values.
    #[test]
    fn keys_after_walks_in_batches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = open(dir.path(), PeerId::random(), Limits::default());
        for i in 0..10 {
            store.put(record(&format!("k{i}"), b"v")).expect("put");
        }
        let mut seen = Vec::new();
        let mut cursor: Option<RecordKey> = None;
        loop {
            let batch = store.keys_after(cursor.as_ref().map(|k| k.as_ref()), 3);
            assert!(batch.len() <= 3);
            let Some(last) = batch.last().cloned() else {
                break;
            };
            seen.extend(batch);
            cursor = Some(last);
        }
        let expected: Vec<RecordKey> = (0..10).map(|i| key(&format!("k{i}"))).collect();
        assert_eq!(seen, expected);
    }
}
