//! The cost of admission: the connection-setup time of a fresh node in an open network and in
//! a closed one (`--trust-ca`), both measured in the same run on 127.0.0.1.
//!
//! ```text
//! cargo bench --bench admission                  # full run: 40 connections per row
//! cargo bench --bench admission -- --quick       # smoke run: 5 per row (or MCC_BENCH_QUICK=1)
//! cargo test  --bench admission -- --quick       # the same in a debug build (CI)
//! cargo bench --bench admission -- tcp           # only the TCP rows ("quic": only QUIC)
//! cargo bench --bench admission -- --iters 200   # another number of connections per row
//! ```
//!
//! Two long-running listener nodes (full `mcc::Node`s in this process, listening on
//! `127.0.0.1:0`, TCP and QUIC, no mDNS, no rendezvous key, no data folder):
//! * `open`: default admission settings (a self-signed certificate, no trusted CA): the baseline;
//! * `closed`: a certificate signed by a CA made in code (`mcc_admission`), and that CA trusted,
//!   as `--cert` / `--trust-ca` do.
//!
//! Each iteration starts one fresh dialer node per row, with a new key (and, for `closed`, a new
//! certificate from the same CA, signed before the clock starts), waits until it listens, then
//! measures from `Node::dial(listener address)` to the first `echo` call to the listener that
//! succeeds. In a closed network the RPC streams are held until both sides admitted each
//! other, so the time is connection + certificate exchange + first request; in an open one it
//! is connection + first request. `connect` is the part until `dial` returned (connection
//! established). The dialer is then shut down (handle dropped, shutdown future completed, event
//! loop awaited) before the next one starts. The rows take turns within each iteration, in
//! alternating order, so that a change in the machine's load hits them alike; one warm-up
//! iteration per row is not counted. Every step is capped.
//!
//! `MCC_BENCH_THREADS` sets the tokio worker threads (default 2, as the rpc bench);
//! `RUST_LOG` turns on the nodes' logs.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use mcc::node::addr::parse_listen;
use mcc::node::{AdmissionConfig, Config, MdnsMode, Node};
use mcc_admission::{Certificate, CertificateFields, Permissions, keys, now_unix};
use serde_json::json;

use common::node::Running;

/// Connections per row in a full and in a `--quick` run.
const FULL_ITERS: usize = 40;
const QUICK_ITERS: usize = 5;
/// Uncounted iterations per row before the measured ones.
const WARMUP: usize = 1;
/// Cap on starting or stopping a node, or waiting for its listen address.
const SETUP_LIMIT: Duration = Duration::from_secs(20);
/// Cap on one measured connection (dial + first echo).
const CONNECT_LIMIT: Duration = Duration::from_secs(20);
/// Validity of the bench's certificates, from a minute ago.
const VALIDITY: u64 = 3600;

// ---------------------------------------------------------------------------------------------
// Plan

#[derive(Debug, Clone)]
struct Plan {
    quick: bool,
    iters: usize,
    /// Substrings selecting rows by name (all rows when empty).
    filters: Vec<String>,
    threads: usize,
}

impl Plan {
    fn from_args() -> Result<Self> {
        let mut quick = common::quick_from_env();
        let mut iters = None;
        let mut filters = Vec::new();
        common::for_each_arg(|flag, value| {
            match flag {
                "--quick" => quick = true,
                "--iters" => {
                    let v = value()?;
                    iters = Some(
                        v.parse::<usize>()
                            .ok()
                            .filter(|n| *n > 0)
                            .with_context(|| {
                                format!("--iters needs a positive integer, not {v:?}")
                            })?,
                    );
                }
                other if other.starts_with('-') => bail!(
                    "unknown argument {other:?} (known: --quick, --iters N, and words selecting \
                     rows: open, closed, tcp, quic)"
                ),
                _ => filters.push(flag.to_lowercase()),
            }
            Ok(())
        })?;
        Ok(Self {
            quick,
            iters: iters.unwrap_or(if quick { QUICK_ITERS } else { FULL_ITERS }),
            filters,
            threads: common::threads(2)?,
        })
    }

