//! The case multi-seeding exists for: each seeder's uplink capped with `tc`.
//!
//! A fetcher namespace and one namespace per seeder, each seeder joined to the fetcher by its
//! own veth pair (10.210.N.2 ↔ 10.210.N.1) whose seeder end sends through a `tbf` qdisc at
//! `--tc-mbit` Mbit/s. Real `mcc` processes (`ip netns exec`), reached through their APIs:
//!
//! * `link TCP (capped)`: one TCP stream from seeder 0's namespace into the fetcher's, into
//!   nothing: what one capped uplink carries;
//! * `fetch, 1 seeder (tc)`: a fresh fetcher that knows seeder 0 only fetches the blob
//!   (`POST /api/v1/blobs/{cid}/fetch`, provider lookup and commit included);
//! * `fetch, 3 seeders (tc)`: another fresh fetcher that knows all three does the same.
//!
//! Target (issue #14): 3 seeders ≥ 2.5 × one. The namespaces (and the processes in them) are
//! deleted at the end, also when a step fails; without root, `ip` or `tc` the scenario is
//! skipped with the reason (an error under `MCC_REQUIRE_NETNS=1`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::testing::{Daemon, base_args_listening, netns};
use super::{IO_BUF, MIB, Row, letter, measure, setup};

/// Seeders of the scenario.
const SEEDERS: usize = 3;
/// The libp2p port every node listens on in its namespace.
const PORT: u16 = 4001;
/// Where the baseline's sink listens in the fetcher's namespace.
const SINK_PORT: u16 = 5009;
/// The target: 3 capped seeders against one.
pub const TARGET_TC_SPEEDUP: f64 = 2.5;

/// Seeder `i`'s address, on its link to the fetcher.
fn seeder_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 210, i as u8, 2)
}

/// The fetcher's address on its link to seeder `i`.
fn fetcher_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 210, i as u8, 1)
}

/// The namespaces; deleted (with what runs inside) on drop.
struct Lab {
    fetcher: netns::Netns,
    seeders: Vec<netns::Netns>,
}

impl Lab {
    fn create(mbit: u32) -> Result<Self> {
        let stem = netns::unique_stem("blobtc");
        let fetcher = netns::Netns::create(&format!("{stem}-f"))?;
        let mut lab = Self {
            fetcher,
            seeders: Vec::new(),
        };
        for i in 0..SEEDERS {
            let ns = netns::Netns::create(&format!("{stem}-s{i}"))?;
            let (s, f) = (ns.name().to_string(), lab.fetcher.name().to_string());
            lab.seeders.push(ns);
            let port = format!("s{i}");
            netns::ip(&[
                "-n", &s, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns", &f,
            ])?;
            netns::ip(&[
                "-n",
                &s,
                "addr",
                "add",
                &format!("{}/24", seeder_ip(i)),
                "dev",
                "eth0",
            ])?;
            netns::ip(&[
                "-n",
                &f,
                "addr",
                "add",
                &format!("{}/24", fetcher_ip(i)),
                "dev",
                &port,
            ])?;
            netns::ip(&["-n", &s, "link", "set", "eth0", "up"])?;
            netns::ip(&["-n", &f, "link", "set", &port, "up"])?;
            // The seeder's uplink: a token bucket at `mbit`.
            netns::run_in(
                &s,
                "tc",
                &[
                    "qdisc",
                    "add",
                    "dev",
                    "eth0",
                    "root",
                    "tbf",
                    "rate",
                    &format!("{mbit}mbit"),
                    "burst",
                    "256kb",
                    "latency",
                    "50ms",
                ],
            )?;
        }
        Ok(lab)
    }

    fn seeder(&self, i: usize) -> &str {
        self.seeders[i].name()
    }
}

