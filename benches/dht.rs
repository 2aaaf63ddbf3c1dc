//! DHT record lookups in a local network of in-process `mcc::Node`s over real TCP.
//!
//! ```text
//! cargo bench --bench dht                      # 50- and 100-node networks (about a minute)
//! cargo bench --bench dht -- --sizes 20,200    # other network sizes
//! cargo bench --bench dht -- --quorum 1        # stop lookups at the first valid version
//! cargo test  --bench dht -- --quick           # smoke test: 10 nodes, a few operations
//! ```
//!
//! For each network size the bench starts that many full nodes in this process, each listening
//! on TCP `127.0.0.1:0` only (no QUIC, no mDNS, no rendezvous key, temporary record store), all
//! joining through node 0 by `host:port`, as an mcc deployment does. It waits (bounded) until
//! every routing table holds at least `min(20, n - 1)` peers, then:
//!
//! 1. puts `--records` records `/mcc/bench-<i>` (100-byte values) from random nodes, one at a
//!    time, and lets the replication settle for [`SETTLE`];
//! 2. gets `--gets` random keys, one at a time, each from a random node that is not the key's
//!    publisher; a get succeeds when it returns the value that was put;
//! 3. resolves `--dids` DIDs (`did()` of a random node, from another random node) with
//!    `resolve_did`, and as many more with `get_record` on the `/did/<did>` key (the same lookup,
//!    with its statistics visible).
//!
//! Gets are split by whether the getter is among the key's 20 XOR-closest nodes of the whole
//! network (kad's replication factor): those hold a copy from the put and answer one version
//! locally; the others must fetch every version over the network (modulo write-back caching by
//! earlier gets, one peer per get). `queried` is kad's `QueryStats::num_requests`, the peers
//! asked during the lookup: libp2p exposes no hop count, this is the closest measure.
//!
//! Every wait and every phase is capped, and each network size has an overall budget
//! ([`SIZE_BUDGET`]), after which its nodes are shut down. `MCC_BENCH_THREADS` sets the tokio
//! worker threads (default: all CPUs); `MCC_BENCH_QUICK=1` is the same as `--quick`; `RUST_LOG`
//! turns on the nodes' logs.

use std::collections::{BTreeMap, HashSet};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use futures::future::join_all;
use libp2p::kad::{KBucketKey, RecordKey};
use libp2p::{Multiaddr, PeerId};
use mcc::node::{Config, MdnsMode, Node, RecordsConfig, addr};
use mcc_records::did::SignedDocument;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Issue's target for `get_record`: median latency, with every get succeeding.
const TARGET_P50: Duration = Duration::from_millis(50);
/// kad's replication factor (K): a put stores the record on this many closest peers.
const REPLICATION: usize = 20;
/// Nodes started at once (node 0 is started alone first).
const START_BATCH: usize = 10;
/// Upper bound on one put, get or resolve (kad's own query timeout is 30 s).
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between the puts and the gets, for the replication still in flight.
const SETTLE: Duration = Duration::from_millis(500);
/// Everything one network size does, shutdown excluded; phases stop early to stay within it.
const SIZE_BUDGET: Duration = Duration::from_secs(150);
/// Safety net around one network size: past this it is a hang.
const SIZE_LIMIT: Duration = Duration::from_secs(170);
/// How long the nodes get to stop.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(20);
/// Size of the record values.
const VALUE_LEN: usize = 100;

/// How much to measure.
#[derive(Debug, Clone)]
struct Plan {
    quick: bool,
    sizes: Vec<usize>,
    records: usize,
    gets: usize,
    dids: usize,
    /// Lookup quorum of the nodes; `None` keeps the node's default.
    quorum: Option<NonZeroUsize>,
    seed: u64,
    threads: usize,
    /// Cap on the wait for the routing tables.
    routing_cap: Duration,
    /// Cap on each measured phase (puts, gets, DIDs).
    phase_cap: Duration,
}

