//! Blob fetch throughput over loopback: one file fetched from one and from three seeders,
//! side by side with direct copies of the same file measured in the same run.
//!
//! ```text
//! cargo bench --bench blobs                     # 1 GiB (about a minute; ~6.5 GiB free disk)
//! cargo bench --bench blobs -- --size 256       # another size, in MiB
//! cargo bench --bench blobs -- --quic           # also fetch over QUIC
//! cargo bench --bench blobs -- --no-diag        # skip the diagnostic rows (no mcc node)
//! cargo bench --bench blobs -- --window 32      # requests in flight in the protocol rows
//! cargo bench --bench blobs -- --dir /mnt/x     # temp folder elsewhere (default: $TMPDIR)
//! cargo test  --bench blobs -- --quick          # smoke test: 32 MiB (or MCC_BENCH_QUICK=1)
//! ```
//!
//! The bench writes the pseudo-random file once (xorshift64*, fsynced) in a temp folder; every
//! other file of the run (copies, the nodes' data folders) lives in the same folder, so on the
//! same disk. It then measures, one row at a time:
//!
//! * `ref` rows, baselines:
//!   - `unixfs chunk + sha256`: the file cut into 1 MiB blocks with their CIDs, one thread (the
//!     CPU work of an add, and a bound for anything that hashes every byte once on one core);
//!   - `cp + fsync`: `cp` of the file to another file, then an fsync of the copy;
//!   - `TCP → sink`, `TCP → file + fsync`: the file sent over one tokio `TcpStream` on
//!     127.0.0.1 with 1 MiB buffers, read on the other end into nothing or into a file that is
//!     fsynced at the end. The latter is the *direct copy* that the `×copy` column divides by:
//!     it does what a fetch must do (network, disk write, durability) and nothing more. Both
//!     run right before the fetches, when the disk and the page cache are in the same state.
//! * `diag` rows (skipped with `--no-diag`), to locate the costs, without mcc nodes:
//!   - `libp2p stream ×N`: N bare swarms (TCP + noise + yamux, mcc's transport stack) each
//!     sending 1/N of the file over one libp2p stream to one receiving swarm that drops it;
//!   - `blob protocol ×N`: the same swarms speaking `/mcc/blobs/1.0.0` (`mcc_blobs::transfer`
//!     `serve` and `fetch`, with their default settings): seeders serve straight from the source
//!     file (no disk store, no verification on read), the fetcher verifies every block (sha256)
//!     and keeps nothing. The gap to `libp2p stream` is the protocol; the gap from here to the
//!     `mcc fetch` rows is the disk store (seeder reads + verification, fetcher writes + commit).
//!   - `BlobStore put + commit`: the fetcher's disk work alone, on one thread: every block put
//!     into mcc's store, then the commit (fsync of every block file and the index).
//! * `mcc` rows: full `mcc::Node`s in this process, listening on TCP `127.0.0.1:0` only (QUIC too
//!   with `--quic`), no mDNS, no rendezvous key, data folders in the temp folder:
//!   - `add_blob`: seeder A adds the file (read through `tokio::fs::File`: chunking, hashing,
//!     block files, fsync at commit); then seeders B and C add it at the same time;
//!   - `fetch, 1 seeder`: a fresh fetcher dials A only, waits (bounded) until A shows as a
//!     provider, then `fetch_blob` is timed as a whole: provider lookup, transfer, verification,
//!     block writes and the commit (fsync of every block and the index). The note splits it
//!     into lookup, transfer (from the first to the last progress report) and commit;
//!   - `read_blob`: that fetcher reads the blob back (stream drained, content checked);
//!   - `fetch, 3 seeders`: another fresh fetcher dials A, B and C (B and C knew nobody before),
//!     the same way. The note gives each seeder's share of the blocks.
//!
//!   With `--quic` the 1-seeder fetch, then the 3-seeder one, run again over QUIC. Fetchers
//!   keep running with their copy until the end (see [`mcc_rows`]); seeders keep the blob.
//!   The direct copies (`TCP → …`) run right before the fetches.
//!
//! MB/s are 10^6 bytes per second (the unit of the targets), MiB/s 2^20. `CPU` is this
//! process's CPU time over the row's wall time (`cp` runs in a child process: not counted).
//! Every wait and every row is capped; the temp folder is removed at the end.
//! `MCC_BENCH_THREADS` sets the tokio worker threads (default: all CPUs); `RUST_LOG` turns on
//! the nodes' logs.

mod common;
#[path = "blobs/tc.rs"]
mod tc;
#[path = "../tests/common/mod.rs"]
mod testing;

use std::collections::{HashMap, HashSet};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use futures::StreamExt as _;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, noise, tcp, yamux};
use mcc::blobs::Progress;
use mcc::node::{Config, MdnsMode, Node, RecordsConfig};
use mcc_blobs::{BlockStore, Cid, DAG_PB, transfer, unixfs};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::compat::FuturesAsyncReadCompatExt as _;

const MIB: u64 = 1 << 20;
/// Size of the file in a full run and in a `--quick` one, in MiB.
const FULL_MIB: u64 = 1024;
const QUICK_MIB: u64 = 32;
/// Targets: MB/s from one seeder, and the speed-up of three seeders over one on loopback
/// (issue #14: at least 1.0).
const TARGET_MB_S: f64 = 300.0;
const TARGET_SPEEDUP: f64 = 1.0;
/// The tc-capped scenario: each seeder's uplink in Mbit/s, the file in a full and a quick run.
const TC_MBIT: u32 = 200;
const TC_FULL_MIB: u64 = 256;
const TC_QUICK_MIB: u64 = 32;
/// Buffer size of the direct copies and of the file reads.
const IO_BUF: usize = 1 << 20;
/// Seed of the file's pseudo-random bytes.
const SEED: u64 = 0x6d63_632d_626c_6f62;
/// Protocol of the bare-stream rows.
const BLAST: StreamProtocol = StreamProtocol::new("/mcc-bench/blast/1");
/// Cap on each setup step: starting or stopping a node, dialing, waiting for providers.
const SETUP_LIMIT: Duration = Duration::from_secs(30);
/// Free disk the run needs beyond the copies of the file.
const DISK_MARGIN: u64 = 256 * MIB;
/// Name of the row that `×copy` divides by.
const COPY_ROW: &str = "TCP → file + fsync";

