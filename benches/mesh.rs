//! Connection counts of a network with the rendezvous key on: small networks become a full
//! mesh, large ones stay within `--max-peers` — and the DHT still answers everywhere.
//!
//! ```text
//! cargo bench --bench mesh                          # 10, 100 and 200 nodes, default targets
//! cargo bench --bench mesh -- --sizes 10,300        # other sizes
//! cargo bench --bench mesh -- --max-peers 16        # other targets (min-peers follows at most)
//! cargo test  --bench mesh -- --quick               # smoke: 10 and 30 nodes, --max-peers 8
//! ```
//!
//! Each size starts that many full nodes in this process (TCP on 127.0.0.1 only, no mDNS,
//! in-memory stores), all booting from node 0 and sharing one rendezvous key: without the
//! connection targets every node would dial every provider of that key (a full mesh). After
//! every node reached `min(min-peers, n - 1)` peers (bounded wait) and a settling time, it
//! samples every node's connections three times, counting *kept* connections (older than
//! [`KEPT_AFTER`]: a DHT query's dials and newcomers younger than that may still be trimmed)
//! and all of them; then puts records and reads each from random nodes.
//!
//! Targets, printed MET/MISSED: a network no larger than the discovery target
//! (`max(min-peers, max-peers / 2)`) is a full mesh; a larger one keeps every node at or
//! under `max-peers` kept connections and is not a full mesh; every DHT get succeeds.

mod common;