impl Plan {
    fn from_args() -> Result<Self> {
        let mut args = std::env::args().skip(1);
        let mut quick = std::env::var("MCC_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let (mut sizes, mut records, mut gets, mut dids) = (None, None, None, None);
        let (mut quorum, mut seed) = (None, 1u64);
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f.to_string(), Some(v.to_string())),
                None => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| anyhow!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--quick" => quick = true,
                "--sizes" => {
                    let list = value()?
                        .split(',')
                        .map(|s| s.trim().parse::<usize>())
                        .collect::<Result<Vec<_>, _>>()
                        .context("--sizes takes a comma-separated list of node counts")?;
                    sizes = Some(list);
                }
                "--records" => records = Some(parse_count(&flag, &value()?)?),
                "--gets" => gets = Some(parse_count(&flag, &value()?)?),
                "--dids" => dids = Some(value()?.parse::<usize>().context("--dids")?),
                "--quorum" => quorum = Some(value()?.parse::<NonZeroUsize>().context("--quorum")?),
                "--seed" => seed = value()?.parse::<u64>().context("--seed")?,
                // Passed by `cargo bench` / `cargo test`.
                "--bench" | "--test" | "--nocapture" => {}
                other => bail!(
                    "unknown argument {other:?} (known: --quick, --sizes 50,100, --records N, \
                     --gets N, --dids N, --quorum N, --seed N)"
                ),
            }
        }
        let threads = match std::env::var("MCC_BENCH_THREADS") {
            Ok(v) => v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                anyhow!("MCC_BENCH_THREADS must be a positive integer, not {v:?}")
            })?,
            Err(_) => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let sizes = sizes.unwrap_or_else(|| if quick { vec![10] } else { vec![50, 100] });
        ensure!(!sizes.is_empty(), "--sizes is empty");
        for &n in &sizes {
            ensure!(
                (2..=500).contains(&n),
                "network size {n} is outside 2..=500"
            );
        }
        Ok(Self {
            quick,
            sizes,
            records: records.unwrap_or(if quick { 10 } else { 50 }),
            gets: gets.unwrap_or(if quick { 40 } else { 500 }),
            dids: dids.unwrap_or(if quick { 5 } else { 50 }),
            quorum,
            seed,
            threads,
            routing_cap: Duration::from_secs(if quick { 20 } else { 45 }),
            phase_cap: Duration::from_secs(if quick { 20 } else { 45 }),
        })
    }
}

fn parse_count(flag: &str, v: &str) -> Result<usize> {
    v.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| anyhow!("{flag} must be a positive integer, not {v:?}"))
}

// ---------------------------------------------------------------------------------------------
// The network

/// The nodes of one network size and what it takes to stop them.
struct Network {
    nodes: Vec<Node>,
    tasks: Vec<JoinHandle<()>>,
    /// Dropping it stops every node.
    stop: watch::Sender<()>,
    stopped: watch::Receiver<()>,
}

impl Network {
    fn new() -> Self {
        let (stop, stopped) = watch::channel(());
        Self {
            nodes: Vec::new(),
            tasks: Vec::new(),
            stop,
            stopped,
        }
    }

    fn config(plan: &Plan, index: usize, boot: Vec<Multiaddr>) -> Result<Config> {
        let mut records = RecordsConfig::default();
        if std::env::var_os("NODID").is_some() {
            records.publish_did = false;
        }
        if let Some(q) = plan.quorum {
            records.get_quorum = q;
        }
        Ok(Config {
            // Deterministic identities: the same keys land on the same nodes from run to run.
            seed: Some(plan.seed.wrapping_mul(1_000_003).wrapping_add(index as u64)),
            label: Some(format!("bench{index}")),
            listen: addr::parse_listen("/ip4/127.0.0.1/tcp/0")?,
            boot,
            rendezvous: None,
            mdns: MdnsMode::Off,
            data_dir: None,
            records,
            ..Config::default()
        })
    }