// ---------------------------------------------------------------------------------------------
// Plan

/// What to run.
#[derive(Debug, Clone)]
struct Plan {
    quick: bool,
    /// Bytes of the file.
    size: u64,
    /// Parent of the run's temp folder.
    dir: PathBuf,
    quic: bool,
    diag: bool,
    /// Requests in flight per seeder in the `blob protocol` rows (`None`: the default).
    window: Option<usize>,
    threads: usize,
    /// The tc-capped scenario ([`tc`]): run it, run only it, each uplink's Mbit/s, bytes.
    tc: bool,
    tc_only: bool,
    tc_mbit: u32,
    tc_size: u64,
}

impl Plan {
    fn from_args() -> Result<Self> {
        let mut quick = common::quick_from_env();
        let (mut size_mib, mut dir, mut quic, mut diag) = (None, None, false, true);
        let mut window = None;
        let (mut tc, mut tc_only, mut tc_mbit, mut tc_mib) = (true, false, TC_MBIT, None);
        common::for_each_arg(|flag, value| {
            match flag {
                "--quick" => quick = true,
                "--size" => {
                    let mib = value()?
                        .parse::<u64>()
                        .ok()
                        .filter(|n| (1..=1 << 20).contains(n))
                        .context("--size takes a size in MiB (1 to 1048576)")?;
                    size_mib = Some(mib);
                }
                "--dir" => dir = Some(PathBuf::from(value()?)),
                "--quic" => quic = true,
                "--no-diag" => diag = false,
                "--window" => {
                    let n = value()?
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=1024).contains(n))
                        .context("--window takes a number of requests (1 to 1024)")?;
                    window = Some(n);
                }
                "--no-tc" => tc = false,
                "--tc-only" => tc_only = true,
                "--tc-mbit" => {
                    tc_mbit = value()?
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=100_000).contains(n))
                        .context("--tc-mbit takes Mbit/s (1 to 100000)")?;
                }
                "--tc-size" => {
                    let mib = value()?
                        .parse::<u64>()
                        .ok()
                        .filter(|n| (1..=1 << 16).contains(n))
                        .context("--tc-size takes a size in MiB (1 to 65536)")?;
                    tc_mib = Some(mib);
                }
                other => bail!(
                    "unknown argument {other:?} (known: --quick, --size MIB, --quic, --no-diag, \
                     --window N, --dir PATH, --no-tc, --tc-only, --tc-mbit N, --tc-size MIB)"
                ),
            }
            Ok(())
        })?;
        let threads = common::threads(common::cores())?;
        let size_mib = size_mib.unwrap_or(if quick { QUICK_MIB } else { FULL_MIB });
        Ok(Self {
            quick,
            size: size_mib * MIB,
            dir: dir.unwrap_or_else(std::env::temp_dir),
            quic,
            diag,
            window,
            threads,
            tc: tc || tc_only,
            tc_only,
            tc_mbit,
            tc_size: tc_mib.unwrap_or(if quick { TC_QUICK_MIB } else { TC_FULL_MIB }) * MIB,
        })
    }

    /// Cap on one measured row: a minute, plus the size at 5 MB/s.
    fn row_limit(&self) -> Duration {
        Duration::from_secs(60) + Duration::from_secs_f64(self.size as f64 / 5e6)
    }
}

// ---------------------------------------------------------------------------------------------
// Rows and measurements

/// One line of the table.
struct Row {
    group: &'static str,
    name: String,
    bytes: u64,
    elapsed: Duration,
    /// Process CPU time over wall time, in percent.
    cpu: Option<f64>,
    note: String,
}

impl Row {
    fn new(group: &'static str, name: impl Into<String>, bytes: u64, m: Measured) -> Self {
        Self {
            group,
            name: name.into(),
            bytes,
            elapsed: m.elapsed,
            cpu: m.cpu,
            note: String::new(),
        }
    }

    fn mb_s(&self) -> f64 {
        rate(self.bytes, self.elapsed) / 1e6
    }

    fn mib_s(&self) -> f64 {
        rate(self.bytes, self.elapsed) / MIB as f64
    }
}

fn rate(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Wall time and CPU use of a measured section.
#[derive(Debug, Clone, Copy)]
struct Measured {
    elapsed: Duration,
    cpu: Option<f64>,
}

/// Runs `fut`, capped at `limit`, and measures it.
async fn measure<T>(
    what: &str,
    limit: Duration,
    fut: impl Future<Output = Result<T>>,
) -> Result<(T, Measured)> {
    let cpu_before = common::process_cpu_secs();
    let start = Instant::now();
    let out = tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| anyhow!("{what}: not done within {limit:?}"))?
        .with_context(|| what.to_string())?;
    let elapsed = start.elapsed();
    let cpu = match (cpu_before, common::process_cpu_secs()) {
        (Some(a), Some(b)) => Some((b - a) / elapsed.as_secs_f64().max(1e-9) * 100.0),
        _ => None,
    };
    Ok((out, Measured { elapsed, cpu }))
}

/// Runs a setup step, capped at [`SETUP_LIMIT`].
async fn setup<T>(what: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(SETUP_LIMIT, fut)
        .await
        .map_err(|_| anyhow!("{what}: not done within {SETUP_LIMIT:?}"))?
        .with_context(|| what.to_string())
}

// ---------------------------------------------------------------------------------------------
// The file

/// xorshift64*: fast, and plenty random for bytes that must not compress or repeat.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// A fast, order-sensitive 64-bit checksum of a byte stream cut anywhere (not cryptographic:
/// it checks that bytes read back are the bytes written).
#[derive(Debug, Clone, Default)]
struct Checksum {
    state: u64,
    len: u64,
    carry: [u8; 8],
    carried: usize,
}

