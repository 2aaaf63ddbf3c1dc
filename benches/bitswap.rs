//! Bitswap throughput over loopback TCP: Helia (js IPFS, `tests/helia/helia.mjs` on Node)
//! fetching from mcc and from Helia, mcc fetching from Helia and from mcc.
//!
//! ```text
//! cargo bench --bench bitswap                  # 256 MiB
//! cargo bench --bench bitswap -- --size 64     # another size, in MiB
//! cargo test  --bench bitswap -- --quick       # smoke test: 8 MiB (or MCC_BENCH_QUICK=1)
//! ```
//!
//! One pseudo-random file is written in a temp folder. Rows, each timed alone:
//!
//! * `Helia ← Helia`: a Helia peer imports the file (1 MiB chunks, raw leaves, CIDv1: the
//!   same CID as an mcc add), a second Helia process dials it and reads the file over
//!   Bitswap (`unixfs.cat` into a file); the fetch itself is timed inside that process, so
//!   Node's start is not counted;
//! * `Helia ← mcc`: the same Helia fetch from an mcc node (in this process) that added the
//!   file;
//! * `mcc ← Helia`: a fresh mcc node dials the Helia peer and fetches the blob
//!   (`Blobs::fetch`: provider lookup, who-has, transfer, verification, disk writes, commit);
//! * `mcc ← mcc`: a fresh mcc node dials the mcc seeder and fetches the blob over
//!   `/mcc/blobs/1.0.0`, timed the same way.
//!
//! Every fetched copy is compared with the file. MB/s are 10^6 bytes per second. The target
//! is `Helia ← mcc ≥ 1.0 × Helia ← Helia`, printed as MET or MISSED. Without Node and the
//! npm packages the bench says so and stops (it fails when `MCC_REQUIRE_REFERENCE=1`).

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use common::node::Running;
use libp2p::Multiaddr;
use mcc::node::{Config, MdnsMode, Node, RecordsConfig};

const MIB: usize = 1024 * 1024;
/// Cap on each row and on each setup step.
const LIMIT: Duration = Duration::from_secs(600);

struct Plan {
    size: usize,
    threads: usize,
}

impl Plan {
    fn from_env() -> Result<Self> {
        let mut size = 256 * MIB;
        let mut quick = common::quick_from_env();
        common::for_each_arg(|flag, value| {
            match flag {
                "--quick" => quick = true,
                "--size" => size = common::positive(flag, &value()?)? * MIB,
                other => bail!("unknown argument {other:?}"),
            }
            Ok(())
        })?;
        if quick {
            size = 8 * MIB;
        }
        Ok(Self {
            size,
            threads: common::threads(common::cores())?,
        })
    }
}

fn helia_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helia")
}

/// Node and the Helia packages (installed with `npm ci` on first use), or why not.
fn helia_ready() -> Result<()> {
    let version = Command::new("node")
        .arg("--version")
        .output()
        .context("cannot run `node`")?;
    ensure!(version.status.success(), "`node --version` failed");
    let dir = helia_dir();
    if !dir
        .join("node_modules/@helia/bitswap/package.json")
        .exists()
    {
        let out = Command::new("npm")
            .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .context("cannot run `npm`")?;
        ensure!(
            out.status.success(),
            "`npm ci` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Deterministic pseudo-random bytes (xorshift64).
fn content(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = vec![0u8; len];
    for word in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
    }
    out
}

/// A Helia peer serving the file until dropped.
struct HeliaPeer {
    child: Child,
    addr: String,
    cid: String,
}

impl HeliaPeer {
    fn serve(file: &Path) -> Result<Self> {
        let mut child = Command::new("node")
            .arg("helia.mjs")
            .arg("serve")
            .arg(file)
            // mcc's layout (kubo's): 174 links per node, so the CIDs agree.
            .args(["--max-children", "174"])
            .current_dir(helia_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("run node")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let v: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                let _ = child.kill();
                bail!("helia serve printed {line:?}: {e}");
            }
        };
        Ok(Self {
            addr: v["addrs"][0].as_str().context("addrs")?.to_owned(),
            cid: v["cid"].as_str().context("cid")?.to_owned(),
            child,
        })
    }
}

impl Drop for HeliaPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Helia fetches `cid` from `addr` into `out`: the seconds its fetch took.
async fn helia_fetch(addr: String, cid: String, out: PathBuf) -> Result<f64> {
    let run = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("helia.mjs")
            .args(["fetch", &addr, &cid])
            .arg(&out)
            .current_dir(helia_dir())
            .output()
    })
    .await??;
    ensure!(
        run.status.success(),
        "helia fetch failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&run.stdout)?;
    Ok(v["ms"].as_f64().context("ms")? / 1000.0)
}

async fn start_node(dir: PathBuf) -> Result<Running> {
    let config = Config {
        data_dir: Some(dir),
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
        boot: Vec::new(),
        rendezvous: None,
        mdns: MdnsMode::Off,
        records: RecordsConfig {
            publish_did: false,
            ..RecordsConfig::default()
        },
        ..Config::default()
    };
    common::capped(LIMIT, "node start", async {
        Running::spawn(Node::builder(config), LIMIT).await
    })
    .await
}

