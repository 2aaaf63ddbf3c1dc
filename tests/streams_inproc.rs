//! User streams between in-process nodes (`node.listen_streams`, `node.open_stream`): bytes
//! both ways, half-close, over a relayed connection too, one listener per name, permissions
//! under `--trust-ca`, and the errors of a bad name, a peer that does not listen and a peer
//! that cannot be reached.

mod common {
    pub mod inproc;
}

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::inproc::{eventually, spawn_nodes};
use mcc::streams;
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(20);

/// A opens "chat" to B and sends 1 MiB then half-closes; B reads it all to the end, and only
/// then answers over the same stream: the direction B → A still works after A's side closed.
#[tokio::test(flavor = "multi_thread")]
async fn bytes_flow_both_ways_and_a_half_close_keeps_the_other_direction() -> Result<()> {
    let nodes = spawn_nodes(2, |_, _| {}).await?;
    let (a, b) = (&nodes[0], &nodes[1]);
    a.connect(b).await?;

    let mut incoming = b.listen_streams("chat")?;
    assert_eq!(incoming.name(), "chat");
    let mut data = vec![0u8; 1024 * 1024];
    rand::thread_rng().fill_bytes(&mut data);

    let server = tokio::spawn(async move {
        let (from, mut stream) = incoming.accept().await.context("no incoming stream")?;
        ensure!(stream.peer() == from && stream.name() == "chat");
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await?;
        stream.write_all(b"got ").await?;
        stream.write_all(got.len().to_string().as_bytes()).await?;
        stream.shutdown().await?;
        anyhow::Ok((from, got))
    });

    let mut out = tokio::time::timeout(WAIT, a.open_stream(b.peer_id(), "chat")).await??;
    assert_eq!(out.peer(), b.peer_id());
    out.write_all(&data).await?;
    out.shutdown().await?;
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, out.read_to_end(&mut answer)).await??;
    assert_eq!(
        String::from_utf8_lossy(&answer),
        format!("got {}", data.len())
    );

    let (from, got) = tokio::time::timeout(WAIT, server).await???;
    assert_eq!(from, a.peer_id());
    assert!(got == data, "the bytes arrived changed");
    Ok(())
}

/// B listens before A connects, so A's identify lists B's protocol: A's stream opens
/// optimistically (its first bytes go with the protocol proposal), and both nodes count it in
/// `NodeInfo::streams`.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_to_a_listed_name_opens_optimistically_and_is_counted() -> Result<()> {
    const CHAT: &str = "/mcc/stream/1.0.0/chat";
    let nodes = spawn_nodes(2, |_, _| {}).await?;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut incoming = b.listen_streams("chat")?;
    a.connect(b).await?;
    eventually(20, "A learns B's protocols", || async {
        let peers = a.peers().await?;
        Ok(peers
            .iter()
            .any(|p| p.peer_id == b.peer_id() && p.protocols.iter().any(|x| x == CHAT)))
    })
    .await?;

    let server = tokio::spawn(async move {
        let (_, mut stream) = incoming.accept().await.context("no incoming stream")?;
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await?;
        stream.write_all(&buf).await?;
        stream.shutdown().await?;
        anyhow::Ok(())
    });
    let mut out = tokio::time::timeout(WAIT, a.open_stream(b.peer_id(), "chat")).await??;
    out.write_all(b"ping").await?;
    let mut back = [0u8; 4];
    tokio::time::timeout(WAIT, out.read_exact(&mut back)).await??;
    assert_eq!(&back, b"ping");
    tokio::time::timeout(WAIT, server).await???;

    let sent = a.info().await?.streams;
    let sent = sent
        .iter()
        .find(|s| s.protocol == CHAT)
        .context("A counts no chat stream")?;
    assert_eq!((sent.opened, sent.optimistic, sent.open_failed), (1, 1, 0));
    let got = b.info().await?.streams;
    let got = got
        .iter()
        .find(|s| s.protocol == CHAT)
        .context("B counts no chat stream")?;
    assert_eq!(
        (got.inbound, got.accepted, got.queued, got.refused),
        (1, 1, 0, 0)
    );
    Ok(())
}