    /// Starts one node; it stops when the network's stop sender is dropped.
    async fn spawn(&self, config: Config) -> Result<(Node, JoinHandle<()>)> {
        let mut stopped = self.stopped.clone();
        let shutdown = async move { while stopped.changed().await.is_ok() {} };
        Ok(Node::builder(config).spawn(shutdown).await?)
    }

    /// Starts `n` nodes: node 0, then the others in batches, all booting from node 0.
    async fn start(&mut self, plan: &Plan, n: usize) -> Result<()> {
        let (first, task) = self.spawn(Self::config(plan, 0, Vec::new())?).await?;
        let tcp = first
            .info()
            .await?
            .listen_addrs
            .iter()
            .find_map(addr::host_port)
            .context("node 0 reports no TCP listen address")?;
        let boot = vec![addr::parse_dial(&tcp.to_string())?];
        self.nodes.push(first);
        self.tasks.push(task);
        let indices: Vec<usize> = (1..n).collect();
        for batch in indices.chunks(START_BATCH) {
            let (this, boot) = (&*self, &boot);
            let started = join_all(batch.iter().map(|&i| async move {
                let config = Self::config(plan, i, boot.clone())?;
                this.spawn(config)
                    .await
                    .with_context(|| format!("starting node {i}"))
            }))
            .await;
            for s in started {
                let (node, task) = s?;
                self.nodes.push(node);
                self.tasks.push(task);
            }
        }
        Ok(())
    }

    /// Stops every node and waits for their event loops to end.
    async fn shutdown(self) -> Result<Duration> {
        let Self {
            nodes,
            tasks,
            stop,
            stopped,
        } = self;
        let start = Instant::now();
        drop(nodes);
        drop(stopped);
        drop(stop);
        let count = tasks.len();
        let results = tokio::time::timeout(SHUTDOWN_LIMIT, join_all(tasks))
            .await
            .with_context(|| format!("{count} nodes did not stop within {SHUTDOWN_LIMIT:?}"))?;
        for r in results {
            r.context("a node's event loop panicked")?;
        }
        Ok(start.elapsed())
    }
}

/// Routing tables once the wait ended.
struct RoutingState {
    elapsed: Duration,
    wanted: usize,
    met: bool,
    min: usize,
    median: usize,
    max: usize,
    connected_median: usize,
}

