//! Swarm tests of the stream behaviour over the in-memory transport.

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::swarm::Swarm;
use libp2p::{PeerId, StreamProtocol};
use libp2p_swarm_test::SwarmExt;
use mcc_streams::{Behaviour, Config, Control, OpenError, ProtocolStats};

const ECHO: StreamProtocol = StreamProtocol::new("/test/echo/1.0.0");

/// Two connected swarms running in the background; their controls and peer ids.
async fn pair(server_config: Config) -> (Control, Control, PeerId, PeerId) {
    let mut client = Swarm::new_ephemeral_tokio(|_| Behaviour::new(Config::new()));
    let mut server = Swarm::new_ephemeral_tokio(|_| Behaviour::new(server_config));
    server.listen().with_memory_addr_external().await;
    client.connect(&mut server).await;
    let (c, s) = (client.behaviour().control(), server.behaviour().control());
    let (cid, sid) = (*client.local_peer_id(), *server.local_peer_id());
    tokio::spawn(client.loop_on_next());
    tokio::spawn(server.loop_on_next());
    (c, s, cid, sid)
}

fn stats_of(control: &Control, protocol: &StreamProtocol) -> ProtocolStats {
    control
        .stats()
        .into_iter()
        .find(|s| s.protocol == protocol.as_ref())
        .unwrap_or_default()
}

/// Polls `check` every 10 ms for at most 10 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_slow_acceptor_loses_no_stream_up_to_the_bound_and_counts_refusals_beyond() {
    let config = Config::new()
        .with_max_queued(4)
        .with_max_held_per_connection(4);
    let (mut client, mut server, _, server_id) = pair(config).await;
    let mut incoming = server.accept(ECHO).unwrap();

    // 8 streams: 4 in the queue, 4 held by the connection; nobody accepts yet.
    let mut opened = Vec::new();
    for i in 0..8u8 {
        let mut stream = client.open_stream(server_id, ECHO).await.unwrap();
        stream.write_all(&[i]).await.unwrap();
        stream.flush().await.unwrap();
        opened.push(stream);
    }
    eventually("8 queued", || stats_of(&server, &ECHO).queued == 8).await;
    assert_eq!(stats_of(&server, &ECHO).refused, 0);

    // Two more find no room: dropped and counted.
    for _ in 0..2 {
        let _ = client.open_stream(server_id, ECHO).await.unwrap();
    }
    eventually("2 refused", || stats_of(&server, &ECHO).refused == 2).await;

    // The acceptor catches up: all 8 first streams arrive, in order, with their bytes.
    for i in 0..8u8 {
        let (peer, mut stream) = tokio::time::timeout(Duration::from_secs(5), incoming.next())
            .await
            .unwrap()
            .unwrap();
        assert_ne!(peer, server_id);
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        assert_eq!(byte[0], i);
    }
    let stats = stats_of(&server, &ECHO);
    assert_eq!(
        (stats.inbound, stats.accepted, stats.queued, stats.refused),
        (10, 8, 0, 2)
    );
    assert_eq!(stats_of(&client, &ECHO).opened, 10);
}

#[tokio::test]
async fn opening_a_protocol_the_peer_does_not_accept_is_a_typed_error() {
    let (mut client, _server, _, server_id) = pair(Config::new()).await;
    let error = client.open_stream(server_id, ECHO).await.unwrap_err();
    assert!(
        matches!(&error, OpenError::UnsupportedProtocol(p) if *p == ECHO),
        "{error:?}"
    );
    assert_eq!(stats_of(&client, &ECHO).open_failed, 1);
}

#[tokio::test]
async fn opening_to_a_peer_without_addresses_is_not_connected() {
    let (mut client, _server, _, _) = pair(Config::new()).await;
    let stranger = PeerId::random();
    let error = tokio::time::timeout(Duration::from_secs(5), client.open_stream(stranger, ECHO))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&error, OpenError::NotConnected { peer, .. } if *peer == stranger),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_dropped_acceptor_unregisters_its_protocol() {
    let (mut client, mut server, client_id, server_id) = pair(Config::new()).await;
    let incoming = server.accept(ECHO).unwrap();
    assert!(server.accept(ECHO).is_err(), "accepted twice");
    drop(incoming);
    let error = client.open_stream(server_id, ECHO).await.unwrap_err();
    assert!(
        matches!(error, OpenError::UnsupportedProtocol(_)),
        "{error:?}"
    );

    let mut incoming = server.accept(ECHO).unwrap();
    let mut stream = client.open_stream(server_id, ECHO).await.unwrap();
    stream.write_all(b"hi").await.unwrap();
    stream.close().await.unwrap();
    let (peer, mut inbound) = incoming.next().await.unwrap();
    assert_eq!(peer, client_id);
    let mut text = Vec::new();
    inbound.read_to_end(&mut text).await.unwrap();
    assert_eq!(text, b"hi");
}

#[tokio::test]
async fn many_concurrent_opens_share_one_connection() {
    let (client, mut server, _, server_id) = pair(Config::new()).await;
    let mut incoming = server.accept(ECHO).unwrap();
    let acceptor = tokio::spawn(async move {
        let mut n = 0;
        while let Some((_, mut stream)) = incoming.next().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4];
                if stream.read_exact(&mut buf).await.is_ok() {
                    let _ = stream.write_all(&buf).await;
                    let _ = stream.close().await;
                }
            });
            n += 1;
            if n == 200 {
                break;
            }
        }
    });
    let opens = (0..200u32).map(|i| {
        let mut control = client.clone();
        async move {
            let mut stream = control.open_stream(server_id, ECHO).await?;
            stream
                .write_all(&i.to_be_bytes())
                .await
                .map_err(OpenError::Io)?;
            let mut back = [0u8; 4];
            stream.read_exact(&mut back).await.map_err(OpenError::Io)?;
            assert_eq!(u32::from_be_bytes(back), i);
            Ok::<_, OpenError>(())
        }
    });
    let results = tokio::time::timeout(Duration::from_secs(20), futures::future::join_all(opens))
        .await
        .unwrap();
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    acceptor.await.unwrap();
    assert_eq!(stats_of(&server, &ECHO).refused, 0);
}
