//! The node: one event loop task that alone owns the libp2p `Swarm`, and a cloneable
//! [`Node`] handle that talks to it with bounded commands and oneshot replies.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mcc::node::Error> {
//! use mcc::node::{Config, Node};
//!
//! let config = Config {
//!     listen: mcc::node::addr::parse_listen("127.0.0.1:0")?,
//!     ..Config::default()
//! };
//! let (node, task) = Node::builder(config)
//!     .method("add", |_caller, params| async move {
//!         let a = params["a"].as_i64().unwrap_or(0);
//!         let b = params["b"].as_i64().unwrap_or(0);
//!         Ok(serde_json::json!(a + b))
//!     })
//!     .spawn(async { let _ = tokio::signal::ctrl_c().await; })
//!     .await?;
//! println!("I am {}", node.peer_id());
//! task.await.ok();
//! # Ok(()) }
//! ```

pub mod addr;
mod admission;
mod behaviour;
mod event_loop;
mod keys;
mod metrics;

use std::future::Future;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId, StreamProtocol, noise, tcp, yamux};
use mcc_records::did::SignedDocument;
use mcc_rpc::{CallError, Methods, RpcError};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use self::addr::AddrError;
pub use self::admission::{
    AdmissionConfig, AdmissionInfo, CertificateError, CertificateInfo, GuardedStore,
    REVOCATIONS_FILE, RevocationOutcome,
};
pub use self::behaviour::{Behaviour, BehaviourEvent};
pub(crate) use self::event_loop::Command;
use self::event_loop::EventLoop;
pub(crate) use self::keys::provider_key;
use crate::services::{Listener, Services};

/// Version of this crate, announced by identify and in the REST API.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Default TCP/QUIC port.
pub const DEFAULT_PORT: u16 = 9376;

/// When to run mDNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MdnsMode {
    /// On only if some listen address is not loopback.
    #[default]
    Auto,
    On,
    Off,
}

/// How a node is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where identity (and later other state) is kept; `None` keeps nothing on disk.
    pub data_dir: Option<PathBuf>,
    /// Deterministic identity for demos and tests.
    pub seed: Option<u64>,
    /// Human-readable name, normalized with [`mcc_admission::normalize_label`].
    pub label: Option<String>,
    /// Addresses to listen on (see [`addr::parse_listen`]).
    pub listen: Vec<Multiaddr>,
    /// Peers to join through (see [`addr::parse_dial`]).
    pub boot: Vec<Multiaddr>,
    /// Kademlia protocol name.
    pub kad_protocol: StreamProtocol,
    /// Kademlia query parallelism (alpha).
    pub dht_alpha: NonZeroUsize,
    /// Application key whose providers find each other; `None` turns rendezvous off.
    pub rendezvous: Option<String>,
    /// How often rendezvous looks for other providers of the key.
    pub rendezvous_interval: Duration,
    /// mDNS on the LAN.
    pub mdns: MdnsMode,
    /// RPC limits and timeouts.
    pub rpc: mcc_rpc::Config,
    /// Interval between pings of each connection.
    pub ping_interval: Duration,
    /// How long an unused connection is kept.
    pub idle_connection_timeout: Duration,
    /// DHT record store limits and lookups.
    pub records: RecordsConfig,
    /// Services from the config file: (name, address), registered at every start.
    pub services: Vec<(String, String)>,
    /// Listeners from the config file: (service, local address, pinned peer).
    pub listeners: Vec<(String, String, Option<String>)>,
    /// Seed blobs this node fetched from others (added ones are always seeded).
    pub keep_blobs: bool,
    /// Certificates: this node's own, the trusted CA, revocations.
    pub admission: AdmissionConfig,
    /// Limits of the tunnels this node serves (tunnels in all and per peer, idle timeout); the
    /// idle timeout also applies to the tunnels of this node's own listeners.
    pub forward: mcc_forward::ServerConfig,
}

