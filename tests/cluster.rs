//! End-to-end tests through the real binary: several `mcc` processes on 127.0.0.1.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{Daemon, cli, wait_until};

async fn connected_ids(d: &Daemon) -> Result<HashSet<String>> {
    Ok(d.peers()
        .await?
        .into_iter()
        .map(|p| p.peer_id.to_string())
        .collect())
}

/// Three nodes that only share a bootnode given as `host:port` end up fully connected, know
/// each other as rendezvous peers, and echo multicall gets one reply per node.
#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_join_through_one_bootnode() -> Result<()> {
    let a = Daemon::start(&[]).await?;
    let boot = a.tcp_host_port().await?;
    let b = Daemon::start(&["--boot", &boot]).await?;
    let c = Daemon::start(&["--boot", &boot]).await?;
    // A fourth node of another application (other rendezvous key) joins the same DHT.
    let other = Daemon::start(&["--boot", &boot, "--rendezvous", "another-app"]).await?;

    let ids = [a.peer_id().await?, b.peer_id().await?, c.peer_id().await?];
    let other_id = other.peer_id().await?;
    let nodes = [&a, &b, &c];
    wait_until(30, "all three connected as rendezvous peers", || async {
        for (i, n) in nodes.iter().enumerate() {
            let peers = n.peers().await?;
            for (j, id) in ids.iter().enumerate() {
                if i != j
                    && !peers
                        .iter()
                        .any(|p| p.peer_id.to_string() == *id && p.rendezvous)
                {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    })
    .await?;

    // B and C only knew A: their link came from discovery, not configuration.
    assert!(connected_ids(&b).await?.contains(&ids[2]));
    // The node of another application is never taken for one of ours.
    for n in nodes {
        for p in n.peers().await? {
            if p.peer_id.to_string() == other_id {
                assert!(!p.rendezvous, "other app's node marked as rendezvous peer");
            }
        }
    }
    // RTT from ping shows up for connected peers.
    wait_until(20, "rtt measured", || async {
        Ok(c.peers().await?.iter().any(|p| p.rtt_ms.is_some()))
    })
    .await?;

    // Echo multicall from C: itself plus every connected peer, each with its reply.
    let replies = c.api.echo("hello mesh", None).await?.replies;
    let answered: HashSet<String> = replies
        .iter()
        .filter(|r| r.message.as_deref() == Some("hello mesh"))
        .map(|r| r.peer_id.clone())
        .collect();
    for id in &ids {
        assert!(answered.contains(id), "no echo from {id}: {replies:?}");
    }
    assert_eq!(replies[0].peer_id, ids[2], "the node itself comes first");
    // The CLI shows the same.
    let dir = c.dir.to_string_lossy().into_owned();
    let (ok, out, err) = cli(&["echo", "hi", "--data-folder", &dir])?;
    assert!(ok, "{err}");
    for id in &ids {
        assert!(out.contains(id.as_str()), "{out}");
    }
    Ok(())
}

/// The identity is created once (mode 0600) and the PeerId survives a clean restart and a
/// `kill -9`; `--seed` gives a fixed PeerId.
#[tokio::test(flavor = "multi_thread")]
async fn identity_survives_restart_and_kill() -> Result<()> {
    let mut a = Daemon::start(&["--rendezvous", "off"]).await?;
    let id = a.peer_id().await?;
    let label = a.api.node().await?.label;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(a.dir.join("identity.key"))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    a.stop()?;
    assert!(
        !a.dir.join("api").exists(),
        "api file removed on clean exit"
    );
    a.restart().await?;
    assert_eq!(a.peer_id().await?, id);
    assert_eq!(a.api.node().await?.label, label, "generated label is kept");
    a.kill();
    a.restart().await?;
    assert_eq!(a.peer_id().await?, id);

    let s1 = Daemon::start(&["--seed", "7", "--rendezvous", "off"]).await?;
    let s2 = Daemon::start(&["--seed", "7", "--rendezvous", "off"]).await?;
    assert_eq!(s1.peer_id().await?, s2.peer_id().await?);
    assert_ne!(s1.peer_id().await?, id);
    Ok(())
}

/// A peer killed with -9 turns into an error entry within the RPC timeout instead of a hang,
/// also over QUIC where no connection close is seen.
#[tokio::test(flavor = "multi_thread")]
async fn killed_peer_becomes_an_error_not_a_hang() -> Result<()> {
    let a = Daemon::start(&["--rendezvous", "off", "--rpc-timeout", "2"]).await?;
    let mut b = Daemon::start(&["--rendezvous", "off"]).await?;
    let b_id = b.peer_id().await?;
    let quic = b
        .api
        .node()
        .await?
        .listen_addrs
        .into_iter()
        .find(|a| a.to_string().contains("quic-v1"))
        .context("no quic address")?;
    let dialed = a.api.dial(&quic.to_string()).await?;
    assert_eq!(dialed.peer_id, b_id);
    let r = a.api.echo("x", Some(&b_id)).await?.replies;
    assert_eq!(r[0].message.as_deref(), Some("x"));

    b.kill();
    let start = Instant::now();
    let replies = a.api.echo("still there?", None).await?.replies;
    let elapsed = start.elapsed();
    ensure!(
        elapsed < Duration::from_secs(8),
        "multicall took {elapsed:?}"
    );
    assert_eq!(
        replies[0].message.as_deref(),
        Some("still there?"),
        "self answers"
    );
    if let Some(dead) = replies.iter().find(|r| r.peer_id == b_id) {
        assert!(dead.error.is_some() && dead.message.is_none(), "{dead:?}");
    }
    // Asking the dead peer directly is an error too, promptly.
    let start = Instant::now();
    let r = a.api.echo("x", Some(&b_id)).await?.replies;
    assert!(r[0].error.is_some(), "{r:?}");
    ensure!(start.elapsed() < Duration::from_secs(8));
    Ok(())
}

async fn raw(
    method: reqwest::Method,
    url: &str,
    body: Option<(&str, &str)>,
) -> Result<(u16, serde_json::Value)> {
    let client = reqwest::Client::new();
    let mut req = client.request(method, url);
    if let Some((ctype, b)) = body {
        req = req.header("content-type", ctype).body(b.to_string());
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    let json = serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?;
    Ok((status, json))
}

/// Bad REST input gets a 4xx with a JSON `{"error": ...}` body, never a panic.
#[tokio::test(flavor = "multi_thread")]
async fn bad_rest_input_gives_json_errors() -> Result<()> {
    let a = Daemon::start(&["--rendezvous", "off"]).await?;
    let base = a.api.base_url().to_string();
    let json = "application/json";
    let post = reqwest::Method::POST;
    type Case = (reqwest::Method, String, Option<(&'static str, String)>, u16);
    let cases: Vec<Case> = vec![
        (
            post.clone(),
            "/api/v1/echo".into(),
            Some((json, "{not json".into())),
            400,
        ),
        (
            post.clone(),
            "/api/v1/echo".into(),
            Some((json, "{}".into())),
            422,
        ),
        (
            post.clone(),
            "/api/v1/echo".into(),
            Some(("text/plain", "{\"message\":\"x\"}".into())),
            415,
        ),
        (
            post.clone(),
            "/api/v1/echo".into(),
            Some((json, r#"{"message":"x","peer":"nope"}"#.into())),
            400,
        ),
        (
            post.clone(),
            "/api/v1/peers".into(),
            Some((json, r#"{"addr":"not an address"}"#.into())),
            400,
        ),
        (
            post.clone(),
            "/api/v1/peers".into(),
            Some((json, r#"{"addr":"/ip4/1.2.3"}"#.into())),
            400,
        ),
        (
            post.clone(),
            "/api/v1/rpc/echo".into(),
            Some((json, r#"{"peer":"12D3Koo"}"#.into())),
            400,
        ),
        (
            post.clone(),
            "/api/v1/echo".into(),
            Some((json, format!("{{\"message\":\"{}\"}}", "x".repeat(2 << 20)))),
            413,
        ),
        (
            reqwest::Method::GET,
            "/api/v1/nothing-here".into(),
            None,
            404,
        ),
        (reqwest::Method::DELETE, "/api/v1/node".into(), None, 405),
        (reqwest::Method::GET, "/metrics".into(), None, 404),
    ];
    for (method, path, body, want) in cases {
        let (status, v) = raw(
            method.clone(),
            &format!("{base}{path}"),
            body.as_ref().map(|(c, b)| (*c, b.as_str())),
        )
        .await?;
        assert_eq!(status, want, "{method} {path}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{method} {path}: {v}"
        );
    }
    // Unknown RPC method: a per-peer error, not a failed request.
    let r = a
        .api
        .rpc("no.such.method", None, serde_json::Value::Null)
        .await?;
    assert!(
        r.replies[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("method_not_found"),
        "{r:?}"
    );
    // A dial to a port where nobody listens: 502 with a JSON error.
    let err = a.api.dial("127.0.0.1:1").await.unwrap_err();
    assert_eq!(err.status(), Some(502), "{err}");
    // The node is still fine.
    assert_eq!(a.api.health().await?.status, "ok");
    Ok(())
}

/// OpenAPI document, Swagger UI, metrics with --enable-monitoring, RPC through REST.
#[tokio::test(flavor = "multi_thread")]
async fn openapi_docs_metrics_and_rpc() -> Result<()> {
    let a = Daemon::start(&[
        "--enable-monitoring",
        "--label",
        "Alpha-One!",
        "--enable-cors",
        "http://app.example",
    ])
    .await?;
    let b = Daemon::start(&["--boot", &a.tcp_host_port().await?]).await?;
    let base = a.api.base_url().to_string();
    let spec: serde_json::Value = reqwest::get(format!("{base}/api/v1/openapi.json"))
        .await?
        .json()
        .await?;
    for path in [
        "/api/v1/node",
        "/api/v1/peers",
        "/api/v1/echo",
        "/api/v1/rpc/{method}",
        "/healthz",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
    let docs = reqwest::get(format!("{base}/docs/")).await?;
    assert_eq!(docs.status().as_u16(), 200);
    assert!(docs.text().await?.to_lowercase().contains("swagger"));
    // Swagger UI's files are stored gzipped: a client that accepts gzip gets them so, any
    // other the same bytes decompressed.
    let bundle = format!("{base}/docs/swagger-ui-bundle.js");
    let plain = reqwest::get(&bundle).await?;
    assert_eq!(plain.status().as_u16(), 200);
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await?;
    assert!(
        plain.len() > 100_000 && plain.starts_with(b"/*"),
        "{}",
        plain.len()
    );
    let zipped = reqwest::Client::new()
        .get(&bundle)
        .header("accept-encoding", "gzip, br")
        .send()
        .await?;
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let zipped = zipped.bytes().await?;
    assert!(zipped.len() < plain.len() / 2);
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(zipped.as_ref()),
        &mut unzipped,
    )?;
    assert_eq!(unzipped, plain.as_ref());

    assert_eq!(a.api.node().await?.label, "alphaone");
    // CORS: the configured origin is allowed, others are not.
    let cors = |origin: &'static str| {
        let url = format!("{base}/api/v1/node");
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .header("origin", origin)
                .send()
                .await?;
            anyhow::Ok(
                r.headers()
                    .get("access-control-allow-origin")
                    .map(|v| v.to_str().unwrap_or("").to_string()),
            )
        }
    };
    assert_eq!(
        cors("http://app.example").await?.as_deref(),
        Some("http://app.example")
    );
    assert_eq!(cors("http://evil.example").await?, None);
    let b_id = b.peer_id().await?;
    wait_until(20, "a sees b", || async {
        Ok(a.peers()
            .await?
            .iter()
            .any(|p| p.peer_id.to_string() == b_id))
    })
    .await?;
    let r = a
        .api
        .rpc("echo", Some(&b_id), serde_json::json!({"n": [1, 2]}))
        .await?;
    assert_eq!(r.replies[0].result, Some(serde_json::json!({"n": [1, 2]})));
    // B sees A's label through identify.
    let a_id = a.peer_id().await?;
    wait_until(10, "label via identify", || async {
        Ok(b.peers()
            .await?
            .iter()
            .any(|p| p.peer_id.to_string() == a_id && p.label.as_deref() == Some("alphaone")))
    })
    .await?;

    let metrics = reqwest::get(format!("{base}/metrics"))
        .await?
        .text()
        .await?;
    for name in [
        "libp2p_swarm_connections_established",
        "libp2p_identify",
        "libp2p_kad",
        "libp2p_ping",
        "mcc_rpc_outbound_requests_total",
        "mcc_connected_peers",
        "mcc_records_stored",
        "mcc_records_refused_total",
        "mcc_tunnels_active",
    ] {
        assert!(metrics.contains(name), "{name} missing from metrics");
    }
    Ok(())
}

/// The CLI: tables, --json, api discovery through the data folder, clear errors.
#[tokio::test(flavor = "multi_thread")]
async fn cli_talks_to_the_running_node() -> Result<()> {
    let a = Daemon::start(&["--rendezvous", "off"]).await?;
    let b = Daemon::start(&["--rendezvous", "off"]).await?;
    let a_dir = a.dir.to_string_lossy().into_owned();
    let b_id = b.peer_id().await?;

    let (ok, out, err) = cli(&["node", "--json", "--data-folder", &a_dir])?;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["peer_id"], a.peer_id().await?);

    let (ok, out, _) = cli(&["--data-folder", &a_dir, "peers"])?;
    assert!(ok);
    assert!(out.contains("no peers"), "{out}");

    let (ok, out, err) = cli(&["dial", &b.tcp_host_port().await?, "--api", a.api.base_url()])?;
    assert!(ok, "{err}");
    assert!(out.contains(&b_id), "{out}");
    let (ok, out, _) = cli(&["peers", "--data-folder", &a_dir])?;
    assert!(ok);
    assert!(out.contains("PEER ID") && out.contains(&b_id), "{out}");

    let (ok, out, err) = cli(&[
        "rpc",
        "echo",
        "[1,2,3]",
        "--peer",
        &b_id,
        "--json",
        "--data-folder",
        &a_dir,
    ])?;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["replies"][0]["result"], serde_json::json!([1, 2, 3]));

    let (ok, _, err) = cli(&["rpc", "echo", "{bad json", "--data-folder", &a_dir])?;
    assert!(!ok && err.contains("JSON"), "{err}");
    let (ok, _, err) = cli(&["echo", "x", "--peer", "garbage", "--data-folder", &a_dir])?;
    assert!(!ok && err.contains("invalid peer id"), "{err}");

    // No node there: clear message, non-zero exit.
    let (ok, _, err) = cli(&["peers", "--api", "http://127.0.0.1:1"])?;
    assert!(!ok);
    assert!(err.contains("no mcc node is running"), "{err}");
    let empty = tempfile::tempdir()?;
    let (ok, _, err) = cli(&[
        "node",
        "--data-folder",
        &empty.path().to_string_lossy(),
        "--api",
        "http://127.0.0.1:1",
    ])?;
    assert!(!ok && err.contains("no mcc node is running"), "{err}");
    Ok(())
}

/// Flags come from the YAML config file, and flags win over it; bad config is a clear error.
#[tokio::test(flavor = "multi_thread")]
async fn config_file_and_bad_flags() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let cfg = tmp.path().join("mcc.yaml");
    std::fs::write(
        &cfg,
        "label: FromFile\nrendezvous: off\ndht-alpha: 2\nenable-monitoring: true\n",
    )?;
    let cfg_s = cfg.to_string_lossy().into_owned();
    let a = Daemon::start(&["--config", &cfg_s]).await?;
    let info = a.api.node().await?;
    assert_eq!(info.label, "fromfile");
    assert_eq!(info.rendezvous, None);
    assert_eq!(
        reqwest::get(format!("{}/metrics", a.api.base_url()))
            .await?
            .status()
            .as_u16(),
        200
    );
    let b = Daemon::start(&["--config", &cfg_s, "--label", "flagwins"]).await?;
    assert_eq!(b.api.node().await?.label, "flagwins");

    std::fs::write(&cfg, "lable: typo\n")?;
    let (ok, _, err) = cli(&[
        "--config",
        &cfg_s,
        "--http",
        "127.0.0.1:0",
        "--listen",
        "127.0.0.1:0",
    ])?;
    assert!(!ok && err.contains("lable"), "{err}");
    let (ok, _, err) = cli(&["--listen", "nonsense", "--http", "127.0.0.1:0"])?;
    assert!(!ok && err.contains("--listen"), "{err}");
    let (ok, _, err) = cli(&["--loglevel", "9"])?;
    assert!(!ok && err.contains("loglevel"), "{err}");
    Ok(())
}

/// Runs the CLI with stdout on a pseudo-terminal (util-linux `script`); returns its output.
fn cli_on_tty(args: &[&str]) -> Result<String> {
    let line = std::iter::once(common::BIN)
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env_remove("MCC_API")
        .env_remove("MCC_DATA_FOLDER")
        .output()
        .context("running util-linux script")?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Review L9 and L10: bytes that peers control never reach a terminal as control sequences
/// (pipes still get exact bytes), and a node's data folder and files are private to its user.
#[tokio::test(flavor = "multi_thread")]
async fn peer_bytes_are_escaped_and_data_files_are_private() -> Result<()> {
    let a = Daemon::start(&["--rendezvous", "off"]).await?;
    let b = Daemon::start(&["--rendezvous", "off", "--boot", &a.tcp_host_port().await?]).await?;
    let b_id = b.peer_id().await?;
    wait_until(20, "b connected to a", || async {
        Ok(a.peers()
            .await?
            .iter()
            .any(|p| p.peer_id.to_string() == b_id))
    })
    .await?;
    let api = a.api.base_url().to_string();
    let hostile = "\x1b]0;owned\x07\x1b[2Jcleared";

    // The echo reply comes back from the peer: escaped in the table, to a pipe too.
    let (ok, out, err) = cli(&["echo", hostile, "--peer", &b_id, "--api", &api])?;
    assert!(ok, "{err}");
    assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
    assert!(out.contains(r"\x1b]0;owned\x07\x1b[2Jcleared"), "{out:?}");

    // A record value: exact bytes to a pipe, escaped on a terminal.
    let (ok, _, err) = cli(&["dht", "put", "l9", hostile, "--api", &api])?;
    assert!(ok, "{err}");
    let (ok, out, err) = cli(&["dht", "get", "l9", "--api", &api])?;
    assert!(ok, "{err}");
    assert_eq!(out, hostile, "a pipe gets the exact value");
    let shown = cli_on_tty(&["dht", "get", "l9", "--api", &api])?;
    assert!(
        !shown.contains('\x1b') && !shown.contains('\x07'),
        "{shown:?}"
    );
    assert!(shown.contains("cleared"), "{shown:?}");
    // JSON on a terminal: still valid JSON, no raw C1 control.
    let (ok, _, err) = cli(&["dht", "put", "c1", "a\u{9b}2Jb", "--api", &api])?;
    assert!(ok, "{err}");
    let shown = cli_on_tty(&["dht", "get", "c1", "--json", "--api", &api])?;
    assert!(!shown.contains('\u{9b}'), "{shown:?}");

    // L10: the data folder is 0700 and nothing in it is readable by others.
    let (ok, _, err) = cli(&["service", "add", "web", "http://127.0.0.1:9", "--api", &api])?;
    assert!(ok, "{err}");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| -> Result<u32> {
        Ok(std::fs::symlink_metadata(p)?.permissions().mode() & 0o777)
    };
    assert_eq!(mode(&a.dir)?, 0o700);
    let mut stack = vec![a.dir.clone()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.file_name().is_some_and(|n| n == "node.log") {
                continue; // written by the test harness, not by the node
            }
            let m = mode(&path)?;
            assert_eq!(m & 0o077, 0, "{} has mode {m:o}", path.display());
            if path.is_dir() {
                stack.push(path);
            } else {
                files += 1;
            }
        }
    }
    for name in [
        "identity.key",
        "records.redb",
        "services.json",
        "api",
        "label",
    ] {
        ensure!(a.dir.join(name).exists(), "{name} missing");
    }
    assert!(files >= 5, "{files} files checked");
    Ok(())
}
