//! The `mcc` command line: with no subcommand it runs the daemon; subcommands talk to a
//! running node over its REST API.
//!
//! One private module per command group, each with its clap enum (`XxxCommand`, re-exported
//! here) and its `run`: `daemon` (the daemon's flags, `--newcert`), `node` (node, peers, dial,
//! echo, rpc), `dht`, `did`, `service` (service and listen), `blob`, `ca` (ca and cert), `stream`
//! (stream listen and connect), `route` (route sub, pub and ls), `doctor` (checks of a running
//! node), `completions` (shell completions and the man page).
//! Tables, JSON and progress bars are printed by the helpers in `output`. A new command
//! group is a new file here plus one variant of [`Subcommand`] and one arm in
//! [`run_command`].

use std::path::{Path, PathBuf};

use clap::{Args, Parser};

use crate::client::{self, Client};

mod addrbook;
mod blob;
mod ca;
mod completions;
mod daemon;
mod dht;
mod did;
mod doctor;
mod limits_args;
mod mesh_args;
mod nat_args;
mod node;
mod output;
mod profile_args;
mod route;
mod service;
mod stream;

pub use blob::BlobCommand;
pub use ca::{CaCommand, CertCommand};
pub use daemon::{DaemonArgs, Resolved, log_filter, newcert};
pub use dht::DhtCommand;
pub use did::DidCommand;
pub use node::NodeCommand;
pub use route::RouteCommand;
pub use service::{ListenCommand, ServiceCommand};
pub use stream::StreamCommand;

/// Default data folder.
pub const DEFAULT_DATA_FOLDER: &str = "./.mcc";
/// Default REST API address.
pub const DEFAULT_HTTP: &str = "127.0.0.1:8080";

#[derive(Debug, Parser)]
#[command(
    name = "mcc",
    version,
    about = "mcc: a peer-to-peer mesh companion node. Without a subcommand it runs the node.",
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(flatten)]
    pub daemon: DaemonArgs,
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Option<Subcommand>,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Data folder (identity, API address, state).
    #[arg(long, env = "MCC_DATA_FOLDER", global = true)]
    pub data_folder: Option<PathBuf>,
    /// API of the node to talk to (default: the one running from the data folder, else
    /// http://127.0.0.1:8080).
    #[arg(long, env = "MCC_API", global = true)]
    pub api: Option<String>,
    /// Bearer token of the API: a file holding it, or `auto` (the data folder's
    /// `api-token`, created by the daemon when missing). The CLI also reads the data folder's
    /// `api-token` by itself when this is not given.
    #[arg(long, env = "MCC_API_TOKEN", global = true, value_name = "FILE|auto")]
    pub api_token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The client subcommands (`mcc SUBCOMMAND`). Not the node's event-loop command.
