//! Helpers for the tests of the record store, and tests of the store as a whole.

pub(super) use std::collections::BTreeSet;

use libp2p::kad::store::{MemoryStore, MemoryStoreConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub(super) use std::borrow::Cow;
pub(super) use std::path::Path;
pub(super) use std::time::{Duration, Instant};

pub(super) use libp2p::kad::store::{self, RecordStore};
pub(super) use libp2p::kad::{ProviderRecord, Record, RecordKey};
pub(super) use libp2p::{Multiaddr, PeerId};
pub(super) use redb::{Database, TableDefinition};

pub(super) use super::tables::{META, SCHEMA_KEY};
pub(super) use super::{Limits, RedbStore, StorageError};

pub(super) const FILE: &str = "records.redb";

pub(super) fn open(dir: &Path, local: PeerId, limits: Limits) -> RedbStore {
    RedbStore::open(&dir.join(FILE), local, limits).expect("open store")
}

pub(super) fn key(s: &str) -> RecordKey {
    RecordKey::new(&s)
}

pub(super) fn addr(port: u16) -> Multiaddr {
    format!("/ip4/127.0.0.1/tcp/{port}")
        .parse()
        .expect("valid multiaddr")
}

pub(super) fn record(k: &str, value: &[u8]) -> Record {
    Record::new(key(k), value.to_vec())
}

pub(super) fn assert_close(a: Option<Instant>, b: Option<Instant>) {
    match (a, b) {
        (None, None) => {}
        (Some(a), Some(b)) => {
            let diff = a.max(b).duration_since(a.min(b));
            assert!(diff < Duration::from_millis(20), "expiry moved by {diff:?}");
        }
        _ => panic!("expiry {a:?} != {b:?}"),
    }
}

pub(super) fn provider_ids(records: &[ProviderRecord]) -> BTreeSet<PeerId> {
    records.iter().map(|p| p.provider).collect()
}

pub(super) fn did_record(value: &[u8]) -> Record {
    let kp = libp2p::identity::ed25519::Keypair::generate();
    let did = mcc_records::did::did_from_public(&kp.public());
    Record::new(mcc_records::did_key(&did), value.to_vec())
}

pub(super) fn mcc(k: &str) -> Record {
    Record::new(mcc_records::mcc_key(k), b"v".to_vec())
}

pub(super) fn limits_40() -> Limits {
    Limits {
        max_records: 40,
        ..Limits::default()
    }
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
