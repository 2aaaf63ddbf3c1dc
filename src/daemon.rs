//! The daemon: a node plus its HTTP API, run until a shutdown future completes.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::sync::watch;

/// Kept at its old path; it lives in [`api`] now.
pub use crate::api::api_url;
use crate::api::{self, ApiConfig};
use crate::node::{self, Node};

/// File in the data folder holding the API base URL of the running daemon.
pub const API_FILE: &str = "api";

/// RPC method every daemon answers with its wall clock, `{"unix_ms": N}` (`mcc doctor`).
pub const TIME_METHOD: &str = "time";

/// File in the data folder holding the API token made by `--api-token auto` (mode 0600).
pub const TOKEN_FILE: &str = "api-token";

/// Where the API's bearer token comes from (`--api-token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiToken {
    /// The data folder's [`TOKEN_FILE`], created with a random token when missing.
    Auto,
    /// A file holding the token (its first line).
    File(PathBuf),
}

/// Reads a token file: its content without surrounding white space; empty is an error.
pub fn read_token(path: &std::path::Path) -> std::io::Result<String> {
    let token = std::fs::read_to_string(path)?.trim().to_string();
    if token.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the token file is empty",
        ));
    }
    Ok(token)
}

/// The token of `source`: read, or (for [`ApiToken::Auto`]) made once into the data folder.
fn load_token(source: &ApiToken, data_dir: Option<&std::path::Path>) -> Result<String, Error> {
    let path = match (source, data_dir) {
        (ApiToken::File(p), _) => p.clone(),
        (ApiToken::Auto, Some(dir)) => {
            crate::fsutil::private_dir(dir).map_err(|source| Error::Token {
                path: dir.to_path_buf(),
                source,
            })?;
            dir.join(TOKEN_FILE)
        }
        (ApiToken::Auto, None) => return Err(Error::NoTokenFolder),
    };
    let token_err = |source| Error::Token {
        path: path.clone(),
        source,
    };
    if *source == ApiToken::Auto && !path.exists() {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        match crate::fsutil::write_new_atomic(&path, token.as_bytes(), 0o600) {
            Ok(()) => tracing::info!(path = %path.display(), "created an API token"),
            // Another process made it meanwhile: use that one.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(token_err(e)),
        }
    }
    read_token(&path).map_err(token_err)
}

/// Everything the daemon needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub node: node::Config,
    /// The node key (`--privkey`); `None` uses the data folder's identity.
    pub keypair: Option<libp2p::identity::Keypair>,
    /// Where the REST API listens; `None` runs without it.
    pub http: Option<SocketAddr>,
    /// Where the forward listener for browsers listens (`--http-forward`); `None`: off.
    pub http_forward: Option<SocketAddr>,
    /// The API's bearer token (`--api-token`); `None`: no token (loopback only).
    pub api_token: Option<ApiToken>,
    pub api: ApiConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Node(#[from] node::Error),
    #[error("cannot serve HTTP on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    ApiFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("API token {path}: {source}")]
    Token {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--api-token auto needs a data folder; give --api-token FILE instead")]
    NoTokenFolder,
    #[error(
        "the REST API would listen on {addr}, reachable from other machines, without a token: \
         anyone who reaches it controls this node. Add --api-token auto (the token goes to \
         <data-folder>/api-token, where the CLI finds it), or bind --http to 127.0.0.1"
    )]
    Unprotected { addr: SocketAddr },
}

/// Binds a listener of the API or the forward; returns it with its bound address.
async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Http { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error::Http { addr, source })?;
    Ok((listener, bound))
}

/// Runs node and API until `shutdown` completes, then stops both.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let data_dir = config.node.data_dir.clone();
    // Checked before anything starts: a node never serves an open API beyond loopback.
    let token = match &config.api_token {
        Some(source) => Some(load_token(source, data_dir.as_deref())?),
        None => None,
    };
    if let Some(addr) = config.http
        && token.is_none()
        && !addr.ip().is_loopback()
    {
        return Err(Error::Unprotected { addr });
    }
    // `time`: this node's clock, for the clock skew check of `mcc doctor`.
    let mut builder = Node::builder(config.node).method(TIME_METHOD, |_caller, _params| async {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Ok(serde_json::json!({ "unix_ms": ms }))
    });
    if let Some(k) = config.keypair {
        builder = builder.keypair(k);
    }
    let (node, task) = builder.spawn(stopped()).await?;

    let mut api_config = config.api;
    api_config.token = token;
    let forward_server = match config.http_forward {
        Some(addr) => {
            let (listener, bound) = bind(addr).await?;
            api_config.http_forward = Some(bound);
            tracing::info!(
                "HTTP forward for browsers on http://SERVICE.localhost:{}/ (or {}/SERVICE/)",
                bound.port(),
                api_url(bound)
            );
            let router = api::forward_router(node.clone(), &api_config);
            Some(tokio::spawn(api::serve(listener, router, stopped())))
        }
        None => None,
    };

    let mut api_file = None;
    let server = match config.http {
        Some(addr) => {
            let (listener, bound) = bind(addr).await?;
            api_config.bound = Some(bound);
            let url = api_url(bound);
            tracing::info!("REST API on {url} (dashboard at {url}/, Swagger UI at {url}/docs)");
            // Serving first: the file (fsynced) is for the CLI, the API need not wait for it.
            let router = api::router(node.clone(), &api_config);
            let server = tokio::spawn(api::serve(listener, router, stopped()));
            if let Some(dir) = &data_dir {
                let path = dir.join(API_FILE);
                crate::fsutil::write_atomic(&path, url.as_bytes(), 0o600).map_err(|source| {
                    Error::ApiFile {
                        path: path.clone(),
                        source,
                    }
                })?;
                api_file = Some(path);
            }
            Some(server)
        }
        None => None,
    };
    drop(node);

    let _ = task.await;
    for server in [server, forward_server].into_iter().flatten() {
        match server.await {
            Ok(Err(e)) => tracing::warn!("API server: {e}"),
            Err(e) => tracing::warn!("API server task: {e}"),
            Ok(Ok(())) => {}
        }
    }
    if let Some(path) = api_file {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}
