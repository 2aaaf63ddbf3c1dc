//! DHT record lookups in a local network of in-process `mcc::Node`s over real TCP.
//!
//! ```text
//! cargo bench --bench dht                      # 50- and 100-node networks (1-2 minutes)
//! cargo bench --bench dht -- --sizes 20,200    # other network sizes
//! cargo bench --bench dht -- --quorum 1        # lookups stop at the first valid version
//! cargo bench --bench dht -- --no-did-publish  # nodes do not publish their DID documents
//! cargo test  --bench dht -- --quick           # smoke test: 10 nodes, a few operations
//! ```
//!
//! For each network size the bench starts that many full nodes in this process, each listening
//! on TCP `127.0.0.1:0` only (no QUIC, no mDNS, no rendezvous key, temporary record store; the
//! nodes publish their DID documents as usual), all joining through node 0 by `host:port`, as an
//! mcc deployment does. It waits (bounded) until every routing table holds `min(20, n - 1)`
//! peers, then until the network is quiet (no new connection or routing-table entry anywhere for
//! [`QUIET`]; bounded too: a freshly formed network keeps connecting for a while), then:
//!
//! 1. puts `--records` records `/mcc/bench-<i>` (100-byte values) from random nodes, one at a
//!    time, and lets the replication still in flight settle for [`SETTLE`];
//! 2. gets `--gets` random keys, one at a time, each from a random node that is not the key's
//!    publisher; a get succeeds when it returns the value that was put;
//! 3. resolves `--dids` DIDs (`did()` of a random node, from another random node) with
//!    `resolve_did`, and as many more with `get_record` on the `/did/<did>` key (the same lookup,
//!    with its statistics visible);
//! 4. starts `--fresh` more nodes one by one and, as soon as each has node 0 in its routing
//!    table, gets a random key from it (a lookup that must open its connections first), then
//!    another key (some of the connections it needs are open by then).
//!
//! Gets are split by whether the getter is among the key's 20 XOR-closest nodes of the network
//! (kad's replication factor): those hold a copy from the put and count it as one version; the
//! others must fetch every version over the network (modulo write-back caching by earlier gets,
//! at most one peer per get). `queried` is kad's `QueryStats::num_requests`, the peers asked
//! during the lookup: libp2p exposes no hop count, this is the closest measure.
//!
//! Every wait and every phase is capped, and each network size has an overall budget
//! ([`SIZE_BUDGET`]), after which its nodes are shut down. `MCC_BENCH_THREADS` sets the tokio
//! worker threads (default: all CPUs); `MCC_BENCH_QUICK=1` is the same as `--quick`; `RUST_LOG`
//! turns on the nodes' logs.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use futures::future::join_all;
use libp2p::kad::{KBucketDistance, KBucketKey, RecordKey};
use libp2p::{Multiaddr, PeerId};
use mcc::node::{Config, FoundRecord, MdnsMode, Node, RecordsConfig, addr};
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
/// The network counts as quiet once no connection or routing-table entry appeared for this long.
const QUIET: Duration = Duration::from_secs(2);
/// Upper bound on one put, get or resolve (kad's own query timeout is 30 s).
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between the puts and the gets, for the replication still in flight.
const SETTLE: Duration = Duration::from_millis(500);
/// How long a just-started node gets to put node 0 in its routing table.
const JOIN_LIMIT: Duration = Duration::from_secs(5);
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
    fresh: usize,
    /// Lookup quorum of the nodes; `None` keeps the node's default.
    quorum: Option<NonZeroUsize>,
    /// Whether the nodes publish their DID documents (the DID rows need it).
    publish_did: bool,
    seed: u64,
    threads: usize,
    /// Cap on the wait for the routing tables.
    routing_cap: Duration,
    /// Cap on the wait for a quiet network.
    quiet_cap: Duration,
    /// Cap on each measured phase.
    phase_cap: Duration,
}

