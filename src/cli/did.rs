//! `mcc did show|keygen|publish`: DID documents.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::Value;

use super::output::print_json;
use super::{Error, read_file, usage};
use crate::client::{self, Client};

#[derive(Debug, Subcommand)]
pub enum DidCommand {
    /// Resolve a DID (default: this node's own) and print its document.
    Show { did: Option<String> },
    /// Create a new DID key file.
    Keygen {
        /// Where to write the key [default: ./did.key].
        #[arg(long, short, default_value = "did.key")]
        output: PathBuf,
    },
    /// Sign and publish a DID document with a key from `mcc did keygen`.
    Publish {
        /// The key file.
        #[arg(long)]
        key: PathBuf,
        /// Optional JSON document with services / verification methods to include.
        document: Option<PathBuf>,
    },
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1)
}

/// The document to publish: the user's (if any) with our id, context and key added.
fn build_document(did: &str, user: Option<Value>) -> Result<Value, Error> {
    let mut doc = mcc_records::did::default_document(did);
    let Some(user) = user else {
        return Ok(doc);
    };
    let Value::Object(user) = user else {
        return Err(usage("the DID document must be a JSON object"));
    };
    if let Some(id) = user.get("id").and_then(Value::as_str)
        && id != did
    {
        return Err(usage(format!(
            "the document's id {id} is not the key's DID {did}"
        )));
    }
    let Value::Object(base) = &mut doc else {
        return Ok(doc);
    };
    for (k, v) in user {
        match (k.as_str(), base.get_mut(&k), v) {
            ("id", _, _) => {}
            // Lists are merged: the key's own entries stay, the user's are added.
            (_, Some(Value::Array(mine)), Value::Array(theirs)) => {
                for item in theirs {
                    if !mine.contains(&item) {
                        mine.push(item);
                    }
                }
            }
            (_, _, v) => {
                base.insert(k, v);
            }
        }
    }
    Ok(doc)
}

pub async fn run(cmd: DidCommand, client: &Client, json: bool) -> Result<(), Error> {
    match cmd {
        DidCommand::Show { did } => {
            let did = match did {
                Some(d) => d,
                None => client.node().await?.did,
            };
            let doc = client.get_did(&did).await?;
            if json {
                return print_json(&doc);
            }
            println!("{did} (sequence {})", doc.seq);
            print_json(&doc.document)?;
        }
        DidCommand::Keygen { output } => {
            let (_, did) = crate::identity::write_did_key(&output)?;
            if json {
                return print_json(&serde_json::json!({"did": did, "key": output}));
            }
            println!("{did}");
            println!("key written to {}", output.display());
        }
        DidCommand::Publish { key, document } => {
            let (keypair, did) = crate::identity::read_did_key(&key)?;
            let user = match document {
                Some(p) => Some(
                    serde_json::from_slice(&read_file(&p)?)
                        .map_err(|e| usage(format!("{}: not JSON: {e}", p.display())))?,
                ),
                None => None,
            };
            let doc = build_document(&did, user)?;
            let current = match client.get_did(&did).await {
                Ok(d) => Some(d.seq),
                Err(client::Error::Api { status: 404, .. }) => None,
                Err(e) => return Err(e.into()),
            };
            let seq = unix_millis().max(current.map_or(1, |c| c + 1));
            let signed = mcc_records::did::SignedDocument::sign(&keypair, doc, seq)
                .map_err(|e| usage(e.to_string()))?;
            let out = client
                .put_did(&crate::api::types::SignedDocumentSchema {
                    document: signed.document,
                    seq: signed.seq,
                    signature: signed.signature,
                })
                .await?;
            if json {
                return print_json(&serde_json::json!({"did": did, "seq": seq, "outcome": out}));
            }
            println!("published {did} (sequence {seq})");
        }
    }
    Ok(())
}
