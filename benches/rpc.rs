//! Echo RPC latency and throughput over one open connection, side by side with a raw TCP
//! ping-pong measured in the same run.
//!
//! ```text
//! cargo bench --bench rpc               # full run (well under a minute)
//! cargo bench --bench rpc -- --quick    # smoke test (or MCC_BENCH_QUICK=1)
//! cargo bench --bench rpc -- quic       # only the rows whose name contains "quic"
//! ```
//!
//! Rows:
//! * `raw TCP`: tokio `TcpStream` (nodelay) on 127.0.0.1, 4-byte length prefix + 32-byte payload;
//! * `mcc/TCP`, `mcc/QUIC`: two full `mcc::Node`s in this process, node B calling `echo` on node
//!   A through its handle (handle → event loop → swarm → network and back);
//! * `bare rpc/TCP`: the `mcc::rpc::Behaviour` alone in two swarms (TCP + noise + yamux), the
//!   calling swarm driven directly by the bench task: no event loop, channels or other
//!   behaviours;
//! * `bare lazy/TCP` (only when a filter names it, e.g. `-- lazy`): the same with the swarms'
//!   substream negotiation set to multistream-select `V1Lazy`, which lets the caller send its
//!   request without waiting for the protocol confirmation (one round trip less per call).
//!
//! Latency (p50/p99) comes from sequential round trips; req/s from a second phase that keeps
//! [`WINDOW`] requests in flight on the same connection. Each phase is bounded both by a count
//! and by a time cap. `MCC_BENCH_THREADS` sets the tokio worker threads (default 2: the target is
//! stated for 2 cores). The raw TCP baseline always runs, so that the ratios exist.

mod common;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use futures::{StreamExt, future, stream};
use libp2p::swarm::SwarmEvent;
use libp2p::{PeerId, Swarm, noise, tcp, yamux};
use mcc::node::MdnsMode;
use mcc::node::addr::parse_listen;
use mcc::{Config, Node};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use common::node::Running;

/// The echoed payload: 32 bytes, as raw bytes for TCP and as a JSON string for the RPC.
const PAYLOAD: &str = "0123456789abcdef0123456789abcdef";
/// Requests kept in flight during the throughput phase.
const WINDOW: usize = 64;
/// Issue's targets for mcc over TCP: p50 at most this many times raw TCP's, and req/s.
const TARGET_P50_RATIO: f64 = 2.0;
const TARGET_RPS: f64 = 30_000.0;
/// Safety net: a case that takes longer than this is a hang, not a measurement.
const CASE_LIMIT: Duration = Duration::from_secs(60);

/// How much to measure.
#[derive(Debug, Clone)]
struct Plan {
    quick: bool,
    /// Substrings selecting the rows to run besides the raw TCP baseline (all when empty).
    filters: Vec<String>,
    threads: usize,
    warmup: usize,
    sequential: usize,
    concurrent: usize,
    window: usize,
    /// Upper bound on the duration of each measured phase.
    phase_cap: Duration,
}

impl Plan {
    fn from_env() -> Result<Self> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick") || common::quick_from_env();
        let threads = common::threads(2)?;
        // `cargo bench` passes `--bench`; other words are row filters, as for libtest benches.
        let filters = args
            .into_iter()
            .filter(|a| !a.starts_with('-'))
            .map(|a| a.to_lowercase())
            .collect();
        Ok(if quick {
            Self {
                quick,
                filters,
                threads,
                warmup: 20,
                sequential: 200,
                concurrent: 1_000,
                window: WINDOW,
                phase_cap: Duration::from_millis(300),
            }
        } else {
            Self {
                quick,
                filters,
                threads,
                warmup: 1_000,
                sequential: 20_000,
                concurrent: 100_000,
                window: WINDOW,
                phase_cap: Duration::from_secs(4),
            }
        })
    }

    /// Whether the row runs by default: no filter, or a filter matching its name.
    fn selects(&self, name: &str) -> bool {
        self.filters.is_empty() || self.names(name)
    }

    /// Whether some filter matches the row's name.
    fn names(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        self.filters.iter().any(|f| name.contains(f.as_str()))
    }
}

/// One echo client over one open connection.
trait Echo {
    /// One round trip, checked.
    async fn round_trip(&mut self) -> Result<()>;

    /// Up to `total` round trips with `window` of them in flight, issuing no new one after
    /// `deadline`; returns how many completed.
    async fn flood(&mut self, total: usize, window: usize, deadline: Instant) -> Result<usize>;
}