/// DHT records: store limits and lookup behaviour.
#[derive(Debug, Clone)]
pub struct RecordsConfig {
    /// Store limits (records, value size, providers).
    pub limits: crate::storage::records::Limits,
    /// A lookup stops once this many valid versions were found (then the best one wins).
    pub get_quorum: NonZeroUsize,
    /// Publish this node's own DID document at start and when new peers arrive.
    pub publish_did: bool,
    /// How often every stored record of other publishers is put again to the peers closest to
    /// its key (1 h, as kad's default), walking the store in small batches.
    pub replication_interval: Duration,
    /// How often this node's own records are published again (24 h, as kad's default); they
    /// are sent with a 36 h expiry.
    pub publication_interval: Duration,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        Self {
            limits: crate::storage::records::Limits::default(),
            get_quorum: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
            publish_did: true,
            replication_interval: Duration::from_secs(3600),
            publication_interval: Duration::from_secs(24 * 3600),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: None,
            seed: None,
            label: None,
            listen: addr::parse_listen(&format!("127.0.0.1:{DEFAULT_PORT}")).unwrap_or_default(),
            boot: Vec::new(),
            kad_protocol: libp2p::kad::PROTOCOL_NAME,
            dht_alpha: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
            rendezvous: Some("mcc".to_string()),
            rendezvous_interval: Duration::from_secs(10),
            mdns: MdnsMode::Auto,
            rpc: mcc_rpc::Config::default().with_request_timeout(Duration::from_secs(10)),
            ping_interval: Duration::from_secs(15),
            idle_connection_timeout: Duration::from_secs(3600),
            records: RecordsConfig::default(),
            services: Vec::new(),
            listeners: Vec::new(),
            keep_blobs: true,
            admission: AdmissionConfig::default(),
            forward: mcc_forward::ServerConfig::default(),
        }
    }
}

/// Errors of the node and its handle.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Identity(#[from] crate::identity::Error),
    #[error("data folder {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("transport setup failed: {0}")]
    Transport(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error(transparent)]
    Addr(#[from] AddrError),
    #[error("dialing {addr} failed: {reason}")]
    Dial { addr: Multiaddr, reason: String },
    #[error("call failed: {0}")]
    Call(#[from] CallError),
    #[error("the node is not running")]
    Stopped,
    #[error("the node identity must be an ed25519 key")]
    NotEd25519,
    #[error(transparent)]
    Invalid(#[from] mcc_records::ValidationError),
    #[error("no record found for {0}")]
    NotFound(String),
    #[error("record store: {0}")]
    Store(String),
    /// The record store has no room for a new record of this node (HTTP 507).
    #[error("the record store is full ({0}): raise --max-records")]
    StoreFull(String),
    #[error("every peer refused the record (is a newer version already published?)")]
    Refused,
    #[error(transparent)]
    Services(#[from] crate::services::registry::Error),
    #[error("no reachable provider of service {0}")]
    NoProvider(String),
    #[error("tunnel: {0}")]
    Tunnel(String),
    #[error("cannot listen on {address}: {reason}")]
    ListenerBind { address: String, reason: String },
    #[error("invalid peer id: {0}")]
    InvalidPeer(String),
    #[error("invalid CID {0}")]
    InvalidCid(String),
    #[error("{0}")]
    Blob(String),
    /// A blob's DAG is out of proportion (a "DAG bomb"): it is neither read nor stored.
    #[error("blob DAG refused: {0}")]
    BlobRefused(String),
    #[error(transparent)]
    Certificate(Box<CertificateError>),
    /// This node (or the peer asked) may not do this: a permission is missing.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
}

impl From<CertificateError> for Error {
    fn from(e: CertificateError) -> Self {
        Error::Certificate(Box::new(e))
    }
}

/// Who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// What a node says about itself.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeInfo {
    #[schema(value_type = String)]
    pub peer_id: PeerId,
    pub label: String,
    /// This node's `did:key`, derived from its identity.
    pub did: String,
    pub version: String,
    pub agent_version: String,
    #[schema(value_type = Vec<String>)]
    pub listen_addrs: Vec<Multiaddr>,
    #[schema(value_type = Vec<String>)]
    pub external_addrs: Vec<Multiaddr>,
    pub kad_protocol: String,
    pub rendezvous: Option<String>,
    pub mdns: bool,
    pub rpc_methods: Vec<String>,
    pub connected_peers: usize,
    pub routing_table_size: usize,
    pub uptime_secs: u64,
    /// This node's certificate (label, permissions, expiry).
    pub certificate: CertificateInfo,
    pub admission: AdmissionInfo,
    /// URL of the forward listener (`--http-forward`), where browsers open forwarded web
    /// services on an origin of their own; absent when it is off.
    #[serde(default)]
    pub http_forward: Option<String>,
}

/// A connected peer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PeerInfo {
    #[schema(value_type = String)]
    pub peer_id: PeerId,
    /// Label from the peer's verified certificate, else from its identify agent version.
    pub label: Option<String>,
    /// Served by this node's protocols (always true in an open network).
    pub admitted: bool,
    /// The peer's verified certificate (with `--trust-ca` only).
    pub certificate: Option<CertificateInfo>,
    /// Remote addresses of the open connections, then the listen addresses it announced.
    #[schema(value_type = Vec<String>)]
    pub addrs: Vec<Multiaddr>,
    /// Last ping round-trip time.
    pub rtt_ms: Option<f64>,
    /// Direction of the oldest open connection.
    pub direction: Direction,
    pub connections: usize,
    pub agent_version: Option<String>,
    pub protocols: Vec<String>,
    /// Found as a provider of this node's rendezvous key (same application).
    pub rendezvous: bool,
    /// In the Kademlia routing table.
    pub in_routing_table: bool,
    pub connected_secs: u64,
}

/// One peer's answer to a (multi)call.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    pub peer_id: PeerId,
    pub result: Result<Value, CallError>,
    pub rtt: Duration,
}

