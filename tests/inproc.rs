//! Multi-node scenarios run in-process over `mcc::Node::builder` (see `tests/common/inproc.rs`):
//! joining through a bootnode, records across nodes, a forwarded service. No binary is started.

mod common {
    pub mod inproc;
}

use anyhow::{Context, Result};
use common::inproc::{eventually, is_connected, spawn_joined, spawn_nodes};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Three nodes join through one bootnode, find each other through it, and each answers the
/// others' echo.
#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_join_through_one_bootnode_and_echo_each_other() -> Result<()> {
    let nodes = spawn_joined(3, |_, _| {}).await?;
    let ids: Vec<_> = nodes.iter().map(|n| n.peer_id()).collect();

    // Nodes 1 and 2 only know the bootnode; rendezvous introduces them to each other.
    eventually(30, "nodes 1 and 2 find each other", || async {
        Ok(is_connected(&nodes[1], &ids[2]).await? && is_connected(&nodes[2], &ids[1]).await?)
    })
    .await?;

    for from in &nodes {
        for (to, id) in nodes.iter().zip(&ids) {
            if from.index == to.index {
                continue;
            }
            let params = json!({ "from": from.index, "to": to.index });
            let answer = from.call(*id, "echo", params.clone()).await?;
            assert_eq!(answer, params, "echo {} -> {}", from.index, to.index);
        }
    }

    for node in nodes {
        node.shutdown().await?;
    }
    Ok(())
}

/// A record put on one node is read from another one.
#[tokio::test(flavor = "multi_thread")]
async fn a_record_put_on_one_node_is_read_from_another() -> Result<()> {
    let nodes = spawn_joined(3, |_, _| {}).await?;
    let key = b"/mcc/inproc-greeting".to_vec();

    let put = nodes[1]
        .put_record(key.clone(), b"hello in-process".to_vec(), None)
        .await?;
    assert!(put.stored_locally, "{put:?}");

    eventually(20, "node 2 reads the record", || async {
        Ok(nodes[2].get_record(key.clone()).await.is_ok())
    })
    .await?;
    let found = nodes[2].get_record(key.clone()).await?;
    assert_eq!(found.value, b"hello in-process");
    assert_eq!(found.publisher, Some(nodes[1].peer_id()));
    Ok(())
}

/// A TCP service registered on one node is reached from another through a tunnel.
#[tokio::test(flavor = "multi_thread")]
async fn a_service_is_forwarded_between_two_nodes() -> Result<()> {
    // The local service: echoes what it reads, one connection.
    let service = TcpListener::bind("127.0.0.1:0").await?;
    let service_addr = service.local_addr()?;
    let echo = tokio::spawn(async move {
        let (mut tcp, _) = service.accept().await?;
        let mut buf = [0u8; 1024];
        loop {
            let n = tcp.read(&mut buf).await?;
            if n == 0 {
                return anyhow::Ok(());
            }
            tcp.write_all(&buf[..n]).await?;
        }
    });

    let nodes = spawn_nodes(2, |_, _| {}).await?;
    nodes[1].connect(&nodes[0]).await?;
    nodes[0]
        .services()
        .add("echo", &format!("tcp://{service_addr}"))
        .await?;

    let mut tunnel = nodes[1]
        .services()
        .open_tunnel("echo", Some(nodes[0].peer_id()))
        .await?;
    assert_eq!(tunnel.peer(), Some(nodes[0].peer_id()));
    tunnel.write_all(b"through the tunnel").await?;
    let mut back = [0u8; 18];
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tunnel.read_exact(&mut back),
    )
    .await
    .context("no echo within 10 s")??;
    assert_eq!(&back, b"through the tunnel");

    drop(tunnel);
    tokio::time::timeout(std::time::Duration::from_secs(10), echo)
        .await
        .context("the service saw no end of the tunnel")???;
    Ok(())
}

/// RPC calls keep going while AutoNAT probes run between the two nodes: each asks the other
/// to dial it back, a second connection that request-response also sends calls on. Ending the
/// dial-back must not fail the calls on it (it did: the node closed it as soon as the probe
/// was answered, and calls on it failed with "connection closed").
#[tokio::test(flavor = "multi_thread")]
async fn rpc_calls_survive_autonat_probes() -> Result<()> {
    use futures::StreamExt;
    let nodes = spawn_nodes(2, |_, config| {
        config.rendezvous = None;
        config.nat.autonat_boot_delay = std::time::Duration::from_millis(500);
        config.nat.autonat_retry_interval = std::time::Duration::from_secs(1);
        config.idle_connection_timeout = std::time::Duration::from_secs(2);
    })
    .await?;
    let (a, b) = (&nodes[0], &nodes[1]);
    a.connect(b).await?;
    let started = std::time::Instant::now();
    // 64 calls in flight each way for 4 s: the probes fall in the middle.
    let flood = |from: &'static str| {
        let (caller, callee) = if from == "a" { (a, b) } else { (b, a) };
        futures::stream::iter(0..usize::MAX)
            .take_while(move |_| {
                futures::future::ready(started.elapsed() < std::time::Duration::from_secs(4))
            })
            .map(move |i| async move {
                let value = caller.call(callee.peer_id(), "echo", json!(i)).await;
                (i, value)
            })
            .buffer_unordered(64)
            .fold(Ok(0usize), move |acc, (i, value)| async move {
                let n = acc?;
                let value = value.with_context(|| {
                    format!(
                        "call {i} from {from} failed after {:.2} s",
                        started.elapsed().as_secs_f64()
                    )
                })?;
                anyhow::ensure!(value == json!(i), "echo returned {value}");
                Ok::<usize, anyhow::Error>(n + 1)
            })
    };
    let (from_a, from_b) = tokio::join!(flood("a"), flood("b"));
    let (from_a, from_b) = (from_a?, from_b?);
    assert!(from_a > 64 && from_b > 64, "{from_a} and {from_b} calls");
    // The probes did run, and their dial-backs close once idle: one connection is left.
    for node in [a, b] {
        let info = node.info().await?;
        assert_ne!(info.reachability, mcc::node::Reachability::Unknown);
    }
    eventually(15, "the dial-back connections close once idle", || async {
        let conns = |peers: Vec<mcc::node::PeerInfo>| peers.iter().map(|p| p.connections).sum();
        let (x, y): (usize, usize) = (conns(a.peers().await?), conns(b.peers().await?));
        Ok(x == 1 && y == 1)
    })
    .await?;
    Ok(())
}
