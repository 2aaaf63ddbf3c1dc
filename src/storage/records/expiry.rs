//! Expiry: the sweep [`RedbStore::remove_expired`] that removes expired and undecodable rows
//! (stored times are read with [`Clock`]).

use redb::{ReadableTable, ReadableTableMetadata};

use super::clock::Clock;
use super::providers::{remove_provider_row, repair_indexes};
use super::rows::{decode_provider, decode_provider_key, decode_record};
use super::tables::{PROVIDED, PROVIDER_KEYS, PROVIDERS, RECORD_SOURCES, RECORDS};
use super::{RedbStore, Txn, hex, to_usize};

impl RedbStore {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::records::rows::{
        FLAG_EXPIRES, FLAG_PUBLISHER, ROW_FORMAT_V1, encode_provider,
    };
    use crate::storage::records::tests::*;

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
}
