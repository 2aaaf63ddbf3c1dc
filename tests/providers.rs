//! Provider records through the binary: squatting a service name (review M1) and pinning a
//! listener to a provider by DID or label.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use common::{Daemon, base_args, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP server that answers every connection with `banner` and closes it.
async fn banner_server(banner: &'static str) -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(banner.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    Ok(port)
}

/// What a connection to a local listener port reads until EOF (bounded in time).
async fn read_banner(port: u16) -> Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .context("reading the banner timed out")??;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A node whose p2p listener (and so the source address of its connections) is on `ip`; its
/// API stays on 127.0.0.1.
async fn start_on(ip: &str, extra: &[&str]) -> Result<Daemon> {
    let mut args = base_args();
    let i = args
        .iter()
        .position(|a| a == "--listen")
        .context("base_args has --listen")?;
    args[i + 1] = format!("{ip}:0");
    args.extend(extra.iter().map(|s| s.to_string()));
    Daemon::start_with_args(args).await
}

/// Review M1, the demo: three attacker identities on one network announce service `db`
/// first on a victim whose per-key limit is 3; the victim's own announcement must still
/// work, and a new consumer must find the victim.
#[tokio::test(flavor = "multi_thread")]
async fn squatters_cannot_hide_the_real_provider() -> Result<()> {
    let attacker_port = banner_server("ATTACKER-DB").await?;
    let real_port = banner_server("REAL-DB").await?;
    let v = start_on("127.0.2.1", &["--max-providers-per-key", "3"]).await?;
    let boot = v.tcp_host_port().await?;
    assert!(boot.starts_with("127.0.2.1:"), "victim listens on {boot}");
    let mut attackers = Vec::new();
    for _ in 0..3 {
        let a = start_on("127.0.0.1", &["--boot", &boot]).await?;
        a.api
            .add_service("db", &format!("tcp://127.0.0.1:{attacker_port}"))
            .await?;
        attackers.push(a);
    }
    let mut attacker_ids = Vec::new();
    for a in &attackers {
        attacker_ids.push(a.peer_id().await?);
    }
    // The attackers' records reached the victim first and fill its key.
    wait_until(30, "the attackers to fill the victim's key", || async {
        let found = v.api.stored_providers("db").await?;
        Ok(attacker_ids
            .iter()
            .all(|id| found.iter().any(|p| p.peer_id.to_string() == *id)))
    })
    .await?;

    v.api
        .add_service("db", &format!("tcp://127.0.0.1:{real_port}"))
        .await?;
    let v_id = v.peer_id().await?;
    // Give the announcement (and a rendezvous re-announcement) time to run.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = v.log();
    if log.contains("cannot announce") {
        bail!("the victim could not announce its service:\n{log}");
    }
    // It holds its own record next to the attackers', and answers lookups with it.
    let stored = v.api.stored_providers("db").await?;
    assert!(
        stored
            .iter()
            .any(|p| p.local && p.peer_id.to_string() == v_id),
        "the victim's own provider record is missing: {stored:?}"
    );

    let c = start_on("127.0.3.1", &["--boot", &boot]).await?;
    wait_until(30, "the consumer to find the real provider", || async {
        let found = c.api.providers("db").await?;
        Ok(found.iter().any(|p| p.peer_id.to_string() == v_id))
    })
    .await?;
    // Pinned to the victim, the consumer reaches the real service.
    let port = free_port()?;
    c.api
        .add_listener("db", &format!("tcp://127.0.0.1:{port}"), Some(&v_id))
        .await?;
    assert_eq!(read_banner(port).await?, "REAL-DB");
    Ok(())
}

/// `--peer` also takes a node's `did:key` DID or its label; a pin that is none of these is a
/// 400.
#[tokio::test(flavor = "multi_thread")]
async fn listeners_pin_providers_by_did_or_label() -> Result<()> {
    let alpha_port = banner_server("ALPHA").await?;
    let delta_port = banner_server("DELTA").await?;
    let a = Daemon::start(&["--label", "alpha"]).await?;
    let boot = a.tcp_host_port().await?;
    let d = Daemon::start(&["--label", "delta", "--boot", &boot]).await?;
    let c = Daemon::start(&["--label", "consumer", "--boot", &boot]).await?;
    a.api
        .add_service("db", &format!("tcp://127.0.0.1:{alpha_port}"))
        .await?;
    d.api
        .add_service("db", &format!("tcp://127.0.0.1:{delta_port}"))
        .await?;
    let ids = [a.peer_id().await?, d.peer_id().await?];
    wait_until(30, "both providers found and connected", || async {
        let found = c.api.providers("db").await?;
        Ok(ids.iter().all(|id| {
            found
                .iter()
                .any(|p| p.peer_id.to_string() == *id && p.connected && p.label.is_some())
        }))
    })
    .await?;

    // By DID: the DID of delta is its peer id.
    let delta_did = d.api.node().await?.did;
    assert!(delta_did.starts_with("did:key:"));
    let by_did = free_port()?;
    c.api
        .add_listener("db", &format!("tcp://127.0.0.1:{by_did}"), Some(&delta_did))
        .await?;
    // By label: whichever is nearer otherwise, these always reach their pinned provider.
    let by_label = free_port()?;
    c.api
        .add_listener("db", &format!("tcp://127.0.0.1:{by_label}"), Some("alpha"))
        .await?;
    for _ in 0..3 {
        assert_eq!(read_banner(by_did).await?, "DELTA");
        assert_eq!(read_banner(by_label).await?, "ALPHA");
    }
    // A label nobody carries: the connection is closed without data.
    let nobody = free_port()?;
    c.api
        .add_listener("db", &format!("tcp://127.0.0.1:{nobody}"), Some("nobody"))
        .await?;
    assert_eq!(read_banner(nobody).await?, "");

    // Neither a peer id, a DID nor a label: refused with 400.
    let err = c
        .api
        .add_listener(
            "db",
            &format!("tcp://127.0.0.1:{}", free_port()?),
            Some("Not A Label!"),
        )
        .await
        .expect_err("a bad pin must be refused");
    assert!(
        err.to_string().contains("400") || err.to_string().contains("neither"),
        "{err}"
    );
    let err = c
        .api
        .add_listener(
            "db",
            &format!("tcp://127.0.0.1:{}", free_port()?),
            Some("did:key:zzz"),
        )
        .await
        .expect_err("a bad DID must be refused");
    assert!(!err.to_string().is_empty());
    Ok(())
}