#[derive(Debug, clap::Subcommand)]
pub enum Subcommand {
    // node, peers, dial, echo, rpc: top-level commands, flattened in from `node`.
    #[command(flatten)]
    Node(NodeCommand),
    /// The address book: every peer seen; `pin`/`unpin` a persistent peer.
    Addrbook {
        #[command(subcommand)]
        cmd: Option<addrbook::AddrbookCommand>,
    },
    /// DHT records: `mcc dht put KEY VALUE`, `mcc dht get KEY`.
    #[command(subcommand)]
    Dht(DhtCommand),
    /// DID documents: show, keygen, publish.
    #[command(subcommand)]
    Did(DidCommand),
    /// Local services offered to the mesh: add, ls, rm, find.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Local listeners forwarding to services in the mesh: add, ls, rm.
    #[command(subcommand)]
    Listen(ListenCommand),
    /// Content-addressed files (IPFS CIDs): add, get, ls, rm, providers.
    #[command(subcommand)]
    Blob(BlobCommand),
    /// Byte streams to peers, like netcat: `mcc stream listen NAME`, `mcc stream connect PEER
    /// NAME`.
    #[command(subcommand)]
    Stream(StreamCommand),
    /// Publish/subscribe on routes, only to interested peers: `mcc route sub ROUTE`,
    /// `mcc route pub ROUTE [MSG]`, `mcc route ls`.
    #[command(subcommand)]
    Route(RouteCommand),
    /// Certificate authority: init, sign, revoke (works on files; no node needed).
    #[command(subcommand)]
    Ca(CaCommand),
    /// Certificate files: show.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Check a running node (API, peers, DHT, reachability, certificate, clock skew) and say
    /// what to fix; exits non-zero when a check fails.
    Doctor,
    /// Print a shell completion script: `mcc completions bash > /etc/bash_completion.d/mcc`.
    Completions {
        #[arg(value_enum)]
        shell: completions::Shell,
    },
    /// Print the man page mcc(1); with --dir, write it and one page per subcommand there.
    Man {
        /// Folder to write mcc.1, mcc-blob.1, ... into.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// CLI errors: each is printed as one line, with a non-zero exit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Client(#[from] client::Error),
    #[error(transparent)]
    Daemon(#[from] crate::daemon::Error),
    #[error(transparent)]
    Identity(#[from] crate::identity::Error),
    #[error(transparent)]
    Certs(#[from] crate::certs::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::File {
        path: path.to_path_buf(),
        source,
    })
}

fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(msg.into())
}

/// The API URL the client commands use.
pub fn api_url(common: &CommonArgs) -> String {
    if let Some(api) = &common.api {
        return api.clone();
    }
    let dir = common
        .data_folder
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_FOLDER));
    read_api_file(&dir).unwrap_or_else(|| format!("http://{DEFAULT_HTTP}"))
}

fn read_api_file(dir: &Path) -> Option<String> {
    let s = std::fs::read_to_string(dir.join(crate::daemon::API_FILE)).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// The API token the client commands send: `--api-token FILE`, or the data folder's
/// `api-token` (with `--api-token auto` or when present).
pub fn api_token(common: &CommonArgs) -> Result<Option<String>, Error> {
    let dir = common
        .data_folder
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_FOLDER));
    let path = match common.api_token.as_deref() {
        Some("auto") | None => dir.join(crate::daemon::TOKEN_FILE),
        Some(file) => PathBuf::from(file),
    };
    match crate::daemon::read_token(&path) {
        Ok(token) => Ok(Some(token)),
        Err(e) if common.api_token.is_none() && e.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(source) => Err(Error::File { path, source }),
    }
}

/// Runs a client subcommand and prints its result.
pub async fn run_command(cmd: Subcommand, common: &CommonArgs) -> Result<(), Error> {
    let mut client = Client::new(api_url(common));
    match cmd {
        Subcommand::Completions { shell } => return completions::completions(shell),
        Subcommand::Man { dir } => return completions::man(dir),
        _ => {}
    }
    if !matches!(cmd, Subcommand::Ca(_) | Subcommand::Cert(_))
        && let Some(token) = api_token(common)?
    {
        client = client.with_token(&token);
    }
    let json = common.json;
    match cmd {
        Subcommand::Node(cmd) => node::run(cmd, &client, json).await?,
        Subcommand::Addrbook { cmd } => addrbook::run(cmd, &client, json).await?,
        Subcommand::Dht(cmd) => dht::run(cmd, &client, json).await?,
        Subcommand::Service(cmd) => service::run(cmd, &client, json).await?,
        Subcommand::Listen(cmd) => service::run_listen(cmd, &client, json).await?,
        Subcommand::Blob(cmd) => blob::run(cmd, &client, json).await?,
        Subcommand::Stream(cmd) => stream::run(cmd, &client, json).await?,
        Subcommand::Route(cmd) => route::run(cmd, &client, json).await?,
        Subcommand::Did(cmd) => did::run(cmd, &client, json).await?,
        Subcommand::Ca(cmd) => ca::run(cmd, &client, json).await?,
        Subcommand::Cert(cmd) => ca::run_cert(cmd, json)?,
        Subcommand::Doctor => doctor::run(&client, json).await?,
        Subcommand::Completions { .. } | Subcommand::Man { .. } => {}
    }
    Ok(())
}
