//! Bitswap between swarms on the in-memory transport of libp2p-swarm-test.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use cid::multihash::Multihash;
use futures::StreamExt;
use libp2p::PeerId;
use libp2p::swarm::{Swarm, SwarmEvent};
use libp2p_swarm_test::SwarmExt;
use mcc_bitswap::codec::{Prefix, ReadError, SHA2_256};
use mcc_bitswap::{
    Answer, Behaviour, BlockSource, Config, Event, Handle, StreamError, WantError, WantType,
};
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

fn cid(version: u64, codec: u64, data: &[u8]) -> Cid {
    Prefix {
        version,
        codec,
        hash: SHA2_256,
        digest_len: 32,
    }
    .cid_of(data)
    .unwrap()
}

/// Blocks by multihash; `lie` serves other bytes than the ones stored under a hash.
#[derive(Default)]
struct Memory {
    blocks: HashMap<Multihash<64>, Bytes>,
    lie: bool,
}

impl Memory {
    fn with(blocks: &[(&Cid, &[u8])]) -> Self {
        Self {
            blocks: blocks
                .iter()
                .map(|(c, d)| (*c.hash(), Bytes::copy_from_slice(d)))
                .collect(),
            lie: false,
        }
    }
}

impl BlockSource for Memory {
    fn has(&self, hash: &Multihash<64>) -> bool {
        self.blocks.contains_key(hash)
    }
    fn get(&self, hash: &Multihash<64>) -> Option<Bytes> {
        let data = self.blocks.get(hash)?.clone();
        if self.lie {
            let mut bad = data.to_vec();
            bad.push(0);
            return Some(Bytes::from(bad));
        }
        Some(data)
    }
}

struct Running {
    handle: Handle,
    id: PeerId,
    events: mpsc::UnboundedReceiver<Event>,
}

fn run(mut swarm: Swarm<Behaviour>) -> Running {
    let handle = swarm.behaviour().handle();
    let id = *swarm.local_peer_id();
    let (tx, events) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(e) = swarm.select_next_some().await
                && tx.send(e).is_err()
            {
                return;
            }
        }
    });
    Running { handle, id, events }
}

/// A client and a server, connected: (client, server).
async fn pair(client: Config, server: Config) -> (Running, Running) {
    let mut s = Swarm::new_ephemeral_tokio(|_| Behaviour::new(server));
    s.listen().with_memory_addr_external().await;
    let mut c = Swarm::new_ephemeral_tokio(|_| Behaviour::new(client));
    c.connect(&mut s).await;
    (run(c), run(s))
}

fn serving(memory: Memory) -> Config {
    Config::new().with_block_source(Some(Arc::new(memory)))
}

#[tokio::test]
async fn want_have_is_answered_have_or_dont_have() {
    let a = cid(1, 0x55, b"a");
    let b = cid(1, 0x55, b"b");
    let (client, server) = pair(Config::new(), serving(Memory::with(&[(&a, b"a")]))).await;
    let h = &client.handle;
    assert_eq!(h.want(server.id, a, WantType::Have).await, Ok(Answer::Have));
    assert_eq!(
        h.want(server.id, b, WantType::Have).await,
        Ok(Answer::DontHave)
    );
    assert_eq!(
        h.want(server.id, b, WantType::Block).await,
        Ok(Answer::DontHave)
    );
    assert_eq!(h.who_has(&[server.id], a).await, vec![server.id]);
    assert!(h.who_has(&[server.id], b).await.is_empty());
}

#[tokio::test]
async fn blocks_are_delivered_and_found_by_multihash() {
    let data = vec![7u8; 1024 * 1024];
    let raw = cid(1, 0x55, &data);
    let node = b"\x0a\x02\x08\x01".to_vec();
    let pb_v1 = cid(1, 0x70, &node);
    let pb_v0 = cid(0, 0x70, &node);
    let others: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 64 * 1024]).collect();
    let other_cids: Vec<Cid> = others.iter().map(|d| cid(1, 0x55, d)).collect();
    let mut stored: Vec<(&Cid, &[u8])> = vec![(&raw, &data), (&pb_v1, &node)];
    stored.extend(
        other_cids
            .iter()
            .zip(&others)
            .map(|(c, d)| (c, d.as_slice())),
    );
    let (client, server) = pair(Config::new(), serving(Memory::with(&stored))).await;
    let h = &client.handle;
    assert_eq!(
        h.want(server.id, raw, WantType::Block).await,
        Ok(Answer::Block(Bytes::from(data.clone())))
    );
    // Stored under its CIDv1, wanted as CIDv0.
    assert_eq!(
        h.want(server.id, pb_v0, WantType::Block).await,
        Ok(Answer::Block(Bytes::from(node)))
    );
    // Many wants at once, all answered.
    let many = futures::future::join_all(
        other_cids
            .iter()
            .map(|c| h.want(server.id, *c, WantType::Block)),
    );
    for (answer, data) in timeout(WAIT, many).await.unwrap().into_iter().zip(&others) {
        assert_eq!(answer, Ok(Answer::Block(Bytes::from(data.clone()))));
    }
    assert_eq!(server.handle.served().0, 22);
}

