//! SIGTERM: the daemon stops within 5 s even with a request that never completes, and a
//! second signal ends it at once.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use common::Daemon;

/// Opens a connection to the API and starts an upload that stalls after a few bytes: an
/// in-flight request that never finishes on its own.
fn stalled_upload(d: &Daemon) -> Result<TcpStream> {
    let url = std::fs::read_to_string(d.dir.join("api"))?;
    let host = url
        .trim()
        .strip_prefix("http://")
        .context("api url")?
        .to_string();
    let mut s = TcpStream::connect(&host)?;
    let mut head = format!(
        "POST /api/v1/blobs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: 1000000\r\n"
    );
    if let Ok(token) = std::fs::read_to_string(d.dir.join("api-token")) {
        head.push_str(&format!("Authorization: Bearer {}\r\n", token.trim()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(b"0123456789")?;
    s.flush()?;
    Ok(s)
}

fn sigterm(d: &Daemon) -> Result<()> {
    let pid = d.child.as_ref().context("not running")?.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status()?;
    Ok(())
}

/// Waits for the daemon to exit, for at most `secs`.
fn wait_exit(d: &mut Daemon, secs: f64) -> Result<Option<ExitStatus>> {
    let child = d.child.as_mut().context("not running")?;
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            d.child = None;
            return Ok(Some(status));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(None)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_within_five_seconds_despite_a_stalled_request() -> Result<()> {
    let mut d = Daemon::start(&[]).await?;
    let _upload = stalled_upload(&d)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    sigterm(&d)?;
    let Some(status) = wait_exit(&mut d, 6.0)? else {
        bail!("still running 6 s after SIGTERM:\n{}", d.log());
    };
    let took = sent.elapsed();
    assert!(status.success(), "{status}\n{}", d.log());
    assert!(took <= Duration::from_millis(5200), "took {took:?}");
    // The node said why it did not stop cleanly.
    assert!(d.log().contains("did not finish"), "{}", d.log());
    // The data folder is usable again right away: same node, same identity.
    let id_before = std::fs::read(d.dir.join("identity.key"))?;
    d.restart().await?;
    assert_eq!(std::fs::read(d.dir.join("identity.key"))?, id_before);
    assert!(d.api.health().await.is_ok());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_without_pending_work_stops_cleanly_and_fast() -> Result<()> {
    let mut d = Daemon::start(&[]).await?;
    let sent = Instant::now();
    sigterm(&d)?;
    let status = wait_exit(&mut d, 6.0)?.context("did not stop")?;
    assert!(status.success(), "{status}");
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "{:?}",
        sent.elapsed()
    );
    assert!(!d.log().contains("did not finish"), "{}", d.log());
    // The API address file is removed on a clean stop.
    assert!(!d.dir.join("api").exists());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sigterm_exits_at_once() -> Result<()> {
    let mut d = Daemon::start(&[]).await?;
    let _upload = stalled_upload(&d)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    sigterm(&d)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = Instant::now();
    sigterm(&d)?;
    let status = wait_exit(&mut d, 3.0)?.context("did not exit after the second SIGTERM")?;
    assert!(
        second.elapsed() < Duration::from_secs(1),
        "{:?}",
        second.elapsed()
    );
    assert_eq!(status.code(), Some(130), "{status}");
    Ok(())
}
