//! NAT traversal through the real binary, in the NAT lab of `tests/common/natlab.rs`: hosts
//! behind home routers (network namespaces with iptables NAT) and a relay host on the public
//! segment between them. Without root, `ip` or `iptables` the tests print a "skipping" line
//! and pass, unless `MCC_REQUIRE_NETNS=1` (CI).
//!
//! The hole-punching tests repeat over `MCC_NAT_RUNS` fresh labs (default 5) and require all
//! but 5% of them (rounded down) to turn direct within 10 s; `benches/nat.rs` does 20.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::natlab::{Host, Lab, Nat, PORT, Transport};
use common::natnodes::Trio;
use common::{Daemon, wait_until};
use libp2p::multiaddr::Protocol;
use mcc::node::Reachability;

/// Bytes of the service forward each NAT test sends from hostA to hostB.
const FORWARD_BYTES: u64 = 100 << 20;
/// How long hostA may take to find hostB through the relay (rendezvous every second).
const DISCOVER: Duration = Duration::from_secs(30);
/// The bound from first (relayed) contact to a direct connection.
const TO_DIRECT: Duration = Duration::from_secs(10);

/// Labs per hole-punching test: `MCC_NAT_RUNS`, default 5.
fn runs() -> Result<usize> {
    match std::env::var("MCC_NAT_RUNS") {
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("MCC_NAT_RUNS must be a positive integer, not {v:?}")),
        Err(_) => Ok(5),
    }
}

/// The remote addresses (`ip`, `port`) under which `node` lists the peer `id`.
async fn seen_as(node: &Daemon, id: &str) -> Result<Vec<(std::net::IpAddr, u16)>> {
    let peers = node.peers().await?;
    let peer = peers
        .iter()
        .find(|p| p.peer_id.to_string() == id)
        .with_context(|| format!("{id} is not connected"))?;
    Ok(peer
        .addrs
        .iter()
        .filter_map(|a| {
            let mut ip = None;
            let mut port = None;
            for p in a.iter() {
                match p {
                    Protocol::Ip4(v) => ip = Some(v.into()),
                    Protocol::Tcp(n) | Protocol::Udp(n) => port = Some(n),
                    _ => {}
                }
            }
            Some((ip?, port?))
        })
        .collect())
}

/// The lab itself, with today's plain nodes: both hosts reach the relay host through their
/// routers, the relay sees each one coming from its router's WAN address (with the source
/// port kept by port-preserving NAT, a fresh one by symmetric NAT), and a host cannot dial the
/// other's private address.
#[tokio::test(flavor = "multi_thread")]
async fn lab_hosts_reach_the_public_segment_only_through_their_nat() -> Result<()> {
    for nat in [Nat::PortPreserving, Nat::Symmetric] {
        let Some(lab) = Lab::create(nat, "NAT lab test")? else {
            return Ok(());
        };
        let relay = lab.start(Host::Relay, Transport::Tcp, &[]).await?;
        let boot = lab.addr(Host::Relay, Transport::Tcp);
        let a = lab
            .start(Host::A, Transport::Tcp, &["--boot", &boot])
            .await?;
        let b = lab
            .start(Host::B, Transport::Tcp, &["--boot", &boot])
            .await?;
        let (a_id, b_id) = (a.peer_id().await?, b.peer_id().await?);

        let joined = wait_until(20, "the relay listing both hosts", || async {
            let ids: Vec<String> = relay
                .peers()
                .await?
                .iter()
                .map(|p| p.peer_id.to_string())
                .collect();
            Ok(ids.contains(&a_id) && ids.contains(&b_id))
        })
        .await;
        ensure!(
            joined.is_ok(),
            "{}: {joined:?}\n--- relay ---\n{}\n--- a ---\n{}\n{}",
            nat.name(),
            relay.log(),
            a.log(),
            lab.diagnostics()
        );

        for (host, id) in [(Host::A, &a_id), (Host::B, &b_id)] {
            let seen = seen_as(&relay, id).await?;
            let wan = lab.public_ip(host);
            let ports: Vec<u16> = seen
                .iter()
                .filter(|(ip, _)| *ip == wan)
                .map(|(_, port)| *port)
                .collect();
            // Nodes dial from their listen port; only port-preserving NAT keeps it.
            let translated_as_expected = match nat {
                Nat::PortPreserving => ports.contains(&PORT),
                _ => ports.iter().any(|p| *p != PORT),
            };
            ensure!(
                translated_as_expected,
                "{}: the relay should see {host:?} from {wan} (port {PORT} kept only by \
                 port-preserving NAT), saw {seen:?}",
                nat.name()
            );
        }

        // hostB's private address is not routed from hostA's LAN.
        let private_b = lab.addr(Host::B, Transport::Tcp);
        let dialed = a.api.dial(&private_b).await;
        ensure!(
            dialed.is_err(),
            "{}: hostA dialed hostB's private {private_b}: {dialed:?}",
            nat.name()
        );
    }
    Ok(())
}

