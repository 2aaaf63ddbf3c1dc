//! Routes through the real binary: `mcc route sub|pub|ls`, `/api/v1/routes/...` (Server-Sent
//! Events), the route metrics, and the delivery rules: both orders of sub and pub link, every
//! subscriber gets every message in order, a node without interest gets no message bytes, and
//! a subscriber that stops reading costs counted drops, not a stall.

mod common;

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{BIN, Daemon, wait_until};
use futures::StreamExt;
use mcc::api::types::RouteMessage;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const WAIT: Duration = Duration::from_secs(20);

async fn node(extra: &[&str]) -> Result<Daemon> {
    let mut args = vec!["--rendezvous", "off", "--enable-monitoring"];
    args.extend_from_slice(extra);
    Daemon::start(&args).await
}

/// `mcc --data-folder DIR route ARGS...` with piped stdin and stdout.
fn route_cli(d: &Daemon, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("--data-folder")
        .arg(&d.dir)
        .arg("route")
        .args(args)
        .env_remove("MCC_API")
        .env_remove("MCC_DATA_FOLDER")
        .env_remove("MCC_API_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Waits until `publisher` sees `n` peers interested in `route`.
async fn until_interested(publisher: &Daemon, route: &str, n: usize) -> Result<()> {
    wait_until(20, &format!("{n} peers interested in {route}"), || async {
        let routes = publisher.api.routes().await?;
        Ok(routes
            .iter()
            .any(|r| r.route == route && r.interested.len() == n))
    })
    .await
}

/// The value of a metric without labels from `/metrics`.
async fn metric(d: &Daemon, name: &str) -> Result<u64> {
    let text = reqwest::get(format!("{}/metrics", d.api.base_url()))
        .await?
        .text()
        .await?;
    let line = text
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .with_context(|| format!("no {name} in /metrics"))?;
    Ok(line[name.len()..].trim().parse()?)
}

/// Sub before pub: B's `route sub --json` is running when A's `route pub` runs, and prints the
/// message with sender, seq and time. Pub before sub: A's `route pub --wait` runs before
/// anyone subscribes (and B is not even connected yet); B subscribes, then connects, its
/// interest is replayed on the new connection, and the waiting publisher delivers. A message
/// published while nobody listens goes to 0 peers. `route ls` shows the counters.
#[tokio::test(flavor = "multi_thread")]
async fn sub_before_pub_and_pub_before_sub_both_link() -> Result<()> {
    let a = node(&[]).await?;
    let b = node(&[]).await?;
    let a_id = a.peer_id().await?;
    a.api.dial(&b.tcp_host_port().await?).await?;

    // Sub before pub.
    let mut sub = route_cli(&b, &["sub", "sensors/temp", "--json"]).spawn()?;
    let mut lines = BufReader::new(sub.stdout.take().context("stdout")?).lines();
    until_interested(&a, "sensors/temp", 1).await?;
    let out = route_cli(&a, &["pub", "sensors/temp", "21.5"])
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        String::from_utf8_lossy(&out.stdout).contains("to 1 peer(s)"),
        "pub said {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await??
        .context("sub ended")?;
    let m: RouteMessage = serde_json::from_str(&line)?;
    ensure!(
        m.from == a_id && m.seq == 1 && m.payload.as_deref() == Some("21.5"),
        "{m:?}"
    );
    ensure!(m.time_unix_ms > 1_600_000_000_000, "{m:?}");
    drop(sub);

    // Nobody listens on `late`: nothing is sent.
    let early = a.api.publish_route("late", b"early".to_vec(), None).await?;
    ensure!(early.peers == 0 && early.seq == 1, "{early:?}");

    // Pub before sub, and before C even connects.
    let c = node(&[]).await?;
    let mut publisher = route_cli(&a, &["pub", "late", "hello", "--wait", "15"]).spawn()?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut sub = route_cli(&c, &["sub", "late"]).spawn()?;
    let mut lines = BufReader::new(sub.stdout.take().context("stdout")?).lines();
    wait_until(20, "c's subscription", || async {
        Ok(c.api.routes().await?.iter().any(|r| r.subscribers == 1))
    })
    .await?;
    c.api.dial(&a.tcp_host_port().await?).await?;
    let status = tokio::time::timeout(WAIT, publisher.wait()).await??;
    ensure!(status.success(), "pub --wait failed");
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await??
        .context("sub ended")?;
    ensure!(line == "hello", "got {line:?}");

    // route ls --json on A: B left (withdrawn), C listens; one message sent on `late`.
    let out = route_cli(&a, &["ls"]).arg("--json").output().await?;
    ensure!(out.status.success());
    let routes: Vec<mcc::api::types::RouteEntry> = serde_json::from_slice(&out.stdout)?;
    let late = routes.iter().find(|r| r.route == "late").context("late")?;
    ensure!(late.sent == 1 && late.interested.len() == 1, "{late:?}");
    Ok(())
}

/// B, C and D follow a route over Server-Sent Events and get all 300 messages in order; E is
/// connected to the publisher but has no interest: its received counter stays 0 and the
/// publisher's sent counter is exactly 3 × 300 (nothing went to E).
#[tokio::test(flavor = "multi_thread")]
async fn three_subscribers_get_every_message_in_order_and_a_bystander_gets_none() -> Result<()> {
    let a = node(&[]).await?;
    let a_addr = a.tcp_host_port().await?;
    let mut subs = Vec::new();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let n = node(&[]).await?;
        n.api.dial(&a_addr).await?;
        subs.push(Box::pin(n.api.follow_route("feed/all").await?));
        nodes.push(n);
    }
    let bystander = node(&[]).await?;
    bystander.api.dial(&a_addr).await?;
    until_interested(&a, "feed/all", 3).await?;

    const N: u64 = 300;
    let readers = subs.into_iter().map(|mut s| async move {
        for i in 1..=N {
            let m = tokio::time::timeout(WAIT, s.next())
                .await?
                .context("stream ended")??;
            ensure!(m.seq == i && m.payload == Some(format!("m{i}")), "{m:?}");
            ensure!(m.dropped == 0, "{m:?}");
        }
        anyhow::Ok(())
    });
    let readers = futures::future::try_join_all(readers);
    let writer = async {
        for i in 1..=N {
            let r = a
                .api
                .publish_route("feed/all", format!("m{i}").into_bytes(), None)
                .await?;
            ensure!(r.peers == 3, "{r:?}");
        }
        anyhow::Ok(())
    };
    tokio::try_join!(readers, writer)?;

    ensure!(metric(&a, "mcc_route_messages_sent_total").await? == 3 * N);
    ensure!(metric(&bystander, "mcc_route_messages_received_total").await? == 0);
    // The bystander may learn the others' interests (kad can connect it to them), but it
    // subscribes to nothing and receives nothing.
    for r in bystander.api.routes().await? {
        ensure!(r.subscribers == 0 && r.received == 0, "{r:?}");
    }
    for n in &nodes {
        ensure!(metric(n, "mcc_route_messages_received_total").await? == N);
    }
    Ok(())
}

/// B (with `--route-queue 8`) has a subscriber that never reads its event stream and one that
/// does; C has one that does. The publisher goes on, both readers get every message, and B
/// counts the slow subscriber's drops (route list and metric).
#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_that_stops_reading_costs_counted_drops_not_a_stall() -> Result<()> {
    let a = node(&[]).await?;
    let a_addr = a.tcp_host_port().await?;
    let b = node(&["--route-queue", "8"]).await?;
    let c = node(&[]).await?;
    b.api.dial(&a_addr).await?;
    c.api.dial(&a_addr).await?;
    // The slow one: the response is open but its body is never read.
    let slow = reqwest::get(format!("{}/api/v1/routes/big/events", b.api.base_url())).await?;
    ensure!(slow.status().is_success());
    let mut fast_b = Box::pin(b.api.follow_route("big").await?);
    let mut fast_c = Box::pin(c.api.follow_route("big").await?);
    until_interested(&a, "big", 2).await?;

    // 300 messages of 64 KiB (19 MiB): far more than the socket buffers of the slow stream.
    const N: u64 = 300;
    let payload = "x".repeat(64 * 1024);
    for i in 1..=N {
        let r = tokio::time::timeout(
            WAIT,
            a.api
                .publish_route("big", payload.clone().into_bytes(), None),
        )
        .await??;
        ensure!(r.peers == 2 && r.dropped == 0, "{r:?}");
        // Lockstep with the readers, so that only the slow subscriber can fall behind.
        for s in [&mut fast_b, &mut fast_c] {
            let m = tokio::time::timeout(WAIT, s.next())
                .await?
                .context("stream ended")??;
            ensure!(
                m.seq == i && m.dropped == 0,
                "seq {} dropped {}",
                m.seq,
                m.dropped
            );
        }
    }
    let routes = b.api.routes().await?;
    let big = routes.iter().find(|r| r.route == "big").context("big")?;
    ensure!(big.subscribers == 2 && big.received == N, "{big:?}");
    ensure!(big.dropped > 0, "no drops counted: {big:?}");
    ensure!(metric(&b, "mcc_route_messages_dropped_total").await? == big.dropped);
    drop(slow);
    Ok(())
}

