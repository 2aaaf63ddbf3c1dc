//! Relay and hole punching on loopback, in-process (see `tests/common/inproc.rs`). NATs in
//! network namespaces are tested in `tests/nat.rs`; here a node with no listen address plays
//! the node nobody can dial.

mod common {
    pub mod inproc;
    pub mod relayed;
}

use anyhow::{Context, Result};
use common::inproc::{base_config, eventually, is_connected, spawn_node};
use common::relayed::{circuit_addr, dial_unless_connected, hidden, relay, relayed_to};
use serde_json::json;

/// Two nodes nobody can dial reach each other through a relay: the connection stays relayed
/// (no hole punch can work), and RPC runs over it both ways.
#[tokio::test(flavor = "multi_thread")]
async fn undialable_nodes_talk_through_a_relay() -> Result<()> {
    let (relay, relay_addr) = relay().await?;
    let a = spawn_node(1, hidden("hiddena", &relay_addr)?).await?;
    let a_addr = circuit_addr(&a).await?;
    assert!(a_addr.to_string().contains("/p2p-circuit/"), "{a_addr}");
    let info = a.info().await?;
    assert!(info.relays[0].configured);

    let mut b_config = base_config("hiddenb")?;
    b_config.listen = Vec::new();
    let b = spawn_node(2, b_config).await?;
    assert_eq!(b.dial(a_addr).await?, a.peer_id());
    assert_eq!(relayed_to(&b, &a.peer_id()).await?, Some(true));

    for (from, to) in [(&b, &a), (&a, &b)] {
        let params = json!({ "from": from.index });
        assert_eq!(
            from.call(to.peer_id(), "echo", params.clone()).await?,
            params
        );
    }
    let server = relay
        .info()
        .await?
        .relay_server
        .context("relay server off")?;
    assert_eq!(server.reservations, 1);
    assert!(server.circuits >= 1, "{server:?}");
    // Still relayed: there is nothing to punch a hole to.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(relayed_to(&b, &a.peer_id()).await?, Some(true));
    assert_eq!(relayed_to(&a, &b.peer_id()).await?, Some(true));
    Ok(())
}

/// When the dialling node can be reached, DCUtR turns the relayed connection into a direct
/// one, and the relayed peer stops being marked relayed.
#[tokio::test(flavor = "multi_thread")]
async fn a_relayed_connection_becomes_direct_by_hole_punching() -> Result<()> {
    let (relay, relay_addr) = relay().await?;
    let a = spawn_node(1, hidden("hiddena", &relay_addr)?).await?;
    let a_addr = circuit_addr(&a).await?;
    // B listens and first meets the relay, so it knows its observed address (a candidate).
    let mut b_config = base_config("openb")?;
    b_config.boot = vec![relay_addr.clone()];
    let b = spawn_node(2, b_config).await?;
    eventually(10, "b is connected to the relay", || async {
        is_connected(&b, &relay.peer_id()).await
    })
    .await?;
    // B's DHT lookups may have dialled A through the relay already.
    dial_unless_connected(&b, a_addr, a.peer_id()).await?;
    eventually(15, "the connection becomes direct", || async {
        Ok(relayed_to(&a, &b.peer_id()).await? == Some(false)
            && relayed_to(&b, &a.peer_id()).await? == Some(false))
    })
    .await?;
    let params = json!("after the punch");
    assert_eq!(b.call(a.peer_id(), "echo", params.clone()).await?, params);
    Ok(())
}

/// A relay server that is not one refuses reservations: the node reports none accepted.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_without_relay_server_accepts_no_reservation() -> Result<()> {
    let plain = spawn_node(0, base_config("plain")?).await?;
    let plain_addr = plain.tcp_addr().await?;
    let a = spawn_node(1, hidden("hiddena", &plain_addr)?).await?;
    eventually(10, "a connects to the would-be relay", || async {
        is_connected(&a, &plain.peer_id()).await
    })
    .await?;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(
        a.info().await?.relays.iter().all(|r| !r.accepted),
        "{:?}",
        a.info().await?.relays
    );
    assert!(plain.info().await?.relay_server.is_none());
    Ok(())
}

/// A node dials a circuit address the moment it starts, while its boot dial to the same relay
/// is still under way: the dial waits for the relay connection instead of failing ("oneshot
/// canceled" from the relay transport, whose own dial to the relay lost to the boot dial).
/// Five fresh nodes, each racing its boot dial.
#[tokio::test(flavor = "multi_thread")]
async fn a_circuit_dialled_during_the_boot_dial_to_its_relay_connects() -> Result<()> {
    let (_relay, relay_addr) = relay().await?;
    let a = spawn_node(1, hidden("hiddena", &relay_addr)?).await?;
    let a_addr = circuit_addr(&a).await?;
    for i in 0..5 {
        let mut config = base_config(&format!("racer{i}"))?;
        config.listen = Vec::new();
        config.boot = vec![relay_addr.clone()];
        let racer = spawn_node(10 + i, config).await?;
        let peer = racer
            .dial(a_addr.clone())
            .await
            .with_context(|| format!("racer {i} dialling {a_addr}"))?;
        assert_eq!(peer, a.peer_id());
        assert_eq!(relayed_to(&racer, &a.peer_id()).await?, Some(true));
    }
    Ok(())
}