/// One capped TCP stream of `bytes` from seeder 0 into the fetcher's namespace.
async fn link_row(lab: &Lab, bytes: u64, limit: Duration) -> Result<Row> {
    let sink = SocketAddr::from((fetcher_ip(0), SINK_PORT));
    let listener = netns::bind(lab.fetcher.name(), sink).await?;
    let receiving = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await?;
        let mut buf = vec![0u8; IO_BUF];
        let mut got = 0u64;
        loop {
            let n = conn.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, anyhow::Error>(got);
            }
            got += n as u64;
        }
    });
    let mut conn = netns::connect(lab.seeder(0), sink).await?;
    let ((), m) = measure("link TCP (capped)", limit, async {
        let buf = vec![0x5au8; IO_BUF];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(IO_BUF as u64) as usize;
            conn.write_all(&buf[..n]).await?;
            left -= n as u64;
        }
        conn.shutdown().await?;
        let got = receiving.await??;
        ensure!(got == bytes, "the sink received {got} of {bytes} bytes");
        Ok(())
    })
    .await?;
    let mut row = Row::new("tc", "link TCP (capped)", bytes, m);
    row.note = "one TCP stream through one seeder's capped uplink".to_string();
    Ok(row)
}

fn node_args(listen: Ipv4Addr, boot: &[String]) -> Vec<String> {
    let mut args = base_args_listening(&format!("{listen}:{PORT}"));
    args.extend(["--mdns".to_string(), "off".to_string()]);
    if !boot.is_empty() {
        args.extend(["--boot".to_string(), boot.join(",")]);
    }
    args
}