/// A record found in the DHT: the best valid version among those seen.
#[derive(Debug, Clone)]
pub struct FoundRecord {
    pub value: Vec<u8>,
    pub publisher: Option<PeerId>,
    /// Valid versions seen (this node's own copy included).
    pub versions: usize,
    /// Peers asked during the lookup (a measure of hops).
    pub queried: u32,
    pub duration: Duration,
}

/// How a put went.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PutOutcome {
    /// Stored in this node's own store.
    pub stored_locally: bool,
    /// Stored on at least one other peer (false on a node without peers: it is replicated
    /// when peers arrive).
    pub replicated: bool,
}

/// Builds and starts a node.
pub struct Builder {
    config: Config,
    keypair: Option<Keypair>,
    methods: Methods,
    registry: Registry,
}

impl Builder {
    /// Uses this identity instead of the data folder / seed one.
    pub fn keypair(mut self, keypair: Keypair) -> Self {
        self.keypair = Some(keypair);
        self
    }

    /// Registers an RPC method callable by peers (and locally). More can be added at runtime
    /// through [`Node::methods`].
    pub fn method<F, Fut>(self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(PeerId, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RpcError>> + Send + 'static,
    {
        self.methods.register(name, handler);
        self
    }

    /// Uses this Prometheus registry (the node registers libp2p's and its own metrics in it).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// Builds the swarm, starts listening and spawns the event loop on the tokio runtime.
    ///
    /// The node runs until `shutdown` completes or every [`Node`] handle is dropped; the
    /// returned task ends when the event loop has stopped.
    pub async fn spawn<F>(self, shutdown: F) -> Result<(Node, JoinHandle<()>), Error>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Builder {
            config,
            keypair,
            methods,
            mut registry,
        } = self;

        if let Some(dir) = &config.data_dir {
            crate::fsutil::private_dir(dir).map_err(|source| Error::DataDir {
                path: dir.clone(),
                source,
            })?;
        }
        let keypair = match (keypair, config.seed, &config.data_dir) {
            (Some(k), _, _) => k,
            (None, Some(seed), _) => crate::identity::from_seed(seed),
            (None, None, Some(dir)) => crate::identity::load_or_create(dir)?,
            (None, None, None) => Keypair::generate_ed25519(),
        };
        let peer_id = keypair.public().to_peer_id();
        let ed25519 = keypair
            .clone()
            .try_into_ed25519()
            .map_err(|_| Error::NotEd25519)?;
        // A certificate's label wins over --label.
        let label = match &config.admission.certificate {
            Some(c) => {
                if config.label.is_some() {
                    tracing::info!(
                        "--label is ignored: the certificate's label {:?} is used",
                        c.label()
                    );
                }
                c.label().to_string()
            }
            None => resolve_label(&config)?,
        };
        let mut admission_config = config.admission.clone();
        admission_config.revocations =
            admission::newest_revocations(&admission_config, config.data_dir.as_deref());
        let certificate = admission::own_certificate(&admission_config, &ed25519, peer_id, &label)?;
        let may_write_records = certificate
            .permissions()
            .allows(mcc_admission::Permission::RecordsWrite);
        if !may_write_records {
            tracing::info!(
                "this node's certificate lacks records:write: its DID document is not published"
            );
        }
        let did = mcc_records::did::did_from_public(&ed25519.public());
        let own_did_doc = if config.records.publish_did && may_write_records {
            let doc = mcc_records::did::default_document(&did);
            let seq = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(1);
            Some(
                SignedDocument::sign(&ed25519, doc, seq)
                    .map_err(|e| Error::Store(format!("cannot sign own DID document: {e}")))?,
            )
        } else {
            None
        };
        let (store, store_tmp) = open_record_store(&config, peer_id)?;
        let state_dir = match (&config.data_dir, &store_tmp) {
            (Some(d), _) => d.clone(),
            (None, Some(t)) => t.path().to_path_buf(),
            (None, None) => std::env::temp_dir(),
        };
        let blobs = Arc::new(
            crate::storage::blobs::BlobStore::open(&state_dir.join("blobs"))
                .map_err(|e| Error::Store(e.to_string()))?,
        );
        let forward_stats = mcc_forward::Stats::default();
        let stream = libp2p_stream::Behaviour::new();
        let control = stream.new_control();
        let service_registry = crate::services::Registry::load(config.data_dir.clone())?;
        let agent_version = format!("mcc/{VERSION} ({label})");
        let mdns_on = match config.mdns {
            MdnsMode::On => true,
            MdnsMode::Off => false,
            MdnsMode::Auto => config.listen.iter().any(|a| !addr::is_loopback(a)),
        };

        let node_metrics = metrics::NodeMetrics::new(&mut registry);
        let cert_metrics = node_metrics.certificate.clone();
        let admission = mcc_admission::Behaviour::new(
            certificate.clone(),
            mcc_admission::Config {
                trusted_ca: admission_config.trusted_ca.clone(),
                revocations: admission_config.revocations.clone(),
                timeout: admission_config.timeout,
                ban_duration: admission_config.ban_duration,
                recheck_interval: admission_config.recheck_interval,
            },
        );
        let gates = admission.gates();
        let store = GuardedStore::new(store, gates.clone())
            .with_rendezvous(config.rendezvous.as_deref().map(event_loop::provider_key));
        let behaviour = Behaviour::new(
            &keypair,
            &config,
            admission,
            store,
            stream,
            agent_version.clone(),
            methods.clone(),
            mdns_on,
        )?;
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair.clone())
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| Error::Transport(e.to_string()))?
            .with_quic()
            .with_dns()
            .map_err(|e| Error::Transport(e.to_string()))?
            .with_bandwidth_metrics(&mut registry)
            .with_behaviour(|_| behaviour)
            .map_err(|e| Error::Transport(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_connection_timeout))
            .build();
        let libp2p_metrics = libp2p::metrics::Metrics::new(&mut registry);

