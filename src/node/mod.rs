//! The node: one event loop task that alone owns the libp2p `Swarm`, and a cloneable
//! [`Node`] handle that talks to it with bounded commands and oneshot replies.
//!
//! # Layout
//!
//! - `config.rs`: [`Config`] and its parts; `error.rs`: [`Error`]; `info.rs`: what the node
//!   reports ([`NodeInfo`], [`PeerInfo`], ...).
//! - `builder.rs`: [`Builder::spawn`], in steps: identity, stores, swarm, event loop, servers.
//! - `behaviour.rs`: the composed libp2p behaviour, built inside the swarm builder's closure.
//! - `event_loop*`: the only owner of the `Swarm`, and the `Command`s it answers.
//! - `admission.rs`: certificates, revocations, the `records:write` guard of the record store.
//!
//! # Tasks
//!
//! - **Event loop** (`event_loop/`): owns the `Swarm` and every behaviour; it alone touches
//!   libp2p state. Handles reach it through the bounded `Command` channel (256).
//! - **Forward server** (`mcc_forward::serve`): answers inbound `/mcc/forward/1.0.0` streams
//!   and owns their tunnels in its own `JoinSet`.
//! - **Blob server** (`mcc_blobs::transfer::serve`, with `blobs:seed` only): answers block
//!   requests from the blob store.
//! - **Admission task** (`admission::admission_task`): certificate expiry warnings and the
//!   revocation list refresh; holds the node weakly.
//! - **Listeners** (`services`): one accept loop per local listener plus one task per tunnel.
//! - **API server** (`crate::api`, spawned by the daemon, not here).
//!
//! All but the event loop and the API are owned by one `TaskTracker` and end when the
//! node's `stopped` token is cancelled, which the event loop does when it ends; the task that
//! [`Builder::spawn`] returns ends only once all of them have ended.
//!
//! # Shared state
//!
//! Outside the event loop, state is shared only where tasks must decide without a round trip:
//! - `mcc_admission::Gates` (a lock inside): who is admitted, with which permissions. The
//!   admission behaviour writes it; the other behaviours, the record store, the forward
//!   resolver, listeners and blob fetches read it on every stream.
//! - `services::Services`: the registry (a mutex around the saved services and listeners,
//!   written by the API, read by the forward server's resolver), the provider cache and the
//!   cancellation tokens of the running listeners (each a short-held mutex).
//! - The blob store (redb, its own locking): written by the API, read by the blob server.
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
mod builder;
mod config;
mod confirmed;
pub(crate) mod error;
mod event_loop;
pub(crate) mod info;
mod keep;
pub(crate) mod keys;
mod limits;
mod metrics;
pub(crate) mod network;
mod path_aware;
mod security;
mod stream_metrics;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use libp2p::{Multiaddr, PeerId};
use mcc_records::did::SignedDocument;
use mcc_rpc::{CallError, Methods};
use prometheus_client::registry::Registry;
use serde_json::Value;

pub use self::addr::AddrError;
pub use self::admission::{
    Admission, AdmissionConfig, GuardedStore, REVOCATIONS_FILE, RevocationOutcome,
};
pub use self::behaviour::{Behaviour, BehaviourEvent};
pub use self::builder::{Builder, RecordStore};
pub use self::config::{
    Config, DEFAULT_PORT, MAX_AUTO_RELAYS, MdnsMode, MeshConfig, NatConfig, RecordsConfig,
    RelayLimits,
};
pub(crate) use self::error::error_chain;
pub use self::error::{CertificateError, Error};
pub(crate) use self::event_loop::Command;
pub use self::info::{
    AddrBookEntry, AdmissionInfo, CallOutcome, CertificateInfo, Direction, FoundRecord, NodeInfo,
    ObservedAddr, PeerInfo, PinTarget, Provider, PutOutcome, Reachability, RelayInfo,
    RelayServerInfo, StreamStats,
};
pub(crate) use self::keys::provider_key;
pub use self::limits::{DAEMON_MAX_MEMORY, LimitsConfig, MAX_STREAMS_PER_CONNECTION};
pub use self::network::Network;
use crate::blobs::Blobs;
use crate::routes::{Publisher, Routes, Subscription};
use crate::services::Services;
use crate::streams::{Listener, Stream, Streams};

/// Version of this crate, announced by identify and in the REST API.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub(crate) struct Inner {
    net: Network,
    services: Services,
    blobs: Blobs,
    streams: Streams,
    routes: Routes,
    admission: Admission,
    did: String,
    methods: Methods,
    registry: Arc<Registry>,
    /// Last-resort bound on a call, above the RPC request timeout.
    call_guard: Duration,
}

/// A cloneable handle to a running node.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<Inner>,
}

impl Node {
    /// Starts building a node.
    pub fn builder(config: Config) -> Builder {
        Builder::new(config)
    }

    pub fn peer_id(&self) -> PeerId {
        self.inner.net.peer_id()
    }

    pub fn label(&self) -> &str {
        self.inner.net.label()
    }

    /// The network handle every feature handle is built on.
    pub fn network(&self) -> &Network {
        &self.inner.net
    }

