//! Services: advertise local services by name, find providers, open tunnels to them, and run
//! local listeners that forward to a service somewhere in the mesh.
//!
//! [`Services`] is the handle (over the node's [`Network`], as `node.services()`), with its
//! [`Error`]; [`Registry`] keeps the saved services and listeners; [`Tunnel`] is one tunnel.
//!
//! Tunnel bytes flow between a local TCP socket and a libp2p stream (`/mcc/forward/1.0.0`,
//! crate `mcc-forward`) in their own tasks, never through the node's event loop.

mod error;
pub mod registry;
mod tunnel;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

pub use self::error::Error;
pub use self::registry::{Address, Listener, Registry, Scheme, Service};
pub use self::tunnel::Tunnel;
pub use crate::node::info::Provider;
use crate::node::network::Network;

/// How long a provider list is reused before asking the DHT again.
const PROVIDER_CACHE: Duration = Duration::from_secs(10);
/// Time to open a tunnel to one provider before trying the next.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The provider key of a service: sha2-256 multihash of `/mcc/service/<name>`.
pub fn service_key(name: &str) -> libp2p::kad::RecordKey {
    crate::node::keys::provider_key(&format!("/mcc/service/{name}"))
}

/// The provider a listener is pinned to (`listen add --peer`, the `peer` of a listener).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderPin {
    /// A peer id, given as such or as its `did:key:` DID.
    Peer(PeerId),
    /// A node label: the connected peers whose certificate carries it. Under `--trust-ca` that
    /// label is signed by the CA; in an open network it is self-chosen (and only announced
    /// through identify), so it pins nothing against an attacker.
    Label(String),
}

impl ProviderPin {
    /// Parses a peer id, a `did:key:` DID (the node's peer id), or a label (as labels are
    /// written: lowercase letters and digits).
    pub fn parse(s: &str) -> Result<ProviderPin, Error> {
        let s = s.trim();
        if let Ok(peer) = s.parse::<PeerId>() {
            return Ok(ProviderPin::Peer(peer));
        }
        if s.starts_with("did:") {
            let key = mcc_records::did::public_from_did(s).map_err(|source| Error::InvalidDid {
                did: s.to_string(),
                source,
            })?;
            let key = libp2p::identity::PublicKey::from(key);
            return Ok(ProviderPin::Peer(key.to_peer_id()));
        }
        match mcc_admission::normalize_label(s) {
            Some(label) if label == s => Ok(ProviderPin::Label(label)),
            _ => Err(Error::InvalidPin(s.to_string())),
        }
    }
}

/// The services of a node: a cloneable handle over the node's [`Network`] and the state its
/// clones share.
#[derive(Clone)]
pub struct Services {
    net: Network,
    state: Arc<State>,
}

/// State shared by the clones of [`Services`], the forward server's resolver and the
/// listener tasks.
struct State {
    registry: Registry,
    stats: mcc_forward::Stats,
    providers: Mutex<HashMap<String, (Instant, Vec<PeerId>)>>,
    listeners: Mutex<HashMap<String, CancellationToken>>,
    /// Cancelled when the node stops.
    stopped: CancellationToken,
    /// Admitted peers and their permissions.
    gates: mcc_admission::Gates,
    /// Owns the listener tasks and their tunnels, with the node's other tasks.
    tasks: tokio_util::task::TaskTracker,
    /// Listener connections through which nothing passed for this long are closed (both the
    /// local connection and the tunnel); `None`: never.
    tunnel_idle_timeout: Option<Duration>,
}

impl Services {
    /// The services of a node on `net`: `registry` holds the saved ones, `gates` who may
    /// consume and provide, `tasks` owns the listeners and `stopped` ends them; listener
    /// connections idle (no byte in either direction) for `tunnel_idle_timeout` are closed.
    pub(crate) fn new(
        net: Network,
        registry: Registry,
        stats: mcc_forward::Stats,
        gates: mcc_admission::Gates,
        tasks: tokio_util::task::TaskTracker,
        stopped: CancellationToken,
        tunnel_idle_timeout: Option<Duration>,
    ) -> Self {
        Self {
            net,
            state: Arc::new(State {
                gates,
                tasks,
                registry,
                stats,
                providers: Mutex::new(HashMap::new()),
                listeners: Mutex::new(HashMap::new()),
                stopped,
                tunnel_idle_timeout,
            }),
        }
    }

    /// The counters of the tunnels this node serves.
    pub(crate) fn stats(&self) -> &mcc_forward::Stats {
        &self.state.stats
    }