        let mut listeners = std::collections::HashSet::new();
        for addr in &config.listen {
            ensure_tcp_port_free(addr)?;
            let id = swarm.listen_on(addr.clone()).map_err(|e| Error::Listen {
                addr: addr.clone(),
                reason: error_chain(&e),
            })?;
            listeners.insert(id);
        }

        let (tx, rx) = mpsc::channel(256);
        let mut event_loop = EventLoop::new(
            swarm,
            rx,
            &config,
            event_loop::Info {
                label: label.clone(),
                agent_version,
                mdns: mdns_on,
                methods: methods.clone(),
                did: did.clone(),
                own_did_doc,
                forward_stats: forward_stats.clone(),
                _store_tmp: store_tmp,
            },
            libp2p_metrics,
            node_metrics,
        );
        event_loop.wait_listening(listeners).await?;
        let stopped = tokio_util::sync::CancellationToken::new();
        let services = Arc::new(
            Services::new(
                service_registry,
                control.clone(),
                forward_stats,
                stopped.clone(),
                gates.clone(),
            )
            .with_tunnel_idle_timeout(config.forward.idle_timeout),
        );
        let task = {
            let stopped = stopped.clone();
            tokio::spawn(async move {
                event_loop.run(shutdown).await;
                stopped.cancel();
            })
        };
        {
            let (resolver, stats, stopped) =
                (services.resolver(), services.stats.clone(), stopped.clone());
            let server =
                mcc_forward::serve(control.clone(), resolver, config.forward.clone(), stats);
            tokio::spawn(async move {
                tokio::select! {
                    _ = stopped.cancelled() => {}
                    r = server => if let Err(e) = r {
                        tracing::error!("forwarding server: {e}");
                    }
                }
            });
        }
        if certificate
            .permissions()
            .allows(mcc_admission::Permission::BlobsSeed)
        {
            let server = mcc_blobs::transfer::serve(
                control.clone(),
                Arc::clone(&blobs) as Arc<dyn mcc_blobs::BlockStore>,
                mcc_blobs::transfer::ServeStats::default(),
            );
            let stopped = stopped.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = stopped.cancelled() => {}
                    r = server => if let Err(e) = r {
                        tracing::error!("blob server: {e}");
                    }
                }
            });
        }
        tracing::info!(%peer_id, %label, "node started");
        let node = Node {
            inner: Arc::new(Inner {
                tx,
                peer_id,
                did,
                label,
                methods,
                registry: Arc::new(registry),
                call_guard: config.rpc.request_timeout() + Duration::from_secs(5),
                services,
                blobs,
                keep_blobs: config.keep_blobs,
                certificate,
                trusted_ca: admission_config.trusted_ca.clone(),
                data_dir: config.data_dir.clone(),
                record_max_value: config.records.limits.max_value_size,
                cert_metrics,
                gates,
            }),
        };
        node.start_services(&config).await?;
        tokio::spawn(admission::admission_task(
            Arc::downgrade(&node.inner),
            stopped.clone(),
            admission_config.revocation_refresh,
        ));
        Ok((node, task))
    }
}

