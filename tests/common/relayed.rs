//! Nodes nobody can dial, in-process on loopback: a node with no listen address plays the
//! node behind a NAT, and reaches others only through a relay server.
//!
//! * [`relay`] starts a relay server, [`hidden`] makes the config of a node that listens nowhere
//!   and reserves on a relay, [`circuit_addr`] waits for its reservation.
//! * [`Relayed::start`] sets up the usual scene: a relay, and two hidden nodes A and B whose
//!   only connection to each other goes through it; [`Relayed::assert_relayed`] checks that.
//! * [`echo_service`], [`Relayed::listener_to_a`] and [`echo_through`] push bytes through a
//!   tunnel from B to A's echo service; [`bytes`] makes them.
//!
//! Use it with `mod common { pub mod inproc; pub mod relayed; }`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use mcc::node::Config;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::inproc::{TestNode, base_config, eventually, is_connected, spawn_node};

/// Which node of the scene a config is for (see [`Relayed::start`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Relay,
    A,
    B,
}

/// A relay server on 127.0.0.1, started from `config` (its relay server is turned on).
pub async fn relay_from(mut config: Config) -> Result<(TestNode, Multiaddr)> {
    config.nat.relay_server = true;
    let relay = spawn_node(0, config).await?;
    let addr = relay.tcp_addr().await?;
    Ok((relay, addr))
}

/// A relay server on 127.0.0.1 with the default limits.
pub async fn relay() -> Result<(TestNode, Multiaddr)> {
    relay_from(base_config("relay")?).await
}

/// A node that listens nowhere (nobody can dial it) and reserves on `relay`.
pub fn hidden(label: &str, relay: &Multiaddr) -> Result<Config> {
    let mut config = base_config(label)?;
    config.listen = Vec::new();
    config.nat.relays = vec![relay.clone()];
    Ok(config)
}

/// The circuit address `node` got from its relay, once the reservation is accepted.
pub async fn circuit_addr(node: &TestNode) -> Result<Multiaddr> {
    eventually(15, "the relay accepts the reservation", || async {
        Ok(node.info().await?.relays.iter().any(|r| r.accepted))
    })
    .await?;
    let info = node.info().await?;
    let r = info
        .relays
        .iter()
        .find(|r| r.accepted)
        .context("no accepted reservation")?;
    Ok(r.addr.clone().with(Protocol::P2p(node.peer_id())))
}

/// Whether `node`'s connections to `peer` all go through a relay (`None`: not connected).
pub async fn relayed_to(node: &TestNode, peer: &PeerId) -> Result<Option<bool>> {
    Ok(node
        .peers()
        .await?
        .iter()
        .find(|p| &p.peer_id == peer)
        .map(|p| p.relayed))
}

/// Makes `node` connect to `peer` at `addr`. Its DHT lookups or rendezvous may be dialling
/// the peer already (then a dial of ours is refused as a duplicate): a failed dial counts only
/// if no connection shows up within 10 s.
pub async fn dial_unless_connected(node: &TestNode, addr: Multiaddr, peer: PeerId) -> Result<()> {
    if is_connected(node, &peer).await? {
        return Ok(());
    }
    match node.dial(addr).await {
        Ok(dialled) => {
            ensure!(dialled == peer, "dialled {dialled}, not {peer}");
            Ok(())
        }
        Err(e) => eventually(10, "the connection dialled meanwhile is up", || async {
            is_connected(node, &peer).await
        })
        .await
        .with_context(|| format!("dial: {e}")),
    }
}

/// A relay and two nodes, A and B, that listen nowhere and hold a reservation on it; B dialled
/// A's circuit address, so A and B are connected through the relay only.
pub struct Relayed {
    pub relay: TestNode,
    pub a: TestNode,
    pub b: TestNode,
    /// A's circuit address (with `/p2p/<A>`).
    pub a_addr: Multiaddr,
    /// The relay's TCP address (with `/p2p/<relay>`).
    pub relay_addr: Multiaddr,
}

