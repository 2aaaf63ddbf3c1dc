//! `mcc stream listen|connect` and `/api/v1/streams/...` through the real binary: 4 MiB
//! through two daemons and a reply back (half-close), the API token carried by the CLI, and
//! the errors before the upgrade (JSON 4xx/5xx, non-zero exits).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{BIN, Daemon};
use rand::RngCore;
use sha2::{Digest, Sha256};

const WAIT: Duration = Duration::from_secs(20);

/// A daemon with `--api-token auto` whose test client carries the token.
async fn daemon_with_token() -> Result<Daemon> {
    let mut d = Daemon::start(&["--rendezvous", "off", "--api-token", "auto"]).await?;
    let token = std::fs::read_to_string(d.dir.join("api-token"))?;
    d.api = d.api.clone().with_token(token.trim());
    Ok(d)
}

/// `mcc --data-folder DIR stream ARGS...` with stdin from `input` and stdout to `output`.
fn stream_cli(
    dir: &Path,
    args: &[&str],
    input: &Path,
    output: &Path,
) -> Result<tokio::process::Command> {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("--data-folder")
        .arg(dir)
        .arg("stream")
        .args(args)
        .env_remove("MCC_API")
        .env_remove("MCC_DATA_FOLDER")
        .env_remove("MCC_API_TOKEN")
        .stdin(std::fs::File::open(input)?)
        .stdout(std::fs::File::create(output)?)
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    Ok(cmd)
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// B runs `mcc stream listen chat` with a short reply on stdin, A runs `mcc stream connect B
/// chat` with 4 MiB of random bytes on stdin: B's stdout gets them intact, and the reply (sent
/// and half-closed by B at once, while A still sends) reaches A's stdout. Both exit 0; both
/// CLIs find their node's API token in the data folder.
#[tokio::test(flavor = "multi_thread")]
async fn four_mib_flow_through_cli_streams_and_a_reply_comes_back() -> Result<()> {
    let a = daemon_with_token().await?;
    let b = daemon_with_token().await?;
    let b_id = b.peer_id().await?;
    let a_id = a.peer_id().await?;
    a.api.dial(&b.tcp_host_port().await?).await?;

    let tmp = tempfile::tempdir()?;
    let mut data = vec![0u8; 4 * 1024 * 1024];
    rand::thread_rng().fill_bytes(&mut data);
    let (big, reply) = (tmp.path().join("big"), tmp.path().join("reply"));
    std::fs::write(&big, &data)?;
    std::fs::write(&reply, b"thanks from b\n")?;
    let (got_b, got_a) = (tmp.path().join("got-b"), tmp.path().join("got-a"));

    let listener = stream_cli(&b.dir, &["listen", "chat"], &reply, &got_b)?.spawn()?;
    // Connect once B listens (a connect before that is refused: nobody listens yet).
    let mut attempts = 0;
    let connect = loop {
        attempts += 1;
        let out = tokio::time::timeout(
            WAIT,
            stream_cli(&a.dir, &["connect", &b_id, "chat"], &big, &got_a)?
                .spawn()?
                .wait_with_output(),
        )
        .await??;
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() || !err.contains("does not listen") || attempts == 50 {
            break (out.status, err);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ensure!(connect.0.success(), "connect failed: {}", connect.1);

    let out = tokio::time::timeout(WAIT, listener.wait_with_output()).await??;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "listen failed: {err}");
    ensure!(err.contains(&format!("stream from {a_id}")), "{err}");

    let received = std::fs::read(&got_b)?;
    ensure!(
        received.len() == data.len(),
        "{} bytes of {}",
        received.len(),
        data.len()
    );
    assert_eq!(sha256(&received), sha256(&data));
    assert_eq!(std::fs::read(&got_a)?, b"thanks from b\n");
    Ok(())
}

/// A raw upgrade request to the node's API (`token`: as `Authorization: Bearer`).
async fn upgrade(
    d: &Daemon,
    path: &str,
    token: Option<&str>,
    upgrade: bool,
) -> Result<reqwest::Response> {
    let mut req = reqwest::Client::builder()
        .http1_only()
        .build()?
        .get(format!("{}/api/v1/streams/{path}", d.api.base_url()));
    if upgrade {
        req = req
            .header("connection", "upgrade")
            .header("upgrade", "mcc-stream");
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    Ok(tokio::time::timeout(WAIT, req.send()).await??)
}

async fn json_error(r: reqwest::Response, status: u16) -> Result<String> {
    ensure!(
        r.status() == status,
        "expected {status}, got {}",
        r.status()
    );
    let body: serde_json::Value = r.json().await?;
    body["error"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no error text in {body}"))
}

/// Errors before the upgrade are JSON with the right status, the API guard covers the stream
/// endpoints, a second listener on a name is 409 (in the API and the CLI) until the first
/// client goes away, and the CLI exits non-zero with the server's message.
#[tokio::test(flavor = "multi_thread")]
async fn stream_errors_are_json_before_the_upgrade_and_non_zero_exits() -> Result<()> {
    let mut d = daemon_with_token().await?;
    let secret = std::fs::read_to_string(d.dir.join("api-token"))?;
    let token = Some(secret.trim());
    let me = d.peer_id().await?;
    let stranger = libp2p::PeerId::random().to_string();

    // The guard first: no token is 401, a foreign Host 403.
    let r = upgrade(&d, "chat/listen", None, true).await?;
    json_error(r, 401).await?;
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/streams/chat/listen", d.api.base_url()))
        .header("host", "evil.example")
        .header("connection", "upgrade")
        .header("upgrade", "mcc-stream")
        .bearer_auth(secret.trim())
        .send()
        .await?;
    json_error(r, 403).await?;

    // Not an upgrade: 426 naming the protocol.
    let r = upgrade(&d, "chat/listen", token, false).await?;
    ensure!(
        r.headers()
            .get("upgrade")
            .is_some_and(|v| v == "mcc-stream")
    );
    let e = json_error(r, 426).await?;
    ensure!(e.contains("Upgrade: mcc-stream"), "{e}");
    // Bad input is 400 whatever the headers.
    let e = json_error(upgrade(&d, "bad%20name/listen", token, false).await?, 400).await?;
    ensure!(e.contains("invalid stream name"), "{e}");

    let e = json_error(upgrade(&d, "bad%20name/listen", token, true).await?, 400).await?;
    ensure!(e.contains("invalid stream name"), "{e}");
    let e = json_error(
        upgrade(&d, &format!("a%2Fb/connect/{stranger}"), token, true).await?,
        400,
    )
    .await?;
    ensure!(e.contains("invalid stream name"), "{e}");
    let e = json_error(
        upgrade(&d, "chat/connect/not-a-peer", token, true).await?,
        400,
    )
    .await?;
    ensure!(e.contains("invalid peer id"), "{e}");
    let e = json_error(
        upgrade(&d, &format!("chat/connect/{me}"), token, true).await?,
        400,
    )
    .await?;
    ensure!(e.contains("itself"), "{e}");
    // A peer with no known address: the dial fails at once.
    let r = upgrade(&d, &format!("chat/connect/{stranger}"), token, true).await?;
    ensure!(matches!(r.status().as_u16(), 502 | 504), "{}", r.status());
    let e = json_error(r, 502).await?;
    ensure!(e.contains(&stranger), "{e}");

    // A listener waits; a second one on the same name is 409, in the API and the CLI. (If the
    // probe happens to reach the node first, it is the one waiting: try again.)
    let mut conflict = None;
    let mut first = None;
    for _ in 0..5 {
        let holder = tokio::spawn({
            let api = d.api.clone();
            async move { api.stream_listen("chat").await.map(|(peer, _)| peer) }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let probe = upgrade(&d, "chat/listen", token, true);
        if let Ok(r) = tokio::time::timeout(Duration::from_secs(2), probe).await {
            conflict = Some(json_error(r?, 409).await?);
            first = Some(holder);
            break;
        }
        holder.abort();
    }
    let e = conflict.context("the second listener was never refused")?;
    ensure!(e.contains("already listening on stream chat"), "{e}");
    let dir = d.dir.to_string_lossy().into_owned();
    let (ok, _, err) = common::cli(&["--data-folder", &dir, "stream", "listen", "chat"])?;
    ensure!(
        !ok && err.contains("already listening") && err.contains("409"),
        "{err}"
    );

    // The first client goes away: the name is free again (a new listener waits, no 409).
    if let Some(first) = first {
        first.abort();
    }
    let mut freed = false;
    for _ in 0..50 {
        match tokio::time::timeout(
            Duration::from_millis(500),
            upgrade(&d, "chat/listen", token, true),
        )
        .await
        {
            Err(_) => {
                freed = true;
                break;
            }
            Ok(r) => json_error(r?, 409).await.map(drop)?,
        }
    }
    ensure!(freed, "the name stayed taken after its listener went away");

    // The CLI: a bad name and an unknown peer are clear errors with a non-zero exit.
    let (ok, _, err) = common::cli(&["--data-folder", &dir, "stream", "listen", "bad/name"])?;
    ensure!(!ok && err.contains("invalid stream name"), "{err}");
    let (ok, _, err) = common::cli(&[
        "--data-folder",
        &dir,
        "stream",
        "connect",
        &stranger,
        "chat",
    ])?;
    ensure!(!ok && err.contains("cannot open stream chat"), "{err}");

    // A node stopping with a listener waiting stops at once; the listener exits non-zero.
    let tmp = tempfile::tempdir()?;
    let (empty, out) = (tmp.path().join("empty"), tmp.path().join("out"));
    std::fs::write(&empty, b"")?;
    let waiting = stream_cli(&d.dir, &["listen", "chat"], &empty, &out)?.spawn()?;
    // The CLI needs well under a second to reach the node; it then waits there.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut waiting = waiting;
    ensure!(waiting.try_wait()?.is_none(), "the listener did not wait");
    d.stop()?;
    let out = tokio::time::timeout(WAIT, waiting.wait_with_output()).await??;
    ensure!(
        !out.status.success(),
        "the listener exited 0 when its node stopped"
    );
    Ok(())
}