    /// Resolves a service name for the forwarding server.
    pub fn resolver(&self) -> Arc<dyn mcc_forward::Resolver> {
        let this = Arc::clone(&self.state);
        Arc::new(move |peer: &PeerId, name: &str| {
            if !this
                .gates
                .allows(peer, mcc_admission::Permission::ServicesConsume)
            {
                return Err(mcc_forward::Refusal::Forbidden);
            }
            this.registry
                .service(name)
                .and_then(|s| Address::parse(&s.address).ok())
                .map(|a| a.host_port)
                .ok_or(mcc_forward::Refusal::UnknownService)
        })
    }
}

impl Services {
    /// Registers the config file's services and listeners, announces the saved services and
    /// starts every listener (one that cannot bind is logged, not fatal).
    pub(crate) async fn start(
        &self,
        services: &[(String, String)],
        listeners: &[(String, String, Option<String>)],
    ) -> Result<(), Error> {
        for (name, address) in services {
            self.add_from(name, address, true).await?;
        }
        for s in self.list().into_iter().filter(|s| !s.from_config) {
            self.net.provide(service_key(&s.name)).await?;
        }
        let mut all = self.listeners();
        for (service, address, peer) in listeners {
            let l = Listener {
                id: format!("config-{}", all.len()),
                service: service.clone(),
                address: address.clone(),
                peer: peer.clone(),
                from_config: true,
            };
            self.state.registry.add_listener(l.clone())?;
            all.push(l);
        }
        for l in all {
            // A saved listener that cannot bind must not keep the node from starting.
            if let Err(e) = self.start_listener(&l).await {
                tracing::error!(address = %l.address, service = %l.service, "listener not started: {e}");
            }
        }
        Ok(())
    }

    /// The services this node offers.
    pub fn list(&self) -> Vec<Service> {
        self.state.registry.services()
    }

    /// Registers (or replaces) a local service and announces it in the DHT.
    pub async fn add(&self, name: &str, address: &str) -> Result<Service, Error> {
        self.add_from(name, address, false).await
    }

    async fn add_from(
        &self,
        name: &str,
        address: &str,
        from_config: bool,
    ) -> Result<Service, Error> {
        self.net.may(mcc_admission::Permission::ServicesProvide)?;
        let service = Service {
            name: name.to_string(),
            address: address.to_string(),
            from_config,
        };
        self.state.registry.add_service(service.clone())?;
        self.net.provide(service_key(name)).await?;
        Ok(service)
    }

    /// Removes a local service and withdraws its announcement.
    pub async fn remove(&self, name: &str) -> Result<Service, Error> {
        let old = self.state.registry.remove_service(name)?;
        self.net.stop_providing(service_key(name)).await?;
        Ok(old)
    }

    /// Finds the providers of a service: this node first if it offers it, then connected peers
    /// by round-trip time, then the others.
    pub async fn providers(&self, name: &str) -> Result<Vec<Provider>, Error> {
        registry::validate_name(name)?;
        let local = self.state.registry.service(name).is_some();
        let out = self.net.ranked_providers(service_key(name), local).await?;
        let ids: Vec<PeerId> = out.iter().filter(|p| !p.local).map(|p| p.peer_id).collect();
        self.cache_providers(name, &ids);
        Ok(out)
    }

    /// The providers of a service this node holds records of itself (no lookup): what it
    /// answers other peers' provider lookups with.
    pub async fn stored_providers(&self, name: &str) -> Result<Vec<Provider>, Error> {
        registry::validate_name(name)?;
        let key = service_key(name);
        let ids = self.net.local_providers(key).await?;
        let me = self.net.peer_id();
        let peers = self.net.peers().await?;
        Ok(ids
            .into_iter()
            .map(|id| {
                let p = peers.iter().find(|p| p.peer_id == id);
                Provider {
                    peer_id: id,
                    label: if id == me {
                        Some(self.net.label().to_string())
                    } else {
                        p.and_then(|p| p.label.clone())
                    },
                    local: id == me,
                    connected: id == me || p.is_some(),
                    rtt_ms: p.and_then(|p| p.rtt_ms),
                    addrs: p.map(|p| p.addrs.clone()).unwrap_or_default(),
                }
            })
            .collect())
    }

    fn cache_providers(&self, name: &str, ids: &[PeerId]) {
        if let Ok(mut c) = self.state.providers.lock() {
            c.insert(name.to_string(), (Instant::now(), ids.to_vec()));
        }
    }

