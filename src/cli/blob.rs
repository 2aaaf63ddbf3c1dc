//! `mcc blob add|get|ls|rm|providers`: content-addressed files.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::Value;

use super::output::{bar, print_json, print_providers, print_table};
use super::{Error, usage};
use crate::client::Client;
use crate::term;

#[derive(Debug, Subcommand)]
pub enum BlobCommand {
    /// Add a file; prints its CID.
    Add { file: PathBuf },
    /// Fetch a blob (from every seeder at once) and write it to a file or stdout.
    Get {
        cid: String,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// List the blobs stored on the node.
    Ls,
    /// Delete a blob from the node.
    Rm { cid: String },
    /// List the seeders of a blob.
    Providers { cid: String },
}

/// Largest blob `mcc blob get` shows on a terminal (escaped); bigger ones need `-o` or a pipe.
const MAX_TERMINAL_BLOB: u64 = 16 * 1024 * 1024;

pub async fn run(cmd: BlobCommand, client: &Client, json: bool) -> Result<(), Error> {
    match cmd {
        BlobCommand::Add { file } => {
            let len = std::fs::metadata(&file)
                .map_err(|source| Error::File {
                    path: file.clone(),
                    source,
                })?
                .len();
            let pb = bar(Some(len), json, "adding");
            let p = pb.clone();
            let info = client.add_blob(&file, move |n| p.set_position(n)).await;
            pb.finish_and_clear();
            let info = info?;
            if json {
                return print_json(&info);
            }
            println!("{}", info.cid);
            eprintln!(
                "added {} ({} bytes, {} blocks)",
                file.display(),
                info.size,
                info.blocks
            );
        }
        BlobCommand::Get { cid, output } => {
            let pb = bar(None, json, "fetching");
            let p = pb.clone();
            let summary = client
                .fetch_blob(&cid, move |v| {
                    if let Some(t) = v.get("total_bytes").and_then(Value::as_u64) {
                        p.set_length(t);
                    }
                    if let Some(n) = v.get("bytes_done").and_then(Value::as_u64) {
                        p.set_position(n);
                    }
                })
                .await;
            pb.finish_and_clear();
            let summary = summary?;
            let written = match &output {
                Some(path) => {
                    // Written next to the target, then renamed: no half file under its name.
                    let dir = path
                        .parent()
                        .filter(|d| !d.as_os_str().is_empty())
                        .unwrap_or(Path::new("."));
                    let tmp =
                        tempfile::NamedTempFile::new_in(dir).map_err(|source| Error::File {
                            path: dir.to_path_buf(),
                            source,
                        })?;
                    let mut out =
                        tokio::fs::File::from_std(tmp.reopen().map_err(|source| Error::File {
                            path: path.clone(),
                            source,
                        })?);
                    let pb = bar(Some(summary.size), json, "saving");
                    let p = pb.clone();
                    let n = client
                        .download_blob(&cid, &mut out, move |n, _| p.set_position(n))
                        .await;
                    pb.finish_and_clear();
                    let n = n?;
                    tmp.persist(path).map_err(|e| Error::File {
                        path: path.clone(),
                        source: e.error,
                    })?;
                    n
                }
                None if std::io::IsTerminal::is_terminal(&std::io::stdout()) => {
                    // Anyone can publish a blob: no raw control sequences on a terminal.
                    if summary.size > MAX_TERMINAL_BLOB {
                        return Err(usage(format!(
                            "the blob is {} bytes; save it with -o FILE or pipe it",
                            summary.size
                        )));
                    }
                    let mut buf = Vec::new();
                    let n = client.download_blob(&cid, &mut buf, |_, _| {}).await?;
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&term::escape_bytes(&buf));
                    let _ = out.flush();
                    n
                }
                None => {
                    let mut out = tokio::io::stdout();
                    client.download_blob(&cid, &mut out, |_, _| {}).await?
                }
            };
            if json {
                return print_json(&summary);
            }
            if let Some(path) = &output {
                let used = summary.seeders.iter().filter(|s| s.blocks > 0).count();
                eprintln!(
                    "saved {} ({written} bytes{})",
                    path.display(),
                    if summary.local {
                        ", already on the node".to_string()
                    } else {
                        format!(" from {used} seeder(s)")
                    }
                );
            }
        }
        BlobCommand::Ls => {
            let list = client.blobs().await?;
            if json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("no blobs");
                return Ok(());
            }
            let rows = list
                .into_iter()
                .map(|b| vec![b.cid, b.size.to_string(), b.blocks.to_string()])
                .collect();
            print_table(&["CID", "SIZE", "BLOCKS"], rows);
        }
        BlobCommand::Rm { cid } => {
            client.delete_blob(&cid).await?;
            if json {
                return print_json(&serde_json::json!({ "deleted": cid }));
            }
            println!("deleted {cid}");
        }
        BlobCommand::Providers { cid } => {
            let list = client.blob_providers(&cid).await?;
            print_providers(&list, json, &format!("no seeder of {cid} found"))?;
        }
    }
    Ok(())
}
