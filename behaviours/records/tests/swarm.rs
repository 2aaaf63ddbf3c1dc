//! Two kad servers over the in-memory transport of libp2p-swarm-test, both with a
//! `ValidatingStore`: A puts records, B validates them.

use std::time::Duration;

use futures::StreamExt;
use libp2p::{
    PeerId,
    identity::ed25519,
    kad::{
        self, GetRecordOk, Mode, PutRecordError, PutRecordOk, QueryId, QueryResult, Quorum, Record,
        RecordKey,
        store::{MemoryStore, RecordStore},
    },
    swarm::{NetworkBehaviour, Swarm, SwarmEvent},
};
use libp2p_swarm_test::SwarmExt;
use mcc_records::{
    Limits, Stats, ValidatingStore, did::SignedDocument, did::default_document,
    did::did_from_public, did::signing_bytes, did_key, mcc_key, select_best,
};

/// How long A waits for B's answer to a PUT that B refuses.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(NetworkBehaviour)]
struct Node {
    kad: kad::Behaviour<ValidatingStore<MemoryStore>>,
}

fn node() -> Swarm<Node> {
    Swarm::new_ephemeral_tokio(|identity| {
        let peer = identity.public().to_peer_id();
        let store = ValidatingStore::new(MemoryStore::new(peer), Limits::default());
        let mut config = kad::Config::new(kad::PROTOCOL_NAME);
        // libp2p-kad 0.49 resets the stream of a refused PUT without waking the substream task,
        // so the putter only sees the failure when its substream times out (10 s by default).
        config.set_substreams_timeout(REFUSAL_TIMEOUT);
        let mut kad = kad::Behaviour::with_config(peer, store, config);
        kad.set_mode(Some(Mode::Server));
        Node { kad }
    })
}

/// A and B, connected, with B in A's routing table.
async fn pair() -> (Swarm<Node>, Swarm<Node>) {
    let mut a = node();
    let mut b = node();
    let (b_addr, _) = b.listen().with_memory_addr_external().await;
    a.listen().with_memory_addr_external().await;
    a.connect(&mut b).await;
    let b_id = *b.local_peer_id();
    a.behaviour_mut().kad.add_address(&b_id, b_addr);
    (a, b)
}

