//! A network of up to 1,000 nodes in this process (TCP on 127.0.0.1), joining through a few
//! bootnodes with the rendezvous key on: how long it takes to settle, how many connections
//! each node holds, whether the DHT and service lookups still answer everywhere, and what a
//! node costs (memory, traffic, new connections, DHT requests) as the network grows.
//!
//! ```text
//! cargo bench --bench scale                        # 100, 300 and 1,000 nodes
//! cargo bench --bench scale -- --sizes 50,500      # other sizes
//! cargo bench --bench scale -- --min-peers 6 --max-peers 16 --boot 5
//! cargo bench --bench scale -- --settle 90 --quiet 20   # shorter waits (seconds)
//! cargo bench --bench scale -- --idle 10           # the nodes' idle connection timeout (s)
//! cargo test  --bench scale -- --quick             # smoke: 30 nodes
//! ```
//!
//! Each size: `--boot` bootnodes start first, then the others in batches, node `i` booting
//! from bootnode `i % boot` only. "Settled": every node holds between `--min-peers` and
//! `2 × --max-peers` open connections (all of them: up to `--max-peers` kept ones, and those
//! a DHT query opened, which close once idle), sampled every two seconds. Then three samples of the connections, records put from random nodes and read
//! from random others (success, peers queried, latency), a service registered on a few nodes
//! and looked up from random others, the process RSS, and each node's traffic, new connections and DHT requests served
//! over a quiet minute (the steady cost of upkeep: pings, rendezvous lookups, trimming).
//!
//! Targets, printed MET/MISSED: settled within the deadline; at most `2 × --max-peers` open
//! connections on every node in every sample; every DHT get and every service lookup
//! succeeds; RSS per node ≤ 16 MB; and across sizes, the per-node connections, traffic, new
//! connections and DHT requests served of the largest network at most twice those of the
//! smallest (nothing O(n) per node).

mod common;

use common::network::{Network, min_median_max, rss_mb, verdict};

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures::future::join_all;
use libp2p::Multiaddr;
use mcc::node::{Config, MdnsMode, addr};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Nodes started at once.
const START_BATCH: usize = 50;
/// RSS per node the node aims at (issue #14: idle node ≤ 16 MB).
const RSS_PER_NODE_MB: f64 = 16.0;
/// Nodes that register the looked-up service.
const SERVICE_PROVIDERS: usize = 3;

struct Plan {
    quick: bool,
    sizes: Vec<usize>,
    boot: usize,
    min_peers: usize,
    max_peers: usize,
    records: usize,
    gets: usize,
    lookups: usize,
    /// The quiet window traffic is measured over.
    quiet: Duration,
    /// Overrides the wait for a settled network (seconds).
    settle: Option<Duration>,
    /// Overrides the nodes' idle connection timeout (seconds; default: the node's).
    idle: Option<Duration>,
}

impl Plan {
    fn from_args() -> Result<Self> {
        let quick = common::quick_from_env() || std::env::args().any(|a| a == "--quick");
        let mut plan = Plan {
            quick,
            sizes: if quick {
                vec![30]
            } else {
                vec![100, 300, 1000]
            },
            boot: 3,
            min_peers: 4,
            max_peers: 8,
            records: if quick { 3 } else { 5 },
            gets: if quick { 15 } else { 50 },
            lookups: if quick { 10 } else { 30 },
            quiet: Duration::from_secs(if quick { 6 } else { 30 }),
            settle: None,
            idle: None,
        };
        common::for_each_arg(|flag, value| {
            match flag {
                "--sizes" => {
                    plan.sizes = value()?
                        .split(',')
                        .map(|s| common::positive("--sizes", s.trim()))
                        .collect::<Result<_>>()?;
                }
                "--boot" => plan.boot = common::positive("--boot", &value()?)?,
                "--min-peers" => plan.min_peers = common::positive("--min-peers", &value()?)?,
                "--max-peers" => plan.max_peers = common::positive("--max-peers", &value()?)?,
                "--settle" => {
                    plan.settle = Some(Duration::from_secs(
                        common::positive("--settle", &value()?)? as u64,
                    ))
                }
                "--quiet" => {
                    plan.quiet = Duration::from_secs(common::positive("--quiet", &value()?)? as u64)
                }
                "--idle" => {
                    plan.idle = Some(Duration::from_secs(
                        common::positive("--idle", &value()?)? as u64
                    ))
                }
                _ => {}
            }
            Ok(())
        })?;
        if plan.min_peers > plan.max_peers {
            bail!("--min-peers must not exceed --max-peers");
        }
        if plan
            .sizes
            .iter()
            .any(|n| *n <= plan.max_peers + 1 || *n <= plan.boot)
        {
            bail!("every size must exceed --max-peers + 1 and --boot");
        }
        Ok(plan)
    }