/// The validated, persistent record store: `<data-folder>/records.redb`, or a temp folder that
/// lives as long as the node when there is no data folder.
fn open_record_store(
    config: &Config,
    peer_id: PeerId,
) -> Result<
    (
        mcc_records::ValidatingStore<crate::storage::records::RedbStore>,
        Option<tempfile::TempDir>,
    ),
    Error,
> {
    let (dir, tmp) = match &config.data_dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::tempdir().map_err(|source| Error::DataDir {
                path: std::env::temp_dir(),
                source,
            })?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let limits = &config.records.limits;
    let inner = crate::storage::records::RedbStore::open(
        &dir.join("records.redb"),
        peer_id,
        limits.clone(),
    )
    .map_err(|e| Error::Store(e.to_string()))?;
    let store = mcc_records::ValidatingStore::new(
        inner,
        mcc_records::Limits {
            max_value_size: limits.max_value_size,
            max_providers_per_key: limits.max_providers_per_key,
        },
    )
    .with_local_peer(peer_id);
    Ok((store, tmp))
}

/// The record store kad uses: `records:write` checked, then validation, in front of redb.
pub type RecordStore =
    GuardedStore<mcc_records::ValidatingStore<crate::storage::records::RedbStore>>;

/// libp2p-tcp listens with SO_REUSEPORT, so a second node could silently share a TCP port
/// with the first. A plain bind first turns that into a clear error.
fn ensure_tcp_port_free(listen: &Multiaddr) -> Result<(), Error> {
    let Some(sock) = addr::host_port(listen) else {
        return Ok(());
    };
    if sock.port() == 0
        || listen
            .iter()
            .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2pCircuit))
    {
        return Ok(());
    }
    std::net::TcpListener::bind(sock)
        .map(drop)
        .map_err(|e| Error::Listen {
            addr: listen.clone(),
            reason: e.to_string(),
        })
}

