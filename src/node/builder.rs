//! [`Builder`]: builds and starts a node. [`Builder::spawn`] runs named steps: the identity,
//! the stores, the swarm, the event loop, then the servers and background tasks.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId, noise, tcp, yamux};
use mcc_records::did::SignedDocument;
use mcc_rpc::{Methods, RpcError};
use prometheus_client::registry::Registry;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::event_loop::{self, EventLoop};
use super::{
    Behaviour, Config, Error, GuardedStore, Inner, MdnsMode, Node, VERSION, addr, admission,
    error_chain, metrics,
};
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

fn resolve_label(config: &Config) -> Result<String, Error> {
    if let Some(l) = config.label.as_deref().and_then(crate::label::normalize) {
        return Ok(l);
    }
    // Keep a generated label across restarts, like the identity.
    let Some(dir) = &config.data_dir else {
        return Ok(crate::label::random());
    };
    let path = dir.join("label");
    if let Some(l) = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| crate::label::normalize(&s))
    {
        return Ok(l);
    }
    let l = crate::label::random();
    crate::fsutil::write_atomic(&path, l.as_bytes(), 0o600)
        .map_err(|source| Error::DataDir { path, source })?;
    Ok(l)
}
