//! Bitswap interop with real IPFS peers: Helia (js IPFS: libp2p 2.10, @helia/bitswap 2.2, run
//! by `tests/helia/helia.mjs` on Node) against the real `mcc` binary, on 127.0.0.1.
//!
//! The npm packages are installed into `tests/helia/node_modules` on first use (pinned by
//! `tests/helia/package-lock.json`, `ignore-scripts=true`). Without `node`/`npm` (or when the
//! install fails) the tests print why and pass, unless `MCC_REQUIRE_REFERENCE=1` (as in CI),
//! when they fail.

mod common;
#[path = "common/npm.rs"]
mod npm;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail, ensure};
use common::{Daemon, cli};

/// Prints past libtest's capture, so a skip shows in a plain `cargo test`.
fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "bitswap: {msg}");
}

fn helia_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helia")
}

/// Node and the Helia packages, ready to run (installed once per test process), or why not.
fn setup() -> &'static Result<(), String> {
    static SETUP: OnceLock<Result<(), String>> = OnceLock::new();
    SETUP.get_or_init(|| {
        npm::ensure_packages(
            &helia_dir(),
            20,
            &["@helia/bitswap/package.json", "libp2p/package.json"],
            "ci",
            note,
        )
    })
}

/// Whether Helia can run; if not, says why (and fails when it is required).
fn available(test: &str) -> bool {
    match setup() {
        Ok(()) => true,
        Err(why) if std::env::var("MCC_REQUIRE_REFERENCE").is_ok_and(|v| v == "1") => {
            panic!("{test}: Helia is required (MCC_REQUIRE_REFERENCE=1) but {why}")
        }
        Err(why) => {
            note(&format!("SKIPPED {test}: {why}"));
            false
        }
    }
}