/// A name has one listener at a time; dropping it frees the name, and a peer then hears
/// that nobody listens.
#[tokio::test(flavor = "multi_thread")]
async fn one_listener_per_name_until_it_is_dropped() -> Result<()> {
    let nodes = spawn_nodes(2, |_, _| {}).await?;
    let (a, b) = (&nodes[0], &nodes[1]);
    a.connect(b).await?;

    let first = b.listen_streams("chat")?;
    assert!(matches!(
        b.listen_streams("chat"),
        Err(streams::Error::AlreadyListening(n)) if n == "chat"
    ));
    // Another name is free.
    let _other = b.listen_streams("chat2")?;
    drop(first);
    let again = b.listen_streams("chat")?;
    drop(again);

    match tokio::time::timeout(WAIT, a.open_stream(b.peer_id(), "nobody")).await? {
        Err(streams::Error::NotListening { peer, name }) => {
            assert_eq!((peer, name.as_str()), (b.peer_id(), "nobody"));
        }
        other => anyhow::bail!("expected NotListening, got {:?}", other.map(|s| s.peer())),
    }
    Ok(())
}

/// Bad names, this node itself and an unknown peer are typed errors, each with its status.
#[tokio::test(flavor = "multi_thread")]
async fn bad_names_self_and_unreachable_peers_are_typed_errors() -> Result<()> {
    let nodes = spawn_nodes(1, |_, _| {}).await?;
    let a = &nodes[0];
    for bad in ["", "a/b", "with space", &"x".repeat(65)] {
        let e = a
            .listen_streams(bad)
            .err()
            .context("a bad name was accepted")?;
        assert!(matches!(e, streams::Error::InvalidName(_)), "{bad:?}: {e}");
        assert_eq!(e.status(), 400);
        let e = a
            .open_stream(libp2p::PeerId::random(), bad)
            .await
            .err()
            .context("a bad name was accepted")?;
        assert!(matches!(e, streams::Error::InvalidName(_)), "{bad:?}: {e}");
    }
    let e = a
        .open_stream(a.peer_id(), "chat")
        .await
        .err()
        .context("self")?;
    assert!(matches!(e, streams::Error::SelfStream), "{e}");

    // A peer nobody knows an address of: the dial fails (or times out), never hangs.
    let quick = a
        .streams()
        .clone()
        .with_open_timeout(Duration::from_secs(3));
    let e = tokio::time::timeout(WAIT, quick.open(libp2p::PeerId::random(), "chat"))
        .await?
        .err()
        .context("a stream to nobody opened")?;
    assert!(
        matches!(
            e,
            streams::Error::Open { .. } | streams::Error::Timeout { .. }
        ),
        "{e}"
    );
    assert!(e.status() == 502 || e.status() == 504, "{}", e.status());
    Ok(())
}

/// Under `--trust-ca`, listening needs `services:provide` and opening `services:consume`,
/// on this node (403 before anything is sent) and on the peer: a listener drops streams from a
/// peer without `services:consume`, and an opener drops a stream to a peer without
/// `services:provide`.
#[tokio::test(flavor = "multi_thread")]
async fn permissions_are_checked_on_both_ends_under_trust_ca() -> Result<()> {
    let root = tempfile::tempdir()?;
    let ca = root.path().join("ca");
    mcc::certs::ca_init(&ca, "ca", 30.0)?;
    let (alpha, _alpha_dir) = common::inproc::closed_node(root.path(), &ca, "alpha", "all").await?;
    let (reader, _reader_dir) =
        common::inproc::closed_node(root.path(), &ca, "reader", "rpc:call").await?;
    let alpha_addr = alpha
        .info()
        .await?
        .listen_addrs
        .into_iter()
        .find(|a| mcc::node::addr::host_port(a).is_some())
        .context("alpha has no TCP address")?;
    reader.dial(alpha_addr).await?;
    let (a_id, r_id) = (alpha.peer_id(), reader.peer_id());
    common::inproc::eventually(20, "alpha and reader admit each other", || async {
        let admitted = |peers: Vec<mcc::node::PeerInfo>, id| {
            peers.iter().any(|p| p.peer_id == id && p.admitted)
        };
        Ok(admitted(alpha.peers().await?, r_id) && admitted(reader.peers().await?, a_id))
    })
    .await?;

    // This node's own certificate: refused before anything goes out.
    let e = reader
        .listen_streams("chat")
        .err()
        .context("reader listened")?;
    assert!(e.to_string().contains("services:provide"), "{e}");
    assert_eq!(e.status(), 403);
    let e = reader
        .open_stream(a_id, "chat")
        .await
        .err()
        .context("reader opened a stream")?;
    assert!(e.to_string().contains("services:consume"), "{e}");
    assert_eq!(e.status(), 403);

    // The peer's certificate: a raw stream from reader (bypassing its own check) is dropped
    // by alpha's listener, never yielded.
    let mut incoming = alpha.listen_streams("chat")?;
    let mut control = reader.network().control();
    let raw = control
        .open_stream(a_id, streams::protocol("chat")?)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let got = tokio::time::timeout(Duration::from_secs(1), incoming.accept()).await;
    assert!(
        got.is_err(),
        "alpha accepted a stream from a peer without services:consume"
    );
    drop(raw);

    // And alpha keeps no stream to reader, which may not provide.
    let _reader_listens = control.accept(streams::protocol("back")?)?;
    let e = alpha
        .open_stream(r_id, "back")
        .await
        .err()
        .context("alpha kept a stream to a peer without services:provide")?;
    assert!(
        matches!(e, streams::Error::PeerForbidden(p) if p == r_id),
        "{e}"
    );
    Ok(())
}