impl Relayed {
    /// Sets the scene; `tweak(role, &mut config)` adjusts each node's config before it starts
    /// (the relay server is on whatever it does; A and B listen nowhere).
    pub async fn start(mut tweak: impl FnMut(Role, &mut Config)) -> Result<Self> {
        let mut config = base_config("relay")?;
        tweak(Role::Relay, &mut config);
        let (relay, relay_addr) = relay_from(config).await?;
        let mut config = hidden("hiddena", &relay_addr)?;
        tweak(Role::A, &mut config);
        config.listen = Vec::new();
        let a = spawn_node(1, config).await?;
        let mut config = hidden("hiddenb", &relay_addr)?;
        tweak(Role::B, &mut config);
        config.listen = Vec::new();
        let b = spawn_node(2, config).await?;
        let a_addr = circuit_addr(&a).await?;
        circuit_addr(&b).await?;
        dial_unless_connected(&b, a_addr.clone(), a.peer_id()).await?;
        let scene = Relayed {
            relay,
            a,
            b,
            a_addr,
            relay_addr,
        };
        eventually(10, "A and B see their relayed connection", || async {
            Ok(relayed_to(&scene.a, &scene.b.peer_id()).await?.is_some()
                && relayed_to(&scene.b, &scene.a.peer_id()).await?.is_some())
        })
        .await?;
        scene.assert_relayed().await?;
        Ok(scene)
    }

    /// A and B are connected, every connection between them goes through the relay, and the
    /// relay carries at least one circuit.
    pub async fn assert_relayed(&self) -> Result<()> {
        let (a, b) = (self.a.peer_id(), self.b.peer_id());
        ensure!(
            relayed_to(&self.a, &b).await? == Some(true),
            "A's connection to B is not relayed (or gone): {:?}",
            self.a.peers().await?.iter().find(|p| p.peer_id == b)
        );
        ensure!(
            relayed_to(&self.b, &a).await? == Some(true),
            "B's connection to A is not relayed (or gone): {:?}",
            self.b.peers().await?.iter().find(|p| p.peer_id == a)
        );
        let server = self
            .relay
            .info()
            .await?
            .relay_server
            .context("the relay server is off")?;
        ensure!(
            server.circuits >= 1,
            "the relay carries no circuit: {server:?}"
        );
        Ok(())
    }

    /// A listener on B forwarding to A's `echo` service (pinned to A); returns its port.
    pub async fn listener_to_a(&self) -> Result<u16> {
        let port = free_port().await?;
        self.b
            .services()
            .add_listener(
                "echo",
                &format!("tcp://127.0.0.1:{port}"),
                Some(&self.a.peer_id().to_string()),
            )
            .await?;
        Ok(port)
    }
}

/// `n` pseudo-random bytes (the same for the same `seed`).
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; n];
    rand::rngs::StdRng::seed_from_u64(seed).fill(&mut data[..]);
    data
}

/// A local TCP service that echoes every connection; returns its address.
pub async fn echo_service() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Ok(addr)
}

/// A free port on 127.0.0.1 (bound, then released for the listener to take).
pub async fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port())
}

/// How an echo through a tunnel ended.
#[derive(Debug)]
pub enum Echo {
    /// Every byte came back, in order.
    Intact,
    /// The stream ended, failed or differed after this many bytes came back.
    Cut(usize, String),
    /// Neither within the time allowed.
    Stuck(usize),
}

/// Writes `data` into `tcp` while reading the echo back, for at most `secs` seconds.
pub async fn echo_through(tcp: TcpStream, data: Arc<Vec<u8>>, secs: u64) -> Echo {
    let (mut r, mut w) = tcp.into_split();
    let sent = Arc::clone(&data);
    let writer = tokio::spawn(async move {
        for chunk in sent.chunks(64 * 1024) {
            w.write_all(chunk).await?;
        }
        w.flush().await?;
        // Keep the write half open: closing it may end the tunnel before the echo is back.
        tokio::time::sleep(Duration::from_secs(secs)).await;
        anyhow::Ok(())
    });
    let mut back = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let read = tokio::time::timeout(Duration::from_secs(secs), async {
        while back < data.len() {
            match r.read(&mut buf).await {
                Ok(0) => return Echo::Cut(back, "end of stream".into()),
                Ok(n) => {
                    if data.get(back..back + n) != Some(&buf[..n]) {
                        return Echo::Cut(back, "the echo differs".into());
                    }
                    back += n;
                }
                Err(e) => return Echo::Cut(back, e.to_string()),
            }
        }
        Echo::Intact
    })
    .await;
    writer.abort();
    read.unwrap_or(Echo::Stuck(back))
}
