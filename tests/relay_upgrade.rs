//! A relayed connection that becomes direct, in-process on loopback: a tunnel opened while the
//! peers were connected through the relay keeps working when a direct connection appears, and
//! the next tunnel takes the direct connection. Hole punching is off here so the test decides
//! when the direct connection appears (it dials it); the relay's byte limit tells which path
//! a tunnel took.

mod common {
    pub mod inproc;
    pub mod relayed;
}

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::inproc::{base_config, eventually, spawn_node};
use common::relayed::{
    Echo, bytes, circuit_addr, dial_unless_connected, echo_service, echo_through, free_port,
    relay_from, relayed_to,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The relay carries at most this much per circuit, both directions together.
const CIRCUIT_LIMIT: u64 = 4 << 20;

/// Writes `data` to `tcp` and reads the same bytes back (the service echoes).
async fn round_trip(tcp: &mut TcpStream, data: &[u8]) -> Result<()> {
    tcp.write_all(data).await?;
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(Duration::from_secs(10), tcp.read_exact(&mut back))
        .await
        .context("echo timed out")??;
    ensure!(back == data, "the echo differs");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tunnel_survives_the_switch_to_direct_and_new_tunnels_go_direct() -> Result<()> {
    let mut config = base_config("relay")?;
    config.nat.relay_limits.max_circuit_bytes = CIRCUIT_LIMIT;
    let (_relay, relay_addr) = relay_from(config).await?;

    // A can be dialled directly, but nobody knows where yet; B listens nowhere.
    let mut config = base_config("servera")?;
    config.nat.relays = vec![relay_addr.clone()];
    config.nat.hole_punching = false;
    config.rendezvous = None;
    let a = spawn_node(1, config).await?;
    let a_direct = a.tcp_addr().await?;
    let a_circuit = circuit_addr(&a).await?;
    let mut config = base_config("clientb")?;
    config.listen = Vec::new();
    config.nat.hole_punching = false;
    config.rendezvous = None;
    let b = spawn_node(2, config).await?;
    dial_unless_connected(&b, a_circuit, a.peer_id()).await?;
    ensure!(
        relayed_to(&b, &a.peer_id()).await? == Some(true),
        "not relayed"
    );

    let echo = echo_service().await?;
    a.services().add("echo", &format!("tcp://{echo}")).await?;
    let port = free_port().await?;
    b.services()
        .add_listener(
            "echo",
            &format!("tcp://127.0.0.1:{port}"),
            Some(&a.peer_id().to_string()),
        )
        .await?;

    // A tunnel over the relay: 2 × 1 MiB of the circuit's 4 MiB.
    let mut first = TcpStream::connect(("127.0.0.1", port)).await?;
    round_trip(&mut first, &bytes(1 << 20, 1)).await?;
    ensure!(
        relayed_to(&b, &a.peer_id()).await? == Some(true),
        "went direct early"
    );

    // A direct connection appears.
    b.dial(a_direct).await?;
    eventually(10, "B sees a direct connection to A", || async {
        Ok(relayed_to(&b, &a.peer_id()).await? == Some(false))
    })
    .await?;

    // The first tunnel still works (on the relayed connection: 2 × 256 KiB more).
    round_trip(&mut first, &bytes(256 << 10, 2)).await?;

    // A new tunnel takes the direct connection: 2 × 8 MiB would be cut by the relay.
    let second = TcpStream::connect(("127.0.0.1", port)).await?;
    let echoed = echo_through(second, Arc::new(bytes(8 << 20, 3)), 20).await;
    assert!(matches!(echoed, Echo::Intact), "second tunnel: {echoed:?}");

    // And the first one is still alive after all that.
    round_trip(&mut first, &bytes(64 << 10, 4)).await?;
    Ok(())
}
