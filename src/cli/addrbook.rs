//! `mcc addrbook`: the address book (table or `--json`), `pin` and `unpin`.

use clap::Subcommand;

use super::Error;
use super::output::{print_json, print_table};
use crate::client::Client;
use crate::node::AddrBookEntry;

#[derive(Debug, Subcommand)]
pub enum AddrbookCommand {
    /// List the address book (the default).
    Ls,
    /// Make a peer persistent (redialled forever): peer id, host:port or multiaddr.
    Pin { target: String },
    /// Make a peer ordinary again: peer id or one of its addresses.
    Unpin { target: String },
}

pub async fn run(cmd: Option<AddrbookCommand>, client: &Client, json: bool) -> Result<(), Error> {
    match cmd.unwrap_or(AddrbookCommand::Ls) {
        AddrbookCommand::Ls => {
            let book = client.addrbook().await?;
            if json {
                return print_json(&book);
            }
            if book.is_empty() {
                println!("the address book is empty");
                return Ok(());
            }
            print_table(
                &[
                    "PEER ID", "CONN", "PIN", "FAILED", "BACKOFF", "SOURCES", "ADDRESS",
                ],
                book.iter().map(row).collect(),
            );
        }
        AddrbookCommand::Pin { target } => print_entry(&client.pin(&target, true).await?, json)?,
        AddrbookCommand::Unpin { target } => print_entry(&client.pin(&target, false).await?, json)?,
    }
    Ok(())
}

fn row(e: &AddrBookEntry) -> Vec<String> {
    vec![
        e.peer_id.to_string(),
        if e.connected { "yes" } else { "no" }.into(),
        if e.persistent { "yes" } else { "no" }.into(),
        e.failed.to_string(),
        if e.backoff_ms == 0 {
            "-".into()
        } else {
            format!("{:.1}s", e.backoff_ms as f64 / 1000.0)
        },
        e.sources
            .iter()
            .map(|s| format!("{s:?}").to_lowercase())
            .collect::<Vec<_>>()
            .join(","),
        e.addrs.first().map(|a| a.to_string()).unwrap_or_default(),
    ]
}

fn print_entry(e: &AddrBookEntry, json: bool) -> Result<(), Error> {
    if json {
        return print_json(e);
    }
    println!(
        "{} {}",
        e.peer_id,
        if e.persistent { "pinned" } else { "unpinned" }
    );
    Ok(())
}
