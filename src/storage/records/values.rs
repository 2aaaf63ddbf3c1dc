//! Value records: reading, storing (within the per-source quotas of
//! [`Limits`](super::Limits)) and removing them, [`RecordsIter`], and
//! [`RedbStore::keys_after`], the batched key walk of replication.

use std::borrow::Cow;
use std::path::Path;

use libp2p::PeerId;
use libp2p::kad::store;
use libp2p::kad::{Record, RecordKey};
use redb::{ReadableTable, ReadableTableMetadata};

use super::clock::Clock;
use super::rows::{decode_record, encode_record};
use super::tables::{RECORD_SOURCES, RECORDS};
use super::{RedbStore, Txn, hex, to_u64, to_usize};

/// How many records are stored on behalf of remote peers, in memory (rebuilt at open).
#[derive(Debug, Default)]
pub(super) struct SourceCounts {
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

    pub(super) fn sub(&mut self, peer: &[u8], key: &[u8]) {
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

impl RedbStore {
    /// Number of records stored on behalf of the remote peer `peer` (see [Quotas](super#quotas)).
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
    pub(super) fn load_sources(&self) -> Result<SourceCounts, redb::Error> {
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

    /// `RecordStore::get`.
    pub(super) fn get_record(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
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

    /// `RecordStore::remove`.
    pub(super) fn remove_record(&mut self, k: &RecordKey) {
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

    /// `RecordStore::records`.
    pub(super) fn records_iter(&self) -> RecordsIter<'_> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::records::tests::*;

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