/// Bad input: a bad route name is a 400 with a JSON error, `route pub` with a bad name exits
/// non-zero, and an over-limit message is a 413. The endpoints are in the OpenAPI document,
/// and `route pub` without MSG publishes each stdin line.
#[tokio::test(flavor = "multi_thread")]
async fn bad_routes_and_oversized_messages_are_refused() -> Result<()> {
    let a = node(&[]).await?;
    let err = a
        .api
        .publish_route("Bad Route", b"x".to_vec(), None)
        .await
        .err()
        .context("accepted a bad route")?;
    ensure!(err.status() == Some(400), "{err}");
    let err = a
        .api
        .publish_route("big", vec![b'x'; 300 * 1024], None)
        .await
        .err()
        .context("accepted an oversized message")?;
    ensure!(err.status() == Some(413), "{err}");
    let resp = reqwest::get(format!("{}/api/v1/routes/a//b/events", a.api.base_url())).await?;
    ensure!(resp.status() == 400);
    let body: serde_json::Value = resp.json().await?;
    ensure!(body["error"].is_string(), "{body}");
    let spec: serde_json::Value = reqwest::get(format!("{}/api/v1/openapi.json", a.api.base_url()))
        .await?
        .json()
        .await?;
    ensure!(spec["paths"]["/api/v1/routes/{route}"]["post"].is_object());
    ensure!(spec["paths"]["/api/v1/routes/{route}/events"]["get"].is_object());
    ensure!(spec["paths"]["/api/v1/routes"]["get"].is_object());
    let out = route_cli(&a, &["pub", "a//b", "x"]).output().await?;
    ensure!(!out.status.success());
    let mut publisher = route_cli(&a, &["pub", "lines"]).spawn()?;
    let mut stdin = publisher.stdin.take().context("stdin")?;
    stdin.write_all(b"one\ntwo\n").await?;
    drop(stdin);
    let out = tokio::time::timeout(WAIT, publisher.wait_with_output()).await??;
    ensure!(out.status.success());
    ensure!(String::from_utf8_lossy(&out.stderr).contains("published 2 message(s)"));
    Ok(())
}