/// Waits until every routing table holds `wanted` peers, or `cap`.
async fn wait_routing(nodes: &[Node], wanted: usize, cap: Duration) -> Result<RoutingState> {
    let start = Instant::now();
    loop {
        let infos = join_all(nodes.iter().map(|n| n.info())).await;
        let mut sizes = Vec::with_capacity(infos.len());
        let mut connected = Vec::with_capacity(infos.len());
        for info in infos {
            let info = info?;
            sizes.push(info.routing_table_size);
            connected.push(info.connected_peers);
        }
        sizes.sort_unstable();
        connected.sort_unstable();
        let met = sizes[0] >= wanted;
        if met || start.elapsed() >= cap {
            return Ok(RoutingState {
                elapsed: start.elapsed(),
                wanted,
                met,
                min: sizes[0],
                median: percentile(&sizes, 50.0),
                max: sizes[sizes.len() - 1],
                connected_median: percentile(&connected, 50.0),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Measurements

/// One operation.
#[derive(Debug, Clone)]
struct Sample {
    latency: Duration,
    /// Why it failed, if it did.
    error: Option<String>,
    queried: Option<u32>,
    versions: Option<usize>,
}

/// What one row of the table shows.
struct Row {
    nodes: usize,
    name: &'static str,
    samples: Vec<Sample>,
}

impl Row {
    fn ok(&self) -> usize {
        self.samples.iter().filter(|s| s.error.is_none()).count()
    }

    fn all_ok(&self) -> bool {
        !self.samples.is_empty() && self.ok() == self.samples.len()
    }

    /// Latencies of every operation, failed ones included (a failure that took 10 s is part of
    /// what a user waits), sorted.
    fn latencies(&self) -> Vec<Duration> {
        let mut v: Vec<Duration> = self.samples.iter().map(|s| s.latency).collect();
        v.sort_unstable();
        v
    }

    fn p50(&self) -> Option<Duration> {
        let l = self.latencies();
        (!l.is_empty()).then(|| percentile(&l, 50.0))
    }
}

/// Nearest-rank percentile of sorted, non-empty samples.
fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `op` under [`OP_TIMEOUT`], timing it.
async fn timed<T, F>(op: F) -> (Duration, Result<T>)
where
    F: Future<Output = Result<T>>,
{
    let start = Instant::now();
    let result = match tokio::time::timeout(OP_TIMEOUT, op).await {
        Ok(r) => r,
        Err(_) => Err(anyhow!("timed out after {OP_TIMEOUT:?}")),
    };
    (start.elapsed(), result)
}

/// Phase deadline: the phase cap, within what is left of the size's budget.
fn phase_deadline(plan: &Plan, budget_end: Instant) -> Instant {
    (Instant::now() + plan.phase_cap).min(budget_end)
}

/// A record put by the bench.
struct Put {
    key: Vec<u8>,
    value: Vec<u8>,
    publisher: usize,
    /// Indices of the key's [`REPLICATION`] XOR-closest nodes.
    closest: HashSet<usize>,
}

fn value_for(i: usize) -> Vec<u8> {
    let mut v = format!("bench value {i}: ").into_bytes();
    let filler = b"abcdefghijklmnopqrstuvwxyz0123456789";
    while v.len() < VALUE_LEN {
        v.push(filler[v.len() % filler.len()]);
    }
    v
}

/// The indices of the `count` nodes closest to `key` in the XOR metric.
fn closest_nodes(key: &[u8], peers: &[PeerId], count: usize) -> HashSet<usize> {
    let target = KBucketKey::new(RecordKey::new(&key));
    let mut by_distance: Vec<(libp2p::kad::KBucketDistance, usize)> = peers
        .iter()
        .enumerate()
        .map(|(i, p)| (target.distance(&KBucketKey::from(*p)), i))
        .collect();
    by_distance.sort_unstable();
    by_distance
        .into_iter()
        .take(count)
        .map(|(_, i)| i)
        .collect()
}

/// Results of one network size.
struct SizeReport {
    nodes: usize,
    started: Duration,
    routing: RoutingState,
    rows: Vec<Row>,
    /// Gets whose getter is not among the key's closest nodes, and those that are.
    net_only: usize,
    holders: usize,
    shutdown: Option<Duration>,
    budget_hit: bool,
}

async fn measure_size(net: &mut Network, plan: &Plan, n: usize) -> Result<SizeReport> {
    let begin = Instant::now();
    let budget_end = begin + SIZE_BUDGET;
    let mut rng = StdRng::seed_from_u64(plan.seed ^ (n as u64).rotate_left(32));

    net.start(plan, n).await?;
    let started = begin.elapsed();
    println!("  {n} nodes started in {:.1} s", started.as_secs_f64());

    let wanted = REPLICATION.min(n - 1);
    let routing = wait_routing(
        &net.nodes,
        wanted,
        plan.routing_cap
            .min(budget_end.saturating_duration_since(Instant::now())),
    )
    .await?;
    println!(
        "  routing tables {} {} peers after {:.1} s (min/median/max {}/{}/{}; connected peers \
         median {})",
        if routing.met {
            "all ≥"
        } else {
            "NOT all ≥"
        },
        routing.wanted,
        routing.elapsed.as_secs_f64(),
        routing.min,
        routing.median,
        routing.max,
        routing.connected_median,
    );
    let nodes = net.nodes.clone();
    if std::env::var_os("IDLE").is_some() {
        let tick = || -> f64 {
            let st = std::fs::read_to_string("/proc/self/stat").unwrap();
            let f: Vec<&str> = st.rsplit_once(')').unwrap().1.split_whitespace().collect();
            (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
        };
        let mut last = tick();
        for s in 0..40 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = tick();
            let infos = join_all(nodes.iter().map(|n| n.info())).await;
            let rt: usize = infos
                .iter()
                .map(|i| i.as_ref().unwrap().routing_table_size)
                .sum();
            let cp: usize = infos
                .iter()
                .map(|i| i.as_ref().unwrap().connected_peers)
                .sum();
            eprintln!(
                "idle {s}s at {:.1}: cpu {:.0}% rt_sum {rt} conn_sum {cp}",
                begin.elapsed().as_secs_f64(),
                (now - last) * 100.0
            );
            last = now;
        }
    }
    let peers: Vec<PeerId> = nodes.iter().map(|n| n.peer_id()).collect();
    let mut budget_hit = false;

    // Puts.
    let mut put_samples = Vec::new();
    let mut puts = Vec::new();
    let deadline = phase_deadline(plan, budget_end);
    for i in 0..plan.records {
        if Instant::now() >= deadline {
            budget_hit = true;
            break;
        }
        let publisher = rng.gen_range(0..n);
        let key = format!("/mcc/bench-{i}").into_bytes();
        let value = value_for(i);
        let (latency, result) = timed(async {
            Ok(nodes[publisher]
                .put_record(key.clone(), value.clone(), None)
                .await?)
        })
        .await;
        let error = match &result {
            Ok(o) if o.replicated => None,
            Ok(_) => Some("stored locally only, on no peer".to_string()),
            Err(e) => Some(format!("{e:#}")),
        };
        if std::env::var_os("DBG").is_some() {
            eprintln!(
                "put {i} from {publisher} at {:.2}s took {:.1}ms {:?}",
                (Instant::now() - latency - begin).as_secs_f64(),
                ms(latency),
                result
                    .as_ref()
                    .map(|o| o.replicated)
                    .map_err(|e| e.to_string())
            );
        }
        put_samples.push(Sample {
            latency,
            error,
            queried: None,
            versions: None,
        });
        if result.is_ok() {
            let closest = closest_nodes(&key, &peers, REPLICATION);
            puts.push(Put {
                key,
                value,
                publisher,
                closest,
            });
        }
    }
    ensure!(!puts.is_empty(), "no put succeeded");
    tokio::time::sleep(SETTLE).await;

    // Gets, from nodes other than the publisher.
    let mut all = Vec::new();
    let mut net_only = Vec::new();
    let mut holders = Vec::new();
    let deadline = phase_deadline(plan, budget_end);
    for _ in 0..plan.gets {
        if Instant::now() >= deadline {
            budget_hit = true;
            break;
        }
        let put = &puts[rng.gen_range(0..puts.len())];
        let getter = loop {
            let g = rng.gen_range(0..n);
            if g != put.publisher {
                break g;
            }
        };
        let (latency, result) =
            timed(async { Ok(nodes[getter].get_record(put.key.clone()).await?) }).await;
        let sample = match result {
            Ok(found) => Sample {
                latency,
                error: (found.value != put.value).then(|| "another value".to_string()),
                queried: Some(found.queried),
                versions: Some(found.versions),
            },
            Err(e) => Sample {
                latency,
                error: Some(format!("{e:#}")),
                queried: None,
                versions: None,
            },
        };
        if std::env::var_os("DBG").is_some() && latency > Duration::from_millis(20) {
            eprintln!(
                "slow get at {:.2}s took {:.1}ms {:?} {:?}",
                (Instant::now() - latency - begin).as_secs_f64(),
                ms(latency),
                sample.queried,
                sample.error
            );
        }
        if put.closest.contains(&getter) {
            holders.push(sample.clone());
        } else {
            net_only.push(sample.clone());
        }
        all.push(sample);
    }

    // DIDs: resolve_did, then get_record on the DID key for the lookup's statistics.
    let mut resolved = Vec::new();
    let mut did_gets = Vec::new();
    let deadline = phase_deadline(plan, budget_end);
    for i in 0..plan.dids * 2 {
        if Instant::now() >= deadline {
            budget_hit = true;
            break;
        }
        let target = rng.gen_range(0..n);
        let resolver = loop {
            let r = rng.gen_range(0..n);
            if r != target {
                break r;
            }
        };
        let did = nodes[target].did().to_string();
        if i % 2 == 0 {
            let (latency, result) =
                timed(async { Ok(nodes[resolver].resolve_did(&did).await?) }).await;
            let error = match result {
                Ok(doc) if doc.did() == Some(did.as_str()) => None,
                Ok(_) => Some("another DID's document".to_string()),
                Err(e) => Some(format!("{e:#}")),
            };
            resolved.push(Sample {
                latency,
                error,
                queried: None,
                versions: None,
            });
        } else {
            let key = mcc_records::did_key(&did).to_vec();
            let (latency, result) =
                timed(async { Ok(nodes[resolver].get_record(key).await?) }).await;
            did_gets.push(match result {
                Ok(found) => {
                    let error = match SignedDocument::from_bytes(&found.value) {
                        Ok(doc) if doc.did() == Some(did.as_str()) => None,
                        Ok(_) => Some("another DID's document".to_string()),
                        Err(e) => Some(format!("not a DID document: {e}")),
                    };
                    Sample {
                        latency,
                        error,
                        queried: Some(found.queried),
                        versions: Some(found.versions),
                    }
                }
                Err(e) => Sample {
                    latency,
                    error: Some(format!("{e:#}")),
                    queried: None,
                    versions: None,
                },
            });
        }
    }

    let (net_only_count, holders_count) = (net_only.len(), holders.len());
    let rows = vec![
        Row {
            nodes: n,
            name: "get_record (all)",
            samples: all,
        },
        Row {
            nodes: n,
            name: "  getter not in 20 closest",
            samples: net_only,
        },
        Row {
            nodes: n,
            name: "  getter in 20 closest",
            samples: holders,
        },
        Row {
            nodes: n,
            name: "resolve_did",
            samples: resolved,
        },
        Row {
            nodes: n,
            name: "get_record /did/…",
            samples: did_gets,
        },
        Row {
            nodes: n,
            name: "put_record",
            samples: put_samples,
        },
    ];
    Ok(SizeReport {
        nodes: n,
        started,
        routing,
        rows,
        net_only: net_only_count,
        holders: holders_count,
        shutdown: None,
        budget_hit,
    })
}

async fn bench_size(plan: &Plan, n: usize) -> Result<SizeReport> {
    println!("{n}-node network:");
    let mut net = Network::new();
    let outcome = tokio::time::timeout(SIZE_LIMIT, measure_size(&mut net, plan, n))
        .await
        .unwrap_or_else(|_| Err(anyhow!("{n} nodes: not done within {SIZE_LIMIT:?}")));
    let stopped = net.shutdown().await;
    let mut report = outcome?;
    let stopped = stopped?;
    println!("  stopped in {:.1} s", stopped.as_secs_f64());
    report.shutdown = Some(stopped);
    Ok(report)
}

// ---------------------------------------------------------------------------------------------
// Report

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `p50/p95` of the present values, or `-`.
fn spread<T: Copy + Ord + std::fmt::Display>(values: impl Iterator<Item = T>) -> String {
    let mut v: Vec<T> = values.collect();
    if v.is_empty() {
        return "-".to_string();
    }
    v.sort_unstable();
    format!("{}/{}", percentile(&v, 50.0), percentile(&v, 95.0))
}

fn print_table(reports: &[SizeReport]) {
    println!(
        "{:>5}  {:<27} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8}  {:>11} {:>9}",
        "nodes",
        "operation",
        "ok/total",
        "ok %",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "queried",
        "versions"
    );
    println!(
        "{:>5}  {:<27} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8}  {:>11} {:>9}",
        "", "", "", "", "", "", "", "", "p50/p95", "p50/p95"
    );
    for row in reports.iter().flat_map(|r| r.rows.iter()) {
        let total = row.samples.len();
        let lat = row.latencies();
        let cell = |p: f64| {
            if lat.is_empty() {
                "-".to_string()
            } else {
                format!("{:.2}", ms(percentile(&lat, p)))
            }
        };
        let ok_pct = if total == 0 {
            "-".to_string()
        } else {
            format!("{:.1}", 100.0 * row.ok() as f64 / total as f64)
        };
        println!(
            "{:>5}  {:<27} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8}  {:>11} {:>9}",
            row.nodes,
            row.name,
            format!("{}/{}", row.ok(), total),
            ok_pct,
            cell(50.0),
            cell(95.0),
            cell(99.0),
            cell(100.0),
            spread(row.samples.iter().filter_map(|s| s.queried)),
            spread(row.samples.iter().filter_map(|s| s.versions)),
        );
    }
    println!();
    println!(
        "latency includes failed operations; `queried` = peers asked during the lookup (kad \
         num_requests; libp2p exposes no hop count); `versions` = valid copies seen, the local one \
         included (a lookup stops at the quorum)"
    );
    println!();
    for r in reports {
        let get_rows = r
            .rows
            .iter()
            .filter(|row| row.name.starts_with("get_record (all)"));
        for row in get_rows {
            let failures: BTreeMap<&str, usize> = row
                .samples
                .iter()
                .filter_map(|s| s.error.as_deref())
                .fold(BTreeMap::new(), |mut m, e| {
                    *m.entry(e).or_default() += 1;
                    m
                });
            println!(
                "{} nodes: setup {:.1} s (start {:.1} s + routing tables {:.1} s{}), shutdown \
                 {}; gets: {} by a getter outside the key's 20 closest, {} inside{}",
                r.nodes,
                (r.started + r.routing.elapsed).as_secs_f64(),
                r.started.as_secs_f64(),
                r.routing.elapsed.as_secs_f64(),
                if r.routing.met { "" } else { ", NOT filled" },
                r.shutdown
                    .map_or("-".to_string(), |d| format!("{:.1} s", d.as_secs_f64())),
                r.net_only,
                r.holders,
                if r.budget_hit {
                    "; a phase was cut short by its time cap"
                } else {
                    ""
                },
            );
            for (e, count) in &failures {
                println!("  {count} × {e}");
            }
            let verdict = match row.p50() {
                Some(p50) if p50 <= TARGET_P50 && row.all_ok() => "MET",
                _ => "MISSED",
            };
            println!(
                "  target: get_record median ≤ {} ms, 100% success: {verdict} (median {}, {}/{} \
                 ok)",
                TARGET_P50.as_millis(),
                row.p50()
                    .map_or("-".to_string(), |d| format!("{:.2} ms", ms(d))),
                row.ok(),
                row.samples.len(),
            );
        }
    }
}

async fn run(plan: Plan) -> Result<()> {
    println!(
        "DHT lookups among in-process mcc nodes on 127.0.0.1 (TCP only): sizes {:?}, {} records \
         of {VALUE_LEN} B, {} gets, {}+{} DID lookups, lookup quorum {}, {} tokio worker threads, \
         {} CPUs, {} build{}",
        plan.sizes,
        plan.records,
        plan.gets,
        plan.dids,
        plan.dids,
        plan.quorum.unwrap_or(RecordsConfig::default().get_quorum),
        plan.threads,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "optimized"
        },
        if plan.quick { ", QUICK smoke run" } else { "" },
    );
    println!(
        "operations run one at a time; each capped at {OP_TIMEOUT:?}, each phase at {:?}, each \
         size at {SIZE_BUDGET:?}",
        plan.phase_cap
    );
    println!();
    let mut reports = Vec::new();
    for &n in &plan.sizes {
        reports.push(
            bench_size(&plan, n)
                .await
                .with_context(|| format!("{n} nodes"))?,
        );
    }
    println!();
    print_table(&reports);
    for r in &reports {
        let gets = &r.rows[0];
        ensure!(
            gets.ok() > 0,
            "{} nodes: no get_record succeeded: the records path is broken",
            r.nodes
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let plan = Plan::from_args()?;
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.threads)
        .enable_all()
        .build()?
        .block_on(run(plan))
}