/// What one row of the table shows.
struct Row {
    name: &'static str,
    p50: Duration,
    p99: Duration,
    sequential: usize,
    rps: f64,
    concurrent: usize,
    note: Option<String>,
}

/// Warm-up, then sequential round trips for latency, then the windowed flood for req/s.
async fn measure<E: Echo>(name: &'static str, client: &mut E, plan: &Plan) -> Result<Row> {
    for _ in 0..plan.warmup {
        client.round_trip().await.context("warm-up")?;
    }

    let mut samples = Vec::with_capacity(plan.sequential);
    let deadline = Instant::now() + plan.phase_cap;
    while samples.len() < plan.sequential && Instant::now() < deadline {
        let start = Instant::now();
        client.round_trip().await.context("sequential phase")?;
        samples.push(start.elapsed());
    }
    ensure!(
        !samples.is_empty(),
        "{name}: no sequential round trip completed"
    );
    samples.sort_unstable();

    let start = Instant::now();
    let done = client
        .flood(plan.concurrent, plan.window, start + plan.phase_cap)
        .await
        .context("concurrent phase")?;
    let elapsed = start.elapsed();
    ensure!(done > 0, "{name}: no concurrent round trip completed");

    Ok(Row {
        name,
        p50: percentile(&samples, 50.0),
        p99: percentile(&samples, 99.0),
        sequential: samples.len(),
        rps: done as f64 / elapsed.as_secs_f64(),
        concurrent: done,
        note: None,
    })
}

/// Nearest-rank percentile of sorted, non-empty samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ---------------------------------------------------------------------------------------------
// Raw TCP

