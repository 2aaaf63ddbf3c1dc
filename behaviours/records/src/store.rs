//! A kad record store that validates every record before it reaches the inner store.

use std::{borrow::Cow, collections::HashMap, fmt, time::Instant};

use libp2p::{
    PeerId,
    kad::{
        K_VALUE, ProviderRecord, Record, RecordKey,
        store::{self, RecordStore},
    },
};

use crate::{
    key::display_key,
    providers::{self, Admission, Origin, Slot, trim_provider_addresses},
    validate::{Validated, ValidationError, check_replace, validate},
};

/// A record store told on whose behalf a record is stored, so that it can keep quotas per
/// source: `None` is the local node itself, `Some(peer)` a remote peer (one that pushed the
/// record, or supplied the version this node writes back after a lookup).
pub trait SourcedStore: RecordStore {
    /// [`RecordStore::put`] on behalf of `source`.
    fn put_from(&mut self, r: Record, source: Option<PeerId>) -> store::Result<()>;
}

/// kad's memory store keeps no quotas: the source is ignored.
impl SourcedStore for store::MemoryStore {
    fn put_from(&mut self, r: Record, _source: Option<PeerId>) -> store::Result<()> {
        self.put(r)
    }
}

/// Limits of the [`ValidatingStore`].
#[derive(Debug, Clone)]
pub struct Limits {
    /// Maximum size of a record value in bytes (default 64 KiB).
    pub max_value_size: usize,
    /// Maximum number of other peers' providers stored per key (default 20, kad's K). The
    /// local node's own record does not count and is always kept; when a key is full, the
    /// [`providers`](crate::providers) policy decides which record gives way.
    pub max_providers_per_key: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_value_size: 64 * 1024,
            max_providers_per_key: K_VALUE.get(),
        }
    }
}

/// Counts of accepted and refused puts, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records that passed validation and were stored by the inner store.
    pub accepted: u64,
    /// Records refused as invalid (bad key, namespace, document, revocation list or signature).
    pub refused_invalid: u64,
    /// DID documents and revocation lists refused because they are not newer than the stored
    /// one.
    pub refused_stale: u64,
    /// Records refused for a value over the size limit.
    pub refused_too_large: u64,
}

/// A kad [`RecordStore`] wrapper that validates every put — inbound from peers, caching,
/// replication and local `put_record` — with [`validate`] and [`check_replace`] against the
/// inner store's current record, and caps the providers per key.
///
/// A refused record is reported to kad as [`store::Error::ValueTooLarge`] (kad's error type
/// has nothing more fitting), on which libp2p-kad resets the putting peer's stream; the precise
/// reason is logged at debug level and counted in [`Stats`].
///
/// Provider records: the local node's own (see [`with_local_peer`](Self::with_local_peer)) are
/// always passed on; other peers' have their addresses capped
/// ([`trim_provider_addresses`]) and compete for `max_providers_per_key` slots per key under
/// the [`providers`](crate::providers) policy: expired records first, then diversity by the
/// network ([`Origin`]) each record was received from
/// ([`add_provider_from`](Self::add_provider_from)). The origin and refresh time of each stored
/// provider are kept in memory only: after a restart, stored records have an unknown origin
/// and count as the oldest.
pub struct ValidatingStore<S> {
    inner: S,
    limits: Limits,
    stats: Stats,
    local_id: Option<PeerId>,
    /// Origin and last refresh of the other peers' provider records stored in `inner`.
    origins: HashMap<RecordKey, HashMap<PeerId, (Origin, Instant)>>,
    /// `origins` is swept of keys `inner` no longer has once it holds this many keys.
    origins_sweep_at: usize,
}

/// `origins` is first swept once it holds this many keys.
const ORIGINS_SWEEP_MIN: usize = 4096;

