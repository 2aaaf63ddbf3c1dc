//! Peer exchange between swarms on the in-memory transport of libp2p-swarm-test.

use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::swarm::{Swarm, SwarmEvent};
use libp2p::{Multiaddr, PeerId};
use libp2p_swarm_test::SwarmExt;
use mcc_pex::{Behaviour, Config, Event, PeerRecord};
use tokio::sync::mpsc;

fn new_swarm(config: Config) -> Swarm<Behaviour> {
    Swarm::new_ephemeral_tokio(|_| Behaviour::new(config))
}

fn addr(i: u16) -> Multiaddr {
    format!("/ip4/127.0.0.1/tcp/{i}").parse().unwrap()
}

/// Runs `swarm` in the background, forwarding what it receives.
fn run(mut swarm: Swarm<Behaviour>) -> mpsc::UnboundedReceiver<(Instant, PeerId, Vec<PeerRecord>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(Event::Received { peer, peers }) =
                swarm.select_next_some().await
                && tx.send((Instant::now(), peer, peers)).is_err()
            {
                return;
            }
        }
    });
    rx
}

/// Runs `hub` in the background; each peer id sent on the returned channel is shared then.
fn serve_hub(mut hub: Swarm<Behaviour>) -> mpsc::UnboundedSender<PeerId> {
    let (tx, mut later) = mpsc::unbounded_channel::<PeerId>();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hub.select_next_some() => {}
                Some(p) = later.recv() => hub.behaviour_mut().add_peer(p, vec![addr(99)]),
            }
        }
    });
    tx
}

async fn next(
    rx: &mut mpsc::UnboundedReceiver<(Instant, PeerId, Vec<PeerRecord>)>,
) -> (Instant, PeerId, Vec<PeerRecord>) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a message within 10 s")
        .expect("the swarm task runs")
}

#[tokio::test]
async fn each_remote_learns_the_others_but_never_itself() {
    let mut hub = new_swarm(Config::new());
    let mut b = new_swarm(Config::new());
    let mut c = new_swarm(Config::new());
    hub.listen().with_memory_addr_external().await;
    b.connect(&mut hub).await;
    c.connect(&mut hub).await;
    let (b_id, c_id, hub_id) = (*b.local_peer_id(), *c.local_peer_id(), *hub.local_peer_id());
    hub.behaviour_mut().add_peer(b_id, vec![addr(1)]);
    hub.behaviour_mut().add_peer(c_id, vec![addr(2)]);
    let mut b_rx = run(b);
    let mut c_rx = run(c);
    tokio::spawn(async move {
        loop {
            hub.select_next_some().await;
        }
    });
    let (_, from, peers) = next(&mut b_rx).await;
    assert_eq!(from, hub_id);
    assert_eq!(
        peers,
        vec![PeerRecord {
            peer_id: c_id,
            addrs: vec![addr(2)]
        }]
    );
    let (_, _, peers) = next(&mut c_rx).await;
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].peer_id, b_id);
}

#[tokio::test]
async fn messages_are_capped_and_rate_limited_and_new_peers_follow() {
    let config = Config::new()
        .with_max_peers_per_message(2)
        .with_min_interval(Duration::from_millis(300));
    let mut hub = new_swarm(config);
    let mut b = new_swarm(Config::new());
    hub.listen().with_memory_addr_external().await;
    b.connect(&mut hub).await;
    for i in 0..5 {
        hub.behaviour_mut()
            .add_peer(PeerId::random(), vec![addr(i)]);
    }
    let mut rx = run(b);
    let tx = serve_hub(hub);
    let mut got = Vec::new();
    let mut times = Vec::new();
    while got.len() < 5 {
        let (t, _, peers) = next(&mut rx).await;
        assert!(peers.len() <= 2, "{} peers in one message", peers.len());
        got.extend(peers.into_iter().map(|p| p.peer_id));
        times.push(t);
    }
    assert_eq!(times.len(), 3);
    for w in times.windows(2) {
        assert!(w[1].duration_since(w[0]) >= Duration::from_millis(250));
    }
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 5, "every peer once");
    // A peer shared later is sent too, once.
    let newcomer = PeerId::random();
    tx.send(newcomer).unwrap();
    let (_, _, peers) = next(&mut rx).await;
    assert_eq!(
        peers.iter().map(|p| p.peer_id).collect::<Vec<_>>(),
        vec![newcomer]
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(800), rx.recv())
            .await
            .is_err(),
        "nothing is sent twice"
    );
}

#[tokio::test]
async fn a_remote_is_told_at_most_max_peers_per_remote() {
    let config = Config::new()
        .with_max_peers_per_message(4)
        .with_max_peers_per_remote(6)
        .with_min_interval(Duration::from_millis(50));
    let mut hub = new_swarm(config);
    let mut b = new_swarm(Config::new());
    hub.listen().with_memory_addr_external().await;
    b.connect(&mut hub).await;
    for i in 0..10 {
        hub.behaviour_mut()
            .add_peer(PeerId::random(), vec![addr(i)]);
    }
    let mut rx = run(b);
    let tx = serve_hub(hub);
    let mut got = Vec::new();
    while got.len() < 6 {
        let (_, _, peers) = next(&mut rx).await;
        got.extend(peers.into_iter().map(|p| p.peer_id));
    }
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 6, "six different peers");
    // Neither the rest of the ten nor a peer shared later: the remote had its six.
    tx.send(PeerId::random()).unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(800), rx.recv())
            .await
            .is_err(),
        "nothing beyond max_peers_per_remote"
    );
}