fn path_str(p: &std::path::Path) -> Result<&str> {
    p.to_str().context("non-UTF-8 temp path")
}

/// A CA in `root/ca` and a node folder `root/<label>` with a key and a certificate from it
/// granting `permissions`; returns (CA folder, node folder).
fn closed_node(
    root: &std::path::Path,
    label: &str,
    permissions: &str,
) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let ca = root.join("ca");
    if !ca.join("ca.crt").exists() {
        let (ok, _, err) = common::cli(&["ca", "init", "--dir", path_str(&ca)?])?;
        anyhow::ensure!(ok, "ca init: {err}");
    }
    let dir = root.join(label);
    let (ok, out, err) = common::cli(&[
        "--data-folder",
        path_str(&dir)?,
        "--newcert",
        "--label",
        label,
        "--json",
    ])?;
    anyhow::ensure!(ok, "newcert: {err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let request = v["request"].as_str().context("no request")?.to_string();
    let (ok, _, err) = common::cli(&[
        "ca",
        "sign",
        &request,
        "--ca-dir",
        path_str(&ca)?,
        "--permissions",
        permissions,
        "--days",
        "30",
    ])?;
    anyhow::ensure!(ok, "ca sign: {err}");
    Ok((ca, dir))
}

async fn start_closed(
    root: &std::path::Path,
    label: &str,
    permissions: &str,
    extra: &[&str],
) -> Result<Daemon> {
    let (ca, dir) = closed_node(root, label, permissions)?;
    let mut args = base_args();
    for a in [
        "--cert",
        path_str(&dir.join("node.crt"))?,
        "--privkey",
        path_str(&dir.join("node.key"))?,
        "--trust-ca",
        path_str(&ca.join("ca.crt"))?,
    ] {
        args.push(a.to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    Daemon::spawn_in(&dir, args).await
}

/// Review L1: under --trust-ca, a peer whose certificate has neither services:provide nor
/// blobs:seed cannot occupy provider slots (here: a node whose rendezvous string is a service's
/// provider key announces itself for `db`, as a modified client could), while the rendezvous
/// key keeps working for every admitted peer.
#[tokio::test(flavor = "multi_thread")]
async fn provider_records_need_a_providing_permission() -> Result<()> {
    let root = tempfile::tempdir()?;
    let p = start_closed(root.path(), "provider", "all", &[]).await?;
    let boot = p.tcp_host_port().await?;
    let squat = ["--boot", boot.as_str(), "--rendezvous", "/mcc/service/db"];
    // Allowed to provide: its record for `db` is stored (shows the announcement arrives).
    let q = start_closed(root.path(), "allowed", "all", &squat).await?;
    // Not allowed: rpc:call only.
    let u = start_closed(root.path(), "caller", "rpc:call", &squat).await?;
    // Not allowed to provide, but takes part in rendezvous like everyone.
    let w = start_closed(
        root.path(),
        "member",
        "rpc:call",
        &["--boot", boot.as_str()],
    )
    .await?;
    let (q_id, u_id, w_id) = (q.peer_id().await?, u.peer_id().await?, w.peer_id().await?);
    wait_until(30, "the allowed node's record and the refusal", || async {
        let stored = p.api.stored_providers("db").await?;
        Ok(stored.iter().any(|x| x.peer_id.to_string() == q_id)
            && p.log().contains("provider record refused"))
    })
    .await?;
    let stored = p.api.stored_providers("db").await?;
    assert!(
        !stored.iter().any(|x| x.peer_id.to_string() == u_id),
        "a peer without services:provide holds a provider slot: {stored:?}"
    );
    wait_until(30, "the member to be a rendezvous peer", || async {
        Ok(p.peers()
            .await?
            .iter()
            .any(|x| x.peer_id.to_string() == w_id && x.rendezvous))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = p.log();
    for line in log
        .lines()
        .filter(|l| l.contains("provider record refused"))
    {
        assert!(line.contains(&u_id), "only the caller is refused: {line}");
    }

    // Under --trust-ca a label pins the peers whose CA-signed certificate carries it.
    let banner = banner_server("ALLOWED-DB").await?;
    q.api
        .add_service("db", &format!("tcp://127.0.0.1:{banner}"))
        .await?;
    let by_label = free_port()?;
    p.api
        .add_listener(
            "db",
            &format!("tcp://127.0.0.1:{by_label}"),
            Some("allowed"),
        )
        .await?;
    assert_eq!(read_banner(by_label).await?, "ALLOWED-DB");
    // Pinned to the caller (no services:provide, so no service either): nothing gets through.
    let to_caller = free_port()?;
    p.api
        .add_listener(
            "db",
            &format!("tcp://127.0.0.1:{to_caller}"),
            Some("caller"),
        )
        .await?;
    assert_eq!(read_banner(to_caller).await?, "");
    Ok(())
}