    /// Open connections a node may hold: `--max-peers` kept ones and as many opened for
    /// DHT queries (they close once idle).
    fn bound(&self) -> usize {
        2 * self.max_peers
    }

    fn settle_deadline(&self, n: usize) -> Duration {
        if let Some(s) = self.settle {
            return s;
        }
        Duration::from_secs(if self.quick { 30 } else { 60 + n as u64 / 10 })
    }

    fn config(&self, index: usize, boot: Vec<Multiaddr>) -> Result<Config> {
        let mut c = Config {
            seed: Some(9_100_003u64.wrapping_add(index as u64)),
            label: Some(format!("scale{index}")),
            listen: addr::parse_listen("/ip4/127.0.0.1/tcp/0")?,
            boot,
            rendezvous: Some("bench-scale".into()),
            mdns: MdnsMode::Off,
            data_dir: None,
            ..Config::default()
        };
        c.mesh.min_peers = self.min_peers;
        c.mesh.max_peers = self.max_peers;
        if let Some(idle) = self.idle {
            c.idle_connection_timeout = idle;
        }
        Ok(c)
    }
}

/// Raises the open-file limit to what the largest network needs (two descriptors per
/// connection in one process): root may raise the hard limit too.
fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= want {
            return;
        }
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: want.max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            let soft = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
        }
    }
}

/// Counters summed over the nodes.
#[derive(Default, Clone)]
struct Traffic {
    sent: f64,
    connections: f64,
    kad_requests: f64,
    /// Requests sent by the nodes' own DHT queries, by purpose (rendezvous, bootstrap, ...).
    query_requests: std::collections::BTreeMap<String, f64>,
}

impl Network {
    /// Open connections (peers) of every node.
    async fn counts(&self) -> Vec<usize> {
        join_all(
            self.nodes
                .iter()
                .map(|n| async move { n.peers().await.map_or(0, |p| p.len()) }),
        )
        .await
    }

