//! mDNS discovery between two `mcc` processes, each in its own network namespace joined by a
//! veth pair. mDNS multicasts on every non-loopback interface, so these tests never run a node
//! in the host's network namespace: everything happens inside namespaces this file creates and
//! deletes again (`tests/common/netns.rs`). Without root (or without the capability to create
//! namespaces) the tests print a "skipping" line and pass; set `MCC_REQUIRE_NETNS=1` to make
//! that a failure instead.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use common::netns::{self, Netns};
use common::{Daemon, wait_until};

/// The veth end's name inside each namespace (never visible on the host).
const IFACE: &str = "veth0";
/// Port each node listens on (TCP and QUIC), on its namespace's veth address.
const P2P_PORT: u16 = 9376;

/// Two network namespaces joined by a veth pair (10.231.0.1/24 and 10.231.0.2/24), with one
/// `mcc` node per namespace. Dropping it kills the nodes and deletes the namespaces.
struct Lan {
    nodes: Vec<Daemon>,
    ns: [Netns; 2],
    tmp: tempfile::TempDir,
}

impl Lan {
    const IPS: [&str; 2] = ["10.231.0.1", "10.231.0.2"];

    /// Sets up the namespaces, or returns `None` (after saying why on stderr) when this machine
    /// cannot create them.
    fn create() -> Result<Option<Self>> {
        const WHAT: &str = "mDNS test";
        if !netns::usable(WHAT, &[])? {
            return Ok(None);
        }
        let stem = netns::unique_stem("t");
        let ns = match Netns::create(&format!("{stem}a"))
            .and_then(|a| Ok([a, Netns::create(&format!("{stem}b"))?]))
        {
            Ok(ns) => ns,
            Err(e) => {
                netns::skip(WHAT, &format!("{e:#}"))?;
                return Ok(None);
            }
        };
        let [a, b] = [ns[0].name(), ns[1].name()];
        // Created directly inside the namespaces, so no interface ever appears on the host.
        netns::ip(&[
            "-n", a, "link", "add", IFACE, "type", "veth", "peer", "name", IFACE, "netns", b,
        ])?;
        for (ns, ip) in ns.iter().zip(Self::IPS) {
            let ns = ns.name();
            netns::ip(&["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", IFACE])?;
            netns::ip(&["-n", ns, "link", "set", IFACE, "up"])?;
        }
        Ok(Some(Self {
            nodes: Vec::new(),
            ns,
            tmp: tempfile::tempdir()?,
        }))
    }

    /// Both node logs, for failure messages.
    fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, d)| format!("--- node {i} ({}) log ---\n{}", self.ns[i].name(), d.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Starts both nodes, listening on their veth addresses, with `extra` flags; returns their
    /// peer ids.
    async fn start_both(&mut self, extra: &[&str]) -> Result<[String; 2]> {
        for (i, ip) in Self::IPS.iter().enumerate() {
            let mut args = common::base_args_listening(&format!("{ip}:{P2P_PORT}"));
            args.extend(["--rendezvous".to_string(), "off".to_string()]);
            args.extend(extra.iter().map(|s| s.to_string()));
            let dir = self.tmp.path().join(format!("node{i}"));
            let node = Daemon::spawn_in_netns(self.ns[i].name(), &dir, args).await?;
            self.nodes.push(node);
        }
        Ok([
            self.nodes[0].peer_id().await?,
            self.nodes[1].peer_id().await?,
        ])
    }

    /// Peer ids node `i` lists as connected.
    async fn peer_ids(&self, i: usize) -> Result<Vec<String>> {
        Ok(self.nodes[i]
            .peers()
            .await?
            .iter()
            .map(|p| p.peer_id.to_string())
            .collect())
    }
}

/// With the default `--mdns auto` and a non-loopback listen address, two nodes on the same
/// link find and connect to each other without any `--boot`.
#[tokio::test(flavor = "multi_thread")]
async fn mdns_auto_discovers_peer_on_the_lan() -> Result<()> {
    let Some(mut lan) = Lan::create()? else {
        return Ok(());
    };
    let ids = lan.start_both(&[]).await?;
    ensure!(ids[0] != ids[1], "both nodes have the same peer id");
    for (node, ip) in lan.nodes.iter().zip(Lan::IPS) {
        let info = node.api.node().await?;
        ensure!(
            info.mdns,
            "auto should turn mDNS on when listening on {ip}: {info:?}"
        );
    }

    let found = wait_until(20, "both nodes listing each other", || async {
        Ok(lan.peer_ids(0).await?.contains(&ids[1]) && lan.peer_ids(1).await?.contains(&ids[0]))
    })
    .await;
    ensure!(
        found.is_ok(),
        "mDNS discovery failed: {found:?}\n{}",
        lan.logs()
    );
    Ok(())
}

/// With `--mdns off` the same two nodes never find each other.
#[tokio::test(flavor = "multi_thread")]
async fn mdns_off_does_not_discover() -> Result<()> {
    let Some(mut lan) = Lan::create()? else {
        return Ok(());
    };
    let ids = lan.start_both(&["--mdns", "off"]).await?;
    for node in &lan.nodes {
        let info = node.api.node().await?;
        ensure!(!info.mdns, "--mdns off not reported: {info:?}");
    }

    // mDNS normally finds a peer well under a second; watch for 5 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        for (i, other) in [(0, &ids[1]), (1, &ids[0])] {
            let peers = lan.peer_ids(i).await?;
            ensure!(
                !peers.contains(other),
                "node {i} found its neighbour with mDNS off: {peers:?}\n{}",
                lan.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}
