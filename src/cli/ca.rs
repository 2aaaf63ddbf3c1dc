//! `mcc ca init|sign|revoke` (a certificate authority's files; `revoke --publish` also talks
//! to the node) and `mcc cert show`. The work is done by [`crate::certs`].

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::Value;

use super::output::{print_json, print_written};
use super::{Error, usage};
use crate::client::Client;
use crate::term;

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a CA: DIR/ca.key (secret) and the self-signed DIR/ca.crt that nodes trust.
    Init {
        /// The CA folder (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Name of the CA (its label).
        #[arg(long, default_value = crate::certs::DEFAULT_CA_NAME)]
        name: String,
        /// Validity in days (fractions allowed).
        #[arg(long, default_value_t = crate::certs::DEFAULT_CA_DAYS, allow_negative_numbers = true)]
        days: f64,
    },
    /// Sign a certificate request (from `mcc --newcert`) into a node certificate.
    Sign {
        /// The request file (.csr).
        request: PathBuf,
        /// The CA folder (from `mcc ca init`).
        #[arg(long)]
        ca_dir: PathBuf,
        /// Permissions to grant, comma separated (services:provide, services:consume,
        /// records:write, blobs:seed, rpc:call, routes:publish, routes:subscribe, all)
        /// [default: those requested].
        #[arg(long)]
        permissions: Option<String>,
        /// Validity in days (fractions allowed).
        #[arg(long, default_value_t = crate::certs::DEFAULT_CERT_DAYS, allow_negative_numbers = true)]
        days: f64,
        /// Where to write the certificate [default: the request with extension .crt].
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Revoke certificates (by serial or file) or peers (by peer id): updates
    /// DIR/revocations.crl.
    Revoke {
        /// Certificate serials (32 hex digits), peer ids or certificate files.
        #[arg(required = true)]
        targets: Vec<String>,
        /// The CA folder (from `mcc ca init`).
        #[arg(long)]
        ca_dir: PathBuf,
        /// Also hand the new list to the running node, which spreads it through the mesh.
        #[arg(long)]
        publish: bool,
        /// Refuse a list larger than this (the nodes' --max-record-size: the list travels as
        /// one DHT record).
        #[arg(long, default_value_t = 65536)]
        max_record_size: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Describe a certificate, CA certificate, request, revocation list or private key file.
    Show { file: PathBuf },
}

pub async fn run(cmd: CaCommand, client: &Client, json: bool) -> Result<(), Error> {
    use crate::certs;
    match cmd {
        CaCommand::Init { dir, name, days } => {
            let w = certs::ca_init(&dir, &name, days)?;
            print_written(&w, json)?;
        }
        CaCommand::Sign {
            request,
            ca_dir,
            permissions,
            days,
            output,
        } => {
            let permissions = permissions
                .map(|p| {
                    p.parse::<mcc_admission::Permissions>()
                        .map_err(|e| usage(format!("--permissions: {e}")))
                })
                .transpose()?;
            let (w, _) = certs::ca_sign(&request, &ca_dir, permissions, days, output.as_deref())?;
            print_written(&w, json)?;
        }
        CaCommand::Revoke {
            targets,
            ca_dir,
            publish,
            max_record_size,
        } => {
            let (w, list) = certs::ca_revoke(&ca_dir, &targets, max_record_size)?;
            let published = if publish {
                Some(client.publish_revocations(&list.to_base64()).await)
            } else {
                None
            };
            let ok = matches!(published, Some(Ok(_)));
            if json {
                let mut out = serde_json::json!({
                    "revocations": w.revocations,
                    "sequence": list.sequence(),
                    "published": ok,
                });
                match &published {
                    Some(Ok(answer)) => out["node"] = answer.clone(),
                    Some(Err(e)) => out["publish_error"] = Value::String(e.to_string()),
                    None => {}
                }
                print_json(&out)?;
            } else {
                for line in w.lines() {
                    println!("{line}");
                }
                println!("sequence: {}", list.sequence());
                if publish {
                    println!("published: {}", if ok { "yes" } else { "no" });
                }
            }
            // The list is written either way; a failed publish still fails the command.
            if let Some(Err(e)) = published {
                return Err(usage(format!(
                    "{} was written but not published: {e}",
                    w.revocations
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                )));
            }
        }
    }
    Ok(())
}

pub fn run_cert(cmd: CertCommand, json: bool) -> Result<(), Error> {
    match cmd {
        CertCommand::Show { file } => {
            let shown = crate::certs::show(&file, mcc_admission::now_unix())?;
            if json {
                return print_json(&shown);
            }
            println!("{}", term::escape_text(&shown.human()));
        }
    }
    Ok(())
}
