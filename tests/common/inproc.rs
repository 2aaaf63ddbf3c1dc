//! In-process test nodes: several [`mcc::Node`]s in the test's own tokio runtime, built with
//! [`mcc::Node::builder`] on 127.0.0.1 port 0, each with its own temporary data folder.
//!
//! This is the fast way to test what nodes do with each other (joining, RPC, records,
//! services): no binary, no HTTP API, a debugger can step through both ends. What only the
//! binary does (CLI flags, the config file, signals, `kill -9`) stays in the process tests of
//! `tests/common/mod.rs`.
//!
//! * [`spawn_nodes`] starts `n` nodes, [`spawn_joined`] starts `n` nodes that all join the first
//!   one (the bootnode), [`spawn_node`] starts one from a [`Config`].
//! * [`TestNode`] derefs to [`Node`], adds [`TestNode::tcp_addr`], [`TestNode::connect`] and
//!   [`TestNode::shutdown`]; dropping it stops the node.
//! * [`eventually`] polls a condition with a deadline.
//!
//! Use it from a test file with
//! `mod common { pub mod inproc; }` (which finds this file) or `#[path = "common/inproc.rs"]`.
#![allow(dead_code)]

use std::future::Future;
use std::ops::Deref;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use libp2p::{Multiaddr, PeerId};
use mcc::node::{Config, MdnsMode, Node, addr};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long [`TestNode::shutdown`] waits for the node's task to end.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// One in-process node, its data folder and its task. Stops the node when dropped.
pub struct TestNode {
    /// The node's handle (also reachable through `Deref`).
    pub node: Node,
    /// Its position in the [`spawn_nodes`] result.
    pub index: usize,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    /// Removed when the node is dropped (after its task was told to stop).
    dir: tempfile::TempDir,
}

impl Deref for TestNode {
    type Target = Node;

    fn deref(&self) -> &Node {
        &self.node
    }
}

impl TestNode {
    /// The node's data folder.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The node's first TCP listen address (port resolved), with its `/p2p/<id>`.
    pub async fn tcp_addr(&self) -> Result<Multiaddr> {
        let peer = self.node.peer_id();
        eventually(5, "the node listens on TCP", || async {
            Ok(self
                .node
                .info()
                .await?
                .listen_addrs
                .into_iter()
                .any(|a| addr::host_port(&a).is_some_and(|s| s.port() != 0)))
        })
        .await?;
        let found = self
            .node
            .info()
            .await?
            .listen_addrs
            .into_iter()
            .find(|a| addr::host_port(a).is_some_and(|s| s.port() != 0))
            .context("no TCP listen address")?;
        Ok(found.with_p2p(peer).unwrap_or_else(|a| a))
    }

    /// Dials `other` and waits until the connection is up on both sides.
    pub async fn connect(&self, other: &TestNode) -> Result<()> {
        let peer = self.node.dial(other.tcp_addr().await?).await?;
        anyhow::ensure!(
            peer == other.peer_id(),
            "dialed {peer}, not {}",
            other.peer_id()
        );
        let me = self.peer_id();
        eventually(10, "both sides see the connection", || async {
            Ok(is_connected(self, &other.peer_id()).await? && is_connected(other, &me).await?)
        })
        .await
    }

    /// Stops the node and waits (at most 10 s) for its task to end.
    pub async fn shutdown(mut self) -> Result<()> {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            tokio::time::timeout(SHUTDOWN_TIMEOUT, task)
                .await
                .context("the node did not stop in time")?
                .context("the node's task failed")?;
        }
        Ok(())
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        // The task sees its shutdown future resolve and ends on its own; the runtime drops
        // whatever is left when the test returns.
        let _ = self.stop.send(true);
    }
}

/// Whether `node` has a connection to `peer`.
pub async fn is_connected(node: &Node, peer: &PeerId) -> Result<bool> {
    Ok(node.peers().await?.iter().any(|p| &p.peer_id == peer))
}

/// The settings every test node starts from: listen on 127.0.0.1 port 0, no mDNS (tests must
/// not find each other on the LAN), rendezvous every second. [`spawn_node`] adds the data
/// folder.
pub fn base_config(label: &str) -> Result<Config> {
    Ok(Config {
        label: Some(label.to_owned()),
        listen: addr::parse_listen("127.0.0.1:0")?,
        mdns: MdnsMode::Off,
        rendezvous_interval: Duration::from_secs(1),
        ..Config::default()
    })
}