impl Checksum {
    fn word(&mut self, w: u64) {
        self.state = (self.state ^ w)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }

    fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.carried > 0 {
            let take = (8 - self.carried).min(data.len());
            self.carry[self.carried..self.carried + take].copy_from_slice(&data[..take]);
            self.carried += take;
            data = &data[take..];
            if self.carried < 8 {
                return;
            }
            self.word(u64::from_le_bytes(self.carry));
            self.carried = 0;
        }
        let mut words = data.chunks_exact(8);
        for chunk in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            self.word(u64::from_le_bytes(w));
        }
        let rest = words.remainder();
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carried = rest.len();
    }

    fn finish(mut self) -> u64 {
        if self.carried > 0 {
            self.carry[self.carried..].fill(0);
            self.word(u64::from_le_bytes(self.carry));
        }
        self.word(self.len);
        self.state
    }
}

/// Writes `size` pseudo-random bytes to `path` and fsyncs them; returns their checksum.
fn generate(path: &Path, size: u64) -> Result<u64> {
    let mut file = std::fs::File::create(path)?;
    let mut rng = Rng(SEED);
    let mut sum = Checksum::default();
    let mut buf = vec![0u8; IO_BUF];
    let mut left = size;
    while left > 0 {
        let n = left.min(IO_BUF as u64) as usize;
        rng.fill(&mut buf[..n]);
        sum.update(&buf[..n]);
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    Ok(sum.finish())
}

/// The file's DAG, as a read-only block store that serves leaves straight from the file.
struct FileStore {
    path: PathBuf,
    /// Leaf → (offset, length) in the file.
    leaves: HashMap<Cid, (u64, usize)>,
    /// The dag-pb nodes.
    nodes: HashMap<Cid, Vec<u8>>,
}

impl BlockStore for FileStore {
    fn has(&self, cid: &Cid) -> bool {
        self.nodes.contains_key(cid) || self.leaves.contains_key(cid)
    }

    fn get(&self, cid: &Cid) -> std::io::Result<Option<Vec<u8>>> {
        if let Some(data) = self.nodes.get(cid) {
            return Ok(Some(data.clone()));
        }
        let Some(&(offset, len)) = self.leaves.get(cid) else {
            return Ok(None);
        };
        let mut file = std::fs::File::open(&self.path)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut data = vec![0u8; len];
        file.read_exact(&mut data)?;
        Ok(Some(data))
    }

    fn put(&self, _: &Cid, _: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("the bench's file store is read-only"))
    }
}

/// The file's DAG.
struct Dag {
    root: Cid,
    blocks: usize,
    store: Arc<FileStore>,
}

/// Cuts the file into blocks as an add does (chunking and hashing, one thread).
fn index_file(path: &Path) -> Result<Dag> {
    fn record(
        blocks: Vec<unixfs::Block>,
        offset: &mut u64,
        leaves: &mut HashMap<Cid, (u64, usize)>,
        nodes: &mut HashMap<Cid, Vec<u8>>,
    ) {
        for block in blocks {
            if block.cid.codec() == DAG_PB {
                nodes.insert(block.cid, block.data);
            } else {
                leaves
                    .entry(block.cid)
                    .or_insert((*offset, block.data.len()));
                *offset += block.data.len() as u64;
            }
        }
    }
    let mut file = std::fs::File::open(path)?;
    let mut builder = unixfs::Builder::new();
    let (mut leaves, mut nodes) = (HashMap::new(), HashMap::new());
    let mut offset = 0u64;
    let mut buf = vec![0u8; IO_BUF];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        record(
            builder.push(&buf[..n]),
            &mut offset,
            &mut leaves,
            &mut nodes,
        );
    }
    let (rest, root, _) = builder.finish();
    record(rest, &mut offset, &mut leaves, &mut nodes);
    Ok(Dag {
        root,
        blocks: leaves.len() + nodes.len(),
        store: Arc::new(FileStore {
            path: path.to_path_buf(),
            leaves,
            nodes,
        }),
    })
}

/// A block store that keeps the dag-pb nodes and only the names of the leaves.
#[derive(Default)]
struct SinkStore {
    nodes: Mutex<HashMap<Cid, Vec<u8>>>,
    leaves: Mutex<HashSet<Cid>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SinkStore {
    fn blocks(&self) -> usize {
        lock(&self.nodes).len() + lock(&self.leaves).len()
    }
}

impl BlockStore for SinkStore {
    fn has(&self, cid: &Cid) -> bool {
        lock(&self.nodes).contains_key(cid) || lock(&self.leaves).contains(cid)
    }

    fn get(&self, cid: &Cid) -> std::io::Result<Option<Vec<u8>>> {
        Ok(lock(&self.nodes).get(cid).cloned())
    }