/// Deterministic pseudo-random bytes.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `node helia.mjs fetch`: Helia dials `addr` and reads the file `cid` into `out`.
fn helia_fetch(addr: &str, cid: &str, out: &Path) -> Result<()> {
    let run = Command::new("node")
        .arg("helia.mjs")
        .args(["fetch", addr, cid])
        .arg(out)
        .current_dir(helia_dir())
        .output()
        .context("run node")?;
    ensure!(
        run.status.success(),
        "helia fetch failed ({}): {}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    Ok(())
}

/// A Helia peer serving one imported file until dropped.
struct HeliaPeer {
    child: Child,
    peer_id: String,
    addr: String,
    cid: String,
    dir: String,
}

impl HeliaPeer {
    fn serve(file: &Path, options: &[&str]) -> Result<Self> {
        let mut child = Command::new("node")
            .arg("helia.mjs")
            .arg("serve")
            .arg(file)
            .args(options)
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
        let text = |k: &str| v[k].as_str().map(str::to_owned).context(k.to_owned());
        Ok(Self {
            peer_id: text("peer_id")?,
            addr: v["addrs"][0].as_str().context("addrs")?.to_owned(),
            cid: text("cid")?,
            dir: text("dir")?,
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

/// The node's TCP address as a multiaddr with its peer id.
async fn multiaddr(d: &Daemon) -> Result<String> {
    let host_port = d.tcp_host_port().await?;
    let (host, port) = host_port.rsplit_once(':').context("host:port")?;
    Ok(format!("/ip4/{host}/tcp/{port}/p2p/{}", d.peer_id().await?))
}

fn add_with_cli(d: &Daemon, path: &Path) -> Result<String> {
    let dir = d.dir.to_string_lossy().into_owned();
    let (ok, out, err) = cli(&[
        "blob",
        "add",
        &path.to_string_lossy(),
        "--data-folder",
        &dir,
    ])?;
    ensure!(ok, "blob add failed: {err}");
    Ok(out.trim().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn helia_fetches_an_mcc_blob_over_bitswap() -> Result<()> {
    if !available("helia_fetches_an_mcc_blob_over_bitswap") {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("blob.bin");
    let content = data(3 * 1024 * 1024 + 12_345, 7);
    std::fs::write(&file, &content)?;
    let node = Daemon::start(&[]).await?;
    let cid = add_with_cli(&node, &file)?;

    let out = tmp.path().join("from-mcc.bin");
    helia_fetch(&multiaddr(&node).await?, &cid, &out)?;
    let got = std::fs::read(&out)?;
    ensure!(got.len() == content.len(), "{} bytes", got.len());
    ensure!(got == content, "the bytes Helia fetched differ");

    // A CIDv0 want finds the dag-pb root stored under its CIDv1.
    let v0 = to_v0(&cid)?;
    let out = tmp.path().join("from-mcc-v0.bin");
    helia_fetch(&multiaddr(&node).await?, &v0, &out)?;
    ensure!(std::fs::read(&out)? == content, "the bytes differ (CIDv0)");
    Ok(())
}

async fn rest_get(d: &Daemon, cid: &str) -> Result<Vec<u8>> {
    let url = format!("{}/api/v1/blobs/{cid}", d.api.base_url());
    let response = reqwest::get(&url).await?;
    let status = response.status();
    let body = response.bytes().await?;
    ensure!(
        status.is_success(),
        "GET {url}: {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(body.to_vec())
}

fn get_with_cli(d: &Daemon, cid: &str, out: &Path) -> Result<(bool, String)> {
    let dir = d.dir.to_string_lossy().into_owned();
    let (ok, _, err) = cli(&[
        "blob",
        "get",
        cid,
        "-o",
        &out.to_string_lossy(),
        "--data-folder",
        &dir,
    ])?;
    Ok((ok, err))
}

#[tokio::test(flavor = "multi_thread")]
async fn mcc_fetches_files_only_a_helia_peer_holds() -> Result<()> {
    if !available("mcc_fetches_files_only_a_helia_peer_holds") {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let node = Daemon::start(&[]).await?;
    // (chunk size, options, file size): IPFS' default layout with raw leaves; 256 KiB chunks
    // under a CIDv0 root with dag-pb leaves (`ipfs add`'s defaults); 4 KiB chunks, more than the 1024 links Helia puts in a node, so
    // the tree has two levels of dag-pb nodes.
    let cases: [(&str, &[&str], usize); 3] = [
        ("1 MiB chunks", &[], 3 * 1024 * 1024 + 7),
        (
            "256 KiB chunks, CIDv0 root",
            &[
                "--chunk",
                "262144",
                "--cid-version",
                "0",
                "--raw-leaves",
                "true",
            ],
            2 * 1024 * 1024 + 3,
        ),
        (
            "4 KiB chunks, 2 levels",
            &["--chunk", "4096"],
            1100 * 4096 + 5,
        ),
    ];
    for (i, (name, options, len)) in cases.into_iter().enumerate() {
        let content = data(len, 100 + i as u64);
        let file = tmp.path().join(format!("helia-{i}.bin"));
        std::fs::write(&file, &content)?;
        let helia = HeliaPeer::serve(&file, options)?;
        node.api.dial(&helia.addr).await.context("dial helia")?;
        if name.contains("CIDv0") {
            ensure!(helia.cid.starts_with("Qm"), "{name}: {}", helia.cid);
        }
        if i == 1 {
            // `GET /api/v1/blobs/{cid}` fetches too.
            let got = rest_get(&node, &helia.cid).await?;
            ensure!(got == content, "{name}: the REST bytes differ");
        } else {
            let out = tmp.path().join(format!("got-{i}.bin"));
            let (ok, err) = get_with_cli(&node, &helia.cid, &out)?;
            ensure!(ok, "{name}: blob get failed: {err}");
            ensure!(std::fs::read(&out)? == content, "{name}: the bytes differ");
        }
        ensure!(
            node.api.blobs().await?.iter().any(|b| b.size == len as u64),
            "{name}: the blob is listed"
        );

        if i == 0 {
            // A directory root: a clear error, no partial blob left.
            let out = tmp.path().join("dir.bin");
            let (ok, err) = get_with_cli(&node, &helia.dir, &out)?;
            ensure!(!ok, "fetching a directory must fail");
            ensure!(err.contains("directory"), "unclear error: {err}");
        }
    }
    Ok(())
}

/// The CIDv0 (`Qm...`) of a dag-pb sha2-256 CIDv1.
fn to_v0(cid: &str) -> Result<String> {
    let cid = mcc_blobs::Cid::try_from(cid)?;
    Ok(mcc_blobs::Cid::new_v0(*cid.hash())?.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn mcc_fetches_from_a_helia_provider_found_in_the_dht() -> Result<()> {
    if !available("mcc_fetches_from_a_helia_provider_found_in_the_dht") {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let content = data(2 * 1024 * 1024 + 99, 55);
    let file = tmp.path().join("provided.bin");
    std::fs::write(&file, &content)?;
    // A knows Helia (Helia announces itself to A); B knows only A.
    let a = Daemon::start(&[]).await?;
    let b = Daemon::start(&["--boot", &a.tcp_host_port().await?]).await?;
    // identify lists Bitswap: what IPFS peers look for.
    let a_id = a.peer_id().await?;
    common::wait_until(30, "B sees A's protocols", || async {
        Ok(b.peers().await?.iter().any(|p| {
            p.peer_id.to_string() == a_id && p.protocols.iter().any(|x| x == "/ipfs/bitswap/1.2.0")
        }))
    })
    .await?;
    let helia = HeliaPeer::serve(&file, &["--provide-to", &multiaddr(&a).await?])?;
    common::wait_until(30, "B finds Helia as a provider", || async {
        Ok(b.api
            .blob_providers(&helia.cid)
            .await
            .map(|found| found.iter().any(|p| p.peer_id.to_string() == helia.peer_id))
            .unwrap_or(false))
    })
    .await?;
    // (B may be connected to Helia by now: DHT queries dial the peers they learn of. B was
    // never given Helia's address: it learnt it from the provider record.)
    let out = tmp.path().join("got.bin");
    let (ok, err) = get_with_cli(&b, &helia.cid, &out)?;
    ensure!(ok, "blob get failed: {err}");
    ensure!(std::fs::read(&out)? == content, "the bytes differ");
    Ok(())
}