impl<S> fmt::Debug for ValidatingStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatingStore")
            .field("limits", &self.limits)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<S: RecordStore> ValidatingStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, limits: Limits) -> Self {
        Self {
            inner,
            limits,
            stats: Stats::default(),
            local_id: None,
            origins: HashMap::new(),
            origins_sweep_at: ORIGINS_SWEEP_MIN,
        }
    }

    /// Names the local node: its own provider records are always kept and take no slot.
    pub fn with_local_peer(mut self, local_id: PeerId) -> Self {
        self.local_id = Some(local_id);
        self
    }

    /// The inner store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The inner store, mutably. Writes through it bypass validation.
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Counts of accepted and refused puts so far.
    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// The validation a put would run, with the precise error: the record is valid and may
    /// replace the one currently stored under `key`.
    pub fn check(&self, key: &[u8], value: &[u8]) -> Result<Validated, ValidationError> {
        self.check_record(&RecordKey::new(&key), value)
    }

    fn check_record(&self, key: &RecordKey, value: &[u8]) -> Result<Validated, ValidationError> {
        let validated = validate(key.as_ref(), value, self.limits.max_value_size)?;
        if let Some(current) = self.inner.get(key) {
            check_replace(key.as_ref(), &current.value, value)?;
        }
        Ok(validated)
    }

    /// Validates a record about to be stored; a refusal is logged and counted.
    fn admit(&mut self, r: &Record) -> store::Result<()> {
        if let Err(error) = self.check_record(&r.key, &r.value) {
            tracing::debug!(
                key = %display_key(r.key.as_ref()),
                publisher = ?r.publisher,
                "record refused: {error}"
            );
            self.count_refusal(&error);
            return Err(store::Error::ValueTooLarge);
        }
        Ok(())
    }

    /// Stores a provider record received from the network `origin` (see the
    /// [`providers`](crate::providers) policy). [`RecordStore::add_provider`] is this with
    /// [`Origin::Unknown`].
    pub fn add_provider_from(
        &mut self,
        mut record: ProviderRecord,
        origin: Origin,
    ) -> store::Result<()> {
        if self.local_id == Some(record.provider) {
            return self.inner.add_provider(record);
        }
        trim_provider_addresses(&mut record.addresses);
        let now = Instant::now();
        let stored = self.inner.providers(&record.key);
        if let Some(known) = self.origins.get_mut(&record.key) {
            known.retain(|peer, _| stored.iter().any(|p| p.provider == *peer));
        }
        if !stored.iter().any(|p| p.provider == record.provider) {
            let known = self.origins.get(&record.key);
            let slots: Vec<Slot> = stored
                .iter()
                .filter(|p| Some(p.provider) != self.local_id)
                .map(|p| {
                    let seen = known.and_then(|k| k.get(&p.provider));
                    Slot {
                        provider: p.provider,
                        origin: seen.map(|(o, _)| *o).unwrap_or(Origin::Unknown),
                        refreshed: seen.map(|(_, at)| *at),
                        expired: p.is_expired(now),
                    }
                })
                .collect();
            if let Admission::Evict(evicted) =
                providers::admit(&slots, origin, self.limits.max_providers_per_key)
            {
                tracing::debug!(
                    provider = %record.provider,
                    %evicted,
                    "provider list full: evicting a provider for a newcomer"
                );
                self.remove_provider(&record.key, &evicted);
            }
        }
        let (key, provider) = (record.key.clone(), record.provider);
        self.inner.add_provider(record)?;
        if self.origins.len() >= self.origins_sweep_at && !self.origins.contains_key(&key) {
            self.sweep_origins();
        }
        self.origins
            .entry(key)
            .or_default()
            .insert(provider, (origin, now));
        Ok(())
    }

    /// Forgets the origins of keys the inner store no longer has providers for.
    fn sweep_origins(&mut self) {
        let inner = &self.inner;
        self.origins.retain(|key, peers| {
            let stored = inner.providers(key);
            peers.retain(|peer, _| stored.iter().any(|p| p.provider == *peer));
            !peers.is_empty()
        });
        self.origins_sweep_at = (2 * self.origins.len()).max(ORIGINS_SWEEP_MIN);
    }

    fn count_refusal(&mut self, error: &ValidationError) {
        let counter = match error {
            ValidationError::TooLarge { .. } => &mut self.stats.refused_too_large,
            ValidationError::Stale { .. } => &mut self.stats.refused_stale,
            ValidationError::Key(_)
            | ValidationError::Did(_)
            | ValidationError::DidMismatch { .. }
            | ValidationError::RevocationList(_) => &mut self.stats.refused_invalid,
        };
        *counter = counter.saturating_add(1);
    }
}

impl<S: SourcedStore> SourcedStore for ValidatingStore<S> {
    fn put_from(&mut self, r: Record, source: Option<PeerId>) -> store::Result<()> {
        self.admit(&r)?;
        self.inner.put_from(r, source)?;
        self.stats.accepted = self.stats.accepted.saturating_add(1);
        Ok(())
    }
}