/// Port-preserving NAT on both sides, one transport: over fresh labs, hostA (which knows only
/// the relay) finds hostB, the connection turns direct within 10 s in all but 5% of the runs,
/// echo works, and (in the first run) 100 MiB through a service forward arrive intact.
async fn punches_through_port_preserving_nat(transport: Transport) -> Result<()> {
    let runs = runs()?;
    let needed = runs - runs / 20;
    let mut times = Vec::new();
    let mut failed = Vec::new();
    for run in 0..runs {
        let what = format!("NAT hole-punching test over {}", transport.name());
        let Some(trio) = Trio::start(Nat::PortPreserving, transport, &what).await? else {
            return Ok(());
        };
        let direct = trio
            .first_contact_to_direct(DISCOVER, TO_DIRECT, Duration::from_millis(100))
            .await
            .with_context(|| format!("run {run}\n{}", trio.logs()))?;
        match direct {
            Some(t) => times.push(t),
            None => {
                eprintln!(
                    "run {run}: still relayed after {TO_DIRECT:?}\n{}",
                    trio.logs()
                );
                failed.push(run);
            }
        }
        trio.echo_a_to_b()
            .await
            .with_context(|| format!("run {run}: echo\n{}", trio.logs()))?;
        if run == 0 {
            let (local, _sink) = trio.forward_a_to_b().await?;
            let took = trio
                .send_through(local, FORWARD_BYTES)
                .await
                .with_context(|| format!("100 MiB forward\n{}", trio.logs()))?;
            eprintln!(
                "{}: 100 MiB forwarded hostA → hostB in {took:?}",
                transport.name()
            );
            if direct.is_some() {
                ensure!(
                    trio.a_sees_b().await? == Some(false),
                    "{}: hostA's connection to hostB went back to relayed\n{}",
                    transport.name(),
                    trio.logs()
                );
            }
        }
    }
    eprintln!(
        "{}: direct in {}/{runs} runs, first contact → direct {times:?}",
        transport.name(),
        times.len()
    );
    ensure!(
        times.len() >= needed,
        "{}: direct within {TO_DIRECT:?} in only {}/{runs} runs (need {needed}); relayed in runs \
         {failed:?}",
        transport.name(),
        times.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn port_preserving_nat_turns_direct_over_tcp() -> Result<()> {
    punches_through_port_preserving_nat(Transport::Tcp).await
}

#[tokio::test(flavor = "multi_thread")]
async fn port_preserving_nat_turns_direct_over_quic() -> Result<()> {
    punches_through_port_preserving_nat(Transport::Quic).await
}

/// Symmetric NAT (`--random-fully`) on both sides: hole punching cannot work, so hostA and
/// hostB stay relayed, and echo and a 100 MiB forward still work over the relay (mcc's
/// relay limits, not libp2p's 128 KiB per circuit).
#[tokio::test(flavor = "multi_thread")]
async fn symmetric_nat_stays_relayed_and_still_forwards() -> Result<()> {
    let what = "symmetric NAT test";
    let Some(trio) = Trio::start(Nat::Symmetric, Transport::Both, what).await? else {
        return Ok(());
    };
    // Give DCUtR the full 10 s (and a little) to prove it cannot punch.
    let direct = trio
        .first_contact_to_direct(
            DISCOVER,
            TO_DIRECT + Duration::from_secs(2),
            Duration::from_millis(200),
        )
        .await
        .with_context(|| trio.logs())?;
    if let Some(t) = direct {
        bail!(
            "hostA and hostB got a direct connection through symmetric NATs after {t:?}\n{}",
            trio.logs()
        );
    }
    trio.echo_a_to_b().await.with_context(|| trio.logs())?;
    let (local, _sink) = trio.forward_a_to_b().await?;
    let took = trio
        .send_through(local, FORWARD_BYTES)
        .await
        .with_context(|| format!("100 MiB forward over the relay\n{}", trio.logs()))?;
    eprintln!("symmetric NAT: 100 MiB forwarded over the relay in {took:?}");
    ensure!(
        trio.a_sees_b().await? == Some(true),
        "hostA's connection to hostB should still be relayed only\n{}",
        trio.logs()
    );
    let server = trio.relay.api.node().await?.relay_server;
    ensure!(
        server.as_ref().is_some_and(|s| s.circuits >= 1),
        "the relay should be relaying hostA ↔ hostB: {server:?}"
    );
    Ok(())
}

/// AutoNAT: the relay host (dialable by everyone) becomes `public` at its own address, the
/// hosts behind NAT `private` (first probe about 5 s after start, see README "NAT traversal").
#[tokio::test(flavor = "multi_thread")]
async fn reachability_relay_public_hosts_private() -> Result<()> {
    let what = "NAT reachability test";
    let Some(trio) = Trio::start(Nat::PortPreserving, Transport::Both, what).await? else {
        return Ok(());
    };
    let nodes = [
        ("relay", &trio.relay),
        ("hostA", &trio.a),
        ("hostB", &trio.b),
    ];
    let want = [
        Reachability::Public,
        Reachability::Private,
        Reachability::Private,
    ];
    let mut seen = Vec::new();
    let settled = wait_until(45, "relay public, hostA and hostB private", || async {
        let mut now = Vec::new();
        for (_, node) in nodes {
            now.push(node.api.node().await?.reachability);
        }
        Ok(now == want)
    })
    .await;
    if let Err(e) = settled {
        for (name, node) in nodes {
            seen.push(format!("{name}: {:?}", node.api.node().await?.reachability));
        }
        bail!("{e:#}; now {seen:?}\n{}", trio.logs());
    }
    let info = trio.relay.api.node().await?;
    let relay_ip = trio.lab.ip(Host::Relay);
    ensure!(
        info.public_addr
            .as_ref()
            .is_some_and(|a| a.iter().any(|p| p == Protocol::Ip4(relay_ip))),
        "the relay's public address should be at {relay_ip}: {:?}",
        info.public_addr
    );
    for (name, node) in &nodes[1..] {
        let info = node.api.node().await?;
        ensure!(
            info.relays.iter().any(|r| r.accepted),
            "{name} should hold a reservation on the relay: {:?}",
            info.relays
        );
    }
    Ok(())
}
