//! Optimistic negotiation: a swarm set to multistream-select `V1Lazy` opens streams on
//! protocols the peer listed (identify) without waiting for the confirmation, and still gets
//! a typed refusal for the others.

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::core::Transport;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::swarm::{NetworkBehaviour, Swarm};
use libp2p::{StreamProtocol, identify, identity, plaintext, yamux};
use libp2p_swarm_test::SwarmExt;
use mcc_streams::{Config, OpenError};

const ECHO: StreamProtocol = StreamProtocol::new("/test/echo/1.0.0");
const OTHER: StreamProtocol = StreamProtocol::new("/test/other/1.0.0");

#[derive(NetworkBehaviour)]
struct Node {
    identify: identify::Behaviour,
    streams: mcc_streams::Behaviour,
}

/// A swarm like `new_ephemeral_tokio`, negotiating outbound streams with `V1Lazy`.
fn lazy_swarm() -> Swarm<Node> {
    let key = identity::Keypair::generate_ed25519();
    let transport = MemoryTransport::default()
        .upgrade(Version::V1)
        .authenticate(plaintext::Config::new(&key))
        .multiplex(yamux::Config::default())
        .timeout(Duration::from_secs(20))
        .boxed();
    let behaviour = Node {
        identify: identify::Behaviour::new(identify::Config::new("/test/1".into(), key.public())),
        streams: mcc_streams::Behaviour::new(Config::new()),
    };
    let peer = key.public().to_peer_id();
    let config = libp2p::swarm::Config::with_tokio_executor()
        .with_substream_upgrade_protocol_override(Version::V1Lazy)
        .with_idle_connection_timeout(Duration::from_secs(60));
    Swarm::new(transport, behaviour, peer, config)
}

#[tokio::test]
async fn listed_protocols_open_optimistically_and_unlisted_ones_are_still_refused() {
    let mut client = lazy_swarm();
    let mut server = lazy_swarm();
    let mut server_control = server.behaviour().streams.control();
    let mut incoming = server_control.accept(ECHO).unwrap();
    server.listen_on("/memory/0".parse().unwrap()).unwrap();
    let addr = server
        .wait(|e| match e {
            libp2p::swarm::SwarmEvent::NewListenAddr { address, .. } => Some(address),
            _ => None,
        })
        .await;
    let server_id = *server.local_peer_id();
    let mut control = client.behaviour().streams.control();
    tokio::spawn(server.loop_on_next());
    client.dial_and_wait(addr).await;
    // Identify tells the client's connection which protocols the server speaks.
    client
        .wait(|e| match e {
            libp2p::swarm::SwarmEvent::Behaviour(NodeEvent::Identify(
                identify::Event::Received { .. },
            )) => Some(()),
            _ => None,
        })
        .await;
    tokio::spawn(client.loop_on_next());
    tokio::spawn(async move {
        while let Some((_, mut stream)) = incoming.next().await {
            let mut buf = [0u8; 5];
            if stream.read_exact(&mut buf).await.is_ok() {
                let _ = stream.write_all(&buf).await;
                let _ = stream.close().await;
            }
        }
    });

    let mut stream = control.open_stream(server_id, ECHO).await.unwrap();
    stream.write_all(b"hello").await.unwrap();
    let mut back = [0u8; 5];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"hello");

    let error = control.open_stream(server_id, OTHER).await.unwrap_err();
    assert!(
        matches!(&error, OpenError::UnsupportedProtocol(p) if *p == OTHER),
        "{error:?}"
    );

    let stats = control.stats();
    let echo = stats.iter().find(|s| s.protocol == ECHO.as_ref()).unwrap();
    assert_eq!((echo.opened, echo.optimistic), (1, 1));
    let other = stats.iter().find(|s| s.protocol == OTHER.as_ref()).unwrap();
    assert_eq!((other.open_failed, other.optimistic), (1, 0));
}
