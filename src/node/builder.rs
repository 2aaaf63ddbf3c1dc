//! [`Builder`]: builds and starts a node. [`Builder::spawn`] runs named steps: the identity,
//! the stores, the swarm, the event loop, then the servers and background tasks.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId, noise, tcp};
use mcc_records::did::SignedDocument;
use mcc_rpc::{Methods, RpcError};
use prometheus_client::registry::Registry;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::behaviour::BehaviourConfig;
use super::event_loop::{self, EventLoop};
use super::security::Tls;
use super::{Admission, Network};
use super::{
    AdmissionConfig, Behaviour, Config, Error, GuardedStore, Inner, MdnsMode, Node, VERSION, addr,
    admission, error_chain, metrics,
};
use crate::blobs::Blobs;
use crate::services::Services;

/// Builds and starts a node.
pub struct Builder {
    config: Config,
    keypair: Option<Keypair>,
    methods: Methods,
    registry: Registry,
}

impl Builder {
    pub(super) fn new(config: Config) -> Self {
        Builder {
            config,
            keypair: None,
            methods: Methods::new(),
            registry: Registry::default(),
        }
    }

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
    /// returned task ends when the event loop has stopped and every background task of the
    /// node (servers, admission task, listeners and their tunnels) has ended too.
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
        let id = identity(&config, keypair)?;
        let stores = open_stores(&config, id.peer_id)?;
        let node_metrics = metrics::NodeMetrics::new(&mut registry);
        let cert_metrics = node_metrics.certificate.clone();
        let built = build_swarm(
            &config,
            &id,
            stores.records,
            &stores.blobs,
            &methods,
            &mut registry,
        )?;
        let libp2p_metrics = libp2p::metrics::Metrics::new(&mut registry);
        let Built {
            mut swarm,
            gates,
            control,
            routes,
            bitswap,
            mdns_on,
            agent_version,
        } = built;
        crate::routes::register_metrics(&mut registry, routes.clone());
        super::stream_metrics::register(&mut registry, control.clone());

        let mut listeners = std::collections::HashSet::new();
        for addr in &config.listen {
            ensure_tcp_port_free(addr)?;
            let id = swarm.listen_on(addr.clone()).map_err(|e| Error::Listen {
                addr: addr.clone(),
                reason: error_chain(&e),
            })?;
            listeners.insert(id);
        }

        // Addresses the operator says peers can dial (port forwards, public IPs).
        for a in &config.nat.external_addrs {
            swarm.add_external_address(a.clone());
        }

        let forward_stats = mcc_forward::Stats::default();
        let (tx, rx) = mpsc::channel(256);
        let mut event_loop = EventLoop::new(
            swarm,
            rx,
            &config,
            event_loop::Info {
                label: id.label.clone(),
                agent_version,
                mdns: mdns_on,
                methods: methods.clone(),
                did: id.did.clone(),
                own_did_doc: id.own_did_doc,
                forward_stats: forward_stats.clone(),
                _store_tmp: stores.tmp,
            },
            libp2p_metrics,
            node_metrics,
        );
        event_loop.wait_listening(listeners).await?;

        // Every task of the node but the event loop; `stopped` tells them to end.
        let tasks = TaskTracker::new();
        let stopped = CancellationToken::new();
        let task = {
            let (tasks, stopped) = (tasks.clone(), stopped.clone());
            tokio::spawn(async move {
                event_loop.run(shutdown).await;
                stopped.cancel();
                tasks.close();
                tasks.wait().await;
            })
        };
        let net = Network::new(tx, control, id.peer_id, &id.label, id.certificate);
        let services = Services::new(
            net.clone(),
            stores.services,
            forward_stats,
            gates.clone(),
            tasks.clone(),
            stopped.clone(),
            config.forward.idle_timeout(),
        );
        let streams = crate::streams::Streams::new(net.clone(), gates.clone());
        let routes = crate::routes::Routes::new(net.clone(), routes);
        let blobs =
            Blobs::new(net.clone(), stores.blobs, gates, config.keep_blobs).with_bitswap(bitswap);
        let admission = Admission::new(
            net.clone(),
            id.admission.trusted_ca.clone(),
            config.data_dir.clone(),
            config.records.limits.max_value_size,
            cert_metrics,
        );
        tracing::info!(peer_id = %net.peer_id(), label = %net.label(), "node started");
        let node = Node {
            inner: Arc::new(Inner {
                net,
                services,
                blobs,
                streams,
                routes,
                admission,
                did: id.did,
                methods,
                registry: Arc::new(registry),
                call_guard: config.rpc.request_timeout() + Duration::from_secs(5),
            }),
        };
        start_servers(&node, &config, &tasks, &stopped);
        node.start_services(&config).await?;
        tasks.spawn(admission::admission_task(
            Arc::downgrade(&node.inner),
            stopped,
            id.admission.revocation_refresh,
        ));
        Ok((node, task))
    }
}