impl Plan {
    fn from_args() -> Result<Self> {
        let mut quick = common::quick_from_env();
        let (mut sizes, mut records, mut gets, mut dids, mut fresh) =
            (None, None, None, None, None);
        let (mut quorum, mut seed, mut publish_did) = (None, 1u64, true);
        common::for_each_arg(|flag, value| {
            match flag {
                "--quick" => quick = true,
                "--sizes" => {
                    let list = value()?
                        .split(',')
                        .map(|s| s.trim().parse::<usize>())
                        .collect::<Result<Vec<_>, _>>()
                        .context("--sizes takes a comma-separated list of node counts")?;
                    sizes = Some(list);
                }
                "--records" => records = Some(parse_count(flag, &value()?)?),
                "--gets" => gets = Some(parse_count(flag, &value()?)?),
                "--dids" => dids = Some(value()?.parse::<usize>().context("--dids")?),
                "--fresh" => fresh = Some(value()?.parse::<usize>().context("--fresh")?),
                "--quorum" => quorum = Some(value()?.parse::<NonZeroUsize>().context("--quorum")?),
                "--seed" => seed = value()?.parse::<u64>().context("--seed")?,
                "--no-did-publish" => publish_did = false,
                other => bail!(
                    "unknown argument {other:?} (known: --quick, --sizes 50,100, --records N, \
                     --gets N, --dids N, --fresh N, --quorum N, --seed N, --no-did-publish)"
                ),
            }
            Ok(())
        })?;
        let threads = common::threads(common::cores())?;
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
            dids: if publish_did {
                dids.unwrap_or(if quick { 5 } else { 50 })
            } else {
                0
            },
            fresh: fresh.unwrap_or(if quick { 2 } else { 10 }),
            quorum,
            publish_did,
            seed,
            threads,
            routing_cap: Duration::from_secs(if quick { 20 } else { 45 }),
            quiet_cap: Duration::from_secs(if quick { 5 } else { 40 }),
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
    /// Node 0's `host:port`, which every other node boots from.
    boot: Vec<Multiaddr>,
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
            boot: Vec::new(),
            stop,
            stopped,
        }
    }

    fn config(plan: &Plan, index: usize, boot: Vec<Multiaddr>) -> Result<Config> {
        let mut records = RecordsConfig {
            publish_did: plan.publish_did,
            ..RecordsConfig::default()
        };
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
        self.nodes.push(first.clone());
        self.tasks.push(task);
        let tcp = first
            .info()
            .await?
            .listen_addrs
            .iter()
            .find_map(addr::host_port)
            .context("node 0 reports no TCP listen address")?;
        self.boot = vec![addr::parse_dial(&tcp.to_string())?];
        let indices: Vec<usize> = (1..n).collect();
        for batch in indices.chunks(START_BATCH) {
            let this = &*self;
            let started = join_all(batch.iter().map(|&i| async move {
                let config = Self::config(plan, i, this.boot.clone())?;
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

    /// Starts one more node, booting from node 0.
    async fn join(&mut self, plan: &Plan) -> Result<Node> {
        let index = self.nodes.len();
        let config = Self::config(plan, index, self.boot.clone())?;
        let (node, task) = self
            .spawn(config)
            .await
            .with_context(|| format!("starting node {index}"))?;
        self.nodes.push(node.clone());
        self.tasks.push(task);
        Ok(node)
    }

    /// Stops every node and waits for their event loops to end.
    async fn shutdown(self) -> Result<Duration> {
        let Self {
            nodes,
            tasks,
            stop,
            stopped,
            ..
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

/// Routing tables and connections of every node.
struct Snapshot {
    routing: Vec<usize>,
    connected: Vec<usize>,
}

impl Snapshot {
    async fn take(nodes: &[Node]) -> Result<Self> {
        let mut s = Snapshot {
            routing: Vec::with_capacity(nodes.len()),
            connected: Vec::with_capacity(nodes.len()),
        };
        for info in join_all(nodes.iter().map(|n| n.info())).await {
            let info = info?;
            s.routing.push(info.routing_table_size);
            s.connected.push(info.connected_peers);
        }
        s.routing.sort_unstable();
        s.connected.sort_unstable();
        Ok(s)
    }

    fn totals(&self) -> (usize, usize) {
        (self.routing.iter().sum(), self.connected.iter().sum())
    }

    fn describe(&self) -> String {
        format!(
            "routing table min/median/max {}/{}/{}, connected peers min/median/max {}/{}/{}",
            self.routing[0],
            percentile(&self.routing, 50.0),
            self.routing[self.routing.len() - 1],
            self.connected[0],
            percentile(&self.connected, 50.0),
            self.connected[self.connected.len() - 1],
        )
    }
}

/// How a bounded wait ended.
struct Wait {
    elapsed: Duration,
    done: bool,
}

/// Waits until every routing table holds `wanted` peers, or `cap`.
async fn wait_routing(nodes: &[Node], wanted: usize, cap: Duration) -> Result<(Wait, Snapshot)> {
    let start = Instant::now();
    loop {
        let snap = Snapshot::take(nodes).await?;
        let done = snap.routing[0] >= wanted;
        if done || start.elapsed() >= cap {
            let wait = Wait {
                elapsed: start.elapsed(),
                done,
            };
            return Ok((wait, snap));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until no connection and no routing-table entry appeared anywhere for [`QUIET`], or
/// `cap`.
async fn wait_quiet(nodes: &[Node], cap: Duration) -> Result<(Wait, Snapshot)> {
    let start = Instant::now();
    let mut last = None;
    let mut since = Instant::now();
    loop {
        let snap = Snapshot::take(nodes).await?;
        let totals = snap.totals();
        if last != Some(totals) {
            last = Some(totals);
            since = Instant::now();
        }
        let done = since.elapsed() >= QUIET;
        if done || start.elapsed() >= cap {
            let wait = Wait {
                elapsed: start.elapsed(),
                done,
            };
            return Ok((wait, snap));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The 1-minute load average of the host, where the OS tells it.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
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

impl Sample {
    fn failed(latency: Duration, error: impl Into<String>) -> Self {
        Self {
            latency,
            error: Some(error.into()),
            queried: None,
            versions: None,
        }
    }

    /// A lookup's outcome; `check` tells what is wrong with the value found, if anything.
    fn lookup(
        latency: Duration,
        result: Result<FoundRecord>,
        check: impl FnOnce(&[u8]) -> Option<String>,
    ) -> Self {
        match result {
            Ok(found) => Self {
                latency,
                error: check(&found.value),
                queried: Some(found.queried),
                versions: Some(found.versions),
            },
            Err(e) => Self::failed(latency, format!("{e:#}")),
        }
    }
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

    /// Failure reasons and how often each occurred.
    fn failures(&self) -> BTreeMap<&str, usize> {
        let mut m = BTreeMap::new();
        for e in self.samples.iter().filter_map(|s| s.error.as_deref()) {
            *m.entry(e).or_default() += 1;
        }
        m
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

/// A record put by the bench.
struct Put {
    key: Vec<u8>,
    value: Vec<u8>,
    publisher: usize,
    /// Indices of the key's [`REPLICATION`] XOR-closest nodes.
    closest: HashSet<usize>,
}

impl Put {
    fn check(&self, value: &[u8]) -> Option<String> {
        (value != self.value).then(|| "another value".to_string())
    }
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
    let mut by_distance: Vec<(KBucketDistance, usize)> = peers
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

/// What the measuring phases share.
struct Run<'a> {
    plan: &'a Plan,
    nodes: Vec<Node>,
    rng: StdRng,
    budget_end: Instant,
    /// Some phase stopped before its count because of its cap.
    cut_short: bool,
}

impl Run<'_> {
    /// The end of a phase: its cap, within what is left of the budget.
    fn deadline(&self) -> Instant {
        (Instant::now() + self.plan.phase_cap).min(self.budget_end)
    }

    /// Whether the phase must stop now.
    fn past(&mut self, deadline: Instant) -> bool {
        let past = Instant::now() >= deadline;
        self.cut_short |= past;
        past
    }

    /// A random node other than `not`.
    fn other_than(&mut self, not: usize) -> usize {
        loop {
            let i = self.rng.gen_range(0..self.nodes.len());
            if i != not {
                return i;
            }
        }
    }

    async fn puts(&mut self) -> Result<(Vec<Put>, Vec<Sample>)> {
        let peers: Vec<PeerId> = self.nodes.iter().map(|n| n.peer_id()).collect();
        let (mut puts, mut samples) = (Vec::new(), Vec::new());
        let deadline = self.deadline();
        for i in 0..self.plan.records {
            if self.past(deadline) {
                break;
            }
            let publisher = self.rng.gen_range(0..self.nodes.len());
            let key = format!("/mcc/bench-{i}").into_bytes();
            let value = value_for(i);
            let node = &self.nodes[publisher];
            let (latency, result) =
                timed(async { Ok(node.put_record(key.clone(), value.clone(), None).await?) }).await;
            samples.push(match &result {
                Ok(o) if o.replicated => Sample {
                    latency,
                    error: None,
                    queried: None,
                    versions: None,
                },
                Ok(_) => Sample::failed(latency, "stored locally only, on no peer"),
                Err(e) => Sample::failed(latency, format!("{e:#}")),
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
        Ok((puts, samples))
    }

    /// Gets from random nodes other than the publisher: all, then split by whether the getter
    /// is among the key's closest nodes.
    async fn gets(&mut self, puts: &[Put]) -> [Vec<Sample>; 3] {
        let (mut all, mut outside, mut inside) = (Vec::new(), Vec::new(), Vec::new());
        let deadline = self.deadline();
        for _ in 0..self.plan.gets {
            if self.past(deadline) {
                break;
            }
            let put = &puts[self.rng.gen_range(0..puts.len())];
            let getter = self.other_than(put.publisher);
            let node = &self.nodes[getter];
            let (latency, result) =
                timed(async { Ok(node.get_record(put.key.clone()).await?) }).await;
            let sample = Sample::lookup(latency, result, |v| put.check(v));
            if put.closest.contains(&getter) {
                inside.push(sample.clone());
            } else {
                outside.push(sample.clone());
            }
            all.push(sample);
        }
        [all, outside, inside]
    }

    /// `resolve_did` and `get_record` on DID keys, alternately, each of a random node's DID from
    /// another random node.
    async fn dids(&mut self) -> [Vec<Sample>; 2] {
        let (mut resolved, mut fetched) = (Vec::new(), Vec::new());
        let deadline = self.deadline();
        for i in 0..self.plan.dids * 2 {
            if self.past(deadline) {
                break;
            }
            let target = self.rng.gen_range(0..self.nodes.len());
            let resolver = self.other_than(target);
            let node = &self.nodes[resolver];
            let did = self.nodes[target].did().to_string();
            let wrong_did = |doc: &SignedDocument| {
                (doc.did() != Some(did.as_str())).then(|| "another DID's document".to_string())
            };
            if i % 2 == 0 {
                let (latency, result) = timed(async { Ok(node.resolve_did(&did).await?) }).await;
                resolved.push(match result {
                    Ok(doc) => Sample {
                        latency,
                        error: wrong_did(&doc),
                        queried: None,
                        versions: None,
                    },
                    Err(e) => Sample::failed(latency, format!("{e:#}")),
                });
            } else {
                let key = mcc_records::did_key(&did).to_vec();
                let (latency, result) = timed(async { Ok(node.get_record(key).await?) }).await;
                fetched.push(Sample::lookup(
                    latency,
                    result,
                    |v| match SignedDocument::from_bytes(v) {
                        Ok(doc) => wrong_did(&doc),
                        Err(e) => Some(format!("not a DID document: {e}")),
                    },
                ));
            }
        }
        [resolved, fetched]
    }

    /// Gets from nodes started one by one, as soon as each has node 0 in its routing table,
    /// then a second get of another key from the same node.
    async fn fresh_gets(&mut self, net: &mut Network, puts: &[Put]) -> Result<[Vec<Sample>; 2]> {
        let (mut first, mut second) = (Vec::new(), Vec::new());
        let deadline = self.deadline();
        for _ in 0..self.plan.fresh {
            if self.past(deadline) {
                break;
            }
            let node = net.join(self.plan).await?;
            let start = Instant::now();
            let joined = loop {
                if node.info().await?.routing_table_size > 0 {
                    break true;
                }
                if start.elapsed() >= JOIN_LIMIT {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            };
            if !joined {
                first.push(Sample::failed(
                    start.elapsed(),
                    format!("the new node did not join within {JOIN_LIMIT:?}"),
                ));
                continue;
            }
            let a = self.rng.gen_range(0..puts.len());
            let b = (a + self.rng.gen_range(1..puts.len().max(2))) % puts.len();
            for (put, samples) in [(&puts[a], &mut first), (&puts[b], &mut second)] {
                let (latency, result) =
                    timed(async { Ok(node.get_record(put.key.clone()).await?) }).await;
                samples.push(Sample::lookup(latency, result, |v| put.check(v)));
            }
        }
        Ok([first, second])
    }
}

/// Results of one network size.
struct SizeReport {
    nodes: usize,
    load: Option<f64>,
    started: Duration,
    routing: Wait,
    quiet: Wait,
    rows: Vec<Row>,
    shutdown: Option<Duration>,
    cut_short: bool,
}

impl SizeReport {
    fn setup(&self) -> Duration {
        self.started + self.routing.elapsed + self.quiet.elapsed
    }
}

async fn measure_size(net: &mut Network, plan: &Plan, n: usize) -> Result<SizeReport> {
    let begin = Instant::now();
    let budget_end = begin + SIZE_BUDGET;
    let load = load_average();
    let left = || budget_end.saturating_duration_since(Instant::now());

    net.start(plan, n).await?;
    let started = begin.elapsed();
    println!("  {n} nodes started in {:.1} s", started.as_secs_f64());

    let wanted = REPLICATION.min(n - 1);
    let (routing, snap) = wait_routing(&net.nodes, wanted, plan.routing_cap.min(left())).await?;
    println!(
        "  routing tables {} {wanted} peers after {:.1} s ({})",
        if routing.done {
            "all ≥"
        } else {
            "NOT all ≥"
        },
        routing.elapsed.as_secs_f64(),
        snap.describe(),
    );
    let (quiet, snap) = wait_quiet(&net.nodes, plan.quiet_cap.min(left())).await?;
    println!(
        "  network {} after {:.1} more s ({})",
        if quiet.done {
            "quiet"
        } else {
            "still connecting"
        },
        quiet.elapsed.as_secs_f64(),
        snap.describe(),
    );

    let mut run = Run {
        plan,
        nodes: net.nodes.clone(),
        rng: StdRng::seed_from_u64(plan.seed ^ (n as u64).rotate_left(32)),
        budget_end,
        cut_short: false,
    };
    let (puts, put_samples) = run.puts().await?;
    // Without a single stored record there is nothing to get: the put row says why, the
    // get rows stay empty (and the target is MISSED); DIDs are the nodes' own and still run.
    let stored = !puts.is_empty();
    if stored {
        tokio::time::sleep(SETTLE).await;
    } else {
        println!("  no put succeeded: the record gets are skipped");
    }
    let [all, outside, inside] = if stored {
        run.gets(&puts).await
    } else {
        Default::default()
    };
    let [resolved, did_gets] = run.dids().await;
    let [fresh, fresh_next] = if stored {
        run.fresh_gets(net, &puts).await?
    } else {
        Default::default()
    };

    let rows = [
        ("get_record", all),
        ("  getter not in 20 closest", outside),
        ("  getter in 20 closest", inside),
        ("  getter just joined", fresh),
        ("  same getter, next key", fresh_next),
        ("resolve_did", resolved),
        ("get_record /did/…", did_gets),
        ("put_record", put_samples),
    ]
    .into_iter()
    .map(|(name, samples)| Row {
        nodes: n,
        name,
        samples,
    })
    .collect();
    Ok(SizeReport {
        nodes: n,
        load,
        started,
        routing,
        quiet,
        rows,
        shutdown: None,
        cut_short: run.cut_short,
    })
}

async fn bench_size(plan: &Plan, n: usize) -> Result<SizeReport> {
    println!("{n}-node network:");
    let mut net = Network::new();
    let outcome = tokio::time::timeout(SIZE_LIMIT, measure_size(&mut net, plan, n))
        .await
        .unwrap_or_else(|_| Err(anyhow!("not done within {SIZE_LIMIT:?}")));
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

fn print_row(cells: [&str; 10]) {
    println!(
        "{:>5}  {:<27} {:>9} {:>6} {:>8} {:>8} {:>8} {:>8}  {:>8} {:>8}",
        cells[0],
        cells[1],
        cells[2],
        cells[3],
        cells[4],
        cells[5],
        cells[6],
        cells[7],
        cells[8],
        cells[9],
    );
}

fn print_table(reports: &[SizeReport]) {
    print_row([
        "nodes",
        "operation",
        "ok/total",
        "ok %",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "queried",
        "versions",
    ]);
    print_row(["", "", "", "", "", "", "", "", "p50/p95", "p50/p95"]);
    for row in reports.iter().flat_map(|r| r.rows.iter()) {
        let total = row.samples.len();
        let lat = row.latencies();
        let at = |p: f64| {
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
        print_row([
            &row.nodes.to_string(),
            row.name,
            &format!("{}/{}", row.ok(), total),
            &ok_pct,
            &at(50.0),
            &at(95.0),
            &at(99.0),
            &at(100.0),
            &spread(row.samples.iter().filter_map(|s| s.queried)),
            &spread(row.samples.iter().filter_map(|s| s.versions)),
        ]);
    }
    println!();
    println!(
        "Latencies include failed operations. queried = peers asked during the lookup (kad \
         num_requests; libp2p exposes no hop count). versions = valid copies seen, the getter's \
         own included; a lookup stops once it has the quorum."
    );
    println!();
    for r in reports {
        println!(
            "{} nodes: setup {:.1} s (start {:.1} s, routing tables {:.1} s{}, quiet {:.1} s{}), \
             shutdown {}, host load average {}{}",
            r.nodes,
            r.setup().as_secs_f64(),
            r.started.as_secs_f64(),
            r.routing.elapsed.as_secs_f64(),
            if r.routing.done { "" } else { " NOT filled" },
            r.quiet.elapsed.as_secs_f64(),
            if r.quiet.done { "" } else { " NOT reached" },
            r.shutdown
                .map_or("-".to_string(), |d| format!("{:.1} s", d.as_secs_f64())),
            r.load.map_or("?".to_string(), |l| format!("{l:.2}")),
            if r.cut_short {
                "; a phase was cut short by its time cap"
            } else {
                ""
            },
        );
        for row in &r.rows {
            for (e, count) in row.failures() {
                println!("  {}: {count} × {e}", row.name.trim());
            }
        }
        let gets = &r.rows[0];
        let verdict = match gets.p50() {
            Some(p50) if p50 <= TARGET_P50 && gets.all_ok() => "MET",
            _ => "MISSED",
        };
        println!(
            "  target: get_record median ≤ {} ms, 100% success: {verdict} (median {}, {}/{} ok)",
            TARGET_P50.as_millis(),
            gets.p50()
                .map_or("-".to_string(), |d| format!("{:.2} ms", ms(d))),
            gets.ok(),
            gets.samples.len(),
        );
    }
}

async fn run(plan: Plan) -> Result<()> {
    println!(
        "DHT lookups among in-process mcc nodes on 127.0.0.1 (TCP only): sizes {:?}, {} records \
         of {VALUE_LEN} B, {} gets, {}+{} DID lookups, {} gets from just-joined nodes, lookup \
         quorum {}{}, {} tokio worker threads, {} CPUs, {} build{}",
        plan.sizes,
        plan.records,
        plan.gets,
        plan.dids,
        plan.dids,
        plan.fresh,
        plan.quorum.unwrap_or(RecordsConfig::default().get_quorum),
        if plan.publish_did {
            ""
        } else {
            ", DID publication off"
        },
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
        "operations run one at a time, each capped at {OP_TIMEOUT:?}; waits capped at {:?} \
         (routing tables) and {:?} (quiet), phases at {:?}, each size at {SIZE_BUDGET:?}",
        plan.routing_cap, plan.quiet_cap, plan.phase_cap
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
        ensure!(
            r.rows[0].ok() > 0,
            "{} nodes: no get_record succeeded: the records path is broken",
            r.nodes
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let plan = Plan::from_args()?;
    common::init_logs();
    common::run_benchmark(plan.threads, common::CtrlC::Kill, run(plan))
}