/// Polls both swarms until `pick` returns something for one of A's events.
async fn drive_until<T>(
    a: &mut Swarm<Node>,
    b: &mut Swarm<Node>,
    mut pick: impl FnMut(SwarmEvent<NodeEvent>) -> Option<T>,
) -> T {
    let run = async {
        loop {
            tokio::select! {
                event = a.select_next_some() => {
                    if let Some(found) = pick(event) {
                        return found;
                    }
                }
                _ = b.select_next_some() => {}
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(30), run).await {
        Ok(found) => found,
        Err(_) => panic!("the awaited event did not come within 30 s"),
    }
}

async fn put_result(
    a: &mut Swarm<Node>,
    b: &mut Swarm<Node>,
    query: QueryId,
) -> Result<PutRecordOk, PutRecordError> {
    drive_until(a, b, |event| match event {
        SwarmEvent::Behaviour(NodeEvent::Kad(kad::Event::OutboundQueryProgressed {
            id,
            result: QueryResult::PutRecord(result),
            ..
        })) if id == query => Some(result),
        _ => None,
    })
    .await
}

/// Puts through A's `put_record` (validated by A's own store first, then sent to B).
async fn put(
    a: &mut Swarm<Node>,
    b: &mut Swarm<Node>,
    record: Record,
) -> Result<PutRecordOk, PutRecordError> {
    let query = match a.behaviour_mut().kad.put_record(record, Quorum::One) {
        Ok(query) => query,
        Err(e) => panic!("A's own store refused the record: {e}"),
    };
    put_result(a, b, query).await
}

/// Sends a record straight to B, bypassing A's store (as a misbehaving peer would).
async fn put_to_b(
    a: &mut Swarm<Node>,
    b: &mut Swarm<Node>,
    record: Record,
) -> Result<PutRecordOk, PutRecordError> {
    let b_id = *b.local_peer_id();
    let query = a
        .behaviour_mut()
        .kad
        .put_record_to(record, std::iter::once(b_id), Quorum::One);
    put_result(a, b, query).await
}

fn stored_at(swarm: &mut Swarm<Node>, key: &RecordKey) -> Option<Vec<u8>> {
    swarm
        .behaviour_mut()
        .kad
        .store_mut()
        .get(key)
        .map(|r| r.value.clone())
}

fn stats(swarm: &mut Swarm<Node>) -> Stats {
    swarm.behaviour_mut().kad.store_mut().stats()
}

fn did_record(kp: &ed25519::Keypair, seq: u64) -> Record {
    let did = did_from_public(&kp.public());
    let mut document = default_document(&did);
    document["service"] = serde_json::json!([{
        "id": format!("{did}#mcc"),
        "type": "MccNode",
        "serviceEndpoint": format!("v{seq}")
    }]);
    let signed = match SignedDocument::sign(kp, document, seq) {
        Ok(signed) => signed,
        Err(e) => panic!("signing failed: {e}"),
    };
    Record::new(did_key(&did), signed.to_bytes())
}

/// `victim`'s DID document signed by `forger`.
fn forged_record(victim: &ed25519::Keypair, forger: &ed25519::Keypair, seq: u64) -> Record {
    let did = did_from_public(&victim.public());
    let document = default_document(&did);
    let message = signing_bytes(&document, seq);
    let forged = SignedDocument {
        document,
        seq,
        signature: format!("z{}", bs58::encode(forger.sign(&message)).into_string()),
    };
    Record::new(did_key(&did), forged.to_bytes())
}

fn assert_refused_by(result: Result<PutRecordOk, PutRecordError>, peer: PeerId) {
    match result {
        Err(PutRecordError::QuorumFailed { success, .. }) => {
            assert!(
                !success.contains(&peer),
                "B is reported to have stored the record"
            );
        }
        other => panic!("expected QuorumFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn valid_did_document_is_stored_and_updated_at_peer() {
    let (mut a, mut b) = pair().await;
    let controller = ed25519::Keypair::generate();

    let v1 = did_record(&controller, 1);
    put(&mut a, &mut b, v1.clone()).await.unwrap();
    assert_eq!(stored_at(&mut b, &v1.key), Some(v1.value.clone()));

    let v2 = did_record(&controller, 2);
    put(&mut a, &mut b, v2.clone()).await.unwrap();
    assert_eq!(stored_at(&mut b, &v2.key), Some(v2.value.clone()));

    assert_eq!(
        stats(&mut b),
        Stats {
            accepted: 2,
            ..Stats::default()
        }
    );
}

#[tokio::test]
async fn forged_update_is_refused() {
    let (mut a, mut b) = pair().await;
    let b_id = *b.local_peer_id();
    let controller = ed25519::Keypair::generate();
    let attacker = ed25519::Keypair::generate();

    let v1 = did_record(&controller, 1);
    put(&mut a, &mut b, v1.clone()).await.unwrap();

    let forged = forged_record(&controller, &attacker, 2);
    // A's own store refuses it...
    assert!(
        a.behaviour_mut()
            .kad
            .put_record(forged.clone(), Quorum::One)
            .is_err()
    );
    // ...and so does B when A sends it anyway.
    assert_refused_by(put_to_b(&mut a, &mut b, forged).await, b_id);
    assert_eq!(stored_at(&mut b, &v1.key), Some(v1.value.clone()));
    assert_eq!(stats(&mut b).refused_invalid, 1);

    // A valid document of the attacker's own DID stored under the controller's key.
    let mut misplaced = did_record(&attacker, 3);
    misplaced.key = v1.key.clone();
    assert_refused_by(put_to_b(&mut a, &mut b, misplaced).await, b_id);
    assert_eq!(stored_at(&mut b, &v1.key), Some(v1.value));
    assert_eq!(stats(&mut b).refused_invalid, 2);
}

#[tokio::test]
async fn replayed_lower_seq_is_refused_and_republish_accepted() {
    let (mut a, mut b) = pair().await;
    let b_id = *b.local_peer_id();
    let controller = ed25519::Keypair::generate();

    let v1 = did_record(&controller, 1);
    let v2 = did_record(&controller, 2);
    put(&mut a, &mut b, v2.clone()).await.unwrap();

    assert_refused_by(put_to_b(&mut a, &mut b, v1).await, b_id);
    assert_eq!(stored_at(&mut b, &v2.key), Some(v2.value.clone()));
    assert_eq!(stats(&mut b).refused_stale, 1);

    // Re-putting the identical current version (a republish) is fine.
    let ok = put_to_b(&mut a, &mut b, v2.clone()).await.unwrap();
    assert_eq!(ok.key, v2.key);
    assert_eq!(stored_at(&mut b, &v2.key), Some(v2.value));
    assert_eq!(stats(&mut b).accepted, 2);
}

#[tokio::test]
async fn unknown_namespace_is_refused() {
    let (mut a, mut b) = pair().await;
    let b_id = *b.local_peer_id();
    let record = Record::new(RecordKey::new(&"/ipns/something"), b"value".to_vec());

    assert!(
        a.behaviour_mut()
            .kad
            .put_record(record.clone(), Quorum::One)
            .is_err()
    );
    assert_refused_by(put_to_b(&mut a, &mut b, record.clone()).await, b_id);
    assert_eq!(stored_at(&mut b, &record.key), None);
    assert_eq!(
        stats(&mut b),
        Stats {
            refused_invalid: 1,
            ..Stats::default()
        }
    );
}

#[tokio::test]
async fn mcc_record_round_trip() {
    let (mut a, mut b) = pair().await;
    let b_id = *b.local_peer_id();
    let key = mcc_key("greeting");
    let record = Record::new(key.clone(), b"hello".to_vec());

    let ok = put(&mut a, &mut b, record).await.unwrap();
    assert_eq!(ok.key, key);
    assert_eq!(stored_at(&mut b, &key), Some(b"hello".to_vec()));

    // A forgets its own copy and reads the record back from B.
    a.behaviour_mut().kad.remove_record(&key);
    assert_eq!(stored_at(&mut a, &key), None);
    let query = a.behaviour_mut().kad.get_record(key.clone());
    let found = drive_until(&mut a, &mut b, |event| match event {
        SwarmEvent::Behaviour(NodeEvent::Kad(kad::Event::OutboundQueryProgressed {
            id,
            result: QueryResult::GetRecord(Ok(GetRecordOk::FoundRecord(found))),
            ..
        })) if id == query => Some(found),
        _ => None,
    })
    .await;
    assert_eq!(found.peer, Some(b_id));
    assert_eq!(found.record.key, key);
    assert_eq!(found.record.value, b"hello");
    let values = [found.record.value.as_slice()];
    assert_eq!(
        select_best(key.as_ref(), &values, Limits::default().max_value_size),
        Some(0)
    );
}
