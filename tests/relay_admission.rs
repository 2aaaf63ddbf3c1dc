//! Admission over relays, in-process on loopback: under `--trust-ca`, nodes nobody can dial
//! reach each other through an admitted relay and are admitted as over a direct connection;
//! the relay serves no peer without a certificate from the CA (see `tests/common/relayed.rs`
//! for the scene, `tests/relay_features.rs` for the other features over a relay).

mod common {
    pub mod inproc;
    pub mod relayed;
}

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::inproc::{TestNode, eventually, spawn_node};
use common::relayed::{Relayed, Role, echo_service, hidden};
use futures::StreamExt;
use libp2p::Multiaddr;
use libp2p::identity::ed25519;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use mcc::node::Config;
use mcc_admission::{Certificate, CertificateFields, Permissions, now_unix};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CA and certificates from it, for a closed network in one process.
struct Ca {
    key: ed25519::Keypair,
    cert: Certificate,
}

impl Ca {
    fn new(name: &str) -> Result<Self> {
        let key = ed25519::Keypair::generate();
        let now = now_unix();
        let cert = Certificate::new_ca(&key, name, now - 60, now + 3600)?;
        Ok(Ca { key, cert })
    }

    /// Makes `config` a closed-network node: identity from `seed`, a certificate from this CA
    /// with every permission, this CA trusted.
    fn admit(&self, seed: u64, config: &mut Config) -> Result<()> {
        let peer = mcc::identity::from_seed(seed).public().to_peer_id();
        let label = config
            .label
            .clone()
            .unwrap_or_else(|| format!("node{seed}"));
        let now = now_unix();
        let fields = CertificateFields::new(peer, label, Permissions::all(), now - 60, now + 3600);
        config.seed = Some(seed);
        config.admission.certificate = Some(Certificate::sign(&self.key, fields)?);
        config.admission.trusted_ca = Some(self.cert.clone());
        Ok(())
    }
}

/// Whether `node` admitted `peer`, with a certificate labelled `label`.
async fn admitted(node: &TestNode, peer: &TestNode, label: &str) -> Result<bool> {
    Ok(node.peers().await?.iter().any(|p| {
        p.peer_id == peer.peer_id()
            && p.admitted
            && p.certificate.as_ref().is_some_and(|c| c.label == label)
    }))
}

/// A closed network: the relay, A and B all hold certificates from `ca` and trust it; returns
/// once A and B are connected through the relay and admitted each other.
async fn closed_scene(ca: &Ca) -> Result<Relayed> {
    let mut failed = None;
    let s = Relayed::start(|role, config| {
        let seed = match role {
            Role::Relay => 100,
            Role::A => 101,
            Role::B => 102,
        };
        if let Err(e) = ca.admit(seed, config) {
            failed = Some(e);
        }
    })
    .await?;
    if let Some(e) = failed {
        return Err(e);
    }
    eventually(15, "A and B admit each other", || async {
        Ok(admitted(&s.a, &s.b, "hiddenb").await? && admitted(&s.b, &s.a, "hiddena").await?)
    })
    .await?;
    Ok(s)
}

/// Under `--trust-ca`, A and B (certificates from the CA) reach each other through an admitted
/// relay and admit each other, each with the other's certificate; RPC and a tunnel work.
#[tokio::test(flavor = "multi_thread")]
async fn relayed_peers_of_a_closed_network_admit_each_other() -> Result<()> {
    let ca = Ca::new("relay-ca")?;
    let s = closed_scene(&ca).await?;
    s.assert_relayed().await?;
    assert!(admitted(&s.a, &s.relay, "relay").await?);
    assert!(admitted(&s.b, &s.relay, "relay").await?);
    for (from, to) in [(&s.b, &s.a), (&s.a, &s.b)] {
        let params = json!({ "closed": from.index });
        assert_eq!(
            from.call(to.peer_id(), "echo", params.clone()).await?,
            params
        );
    }
    let echo = echo_service().await?;
    s.a.services().add("echo", &format!("tcp://{echo}")).await?;
    let mut tunnel =
        s.b.services()
            .open_tunnel("echo", Some(s.a.peer_id()))
            .await?;
    tunnel.write_all(b"admitted").await?;
    let mut back = [0u8; 8];
    tokio::time::timeout(Duration::from_secs(10), tunnel.read_exact(&mut back))
        .await
        .context("no echo within 10 s")??;
    assert_eq!(&back, b"admitted");
    s.assert_relayed().await
}