    /// What the `k` nodes with the most connections are connected to: for each, its index
    /// (bootnodes first), its peers, how many of them dialled it, were dialled only for a
    /// DHT query, are younger than 20 s, and found through the rendezvous key.
    async fn busiest(&self, boot: usize, k: usize) -> String {
        let all = join_all(self.nodes.iter().map(|n| n.peers())).await;
        let mut ranked: Vec<(usize, Vec<mcc::node::PeerInfo>)> = all
            .into_iter()
            .enumerate()
            .filter_map(|(i, p)| p.ok().map(|p| (i, p)))
            .collect();
        ranked.sort_by_key(|(_, p)| std::cmp::Reverse(p.len()));
        ranked
            .iter()
            .take(k)
            .map(|(i, p)| {
                let count =
                    |f: &dyn Fn(&mcc::node::PeerInfo) -> bool| p.iter().filter(|x| f(x)).count();
                format!(
                    "#{i}{} {} ({} in, {} dht-only, {} young, {} same app)",
                    if *i < boot { " (boot)" } else { "" },
                    p.len(),
                    count(&|x| x.direction == mcc::node::Direction::Inbound),
                    count(&|x| x.dht_only),
                    count(&|x| x.connected_secs < 20),
                    count(&|x| x.rendezvous),
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Bytes sent, connections established and DHT requests served, summed over the nodes.
    fn traffic(&self) -> Traffic {
        let mut t = Traffic::default();
        for n in &self.nodes {
            let mut text = String::new();
            if prometheus_client::encoding::text::encode(&mut text, n.registry()).is_err() {
                continue;
            }
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                let value = || {
                    line.rsplit(' ')
                        .next()
                        .and_then(|v| v.parse::<f64>().ok())
                        .unwrap_or(0.0)
                };
                let name = line.split(['{', ' ']).next().unwrap_or("");
                if name.contains("bandwidth") && line.to_ascii_lowercase().contains("outbound") {
                    t.sent += value();
                } else if name.starts_with("libp2p_swarm_connections_established") {
                    t.connections += value();
                } else if name.starts_with("libp2p_kad_inbound_requests") {
                    t.kad_requests += value();
                } else if name == "mcc_dht_query_requests_total"
                    && let Some(purpose) = line
                        .split("purpose=\"")
                        .nth(1)
                        .and_then(|r| r.split('"').next())
                {
                    *t.query_requests.entry(purpose.to_string()).or_default() += value();
                }
            }
        }
        t
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// One size's numbers, for the curve.
struct Row {
    n: usize,
    settled_s: f64,
    conns_median: usize,
    conns_max: usize,
    rss_per_node_mb: f64,
    bytes_per_node_s: f64,
    conns_per_node_min: f64,
    kad_per_node_min: f64,
    met: bool,
}

async fn bench_size(plan: &Plan, n: usize, rng: &mut StdRng) -> Result<Row> {
    let t0 = Instant::now();
    let net = Network::start(n, plan.boot, START_BATCH, |i, boot| plan.config(i, boot)).await?;
    let started = t0.elapsed();
    let deadline = t0 + plan.settle_deadline(n);
    let mut settled = None;
    let mut last = Vec::new();
    // Connections min/median/max every 10 s while settling.
    let mut curve: Vec<String> = Vec::new();
    while Instant::now() < deadline {
        last = net.counts().await;
        let t = t0.elapsed().as_secs();
        if curve.len() as u64 * 10 <= t {
            let (a, b, c) = min_median_max(&last);
            curve.push(format!("{t}s {a}/{b}/{c}"));
        }
        if last
            .iter()
            .all(|c| (plan.min_peers..=plan.bound()).contains(c))
        {
            settled = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (lmin, lmed, lmax) = min_median_max(&last);
    println!(
        "  {n:>4} nodes: started in {:.1} s; {}",
        started.as_secs_f64(),
        match settled {
            Some(t) => format!("settled in {:.1} s", t.as_secs_f64()),
            None => format!(
                "not settled after {:.0} s (connections min/median/max {lmin}/{lmed}/{lmax})",
                t0.elapsed().as_secs_f64()
            ),
        }
    );
    println!(
        "        connections min/median/max while settling: {}",
        curve.join(", ")
    );
    if settled.is_none() {
        println!(
            "        busiest nodes then: {}",
            net.busiest(plan.boot, 3).await
        );
    }

    // Steady state: connections, then traffic over a quiet window.
    let t0_traffic = net.traffic();
    // What joining cost each node, from its start to here (the join storm: bootstraps,
    // announcements, DID puts while the tables grow).
    let joining: Vec<String> = t0_traffic
        .query_requests
        .iter()
        .map(|(purpose, v)| format!("{purpose} {:.0}", v / n as f64))
        .collect();
    println!(
        "        DHT requests sent per node while settling ({:.0} s), by purpose: {}",
        t0.elapsed().as_secs_f64(),
        joining.join(", ")
    );
    let cpu0 = common::process_cpu_secs();
    let q0 = Instant::now();
    let mut samples = Vec::new();
    for _ in 0..3 {
        samples.extend(net.counts().await);
        tokio::time::sleep(plan.quiet / 3).await;
    }
    let t1_traffic = net.traffic();
    let cpu1 = common::process_cpu_secs();
    let quiet = q0.elapsed().as_secs_f64();
    let per_node_s = |f: fn(&Traffic) -> f64| (f(&t1_traffic) - f(&t0_traffic)) / n as f64 / quiet;
    let bytes_per_node_s = per_node_s(|t| t.sent);
    let conns_per_node_min = per_node_s(|t| t.connections) * 60.0;
    let kad_per_node_min = per_node_s(|t| t.kad_requests) * 60.0;
    let (cmin, cmed, cmax) = min_median_max(&samples);
    println!(
        "        busiest nodes after the quiet window: {}",
        net.busiest(plan.boot, 3).await
    );
    let links = samples[samples.len() - n..].iter().sum::<usize>() / 2;
    println!(
        "        connections per node min/median/max {cmin}/{cmed}/{cmax} (3 samples over {quiet:.0} s); {links} links of {} possible",
        n * (n - 1) / 2
    );
    println!(
        "        upkeep per node: {bytes_per_node_s:.0} B/s sent, {conns_per_node_min:.1} new connections/min, {kad_per_node_min:.1} DHT requests served/min"
    );
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        println!(
            "        process CPU over the window: {:.0} % of one core ({} cores here)",
            (c1 - c0) / quiet * 100.0,
            common::cores()
        );
    }
    let by_purpose: Vec<String> = t1_traffic
        .query_requests
        .iter()
        .map(|(purpose, v1)| {
            let v0 = t0_traffic
                .query_requests
                .get(purpose)
                .copied()
                .unwrap_or(0.0);
            let per_min = (v1 - v0) / n as f64 / quiet * 60.0;
            format!("{purpose} {per_min:.1}")
        })
        .collect();
    println!(
        "        DHT requests sent/min/node by the node's queries: {}",
        by_purpose.join(", ")
    );

    // DHT records.
    let (mut ok, mut total) = (0, 0);
    let mut hops = Vec::new();
    let mut lat = Vec::new();
    // Why puts and gets failed: error text -> count.
    let mut failures: std::collections::BTreeMap<String, usize> = Default::default();
    let mut puts_ok = 0;
    let per_record = plan.gets.div_ceil(plan.records.max(1));
    for r in 0..plan.records {
        let key = format!("/mcc/scale-bench-{n}-{r}").into_bytes();
        let value = vec![r as u8; 64];
        let writer = rng.gen_range(0..n);
        let t = Instant::now();
        match net.nodes[writer]
            .put_record(key.clone(), value.clone(), None)
            .await
        {
            Ok(o) if o.replicated => puts_ok += 1,
            Ok(_) => {
                *failures
                    .entry(format!(
                        "put after {:.0} s: stored on the writer only",
                        t.elapsed().as_secs_f64()
                    ))
                    .or_default() += 1
            }
            Err(e) => {
                *failures
                    .entry(format!("put after {:.0} s: {e}", t.elapsed().as_secs_f64()))
                    .or_default() += 1
            }
        }
        let readers: Vec<usize> = (0..per_record).map(|_| rng.gen_range(0..n)).collect();
        let got = join_all(readers.iter().map(|&i| {
            let key = key.clone();
            let node = &net.nodes[i];
            async move {
                let t = Instant::now();
                (node.get_record(key).await, t.elapsed())
            }
        }))
        .await;
        for (g, t) in got {
            total += 1;
            match g {
                Ok(f) if f.value == value => {
                    ok += 1;
                    hops.push(f64::from(f.queried));
                    lat.push(t.as_secs_f64() * 1e3);
                }
                Ok(_) => *failures.entry("get: another value".into()).or_default() += 1,
                Err(e) => *failures.entry(format!("get: {e}")).or_default() += 1,
            }
        }
    }
    println!(
        "        DHT puts {puts_ok}/{}{}",
        plan.records,
        if failures.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = failures.iter().map(|(e, k)| format!("{k} × {e}")).collect();
            format!("; failures: {}", list.join("; "))
        }
    );
    println!(
        "        DHT gets {ok}/{total}; peers queried median {:.0}, p95 {:.0}; latency median {:.1} ms, p95 {:.1} ms",
        percentile(&mut hops, 0.5),
        percentile(&mut hops, 0.95),
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.95)
    );

    // A service registered on a few nodes, looked up from random others.
    let service = format!("scale-{n}");
    let mut providers = Vec::new();
    for _ in 0..SERVICE_PROVIDERS {
        let i = rng.gen_range(0..n);
        if !providers.contains(&i) {
            net.nodes[i]
                .services()
                .add(&service, "127.0.0.1:9")
                .await
                .context("registering the service")?;
            providers.push(i);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let askers: Vec<usize> = (0..plan.lookups).map(|_| rng.gen_range(0..n)).collect();
    let found = join_all(askers.iter().map(|&i| {
        let service = service.clone();
        let node = &net.nodes[i];
        async move {
            let t = Instant::now();
            let r = node.services().providers(&service).await;
            (r.map(|p| p.len()).unwrap_or(0), t.elapsed())
        }
    }))
    .await;
    let lookups_ok = found.iter().filter(|(k, _)| *k > 0).count();
    let mut plat: Vec<f64> = found.iter().map(|(_, t)| t.as_secs_f64() * 1e3).collect();
    let mean_found = found.iter().map(|(k, _)| *k as f64).sum::<f64>() / found.len().max(1) as f64;
    println!(
        "        service lookups {lookups_ok}/{} (mean {mean_found:.1} of {} providers found); latency median {:.1} ms, p95 {:.1} ms",
        found.len(),
        providers.len(),
        percentile(&mut plat, 0.5),
        percentile(&mut plat, 0.95)
    );

    let rss = rss_mb();
    let rss_per_node = rss / n as f64;
    println!("        process RSS {rss:.0} MB, {rss_per_node:.1} MB per node");

    let ok_settled = settled.is_some();
    let ok_bound = cmax <= plan.bound();
    let ok_dht = ok == total;
    let ok_lookup = lookups_ok == found.len();
    let ok_rss = rss_per_node <= RSS_PER_NODE_MB;
    println!(
        "        targets: settled within {:.0} s: {}; every node ≤ 2 × --max-peers = {} open connections: {}; DHT gets 100%: {}; service lookups 100%: {}; RSS per node ≤ {RSS_PER_NODE_MB} MB: {}",
        plan.settle_deadline(n).as_secs_f64(),
        verdict(ok_settled),
        plan.bound(),
        verdict(ok_bound),
        verdict(ok_dht),
        verdict(ok_lookup),
        verdict(ok_rss)
    );
    net.shutdown(Duration::from_secs(60)).await;
    Ok(Row {
        n,
        settled_s: settled.map_or(f64::NAN, |t| t.as_secs_f64()),
        conns_median: cmed,
        conns_max: cmax,
        rss_per_node_mb: rss_per_node,
        bytes_per_node_s,
        conns_per_node_min,
        kad_per_node_min,
        met: ok_settled && ok_bound && ok_dht && ok_lookup && ok_rss,
    })
}

fn main() -> Result<()> {
    common::init_logs();
    let plan = Plan::from_args()?;
    let largest = plan.sizes.iter().copied().max().unwrap_or(0) as u64;
    raise_nofile(1024 + largest * 64);
    println!(
        "scale bench ({} build): sizes {:?}, {} bootnodes, --min-peers {} --max-peers {}, rendezvous key on, TCP on 127.0.0.1{}",
        common::build_kind(),
        plan.sizes,
        plan.boot,
        plan.min_peers,
        plan.max_peers,
        if plan.quick { ", quick" } else { "" }
    );
    let threads = common::threads(common::cores())?;
    let rows = common::run_benchmark(threads, common::CtrlC::Stop, async {
        let mut rng = StdRng::seed_from_u64(1000);
        let mut rows = Vec::new();
        for &n in &plan.sizes {
            rows.push(bench_size(&plan, n, &mut rng).await?);
        }
        Ok(rows)
    })?;
    println!(
        "curve:   nodes  settled s  conns median/max  RSS MB/node  B/s/node  new conns/min/node  DHT reqs/min/node"
    );
    for r in &rows {
        println!(
            "        {:>6}  {:>9.1}  {:>6}/{:<8}  {:>11.1}  {:>8.0}  {:>18.1}  {:>17.1}",
            r.n,
            r.settled_s,
            r.conns_median,
            r.conns_max,
            r.rss_per_node_mb,
            r.bytes_per_node_s,
            r.conns_per_node_min,
            r.kad_per_node_min
        );
    }
    let mut all_met = rows.iter().all(|r| r.met);
    if let (Some(first), Some(last)) = (rows.first(), rows.last())
        && rows.len() > 1
    {
        // Per node, the largest network costs at most twice the smallest (plus slack for
        // tiny numbers): nothing grows with n.
        let flat = |small: f64, large: f64, slack: f64| large <= 2.0 * small + slack;
        let ok = flat(first.conns_median as f64, last.conns_median as f64, 1.0)
            && flat(first.bytes_per_node_s, last.bytes_per_node_s, 500.0)
            && flat(first.conns_per_node_min, last.conns_per_node_min, 2.0)
            && flat(first.kad_per_node_min, last.kad_per_node_min, 10.0);
        println!(
            "target: per-node connections, traffic, new connections and DHT requests at {} nodes ≤ 2 × at {}: {}",
            last.n,
            first.n,
            verdict(ok)
        );
        all_met &= ok;
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
}
