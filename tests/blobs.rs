//! Blobs through the real binary: add, fetch across the mesh from several seeders, seed on,
//! survive restarts, and never show a half-added blob.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{Daemon, cli, wait_until};
use sha2::{Digest, Sha256};

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

fn add_with_cli(d: &Daemon, path: &std::path::Path) -> Result<String> {
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

fn get_with_cli(d: &Daemon, cid: &str, out: &std::path::Path) -> Result<Vec<u8>> {
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
    ensure!(ok, "blob get failed: {err}");
    Ok(std::fs::read(out)?)
}

async fn wait_for_seeder(d: &Daemon, cid: &str, seeder: &str) -> Result<()> {
    wait_until(30, "seeder found", || async {
        Ok(d.api
            .blob_providers(cid)
            .await?
            .iter()
            .any(|p| p.peer_id.to_string() == seeder))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_crosses_the_mesh_and_is_seeded_on() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("random.bin");
    let content = data(50 << 20, 42);
    std::fs::write(&file, &content)?;

    let mut a = Daemon::start(&[]).await?;
    let b = Daemon::start(&["--boot", &a.tcp_host_port().await?]).await?;
    let boot_b = b.tcp_host_port().await?;
    let c = Daemon::start(&["--boot", &boot_b]).await?;

    let cid = add_with_cli(&a, &file)?;
    assert!(
        cid.starts_with("bafy"),
        "a multi-block file has a dag-pb root: {cid}"
    );
    wait_for_seeder(&c, &cid, &a.peer_id().await?).await?;
    let got = get_with_cli(&c, &cid, &tmp.path().join("c.bin"))?;
    assert_eq!(Sha256::digest(&got), Sha256::digest(&content));

    // With --keep-blobs (the default) C seeds it: D gets it from C after A is gone.
    a.kill();
    let d = Daemon::start(&["--boot", &boot_b]).await?;
    wait_for_seeder(&d, &cid, &c.peer_id().await?).await?;
    let got = get_with_cli(&d, &cid, &tmp.path().join("d.bin"))?;
    assert_eq!(Sha256::digest(&got), Sha256::digest(&content));
    assert!(
        d.api
            .blobs()
            .await?
            .iter()
            .any(|x| x.cid == cid && x.size == content.len() as u64)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn three_seeders_share_a_download_and_keep_blobs_false_does_not_seed() -> Result<()> {
    let content = data(24 << 20, 3);
    let seeders = [
        Daemon::start(&[]).await?,
        Daemon::start(&[]).await?,
        Daemon::start(&[]).await?,
    ];
    let boot = seeders[0].tcp_host_port().await?;
    for s in &seeders[1..] {
        s.api.dial(&boot).await?;
    }
    let mut cid = String::new();
    for s in &seeders {
        let info = reqwest::Client::new()
            .post(format!("{}/api/v1/blobs", s.api.base_url()))
            .body(content.clone())
            .send()
            .await?
            .json::<serde_json::Value>()
            .await?;
        cid = info["cid"].as_str().context("cid")?.to_string();
    }
    let d = Daemon::start(&["--boot", &boot, "--keep-blobs", "false"]).await?;
    for s in &seeders {
        wait_for_seeder(&d, &cid, &s.peer_id().await?).await?;
    }
    let summary = d.api.fetch_blob(&cid, |_| {}).await?;
    assert_eq!(summary.size, content.len() as u64);
    ensure!(summary.seeders.len() == 3, "{summary:?}");
    for s in &summary.seeders {
        ensure!(s.blocks > 0, "a seeder served nothing: {summary:?}");
    }
    let mut got = Vec::new();
    d.api.download_blob(&cid, &mut got, |_, _| {}).await?;
    assert_eq!(got, content);
    // D does not announce what it fetched.
    let d_id = d.peer_id().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = seeders[0].api.blob_providers(&cid).await?;
    assert!(
        !seen.iter().any(|p| p.peer_id.to_string() == d_id),
        "{seen:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn blobs_survive_restart_and_a_killed_add_leaves_nothing() -> Result<()> {
    let mut a = Daemon::start(&["--rendezvous", "off"]).await?;
    let content = data(5 << 20, 8);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let info: serde_json::Value = http
        .post(format!("{}/api/v1/blobs", a.api.base_url()))
        .body(content.clone())
        .send()
        .await?
        .json()
        .await?;
    let cid = info["cid"].as_str().context("cid")?.to_string();

    // Ranges.
    let r = http
        .get(format!("{}/api/v1/blobs/{cid}", a.api.base_url()))
        .header("range", "bytes=1048570-1048589")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.bytes().await?.as_ref(), &content[1048570..1048590]);
    let r = http
        .get(format!("{}/api/v1/blobs/{cid}", a.api.base_url()))
        .header("range", "bytes=-10")
        .send()
        .await?;
    assert_eq!(r.bytes().await?.as_ref(), &content[content.len() - 10..]);
    let r = http
        .get(format!("{}/api/v1/blobs/{cid}", a.api.base_url()))
        .header("range", "bytes=99999999-")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 416);

    // Bad input.
    for (path, want) in [
        ("not-a-cid", 400),
        (
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
            404,
        ),
    ] {
        let r = http
            .get(format!("{}/api/v1/blobs/{path}", a.api.base_url()))
            .send()
            .await?;
        assert_eq!(r.status().as_u16(), want, "{path}");
        let v: serde_json::Value = r.json().await?;
        assert!(v["error"].is_string());
    }

    // kill -9 in the middle of an add: the first 3 MiB arrive, then the node dies.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let url = format!("{}/api/v1/blobs", a.api.base_url());
    let upload = tokio::spawn(async move {
        let body =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
        reqwest::Client::new()
            .post(url)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
    });
    for i in 0..3 {
        tx.send(Ok(data(1 << 20, 100 + i))).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.kill();
    let _ = upload.await;
    let blocks_before_restart = count_files(&a.dir.join("blobs").join("blocks"));
    a.restart().await?;
    let list = a.api.blobs().await?;
    assert_eq!(list.len(), 1, "only the complete blob is there: {list:?}");
    assert_eq!(list[0].cid, cid);
    let blocks = count_files(&a.dir.join("blobs").join("blocks"));
    assert_eq!(
        blocks, list[0].blocks as usize,
        "orphans of the killed add were removed (had {blocks_before_restart})"
    );
    let mut got = Vec::new();
    a.api.download_blob(&cid, &mut got, |_, _| {}).await?;
    assert_eq!(got, content);

    // Delete removes it and its blocks.
    let dir = a.dir.to_string_lossy().into_owned();
    let (ok, _, err) = cli(&["blob", "rm", &cid, "--data-folder", &dir])?;
    assert!(ok, "{err}");
    assert!(a.api.blobs().await?.is_empty());
    assert_eq!(count_files(&a.dir.join("blobs").join("blocks")), 0);
    Ok(())
}

fn count_files(dir: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() { count_files(&p) } else { 1 }
        })
        .sum()
}

/// A foreign peer that announces itself as a seeder of a blob and serves tampered blocks.
mod attacker {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Duration;

    use anyhow::{Result, bail};
    use futures::StreamExt;
    use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
    use libp2p::{Multiaddr, PeerId, kad, noise, tcp, yamux};
    use mcc_blobs::{BlockStore, Cid};

    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        kad: kad::Behaviour<kad::store::MemoryStore>,
        stream: mcc_streams::Behaviour,
    }

    /// Every block it has, with one byte flipped.
    struct Tampered(HashMap<Cid, Vec<u8>>);

    impl BlockStore for Tampered {
        fn has(&self, cid: &Cid) -> bool {
            self.0.contains_key(cid)
        }
        fn get(&self, cid: &Cid) -> std::io::Result<Option<Vec<u8>>> {
            Ok(self.0.get(cid).map(|b| {
                let mut b = b.clone();
                if let Some(x) = b.last_mut() {
                    *x ^= 0xff;
                }
                b
            }))
        }
        fn put(&self, _: &Cid, _: &[u8]) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Connects to `nodes`, announces `root` and serves tampered blocks until dropped.
    pub async fn run(
        content: &[u8],
        nodes: Vec<(PeerId, Multiaddr)>,
    ) -> Result<(PeerId, tokio::task::JoinHandle<()>)> {
        let (blocks, root, _) = mcc_blobs::unixfs::build(content);
        let store: Arc<dyn BlockStore> = Arc::new(Tampered(
            blocks.into_iter().map(|b| (b.cid, b.data)).collect(),
        ));
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(|key| {
                let id = key.public().to_peer_id();
                let mut k = kad::Behaviour::with_config(
                    id,
                    kad::store::MemoryStore::new(id),
                    kad::Config::new(kad::PROTOCOL_NAME),
                );
                k.set_mode(Some(kad::Mode::Server));
                Behaviour {
                    kad: k,
                    stream: mcc_streams::Behaviour::default(),
                }
            })?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        let me = *swarm.local_peer_id();
        swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                swarm.add_external_address(address);
                break;
            }
        }
        let server = mcc_blobs::transfer::serve(
            swarm.behaviour().stream.control(),
            store,
            mcc_blobs::transfer::ServeStats::default(),
        );
        tokio::spawn(server);
        for (peer, addr) in &nodes {
            swarm.behaviour_mut().kad.add_address(peer, addr.clone());
            swarm.dial(addr.clone())?;
        }
        let key = kad::RecordKey::new(&root.hash().to_bytes());
        let q = swarm.behaviour_mut().kad.start_providing(key)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ev = tokio::time::timeout_at(deadline, swarm.select_next_some()).await?;
            if let SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::StartProviding(r),
                ..
            })) = ev
                && id == q
            {
                if r.is_err() {
                    bail!("announce failed: {r:?}");
                }
                break;
            }
        }
        let task = tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });
        Ok((me, task))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seeder_serving_tampered_blocks_is_dropped() -> Result<()> {
    let content = data(12 << 20, 77);
    let a = Daemon::start(&[]).await?;
    let c = Daemon::start(&["--boot", &a.tcp_host_port().await?]).await?;
    let info: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/v1/blobs", a.api.base_url()))
        .body(content.clone())
        .send()
        .await?
        .json()
        .await?;
    let cid = info["cid"].as_str().context("cid")?.to_string();
    let mut nodes = Vec::new();
    for d in [&a, &c] {
        let addr = format!(
            "/ip4/127.0.0.1/tcp/{}",
            d.tcp_host_port().await?.rsplit(':').next().unwrap_or("0")
        );
        nodes.push((d.peer_id().await?.parse()?, addr.parse()?));
    }
    let (evil, task) = attacker::run(&content, nodes).await?;
    wait_for_seeder(&c, &cid, &evil.to_string()).await?;
    wait_for_seeder(&c, &cid, &a.peer_id().await?).await?;

    let summary = c.api.fetch_blob(&cid, |_| {}).await?;
    let mut got = Vec::new();
    c.api.download_blob(&cid, &mut got, |_, _| {}).await?;
    assert!(got == content, "the result is intact");
    let entry = summary
        .seeders
        .iter()
        .find(|s| s.peer_id == evil.to_string())
        .context(format!("the tampering seeder was not used: {summary:?}"))?;
    assert!(entry.dropped.is_some(), "it was dropped: {summary:?}");
    task.abort();
    Ok(())
}

