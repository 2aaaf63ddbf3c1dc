//! Route messages, 1 publisher → 1 and → 5 subscribers on 127.0.0.1, side by side with the
//! echo RPC and a raw TCP stream measured in the same run.
//!
//! ```text
//! cargo bench --bench routes               # full run (about a minute)
//! cargo bench --bench routes -- --quick    # smoke test (or MCC_BENCH_QUICK=1)
//! ```
//!
//! Rows:
//! * `raw TCP 1→N`: tokio `TcpStream`s (nodelay), one per subscriber, 4-byte length prefix +
//!   100-byte message, written through a `BufWriter`;
//! * `echo RPC`: node B calls `echo` on node A through its handle (round trips; req/s with 64
//!   in flight), as in `benches/rpc.rs`;
//! * `route 1→N`: full `mcc::Node`s in this process, node A publishing 100-byte messages with
//!   `node.publish(..)`, N nodes subscribed with `node.subscribe(..)`.
//!
//! Latency (p50/p99) is one way, publisher to subscriber (to the last of the N subscribers),
//! one message at a time: each message carries its send time on the bench's clock. msgs/s
//! comes from a second phase that sends as fast as it can with at most 512 messages ahead of
//! the slowest subscriber (half a subscription queue, so nothing is dropped: a lossless rate),
//! and counts the messages each subscriber received until the last one arrives (the slowest
//! subscriber's rate). Drops (full subscription queues) are reported. Targets (issue #11):
//! route 1→1 p50 ≤ 2 × echo RPC p50, and ≥ 100k msgs/s to one subscriber.
//! `MCC_BENCH_THREADS` sets the tokio worker threads (default 2).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use futures::{StreamExt, future, stream};
use mcc::node::MdnsMode;
use mcc::node::addr::parse_listen;
use mcc::{Config, Node};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use common::node::Running;

/// Message size, header included.
const MESSAGE: usize = 100;
const ROUTE: &str = "bench/route";
const TARGET_RATIO: f64 = 2.0;
const TARGET_MPS: f64 = 100_000.0;
/// Safety net: a case that takes longer than this is a hang, not a measurement.
const CASE_LIMIT: Duration = Duration::from_secs(90);
const NODE_LIMIT: Duration = Duration::from_secs(10);
/// Echo requests in flight in the echo throughput phase.
const WINDOW: usize = 64;

struct Plan {
    quick: bool,
    threads: usize,
    warmup: usize,
    latency: usize,
    flood: u64,
    phase_cap: Duration,
}

impl Plan {
    fn from_env() -> Result<Self> {
        let quick = std::env::args().skip(1).any(|a| a == "--quick") || common::quick_from_env();
        let threads = common::threads(2)?;
        Ok(if quick {
            Plan {
                quick,
                threads,
                warmup: 20,
                latency: 200,
                flood: 20_000,
                phase_cap: Duration::from_millis(500),
            }
        } else {
            Plan {
                quick,
                threads,
                warmup: 500,
                latency: 5_000,
                flood: 500_000,
                phase_cap: Duration::from_secs(5),
            }
        })
    }
}