/// A listener ends (`None`) when its node stops, so nobody waits forever on a dead node.
#[tokio::test(flavor = "multi_thread")]
async fn a_listener_ends_when_its_node_stops() -> Result<()> {
    let mut nodes = spawn_nodes(1, |_, _| {}).await?;
    let node = nodes.remove(0);
    let mut incoming = node.listen_streams("chat")?;
    let waiting = tokio::spawn(async move { incoming.accept().await.map(|(p, _)| p) });
    node.shutdown().await?;
    let got = tokio::time::timeout(WAIT, waiting).await??;
    assert!(
        got.is_none(),
        "a stream from {got:?} after the node stopped"
    );
    Ok(())
}

/// Two nodes nobody can dial (no listen address) reach each other only through a relay: a
/// user stream runs over that relayed connection, both ways with a half-close.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_runs_over_a_relayed_connection() -> Result<()> {
    use common::inproc::{base_config, eventually, spawn_node};
    use libp2p::multiaddr::Protocol;

    let mut relay_config = base_config("relay")?;
    relay_config.nat.relay_server = true;
    let relay = spawn_node(0, relay_config).await?;
    let relay_addr = relay.tcp_addr().await?;
    let mut a_config = base_config("hiddena")?;
    a_config.listen = Vec::new();
    a_config.nat.relays = vec![relay_addr];
    let a = spawn_node(1, a_config).await?;
    eventually(15, "the relay accepts a's reservation", || async {
        Ok(a.info().await?.relays.iter().any(|r| r.accepted))
    })
    .await?;
    let info = a.info().await?;
    let circuit = info
        .relays
        .iter()
        .find(|r| r.accepted)
        .context("no accepted reservation")?
        .addr
        .clone()
        .with(Protocol::P2p(a.peer_id()));
    let mut b_config = base_config("hiddenb")?;
    b_config.listen = Vec::new();
    let b = spawn_node(2, b_config).await?;
    assert_eq!(b.dial(circuit).await?, a.peer_id());

    let mut incoming = a.listen_streams("chat")?;
    let mut data = vec![0u8; 256 * 1024];
    rand::thread_rng().fill_bytes(&mut data);
    let server = tokio::spawn(async move {
        let (from, mut stream) = incoming.accept().await.context("no incoming stream")?;
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await?;
        stream.write_all(b"pong").await?;
        stream.shutdown().await?;
        anyhow::Ok((from, got))
    });
    let mut out = tokio::time::timeout(WAIT, b.open_stream(a.peer_id(), "chat")).await??;
    out.write_all(&data).await?;
    out.shutdown().await?;
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, out.read_to_end(&mut answer)).await??;
    assert_eq!(answer, b"pong");
    let (from, got) = tokio::time::timeout(WAIT, server).await???;
    assert_eq!(from, b.peer_id());
    assert!(got == data, "the bytes arrived changed");
    // Only the relay joins them: the stream cannot have gone any other way.
    let peers = b.peers().await?;
    let to_a = peers
        .iter()
        .find(|p| p.peer_id == a.peer_id())
        .context("b lost a")?;
    assert!(to_a.relayed, "b reaches a directly: {to_a:?}");
    Ok(())
}
