//! `mcc doctor` against real nodes: none running, alone, with a peer, behind a token.

mod common;

use anyhow::{Context, Result};
use common::{Daemon, cli, wait_until};
use serde_json::Value;

fn doctor_json(args: &[&str]) -> Result<(bool, Value)> {
    let mut all = args.to_vec();
    all.extend(["doctor", "--json"]);
    let (ok, out, err) = cli(&all)?;
    let v: Value = serde_json::from_str(&out).with_context(|| format!("{out}\n{err}"))?;
    Ok((ok, v))
}

fn status<'a>(report: &'a Value, name: &str) -> &'a str {
    report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("missing")
}

#[test]
fn no_node_is_a_failure_with_a_fix() -> Result<()> {
    let (ok, out, err) = cli(&["--api", "http://127.0.0.1:1", "doctor"])?;
    assert!(!ok, "{out}");
    assert!(out.contains("FAIL  api"), "{out}");
    assert!(out.contains("fix: start the node"), "{out}");
    assert!(err.contains("1 checks failed"), "{err}");
    let (ok, v) = doctor_json(&["--api", "http://127.0.0.1:1"])?;
    assert!(!ok);
    assert_eq!(v["ok"], false);
    assert_eq!(status(&v, "api"), "FAIL");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alone_warns_and_with_a_peer_compares_clocks() -> Result<()> {
    let a = Daemon::start(&["--rendezvous", "off", "--mdns", "off"]).await?;
    let url_a = a.api.base_url().to_string();
    let (ok, v) = doctor_json(&["--api", &url_a])?;
    assert!(ok, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(status(&v, "api"), "OK");
    assert_eq!(status(&v, "peers"), "WARN");
    assert_eq!(status(&v, "dht"), "WARN");
    assert_eq!(status(&v, "certificate"), "OK");
    assert_eq!(status(&v, "clock"), "OK");
    let (ok, out, _) = cli(&["--api", &url_a, "doctor"])?;
    assert!(ok);
    assert!(
        out.contains("WARN  peers") && out.contains("fix: give a peer"),
        "{out}"
    );

    let boot = a.tcp_host_port().await?;
    let b = Daemon::start(&["--boot", &boot, "--rendezvous", "off", "--mdns", "off"]).await?;
    wait_until(20, "a peer in the routing table", || async {
        let n = b.api.node().await?;
        Ok(n.connected_peers > 0 && n.routing_table_size > 0)
    })
    .await?;
    let (ok, v) = doctor_json(&["--api", b.api.base_url()])?;
    assert!(ok, "{v}");
    assert_eq!(status(&v, "peers"), "OK", "{v}");
    assert_eq!(status(&v, "dht"), "OK", "{v}");
    // Both clocks are this machine's: the skew is the measurement's error only.
    assert_eq!(status(&v, "clock"), "OK", "{v}");
    let clock = v["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "clock"))
        .context("clock")?;
    assert!(
        clock["message"]
            .as_str()
            .is_some_and(|m| m.contains("over 1 peers")),
        "{clock}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_named_as_the_problem() -> Result<()> {
    let a = Daemon::start(&["--api-token", "auto"]).await?;
    let url = a.api.base_url().to_string();
    let folder = a.dir.to_string_lossy().to_string();
    let (ok, v) = doctor_json(&["--api", &url, "--data-folder", &folder])?;
    assert!(ok, "{v}");
    let wrong = tempfile::NamedTempFile::new()?;
    std::fs::write(wrong.path(), "not-the-token")?;
    let wrong = wrong.path().to_string_lossy().to_string();
    let (ok, out, _) = cli(&["--api", &url, "--api-token", &wrong, "doctor"])?;
    assert!(!ok);
    assert!(
        out.contains("FAIL  api") && out.contains("--api-token"),
        "{out}"
    );
    Ok(())
}