/// Writes the review's "DAG bomb" (`depth` dag-pb levels, each node linking 174 times to the
/// same child, over one 1-byte leaf) into the block folder of `d`, as `dagbomb.py` does, and
/// returns the root CID and the root block's bytes.
fn write_bomb(d: &Daemon, depth: u32) -> Result<(mcc_blobs::Cid, Vec<u8>)> {
    use mcc_blobs::{DAG_PB, MAX_LINKS, RAW, cid_of, unixfs};
    let blocks_dir = d.dir.join("blobs").join("blocks");
    let write = |cid: &mcc_blobs::Cid, data: &[u8]| -> Result<()> {
        let name = cid.to_string();
        let shard = &name[name.len() - 3..name.len() - 1];
        std::fs::create_dir_all(blocks_dir.join(shard))?;
        std::fs::write(blocks_dir.join(shard).join(&name), data)?;
        Ok(())
    };
    let mut child = cid_of(RAW, b"x");
    write(&child, b"x")?;
    let (mut size, mut tsize) = (1u64, 1u64);
    let mut root = Vec::new();
    for _ in 0..depth {
        let node = unixfs::Node {
            links: vec![unixfs::Link { cid: child, tsize }; MAX_LINKS],
            filesize: size * MAX_LINKS as u64,
            blocksizes: vec![size; MAX_LINKS],
        };
        root = unixfs::encode(&node);
        tsize = root.len() as u64 + tsize * MAX_LINKS as u64;
        size *= MAX_LINKS as u64;
        child = cid_of(DAG_PB, &root);
        write(&child, &root)?;
    }
    Ok((child, root))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dag_bomb_is_refused_and_the_node_stays_up() -> Result<()> {
    let s = Daemon::start(&[]).await?;
    let mut v = Daemon::start(&["--boot", &s.tcp_host_port().await?]).await?;
    let http = reqwest::Client::new();
    let s_id = s.peer_id().await?;

    // A GET of a CID nobody has: 404, and no partial fetch is left behind (checked below).
    let unknown = mcc_blobs::cid_of(mcc_blobs::RAW, b"nobody has this");
    let r = http
        .get(format!("{}/api/v1/blobs/{unknown}", v.api.base_url()))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 404);

    for depth in [3, 4] {
        // S holds the bomb's blocks and, through a raw blob of the root's bytes (same multihash),
        // announces itself as a seeder of the dag-pb root.
        let (root, root_bytes) = write_bomb(&s, depth)?;
        let added: serde_json::Value = http
            .post(format!("{}/api/v1/blobs", s.api.base_url()))
            .body(root_bytes)
            .send()
            .await?
            .json()
            .await?;
        ensure!(added["cid"].is_string(), "{added}");
        let cid = root.to_string();
        wait_for_seeder(&v, &cid, &s_id).await?;

        let started = std::time::Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(30),
            http.get(format!("{}/api/v1/blobs/{cid}", v.api.base_url()))
                .send(),
        )
        .await
        .context("the GET of a bomb hangs")??;
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await?;
        assert_eq!(status, 422, "depth {depth}: {body}\n{}", v.log());
        let error = body["error"].as_str().context("a JSON error")?;
        assert!(error.contains("blob DAG refused"), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "depth {depth}: {:?}",
            started.elapsed()
        );
        // The node is alive, did not keep the bomb and does not seed it.
        v.api.health().await.context("the node died")?;
        assert!(v.api.blobs().await?.is_empty());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let v_id = v.peer_id().await?;
        let seeders = s.api.blob_providers(&cid).await?;
        assert!(!seeders.iter().any(|p| p.peer_id.to_string() == v_id));
        // Again: the same answer, no trace.
        let r = http
            .get(format!("{}/api/v1/blobs/{cid}", v.api.base_url()))
            .send()
            .await?;
        assert_eq!(r.status().as_u16(), 422);
    }
    assert_eq!(count_files(&v.dir.join("blobs").join("blocks")), 0);

    // No partial fetch is recorded: neither for the unknown CID nor for the bombs.
    v.stop()?;
    let store = mcc::blobs::BlobStore::open(&v.dir.join("blobs"))?;
    assert_eq!(store.partial_fetches(), Vec::<mcc_blobs::Cid>::new());
    assert!(store.list().is_empty());
    Ok(())
}