    /// Provider order for a new tunnel, from a fresh-enough cache or the DHT.
    async fn tunnel_candidates(
        &self,
        name: &str,
        refresh: bool,
    ) -> Result<Vec<Option<PeerId>>, Error> {
        let cached = self
            .state
            .providers
            .lock()
            .ok()
            .and_then(|c| c.get(name).cloned())
            .filter(|(at, ids)| !refresh && at.elapsed() < PROVIDER_CACHE && !ids.is_empty());
        let local = self.state.registry.service(name).is_some();
        let mut out: Vec<Option<PeerId>> = Vec::new();
        if local {
            out.push(None);
        }
        match cached {
            Some((_, ids)) => {
                // Keep the cheap path cheap: order cached ids by what we know now.
                let peers = self.net.peers().await?;
                let mut ids = ids;
                ids.sort_by(|a, b| {
                    let rtt = |id: &PeerId| {
                        peers
                            .iter()
                            .find(|p| p.peer_id == *id)
                            .map(|p| p.rtt_ms.unwrap_or(f64::MAX / 2.0))
                            .unwrap_or(f64::MAX)
                    };
                    rtt(a).total_cmp(&rtt(b))
                });
                out.extend(ids.into_iter().map(Some));
            }
            None => out.extend(
                self.providers(name)
                    .await?
                    .into_iter()
                    .filter(|p| !p.local)
                    .map(|p| Some(p.peer_id)),
            ),
        }
        Ok(out)
    }

    /// Opens a tunnel to a provider of `service` (or to `peer` only), trying providers in order
    /// until one accepts.
    pub async fn open_tunnel(&self, service: &str, peer: Option<PeerId>) -> Result<Tunnel, Error> {
        registry::validate_name(service)?;
        let mut last_error = None;
        for refresh in [false, true] {
            let candidates = match peer {
                Some(p) if p == self.net.peer_id() => vec![None],
                Some(p) => vec![Some(p)],
                None => self.tunnel_candidates(service, refresh).await?,
            };
            for candidate in candidates {
                match self.open_one(service, candidate).await {
                    Ok(t) => return Ok(t),
                    Err(e) => {
                        tracing::debug!(service, ?candidate, "provider failed: {e}");
                        last_error = Some(e);
                    }
                }
            }
            if peer.is_some() {
                break;
            }
        }
        Err(match last_error {
            Some(e) => e,
            None => Error::NoProvider(service.to_string()),
        })
    }

