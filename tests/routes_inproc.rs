//! Routes between in-process nodes (`node.publish`, `node.subscribe`): linking through the
//! node API, a subscriber's late connection, and permissions under `--trust-ca`.

mod common {
    pub mod inproc;
}

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::inproc::{eventually, spawn_nodes};
use futures::StreamExt;

const WAIT: Duration = Duration::from_secs(20);

/// A publisher waits for a subscriber that connects after it started; the message arrives with
/// the publisher as sender, and the counters of both nodes say so.
#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_publisher_reaches_a_subscriber_that_connects_later() -> Result<()> {
    let nodes = spawn_nodes(2, |_, _| {}).await?;
    let (a, b) = (&nodes[0], &nodes[1]);
    let publisher = a.publish("sensors/temp")?;
    let mut sub = b.subscribe("sensors/temp")?;
    let waiting = tokio::spawn({
        let publisher = publisher.clone();
        async move { publisher.wait_for_listener().await }
    });
    b.connect(a).await?;
    tokio::time::timeout(WAIT, waiting).await??;
    ensure!(publisher.listeners() == vec![b.peer_id()]);
    let d = publisher.send(&b"21.5"[..]).await?;
    ensure!(d.peers == 1 && d.seq == 1, "{d:?}");
    let m = tokio::time::timeout(WAIT, sub.next())
        .await?
        .context("subscription ended")?;
    ensure!(m.from == a.peer_id() && &m.payload[..] == b"21.5", "{m:?}");
    ensure!(a.routes().stats().sent == 1 && b.routes().stats().received == 1);
    Ok(())
}

async fn tcp_addr(node: &mcc::Node) -> Result<libp2p::Multiaddr> {
    node.info()
        .await?
        .listen_addrs
        .into_iter()
        .find(|a| mcc::node::addr::host_port(a).is_some())
        .context("no TCP address")
}

/// Under `--trust-ca`: a node subscribes only with `routes:subscribe` and publishes only with
/// `routes:publish` (403 otherwise); an admitted subscriber links to the publisher, and a node
/// of another CA (never admitted) never becomes a listener, though it subscribed and dialled.
#[tokio::test(flavor = "multi_thread")]
async fn under_trust_ca_only_admitted_peers_with_permissions_take_part() -> Result<()> {
    let root = tempfile::tempdir()?;
    let ca = root.path().join("ca");
    let other_ca = root.path().join("other-ca");
    mcc::certs::ca_init(&ca, "ca", 30.0)?;
    mcc::certs::ca_init(&other_ca, "other", 30.0)?;
    let (alpha, _a) =
        common::inproc::closed_node(root.path(), &ca, "alpha", "routes:publish").await?;
    let (reader, _r) =
        common::inproc::closed_node(root.path(), &ca, "reader", "routes:subscribe").await?;
    let (outsider, _o) =
        common::inproc::closed_node(root.path(), &other_ca, "outsider", "all").await?;

    // This node's own certificate.
    let e = reader
        .publish("r")
        .err()
        .context("reader may not publish")?;
    ensure!(
        e.status() == 403 && e.to_string().contains("routes:publish"),
        "{e}"
    );
    let e = alpha
        .subscribe("r")
        .err()
        .context("alpha may not subscribe")?;
    ensure!(
        e.status() == 403 && e.to_string().contains("routes:subscribe"),
        "{e}"
    );

    let mut sub = reader.subscribe("r")?;
    let _outsider_sub = outsider.subscribe("r")?;
    let publisher = alpha.publish("r")?;
    let alpha_addr = tcp_addr(&alpha).await?;
    reader.dial(alpha_addr.clone()).await?;
    // Refused by admission: the dial may succeed at first, the peer is never admitted.
    let _ = outsider.dial(alpha_addr).await;
    eventually(20, "alpha sees reader's interest", || async {
        Ok(publisher.listeners() == vec![reader.peer_id()])
    })
    .await?;
    publisher.send(&b"hello"[..]).await?;
    let m = tokio::time::timeout(WAIT, sub.next())
        .await?
        .context("subscription ended")?;
    ensure!(&m.payload[..] == b"hello");
    tokio::time::sleep(Duration::from_secs(1)).await;
    ensure!(
        publisher.listeners() == vec![reader.peer_id()],
        "listeners: {:?}",
        publisher.listeners()
    );
    ensure!(outsider.routes().stats().received == 0);
    Ok(())
}
