//! Tunnel limits and service-registry consistency through the real binary: one consumer holding
//! idle tunnels cannot lock out the others (per-peer quota, idle timeout), and a service or
//! listener whose save fails is not left half registered.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{Daemon, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const GREETING: &[u8] = b"hello from db\n";

/// A database-like service on 127.0.0.1: greets every connection, then echoes. Returns its
/// port and the number of connections open right now.
async fn greeting_echo_server() -> Result<(u16, Arc<AtomicUsize>)> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    let open = Arc::new(AtomicUsize::new(0));
    let counter = open.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let counter = counter.clone();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if s.write_all(GREETING).await.is_ok() {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                }
                counter.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Ok((port, open))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Connects to a local listener and waits for the service's greeting; `None` when the
/// connection is closed without it (no tunnel).
async fn connect_and_greet(port: u16) -> Result<Option<TcpStream>> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut got = vec![0u8; GREETING.len()];
    match tokio::time::timeout(Duration::from_secs(20), s.read_exact(&mut got)).await {
        Ok(Ok(_)) if got == GREETING => Ok(Some(s)),
        Ok(_) => Ok(None),
        Err(_) => anyhow::bail!("neither greeting nor close after 20 s"),
    }
}

/// The review's lock-out demo, in small: V serves at most 8 tunnels, 5 per peer. Consumer A
/// opens 10 idle connections through its listener (like the review's `hold.py`): only 5 get a
/// tunnel, the others are refused busy with the per-peer limit named. Consumer C still gets its
/// data through. After the idle timeout, V closes A's held tunnels at both ends.
#[tokio::test(flavor = "multi_thread")]
async fn one_consumer_cannot_lock_out_the_others() -> Result<()> {
    let (db_port, open) = greeting_echo_server().await?;
    let v = Daemon::start(&[
        "--max-tunnels",
        "8",
        "--max-tunnels-per-peer",
        "5",
        "--tunnel-idle-timeout",
        "6",
    ])
    .await?;
    let boot = v.tcp_host_port().await?;
    let v_id = v.peer_id().await?;
    let a = Daemon::start(&["--boot", &boot]).await?;
    let c = Daemon::start(&["--boot", &boot]).await?;
    // The listeners are pinned to V: both consumers must be connected to it first (a pinned
    // tunnel to a peer whose addresses are not known yet fails with "no addresses").
    for (name, d) in [("A", &a), ("C", &c)] {
        wait_until(20, &format!("{name} connected to V"), || async {
            Ok(d.peers()
                .await?
                .iter()
                .any(|p| p.peer_id.to_string() == v_id))
        })
        .await?;
    }
    v.api
        .add_service("db", &format!("tcp://127.0.0.1:{db_port}"))
        .await?;
    let a_port = free_port()?;
    a.api
        .add_listener("db", &format!("tcp://127.0.0.1:{a_port}"), Some(&v_id))
        .await?;
    let c_port = free_port()?;
    c.api
        .add_listener("db", &format!("tcp://127.0.0.1:{c_port}"), Some(&v_id))
        .await?;

    // A holds as many idle connections as it can get, one after the other.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..10 {
        match connect_and_greet(a_port).await? {
            Some(s) => held.push(s),
            None => refused += 1,
        }
    }
    ensure!(
        held.len() == 5 && refused == 5,
        "A got {} tunnels, {refused} refused; A's log:\n{}",
        held.len(),
        a.log()
    );
    ensure!(
        a.log()
            .contains("busy: this peer already has 5 tunnels open (at most 5 per peer)"),
        "A's log does not name the per-peer limit:\n{}",
        a.log()
    );

    // C still gets through, while A holds its five.
    let mut s = connect_and_greet(c_port)
        .await?
        .with_context(|| format!("C was locked out; C's log:\n{}", c.log()))?;
    s.write_all(b"C's data").await?;
    let mut back = [0u8; 8];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut back)).await??;
    ensure!(&back == b"C's data", "echo differs: {back:?}");
    drop(s);

    // A's idle tunnels are closed by V after the idle timeout: A's local connections end and
    // so do V's connections to the service.
    for mut s in held {
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut rest))
            .await
            .context("an idle tunnel stayed open")?
            .unwrap_or(0);
        ensure!(n == 0, "unexpected bytes {rest:?}");
    }
    wait_until(10, "V closes its connections to the service", || async {
        Ok(open.load(Ordering::SeqCst) == 0)
    })
    .await?;

    // Its places are free again.
    ensure!(
        connect_and_greet(a_port).await?.is_some(),
        "A gets no tunnel after its idle ones were closed"
    );
    Ok(())
}

/// A service or listener whose save fails is refused with a 500 JSON error and leaves nothing
/// behind: not listed, not served, the listener's port free again.
#[tokio::test(flavor = "multi_thread")]
async fn failed_saves_leave_nothing_behind() -> Result<()> {
    let v = Daemon::start(&[]).await?;
    v.api.add_service("kept", "tcp://127.0.0.1:1").await?;

    // A non-empty directory where services.json goes: every save fails, even as root.
    let file = v.dir.join("services.json");
    std::fs::remove_file(&file)?;
    std::fs::create_dir_all(file.join("blocker"))?;

    let http = reqwest::Client::new();
    let base = v.api.base_url().to_string();
    let r = http
        .post(format!("{base}/api/v1/services"))
        .json(&serde_json::json!({"name": "ghost", "address": "tcp://127.0.0.1:2"}))
        .send()
        .await?;
    ensure!(r.status().as_u16() == 500, "status {}", r.status());
    let body: serde_json::Value = r.json().await?;
    ensure!(
        body["error"].as_str().unwrap_or("").contains("cannot save"),
        "{body}"
    );
    let names: Vec<String> = v
        .api
        .services()
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect();
    ensure!(names == ["kept"], "services after a failed add: {names:?}");

    let r = http
        .delete(format!("{base}/api/v1/services/kept"))
        .send()
        .await?;
    ensure!(r.status().as_u16() == 500, "status {}", r.status());
    ensure!(v.api.services().await?.len() == 1, "kept was removed");

    let port = free_port()?;
    let r = http
        .post(format!("{base}/api/v1/listeners"))
        .json(&serde_json::json!({"service": "kept", "address": format!("tcp://127.0.0.1:{port}")}))
        .send()
        .await?;
    ensure!(r.status().as_u16() == 500, "status {}", r.status());
    ensure!(v.api.listeners().await?.is_empty(), "the listener was kept");
    wait_until(10, "the listener's port is free again", || async {
        Ok(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
    })
    .await?;

    // Saving works again: the failed changes did not happen.
    std::fs::remove_dir_all(&file)?;
    v.api.add_service("later", "tcp://127.0.0.1:3").await?;
    let saved = std::fs::read_to_string(&file)?;
    ensure!(
        saved.contains("kept") && saved.contains("later") && !saved.contains("ghost"),
        "{saved}"
    );
    Ok(())
}
