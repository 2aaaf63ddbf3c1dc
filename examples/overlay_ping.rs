//! The overlay demo: three peers b ↔ a ↔ c in one process. Neither b nor c listens anywhere,
//! so nobody can dial them; a is a relay. b reserves a slot on a, c knows only a, and c sends
//! pings to b over two streams at once — through a, the only path there is.
//!
//! ```sh
//! cargo run --example overlay_ping
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use libp2p::multiaddr::Protocol;
use mcc::node::{Config, MdnsMode, Node, addr};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

/// Pings each stream sends.
const PINGS: u32 = 3;

fn config(label: &str) -> Result<Config> {
    Ok(Config {
        label: Some(label.into()),
        listen: addr::parse_listen("127.0.0.1:0")?,
        mdns: MdnsMode::Off,
        // The demo shows the relay path only: no rendezvous dialling on the side.
        rendezvous: None,
        ..Config::default()
    })
}

/// Waits up to `secs` for `check` to hold.
async fn wait_for<F, Fut>(secs: u64, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check().await.unwrap_or(false) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("timed out waiting until {what}")
}

/// b's side: answers "ping N" with "pong N" on every stream, line by line.
async fn serve_pings(node: Node) -> Result<()> {
    let mut listener = node.listen_streams("ping")?;
    while let Some((peer, stream)) = listener.accept().await {
        println!("b: stream from {peer}");
        tokio::spawn(async move {
            let (read, mut write) = tokio::io::split(stream);
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let reply = line.replacen("ping", "pong", 1);
                if write
                    .write_all(format!("{reply}\n").as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
    }
    Ok(())
}

/// c's side: one stream to b, [`PINGS`] pings on it, each answer timed.
async fn ping_over_stream(c: Node, b: libp2p::PeerId, id: u32) -> Result<()> {
    let stream = c.open_stream(b, "ping").await?;
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read).lines();
    for n in 0..PINGS {
        let sent = Instant::now();
        write
            .write_all(format!("ping {id}.{n}\n").as_bytes())
            .await?;
        let reply = lines.next_line().await?.context("b closed the stream")?;
        ensure!(
            reply == format!("pong {id}.{n}"),
            "unexpected reply {reply:?}"
        );
        println!(
            "c: stream {id}: {reply} in {:.2} ms",
            sent.elapsed().as_secs_f64() * 1e3
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    // `RUST_LOG=debug cargo run --example overlay_ping` shows what the nodes do.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    // a: the relay, the only node anyone can dial.
    let mut a_config = config("a")?;
    a_config.nat.relay_server = true;
    let (a, a_task) = Node::builder(a_config).spawn(stopped()).await?;
    let a_addr = a
        .info()
        .await?
        .listen_addrs
        .into_iter()
        .find(|x| addr::host_port(x).is_some())
        .context("a has no TCP address")?
        .with(Protocol::P2p(a.peer_id()));
    println!("a: relay at {a_addr}");

    // b: listens nowhere, reserves a slot on a.
    let mut b_config = config("b")?;
    b_config.listen = Vec::new();
    b_config.nat.relays = vec![a_addr.clone()];
    let (b, b_task) = Node::builder(b_config).spawn(stopped()).await?;
    wait_for(15, "a accepts b's reservation", || async {
        Ok(b.info().await?.relays.iter().any(|r| r.accepted))
    })
    .await?;
    let info = b.info().await?;
    let circuit = info
        .relays
        .iter()
        .find(|r| r.accepted)
        .context("no reservation")?
        .addr
        .clone()
        .with(Protocol::P2p(b.peer_id()));
    println!("b: reachable at {circuit}");
    let server = tokio::spawn(serve_pings(b.clone()));

    // c: listens nowhere either, knows only a (and b's relayed address).
    let mut c_config = config("c")?;
    c_config.listen = Vec::new();
    c_config.boot = vec![a_addr];
    let (c, c_task) = Node::builder(c_config).spawn(stopped()).await?;
    c.dial(circuit).await?;
    let path = c
        .peers()
        .await?
        .into_iter()
        .find(|p| p.peer_id == b.peer_id())
        .context("c is not connected to b")?;
    ensure!(path.relayed, "c should reach b only through a");
    println!("c: connected to b through a (relayed: {})", path.relayed);

    // Two streams at once over the one relayed connection.
    let (one, two) = tokio::join!(
        ping_over_stream(c.clone(), b.peer_id(), 1),
        ping_over_stream(c.clone(), b.peer_id(), 2)
    );
    one?;
    two?;
    let circuits = a
        .info()
        .await?
        .relay_server
        .map(|r| r.circuits)
        .unwrap_or(0);
    println!("a: relaying {circuits} circuit(s)");

    server.abort();
    stop_tx.send(true)?;
    tokio::time::timeout(Duration::from_secs(5), async {
        let _ = a_task.await;
        let _ = b_task.await;
        let _ = c_task.await;
    })
    .await
    .context("nodes did not stop")?;
    Ok(())
}