    /// Services, listeners and tunnels.
    pub fn services(&self) -> &Services {
        &self.inner.services
    }

    /// Blobs: add, fetch, read, delete, seed.
    pub fn blobs(&self) -> &Blobs {
        &self.inner.blobs
    }

    /// User streams by name (`/mcc/stream/1.0.0/<name>`): listen, open.
    pub fn streams(&self) -> &Streams {
        &self.inner.streams
    }

    /// Listens on the stream `name`: the listener yields every incoming `(PeerId, Stream)`
    /// until it is dropped (see [`crate::streams`]).
    pub fn listen_streams(&self, name: &str) -> Result<Listener, crate::streams::Error> {
        self.inner.streams.listen(name)
    }

    /// Opens the stream `name` to `peer` (dialing it if needed): a tokio
    /// `AsyncRead + AsyncWrite` on whatever connection reaches the peer.
    pub async fn open_stream(
        &self,
        peer: PeerId,
        name: &str,
    ) -> Result<Stream, crate::streams::Error> {
        self.inner.streams.open(peer, name).await
    }

    /// Routes: interest-filtered publish/subscribe (see [`crate::routes`]).
    pub fn routes(&self) -> &Routes {
        &self.inner.routes
    }

    /// A publisher on `route`: sends only to peers that announced an interest, and can wait
    /// for one ([`Publisher::wait_for_listener`]).
    pub fn publish(&self, route: &str) -> Result<Publisher, crate::routes::Error> {
        self.inner.routes.publish(route)
    }

    /// Subscribes to `route`: a `Stream` of messages, announced to every peer (now and later).
    pub fn subscribe(&self, route: &str) -> Result<Subscription, crate::routes::Error> {
        self.inner.routes.subscribe(route)
    }

    /// Certificate, permissions, admission state and revocation lists.
    pub fn admission(&self) -> &Admission {
        &self.inner.admission
    }

    /// The RPC methods this node serves; register more at runtime here.
    pub fn methods(&self) -> &Methods {
        &self.inner.methods
    }

    /// The Prometheus registry with libp2p's and mcc's metrics.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Registers the config file's services, announces saved ones, starts listeners and seeds
    /// the blobs stored here.
    async fn start_services(&self, config: &Config) -> Result<(), Error> {
        match self
            .services()
            .start(&config.services, &config.listeners)
            .await
        {
            Ok(()) => {}
            Err(crate::services::Error::Node(e)) => return Err(e),
            Err(e) => return Err(Error::Start(Box::new(e))),
        }
        match self.blobs().seed_stored().await {
            Ok(()) => Ok(()),
            Err(crate::blobs::Error::Node(e)) => Err(e),
            Err(e) => {
                tracing::warn!("cannot seed the stored blobs: {}", error_chain(&e));
                Ok(())
            }
        }
    }

    /// What the node says about itself.
    pub async fn info(&self) -> Result<NodeInfo, Error> {
        self.inner.net.info().await
    }

    /// The connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, Error> {
        self.inner.net.peers().await
    }

    /// The address book: every peer seen, its addresses, sources and dial backoff.
    pub async fn addrbook(&self) -> Result<Vec<AddrBookEntry>, Error> {
        self.inner.net.request(Command::AddrBook).await
    }

    /// Makes a peer persistent (redialled forever) or not. An address without peer id is
    /// dialled first (waiting up to 20 s for the connection).
    pub async fn pin(&self, target: PinTarget, persistent: bool) -> Result<AddrBookEntry, Error> {
        let fut = self.inner.net.request(|reply| Command::Pin {
            target,
            persistent,
            reply,
        });
        match tokio::time::timeout(Duration::from_secs(20), fut).await {
            Ok(r) => r?,
            Err(_) => Err(Error::Dial {
                addr: Multiaddr::empty(),
                reason: "timed out".to_string(),
            }),
        }
    }

    /// Dials an address (see [`addr::parse_dial`]) and waits for the connection.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, Error> {
        let fut = self.inner.net.request(|reply| Command::Dial {
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
        let result = if peer == self.peer_id() {
            self.inner
                .methods
                .invoke(peer, method, params)
                .await
                .map_err(CallError::Remote)
        } else {
            let fut = self.inner.net.call(peer, method, params);
            match tokio::time::timeout(self.inner.call_guard, fut).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(Error::Call(e))) => Err(e),
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
        let mut targets = self.inner.net.rpc_peers().await?;
        targets.sort();
        if include_self {
            targets.insert(0, self.peer_id());
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
        self.inner.net.put_record(key, value, ttl).await
    }

    /// Looks a record up (locally and in the DHT) and returns the best valid version.
    pub async fn get_record(&self, key: Vec<u8>) -> Result<FoundRecord, Error> {
        self.inner.net.get_record(key).await
    }

    /// This node's own copy of a record, without asking the network.
    pub async fn get_local_record(&self, key: Vec<u8>) -> Result<FoundRecord, Error> {
        let name = String::from_utf8_lossy(&key).into_owned();
        let record = self
            .inner
            .net
            .get_local_record(key)
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
        self.inner.net.closed().await
    }
}