/// An error and all its sources, `: `-separated.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn resolve_label(config: &Config) -> Result<String, Error> {
    if let Some(l) = config
        .label
        .as_deref()
        .and_then(mcc_admission::normalize_label)
    {
        return Ok(l);
    }
    // Keep a generated label across restarts, like the identity.
    let Some(dir) = &config.data_dir else {
        return Ok(crate::label::random());
    };
    let path = dir.join("label");
    if let Some(l) = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| mcc_admission::normalize_label(&s))
    {
        return Ok(l);
    }
    let l = crate::label::random();
    crate::fsutil::write_atomic(&path, l.as_bytes(), 0o600)
        .map_err(|source| Error::DataDir { path, source })?;
    Ok(l)
}

pub(crate) struct Inner {
    pub(crate) services: Arc<Services>,
    pub(crate) blobs: Arc<crate::storage::blobs::BlobStore>,
    pub(crate) keep_blobs: bool,
    tx: mpsc::Sender<Command>,
    peer_id: PeerId,
    did: String,
    label: String,
    methods: Methods,
    registry: Arc<Registry>,
    /// Last-resort bound on a call, above the RPC request timeout.
    call_guard: Duration,
    certificate: mcc_admission::Certificate,
    trusted_ca: Option<mcc_admission::Certificate>,
    data_dir: Option<PathBuf>,
    /// Largest record value (`--max-record-size`): a revocation list must fit one.
    record_max_value: usize,
    cert_metrics: metrics::CertMetrics,
    /// Who is admitted, with which permissions.
    pub(crate) gates: mcc_admission::Gates,
}

/// A cloneable handle to a running node.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<Inner>,
}

impl Node {
    /// Starts building a node.
    pub fn builder(config: Config) -> Builder {
        Builder {
            config,
            keypair: None,
            methods: Methods::new(),
            registry: Registry::default(),
        }
    }

    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// The RPC methods this node serves; register more at runtime here.
    pub fn methods(&self) -> &Methods {
        &self.inner.methods
    }

    /// The Prometheus registry with libp2p's and mcc's metrics.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Registers the config file's services, announces saved ones and starts listeners.
    async fn start_services(&self, config: &Config) -> Result<(), Error> {
        for (name, address) in &config.services {
            self.add_service_from(name, address, true).await?;
        }
        for s in self.local_services().into_iter().filter(|s| !s.from_config) {
            self.send(Command::Provide {
                key: crate::services::service_key(&s.name),
            })
            .await?;
        }
        // Seed the blobs stored here.
        let seeding = self.may(mcc_admission::Permission::BlobsSeed).is_ok();
        for b in self.blobs().into_iter().filter(|_| seeding) {
            if let Ok(cid) = crate::blobs::parse_cid(&b.cid) {
                self.send(Command::Provide {
                    key: crate::blobs::provider_key(&cid),
                })
                .await?;
            }
        }
        let mut listeners = self.listeners();
        for (service, address, peer) in &config.listeners {
            let l = Listener {
                id: format!("config-{}", listeners.len()),
                service: service.clone(),
                address: address.clone(),
                peer: peer.clone(),
                from_config: true,
            };
            self.inner.services.registry.add_listener(l.clone())?;
            listeners.push(l);
        }
        for l in listeners {
            // A saved listener that cannot bind must not keep the node from starting.
            if let Err(e) = self.start_listener(&l).await {
                tracing::error!(address = %l.address, service = %l.service, "listener not started: {e}");
            }
        }
        Ok(())
    }

    pub(crate) async fn send(&self, cmd: Command) -> Result<(), Error> {
        self.inner.tx.send(cmd).await.map_err(|_| Error::Stopped)
    }

    pub(crate) async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .tx
            .send(make(tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// What the node says about itself.
    pub async fn info(&self) -> Result<NodeInfo, Error> {
        self.request(Command::Info).await
    }

    /// The connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, Error> {
        self.request(Command::Peers).await
    }

    /// Dials an address (see [`addr::parse_dial`]) and waits for the connection.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, Error> {
        let fut = self.request(|reply| Command::Dial {
            addr: addr.clone(),
            reply,
        });
        match tokio::time::timeout(Duration::from_secs(20), fut).await {
            Ok(r) => r?,
            Err(_) => Err(Error::Dial {
                addr,
                reason: "timed out".to_string(),
            }),
        }
    }