impl<S: RecordStore> RecordStore for ValidatingStore<S> {
    type RecordsIter<'a>
        = S::RecordsIter<'a>
    where
        Self: 'a;
    type ProvidedIter<'a>
        = S::ProvidedIter<'a>
    where
        Self: 'a;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.inner.get(k)
    }

    fn put(&mut self, r: Record) -> store::Result<()> {
        self.admit(&r)?;
        self.inner.put(r)?;
        self.stats.accepted = self.stats.accepted.saturating_add(1);
        Ok(())
    }

    fn remove(&mut self, k: &RecordKey) {
        self.inner.remove(k)
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.inner.records()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> store::Result<()> {
        self.add_provider_from(record, Origin::Unknown)
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        self.inner.providers(key)
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.inner.provided()
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        if let Some(known) = self.origins.get_mut(k) {
            known.remove(p);
            if known.is_empty() {
                self.origins.remove(k);
            }
        }
        self.inner.remove_provider(k, p)
    }
}

#[cfg(test)]
mod tests {
    use libp2p::{identity::ed25519, kad::store::MemoryStore};
    use mcc_admission::{RevocationFields, RevocationList, keys};

    use super::*;
    use crate::{
        did::{SignedDocument, default_document, did_from_public},
        key::{KeyError, did_key, mcc_key, revocations_key},
        validate::RevocationListError,
    };

    fn store() -> ValidatingStore<MemoryStore> {
        ValidatingStore::new(MemoryStore::new(PeerId::random()), Limits::default())
    }

    fn keypair(seed: u8) -> ed25519::Keypair {
        let mut secret = [seed; 32];
        ed25519::Keypair::from(ed25519::SecretKey::try_from_bytes(&mut secret).unwrap())
    }

    fn did_record(kp: &ed25519::Keypair, seq: u64) -> Record {
        let did = did_from_public(&kp.public());
        let value = SignedDocument::sign(kp, default_document(&did), seq)
            .unwrap()
            .to_bytes();
        Record::new(did_key(&did), value)
    }

    fn revocations_record(ca: &ed25519::Keypair, sequence: u64) -> Record {
        let list = RevocationList::sign(
            ca,
            RevocationFields {
                sequence,
                issued_at: 1_000,
                peers: [PeerId::random()].into(),
                ..RevocationFields::default()
            },
        )
        .unwrap();
        Record::new(
            RecordKey::new(&revocations_key(&keys::peer_id_of(&ca.public()))),
            list.to_bytes(),
        )
    }

    #[test]
    fn limits_default() {
        let limits = Limits::default();
        assert_eq!(limits.max_value_size, 65536);
        assert_eq!(limits.max_providers_per_key, 20);
    }

    #[test]
    fn puts_are_validated_and_counted() {
        let mut s = store();
        let rec = Record::new(mcc_key("a"), b"1".to_vec());
        s.put(rec.clone()).unwrap();
        assert_eq!(
            s.get(&rec.key).map(|r| r.value.clone()),
            Some(b"1".to_vec())
        );

        let unknown = Record::new(RecordKey::new(&"/foo/a"), b"1".to_vec());
        assert!(matches!(
            s.put(unknown.clone()),
            Err(store::Error::ValueTooLarge)
        ));
        assert!(s.get(&unknown.key).is_none());
        assert_eq!(
            s.check(unknown.key.as_ref(), b"1"),
            Err(ValidationError::Key(KeyError::UnknownNamespace(
                "foo".into()
            )))
        );

        let big = Record::new(mcc_key("big"), vec![0; 64 * 1024 + 1]);
        assert!(matches!(
            s.put(big.clone()),
            Err(store::Error::ValueTooLarge)
        ));
        assert!(s.get(&big.key).is_none());

        let kp = keypair(1);
        let v1 = did_record(&kp, 1);
        let v2 = did_record(&kp, 2);
        s.put(v2.clone()).unwrap();
        // Republish of identical bytes: accepted.
        s.put(v2.clone()).unwrap();
        // Replay of an older version: refused, the newer one stays.
        assert!(matches!(
            s.put(v1.clone()),
            Err(store::Error::ValueTooLarge)
        ));
        assert_eq!(
            s.get(&v2.key).map(|r| r.value.clone()),
            Some(v2.value.clone())
        );
        assert_eq!(
            s.check(v1.key.as_ref(), &v1.value),
            Err(ValidationError::Stale { new: 1, current: 2 })
        );

        assert_eq!(
            s.stats(),
            Stats {
                accepted: 3,
                refused_invalid: 1,
                refused_stale: 1,
                refused_too_large: 1,
            }
        );
    }