    fn selects(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates and nodes

/// The bench's root CA: its key and its self-signed certificate.
struct Ca {
    key: libp2p::identity::ed25519::Keypair,
    cert: Certificate,
}

impl Ca {
    fn new() -> Result<Self> {
        let key = keys::to_ed25519(&keys::generate())?;
        let now = now_unix();
        let cert = Certificate::new_ca(&key, "bench", now - 60, now + VALIDITY)?;
        Ok(Self { key, cert })
    }

    /// A fresh node key and its certificate, with every permission.
    fn issue(&self, label: &str) -> Result<(Keypair, Certificate)> {
        let node_key = keys::generate();
        let now = now_unix();
        let cert = Certificate::sign(
            &self.key,
            CertificateFields::new(
                node_key.public().to_peer_id(),
                label,
                Permissions::all(),
                now - 60,
                now + VALIDITY,
            ),
        )?;
        Ok((node_key, cert))
    }
}

/// Open network (self-signed, nothing trusted) or closed (CA-signed, CA trusted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Open,
    Closed,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Open => "open",
            Mode::Closed => "closed",
        }
    }
}

/// A node of the mode: its key, certificate and admission settings, listening on 127.0.0.1.
async fn start_node(mode: Mode, ca: &Ca, label: &str) -> Result<Running> {
    let (keypair, admission) = match mode {
        Mode::Open => (keys::generate(), AdmissionConfig::default()),
        Mode::Closed => {
            let (keypair, cert) = ca.issue(label)?;
            let admission = AdmissionConfig {
                certificate: Some(cert),
                trusted_ca: Some(ca.cert.clone()),
                ..Default::default()
            };
            (keypair, admission)
        }
    };
    let config = Config {
        listen: parse_listen("127.0.0.1:0")?,
        data_dir: None,
        rendezvous: None,
        mdns: MdnsMode::Off,
        label: Some(label.to_string()),
        admission,
        ..Config::default()
    };
    tokio::time::timeout(
        SETUP_LIMIT,
        Running::spawn(Node::builder(config).keypair(keypair), SETUP_LIMIT),
    )
    .await
    .context("node did not start")?
}

// ---------------------------------------------------------------------------------------------
// Measurement

/// One row: a mode over a transport, against its listener.
struct Case {
    mode: Mode,
    quic: bool,
    name: String,
    listener: PeerId,
    addr: Multiaddr,
    /// Per measured iteration: (until `dial` returned, until the first echo succeeded).
    samples: Vec<(Duration, Duration)>,
}

/// One connection of a fresh dialer to the case's listener; returns (connect, first echo).
async fn connect_once(case: &Case, ca: &Ca, listener: &Node) -> Result<(Duration, Duration)> {
    let dialer = start_node(case.mode, ca, "benchdialer").await?;
    let outcome = async {
        // The dialer is up and listening (as a real node would be) before the clock starts.
        dialer.listen_addr(case.quic).await?;
        let params = json!("x");
        let start = Instant::now();
        let measured = tokio::time::timeout(CONNECT_LIMIT, async {
            let peer = dialer.node.dial(case.addr.clone()).await?;
            let connect = start.elapsed();
            let answer = dialer.node.call(peer, "echo", params.clone()).await?;
            Ok::<_, anyhow::Error>((peer, connect, start.elapsed(), answer))
        })
        .await
        .context("dial + first echo hung")??;
        let (peer, connect, total, answer) = measured;
        ensure!(
            peer == case.listener,
            "dialed {} and reached another peer",
            case.addr
        );
        ensure!(answer == params, "echo returned {answer}, not {params}");
        check_mode(case.mode, listener, dialer.node.peer_id()).await?;
        Ok((connect, total))
    }
    .await;
    let stopped = dialer.shutdown().await;
    let sample = outcome?;
    stopped?;
    Ok(sample)
}

/// Untimed check that the listener saw the dialer the way the mode says: admitted with a
/// verified certificate in a closed network, admitted without one in an open network.
async fn check_mode(mode: Mode, listener: &Node, dialer: PeerId) -> Result<()> {
    let peers = listener.peers().await?;
    let Some(p) = peers.iter().find(|p| p.peer_id == dialer) else {
        bail!("the listener does not list the dialer");
    };
    ensure!(p.admitted, "the listener did not admit the dialer");
    match mode {
        Mode::Closed => ensure!(
            p.certificate.is_some(),
            "closed mode: the listener holds no verified certificate of the dialer"
        ),
        Mode::Open => ensure!(
            p.certificate.is_none(),
            "open mode: the listener verified a certificate (is a CA trusted?)"
        ),
    }
    Ok(())
}