    fn put(&self, cid: &Cid, data: &[u8]) -> std::io::Result<()> {
        if cid.codec() == DAG_PB {
            lock(&self.nodes).insert(*cid, data.to_vec());
        } else {
            lock(&self.leaves).insert(*cid);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Baselines

async fn cp_row(plan: &Plan, src: &Path, tmp: &Path) -> Result<Row> {
    let dst = tmp.join("cp-copy.bin");
    let (how, m) = measure("cp", plan.row_limit(), async {
        let how = match tokio::process::Command::new("cp")
            .arg(src)
            .arg(&dst)
            .status()
            .await
        {
            Ok(status) if status.success() => "cp",
            Ok(status) => bail!("cp failed: {status}"),
            Err(_) => {
                tokio::fs::copy(src, &dst).await?;
                "std::fs::copy (no cp here)"
            }
        };
        tokio::fs::File::open(&dst).await?.sync_all().await?;
        Ok(how)
    })
    .await?;
    let copied = std::fs::metadata(&dst)?.len();
    std::fs::remove_file(&dst)?;
    ensure!(copied == plan.size, "the copy has {copied} bytes");
    let mut row = Row::new("ref", "cp + fsync", plan.size, m);
    row.note = format!("{how}, then fsync of the copy");
    Ok(row)
}

/// Sends the file over one loopback TCP connection into nothing, or into a file then fsynced.
async fn tcp_copy(src: &Path, to: Option<PathBuf>) -> Result<u64> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let receiver = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let mut reader = BufReader::with_capacity(IO_BUF, stream);
        let n = match to {
            None => tokio::io::copy_buf(&mut reader, &mut tokio::io::sink()).await?,
            Some(path) => {
                let mut file = tokio::fs::File::create(&path).await?;
                let n = tokio::io::copy_buf(&mut reader, &mut file).await?;
                file.sync_all().await?;
                n
            }
        };
        Ok::<u64, anyhow::Error>(n)
    });
    let mut stream = TcpStream::connect(addr).await?;
    let mut file = BufReader::with_capacity(IO_BUF, tokio::fs::File::open(src).await?);
    tokio::io::copy_buf(&mut file, &mut stream).await?;
    stream.shutdown().await?;
    drop(stream);
    receiver.await?
}

async fn tcp_row(plan: &Plan, src: &Path, tmp: &Path, to_file: bool) -> Result<Row> {
    let dst = tmp.join("tcp-copy.bin");
    let name = if to_file { COPY_ROW } else { "TCP → sink" };
    let (received, m) = measure(
        name,
        plan.row_limit(),
        tcp_copy(src, to_file.then(|| dst.clone())),
    )
    .await?;
    if to_file {
        let copied = std::fs::metadata(&dst)?.len();
        std::fs::remove_file(&dst)?;
        ensure!(copied == plan.size, "the copy has {copied} bytes");
    }
    ensure!(received == plan.size, "{name}: received {received} bytes");
    let mut row = Row::new("ref", name, plan.size, m);
    row.note =
        "one tokio TcpStream on 127.0.0.1, 1 MiB buffers; run just before the fetches".to_string();
    Ok(row)
}

// ---------------------------------------------------------------------------------------------
// Bare swarms (diagnostics)

type BareSwarm = Swarm<mcc_streams::Behaviour>;

/// A swarm with mcc's TCP stack and only the stream behaviour, driven by its own task.
struct BarePeer {
    peer_id: PeerId,
    control: mcc_streams::Control,
    addr: Multiaddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl BarePeer {
    /// Listens on 127.0.0.1 and dials `dial`; returns once listening and connected.
    async fn start(dial: &[Multiaddr]) -> Result<Self> {
        let mut swarm: BareSwarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(|_| mcc_streams::Behaviour::default())?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        let control = swarm.behaviour().control();
        swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
        for addr in dial {
            swarm.dial(addr.clone())?;
        }
        let addr = setup("bare swarm start", async {
            let (mut addr, mut connected) = (None, 0);
            while addr.is_none() || connected < dial.len() {
                match swarm.select_next_some().await {
                    SwarmEvent::NewListenAddr { address, .. } => addr = Some(address),
                    SwarmEvent::ConnectionEstablished { endpoint, .. } if endpoint.is_dialer() => {
                        connected += 1
                    }
                    SwarmEvent::OutgoingConnectionError { error, .. } => bail!("dial: {error}"),
                    _ => {}
                }
            }
            addr.context("no listen address")
        })
        .await?;
        let peer_id = *swarm.local_peer_id();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = swarm.select_next_some() => {}
                }
            }
        });
        Ok(Self {
            peer_id,
            control,
            addr,
            stop,
            task,
        })
    }

    async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        setup("bare swarm stop", async { Ok(self.task.await?) }).await
    }
}

/// One letter per seeder, for the notes.
fn letter(i: usize) -> char {
    char::from(b'A' + (i % 26) as u8)
}

/// `n` parts of `size` bytes, cut on MiB boundaries.
fn parts(size: u64, n: usize) -> Vec<(u64, u64)> {
    let blocks = size.div_ceil(MIB);
    let n64 = n as u64;
    (0..n64)
        .map(|i| {
            let from = (blocks * i / n64 * MIB).min(size);
            let to = (blocks * (i + 1) / n64 * MIB).min(size);
            (from, to - from)
        })
        .collect()
}

/// `senders` swarms each send their part of the file over one stream to a receiving swarm.
async fn stream_row(plan: &Plan, src: &Path, senders: usize) -> Result<Row> {
    let receiver = BarePeer::start(&[]).await?;
    let mut incoming = receiver
        .control
        .clone()
        .accept(BLAST)
        .map_err(|_| anyhow!("{BLAST} already accepted"))?;
    let mut peers = Vec::new();
    for _ in 0..senders {
        peers.push(BarePeer::start(std::slice::from_ref(&receiver.addr)).await?);
    }
    // Open the streams one at a time, each once the receiver has taken the one before (needed
    // with libp2p-stream, which dropped streams its acceptor had not taken yet; kept so this
    // row measures what it always did).
    let (accepted, mut taken) = tokio::sync::mpsc::channel::<()>(1);
    let reading = tokio::spawn(async move {
        let mut readers = JoinSet::new();
        for _ in 0..senders {
            let (_, stream) = incoming.next().await.context("no more streams")?;
            readers.spawn(async move {
                let mut reader = BufReader::with_capacity(IO_BUF, stream.compat());
                tokio::io::copy_buf(&mut reader, &mut tokio::io::sink()).await
            });
            let _ = accepted.send(()).await;
        }
        let mut total = 0;
        while let Some(n) = readers.join_next().await {
            total += n??;
        }
        Ok::<u64, anyhow::Error>(total)
    });
    let mut streams = Vec::new();
    for (peer, (offset, len)) in peers.iter().zip(parts(plan.size, senders)) {
        let mut control = peer.control.clone();
        let stream = setup("opening a stream", async {
            let stream = control.open_stream(receiver.peer_id, BLAST).await?;
            taken.recv().await.context("the receiver stopped")?;
            Ok(stream)
        })
        .await?;
        let mut file = tokio::fs::File::open(src).await?;
        file.seek(SeekFrom::Start(offset)).await?;
        streams.push((stream.compat(), file.take(len)));
    }

    let name = format!("libp2p stream ×{senders}");
    let (received, m) = measure(&name, plan.row_limit(), async {
        let mut sending = JoinSet::new();
        for (mut stream, part) in streams {
            sending.spawn(async move {
                let mut reader = BufReader::with_capacity(IO_BUF, part);
                tokio::io::copy_buf(&mut reader, &mut stream).await?;
                stream.shutdown().await?;
                Ok::<(), anyhow::Error>(())
            });
        }
        while let Some(sent) = sending.join_next().await {
            sent??;
        }
        reading.await?
    })
    .await?;
    ensure!(received == plan.size, "{name}: received {received} bytes");
    for peer in peers {
        peer.stop().await?;
    }
    receiver.stop().await?;
    let mut row = Row::new("diag", name, plan.size, m);
    row.note = "TCP + noise + yamux, bare swarms, received into nothing".to_string();
    Ok(row)
}