/// Echoes length-prefixed frames on the first accepted connection until it closes. Replies are
/// buffered and flushed once no further request is already buffered, as any pipelining-aware
/// server would.
async fn raw_echo_server(listener: TcpListener) -> Result<()> {
    let (stream, _) = listener.accept().await?;
    stream.set_nodelay(true)?;
    let (r, w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut w = BufWriter::new(w);
    let mut buf = Vec::new();
    loop {
        let len = match r.read_u32().await {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        ensure!(len <= 1 << 16, "frame of {len} bytes");
        buf.resize(len as usize, 0);
        r.read_exact(&mut buf).await?;
        w.write_u32(len).await?;
        w.write_all(&buf).await?;
        if r.buffer().is_empty() {
            w.flush().await?;
        }
    }
}

struct RawTcp {
    r: BufReader<OwnedReadHalf>,
    w: BufWriter<OwnedWriteHalf>,
    frame: Vec<u8>,
    reply: Vec<u8>,
}

impl RawTcp {
    async fn connect(addr: std::net::SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        let mut frame = u32::try_from(PAYLOAD.len())?.to_be_bytes().to_vec();
        frame.extend_from_slice(PAYLOAD.as_bytes());
        Ok(Self {
            r: BufReader::new(r),
            w: BufWriter::new(w),
            reply: vec![0; frame.len()],
            frame,
        })
    }

    async fn read_reply(&mut self) -> Result<()> {
        self.r.read_exact(&mut self.reply).await?;
        ensure!(self.reply == self.frame, "raw echo returned other bytes");
        Ok(())
    }
}

impl Echo for RawTcp {
    async fn round_trip(&mut self) -> Result<()> {
        self.w.write_all(&self.frame).await?;
        self.w.flush().await?;
        self.read_reply().await
    }

    async fn flood(&mut self, total: usize, window: usize, deadline: Instant) -> Result<usize> {
        let (mut sent, mut done) = (0, 0);
        loop {
            let mut wrote = false;
            while sent - done < window && sent < total && Instant::now() < deadline {
                self.w.write_all(&self.frame).await?;
                sent += 1;
                wrote = true;
            }
            if wrote {
                self.w.flush().await?;
            }
            if done == sent {
                return Ok(done);
            }
            self.read_reply().await?;
            done += 1;
            // Take the replies that are already buffered before writing more.
            while done < sent && self.r.buffer().len() >= self.reply.len() {
                self.read_reply().await?;
                done += 1;
            }
        }
    }
}

async fn bench_raw_tcp(plan: &Plan) -> Result<Row> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(raw_echo_server(listener));
    let mut client = RawTcp::connect(addr).await?;
    let row = measure("raw TCP", &mut client, plan).await?;
    drop(client);
    server.await??;
    Ok(row)
}

// ---------------------------------------------------------------------------------------------
// mcc nodes

/// Cap on stopping a node and on waiting for its listen address.
const NODE_LIMIT: Duration = Duration::from_secs(10);

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

struct NodeClient {
    node: Node,
    target: PeerId,
    params: Value,
}

impl NodeClient {
    fn check(&self, result: Result<Value, mcc::node::Error>) -> Result<()> {
        ensure!(result? == self.params, "echo returned another value");
        Ok(())
    }
}

impl Echo for NodeClient {
    async fn round_trip(&mut self) -> Result<()> {
        let result = self
            .node
            .call(self.target, "echo", self.params.clone())
            .await;
        self.check(result)
    }

    async fn flood(&mut self, total: usize, window: usize, deadline: Instant) -> Result<usize> {
        let this = &*self;
        let mut results = std::pin::pin!(
            stream::iter(0..total)
                .take_while(|_| future::ready(Instant::now() < deadline))
                .map(|_| this.node.call(this.target, "echo", this.params.clone()))
                .buffer_unordered(window)
        );
        let mut done = 0;
        while let Some(result) = results.next().await {
            this.check(result)?;
            done += 1;
        }
        Ok(done)
    }
}

async fn bench_node(name: &'static str, quic: bool, plan: &Plan) -> Result<Row> {
    let a = start_node().await?;
    let b = start_node().await?;
    let outcome = async {
        let addr = a.listen_addr(quic).await?;
        let peer = b.node.dial(addr.clone()).await?;
        ensure!(
            peer == a.node.peer_id(),
            "dialed {addr} and reached another peer"
        );
        let mut client = NodeClient {
            node: b.node.clone(),
            target: peer,
            params: Value::String(PAYLOAD.to_string()),
        };
        let mut row = measure(name, &mut client, plan).await?;
        let connections: usize = b
            .node
            .peers()
            .await?
            .iter()
            .filter(|p| p.peer_id == peer)
            .map(|p| p.connections)
            .sum();
        if connections != 1 {
            row.note = Some(format!(
                "{name}: {connections} connections were open, not 1 (AutoNAT dial-backs stay \
                 until idle; request-response spreads calls over all of them)"
            ));
        }
        Ok(row)
    };
    let outcome = outcome.await;
    let stopped = (a.shutdown().await, b.shutdown().await);
    let row = outcome?;
    stopped.0?;
    stopped.1?;
    Ok(row)
}

// ---------------------------------------------------------------------------------------------
// The bare RPC behaviour

type BareSwarm = Swarm<mcc::rpc::Behaviour>;

fn bare_swarm(lazy: bool) -> Result<BareSwarm> {
    Ok(libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|_| {
            mcc::rpc::Behaviour::new(mcc::rpc::Config::default(), mcc::rpc::Methods::new())
        })?
        .with_swarm_config(|c| {
            let c = c.with_idle_connection_timeout(Duration::from_secs(60));
            if lazy {
                c.with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
            } else {
                c
            }
        })
        .build())
}

struct BareClient {
    swarm: BareSwarm,
    target: PeerId,
    params: Value,
}

impl BareClient {
    fn call(&mut self) -> Result<mcc::rpc::OutboundRequestId> {
        Ok(self
            .swarm
            .behaviour_mut()
            .call(&self.target, "echo", self.params.clone())?)
    }

    /// Drives the swarm until some call completes; returns its id.
    async fn next_response(&mut self) -> Result<mcc::rpc::OutboundRequestId> {
        loop {
            match self.swarm.select_next_some().await {
                SwarmEvent::Behaviour(mcc::rpc::Event::OutboundResult {
                    request_id,
                    result,
                    ..
                }) => {
                    ensure!(result? == self.params, "echo returned another value");
                    return Ok(request_id);
                }
                SwarmEvent::ConnectionClosed { cause, .. } => {
                    bail!("connection closed: {cause:?}")
                }
                _ => {}
            }
        }
    }
}

impl Echo for BareClient {
    async fn round_trip(&mut self) -> Result<()> {
        let id = self.call()?;
        let got = self.next_response().await?;
        ensure!(got == id, "response to an unexpected request");
        Ok(())
    }

    async fn flood(&mut self, total: usize, window: usize, deadline: Instant) -> Result<usize> {
        let (mut sent, mut done) = (0, 0);
        loop {
            while sent - done < window && sent < total && Instant::now() < deadline {
                self.call()?;
                sent += 1;
            }
            if done == sent {
                return Ok(done);
            }
            self.next_response().await?;
            done += 1;
        }
    }
}

