//! Churn (issue #13, part 5): 30 daemons on 127.0.0.1, records put with replication and blobs
//! seeded by 2 nodes each; 10 nodes die at random (5 with `kill -9`, 5 with SIGTERM); every
//! survivor must read every record and every blob; the dead ones restart with their stores
//! intact (the records and blobs they held are still there, locally).
//!
//! "Random" is a seeded draw, printed (`MCC_CHURN_SEED=N` replays one). A blob whose every
//! seeder died is gone by design (its bytes were nowhere else), so the draw is repeated until
//! each blob keeps one seeder; records get no such help: their 20 replicas must do.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use common::{Daemon, wait_until};
use futures::future::{join_all, try_join_all};
use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, RngCore as _, SeedableRng as _};

const NODES: usize = 30;
const KILLED: usize = 10;
const RECORDS: usize = 12;
const BLOBS: usize = 4;

/// Flags of every node: no rendezvous lookups (they add DHT traffic that 30 debug-build
/// daemons on a small machine do not need: everyone joins through node 0 and the DHT).
fn node_args(extra: &[&str]) -> Vec<String> {
    let mut a = common::base_args();
    a.extend(
        ["--rendezvous", "off", "--dial-backoff", "0.5"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string()),
    );
    a
}

/// Reads `key` from `node`, up to 3 tries (a lookup racing a dead peer may come back empty).
async fn read_record(node: &Daemon, key: &str, want: &[u8]) -> bool {
    for _ in 0..3 {
        if node.api.get_record(key).await.is_ok_and(|v| v == want) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// Downloads blob `cid` through `node` (fetched from its seeders when not stored there), up
/// to 3 tries.
async fn read_blob(node: &Daemon, cid: &str, want: &[u8]) -> bool {
    for _ in 0..3 {
        let mut got = Vec::new();
        if node
            .api
            .download_blob(cid, &mut got, |_, _| {})
            .await
            .is_ok()
            && got == want
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// The record keys and blob CIDs `node` holds locally.
async fn local_state(
    node: &Daemon,
    records: &[(String, Vec<u8>)],
) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
    let mut keys = BTreeSet::new();
    for (k, v) in records {
        if node
            .api
            .get_local_record(k)
            .await
            .is_ok_and(|got| got == *v)
        {
            keys.insert(k.clone());
        }
    }
    let blobs = node.api.blobs().await?.into_iter().map(|b| b.cid).collect();
    Ok((keys, blobs))
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_nodes_lose_ten_and_every_record_and_blob_survives() -> Result<()> {
    let started = Instant::now();
    let seed = std::env::var("MCC_CHURN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().next_u64());
    println!("churn seed {seed} (MCC_CHURN_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);

    let first = Daemon::start_with_args(node_args(&[])).await?;
    let boot = first.tcp_host_port().await?;
    let rest =
        try_join_all((1..NODES).map(|_| Daemon::start_with_args(node_args(&["--boot", &boot]))))
            .await?;
    let mut nodes: Vec<Daemon> = std::iter::once(first).chain(rest).collect();
    wait_until(90, "every routing table holds 4 peers", || async {
        let infos = try_join_all(nodes.iter().map(|d| d.api.node())).await?;
        Ok(infos.iter().all(|i| i.routing_table_size >= 4))
    })
    .await?;
    println!(
        "{NODES} nodes up and meshed after {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // Records, each put from a random node and replicated to its closest peers (all at once).
    let records: Vec<(String, Vec<u8>)> = (0..RECORDS)
        .map(|i| {
            (
                format!("/mcc/churn-{i}"),
                format!("value {i} of seed {seed}").into_bytes(),
            )
        })
        .collect();
    let putters: Vec<usize> = (0..RECORDS).map(|_| rng.gen_range(0..NODES)).collect();
    let puts = records.iter().zip(&putters).map(|((key, value), &from)| {
        let node = &nodes[from];
        async move {
            // A put whose every store request timed out (kad waits 5 s for each answer: a
            // loaded machine) is reported refused; it is tried again.
            let mut tries = 0;
            loop {
                tries += 1;
                match node.api.put_record(key, value.clone(), None).await {
                    Ok(out) if out.stored_locally && out.replicated => return Ok(()),
                    other if tries >= 5 => bail!("put {key} on node {from}: {other:?}"),
                    _ => tokio::time::sleep(Duration::from_secs(2)).await,
                }
            }
        }
    });
    try_join_all(puts).await?;

    // Blobs, each added on one node and fetched by another: two seeders.
    let dir = tempfile::tempdir()?;
    let mut blobs = Vec::new();
    let mut seeders: Vec<[usize; 2]> = Vec::new();
    for i in 0..BLOBS {
        let mut content = vec![0u8; 300 * 1024 + i * 700 * 1024];
        rng.fill_bytes(&mut content);
        let path = dir.path().join(format!("blob-{i}"));
        std::fs::write(&path, &content)?;
        let a = rng.gen_range(0..NODES);
        let b = (a + rng.gen_range(1..NODES)) % NODES;
        let cid = nodes[a].api.add_blob(&path, |_| {}).await?.cid;
        blobs.push((cid, content));
        seeders.push([a, b]);
    }
    let fetches = blobs.iter().zip(&seeders).map(|((cid, _), &[a, b])| {
        let fetcher = &nodes[b];
        async move {
            // The provider record goes out in the background: fetch once it can be found.
            wait_until(30, "the blob's provider record", || async {
                Ok(!fetcher.api.blob_providers(cid).await?.is_empty())
            })
            .await?;
            let mut tries = 0;
            while let Err(e) = fetcher.api.fetch_blob(cid, |_| {}).await {
                tries += 1;
                if tries >= 3 {
                    bail!("node {b} fetching {cid} from node {a}: {e}");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            anyhow::Ok(())
        }
    });
    try_join_all(fetches).await?;
    println!(
        "{RECORDS} records and {BLOBS} blobs (2 seeders each) stored after {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // The kill set: 10 of 30, each blob keeping a seeder.
    let mut order: Vec<usize> = (0..NODES).collect();
    let mut killed = Vec::new();
    for _ in 0..1000 {
        order.shuffle(&mut rng);
        let set = &order[..KILLED];
        if seeders.iter().all(|s| s.iter().any(|n| !set.contains(n))) {
            killed = set.to_vec();
            break;
        }
    }
    ensure!(
        killed.len() == KILLED,
        "no kill set keeps a seeder of each blob"
    );
    let (hard, soft) = killed.split_at(KILLED / 2);
    println!("kill -9: nodes {hard:?}; SIGTERM: nodes {soft:?}");
    let states = try_join_all(killed.iter().map(|&k| local_state(&nodes[k], &records))).await?;
    let before: HashMap<usize, _> = killed.iter().copied().zip(states).collect();
    for &k in hard {
        nodes[k].kill();
    }
    for &k in soft {
        nodes[k].stop()?;
    }

    // Every survivor reads every record and every blob.
    let survivors: Vec<usize> = (0..NODES).filter(|i| !killed.contains(i)).collect();
    let reads = survivors.iter().map(|&s| {
        let (node, records, blobs) = (&nodes[s], &records, &blobs);
        async move {
            let found = join_all(records.iter().map(|(k, v)| read_record(node, k, v))).await;
            let mut missing: Vec<String> = records
                .iter()
                .zip(found)
                .filter(|(_, ok)| !ok)
                .map(|((k, _), _)| k.clone())
                .collect();
            for (cid, content) in blobs {
                if !read_blob(node, cid, content).await {
                    missing.push(cid.clone());
                }
            }
            (s, missing)
        }
    });
    let results = join_all(reads).await;
    let wanted = survivors.len() * (RECORDS + BLOBS);
    let failed: Vec<_> = results.iter().filter(|(_, m)| !m.is_empty()).collect();
    let misses: usize = failed.iter().map(|(_, m)| m.len()).sum();
    println!(
        "survivors: {}/{wanted} reads succeeded ({} survivors × {RECORDS} records + {BLOBS} blobs) \
         after {:.0} s",
        wanted - misses,
        survivors.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        bail!("reads failed: {failed:?}");
    }

    // The dead come back with their stores intact.
    try_join_all(
        nodes
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| killed.contains(i))
            .map(|(_, d)| d.restart()),
    )
    .await?;
    let after = try_join_all(killed.iter().map(|&k| local_state(&nodes[k], &records))).await?;
    let mut intact = 0;
    for (&k, (keys, cids)) in killed.iter().zip(after) {
        let (keys_before, cids_before) = &before[&k];
        ensure!(
            keys.is_superset(keys_before) && cids.is_superset(cids_before),
            "node {k} lost data over its restart: records {keys_before:?} -> {keys:?}, \
             blobs {cids_before:?} -> {cids:?}"
        );
        intact += keys_before.len() + cids_before.len();
    }
    println!(
        "restarted {KILLED} nodes: {intact} locally held records and blobs all still there; \
         total {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
