//! Many in-process `mcc::Node`s joining through bootnodes, for the benches that measure a
//! whole network (`mesh`, `scale`), and the small summaries they print.

use std::time::Duration;

use anyhow::{Context as _, Result};
use futures::future::join_all;
use libp2p::Multiaddr;
use mcc::node::{Config, Node, addr};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Nodes running in this process; they stop at [`Network::shutdown`].
pub struct Network {
    pub nodes: Vec<Node>,
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<()>,
}

impl Network {
    /// Starts `n` nodes: `boot` bootnodes one by one, each booting from the one before, then
    /// the others `batch` at a time, node `i` booting from bootnode `i % boot`. `config`
    /// gives node `i`'s configuration with its boot addresses.
    pub async fn start(
        n: usize,
        boot: usize,
        batch: usize,
        config: impl Fn(usize, Vec<Multiaddr>) -> Result<Config>,
    ) -> Result<Self> {
        let boot = boot.clamp(1, n.max(1));
        let (stop, stopped) = watch::channel(());
        let spawn = |config: Config| {
            let mut stopped = stopped.clone();
            async move {
                let shutdown = async move { while stopped.changed().await.is_ok() {} };
                Ok::<_, anyhow::Error>(Node::builder(config).spawn(shutdown).await?)
            }
        };
        let mut net = Network {
            nodes: Vec::with_capacity(n),
            tasks: Vec::with_capacity(n),
            stop,
        };
        let mut boots: Vec<Multiaddr> = Vec::new();
        for i in 0..boot.min(n) {
            let (node, task) =
                spawn(config(i, boots.last().cloned().into_iter().collect())?).await?;
            let tcp = node
                .info()
                .await?
                .listen_addrs
                .iter()
                .find_map(addr::host_port)
                .context("a bootnode has no TCP address")?;
            boots.push(addr::parse_dial(&tcp.to_string())?);
            net.nodes.push(node);
            net.tasks.push(task);
        }
        let indices: Vec<usize> = (boot..n).collect();
        for chunk in indices.chunks(batch.max(1)) {
            let configs = chunk
                .iter()
                .map(|&i| config(i, vec![boots[i % boot].clone()]))
                .collect::<Result<Vec<_>>>()?;
            for s in join_all(configs.into_iter().map(spawn)).await {
                let (node, task) = s?;
                net.nodes.push(node);
                net.tasks.push(task);
            }
        }
        Ok(net)
    }

    /// Stops every node, waiting at most `limit` for them.
    pub async fn shutdown(self, limit: Duration) {
        drop(self.nodes);
        drop(self.stop);
        let _ = tokio::time::timeout(limit, join_all(self.tasks)).await;
    }
}

/// (min, median, max) of `v` (not empty).
pub fn min_median_max(v: &[usize]) -> (usize, usize, usize) {
    let mut s = v.to_vec();
    s.sort_unstable();
    (s[0], s[s.len() / 2], s[s.len() - 1])
}

/// How a bench prints a target.
pub fn verdict(ok: bool) -> &'static str {
    if ok { "MET" } else { "MISSED" }
}

/// This process's resident memory in MB (0 where `/proc` cannot tell).
pub fn rss_mb() -> f64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0.0;
    };
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