/// `/mcc/blobs/1.0.0` between bare swarms: seeders serve from the file, the fetcher verifies
/// and keeps nothing.
async fn protocol_row(plan: &Plan, dag: &Dag, seeders: usize) -> Result<Row> {
    let (mut seeds, mut serving) = (Vec::new(), Vec::new());
    for _ in 0..seeders {
        let peer = BarePeer::start(&[]).await?;
        serving.push(tokio::spawn(transfer::serve(
            peer.control.clone(),
            dag.store.clone() as Arc<dyn BlockStore>,
            transfer::ServeStats::default(),
        )));
        seeds.push(peer);
    }
    let addrs: Vec<Multiaddr> = seeds.iter().map(|s| s.addr.clone()).collect();
    let fetcher = BarePeer::start(&addrs).await?;
    let ids: Vec<PeerId> = seeds.iter().map(|s| s.peer_id).collect();
    let sink = Arc::new(SinkStore::default());
    let mut config = transfer::FetchConfig::default();
    let name = match plan.window {
        Some(window) if window != config.window => {
            config.window = window;
            format!("blob protocol ×{seeders} w{window}")
        }
        _ => format!("blob protocol ×{seeders}"),
    };
    let (reports, m) = measure(&name, plan.row_limit(), async {
        Ok(transfer::fetch_with(
            config,
            fetcher.control.clone(),
            ids.clone(),
            dag.root,
            sink.clone() as Arc<dyn BlockStore>,
            |_| {},
        )
        .await?)
    })
    .await?;
    ensure!(
        sink.blocks() == dag.blocks,
        "{name}: {} of {} blocks arrived",
        sink.blocks(),
        dag.blocks
    );
    for task in serving {
        task.abort();
    }
    fetcher.stop().await?;
    for seed in seeds {
        seed.stop().await?;
    }
    let shares = reports
        .iter()
        .map(|r| {
            let i = ids.iter().position(|p| *p == r.peer).unwrap_or(usize::MAX);
            Share {
                seeder: letter(i),
                blocks: r.blocks,
                bytes: r.bytes,
                dropped: r.dropped.clone(),
            }
        })
        .collect::<Vec<_>>();
    let mut row = Row::new("diag", name, plan.size, m);
    row.note = format!(
        "serves from the file, fetcher verifies, stores nothing{}",
        shares_note(&shares, plan.size)
    );
    Ok(row)
}

/// The fetcher's disk work alone: every block put into mcc's `BlobStore` (one thread, the
/// blocks read from the source file), then the commit (fsync of every block file, the index).
async fn store_row(plan: &Plan, tmp: &Path, dag: &Dag) -> Result<Row> {
    let dir = tmp.join("store-diag");
    let store = mcc::blobs::BlobStore::open(&dir)?;
    let files = dag.store.clone();
    let (root, size) = (dag.root, plan.size);
    // Parents first, as a fetch stores them.
    let cids: Vec<Cid> = files
        .nodes
        .keys()
        .chain(files.leaves.keys())
        .copied()
        .collect();
    let ((put, commit), m) = measure("BlobStore put + commit", plan.row_limit(), async move {
        tokio::task::spawn_blocking(move || {
            store.begin_fetch(&root)?;
            let mut put = Duration::ZERO;
            for cid in &cids {
                let data = files.get(cid)?.context("block missing from the file")?;
                let start = Instant::now();
                store.put(cid, &data)?;
                put += start.elapsed();
            }
            let start = Instant::now();
            store.commit(&root, size, &cids)?;
            Ok::<_, anyhow::Error>((put, start.elapsed()))
        })
        .await?
    })
    .await?;
    std::fs::remove_dir_all(&dir)?;
    let mut row = Row::new("diag", "BlobStore put + commit", plan.size, m);
    row.note = format!(
        "the fetcher's disk work, one thread: put {:.2} s ({:.0} MB/s), commit {:.2} s \
         (fsync of {} block files, the index)",
        put.as_secs_f64(),
        rate(plan.size, put) / 1e6,
        commit.as_secs_f64(),
        dag.blocks
    );
    Ok(row)
}

/// One seeder's part of a download.
struct Share {
    seeder: char,
    blocks: u64,
    bytes: u64,
    dropped: Option<String>,
}

fn shares_note(shares: &[Share], size: u64) -> String {
    if shares.len() < 2 && shares.iter().all(|s| s.dropped.is_none()) {
        return String::new();
    }
    let parts: Vec<String> = shares
        .iter()
        .map(|s| {
            let mut part = format!(
                "{} {} blk {:.0}%",
                s.seeder,
                s.blocks,
                s.bytes as f64 * 100.0 / size.max(1) as f64
            );
            if let Some(why) = &s.dropped {
                part.push_str(&format!(" DROPPED: {why}"));
            }
            part
        })
        .collect();
    format!("; {}", parts.join(", "))
}

