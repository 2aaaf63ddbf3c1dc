//! NAT traversal through the real binary, in the NAT lab of `tests/common/natlab.rs`: hosts
//! behind home routers (network namespaces with iptables NAT) and a relay host on the public
//! segment between them. Without root, `ip` or `iptables` the tests print a "skipping" line
//! and pass, unless `MCC_REQUIRE_NETNS=1` (CI).

mod common;

use anyhow::{Context, Result, ensure};
use common::natlab::{Host, Lab, Nat, PORT, Transport};
use common::{Daemon, wait_until};
use libp2p::multiaddr::Protocol;

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
