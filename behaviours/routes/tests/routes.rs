//! Routes between swarms on the in-memory transport of libp2p-swarm-test.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::PeerId;
use libp2p::swarm::{Swarm, SwarmEvent};
use libp2p_swarm_test::SwarmExt;
use mcc_routes::{Action, Behaviour, Config, Event, Handle};
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

fn new_swarm(config: Config) -> Swarm<Behaviour> {
    Swarm::new_ephemeral_tokio(|key| Behaviour::new(key.public().to_peer_id(), config))
}

/// A swarm running in the background: its handle, id and behaviour events.
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

/// `n` swarms all connected to the first one (the publisher in most tests).
async fn star(n: usize, config: impl Fn(usize) -> Config) -> Vec<Running> {
    let mut hub = new_swarm(config(0));
    hub.listen().with_memory_addr_external().await;
    let mut others = Vec::new();
    for i in 1..n {
        let mut s = new_swarm(config(i));
        s.connect(&mut hub).await;
        others.push(s);
    }
    let mut all = vec![run(hub)];
    all.extend(others.into_iter().map(run));
    all
}

async fn until_listeners(publisher: &mcc_routes::Publisher, n: usize) {
    timeout(WAIT, async {
        while publisher.listeners().len() < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("listeners in time");
}

#[tokio::test]
async fn a_subscription_made_after_connecting_links_to_the_publisher() {
    let nodes = star(2, |_| Config::new()).await;
    let mut sub = nodes[1].handle.subscribe("sensors/temp", None).unwrap();
    let publisher = nodes[0].handle.publisher("sensors/temp", None).unwrap();
    timeout(WAIT, publisher.wait_for_listener()).await.unwrap();
    assert_eq!(publisher.listeners(), vec![nodes[1].id]);
    let delivery = publisher.send(&b"21.5"[..]).await.unwrap();
    assert_eq!((delivery.seq, delivery.peers), (1, 1));
    let m = timeout(WAIT, sub.next()).await.unwrap().unwrap();
    assert_eq!(m.from, nodes[0].id);
    assert_eq!(
        (m.route.as_str(), m.seq, &m.payload[..]),
        ("sensors/temp", 1, &b"21.5"[..])
    );
}

#[tokio::test]
async fn an_interest_made_before_connecting_is_replayed_on_connect() {
    let mut hub = new_swarm(Config::new());
    let mut late = new_swarm(Config::new());
    let mut sub = late.behaviour().handle().subscribe("a/b", None).unwrap();
    hub.listen().with_memory_addr_external().await;
    late.connect(&mut hub).await;
    let mut hub = run(hub);
    let _late = run(late);
    let publisher = hub.handle.publisher("a/b", None).unwrap();
    timeout(WAIT, publisher.wait_for_listener()).await.unwrap();
    match timeout(WAIT, hub.events.recv()).await.unwrap() {
        Some(Event::InterestAdded { route, .. }) => assert_eq!(route, "a/b"),
        other => panic!("unexpected {other:?}"),
    }
    publisher.send(&b"x"[..]).await.unwrap();
    let m = timeout(WAIT, sub.next()).await.unwrap().unwrap();
    assert_eq!(&m.payload[..], b"x");
}

#[tokio::test]
async fn nothing_crosses_the_wire_when_nobody_listens() {
    let nodes = star(3, |_| Config::new()).await;
    let mut sub = nodes[1].handle.subscribe("wanted", None).unwrap();
    let wanted = nodes[0].handle.publisher("wanted", None).unwrap();
    let unwanted = nodes[0].handle.publisher("unwanted", None).unwrap();
    until_listeners(&wanted, 1).await;
    for _ in 0..50 {
        let d = unwanted.send(vec![0u8; 100]).await.unwrap();
        assert_eq!(d.peers, 0);
    }
    wanted.send(&b"last"[..]).await.unwrap();
    let m = timeout(WAIT, sub.next()).await.unwrap().unwrap();
    assert_eq!(&m.payload[..], b"last");
    assert_eq!(nodes[0].handle.stats().sent, 1);
    assert_eq!(nodes[1].handle.stats().received, 1);
    assert_eq!(nodes[2].handle.stats().received, 0);
}

#[tokio::test]
async fn three_subscribers_get_every_message_in_order() {
    // The subscription queues hold every message: this test is about order, not drops.
    let nodes = star(4, |_| Config::new().with_subscriber_queue(4096)).await;
    let mut subs: Vec<_> = nodes[1..]
        .iter()
        .map(|n| n.handle.subscribe("ordered", None).unwrap())
        .collect();
    let publisher = nodes[0].handle.publisher("ordered", None).unwrap();
    until_listeners(&publisher, 3).await;
    const N: u64 = 3000;
    for i in 1..=N {
        publisher.send(i.to_be_bytes().to_vec()).await.unwrap();
    }
    for sub in &mut subs {
        for i in 1..=N {
            let m = timeout(WAIT, sub.next()).await.unwrap().unwrap();
            assert_eq!(m.seq, i);
            assert_eq!(&m.payload[..], &i.to_be_bytes());
        }
        assert_eq!(sub.dropped(), 0);
    }
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_gets_counted_drops_and_stalls_nobody() {
    let nodes = star(3, |_| Config::new().with_subscriber_queue(16)).await;
    let slow = nodes[1].handle.subscribe("r", None).unwrap();
    let mut fast_same_node = nodes[1].handle.subscribe("r", None).unwrap();
    let mut fast_other_node = nodes[2].handle.subscribe("r", None).unwrap();
    let publisher = nodes[0].handle.publisher("r", None).unwrap();
    until_listeners(&publisher, 2).await;
    const N: u64 = 500;
    // Lockstep: each message is read by both fast subscribers before the next is sent, so
    // only the one that never reads can overflow.
    for i in 1..=N {
        publisher.send(vec![1u8; 100]).await.unwrap();
        let a = timeout(WAIT, fast_same_node.next()).await.unwrap().unwrap();
        let b = timeout(WAIT, fast_other_node.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((a.seq, b.seq), (i, i));
    }
    assert_eq!(slow.dropped(), N - 16);
    assert_eq!(fast_same_node.dropped(), 0);
    assert_eq!(nodes[1].handle.stats().dropped, N - 16);
    let info = nodes[1].handle.routes();
    assert_eq!(info[0].dropped, N - 16);
    assert_eq!(info[0].received, N);
}

#[tokio::test]
async fn dropping_the_last_subscription_withdraws_the_interest() {
    let nodes = star(2, |_| Config::new()).await;
    let publisher = nodes[0].handle.publisher("w", None).unwrap();
    let first = nodes[1].handle.subscribe("w", None).unwrap();
    let second = nodes[1].handle.subscribe("w", None).unwrap();
    until_listeners(&publisher, 1).await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(publisher.listeners().len(), 1);
    drop(second);
    timeout(WAIT, async {
        while !publisher.listeners().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(publisher.send(&b"x"[..]).await.unwrap().peers, 0);
}

#[tokio::test]
async fn leases_are_refreshed_while_the_subscription_lives() {
    let nodes = star(2, |_| Config::new().with_lease(Duration::from_secs(1))).await;
    let _sub = nodes[1].handle.subscribe("lease", None).unwrap();
    let publisher = nodes[0].handle.publisher("lease", None).unwrap();
    until_listeners(&publisher, 1).await;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            publisher.listeners(),
            vec![nodes[1].id],
            "refreshed in time"
        );
    }
}

#[tokio::test]
async fn type_tags_must_match_when_both_sides_set_one() {
    let nodes = star(2, |_| Config::new()).await;
    let _sub = nodes[1].handle.subscribe("t", Some("json")).unwrap();
    let json = nodes[0].handle.publisher("t", Some("json")).unwrap();
    let cbor = nodes[0].handle.publisher("t", Some("cbor")).unwrap();
    let untyped = nodes[0].handle.publisher("t", None).unwrap();
    until_listeners(&json, 1).await;
    assert!(cbor.listeners().is_empty());
    assert_eq!(untyped.listeners().len(), 1);
    assert!(nodes[1].handle.subscribe("t", Some("cbor")).is_err());
}

#[tokio::test]
async fn the_authorizer_refuses_interests_and_messages() {
    // Node 0 takes no interest from anyone; node 1 takes no message from anyone.
    let nodes = star(2, |i| {
        let refused = if i == 0 {
            Action::Subscribe
        } else {
            Action::Publish
        };
        Config::new().with_authorizer(Some(Arc::new(move |_: &PeerId, a: Action, _: &str| {
            a != refused
        })))
    })
    .await;
    let _sub = nodes[1].handle.subscribe("auth", None).unwrap();
    let mut sub0 = nodes[0].handle.subscribe("auth", None).unwrap();
    let refused = nodes[0].handle.publisher("auth", None).unwrap();
    let allowed = nodes[1].handle.publisher("auth", None).unwrap();
    until_listeners(&allowed, 1).await;
    assert!(refused.listeners().is_empty());
    allowed.send(&b"ok"[..]).await.unwrap();
    let m = timeout(WAIT, sub0.next()).await.unwrap().unwrap();
    assert_eq!(m.from, nodes[1].id);
}

#[tokio::test]
async fn oversized_messages_and_bad_names_are_refused() {
    let behaviour = Behaviour::new(PeerId::random(), Config::new().with_max_message_size(10));
    let handle = behaviour.handle();
    let publisher = handle.publisher("r", None).unwrap();
    assert!(publisher.send(vec![0u8; 11]).await.is_err());
    assert!(handle.subscribe("Bad Name", None).is_err());
    assert!(handle.publisher("a//b", None).is_err());
    assert!(handle.publisher("a", Some("Bad")).is_err());
}

#[tokio::test]
async fn a_peer_is_held_to_a_bounded_number_of_interests() {
    let nodes = star(2, |_| Config::new().with_peer_queue(4096)).await;
    let extra = 50;
    let subs: Vec<_> = (0..mcc_routes::MAX_INTERESTS_PER_PEER + extra)
        .map(|i| nodes[1].handle.subscribe(&format!("r{i}"), None).unwrap())
        .collect();
    // Wait until the publisher has taken in as many as it keeps, then a little more.
    timeout(WAIT, async {
        while nodes[0].handle.routes().len() < mcc_routes::MAX_INTERESTS_PER_PEER {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        nodes[0].handle.routes().len(),
        mcc_routes::MAX_INTERESTS_PER_PEER
    );
    drop(subs);
}