// ---------------------------------------------------------------------------------------------
// mcc nodes

/// A running node and what it takes to stop it.
struct Running {
    node: Node,
    task: JoinHandle<()>,
    stop: oneshot::Sender<()>,
    dir: PathBuf,
}

impl Running {
    async fn start(dir: PathBuf, quic: bool, keep_blobs: bool) -> Result<Self> {
        let mut listen: Vec<Multiaddr> = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
        if quic {
            listen.push("/ip4/127.0.0.1/udp/0/quic-v1".parse()?);
        }
        let config = Config {
            data_dir: Some(dir.clone()),
            listen,
            boot: Vec::new(),
            rendezvous: None,
            mdns: MdnsMode::Off,
            keep_blobs,
            records: RecordsConfig {
                publish_did: false,
                ..RecordsConfig::default()
            },
            ..Config::default()
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let (node, task) = setup("node start", async {
            Ok(Node::builder(config)
                .spawn(async move {
                    let _ = stopped.await;
                })
                .await?)
        })
        .await?;
        Ok(Self {
            node,
            task,
            stop,
            dir,
        })
    }

    /// Stops the node and removes its data folder.
    async fn shutdown(self) -> Result<()> {
        let Self {
            node,
            task,
            stop,
            dir,
        } = self;
        drop(node);
        let _ = stop.send(());
        setup("node stop", async { Ok(task.await?) }).await?;
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))
    }

    /// The node's listen address of the wanted transport, once it reports one.
    async fn listen_addr(&self, quic: bool) -> Result<Multiaddr> {
        setup("listen address", async {
            loop {
                let found = self.node.info().await?.listen_addrs.into_iter().find(|a| {
                    a.iter().any(|p| match p {
                        Protocol::QuicV1 => quic,
                        Protocol::Tcp(_) => !quic,
                        _ => false,
                    })
                });
                if let Some(addr) = found {
                    return Ok(addr);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    }
}

async fn add_file(node: &Node, src: &Path, dag: &Dag) -> Result<()> {
    let file = tokio::fs::File::open(src).await?;
    let info = node.blobs().add(file).await?;
    ensure!(
        info.cid == dag.root.to_string(),
        "add_blob gave {}, expected {}",
        info.cid,
        dag.root
    );
    Ok(())
}

fn transport_name(quic: bool) -> &'static str {
    if quic { "QUIC" } else { "TCP" }
}

/// A fresh fetcher dials `seeders`, waits until it sees them all as providers, then fetches the
/// blob; returns the row and the fetcher (still running).
async fn fetch_row(
    plan: &Plan,
    dir: PathBuf,
    seeders: &[Running],
    quic: bool,
    root: &Cid,
) -> Result<(Row, Running)> {
    let fetcher = Running::start(dir, quic, false).await?;
    let mut ids = Vec::new();
    for seeder in seeders {
        let addr = seeder.listen_addr(quic).await?;
        let peer = setup("dial", async { Ok(fetcher.node.dial(addr.clone()).await?) }).await?;
        ensure!(
            peer == seeder.node.peer_id(),
            "dialed {addr}, reached {peer}"
        );
        ids.push(peer);
    }
    let lookup = setup("waiting for the seeders to show as providers", async {
        loop {
            let start = Instant::now();
            let found = fetcher.node.blobs().providers(root).await?;
            let took = start.elapsed();
            if ids.iter().all(|id| found.iter().any(|p| p.peer_id == *id)) {
                return Ok(took);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await?;

    let name = format!(
        "fetch, {} seeder{} ({})",
        seeders.len(),
        if seeders.len() == 1 { "" } else { "s" },
        transport_name(quic)
    );
    let (mut first, mut last) = (None, None);
    let started = Instant::now();
    let (summary, m) = measure(&name, plan.row_limit(), async {
        let on_progress = |_: &Progress| {
            let now = Instant::now();
            first.get_or_insert(now);
            last = Some(now);
        };
        Ok(fetcher.node.blobs().fetch(root, on_progress).await?)
    })
    .await?;
    ensure!(!summary.local, "{name}: the blob was already there");
    ensure!(
        summary.size == plan.size,
        "{name}: fetched {} bytes",
        summary.size
    );
    let shares: Vec<Share> = summary
        .seeders
        .iter()
        .map(|s| {
            let i = ids
                .iter()
                .position(|p| p.to_string() == s.peer_id)
                .unwrap_or(usize::MAX);
            Share {
                seeder: letter(i),
                blocks: s.blocks,
                bytes: s.bytes,
                dropped: s.dropped.clone(),
            }
        })
        .collect();
    ensure!(
        shares.len() == seeders.len(),
        "{name}: {} seeders took part, not {}",
        shares.len(),
        seeders.len()
    );
    let mut note = String::new();
    if let (Some(first), Some(last)) = (first, last) {
        // Progress is reported once as the transfer starts and once as it ends.
        let before = first.saturating_duration_since(started);
        let transfer = last.saturating_duration_since(first);
        let after = (started + m.elapsed).saturating_duration_since(last);
        note = format!(
            "lookup+setup {:.0} ms (a lookup alone: {:.0} ms), transfer {:.2} s \
             ({:.0} MB/s), commit {:.2} s",
            before.as_secs_f64() * 1e3,
            lookup.as_secs_f64() * 1e3,
            transfer.as_secs_f64(),
            rate(plan.size, transfer) / 1e6,
            after.as_secs_f64(),
        );
    }
    note.push_str(&shares_note(&shares, plan.size));
    let peers = fetcher.node.peers().await?;
    for (i, id) in ids.iter().enumerate() {
        let connections: usize = peers
            .iter()
            .filter(|p| p.peer_id == *id)
            .map(|p| p.connections)
            .sum();
        if connections != 1 {
            note.push_str(&format!(
                "; WARNING {connections} connections to {}",
                letter(i)
            ));
        }
    }
    let mut row = Row::new("mcc", name, plan.size, m);
    row.note = note;
    Ok((row, fetcher))
}

async fn read_row(plan: &Plan, fetcher: &Running, root: &Cid, checksum: u64) -> Result<Row> {
    let ((len, got), m) = measure("read_blob", plan.row_limit(), async {
        let (len, stream) = fetcher.node.blobs().read(root, None).await?;
        let mut stream = std::pin::pin!(stream);
        let mut sum = Checksum::default();
        while let Some(chunk) = stream.next().await {
            sum.update(&chunk?);
        }
        Ok((len, sum.finish()))
    })
    .await?;
    ensure!(len == plan.size, "read_blob announced {len} bytes");
    ensure!(got == checksum, "read_blob returned other bytes");
    let mut row = Row::new("mcc", "read_blob (fetcher)", plan.size, m);
    row.note = "stream drained; blocks read and verified one at a time".to_string();
    Ok(row)
}

/// The `mcc` rows.
async fn mcc_rows(
    plan: &Plan,
    tmp: &Path,
    src: &Path,
    dag: &Dag,
    checksum: u64,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let mut seeders = Vec::new();
    for i in 0..3 {
        let dir = tmp.join(format!("seeder-{}", letter(i).to_ascii_lowercase()));
        seeders.push(Running::start(dir, plan.quic, true).await?);
    }
    println!("  seeders started: A, B, C (knowing nobody)");
    let mut done = Vec::new();

    let ((), m) = measure(
        "add_blob on A",
        plan.row_limit(),
        add_file(&seeders[0].node, src, dag),
    )
    .await?;
    let mut row = Row::new("mcc", "add_blob (seeder A)", plan.size, m);
    row.note = "from tokio::fs::File: chunk, hash, write blocks, fsync at commit".to_string();
    println!("  {}: {:.0} MB/s", row.name, row.mb_s());
    rows.push(row);

    let ((), m) = measure("add_blob on B and C", plan.row_limit(), async {
        futures::future::try_join(
            add_file(&seeders[1].node, src, dag),
            add_file(&seeders[2].node, src, dag),
        )
        .await?;
        Ok(())
    })
    .await?;
    let mut row = Row::new("mcc", "add_blob ×2 at once (B, C)", 2 * plan.size, m);
    row.note = "two adds of the file at the same time; MB/s of both together".to_string();
    println!("  {}: {:.0} MB/s", row.name, row.mb_s());
    rows.push(row);

    // The direct copies run here, beside the fetches: same disk, same page cache pressure (the
    // seeders' blocks are stored by now).
    for to_file in [false, true] {
        let row = tcp_row(plan, src, tmp, to_file).await?;
        println!("  {}: {:.0} MB/s", row.name, row.mb_s());
        rows.push(row);
    }

    // Every 1-seeder fetch first: the 3-seeder fetches introduce the seeders to each other.
    let transports: &[bool] = if plan.quic { &[false, true] } else { &[false] };
    for &quic in transports {
        let t = transport_name(quic).to_lowercase();
        let (row, fetcher) = fetch_row(
            plan,
            tmp.join(format!("fetcher-1-{t}")),
            &seeders[..1],
            quic,
            &dag.root,
        )
        .await?;
        println!("  {}: {:.0} MB/s", row.name, row.mb_s());
        rows.push(row);
        if !quic {
            let row = read_row(plan, &fetcher, &dag.root, checksum).await?;
            println!("  {}: {:.0} MB/s", row.name, row.mb_s());
            rows.push(row);
        }
        // Kept running (and its copy kept) until the end: a stopped peer would stay in the
        // seeders' routing tables, and every later lookup would wait for it (seconds over
        // QUIC); deleting 1 GiB of block files right before the next fetch would also weigh
        // on its commit.
        done.push(fetcher);
    }
    for &quic in transports {
        let t = transport_name(quic).to_lowercase();
        let (row, fetcher) = fetch_row(
            plan,
            tmp.join(format!("fetcher-3-{t}")),
            &seeders,
            quic,
            &dag.root,
        )
        .await?;
        println!("  {}: {:.0} MB/s", row.name, row.mb_s());
        rows.push(row);
        done.push(fetcher);
    }
    for node in seeders.into_iter().chain(done) {
        node.shutdown().await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Report

fn free_bytes(dir: &Path) -> Option<u64> {
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let kib: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn fs_type(dir: &Path) -> Option<String> {
    let out = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .ok()?;
    let name = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !name.is_empty()).then_some(name)
}

fn print_table(rows: &[Row]) {
    let mut rows: Vec<&Row> = rows.iter().collect();
    rows.sort_by_key(|r| {
        ["ref", "diag", "mcc", "tc"]
            .iter()
            .position(|g| *g == r.group)
    });
    let copy = rows
        .iter()
        .find(|r| r.name == COPY_ROW)
        .map_or(f64::NAN, |r| r.mb_s());
    println!(
        "{:<5} {:<28} {:>6} {:>7} {:>7} {:>7} {:>6} {:>5}  notes",
        "", "case", "MiB", "s", "MiB/s", "MB/s", "×copy", "CPU%"
    );
    for row in &rows {
        let cpu = row
            .cpu
            .map_or_else(|| "-".to_string(), |c| format!("{c:.0}"));
        println!(
            "{:<5} {:<28} {:>6} {:>7.2} {:>7.0} {:>7.0} {:>6.2} {:>5}  {}",
            row.group,
            row.name,
            row.bytes / MIB,
            row.elapsed.as_secs_f64(),
            row.mib_s(),
            row.mb_s(),
            row.mb_s() / copy,
            cpu,
            row.note,
        );
    }
}

/// What the verdicts of a run not in the issue's setup say.
fn caveat(plan: &Plan) -> &'static str {
    if plan.quick || cfg!(debug_assertions) || plan.size < FULL_MIB * MIB {
        " (not the issue's setup: indicative only)"
    } else {
        ""
    }
}

fn print_summary(plan: &Plan, rows: &[Row]) {
    let find = |name: &str| rows.iter().find(|r| r.name == name);
    let verdict = |ok: bool| if ok { "MET" } else { "MISSED" };
    let caveat = caveat(plan);
    println!();
    for quic in [false, true] {
        let t = transport_name(quic);
        let (Some(one), Some(three)) = (
            find(&format!("fetch, 1 seeder ({t})")),
            find(&format!("fetch, 3 seeders ({t})")),
        ) else {
            continue;
        };
        let speedup = three.mb_s() / one.mb_s();
        for base in [COPY_ROW, "TCP → sink"] {
            if let Some(b) = find(base) {
                println!(
                    "ratio mcc/direct ({t}): 1 seeder / {base} = {:.2}, 3 seeders / {base} = {:.2}",
                    one.mb_s() / b.mb_s(),
                    three.mb_s() / b.mb_s()
                );
            }
        }
        println!("ratio 3 seeders / 1 seeder ({t}): {speedup:.2}");
        if !quic {
            println!(
                "target ≥ {TARGET_MB_S:.0} MB/s from one seeder: {:.0} MB/s ({:.0} MiB/s): {}{caveat}",
                one.mb_s(),
                one.mib_s(),
                verdict(one.mb_s() >= TARGET_MB_S)
            );
            println!(
                "target 3 seeders ≥ {TARGET_SPEEDUP} × one: {speedup:.2} × ({:.0} vs {:.0} MB/s): {}{caveat}",
                three.mb_s(),
                one.mb_s(),
                verdict(speedup >= TARGET_SPEEDUP)
            );
        }
    }
}

/// The rows over 127.0.0.1: references, diagnostics, mcc nodes.
async fn loopback_rows(plan: &Plan, tmp: &Path, rows: &mut Vec<Row>) -> Result<()> {
    let src = tmp.join("source.bin");
    let (checksum, m) = measure("writing the file", plan.row_limit(), {
        let (src, size) = (src.clone(), plan.size);
        async move { tokio::task::spawn_blocking(move || generate(&src, size)).await? }
    })
    .await?;
    println!(
        "  file written and fsynced in {:.2} s",
        m.elapsed.as_secs_f64()
    );

    let (dag, m) = measure("chunking the file", plan.row_limit(), {
        let src = src.clone();
        async move { tokio::task::spawn_blocking(move || index_file(&src)).await? }
    })
    .await?;
    let mut row = Row::new("ref", "unixfs chunk + sha256", plan.size, m);
    row.note = format!(
        "one thread, file from the page cache; {} blocks, root {}",
        dag.blocks, dag.root
    );
    rows.push(row);

    rows.push(cp_row(plan, &src, tmp).await?);
    for row in rows.iter() {
        println!("  {}: {:.0} MB/s", row.name, row.mb_s());
    }

    if plan.diag {
        for n in [1, 3] {
            let row = stream_row(plan, &src, n).await?;
            println!("  {}: {:.0} MB/s", row.name, row.mb_s());
            rows.push(row);
        }
        for n in [1, 3] {
            let row = protocol_row(plan, &dag, n).await?;
            println!("  {}: {:.0} MB/s", row.name, row.mb_s());
            rows.push(row);
        }
        let row = store_row(plan, tmp, &dag).await?;
        println!("  {}: {:.0} MB/s", row.name, row.mb_s());
        rows.push(row);
    }

    mcc_rows(plan, tmp, &src, &dag, checksum, rows).await?;

    Ok(())
}

async fn run(plan: Plan) -> Result<()> {
    std::fs::create_dir_all(&plan.dir)?;
    let tmp = tempfile::Builder::new()
        .prefix("mcc-bench-blobs-")
        .tempdir_in(&plan.dir)?;
    let free = free_bytes(tmp.path());
    if let Some(free) = free {
        // The source, three seeders and two fetchers per transport.
        let copies = 4 + if plan.quic { 4 } else { 2 };
        let need = copies * plan.size + DISK_MARGIN;
        ensure!(
            free >= need,
            "{} has {} MiB free, the run needs about {} MiB (try --size or --dir)",
            tmp.path().display(),
            free / MIB,
            need / MIB
        );
    }
    println!(
        "blob fetch over 127.0.0.1: {} MiB of pseudo-random data, {} CPUs, {} tokio worker \
         threads, {} build{}",
        plan.size / MIB,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        plan.threads,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "optimized"
        },
        if plan.quick { ", QUICK smoke run" } else { "" },
    );
    println!(
        "temp folder {} ({}, {} GiB free); what a row writes is fsynced within the row; the \
         source file and block files are read from the page cache",
        tmp.path().display(),
        fs_type(tmp.path()).unwrap_or_else(|| "file system unknown".to_string()),
        free.map_or_else(|| "?".to_string(), |f| (f >> 30).to_string()),
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!(
            "load average before the run: {} (other work on the machine skews every row)",
            load.join(" ")
        );
    }
    println!("MB = 10^6 bytes (the targets' unit), MiB = 2^20 bytes; ×copy = MB/s / {COPY_ROW}");
    println!();

    let mut rows = Vec::new();
    if !plan.tc_only {
        loopback_rows(&plan, tmp.path(), &mut rows).await?;
    }
    if plan.tc {
        let src = tmp.path().join("tc-source.bin");
        let size = plan.tc_size;
        let src2 = src.clone();
        tokio::task::spawn_blocking(move || generate(&src2, size)).await??;
        if let Some(tc_rows) =
            tc::rows(&src, tmp.path(), plan.tc_size, plan.tc_mbit, plan.quick).await?
        {
            rows.extend(tc_rows);
        }
    }
    println!();
    print_table(&rows);
    print_summary(&plan, &rows);
    tc::print_summary(&rows, caveat(&plan));
    tmp.close().context("removing the temp folder")?;
    Ok(())
}

fn main() -> Result<()> {
    let plan = Plan::from_args()?;
    common::init_logs();
    common::run_benchmark(plan.threads, common::CtrlC::Kill, run(plan))
}