#[tokio::test]
async fn a_server_without_a_source_or_permission_answers_dont_have() {
    let a = cid(1, 0x55, b"a");
    let (client, server) = pair(Config::new(), Config::new()).await;
    assert_eq!(
        client.handle.want(server.id, a, WantType::Block).await,
        Ok(Answer::DontHave)
    );
    let refusing = serving(Memory::with(&[(&a, b"a")])).with_authorizer(Some(Arc::new(|_| false)));
    let (client, server) = pair(Config::new(), refusing).await;
    assert_eq!(
        client.handle.want(server.id, a, WantType::Have).await,
        Ok(Answer::DontHave)
    );
}

#[tokio::test]
async fn a_wrong_block_is_reported_and_fails_the_want() {
    let a = cid(1, 0x55, b"a");
    let mut memory = Memory::with(&[(&a, b"a")]);
    memory.lie = true;
    let (mut client, server) = pair(Config::new(), serving(memory)).await;
    let answer = client.handle.want(server.id, a, WantType::Block).await;
    assert_eq!(answer, Err(WantError::WrongBlock(server.id)));
    let event = timeout(WAIT, client.events.recv()).await.unwrap().unwrap();
    assert!(
        matches!(event, Event::UnwantedBlock { peer, cid: Some(c) } if peer == server.id && c != a),
        "{event:?}"
    );
}

#[tokio::test]
async fn an_oversized_frame_drops_the_stream() {
    let data = vec![1u8; 4096];
    let a = cid(1, 0x55, &data);
    let client = Config::new()
        .with_max_message_size(1024)
        .with_want_timeout(Duration::from_secs(2));
    let (mut client, server) = pair(client, serving(Memory::with(&[(&a, &data)]))).await;
    let answer = client.handle.want(server.id, a, WantType::Block).await;
    assert_eq!(answer, Err(WantError::Timeout));
    let event = timeout(WAIT, client.events.recv()).await.unwrap().unwrap();
    assert!(
        matches!(
            event,
            Event::StreamDropped { peer, error: StreamError::Read(ReadError::TooLarge { .. }) }
                if peer == server.id
        ),
        "{event:?}"
    );
}

#[tokio::test]
async fn wants_beyond_the_per_peer_cap_fail_at_once() {
    let a = cid(1, 0x55, b"a");
    let b = cid(1, 0x55, b"b");
    let client = Config::new().with_max_outbound_wants(1);
    let memory = Memory::with(&[(&a, b"a"), (&b, b"b")]);
    let (client, server) = pair(client, serving(memory)).await;
    let h = &client.handle;
    let (first, second) = futures::join!(
        h.want(server.id, a, WantType::Block),
        h.want(server.id, b, WantType::Block)
    );
    assert_eq!(first, Ok(Answer::Block(Bytes::from_static(b"a"))));
    assert_eq!(second, Err(WantError::TooManyWants { max: 1 }));
    // The slot is free again.
    assert!(matches!(
        h.want(server.id, b, WantType::Block).await,
        Ok(Answer::Block(_))
    ));
}

#[tokio::test]
async fn wants_to_an_unconnected_peer_or_identity_cids_fail() {
    let (client, _server) = pair(Config::new(), Config::new()).await;
    let stranger = PeerId::random();
    let a = cid(1, 0x55, b"a");
    assert_eq!(
        client.handle.want(stranger, a, WantType::Have).await,
        Err(WantError::NotConnected(stranger))
    );
    let identity = Cid::new_v1(0x55, Multihash::<64>::wrap(0, b"inline").unwrap());
    assert_eq!(
        client
            .handle
            .want(client.id, identity, WantType::Block)
            .await,
        Err(WantError::Identity)
    );
}
