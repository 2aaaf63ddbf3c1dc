//! `mcc node`, `mcc peers`, `mcc dial`, `mcc echo` and `mcc rpc`: the node itself and its
//! peers. These are top-level commands (flattened into [`super::Subcommand`]).

use clap::Subcommand;
use serde_json::Value;

use super::output::{admission_line, certificate_line, join, print_json, print_table};
use super::{Error, usage};
use crate::client::Client;
use crate::term;

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Show the running node.
    Node,
    /// List connected peers.
    Peers,
    /// Connect to a peer (host:port or multiaddr).
    Dial { addr: String },
    /// Echo a message off every connected peer and this node (or one peer).
    Echo {
        message: String,
        /// Only this peer.
        #[arg(long)]
        peer: Option<String>,
    },
    /// Call an RPC method on every connected peer and this node (or one peer).
    Rpc {
        method: String,
        /// JSON parameters (default null).
        params: Option<String>,
        /// Only this peer.
        #[arg(long)]
        peer: Option<String>,
    },
}

pub async fn run(cmd: NodeCommand, client: &Client, json: bool) -> Result<(), Error> {
    match cmd {
        NodeCommand::Node => {
            let n = client.node().await?;
            if json {
                return print_json(&n);
            }
            let rows = [
                ("peer id", n.peer_id.to_string()),
                ("label", n.label),
                ("did", n.did),
                ("version", n.version),
                ("listen", join(&n.listen_addrs)),
                (
                    "reachability",
                    match &n.public_addr {
                        Some(a) => format!("{} ({a})", reachability_word(n.reachability)),
                        None => reachability_word(n.reachability).into(),
                    },
                ),
                ("relays", relays_line(&n.relays)),
                (
                    "observed",
                    if n.observed_addrs.is_empty() {
                        "-".into()
                    } else {
                        n.observed_addrs
                            .iter()
                            .map(|o| format!("{} ({})", o.addr, o.count))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                ),
                (
                    "relay server",
                    match &n.relay_server {
                        Some(r) => format!(
                            "on: {} reservations, {} circuits",
                            r.reservations, r.circuits
                        ),
                        None => "off".into(),
                    },
                ),
                ("rendezvous", n.rendezvous.unwrap_or_else(|| "off".into())),
                ("kad protocol", n.kad_protocol),
                ("mdns", if n.mdns { "on" } else { "off" }.into()),
                ("peers", n.connected_peers.to_string()),
                ("routing table", n.routing_table_size.to_string()),
                ("rpc methods", n.rpc_methods.join(", ")),
                ("uptime", format!("{}s", n.uptime_secs)),
                ("admission", admission_line(&n.admission)),
                ("certificate", certificate_line(&n.certificate)),
                ("permissions", n.certificate.permissions.join(", ")),
                (
                    "http forward",
                    n.http_forward.unwrap_or_else(|| "off".into()),
                ),
            ];
            for (k, v) in rows {
                println!("{k:<14} {}", term::escape(&v));
            }
        }
        NodeCommand::Peers => {
            let peers = client.peers().await?;
            if json {
                return print_json(&peers);
            }
            if peers.is_empty() {
                println!("no peers connected");
                return Ok(());
            }
            let rows = peers
                .iter()
                .map(|p| {
                    vec![
                        p.peer_id.to_string(),
                        p.label.clone().unwrap_or_else(|| "-".into()),
                        p.rtt_ms
                            .map(|r| format!("{r:.2} ms"))
                            .unwrap_or_else(|| "-".into()),
                        format!("{:?}", p.direction).to_lowercase(),
                        if p.rendezvous { "yes" } else { "no" }.into(),
                        if p.relayed { "relayed" } else { "direct" }.into(),
                        p.addrs.first().map(|a| a.to_string()).unwrap_or_default(),
                    ]
                })
                .collect();
            print_table(
                &["PEER ID", "LABEL", "RTT", "DIR", "APP", "PATH", "ADDRESS"],
                rows,
            );
        }
        NodeCommand::Dial { addr } => {
            let r = client.dial(&addr).await?;
            if json {
                return print_json(&r);
            }
            println!("connected to {}", r.peer_id);
        }
        NodeCommand::Echo { message, peer } => {
            let r = client.echo(&message, peer.as_deref()).await?;
            if json {
                return print_json(&r);
            }
            let rows = r
                .replies
                .into_iter()
                .map(|e| {
                    vec![
                        e.peer_id,
                        format!("{:.2} ms", e.rtt_ms),
                        match (e.message, e.error) {
                            (Some(m), _) => m,
                            (None, Some(err)) => format!("error: {err}"),
                            (None, None) => String::new(),
                        },
                    ]
                })
                .collect();
            print_table(&["PEER ID", "RTT", "REPLY"], rows);
        }
        NodeCommand::Rpc {
            method,
            params,
            peer,
        } => {
            let params = match params {
                Some(p) => serde_json::from_str(&p)
                    .map_err(|e| usage(format!("params must be JSON: {e}")))?,
                None => Value::Null,
            };
            let r = client.rpc(&method, peer.as_deref(), params).await?;
            if json {
                return print_json(&r);
            }
            let rows = r
                .replies
                .into_iter()
                .map(|e| {
                    vec![
                        e.peer_id,
                        format!("{:.2} ms", e.rtt_ms),
                        match (e.result, e.error) {
                            (Some(v), _) => v.to_string(),
                            (None, Some(err)) => format!("error: {err}"),
                            (None, None) => String::new(),
                        },
                    ]
                })
                .collect();
            print_table(&["PEER ID", "RTT", "RESULT"], rows);
        }
    }
    Ok(())
}

fn reachability_word(r: crate::node::Reachability) -> &'static str {
    match r {
        crate::node::Reachability::Public => "public",
        crate::node::Reachability::Private => "private",
        crate::node::Reachability::Unknown => "unknown",
    }
}

/// `addr (accepted)`, one per reservation, or "none".
fn relays_line(relays: &[crate::node::RelayInfo]) -> String {
    if relays.is_empty() {
        return "none".into();
    }
    relays
        .iter()
        .map(|r| {
            format!(
                "{} ({})",
                r.addr,
                if r.accepted { "reserved" } else { "asking" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