    #[test]
    fn revocation_lists_are_validated_and_fresh() {
        let mut s = store();
        let ca = keys::to_ed25519(&keys::generate()).unwrap();
        let other_ca = keys::to_ed25519(&keys::generate()).unwrap();
        let v1 = revocations_record(&ca, 1);
        let v2 = revocations_record(&ca, 2);
        let v3 = revocations_record(&ca, 3);

        s.put(v1.clone()).unwrap();
        // A newer list replaces it.
        s.put(v2.clone()).unwrap();
        assert_eq!(
            s.get(&v2.key).map(|r| r.value.clone()),
            Some(v2.value.clone())
        );
        // Republish of identical bytes: accepted.
        s.put(v2.clone()).unwrap();
        // Replay of an older list: refused, the newer one stays.
        assert!(matches!(
            s.put(v1.clone()),
            Err(store::Error::ValueTooLarge)
        ));
        assert_eq!(
            s.check(v1.key.as_ref(), &v1.value),
            Err(ValidationError::Stale { new: 1, current: 2 })
        );
        // Another list with the same sequence: refused as stale too.
        let v2_other = revocations_record(&ca, 2);
        assert_ne!(v2_other.value, v2.value);
        assert!(matches!(s.put(v2_other), Err(store::Error::ValueTooLarge)));
        assert_eq!(
            s.get(&v2.key).map(|r| r.value.clone()),
            Some(v2.value.clone())
        );

        // Another CA's list under this CA's key: refused.
        let mut stolen = revocations_record(&other_ca, 9);
        stolen.key = v1.key.clone();
        assert!(matches!(
            s.put(stolen.clone()),
            Err(store::Error::ValueTooLarge)
        ));
        assert!(matches!(
            s.check(stolen.key.as_ref(), &stolen.value),
            Err(ValidationError::RevocationList(e))
                if matches!(*e, RevocationListError::IssuerMismatch { .. })
        ));
        // Garbage: refused.
        assert!(matches!(
            s.put(Record::new(v1.key.clone(), b"garbage".to_vec())),
            Err(store::Error::ValueTooLarge)
        ));

        s.put(v3.clone()).unwrap();
        assert_eq!(
            s.get(&v3.key).map(|r| r.value.clone()),
            Some(v3.value.clone())
        );
        // A free key that only looks similar takes anything.
        s.put(Record::new(mcc_key("revocationsX"), b"free".to_vec()))
            .unwrap();

        assert_eq!(
            s.stats(),
            Stats {
                accepted: 5,
                refused_invalid: 2,
                refused_stale: 2,
                refused_too_large: 0,
            }
        );
    }

    #[test]
    fn inner_store_errors_pass_through() {
        let inner = MemoryStore::with_config(
            PeerId::random(),
            store::MemoryStoreConfig {
                max_records: 1,
                ..Default::default()
            },
        );
        let mut s = ValidatingStore::new(inner, Limits::default());
        s.put(Record::new(mcc_key("a"), b"1".to_vec())).unwrap();
        assert!(matches!(
            s.put(Record::new(mcc_key("b"), b"1".to_vec())),
            Err(store::Error::MaxRecords)
        ));
        assert_eq!(s.stats().accepted, 1);
    }

    fn provider_store(local: PeerId, max: usize) -> ValidatingStore<MemoryStore> {
        let inner = MemoryStore::with_config(
            local,
            store::MemoryStoreConfig {
                max_providers_per_key: 1000,
                ..Default::default()
            },
        );
        ValidatingStore::new(
            inner,
            Limits {
                max_value_size: 1024,
                max_providers_per_key: max,
            },
        )
        .with_local_peer(local)
    }

    fn origin(ip: &str) -> Origin {
        Origin::of_address(&format!("/ip4/{ip}/tcp/4001").parse().unwrap())
    }

    fn provider_ids(s: &ValidatingStore<MemoryStore>, key: &RecordKey) -> Vec<PeerId> {
        s.providers(key).into_iter().map(|p| p.provider).collect()
    }