/// The relay of a closed network serves only admitted peers: nodes without a certificate from
/// the CA (self-signed, another CA's) get no reservation on it and reach neither A's RPC nor
/// its services through it, and neither does a bare libp2p client that asks at once.
#[tokio::test(flavor = "multi_thread")]
async fn the_relay_of_a_closed_network_serves_no_outsider() -> Result<()> {
    let ca = Ca::new("relay-ca")?;
    let s = closed_scene(&ca).await?;
    let echo = echo_service().await?;
    s.a.services().add("echo", &format!("tcp://{echo}")).await?;

    let other_ca = Ca::new("other-ca")?;
    let mut foreign = hidden("foreign", &s.relay_addr)?;
    other_ca.admit(103, &mut foreign)?;
    let outsiders = [
        spawn_node(3, hidden("selfsigned", &s.relay_addr)?).await?,
        spawn_node(4, foreign).await?,
    ];
    // Meanwhile: the bare client (5 s).
    let bare = bare_reservation(&s.relay_addr).await?;
    ensure!(
        bare.is_none(),
        "a bare libp2p client got a reservation: {bare:?}"
    );
    for o in &outsiders {
        let relays = o.info().await?.relays;
        ensure!(
            relays.iter().all(|r| !r.accepted),
            "the relay gave outsider {} a reservation: {relays:?}",
            o.label()
        );
        let dialled = tokio::time::timeout(Duration::from_secs(10), o.dial(s.a_addr.clone())).await;
        let call = o.call(s.a.peer_id(), "echo", json!("let me in")).await;
        ensure!(call.is_err(), "outsider {} called A: {call:?}", o.label());
        let tunnel = o.services().open_tunnel("echo", Some(s.a.peer_id())).await;
        ensure!(
            tunnel.is_err(),
            "outsider {} opened a tunnel to A (dial: {dialled:?})",
            o.label()
        );
        ensure!(
            !s.a.peers()
                .await?
                .iter()
                .any(|p| p.peer_id == o.peer_id() && p.admitted),
            "A admitted outsider {}",
            o.label()
        );
    }
    // Refused peers' connections closing do not count as reservations gone.
    let server = s.relay.info().await?.relay_server.context("relay off")?;
    assert_eq!(server.reservations, 2, "{server:?}");
    s.assert_relayed().await
}

/// What the bare node of [`bare_reservation`] runs: a relay client, and raw streams to take
/// the admission request and never answer it.
#[derive(libp2p::swarm::NetworkBehaviour)]
struct Bare {
    relay_client: libp2p::relay::client::Behaviour,
    stream: mcc_streams::Behaviour,
}

/// A bare libp2p node asks `relay` for a reservation at once, while it holds the relay's
/// certificate request unanswered (admission is pending, not refused, for up to 10 s);
/// returns the circuit address it got within 5 s, if any. This shows the relay hop itself
/// waits for admission, whatever the client's timing.
async fn bare_reservation(relay: &Multiaddr) -> Result<Option<Multiaddr>> {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )?
        .with_relay_client(libp2p::noise::Config::new, libp2p::yamux::Config::default)?
        .with_behaviour(|_, relay_client| Bare {
            relay_client,
            stream: mcc_streams::Behaviour::default(),
        })?
        .build();
    let mut requests = swarm
        .behaviour()
        .stream
        .control()
        .accept(mcc_admission::PROTOCOL_NAME)?;
    let stall = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(stream) = requests.next().await {
            held.push(stream);
        }
    });
    swarm.listen_on(relay.clone().with(Protocol::P2pCircuit))?;
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => {
                stall.abort();
                return Ok(None);
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    stall.abort();
                    return Ok(Some(address));
                }
                SwarmEvent::ListenerClosed { reason, .. } => {
                    stall.abort();
                    bail!("the relay closed the bare node's listener early: {reason:?}");
                }
                _ => {}
            },
        }
    }
}
