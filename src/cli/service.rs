//! `mcc service add|ls|rm|find` (local services offered to the mesh) and
//! `mcc listen add|ls|rm` (local listeners forwarding to services in the mesh).

use clap::Subcommand;

use super::Error;
use super::output::{print_json, print_providers, print_table};
use crate::client::Client;

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Offer a local service: `mcc service add web tcp://localhost:8000` (or http://...).
    Add { name: String, address: String },
    /// List this node's services.
    Ls,
    /// Stop offering a service.
    Rm { name: String },
    /// Find the providers of a service in the mesh.
    Find { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ListenCommand {
    /// Forward a local port to a service: `mcc listen add web tcp://127.0.0.1:5000`.
    Add {
        service: String,
        address: String,
        /// Only use this provider: a peer id, its did:key DID, or a label (matched against
        /// connected peers' certificate labels; CA-signed only under --trust-ca).
        #[arg(long)]
        peer: Option<String>,
    },
    /// List listeners.
    Ls,
    /// Stop a listener.
    Rm { id: String },
}

pub async fn run(cmd: ServiceCommand, client: &Client, json: bool) -> Result<(), Error> {
    match cmd {
        ServiceCommand::Add { name, address } => {
            let s = client.add_service(&name, &address).await?;
            if json {
                return print_json(&s);
            }
            println!("offering {} at {}", s.name, s.address);
        }
        ServiceCommand::Ls => {
            let list = client.services().await?;
            if json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("no services");
                return Ok(());
            }
            let rows = list
                .into_iter()
                .map(|s| {
                    let from = if s.from_config { "config" } else { "api" };
                    vec![s.name, s.address, from.to_string()]
                })
                .collect();
            print_table(&["NAME", "ADDRESS", "FROM"], rows);
        }
        ServiceCommand::Rm { name } => {
            let s = client.remove_service(&name).await?;
            if json {
                return print_json(&s);
            }
            println!("removed {}", s.name);
        }
        ServiceCommand::Find { name } => {
            let list = client.providers(&name).await?;
            print_providers(&list, json, &format!("no provider of {name} found"))?;
        }
    }
    Ok(())
}

pub async fn run_listen(cmd: ListenCommand, client: &Client, json: bool) -> Result<(), Error> {
    match cmd {
        ListenCommand::Add {
            service,
            address,
            peer,
        } => {
            let l = client
                .add_listener(&service, &address, peer.as_deref())
                .await?;
            if json {
                return print_json(&l);
            }
            println!(
                "listener {} on {} forwards to {}",
                l.id, l.address, l.service
            );
        }
        ListenCommand::Ls => {
            let list = client.listeners().await?;
            if json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("no listeners");
                return Ok(());
            }
            let rows = list
                .into_iter()
                .map(|l| {
                    vec![
                        l.id,
                        l.address,
                        l.service,
                        l.peer.unwrap_or_else(|| "any".into()),
                    ]
                })
                .collect();
            print_table(&["ID", "ADDRESS", "SERVICE", "PEER"], rows);
        }
        ListenCommand::Rm { id } => {
            let l = client.remove_listener(&id).await?;
            if json {
                return print_json(&l);
            }
            println!("stopped listener {} on {}", l.id, l.address);
        }
    }
    Ok(())
}
