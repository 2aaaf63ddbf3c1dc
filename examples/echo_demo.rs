//! The echo demo: N nodes on this machine join through the first one, find each other via the
//! rendezvous key, and every second each one echoes to all the others and prints the replies.
//!
//! ```sh
//! cargo run --example echo_demo -- --nodes 4 --rounds 10
//! ```
//!
//! Only 127.0.0.1 is used; the demo stops by itself after `--rounds` rounds (or on Ctrl-C).

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use mcc::node::{Config, MdnsMode, Node, addr};
use tokio::sync::watch;

#[derive(Parser)]
struct Args {
    /// How many nodes to start.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(2..=50))]
    nodes: u16,
    /// Echo rounds before stopping.
    #[arg(long, default_value_t = 15)]
    rounds: u32,
    /// Rendezvous key the nodes share.
    #[arg(long, default_value = "mcc-echo-demo")]
    rendezvous: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let mut nodes: Vec<Node> = Vec::new();
    let mut tasks = Vec::new();
    let mut boot = Vec::new();
    for i in 0..args.nodes {
        let config = Config {
            label: Some(format!("peer{i}")),
            listen: addr::parse_listen("127.0.0.1:0")?,
            boot: boot.clone(),
            rendezvous: Some(args.rendezvous.clone()),
            rendezvous_interval: Duration::from_secs(1),
            mdns: MdnsMode::Off,
            ..Config::default()
        };
        let (node, task) = Node::builder(config).spawn(stopped()).await?;
        if i == 0 {
            // Everybody else only knows the first node, by host:port.
            let tcp = node
                .info()
                .await?
                .listen_addrs
                .iter()
                .find_map(addr::host_port)
                .context("no TCP address")?;
            println!("bootnode peer0 at {tcp} ({})", node.peer_id());
            boot.push(addr::parse_dial(&tcp.to_string())?);
        }
        nodes.push(node);
        tasks.push(task);
    }

    let labels: std::collections::HashMap<_, _> = nodes
        .iter()
        .map(|n| (n.peer_id(), n.label().to_string()))
        .collect();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for round in 1..=args.rounds {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        println!("-- round {round}");
        let calls = nodes.iter().map(|n| {
            let message = format!("hello from {} (round {round})", n.label());
            async move {
                (
                    n.label().to_string(),
                    n.multicall("echo", message.into(), false).await,
                )
            }
        });
        for (from, outcomes) in futures::future::join_all(calls).await {
            let outcomes = outcomes?;
            let mut line = format!("{from}: {} peers answered:", outcomes.len());
            for o in outcomes {
                let who = labels
                    .get(&o.peer_id)
                    .cloned()
                    .unwrap_or_else(|| o.peer_id.to_string());
                match o.result {
                    Ok(_) => line.push_str(&format!(" {who} {:.2}ms", o.rtt.as_secs_f64() * 1e3)),
                    Err(e) => line.push_str(&format!(" {who} error({e})")),
                }
            }
            println!("{line}");
        }
    }

    stop_tx.send(true)?;
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}