/// A fresh fetcher that knows `seeders` fetches the blob `cid` of `bytes` bytes.
async fn fetch_row(
    lab: &Lab,
    dir: &Path,
    seeders: &[(usize, String)],
    cid: &str,
    bytes: u64,
    limit: Duration,
) -> Result<Row> {
    let boot: Vec<String> = seeders
        .iter()
        .map(|(i, _)| format!("{}:{PORT}", seeder_ip(*i)))
        .collect();
    let mut args = node_args(Ipv4Addr::UNSPECIFIED, &boot);
    // It must not seed its copy: the next fetcher would find it as a provider.
    args.extend(["--keep-blobs".to_string(), "false".to_string()]);
    let fetcher = Daemon::spawn_in_netns(lab.fetcher.name(), dir, args).await?;
    setup("waiting for the seeders to show as providers", async {
        loop {
            let found = fetcher.api.blob_providers(cid).await?;
            if seeders
                .iter()
                .all(|(_, id)| found.iter().any(|p| p.peer_id.to_string() == *id))
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .with_context(|| fetcher.log())?;
    let n = seeders.len();
    let name = format!("fetch, {n} seeder{} (tc)", if n == 1 { "" } else { "s" });
    let (mut first, mut last) = (None, None);
    let started = Instant::now();
    let (summary, m) = measure(&name, limit, async {
        Ok(fetcher
            .api
            .fetch_blob(cid, |_| {
                let now = Instant::now();
                first.get_or_insert(now);
                last = Some(now);
            })
            .await?)
    })
    .await?;
    ensure!(
        summary.size == bytes && !summary.local,
        "{name}: fetched {} bytes",
        summary.size
    );
    let shares: Vec<String> = summary
        .seeders
        .iter()
        .map(|s| {
            let i = seeders.iter().find(|(_, id)| *id == s.peer_id);
            let mut part = format!(
                "{} {:.0}%",
                i.map_or('?', |(i, _)| letter(*i)),
                s.bytes as f64 * 100.0 / bytes.max(1) as f64
            );
            if let Some(why) = &s.dropped {
                part.push_str(&format!(" DROPPED: {why}"));
            }
            part
        })
        .collect();
    ensure!(
        summary.seeders.len() == n,
        "{name}: {} seeders took part, not {n}",
        summary.seeders.len()
    );
    let mut row = Row::new("tc", name, bytes, m);
    let to_first = first.map_or(0.0, |f| f.saturating_duration_since(started).as_secs_f64());
    let to_last = last.map_or(0.0, |l| l.saturating_duration_since(started).as_secs_f64());
    row.note = format!(
        "first progress after {:.0} ms, last after {:.0} ms; {}",
        to_first * 1e3,
        to_last * 1e3,
        shares.join(", ")
    );
    Ok(row)
}

/// The scenario's rows, or `None` (after saying why) where namespaces cannot be made.
pub async fn rows(
    src: &Path,
    tmp: &Path,
    bytes: u64,
    mbit: u32,
    quick: bool,
) -> Result<Option<Vec<Row>>> {
    if !netns::usable("the tc-capped blob fetch", &["tc"])? {
        return Ok(None);
    }
    let lab = match Lab::create(mbit) {
        Ok(lab) => lab,
        Err(e) if !netns::required() => {
            eprintln!("skipping: the tc-capped blob fetch cannot build its namespaces: {e:#}");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    // A minute plus the size at a tenth of one link.
    let limit = Duration::from_secs(60)
        + Duration::from_secs_f64(bytes as f64 * 80.0 / (mbit as f64 * 1e6));
    println!(
        "  tc lab: {SEEDERS} seeders, each uplink {mbit} Mbit/s (tbf), {} MiB{}",
        bytes / MIB,
        if quick { " (quick)" } else { "" }
    );
    let link = link_row(&lab, bytes, limit).await?;
    println!("  {}: {:.0} MB/s", link.name, link.mb_s());
    let mut rows = vec![link];

    let mut seeders = Vec::new();
    for i in 0..SEEDERS {
        let dir = tmp.join(format!("tc-seeder-{i}"));
        let daemon =
            Daemon::spawn_in_netns(lab.seeder(i), &dir, node_args(seeder_ip(i), &[])).await?;
        seeders.push(daemon);
    }
    let adds = seeders.iter().map(|s| s.api.add_blob(src, |_| {}));
    let added = setup("adding the file to the tc seeders", async {
        Ok(futures::future::try_join_all(adds).await?)
    })
    .await?;
    let cid = added[0].cid.clone();
    ensure!(
        added.iter().all(|a| a.cid == cid),
        "the seeders added different CIDs"
    );
    let mut ids = Vec::new();
    for (i, s) in seeders.iter().enumerate() {
        ids.push((i, s.peer_id().await?));
    }

    let row = fetch_row(
        &lab,
        &tmp.join("tc-fetcher-1"),
        &ids[..1],
        &cid,
        bytes,
        limit,
    )
    .await?;
    println!("  {}: {:.0} MB/s", row.name, row.mb_s());
    rows.push(row);
    let row = fetch_row(&lab, &tmp.join("tc-fetcher-3"), &ids, &cid, bytes, limit).await?;
    println!("  {}: {:.0} MB/s", row.name, row.mb_s());
    rows.push(row);
    drop(seeders);
    drop(lab);
    Ok(Some(rows))
}

/// Prints the ratio of the scenario and its verdict.
pub fn print_summary(rows: &[Row], caveat: &str) {
    let find = |name: &str| rows.iter().find(|r| r.name == name);
    let (Some(one), Some(three)) = (find("fetch, 1 seeder (tc)"), find("fetch, 3 seeders (tc)"))
    else {
        return;
    };
    if let Some(link) = find("link TCP (capped)") {
        println!(
            "ratio tc: 1 seeder / link TCP = {:.2}, 3 seeders / link TCP = {:.2}",
            one.mb_s() / link.mb_s(),
            three.mb_s() / link.mb_s()
        );
    }
    let speedup = three.mb_s() / one.mb_s();
    println!(
        "target tc-capped 3 seeders ≥ {TARGET_TC_SPEEDUP} × one: {speedup:.2} × ({:.0} vs {:.0} MB/s): {}{caveat}",
        three.mb_s(),
        one.mb_s(),
        if speedup >= TARGET_TC_SPEEDUP {
            "MET"
        } else {
            "MISSED"
        }
    );
}