/// Starts one node from `config` (whose `data_dir` is replaced by a new temporary folder).
pub async fn spawn_node(index: usize, mut config: Config) -> Result<TestNode> {
    // `RUST_LOG=... cargo test -- --nocapture` shows what the nodes do.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let dir = tempfile::tempdir()?;
    config.data_dir = Some(dir.path().to_path_buf());
    let (stop, stopped) = watch::channel(false);
    let shutdown = async move {
        let mut stopped = stopped;
        // Also ends when the sender (the TestNode) is gone.
        let _ = stopped.wait_for(|s| *s).await;
    };
    let (node, task) = Node::builder(config)
        .spawn(shutdown)
        .await
        .with_context(|| format!("starting node {index}"))?;
    Ok(TestNode {
        node,
        index,
        stop,
        task: Some(task),
        dir,
    })
}

/// Starts `n` nodes, labelled `node0`, `node1`, ...; `config_fn(i, &mut config)` adjusts the
/// settings of node `i` (see [`base_config`] for where they start from).
pub async fn spawn_nodes(
    n: usize,
    mut config_fn: impl FnMut(usize, &mut Config),
) -> Result<Vec<TestNode>> {
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let mut config = base_config(&format!("node{i}"))?;
        config_fn(i, &mut config);
        nodes.push(spawn_node(i, config).await?);
    }
    Ok(nodes)
}

/// Starts `n` nodes where every node after the first has the first as its boot node, and waits
/// until each of them is connected to it.
pub async fn spawn_joined(
    n: usize,
    mut config_fn: impl FnMut(usize, &mut Config),
) -> Result<Vec<TestNode>> {
    anyhow::ensure!(n >= 1, "a network needs a bootnode");
    let mut nodes = spawn_nodes(1, &mut config_fn).await?;
    let boot = nodes[0].tcp_addr().await?;
    let boot_id = nodes[0].peer_id();
    for i in 1..n {
        let mut config = base_config(&format!("node{i}"))?;
        config.boot = vec![boot.clone()];
        config_fn(i, &mut config);
        let node = spawn_node(i, config).await?;
        eventually(10, "a node joins the bootnode", || async {
            is_connected(&node, &boot_id).await
        })
        .await?;
        nodes.push(node);
    }
    Ok(nodes)
}

/// Polls `check` every 100 ms until it returns `Ok(true)`, for at most `secs` seconds;
/// errors from `check` count as "not yet" (the last one is reported at the deadline).
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last_error = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= deadline {
            match last_error {
                Some(e) => bail!("timed out after {secs}s waiting until {what}: {e:#}"),
                None => bail!("timed out after {secs}s waiting until {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A node of a closed network (`--trust-ca`) with a certificate from the CA in `ca` (made with
/// `mcc::certs`) granting `permissions`, its files under `root/<label>`; returns the node and
/// its data folder. The node runs until the process ends.
pub async fn closed_node(
    root: &std::path::Path,
    ca: &std::path::Path,
    label: &str,
    permissions: &str,
) -> Result<(mcc::Node, tempfile::TempDir)> {
    let dir = root.join(label);
    std::fs::create_dir_all(&dir)?;
    mcc::certs::newcert(
        &dir.join("self.crt"),
        &dir.join("node.key"),
        &dir.join("node.req"),
        Some(label),
        30.0,
    )?;
    mcc::certs::ca_sign(
        &dir.join("node.req"),
        ca,
        Some(permissions.parse()?),
        30.0,
        None,
    )?;
    let data = tempfile::tempdir()?;
    let mut config = base_config(label)?;
    config.data_dir = Some(data.path().to_path_buf());
    config.admission = mcc::node::AdmissionConfig {
        certificate: Some(mcc::certs::load_certificate(&dir.join("node.crt"))?),
        trusted_ca: Some(mcc::certs::load_certificate(&ca.join("ca.crt"))?),
        ..Default::default()
    };
    let key = mcc::certs::load_private_key(&dir.join("node.key"))?;
    let (node, _task) = mcc::Node::builder(config)
        .keypair(key)
        .spawn(std::future::pending())
        .await?;
    Ok((node, data))
}