struct Row {
    name: String,
    p50: Duration,
    p99: Duration,
    /// Messages (or requests) per second.
    rate: f64,
    dropped: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A 100-byte message: seq (u64) and send time in ns since `epoch` (u64), then padding.
fn message(seq: u64, epoch: Instant) -> Vec<u8> {
    let mut m = vec![0u8; MESSAGE];
    m[..8].copy_from_slice(&seq.to_be_bytes());
    let ns = epoch.elapsed().as_nanos() as u64;
    m[8..16].copy_from_slice(&ns.to_be_bytes());
    m
}

/// (seq, one-way latency) of a received message.
fn parse(m: &[u8], epoch: Instant) -> Option<(u64, Duration)> {
    let seq = u64::from_be_bytes(m.get(..8)?.try_into().ok()?);
    let sent = u64::from_be_bytes(m.get(8..16)?.try_into().ok()?);
    let now = epoch.elapsed().as_nanos() as u64;
    Some((seq, Duration::from_nanos(now.saturating_sub(sent))))
}

/// What every subscriber (TCP reader or route subscription) reports.
#[derive(Default)]
struct Counters {
    received: AtomicU64,
    /// ns since epoch of the last message received.
    last_ns: AtomicU64,
}

/// Collects one latency report per subscriber for message `seq`; returns the largest.
async fn wait_all(
    reports: &mut mpsc::UnboundedReceiver<(u64, Duration)>,
    n: usize,
    seq: u64,
) -> Result<Duration> {
    let mut worst = Duration::ZERO;
    let mut got = 0;
    while got < n {
        let (s, lat) = tokio::time::timeout(Duration::from_secs(10), reports.recv())
            .await
            .context("a subscriber did not receive in time")?
            .context("subscriber gone")?;
        if s == seq {
            got += 1;
            worst = worst.max(lat);
        }
    }
    Ok(worst)
}

/// Publisher side of a case.
trait Sender {
    async fn send(&mut self, payload: Vec<u8>) -> Result<()>;
    async fn flush(&mut self) -> Result<()>;
}

/// Latency phase then flood phase, against `n` subscribers reporting on `reports` (latency
/// phase: seq < flood base) and `counters` (every message).
async fn measure<S: Sender>(
    name: String,
    sender: &mut S,
    n: usize,
    reports: &mut mpsc::UnboundedReceiver<(u64, Duration)>,
    counters: &[Arc<Counters>],
    epoch: Instant,
    plan: &Plan,
) -> Result<Row> {
    let mut seq = 0;
    for _ in 0..plan.warmup {
        seq += 1;
        sender.send(message(seq, epoch)).await?;
        sender.flush().await?;
        wait_all(reports, n, seq).await?;
    }
    let mut samples = Vec::with_capacity(plan.latency);
    let deadline = Instant::now() + plan.phase_cap;
    while samples.len() < plan.latency && Instant::now() < deadline {
        seq += 1;
        sender.send(message(seq, epoch)).await?;
        sender.flush().await?;
        samples.push(wait_all(reports, n, seq).await?);
    }
    samples.sort();

    // Flood: seq from FLOOD_BASE on; subscribers stop reporting latencies.
    let before: Vec<u64> = counters
        .iter()
        .map(|c| c.received.load(Ordering::Relaxed))
        .collect();
    let start_ns = epoch.elapsed().as_nanos() as u64;
    let deadline = Instant::now() + plan.phase_cap * 2;
    let mut sent = 0u64;
    while sent < plan.flood && Instant::now() < deadline {
        // At most IN_FLIGHT messages ahead of the slowest subscriber: the subscription
        // queues (1024) never overflow, so the rate is lossless.
        let slowest = counters
            .iter()
            .zip(&before)
            .map(|(c, b)| c.received.load(Ordering::Relaxed) - b)
            .min()
            .unwrap_or(sent);
        if sent - slowest >= IN_FLIGHT {
            sender.flush().await?;
            tokio::task::yield_now().await;
            continue;
        }
        sender.send(message(FLOOD_BASE + sent, epoch)).await?;
        sent += 1;
    }
    sender.flush().await?;
    // Wait until every subscriber has all of them, or stops making progress.
    let mut last = Vec::new();
    let settle = Instant::now() + Duration::from_secs(10);
    loop {
        let now: Vec<u64> = counters
            .iter()
            .zip(&before)
            .map(|(c, b)| c.received.load(Ordering::Relaxed) - b)
            .collect();
        if now.iter().all(|r| *r >= sent) || now == last || Instant::now() > settle {
            break;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut rate = f64::INFINITY;
    let mut dropped = 0;
    for (c, b) in counters.iter().zip(&before) {
        let got = c.received.load(Ordering::Relaxed) - b;
        dropped += sent.saturating_sub(got);
        let secs = (c.last_ns.load(Ordering::Relaxed).saturating_sub(start_ns)) as f64 / 1e9;
        rate = rate.min(got as f64 / secs.max(1e-9));
    }
    Ok(Row {
        name,
        p50: percentile(&samples, 0.5),
        p99: percentile(&samples, 0.99),
        rate,
        dropped,
    })
}

const FLOOD_BASE: u64 = 1 << 40;
/// Messages sent ahead of the slowest subscriber in the throughput phase.
const IN_FLIGHT: u64 = 512;

/// Called by every subscriber for each message.
fn on_message(
    m: &[u8],
    epoch: Instant,
    counters: &Counters,
    reports: &mpsc::UnboundedSender<(u64, Duration)>,
) {
    counters.received.fetch_add(1, Ordering::Relaxed);
    counters
        .last_ns
        .store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
    if let Some((seq, lat)) = parse(m, epoch)
        && seq < FLOOD_BASE
    {
        let _ = reports.send((seq, lat));
    }
}

// ---------------------------------------------------------------------------------------------
// Raw TCP

struct TcpSender {
    writers: Vec<BufWriter<TcpStream>>,
}

impl Sender for TcpSender {
    async fn send(&mut self, payload: Vec<u8>) -> Result<()> {
        for w in &mut self.writers {
            w.write_all(&(payload.len() as u32).to_be_bytes()).await?;
            w.write_all(&payload).await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        for w in &mut self.writers {
            w.flush().await?;
        }
        Ok(())
    }
}

async fn bench_tcp(n: usize, plan: &Plan) -> Result<Row> {
    let epoch = Instant::now();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (report_tx, mut reports) = mpsc::unbounded_channel();
    let mut counters = Vec::new();
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..n {
        let out = TcpStream::connect(addr).await?;
        out.set_nodelay(true)?;
        let (inbound, _) = listener.accept().await?;
        inbound.set_nodelay(true)?;
        writers.push(BufWriter::with_capacity(64 * 1024, out));
        let c = Arc::new(Counters::default());
        counters.push(Arc::clone(&c));
        let tx = report_tx.clone();
        readers.push(tokio::spawn(async move {
            let mut r = BufReader::with_capacity(64 * 1024, inbound);
            let mut buf = vec![0u8; MESSAGE];
            loop {
                let mut len = [0u8; 4];
                if r.read_exact(&mut len).await.is_err() {
                    return;
                }
                buf.resize(u32::from_be_bytes(len) as usize, 0);
                if r.read_exact(&mut buf).await.is_err() {
                    return;
                }
                on_message(&buf, epoch, &c, &tx);
            }
        }));
    }
    let mut sender = TcpSender { writers };
    let row = measure(
        format!("raw TCP 1→{n}"),
        &mut sender,
        n,
        &mut reports,
        &counters,
        epoch,
        plan,
    )
    .await;
    drop(sender);
    for r in readers {
        r.abort();
    }
    row
}

// ---------------------------------------------------------------------------------------------
// Nodes

async fn start_node() -> Result<Running> {
    let config = Config {
        listen: parse_listen("127.0.0.1:0")?,
        rendezvous: None,
        mdns: MdnsMode::Off,
        data_dir: None,
        ..Config::default()
    };
    Running::spawn(Node::builder(config), NODE_LIMIT).await
}

async fn bench_echo(plan: &Plan) -> Result<Row> {
    let a = start_node().await?;
    let b = start_node().await?;
    let outcome = async {
        let peer = b.node.dial(a.listen_addr(false).await?).await?;
        let params = Value::String("x".repeat(MESSAGE));
        for _ in 0..plan.warmup {
            b.node.call(peer, "echo", params.clone()).await?;
        }
        let mut samples = Vec::new();
        let deadline = Instant::now() + plan.phase_cap;
        while samples.len() < plan.latency && Instant::now() < deadline {
            let start = Instant::now();
            let v = b.node.call(peer, "echo", params.clone()).await?;
            samples.push(start.elapsed());
            ensure!(v == params, "echo returned another value");
        }
        samples.sort();
        let start = Instant::now();
        let deadline = start + plan.phase_cap * 2;
        let node = &b.node;
        let params = &params;
        let done = stream::iter(0..plan.flood)
            .take_while(|_| future::ready(Instant::now() < deadline))
            .map(|_| node.call(peer, "echo", params.clone()))
            .buffer_unordered(WINDOW)
            .filter(|r| future::ready(r.is_ok()))
            .count()
            .await;
        Ok(Row {
            name: "echo RPC".into(),
            p50: percentile(&samples, 0.5),
            p99: percentile(&samples, 0.99),
            rate: done as f64 / start.elapsed().as_secs_f64(),
            dropped: 0,
        })
    }
    .await;
    let stopped = (a.shutdown().await, b.shutdown().await);
    let row = outcome?;
    stopped.0?;
    stopped.1?;
    Ok(row)
}

struct RouteSender(mcc::routes::Publisher);

impl Sender for RouteSender {
    async fn send(&mut self, payload: Vec<u8>) -> Result<()> {
        self.0.send(payload).await?;
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

async fn bench_route(n: usize, plan: &Plan) -> Result<Row> {
    let epoch = Instant::now();
    let publisher = start_node().await?;
    let mut subscribers = Vec::new();
    for _ in 0..n {
        subscribers.push(start_node().await?);
    }
    let outcome = async {
        let addr = publisher.listen_addr(false).await?;
        let (report_tx, mut reports) = mpsc::unbounded_channel();
        let mut counters = Vec::new();
        let mut tasks = Vec::new();
        let mut drop_counters = Vec::new();
        for s in &subscribers {
            s.node.dial(addr.clone()).await?;
            let mut sub = s.node.subscribe(ROUTE)?;
            drop_counters.push(sub.dropped_counter());
            let c = Arc::new(Counters::default());
            counters.push(Arc::clone(&c));
            let tx = report_tx.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(m) = sub.next().await {
                    on_message(&m.payload, epoch, &c, &tx);
                }
            }));
        }
        let p = publisher.node.publish(ROUTE)?;
        let ready = Instant::now() + NODE_LIMIT;
        while p.listeners().len() < n {
            ensure!(
                Instant::now() < ready,
                "subscribers not seen by the publisher"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut sender = RouteSender(p);
        let mut row = measure(
            format!("route 1→{n}"),
            &mut sender,
            n,
            &mut reports,
            &counters,
            epoch,
            plan,
        )
        .await?;
        let counted: u64 = drop_counters
            .iter()
            .map(|d| d.load(Ordering::Relaxed))
            .sum();
        row.dropped = row.dropped.max(counted);
        for t in tasks {
            t.abort();
        }
        Ok(row)
    }
    .await;
    let mut stopped = vec![publisher.shutdown().await];
    for s in subscribers {
        stopped.push(s.shutdown().await);
    }
    let row = outcome?;
    for s in stopped {
        s?;
    }
    Ok(row)
}

// ---------------------------------------------------------------------------------------------
// Report

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn print_table(rows: &[Row]) {
    let echo = rows.iter().find(|r| r.name == "echo RPC");
    let raw1 = rows.iter().find(|r| r.name == "raw TCP 1→1");
    println!(
        "{:<13} {:>9} {:>9} {:>11} {:>9}   {:>9} {:>10}",
        "case", "p50 µs", "p99 µs", "msgs/s", "dropped", "p50 ×echo", "rate ×raw1"
    );
    for row in rows {
        println!(
            "{:<13} {:>9.1} {:>9.1} {:>11.0} {:>9}   {:>9.2} {:>10.3}",
            row.name,
            micros(row.p50),
            micros(row.p99),
            row.rate,
            row.dropped,
            echo.map_or(f64::NAN, |e| micros(row.p50) / micros(e.p50)),
            raw1.map_or(f64::NAN, |r| row.rate / r.rate),
        );
    }
    println!("(echo RPC: p50/p99 are round trips and its rate is req/s with {WINDOW} in flight)");
    let verdict = |ok: bool| if ok { "MET" } else { "MISSED" };
    if let (Some(route), Some(echo)) = (rows.iter().find(|r| r.name == "route 1→1"), echo) {
        let ratio = micros(route.p50) / micros(echo.p50);
        println!(
            "target route 1→1 p50 ≤ {TARGET_RATIO} × echo RPC p50: {:.1} µs vs {:.1} µs = {ratio:.2}× ({})",
            micros(route.p50),
            micros(echo.p50),
            verdict(ratio <= TARGET_RATIO)
        );
        println!(
            "target route 1→1 ≥ {TARGET_MPS:.0} msgs/s of {MESSAGE}-byte messages: {:.0} msgs/s ({})",
            route.rate,
            verdict(route.rate >= TARGET_MPS)
        );
    }
}

async fn run(plan: Plan) -> Result<()> {
    println!(
        "route messages on 127.0.0.1: {MESSAGE}-byte messages, {} tokio worker threads, {} CPUs, \
         {} build{}",
        plan.threads,
        common::cores(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "optimized"
        },
        if plan.quick { ", QUICK smoke run" } else { "" },
    );
    println!(
        "warm-up {}, up to {} one-at-a-time messages (latency), then up to {} with at most \
         {IN_FLIGHT} ahead of the slowest subscriber (msgs/s); phases capped at {:?} / {:?}",
        plan.warmup,
        plan.latency,
        plan.flood,
        plan.phase_cap,
        plan.phase_cap * 2
    );
    println!();
    let mut rows = Vec::new();
    for n in [1, 5] {
        rows.push(
            tokio::time::timeout(CASE_LIMIT, bench_tcp(n, &plan))
                .await
                .context("raw TCP hung")??,
        );
    }
    rows.push(
        tokio::time::timeout(CASE_LIMIT, bench_echo(&plan))
            .await
            .context("echo hung")??,
    );
    for n in [1, 5] {
        rows.push(
            tokio::time::timeout(CASE_LIMIT, bench_route(n, &plan))
                .await
                .with_context(|| format!("route 1→{n} hung"))??,
        );
    }
    print_table(&rows);
    Ok(())
}

fn main() -> Result<()> {
    common::init_logs();
    let plan = Plan::from_env()?;
    common::run_benchmark(plan.threads, common::CtrlC::Kill, run(plan))
}