use common::network::{Network, min_median_max, rss_mb, verdict};

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures::future::join_all;
use libp2p::Multiaddr;
use mcc::node::{Config, MdnsMode, addr};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A connection older than this is kept (trimming leaves younger ones alone for 20 s and runs
/// every second; the rest is slack for a busy machine).
const KEPT_AFTER: Duration = Duration::from_secs(30);
/// Nodes started at once.
const START_BATCH: usize = 20;

struct Plan {
    quick: bool,
    sizes: Vec<usize>,
    min_peers: usize,
    max_peers: usize,
    settle: Duration,
    records: usize,
    gets: usize,
}

impl Plan {
    fn from_args() -> Result<Self> {
        let quick = common::quick_from_env() || std::env::args().any(|a| a == "--quick");
        let mut plan = if quick {
            Plan {
                quick,
                sizes: vec![10, 30],
                min_peers: 4,
                max_peers: 8,
                settle: Duration::from_secs(40),
                records: 3,
                gets: 10,
            }
        } else {
            Plan {
                quick,
                sizes: vec![10, 100, 200],
                min_peers: 8,
                max_peers: 64,
                settle: Duration::from_secs(45),
                records: 5,
                gets: 40,
            }
        };
        let args: Vec<String> = std::env::args().collect();
        let mut i = 1;
        while i < args.len() {
            let value = || args.get(i + 1).context("missing value");
            match args[i].as_str() {
                "--sizes" => {
                    plan.sizes = value()?
                        .split(',')
                        .map(|s| s.trim().parse::<usize>())
                        .collect::<Result<_, _>>()
                        .context("--sizes takes numbers like 10,200")?;
                    i += 1;
                }
                "--max-peers" => {
                    plan.max_peers = value()?.parse().context("--max-peers")?;
                    plan.min_peers = plan.min_peers.min(plan.max_peers);
                    i += 1;
                }
                "--settle" => {
                    plan.settle = Duration::from_secs(value()?.parse().context("--settle")?);
                    i += 1;
                }
                _ => {}
            }
            i += 1;
        }
        if plan.sizes.iter().any(|n| *n < 2) {
            bail!("every size must be at least 2");
        }
        Ok(plan)
    }

    fn discovery_target(&self) -> usize {
        (self.max_peers / 2).max(self.min_peers)
    }

    fn config(&self, index: usize, boot: Vec<Multiaddr>) -> Result<Config> {
        let mut c = Config {
            seed: Some(7_000_003u64.wrapping_add(index as u64)),
            label: Some(format!("mesh{index}")),
            listen: addr::parse_listen("/ip4/127.0.0.1/tcp/0")?,
            boot,
            rendezvous: Some("bench-mesh".into()),
            rendezvous_interval: Duration::from_secs(5),
            mdns: MdnsMode::Off,
            data_dir: None,
            ..Config::default()
        };
        c.mesh.min_peers = self.min_peers;
        c.mesh.max_peers = self.max_peers;
        Ok(c)
    }
}

impl Network {
    /// (all connections, kept connections) of every node.
    async fn counts(&self) -> Vec<(usize, usize)> {
        join_all(self.nodes.iter().map(|n| async move {
            match n.peers().await {
                Ok(p) => (
                    p.len(),
                    p.iter()
                        .filter(|p| p.connected_secs >= KEPT_AFTER.as_secs())
                        .count(),
                ),
                Err(_) => (0, 0),
            }
        }))
        .await
    }
}

async fn bench_size(plan: &Plan, n: usize, rng: &mut StdRng) -> Result<bool> {
    let t0 = Instant::now();
    let net = Network::start(n, 1, START_BATCH, |i, boot| plan.config(i, boot)).await?;
    let want = plan.min_peers.min(n - 1);
    let full = n <= plan.discovery_target() + 1;
    // Full mesh networks wait for everyone, others for min-peers everywhere (bounded).
    let wait_for = if full { n - 1 } else { want };
    let deadline = Instant::now() + Duration::from_secs(if plan.quick { 60 } else { 180 });
    loop {
        let c = net.counts().await;
        if c.iter().all(|(all, _)| *all >= wait_for) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let joined = t0.elapsed();
    // Kept connections are only counted once older than KEPT_AFTER.
    tokio::time::sleep(plan.settle.max(KEPT_AFTER + Duration::from_secs(5))).await;
    let mut samples = Vec::new();
    for _ in 0..3 {
        samples.push(net.counts().await);
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let all: Vec<usize> = samples.iter().flatten().map(|(a, _)| *a).collect();
    let kept: Vec<usize> = samples.iter().flatten().map(|(_, k)| *k).collect();
    let (amin, amed, amax) = min_median_max(&all);
    let (kmin, kmed, kmax) = min_median_max(&kept);
    let edges = samples
        .last()
        .map(|s| s.iter().map(|(a, _)| a).sum::<usize>() / 2)
        .unwrap_or(0);
    let full_edges = n * (n - 1) / 2;
    println!(
        "  {n:>4} nodes: joined in {:.1} s; connections min/median/max {amin}/{amed}/{amax} (kept {kmin}/{kmed}/{kmax}); {edges} of {full_edges} possible links ({:.0}%)",
        joined.as_secs_f64(),
        100.0 * edges as f64 / full_edges as f64
    );

    // DHT: records put from random nodes, each read from random other nodes.
    let mut ok = 0;
    let mut total = 0;
    let mut latencies = Vec::new();
    for r in 0..plan.records {
        let key = format!("/mcc/mesh-bench-{n}-{r}").into_bytes();
        let writer = rng.gen_range(0..n);
        let value = vec![r as u8; 64];
        let _ = net.nodes[writer]
            .put_record(key.clone(), value.clone(), None)
            .await;
        for _ in 0..plan.gets / plan.records.max(1) {
            let reader = rng.gen_range(0..n);
            let t = Instant::now();
            let got = net.nodes[reader].get_record(key.clone()).await;
            latencies.push(t.elapsed());
            total += 1;
            if got.is_ok_and(|g| g.value == value) {
                ok += 1;
            }
        }
    }
    latencies.sort();
    let p50 = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or_default();
    println!(
        "        DHT gets {ok}/{total}, p50 {:.1} ms; process RSS {:.0} MB ({:.1} MB per node)",
        p50.as_secs_f64() * 1e3,
        rss_mb(),
        rss_mb() / n as f64
    );

    let mut met = true;
    if full {
        let ok_full = amin >= n - 1;
        println!(
            "        target: {n} ≤ discovery target + 1 → full mesh (every node sees {}): {}",
            n - 1,
            verdict(ok_full)
        );
        met &= ok_full;
    } else {
        let ok_max = kmax <= plan.max_peers;
        let ok_min = amin >= want;
        let ok_not_full = edges < full_edges;
        println!(
            "        target: kept connections ≤ --max-peers {}: {}; every node ≥ min {want}: {}; not a full mesh: {}",
            plan.max_peers,
            verdict(ok_max),
            verdict(ok_min),
            verdict(ok_not_full)
        );
        met &= ok_max && ok_not_full && ok_min;
    }
    println!(
        "        target: every DHT get succeeds: {}",
        verdict(ok == total)
    );
    met &= ok == total;
    net.shutdown(Duration::from_secs(30)).await;
    Ok(met)
}

fn main() -> Result<()> {
    let plan = Plan::from_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(common::threads(common::cores())?)
        .enable_all()
        .build()?;
    println!(
        "mesh bench: sizes {:?}, --min-peers {} --max-peers {} (discovery target {}), rendezvous key on{}",
        plan.sizes,
        plan.min_peers,
        plan.max_peers,
        plan.discovery_target(),
        if plan.quick { ", quick" } else { "" }
    );
    rt.block_on(async {
        let mut rng = StdRng::seed_from_u64(42);
        let mut all_met = true;
        for &n in &plan.sizes {
            all_met &= bench_size(&plan, n, &mut rng).await?;
        }
        println!(
            "overall: {}",
            if all_met {
                "all targets MET"
            } else {
                "some target MISSED"
            }
        );
        Ok(())
    })
}