    /// Review M1: attackers announcing a key first from `max` identities on one network must
    /// neither block the local node's own record nor keep a provider from another network out.
    #[test]
    fn squatters_cannot_fill_a_provider_key() {
        let local = PeerId::random();
        let mut s = provider_store(local, 3);
        // Provider keys are multihashes, not namespaced keys: not validated.
        let key = RecordKey::new(&[0x12, 0x20, 1, 2, 3]);
        let attackers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        for a in &attackers {
            s.add_provider_from(
                ProviderRecord::new(key.clone(), *a, vec![]),
                origin("127.0.0.1"),
            )
            .unwrap();
        }
        // The local node's own announcement is stored, and takes no slot.
        s.add_provider(ProviderRecord::new(key.clone(), local, vec![]))
            .unwrap();
        let ids = provider_ids(&s, &key);
        assert_eq!(ids.len(), 4);
        assert!(ids.contains(&local));
        // More attackers on the same network only replace each other (oldest first).
        let a4 = PeerId::random();
        s.add_provider_from(
            ProviderRecord::new(key.clone(), a4, vec![]),
            origin("127.0.0.9"),
        )
        .unwrap();
        let ids = provider_ids(&s, &key);
        assert_eq!(ids.len(), 4);
        assert!(ids.contains(&local) && ids.contains(&a4) && !ids.contains(&attackers[0]));
        // A provider from another network gets in; an attacker gives way.
        let honest = PeerId::random();
        s.add_provider_from(
            ProviderRecord::new(key.clone(), honest, vec![]),
            origin("127.0.2.1"),
        )
        .unwrap();
        let ids = provider_ids(&s, &key);
        assert_eq!(ids.len(), 4);
        assert!(ids.contains(&local) && ids.contains(&honest));
        // A flood of new attacker identities cannot push it out again.
        for _ in 0..10 {
            s.add_provider_from(
                ProviderRecord::new(key.clone(), PeerId::random(), vec![]),
                origin("127.0.0.1"),
            )
            .unwrap();
        }
        let ids = provider_ids(&s, &key);
        assert_eq!(ids.len(), 4);
        assert!(ids.contains(&local) && ids.contains(&honest));
        // Nor through the plain RecordStore entry point (unknown origin): it is one more network.
        s.add_provider(ProviderRecord::new(key.clone(), PeerId::random(), vec![]))
            .unwrap();
        assert!(provider_ids(&s, &key).contains(&honest));
        // The local record survives every eviction and can be withdrawn.
        assert!(provider_ids(&s, &key).contains(&local));
        s.remove_provider(&key, &local);
        assert!(!provider_ids(&s, &key).contains(&local));
    }

    #[test]
    fn expired_providers_are_evicted_first() {
        let local = PeerId::random();
        let mut s = provider_store(local, 2);
        let key = RecordKey::new(&[0x12, 0x20, 9]);
        let stale = PeerId::random();
        let mut record = ProviderRecord::new(key.clone(), stale, vec![]);
        record.expires = Some(Instant::now());
        s.add_provider_from(record, origin("127.0.5.1")).unwrap();
        let fresh = PeerId::random();
        s.add_provider_from(
            ProviderRecord::new(key.clone(), fresh, vec![]),
            origin("127.0.5.1"),
        )
        .unwrap();
        // A newcomer from the very same network takes the expired slot, not the fresh one.
        let newcomer = PeerId::random();
        s.add_provider_from(
            ProviderRecord::new(key.clone(), newcomer, vec![]),
            origin("127.0.5.1"),
        )
        .unwrap();
        let ids = provider_ids(&s, &key);
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&fresh) && ids.contains(&newcomer) && !ids.contains(&stale));
        // An existing provider may refresh its record, even on a full key.
        s.add_provider_from(
            ProviderRecord::new(key.clone(), fresh, vec![]),
            origin("127.0.5.1"),
        )
        .unwrap();
        assert_eq!(provider_ids(&s, &key).len(), 2);
    }

    /// Review L2: a provider record's addresses are capped in number and size.
    #[test]
    fn provider_addresses_are_capped() {
        let mut s = provider_store(PeerId::random(), 20);
        let key = RecordKey::new(&[0x12, 0x20, 7]);
        let mut addrs: Vec<libp2p::Multiaddr> = (0..500u16)
            .map(|i| format!("/ip4/10.0.0.1/tcp/{}", 1000 + i).parse().unwrap())
            .collect();
        let huge = libp2p::Multiaddr::empty()
            .with(libp2p::multiaddr::Protocol::Dns("a".repeat(1000).into()));
        addrs.insert(0, huge);
        let p = PeerId::random();
        s.add_provider(ProviderRecord::new(key.clone(), p, addrs))
            .unwrap();
        let stored = s.providers(&key);
        assert_eq!(stored.len(), 1);
        assert_eq!(
            stored[0].addresses.len(),
            crate::providers::MAX_PROVIDER_ADDRESSES
        );
        assert!(
            stored[0]
                .addresses
                .iter()
                .all(|a| a.as_ref().len() <= crate::providers::MAX_PROVIDER_ADDRESS_LEN)
        );
    }
}