/// Who a node is: its key, label, certificate and DID.
struct Identity {
    keypair: Keypair,
    peer_id: PeerId,
    label: String,
    /// The admission config with the newest revocation list known (config or data folder).
    admission: AdmissionConfig,
    certificate: mcc_admission::Certificate,
    did: String,
    /// This node's own DID document, signed, when it publishes one.
    own_did_doc: Option<SignedDocument>,
}

/// Step 1: the data folder, the key, the label, the certificate and the DID document.
fn identity(config: &Config, keypair: Option<Keypair>) -> Result<Identity, Error> {
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
        None => resolve_label(config)?,
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
    Ok(Identity {
        keypair,
        peer_id,
        label,
        admission: admission_config,
        certificate,
        did,
        own_did_doc,
    })
}

/// What a node keeps on disk.
struct Stores {
    records: mcc_records::ValidatingStore<crate::storage::records::RedbStore>,
    /// The temp folder holding the stores when there is no data folder.
    tmp: Option<tempfile::TempDir>,
    blobs: Arc<crate::storage::blobs::BlobStore>,
    services: crate::services::Registry,
}

/// Step 2: the record store, the blob store and the saved services and listeners. The two
/// redb files open side by side: each open writes and fsyncs its header, and a node is ready
/// sooner when those waits overlap.
fn open_stores(config: &Config, peer_id: PeerId) -> Result<Stores, Error> {
    let (state_dir, tmp) = match &config.data_dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::tempdir().map_err(|source| Error::DataDir {
                path: std::env::temp_dir(),
                source,
            })?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let (records, blobs) = std::thread::scope(|s| {
        let blobs = s.spawn(|| crate::storage::blobs::BlobStore::open(&state_dir.join("blobs")));
        let records = open_record_store(config, &state_dir, peer_id);
        let blobs = blobs
            .join()
            .map_err(|_| Error::Store("opening the blob store panicked".into()))
            .and_then(|r| r.map_err(|e| Error::Store(e.to_string())));
        (records, blobs)
    });
    let (records, blobs) = (records?, Arc::new(blobs?));
    let services = crate::services::Registry::load(config.data_dir.clone())
        .map_err(|e| Error::Start(Box::new(e)))?;
    Ok(Stores {
        records,
        tmp,
        blobs,
        services,
    })
}

/// The swarm and what the rest of the node needs from its behaviours.
struct Built {
    swarm: libp2p::Swarm<Behaviour>,
    gates: mcc_admission::Gates,
    control: mcc_streams::Control,
    routes: mcc_routes::Handle,
    bitswap: mcc_bitswap::Handle,
    mdns_on: bool,
    agent_version: String,
}

/// Step 3: the transports and the composed behaviour, built inside the swarm builder.
fn build_swarm(
    config: &Config,
    id: &Identity,
    records: mcc_records::ValidatingStore<crate::storage::records::RedbStore>,
    blobs: &Arc<crate::storage::blobs::BlobStore>,
    methods: &Methods,
    registry: &mut Registry,
) -> Result<Built, Error> {
    let agent_version = format!("mcc/{VERSION} ({})", id.label);
    let mdns_on = match config.mdns {
        MdnsMode::On => true,
        MdnsMode::Off => false,
        MdnsMode::Auto => config.listen.iter().any(|a| !addr::is_loopback(a)),
    };
    let admission_config = &id.admission;
    let admission = mcc_admission::Behaviour::new(
        id.certificate.clone(),
        mcc_admission::Config::new()
            .with_trusted_ca(admission_config.trusted_ca.clone())
            .with_revocations(admission_config.revocations.clone())
            .with_timeout(admission_config.timeout)
            .with_ban_duration(admission_config.ban_duration)
            .with_recheck_interval(admission_config.recheck_interval),
    );
    let gates = admission.gates();
    let store = GuardedStore::new(records, gates.clone())
        .with_rendezvous(config.rendezvous.as_deref().map(super::provider_key));
    let stream = mcc_streams::Behaviour::new(mcc_streams::Config::new());
    let control = stream.control();
    let routes = routes_behaviour(config, id.peer_id, &gates);
    let routes_handle = routes.handle();
    let bitswap = bitswap_behaviour(id, blobs);
    let bitswap_handle = bitswap.handle();
    let behaviour_config = BehaviourConfig {
        admission,
        store,
        stream,
        agent_version: agent_version.clone(),
        methods: methods.clone(),
        mdns: mdns_on,
        kad_protocol: config.kad_protocol.clone(),
        dht_alpha: config.dht_alpha,
        max_record_size: config.records.limits.max_value_size,
        ping_interval: config.ping_interval,
        rpc: config.rpc.clone(),
        nat: config.nat.clone(),
        pex: config.mesh.pex,
        routes,
        bitswap,
        limits: config.limits.clone(),
    };
    let yamux = config.limits.yamux();
    let relay_yamux = yamux.clone();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(id.keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            // TLS (AES-GCM) between mcc nodes, Noise for peers that only speak it.
            (Tls::new, noise::Config::new),
            move || yamux,
        )
        .map_err(|e| Error::Transport(e.to_string()))?
        .with_quic_config(|mut c| {
            c.max_concurrent_stream_limit =
                u32::try_from(config.limits.max_streams_per_connection).unwrap_or(u32::MAX);
            c
        })
        .with_dns()
        .map_err(|e| Error::Transport(e.to_string()))?
        .with_relay_client((Tls::new, noise::Config::new), move || relay_yamux)
        .map_err(|e| Error::Transport(e.to_string()))?
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key, relay_client| {
            Behaviour::new(key, relay_client, behaviour_config)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        })
        .map_err(Error::Behaviour)?
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(config.idle_connection_timeout)
                .with_max_negotiating_inbound_streams(config.limits.max_negotiating_streams)
                // Optimistic negotiation: only the raw streams use it, on protocols the peer
                // listed; every other behaviour is `Confirmed` (see node::behaviour).
                .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
        })
        .build();
    Ok(Built {
        swarm,
        gates,
        control,
        routes: routes_handle,
        bitswap: bitswap_handle,
        mdns_on,
        agent_version,
    })
}