    /// Opens a tunnel to the provider `pin` names: that peer, or the connected peers carrying
    /// that label (this node too, if it carries it and offers the service), nearest first.
    pub async fn open_pinned_tunnel(
        &self,
        service: &str,
        pin: &ProviderPin,
    ) -> Result<Tunnel, Error> {
        let label = match pin {
            ProviderPin::Peer(peer) => return self.open_tunnel(service, Some(*peer)).await,
            ProviderPin::Label(label) => label,
        };
        registry::validate_name(service)?;
        let mut candidates = Vec::new();
        if self.net.label() == label.as_str() && self.state.registry.service(service).is_some() {
            candidates.push(None);
        }
        candidates.extend(self.peers_labelled(label).await?.into_iter().map(Some));
        let mut last_error = None;
        for candidate in candidates {
            match self.open_one(service, candidate).await {
                Ok(t) => return Ok(t),
                Err(e) => {
                    tracing::debug!(service, ?candidate, "provider failed: {e}");
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| {
            Error::NoProvider(format!("{service} (no connected peer labelled {label})"))
        }))
    }

    /// Connected peers labelled `label`, nearest first: by their verified certificate under
    /// `--trust-ca`, by the label they announce in an open network.
    async fn peers_labelled(&self, label: &str) -> Result<Vec<PeerId>, Error> {
        let closed = self.state.gates.is_enforcing();
        let mut peers: Vec<_> = self
            .net
            .peers()
            .await?
            .into_iter()
            .filter(|p| {
                if closed {
                    p.certificate.as_ref().is_some_and(|c| c.label == label)
                } else {
                    p.label.as_deref() == Some(label)
                }
            })
            .collect();
        peers.sort_by(|a, b| {
            a.rtt_ms
                .unwrap_or(f64::MAX)
                .total_cmp(&b.rtt_ms.unwrap_or(f64::MAX))
        });
        Ok(peers.into_iter().map(|p| p.peer_id).collect())
    }

    async fn open_one(&self, service: &str, peer: Option<PeerId>) -> Result<Tunnel, Error> {
        match peer {
            None => {
                let svc = self
                    .state
                    .registry
                    .service(service)
                    .ok_or_else(|| Error::NoProvider(service.to_string()))?;
                let addr = Address::parse(&svc.address)?;
                let tcp = tokio::time::timeout(OPEN_TIMEOUT, TcpStream::connect(&addr.host_port))
                    .await
                    .map_err(|_| Error::ConnectTimeout {
                        address: addr.host_port.clone(),
                    })?
                    .map_err(|source| Error::Connect {
                        address: addr.host_port.clone(),
                        source,
                    })?;
                let _ = tcp.set_nodelay(true);
                Ok(Tunnel::Local(tcp))
            }
            Some(p) => {
                let mut control = self.net.control();
                let tunnel = mcc_forward::open(&mut control, p, service, OPEN_TIMEOUT)
                    .await
                    .map_err(Error::Open)?;
                // The stream only opens once the peer is admitted, so its certificate is known.
                if !self
                    .state
                    .gates
                    .allows(&p, mcc_admission::Permission::ServicesProvide)
                {
                    return Err(Error::ProviderForbidden(p));
                }
                Ok(Tunnel::Remote(tunnel))
            }
        }
    }

    /// The listeners of this node.
    pub fn listeners(&self) -> Vec<Listener> {
        self.state.registry.listeners()
    }

    /// Starts a local listener (`tcp://127.0.0.1:5000`) that forwards every connection to a
    /// provider of `service` (or only to the provider `peer` names: a peer id, a `did:key:`
    /// DID or a label, see [`ProviderPin`]). It is saved and started again after a restart.
    pub async fn add_listener(
        &self,
        service: &str,
        address: &str,
        peer: Option<&str>,
    ) -> Result<Listener, Error> {
        if let Some(p) = peer {
            ProviderPin::parse(p)?;
        }
        let listener = Listener {
            id: new_listener_id(),
            service: service.to_string(),
            address: address.to_string(),
            peer: peer.map(|p| p.trim().to_string()),
            from_config: false,
        };
        self.start_listener(&listener).await?;
        if let Err(e) = self.state.registry.add_listener(listener.clone()) {
            self.stop_listener(&listener.id);
            return Err(e.into());
        }
        Ok(listener)
    }

    /// Stops and forgets a listener.
    pub fn remove_listener(&self, id: &str) -> Result<Listener, Error> {
        let old = self.state.registry.remove_listener(id)?;
        self.stop_listener(id);
        Ok(old)
    }

    fn stop_listener(&self, id: &str) {
        if let Some(token) = self
            .state
            .listeners
            .lock()
            .ok()
            .and_then(|mut l| l.remove(id))
        {
            token.cancel();
        }
    }

    /// Binds and runs a listener's accept loop.
    async fn start_listener(&self, listener: &Listener) -> Result<(), Error> {
        registry::validate_name(&listener.service)?;
        let addr = Address::parse(&listener.address)?;
        if addr.scheme != Scheme::Tcp {
            return Err(registry::Error::InvalidAddress {
                address: listener.address.clone(),
                reason: "a listener address is tcp://host:port".into(),
            }
            .into());
        }
        let pin = listener
            .peer
            .as_deref()
            .map(ProviderPin::parse)
            .transpose()?;
        let socket = tokio::net::TcpListener::bind(&addr.host_port)
            .await
            .map_err(|source| Error::ListenerBind {
                address: listener.address.clone(),
                source,
            })?;
        let token = self.state.stopped.child_token();
        if let Ok(mut l) = self.state.listeners.lock() {
            l.insert(listener.id.clone(), token.clone());
        }
        let services = self.clone();
        let service = listener.service.clone();
        tracing::info!(address = %listener.address, %service, "listener started");
        let tasks = self.state.tasks.clone();
        self.state.tasks.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = token.cancelled() => break,
                    a = socket.accept() => a,
                };
                let (tcp, from) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("listener accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let services = services.clone();
                let service = service.clone();
                let token = token.clone();
                let idle = services.state.tunnel_idle_timeout;
                let pin = pin.clone();
                tasks.spawn(async move {
                    let opened = match &pin {
                        Some(pin) => services.open_pinned_tunnel(&service, pin).await,
                        None => services.open_tunnel(&service, None).await,
                    };
                    let tunnel = match opened {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::warn!(%from, %service, "no tunnel: {e}");
                            return;
                        }
                    };
                    tokio::select! {
                        _ = token.cancelled() => {}
                        r = mcc_forward::pipe_with_idle_timeout(tcp, tunnel, idle) => {
                            if let Err(e) = r {
                                tracing::debug!(%from, %service, "tunnel ended: {e}");
                            }
                        }
                    }
                });
            }
            tracing::info!(%service, "listener stopped");
        });
        Ok(())
    }
}

fn new_listener_id() -> String {
    use rand::Rng;
    format!("{:08x}", rand::thread_rng().r#gen::<u32>())
}
