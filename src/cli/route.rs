//! `mcc route sub|pub|ls`: follow a route, publish on it, list routes, through the node's
//! `/api/v1/routes` endpoints.

use std::io::{BufRead, Write};

use clap::Subcommand;
use futures::StreamExt;

use super::Error;
use super::output::{join, print_json, print_table};
use crate::api::types::RouteMessage;
use crate::client::Client;
use crate::term;

#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Print the messages on ROUTE as they arrive, one per line (`--json`: one JSON object
    /// per line with sender, seq and time). Runs until interrupted.
    Sub {
        /// Route name, e.g. sensors/temp (a-z 0-9 . _ - and /).
        route: String,
    },
    /// Publish MSG on ROUTE, or each line of stdin when MSG is absent. Only peers that
    /// subscribed receive it.
    Pub {
        /// Route name, e.g. sensors/temp.
        route: String,
        /// The message; without it, every line of stdin is one message.
        message: Option<String>,
        /// Wait up to SECS for a subscriber before the first message (fails if none comes).
        #[arg(long, value_name = "SECS")]
        wait: Option<f64>,
    },
    /// Routes with local subscribers, interested peers and message counters.
    Ls,
}

pub async fn run(cmd: RouteCommand, client: &Client, json: bool) -> Result<(), Error> {
    match cmd {
        RouteCommand::Sub { route } => sub(client, &route, json).await,
        RouteCommand::Pub {
            route,
            message,
            wait,
        } => {
            let wait_ms = match wait {
                Some(s) if !(0.0..=60.0).contains(&s) => {
                    return Err(Error::Usage("--wait takes 0 to 60 seconds".into()));
                }
                Some(s) => Some((s * 1000.0) as u64),
                None => None,
            };
            publish(client, &route, message, wait_ms, json).await
        }
        RouteCommand::Ls => list(client, json).await,
    }
}

fn stdout_error(source: std::io::Error) -> Error {
    Error::Io {
        what: "writing stdout".into(),
        source,
    }
}

async fn sub(client: &Client, route: &str, json: bool) -> Result<(), Error> {
    let mut messages = std::pin::pin!(client.follow_route(route).await?);
    let mut dropped = 0;
    let mut out = std::io::stdout();
    while let Some(m) = messages.next().await {
        let m = m?;
        if m.dropped > dropped {
            eprintln!(
                "{} messages dropped so far: this reader is too slow",
                m.dropped
            );
            dropped = m.dropped;
        }
        let line = if json {
            let text = serde_json::to_string(&m).map_err(|e| Error::Usage(e.to_string()))?;
            term::escape_json(&text).into_owned()
        } else {
            human(&m)
        };
        writeln!(out, "{line}").map_err(stdout_error)?;
    }
    Err(Error::Usage("the node ended the subscription".into()))
}

/// The payload on one line: text with control characters escaped, or hex.
fn human(m: &RouteMessage) -> String {
    match (&m.payload, &m.payload_hex) {
        (Some(text), _) => term::escape(text).into_owned(),
        (None, Some(hex)) => format!("hex:{hex}"),
        (None, None) => String::new(),
    }
}

async fn publish(
    client: &Client,
    route: &str,
    message: Option<String>,
    mut wait_ms: Option<u64>,
    json: bool,
) -> Result<(), Error> {
    if let Some(message) = message {
        let r = client
            .publish_route(route, message.into_bytes(), wait_ms)
            .await?;
        if json {
            return print_json(&r);
        }
        println!(
            "published #{} on {} to {} peer(s){}",
            r.seq,
            term::escape(&r.route),
            r.peers,
            if r.dropped > 0 {
                format!(", dropped for {}", r.dropped)
            } else {
                String::new()
            }
        );
        return Ok(());
    }
    // One message per stdin line, in order; stdin is read on a blocking thread.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<String>>(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    });
    let (mut sent, mut peers) = (0u64, 0u64);
    while let Some(line) = rx.recv().await {
        let line = line.map_err(|source| Error::Io {
            what: "reading stdin".into(),
            source,
        })?;
        let r = client
            .publish_route(route, line.into_bytes(), wait_ms.take())
            .await?;
        sent += 1;
        peers += r.peers;
        if json {
            let text = serde_json::to_string(&r).map_err(|e| Error::Usage(e.to_string()))?;
            writeln!(std::io::stdout(), "{text}").map_err(stdout_error)?;
        }
    }
    if !json {
        eprintln!("published {sent} message(s), {peers} delivery(ies) to peers");
    }
    Ok(())
}

async fn list(client: &Client, json: bool) -> Result<(), Error> {
    let routes = client.routes().await?;
    if json {
        return print_json(&routes);
    }
    let rows = routes
        .iter()
        .map(|r| {
            vec![
                r.route.clone(),
                r.tag.clone().unwrap_or_default(),
                r.subscribers.to_string(),
                join(&r.interested),
                r.sent.to_string(),
                r.received.to_string(),
                r.dropped.to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "ROUTE",
            "TAG",
            "SUBSCRIBERS",
            "INTERESTED PEERS",
            "SENT",
            "RECEIVED",
            "DROPPED",
        ],
        rows,
    );
    Ok(())
}
