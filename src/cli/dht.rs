//! `mcc dht put|get`: records in the DHT.

use std::path::PathBuf;

use clap::Subcommand;

use super::output::print_json;
use super::{Error, read_file, usage};
use crate::client::Client;
use crate::term;

#[derive(Debug, Subcommand)]
pub enum DhtCommand {
    /// Store a record. KEY is namespaced (`/mcc/hello`); a bare `hello` means `/mcc/hello`.
    Put {
        key: String,
        /// The value (or use --file).
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        value: Option<String>,
        /// Read the value from this file.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Seconds until the record expires.
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Read a record (raw value to stdout, or to --output).
    Get {
        key: String,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

/// `hello` → `/mcc/hello`; namespaced keys stay as they are.
fn dht_key(key: &str) -> String {
    if key.starts_with('/') {
        key.to_string()
    } else {
        format!("/{}/{key}", mcc_records::MCC_NAMESPACE)
    }
}

pub async fn run(cmd: DhtCommand, client: &Client, json: bool) -> Result<(), Error> {
    match cmd {
        DhtCommand::Put {
            key,
            value,
            file,
            ttl,
        } => {
            let key = dht_key(&key);
            let bytes = match (value, file) {
                (_, Some(f)) => read_file(&f)?,
                (Some(v), None) => v.into_bytes(),
                (None, None) => return Err(usage("give a VALUE or --file")),
            };
            let out = client.put_record(&key, bytes, ttl).await?;
            if json {
                return print_json(&out);
            }
            println!(
                "stored {key}{}",
                if out.replicated {
                    " (locally and on peers)"
                } else {
                    " locally (no peer took it yet; it is replicated when peers arrive)"
                }
            );
        }
        DhtCommand::Get { key, output } => {
            let key = dht_key(&key);
            let value = client.get_record(&key).await?;
            match output {
                Some(path) => std::fs::write(&path, &value).map_err(|source| Error::File {
                    path: path.clone(),
                    source,
                })?,
                None if json => print_json(&serde_json::json!({
                    "key": key,
                    "size": value.len(),
                    "value": String::from_utf8_lossy(&value),
                }))?,
                None => {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    if std::io::IsTerminal::is_terminal(&out) {
                        // Any writer controls /mcc/ values: no raw control sequences on a
                        // terminal. Pipes and files get the exact bytes.
                        let _ = out.write_all(&term::escape_bytes(&value));
                        if !value.ends_with(b"\n") {
                            let _ = out.write_all(b"\n");
                        }
                    } else {
                        let _ = out.write_all(&value);
                    }
                }
            }
        }
    }
    Ok(())
}