async fn with_peer_id(running: &Running) -> Result<Multiaddr> {
    let addr = running.listen_addr(false).await?;
    Ok(addr.with(libp2p::multiaddr::Protocol::P2p(running.node.peer_id())))
}

/// A fresh mcc node dials `addr` and fetches `cid`: the seconds the fetch took.
async fn mcc_fetch(
    dir: PathBuf,
    addr: Multiaddr,
    mcc_seeder: bool,
    cid: &str,
    expected: &[u8],
) -> Result<f64> {
    let fetcher = start_node(dir).await?;
    let peer = fetcher.node.dial(addr).await?;
    let cid = mcc::blobs::parse_cid(cid)?;
    if mcc_seeder {
        // Wait until the seeder shows as a provider (it announced the blob at add).
        common::capped(LIMIT, "waiting for the provider record", async {
            loop {
                let found = fetcher.node.blobs().providers(&cid).await?;
                if found.iter().any(|p| p.peer_id == peer) {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await?;
    }
    let started = Instant::now();
    common::capped(LIMIT, "mcc fetch", async {
        Ok(fetcher.node.blobs().fetch(&cid, |_| {}).await?)
    })
    .await?;
    let took = started.elapsed().as_secs_f64();
    let (_, stream) = fetcher.node.blobs().read(&cid, None).await?;
    let chunks: Vec<bytes::Bytes> = futures::TryStreamExt::try_collect(stream).await?;
    ensure!(chunks.concat() == expected, "mcc fetched other bytes");
    fetcher.shutdown().await?;
    Ok(took)
}

fn row(name: &str, bytes: usize, secs: f64) -> f64 {
    let mbps = bytes as f64 / secs / 1e6;
    println!("{name:<16} {:>9.3} s {:>9.1} MB/s", secs, mbps);
    let _ = std::io::stdout().flush();
    mbps
}

async fn run(plan: Plan) -> Result<()> {
    if let Err(why) = helia_ready() {
        if std::env::var("MCC_REQUIRE_REFERENCE").is_ok_and(|v| v == "1") {
            bail!("Helia is required (MCC_REQUIRE_REFERENCE=1): {why:#}");
        }
        println!("bitswap bench SKIPPED: Helia cannot run: {why:#}");
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("file.bin");
    let data = content(plan.size);
    std::fs::write(&file, &data)?;
    println!(
        "bitswap bench: {} MiB, {} build, {} threads, loopback TCP",
        plan.size / MIB,
        common::build_kind(),
        plan.threads
    );

    // The mcc seeder and the Helia seeder.
    let seeder = start_node(tmp.path().join("seeder")).await?;
    let info = seeder
        .node
        .blobs()
        .add(tokio::fs::File::open(&file).await?)
        .await?;
    let helia = HeliaPeer::serve(&file)?;
    ensure!(
        helia.cid == info.cid,
        "Helia's CID {} differs from mcc's {}",
        helia.cid,
        info.cid
    );
    let seeder_addr = with_peer_id(&seeder).await?;

    let out = tmp.path().join("helia-from-helia.bin");
    let secs = helia_fetch(helia.addr.clone(), info.cid.clone(), out.clone()).await?;
    ensure!(std::fs::read(&out)? == data, "Helia←Helia: other bytes");
    std::fs::remove_file(&out)?;
    let helia_helia = row("Helia ← Helia", plan.size, secs);

    let out = tmp.path().join("helia-from-mcc.bin");
    let secs = helia_fetch(seeder_addr.to_string(), info.cid.clone(), out.clone()).await?;
    ensure!(std::fs::read(&out)? == data, "Helia←mcc: other bytes");
    std::fs::remove_file(&out)?;
    let helia_mcc = row("Helia ← mcc", plan.size, secs);

    let helia_addr: Multiaddr = helia.addr.parse()?;
    let secs = mcc_fetch(tmp.path().join("f1"), helia_addr, false, &info.cid, &data).await?;
    let mcc_helia = row("mcc ← Helia", plan.size, secs);

    let secs = mcc_fetch(tmp.path().join("f2"), seeder_addr, true, &info.cid, &data).await?;
    let mcc_mcc = row("mcc ← mcc", plan.size, secs);

    println!();
    println!(
        "Helia←mcc / Helia←Helia = {:.2}    mcc←Helia / mcc←mcc = {:.2}",
        helia_mcc / helia_helia,
        mcc_helia / mcc_mcc
    );
    let met = helia_mcc >= helia_helia;
    println!(
        "target Helia←mcc ≥ 1.0 × Helia←Helia: {}",
        if met { "MET" } else { "MISSED" }
    );
    drop(helia);
    seeder.shutdown().await?;
    Ok(())
}

fn main() -> Result<()> {
    common::init_logs();
    let plan = Plan::from_env()?;
    common::run_benchmark(plan.threads, common::CtrlC::Kill, run(plan))
}