    /// Calls `method` on `peer` (this node itself when `peer` is our own id).
    pub async fn call(&self, peer: PeerId, method: &str, params: Value) -> Result<Value, Error> {
        Ok(self.call_outcome(peer, method, params).await.result?)
    }

    /// Like [`Node::call`], with the round-trip time and the error kept per peer.
    pub async fn call_outcome(&self, peer: PeerId, method: &str, params: Value) -> CallOutcome {
        let start = Instant::now();
        let result = if peer == self.inner.peer_id {
            self.inner
                .methods
                .invoke(peer, method, params)
                .await
                .map_err(CallError::Remote)
        } else {
            let fut = self.request(|reply| Command::Call {
                peer,
                method: method.to_string(),
                params,
                reply,
            });
            match tokio::time::timeout(self.inner.call_guard, fut).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(CallError::Io("the node is not running".to_string())),
                Err(_) => Err(CallError::Timeout),
            }
        };
        CallOutcome {
            peer_id: peer,
            result,
            rtt: start.elapsed(),
        }
    }

    /// Calls `method` on every connected peer that speaks our RPC protocol (and on this node
    /// too with `include_self`), all at once; one outcome per peer, this node first.
    pub async fn multicall(
        &self,
        method: &str,
        params: Value,
        include_self: bool,
    ) -> Result<Vec<CallOutcome>, Error> {
        let mut targets = self.request(Command::RpcPeers).await?;
        targets.sort();
        if include_self {
            targets.insert(0, self.inner.peer_id);
        }
        Ok(join_all(
            targets
                .into_iter()
                .map(|p| self.call_outcome(p, method, params.clone())),
        )
        .await)
    }

    /// Echoes `message` off one peer, or off this node and every connected peer.
    pub async fn echo(
        &self,
        message: &str,
        peer: Option<PeerId>,
    ) -> Result<Vec<CallOutcome>, Error> {
        let params = Value::String(message.to_string());
        match peer {
            Some(p) => Ok(vec![self.call_outcome(p, "echo", params).await]),
            None => self.multicall("echo", params, true).await,
        }
    }

    /// This node's `did:key`.
    pub fn did(&self) -> &str {
        &self.inner.did
    }

    /// Validates and stores a record locally and on the closest peers.
    pub async fn put_record(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<PutOutcome, Error> {
        self.request(|reply| Command::PutRecord {
            key,
            value,
            ttl,
            reply,
        })
        .await?
    }

    /// Looks a record up (locally and in the DHT) and returns the best valid version.
    pub async fn get_record(&self, key: Vec<u8>) -> Result<FoundRecord, Error> {
        self.request(|reply| Command::GetRecord { key, reply })
            .await?
    }

    /// This node's own copy of a record, without asking the network.
    pub async fn get_local_record(&self, key: Vec<u8>) -> Result<FoundRecord, Error> {
        let name = String::from_utf8_lossy(&key).into_owned();
        let record = self
            .request(|reply| Command::GetLocalRecord { key, reply })
            .await?
            .ok_or(Error::NotFound(name))?;
        Ok(FoundRecord {
            value: record.value,
            publisher: record.publisher,
            versions: 1,
            queried: 0,
            duration: Duration::ZERO,
        })
    }

    /// Resolves a DID to its current signed document.
    pub async fn resolve_did(&self, did: &str) -> Result<SignedDocument, Error> {
        let key = mcc_records::did_key(did).to_vec();
        mcc_records::parse_key(&key).map_err(mcc_records::ValidationError::from)?;
        let found = self.get_record(key).await?;
        SignedDocument::from_bytes(&found.value)
            .map_err(|e| Error::Invalid(mcc_records::ValidationError::from(e)))
    }

    /// Publishes a signed DID document (it must verify and be newer than the one held).
    pub async fn publish_did(&self, doc: &SignedDocument) -> Result<PutOutcome, Error> {
        let did = doc.did().unwrap_or_default().to_string();
        self.put_record(mcc_records::did_key(&did).to_vec(), doc.to_bytes(), None)
            .await
    }

    /// Completes when the event loop has stopped.
    pub async fn closed(&self) {
        self.inner.tx.closed().await
    }
}