async fn bench_bare(name: &'static str, lazy: bool, plan: &Plan) -> Result<Row> {
    let mut server = bare_swarm(lazy)?;
    server.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = server.select_next_some().await {
            break address;
        }
    };
    let (stop, mut stopped) = oneshot::channel::<()>();
    let server_task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = server.select_next_some() => {}
            }
        }
    });

    let mut swarm = bare_swarm(lazy)?;
    swarm.dial(addr.clone())?;
    let target = loop {
        match swarm.select_next_some().await {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => break peer_id,
            SwarmEvent::OutgoingConnectionError { error, .. } => bail!("dialing {addr}: {error}"),
            _ => {}
        }
    };
    let mut client = BareClient {
        swarm,
        target,
        params: Value::String(PAYLOAD.to_string()),
    };
    let outcome = measure(name, &mut client, plan).await;
    drop(client);
    let _ = stop.send(());
    server_task.await?;
    outcome
}

// ---------------------------------------------------------------------------------------------
// Report

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn print_table(rows: &[Row]) {
    let raw = &rows[0];
    println!(
        "{:<14} {:>9} {:>9} {:>10} {:>8} {:>9}   {:>9} {:>9} {:>10}",
        "case",
        "p50 µs",
        "p99 µs",
        "req/s",
        "seq n",
        "conc n",
        "p50 ×raw",
        "p99 ×raw",
        "req/s ×raw"
    );
    for row in rows {
        println!(
            "{:<14} {:>9.1} {:>9.1} {:>10.0} {:>8} {:>9}   {:>9.2} {:>9.2} {:>10.3}",
            row.name,
            micros(row.p50),
            micros(row.p99),
            row.rps,
            row.sequential,
            row.concurrent,
            micros(row.p50) / micros(raw.p50),
            micros(row.p99) / micros(raw.p99),
            row.rps / raw.rps,
        );
    }
    for note in rows.iter().filter_map(|r| r.note.as_deref()) {
        println!("warning: {note}");
    }
    if let Some(mcc) = rows.iter().find(|r| r.name == "mcc/TCP") {
        let verdict = |ok: bool| if ok { "MET" } else { "MISSED" };
        let p50_ratio = micros(mcc.p50) / micros(raw.p50);
        println!(
            "target mcc/TCP: p50 ≤ {TARGET_P50_RATIO} × raw TCP: {:.1} µs = {p50_ratio:.2}× ({}); \
             ≥ {TARGET_RPS} req/s with {WINDOW} in flight: {:.0} req/s ({})",
            micros(mcc.p50),
            verdict(p50_ratio <= TARGET_P50_RATIO),
            mcc.rps,
            verdict(mcc.rps >= TARGET_RPS),
        );
    }
}

async fn run(plan: Plan) -> Result<()> {
    println!(
        "echo over one connection on 127.0.0.1: {}-byte payload, {} tokio worker threads, {} CPUs, \
         {} build{}",
        PAYLOAD.len(),
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
        "warm-up {}, then up to {} sequential round trips (latency), then up to {} with {} in \
         flight (req/s); each phase capped at {:?}",
        plan.warmup, plan.sequential, plan.concurrent, plan.window, plan.phase_cap
    );
    println!();

    let mut rows = Vec::new();
    rows.push(
        tokio::time::timeout(CASE_LIMIT, bench_raw_tcp(&plan))
            .await
            .context("raw TCP hung")?
            .context("raw TCP")?,
    );
    for (name, quic) in [("mcc/TCP", false), ("mcc/QUIC", true)] {
        if !plan.selects(name) {
            continue;
        }
        rows.push(
            tokio::time::timeout(CASE_LIMIT, bench_node(name, quic, &plan))
                .await
                .with_context(|| format!("{name} hung"))?
                .context(name)?,
        );
    }
    for (name, lazy) in [("bare rpc/TCP", false), ("bare lazy/TCP", true)] {
        // The lazy variant is a diagnostic: it runs only when a filter asks for it.
        let wanted = if lazy {
            plan.names(name)
        } else {
            plan.selects(name)
        };
        if !wanted {
            continue;
        }
        rows.push(
            tokio::time::timeout(CASE_LIMIT, bench_bare(name, lazy, &plan))
                .await
                .with_context(|| format!("{name} hung"))?
                .context(name)?,
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