/// The routes behaviour; peers' interests and messages need `routes:subscribe` and
/// `routes:publish` (every peer has both in an open network).
fn routes_behaviour(
    config: &Config,
    peer_id: PeerId,
    gates: &mcc_admission::Gates,
) -> mcc_routes::Behaviour {
    let gates = gates.clone();
    let authorizer: mcc_routes::Authorizer = Arc::new(move |peer, action, _route| {
        let permission = match action {
            mcc_routes::Action::Publish => mcc_admission::Permission::RoutesPublish,
            mcc_routes::Action::Subscribe => mcc_admission::Permission::RoutesSubscribe,
        };
        gates.allows(peer, permission)
    });
    mcc_routes::Behaviour::new(
        peer_id,
        config.routes.clone().with_authorizer(Some(authorizer)),
    )
}

/// The Bitswap behaviour: it serves the blob store's blocks to admitted peers when this
/// node's certificate grants `blobs:seed` (as the blob server), and nothing otherwise.
fn bitswap_behaviour(
    id: &Identity,
    blobs: &Arc<crate::storage::blobs::BlobStore>,
) -> mcc_bitswap::Behaviour {
    let seeds = id
        .certificate
        .permissions()
        .allows(mcc_admission::Permission::BlobsSeed);
    let source = seeds.then(|| Arc::clone(blobs) as Arc<dyn mcc_bitswap::BlockSource>);
    mcc_bitswap::Behaviour::new(mcc_bitswap::Config::new().with_block_source(source))
}

/// Step 4: the servers, owned by `tasks` and ended by `stopped`: the forward server and the
/// blob server (with `blobs:seed`).
fn start_servers(node: &Node, config: &Config, tasks: &TaskTracker, stopped: &CancellationToken) {
    let services = node.services();
    let control = node.network().control();
    {
        let (resolver, stats, stopped) = (
            services.resolver(),
            services.stats().clone(),
            stopped.clone(),
        );
        let server = mcc_forward::serve(control.clone(), resolver, config.forward.clone(), stats);
        tasks.spawn(async move {
            tokio::select! {
                _ = stopped.cancelled() => {}
                r = server => if let Err(e) = r {
                    tracing::error!("forwarding server: {e}");
                }
            }
        });
    }
    if node
        .admission()
        .certificate()
        .permissions()
        .allows(mcc_admission::Permission::BlobsSeed)
    {
        let server = mcc_blobs::transfer::serve(
            control,
            Arc::clone(node.blobs().store()) as Arc<dyn mcc_blobs::BlockStore>,
            mcc_blobs::transfer::ServeStats::default(),
        );
        let stopped = stopped.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = stopped.cancelled() => {}
                r = server => if let Err(e) = r {
                    tracing::error!("blob server: {e}");
                }
            }
        });
    }
}

/// The validated, persistent record store: `<dir>/records.redb` (the data folder, or a temp
/// folder that lives as long as the node when there is none).
fn open_record_store(
    config: &Config,
    dir: &std::path::Path,
    peer_id: PeerId,
) -> Result<mcc_records::ValidatingStore<crate::storage::records::RedbStore>, Error> {
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
    Ok(store)
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