/// Nearest-rank percentile of sorted, non-empty samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// p50 and p95 of one column of a case's samples.
fn stats(case: &Case, pick: impl Fn(&(Duration, Duration)) -> Duration) -> (Duration, Duration) {
    let mut v: Vec<Duration> = case.samples.iter().map(pick).collect();
    v.sort_unstable();
    (percentile(&v, 50.0), percentile(&v, 95.0))
}

// ---------------------------------------------------------------------------------------------
// Run

async fn run(plan: Plan) -> Result<()> {
    println!(
        "dial + first echo RPC of a fresh node on 127.0.0.1, open network vs --trust-ca: {} \
         connections per row (+{WARMUP} warm-up), {} tokio worker threads, {} CPUs, {} build{}",
        plan.iters,
        plan.threads,
        common::cores(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "optimized"
        },
        if plan.quick { ", QUICK smoke run" } else { "" },
    );
    println!();

    let ca = Ca::new()?;
    let open = start_node(Mode::Open, &ca, "benchopen").await?;
    let closed = start_node(Mode::Closed, &ca, "benchclosed").await?;
    let outcome = measure_all(&plan, &ca, &open, &closed).await;
    let stopped = (open.shutdown().await, closed.shutdown().await);
    let cases = outcome?;
    stopped.0?;
    stopped.1?;
    print_report(&cases);
    Ok(())
}

async fn measure_all(plan: &Plan, ca: &Ca, open: &Running, closed: &Running) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    for quic in [false, true] {
        for (mode, listener) in [(Mode::Open, open), (Mode::Closed, closed)] {
            let name = format!("{}/{}", mode.name(), if quic { "QUIC" } else { "TCP" });
            if !plan.selects(&name) {
                continue;
            }
            cases.push(Case {
                mode,
                quic,
                name,
                listener: listener.node.peer_id(),
                addr: listener.listen_addr(quic).await?,
                samples: Vec::with_capacity(plan.iters),
            });
        }
    }
    ensure!(
        !cases.is_empty(),
        "no row selected (words: open, closed, tcp, quic)"
    );

    for i in 0..WARMUP + plan.iters {
        // Alternate the order of the rows from one iteration to the next.
        let order: Vec<usize> = if i % 2 == 0 {
            (0..cases.len()).collect()
        } else {
            (0..cases.len()).rev().collect()
        };
        for c in order {
            let listener = match cases[c].mode {
                Mode::Open => &open.node,
                Mode::Closed => &closed.node,
            };
            let sample = connect_once(&cases[c], ca, listener)
                .await
                .with_context(|| format!("{}, iteration {i}", cases[c].name))?;
            if i >= WARMUP {
                cases[c].samples.push(sample);
            }
        }
    }
    Ok(cases)
}

fn print_report(cases: &[Case]) {
    println!(
        "{:<12} {:>5}   {:>13} {:>13}   {:>13} {:>13} {:>9}",
        "case", "n", "connect p50", "connect p95", "1st echo p50", "1st echo p95", "max"
    );
    for case in cases {
        let (c50, c95) = stats(case, |s| s.0);
        let (e50, e95) = stats(case, |s| s.1);
        let max = case.samples.iter().map(|s| s.1).max().unwrap_or_default();
        println!(
            "{:<12} {:>5}   {:>10.2} ms {:>10.2} ms   {:>10.2} ms {:>10.2} ms {:>6.2} ms",
            case.name,
            case.samples.len(),
            millis(c50),
            millis(c95),
            millis(e50),
            millis(e95),
            millis(max),
        );
    }
    println!();
    for quic in [false, true] {
        let find = |mode| cases.iter().find(|c| c.mode == mode && c.quic == quic);
        let (Some(open), Some(closed)) = (find(Mode::Open), find(Mode::Closed)) else {
            continue;
        };
        let (o50, o95) = stats(open, |s| s.1);
        let (c50, c95) = stats(closed, |s| s.1);
        println!(
            "cost of admission over {}: first echo p50 closed/open ×{:.2} ({:+.2} ms), p95 ×{:.2} \
             ({:+.2} ms)",
            if quic { "QUIC" } else { "TCP" },
            millis(c50) / millis(o50),
            millis(c50) - millis(o50),
            millis(c95) / millis(o95),
            millis(c95) - millis(o95),
        );
    }
}

fn main() -> Result<()> {
    common::init_logs();
    let plan = Plan::from_args()?;
    common::run_benchmark(plan.threads, common::CtrlC::Stop, run(plan))
}
