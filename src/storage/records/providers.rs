//! Provider records: storing them within [`Limits`](super::Limits) (`max_provided_keys`,
//! `max_provider_keys` and the per-key backstop `max_providers_per_key`), reading them, the
//! local node's [`ProvidedIter`], and the `provider_keys` and `provided` indexes that every
//! transaction keeps in step with the `providers` table.

use std::borrow::Cow;

use libp2p::PeerId;
use libp2p::kad::store;
use libp2p::kad::{ProviderRecord, RecordKey};
use redb::{ReadOnlyTable, ReadableTable, ReadableTableMetadata};

use super::clock::Clock;
use super::rows::{decode_provider, decode_provider_record, encode_provider};
use super::tables::{PROVIDED, PROVIDER_KEYS, PROVIDERS, ProviderKey};
use super::{RedbStore, Txn, hex, to_u64};

impl RedbStore {
    /// `RecordStore::add_provider`.
    pub(super) fn add_provider_record(&mut self, mut record: ProviderRecord) -> store::Result<()> {
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

    /// `RecordStore::providers`.
    pub(super) fn provider_records(&self, key: &RecordKey) -> Vec<ProviderRecord> {
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

    /// `RecordStore::provided`.
    pub(super) fn provided_iter(&self) -> ProvidedIter<'_> {
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

    /// `RecordStore::remove_provider`.
    pub(super) fn remove_provider_record(&mut self, k: &RecordKey, p: &PeerId) {
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
pub(super) fn remove_provider_row(
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
pub(super) fn repair_indexes(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::records::tests::*;

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
}