/// A fetch starts with the first providers found: it does not wait for the DHT lookup to end.
/// The fetcher knows the seeder and a peer that stops answering (SIGSTOP): a provider lookup
/// then lasts until kad gives up on that peer (its 5 s substream timeout), while the fetch,
/// started at the same moment, is done long before.
#[tokio::test(flavor = "multi_thread")]
async fn a_fetch_starts_with_the_first_providers_found() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("random.bin");
    let content = data(3 << 20, 14);
    std::fs::write(&file, &content)?;

    let seeder = Daemon::start(&[]).await?;
    let mut frozen = Daemon::start(&[]).await?;
    let cid = add_with_cli(&seeder, &file)?;
    let boot = format!(
        "{},{}",
        seeder.tcp_host_port().await?,
        frozen.tcp_host_port().await?
    );
    let fetcher = Daemon::start(&["--boot", &boot]).await?;
    wait_for_seeder(&fetcher, &cid, &seeder.peer_id().await?).await?;
    let frozen_id = frozen.peer_id().await?;
    // Connected is not enough: the lookup asks the peers of the fetcher's routing table, and
    // the frozen peer enters it only once identify showed it serving the DHT.
    wait_until(
        30,
        "the peer to freeze is in the fetcher's routing table",
        || async {
            Ok(fetcher
                .peers()
                .await?
                .iter()
                .any(|p| p.peer_id.to_string() == frozen_id && p.in_routing_table))
        },
    )
    .await?;

    let pid = frozen.child.as_ref().context("no child")?.id().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()?;
    let timed = |start: std::time::Instant| start.elapsed();
    let start = std::time::Instant::now();
    let lookup = async {
        let found = fetcher.api.blob_providers(&cid).await;
        (found, timed(start))
    };
    let fetch = async {
        let fetched = fetcher.api.fetch_blob(&cid, |_| {}).await;
        (fetched, timed(start))
    };
    let ((found, lookup_took), (fetched, fetch_took)) = tokio::join!(lookup, fetch);
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    frozen.kill();

    let summary = fetched?;
    ensure!(summary.size == content.len() as u64 && !summary.local);
    found?;
    ensure!(
        lookup_took >= Duration::from_secs(3),
        "the lookup did not wait for the frozen peer ({lookup_took:?}): the test proves nothing"
    );
    ensure!(
        fetch_took + Duration::from_secs(2) <= lookup_took,
        "the fetch took {fetch_took:?}, the lookup {lookup_took:?}: it waited for the lookup"
    );
    let got = get_with_cli(&fetcher, &cid, &tmp.path().join("got.bin"))?;
    assert_eq!(Sha256::digest(&got), Sha256::digest(&content));
    Ok(())
}
