//! Embedding an mcc node in your own program: two nodes in one process, one serves a custom
//! RPC method, the other calls it, then both shut down.
//!
//! ```sh
//! cargo run --example embed
//! ```

use std::time::Duration;

use anyhow::{Context, Result};
use mcc::node::{Config, MdnsMode, Node, addr};
use mcc::rpc::RpcError;
use serde_json::{Value, json};
use tokio::sync::watch;

fn config(label: &str) -> Result<Config> {
    Ok(Config {
        label: Some(label.into()),
        listen: addr::parse_listen("127.0.0.1:0")?,
        mdns: MdnsMode::Off,
        ..Config::default()
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    // A node that serves a "sum" method next to the built-in "echo".
    let (server, server_task) = Node::builder(config("server")?)
        .method("sum", |caller, params: Value| async move {
            let numbers = params
                .as_array()
                .ok_or_else(|| RpcError::invalid_params("expected an array of numbers"))?;
            let total: f64 = numbers.iter().filter_map(Value::as_f64).sum();
            println!("server: sum requested by {caller}");
            Ok(json!(total))
        })
        .spawn(stopped())
        .await?;
    let (client, client_task) = Node::builder(config("client")?).spawn(stopped()).await?;

    let server_addr = server
        .info()
        .await?
        .listen_addrs
        .into_iter()
        .find(|a| addr::host_port(a).is_some())
        .context("server has no TCP address")?;
    let peer = client.dial(server_addr).await?;
    println!("client: connected to {peer} ({})", server.label());

    let total = client.call(peer, "sum", json!([1, 2, 3.5])).await?;
    println!("client: sum = {total}");

    match client.call(peer, "sum", json!("not an array")).await {
        Err(e) => println!("client: bad params refused as expected: {e}"),
        Ok(v) => anyhow::bail!("expected an error, got {v}"),
    }

    // Multicall: every connected peer plus this node itself.
    for outcome in client.multicall("echo", json!("hi"), true).await? {
        println!(
            "client: echo from {} in {:?}: {:?}",
            outcome.peer_id, outcome.rtt, outcome.result
        );
    }

    stop_tx.send(true)?;
    tokio::time::timeout(Duration::from_secs(5), async {
        let _ = server_task.await;
        let _ = client_task.await;
    })
    .await
    .context("nodes did not stop")?;
    println!("done");
    Ok(())
}
