//! The event loop: the only owner of the `Swarm`.

mod records;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::kad::{self, GetClosestPeersOk, GetProvidersOk, QueryId, QueryResult, RecordKey};
use libp2p::metrics::Recorder;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identify, mdns, ping};
use mcc_rpc::{CallError, OutboundRequestId};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use self::records::{PendingGet, PendingPut};
use super::metrics::NodeMetrics;
use super::{
    Behaviour, BehaviourEvent, Config, Direction, Error, NodeInfo, PeerInfo, VERSION, addr,
};

/// Old path of [`crate::node::provider_key`], which now lives in node/keys.rs.
pub(crate) use super::keys::provider_key;

/// How often boot addresses are dialed again while the node has no peer at all.
const BOOT_RETRY: Duration = Duration::from_secs(5);
/// How often expired records are swept from the store (kad also drops them when read).
const EXPIRY_SWEEP: Duration = Duration::from_secs(600);
/// Announce the rendezvous key again at least this often.
const REANNOUNCE: Duration = Duration::from_secs(600);
/// Most rendezvous peers remembered (provider records are announced by peers: bounded).
const MAX_APP_PEERS: usize = 1024;
/// Most address lookups of rendezvous peers in flight at once.
const MAX_ADDRESS_LOOKUPS: usize = 8;
/// A rendezvous peer's address is looked up at most this often.
const ADDRESS_LOOKUP_RETRY: Duration = Duration::from_secs(300);
/// Most providers one provider lookup collects.
const MAX_FOUND_PROVIDERS: usize = 256;

/// Rendezvous peers found so far, and when each was last looked up in the DHT; both bounded
/// (review L2: provider records are announced by peers, so each new one must not cost
/// memory or a DHT query forever).
#[derive(Debug, Default)]
struct AppPeers {
    peers: HashSet<PeerId>,
    looked_up: HashMap<PeerId, Instant>,
}

impl AppPeers {
    fn contains(&self, peer: &PeerId) -> bool {
        self.peers.contains(peer)
    }

    fn len(&self) -> usize {
        self.peers.len()
    }

    /// Remembers `peer`; when full, first forgets the peers `keep` does not want (e.g. those
    /// not connected). `Some(new)` if it is remembered, `None` if there is no room.
    fn insert(&mut self, peer: PeerId, keep: impl Fn(&PeerId) -> bool) -> Option<bool> {
        if self.peers.contains(&peer) {
            return Some(false);
        }
        if self.peers.len() >= MAX_APP_PEERS {
            self.peers.retain(|p| keep(p));
            let peers = &self.peers;
            self.looked_up.retain(|p, _| peers.contains(p));
        }
        if self.peers.len() >= MAX_APP_PEERS {
            return None;
        }
        self.peers.insert(peer);
        Some(true)
    }

    /// Whether an address lookup of `peer` may start now (it is a rendezvous peer, was not
    /// looked up recently, and fewer than `in_flight` lookups run); records it if so.
    fn may_look_up(&mut self, peer: PeerId, in_flight: usize, now: Instant) -> bool {
        if !self.peers.contains(&peer) || in_flight >= MAX_ADDRESS_LOOKUPS {
            return false;
        }
        if self
            .looked_up
            .get(&peer)
            .is_some_and(|at| now.duration_since(*at) < ADDRESS_LOOKUP_RETRY)
        {
            return false;
        }
        self.looked_up
            .retain(|_, at| now.duration_since(*at) < ADDRESS_LOOKUP_RETRY);
        self.looked_up.insert(peer, now);
        true
    }
}

pub(crate) enum Command {
    Info(oneshot::Sender<NodeInfo>),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    /// Connected peers that (as far as we know) speak the RPC protocol.
    RpcPeers(oneshot::Sender<Vec<PeerId>>),
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, Error>>,
    },
    Call {
        peer: PeerId,
        method: String,
        params: Value,
        reply: oneshot::Sender<Result<Value, CallError>>,
    },
    PutRecord {
        key: Vec<u8>,
        value: Vec<u8>,
        ttl: Option<Duration>,
        reply: oneshot::Sender<Result<super::PutOutcome, Error>>,
    },
    GetRecord {
        key: Vec<u8>,
        reply: oneshot::Sender<Result<super::FoundRecord, Error>>,
    },
    /// Announce this node as a provider of `key` (kept announced until withdrawn).
    Provide {
        key: RecordKey,
    },
    /// Withdraw a provider announcement.
    StopProviding {
        key: RecordKey,
    },
    /// Find the providers of `key` (connected to as they are found).
    GetProviders {
        key: RecordKey,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    /// This node's own copy only.
    GetLocalRecord {
        key: Vec<u8>,
        reply: oneshot::Sender<Option<libp2p::kad::Record>>,
    },
    /// The providers of `key` in this node's own store (no lookup).
    GetLocalProviders {
        key: RecordKey,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    /// Admission state.
    Admission(oneshot::Sender<super::AdmissionInfo>),
    /// Install a newer revocation list: `Ok(true)` if applied.
    SetRevocations {
        list: Box<mcc_admission::RevocationList>,
        reply: oneshot::Sender<Result<bool, mcc_admission::CertError>>,
    },
}

/// Static facts about the node the loop reports.
pub(crate) struct Info {
    pub label: String,
    pub agent_version: String,
    pub mdns: bool,
    pub methods: mcc_rpc::Methods,
    pub did: String,
    /// This node's own signed DID document, published at start.
    pub own_did_doc: Option<mcc_records::did::SignedDocument>,
    /// Counters of the forwarding server, for metrics.
    pub forward_stats: mcc_forward::Stats,
    /// Keeps the temp folder of a node without data folder alive.
    pub _store_tmp: Option<tempfile::TempDir>,
}

struct PeerState {
    /// Open connections: remote address and direction.
    connections: HashMap<ConnectionId, (Multiaddr, Direction, Instant)>,
    listen_addrs: Vec<Multiaddr>,
    rtt: Option<Duration>,
    agent_version: Option<String>,
    protocols: Vec<StreamProtocol>,
}

impl PeerState {
    fn new() -> Self {
        Self {
            connections: HashMap::new(),
            listen_addrs: Vec::new(),
            rtt: None,
            agent_version: None,
            protocols: Vec::new(),
        }
    }
}

/// The label an mcc node puts in its agent version: `mcc/<version> (<label>)`.
fn label_of(agent: &str) -> Option<String> {
    let rest = agent.strip_prefix("mcc/")?;
    let (_, tail) = rest.split_once(" (")?;
    mcc_admission::normalize_label(tail.strip_suffix(')')?)
}

pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    info: Info,
    kad_protocol: StreamProtocol,
    rpc_protocol: StreamProtocol,
    rendezvous: Option<(String, RecordKey)>,
    rendezvous_interval: Duration,
    boot: Vec<Multiaddr>,
    started: Instant,
    peers: HashMap<PeerId, PeerState>,
    /// Providers of the rendezvous key seen so far (same application).
    app_peers: AppPeers,
    pending_calls: HashMap<OutboundRequestId, oneshot::Sender<Result<Value, CallError>>>,
    pending_dials: HashMap<ConnectionId, (Multiaddr, oneshot::Sender<Result<PeerId, Error>>)>,
    /// Lookups of a rendezvous peer's addresses, started when we could not dial it.
    address_lookups: HashMap<QueryId, PeerId>,
    announced: Option<(Instant, usize)>,
    pending_gets: HashMap<QueryId, PendingGet>,
    /// Keys this node provides (rendezvous and services), announced again when due.
    provided: HashSet<RecordKey>,
    pending_providers: HashMap<QueryId, (HashSet<PeerId>, oneshot::Sender<Vec<PeerId>>)>,
    pending_puts: HashMap<QueryId, PendingPut>,
    replication: records::Replication,
    record_max_value: usize,
    get_quorum: usize,
    libp2p_metrics: libp2p::metrics::Metrics,
    metrics: NodeMetrics,
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        config: &Config,
        info: Info,
        libp2p_metrics: libp2p::metrics::Metrics,
        metrics: NodeMetrics,
    ) -> Self {
        let rendezvous = config.rendezvous.clone().map(|k| {
            let key = provider_key(&k);
            (k, key)
        });
        Self {
            swarm,
            commands,
            info,
            kad_protocol: config.kad_protocol.clone(),
            rpc_protocol: config.rpc.protocol().clone(),
            rendezvous,
            rendezvous_interval: config.rendezvous_interval,
            boot: config.boot.clone(),
            started: Instant::now(),
            peers: HashMap::new(),
            app_peers: AppPeers::default(),
            pending_calls: HashMap::new(),
            pending_dials: HashMap::new(),
            address_lookups: HashMap::new(),
            announced: None,
            pending_gets: HashMap::new(),
            provided: HashSet::new(),
            pending_providers: HashMap::new(),
            pending_puts: HashMap::new(),
            replication: records::Replication::new(
                config.records.replication_interval,
                config.records.publication_interval,
            ),
            record_max_value: config.records.limits.max_value_size,
            get_quorum: config.records.get_quorum.get(),
            libp2p_metrics,
            metrics,
        }
    }

    /// Drives the swarm until each listener reported an address (or failed), so addresses are
    /// known when `spawn` returns.
    pub(crate) async fn wait_listening(
        &mut self,
        mut pending: HashSet<ListenerId>,
    ) -> Result<(), Error> {
        let deadline = tokio::time::sleep(Duration::from_secs(10));
        tokio::pin!(deadline);
        while !pending.is_empty() {
            tokio::select! {
                event = self.swarm.select_next_some() => {
                    match &event {
                        SwarmEvent::NewListenAddr { listener_id, .. } => {
                            pending.remove(listener_id);
                        }
                        SwarmEvent::ListenerClosed { addresses, reason: Err(e), .. } => {
                            return Err(Error::Listen {
                                addr: addresses.first().cloned().unwrap_or_else(Multiaddr::empty),
                                reason: e.to_string(),
                            });
                        }
                        SwarmEvent::ListenerError { error, .. } => {
                            return Err(Error::Listen { addr: Multiaddr::empty(), reason: error.to_string() });
                        }
                        _ => {}
                    }
                    self.on_swarm_event(event);
                }
                _ = &mut deadline => {
                    return Err(Error::Transport("listeners did not start within 10 s".into()));
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut rendezvous_tick = tokio::time::interval(self.rendezvous_interval);
        rendezvous_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.announce_did();
        let mut boot_tick = tokio::time::interval(BOOT_RETRY);
        boot_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sweep_tick =
            tokio::time::interval_at(tokio::time::Instant::now() + EXPIRY_SWEEP, EXPIRY_SWEEP);
        let replicate_every = self.replication.interval();
        let mut replication_tick = tokio::time::interval_at(
            tokio::time::Instant::now() + replicate_every,
            replicate_every,
        );
        replication_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut replication_pump = tokio::time::interval(Duration::from_millis(100));
        replication_pump.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = rendezvous_tick.tick() => self.rendezvous(),
                _ = boot_tick.tick() => {
                    if self.peers.is_empty() {
                        self.dial_boot();
                    }
                }
                _ = replication_tick.tick() => self.start_replication(),
                _ = replication_pump.tick(), if self.replication_running() => {
                    self.pump_replication();
                }
                _ = sweep_tick.tick() => {
                    let removed = self.swarm.behaviour_mut().kad.store_mut().inner_mut().remove_expired();
                    if removed > 0 {
                        tracing::debug!(removed, "expired records swept");
                    }
                }
            }
        }
        tracing::info!("node stopped");
    }

    fn dial_boot(&mut self) {
        for addr in self.boot.clone() {
            let opts = match addr::peer_id_of(&addr) {
                Some(peer) => DialOpts::peer_id(peer)
                    .addresses(vec![addr.clone()])
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
                None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
            };
            self.metrics
                .dials
                .get_or_create(&vec![("reason", "boot")])
                .inc();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%addr, "boot dial failed: {e}");
            }
        }
    }

    fn routing_table_size(&mut self) -> usize {
        self.swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .map(|b| b.num_entries())
            .sum()
    }

    /// Announces the rendezvous key (when new peers arrived since the last time, or every
    /// [`REANNOUNCE`]) and looks for the other providers.
    fn rendezvous(&mut self) {
        let size = self.routing_table_size();
        self.metrics.routing_table_peers.set(size as i64);
        let store = self.swarm.behaviour_mut().kad.store_mut();
        let (stored, stats) = (store.inner().len(), store.stats());
        self.metrics.update_records(stored, &stats);
        self.metrics.update_tunnels(&self.info.forward_stats);
        let due = match self.announced {
            None => true,
            // Again when the routing table has doubled (1, 2, 4, 8... peers): a forming
            // network learns about us quickly without a storm of re-announcements.
            Some((at, n)) => size >= (2 * n).max(1) || at.elapsed() >= REANNOUNCE,
        };
        if due {
            self.announced = Some((Instant::now(), size));
            if size > 0 {
                // New peers since the last time: make sure they can resolve our DID.
                self.announce_did();
            }
        }
        if due {
            let mut keys: Vec<RecordKey> = self.provided.iter().cloned().collect();
            keys.extend(self.rendezvous.iter().map(|(_, k)| k.clone()));
            for key in keys {
                if let Err(e) = self.swarm.behaviour_mut().kad.start_providing(key) {
                    tracing::warn!("cannot announce a provider record: {e}");
                }
            }
        }
        if let Some((_, key)) = self.rendezvous.clone()
            && size > 0
        {
            self.swarm.behaviour_mut().kad.get_providers(key);
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Info(reply) => {
                let _ = reply.send(self.node_info());
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.peer_infos());
            }
            Command::RpcPeers(reply) => {
                let rpc = &self.rpc_protocol;
                let gates = self.swarm.behaviour().admission.gates();
                let peers = self
                    .peers
                    .iter()
                    // Not yet identified peers are tried too: they may well speak it.
                    .filter(|(_, s)| s.protocols.is_empty() || s.protocols.contains(rpc))
                    // With --trust-ca, only admitted peers.
                    .filter(|(p, _)| gates.is_admitted(p))
                    .map(|(p, _)| *p)
                    .collect();
                let _ = reply.send(peers);
            }
            Command::Dial { addr, reply } => {
                let opts = match addr::peer_id_of(&addr) {
                    Some(peer) => DialOpts::peer_id(peer)
                        .addresses(vec![addr.clone()])
                        .build(),
                    None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
                };
                let id = opts.connection_id();
                self.metrics
                    .dials
                    .get_or_create(&vec![("reason", "api")])
                    .inc();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.pending_dials.insert(id, (addr, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(Error::Dial {
                            addr,
                            reason: e.to_string(),
                        }));
                    }
                }
            }
            Command::Call {
                peer,
                method,
                params,
                reply,
            } => match self.swarm.behaviour_mut().rpc.call(&peer, &method, params) {
                Ok(id) => {
                    self.pending_calls.insert(id, reply);
                }
                Err(e) => {
                    self.metrics
                        .rpc_outbound
                        .get_or_create(&NodeMetrics::outcome(false))
                        .inc();
                    let _ = reply.send(Err(e));
                }
            },
            Command::PutRecord {
                key,
                value,
                ttl,
                reply,
            } => self.put_record(key, value, ttl, Some(reply)),
            Command::GetRecord { key, reply } => self.get_record(key, reply),
            Command::Provide { key } => {
                if let Err(e) = self.swarm.behaviour_mut().kad.start_providing(key.clone()) {
                    tracing::warn!("cannot announce a provider record: {e}");
                }
                self.provided.insert(key);
            }
            Command::StopProviding { key } => {
                self.swarm.behaviour_mut().kad.stop_providing(&key);
                self.provided.remove(&key);
            }
            Command::GetProviders { key, reply } => {
                let id = self.swarm.behaviour_mut().kad.get_providers(key);
                self.pending_providers.insert(id, (HashSet::new(), reply));
            }
            Command::GetLocalProviders { key, reply } => {
                use libp2p::kad::store::RecordStore as _;
                let now = Instant::now();
                let store = self.swarm.behaviour_mut().kad.store_mut();
                let found = store
                    .providers(&key)
                    .into_iter()
                    .filter(|p| !p.is_expired(now))
                    .map(|p| p.provider)
                    .collect();
                let _ = reply.send(found);
            }
            Command::GetLocalRecord { key, reply } => {
                use libp2p::kad::store::RecordStore as _;
                let store = self.swarm.behaviour_mut().kad.store_mut();
                let record = store
                    .get(&RecordKey::new(&key))
                    .map(|r| r.into_owned())
                    .filter(|r| !r.is_expired(Instant::now()));
                let _ = reply.send(record);
            }
            Command::Admission(reply) => {
                let _ = reply.send(self.admission_info());
            }
            Command::SetRevocations { list, reply } => {
                let _ = reply.send(self.swarm.behaviour_mut().admission.set_revocations(*list));
            }
        }
    }

    fn admission_info(&self) -> super::AdmissionInfo {
        let admission = &self.swarm.behaviour().admission;
        let list = admission.revocations();
        super::AdmissionInfo {
            mode: if admission.trusted_ca().is_some() {
                "closed"
            } else {
                "open"
            }
            .to_string(),
            trusted_ca: admission
                .trusted_ca()
                .map(|c| mcc_admission::keys::peer_id_of(c.issuer()).to_string()),
            trusted_ca_expires: admission
                .trusted_ca()
                .map(|c| mcc_admission::format_unix(c.not_after())),
            revocations_sequence: list.map(|l| l.sequence()),
            revoked_serials: list
                .map(|l| l.serials().iter().map(|s| s.to_string()).collect())
                .unwrap_or_default(),
            revoked_peers: list
                .map(|l| l.peers().iter().map(|p| p.to_string()).collect())
                .unwrap_or_default(),
            banned: admission.banned().iter().map(|p| p.to_string()).collect(),
        }
    }

    fn on_admission(&mut self, event: mcc_admission::Event) {
        match event {
            mcc_admission::Event::Admitted { peer, certificate } => {
                self.metrics
                    .admission
                    .get_or_create(&vec![("outcome", "admitted")])
                    .inc();
                tracing::info!(%peer, label = certificate.label(), permissions = %certificate.permissions(), "peer admitted");
                // Identify may have come first: the peer can enter the routing table now.
                if let Some(s) = self.peers.get(&peer) {
                    let (protocols, addrs) = (s.protocols.clone(), s.listen_addrs.clone());
                    self.add_to_routing_table(peer, &protocols, &addrs);
                }
            }
            mcc_admission::Event::Refused { peer, error } => {
                self.metrics
                    .admission
                    .get_or_create(&vec![("outcome", "refused")])
                    .inc();
                tracing::warn!(%peer, "peer refused: {error}");
                self.swarm.behaviour_mut().kad.remove_peer(&peer);
            }
            mcc_admission::Event::RefusedBy { peer, reason } => {
                self.metrics
                    .admission
                    .get_or_create(&vec![("outcome", "refused_by_peer")])
                    .inc();
                tracing::warn!(%peer, "this node's certificate was refused by the peer: {reason}");
            }
        }
    }

    fn node_info(&mut self) -> NodeInfo {
        let routing_table_size = self.routing_table_size();
        NodeInfo {
            peer_id: *self.swarm.local_peer_id(),
            label: self.info.label.clone(),
            did: self.info.did.clone(),
            version: VERSION.to_string(),
            agent_version: self.info.agent_version.clone(),
            listen_addrs: self.swarm.listeners().cloned().collect(),
            external_addrs: self.swarm.external_addresses().cloned().collect(),
            kad_protocol: self.kad_protocol.to_string(),
            rendezvous: self.rendezvous.as_ref().map(|(k, _)| k.clone()),
            mdns: self.info.mdns,
            rpc_methods: self.info.methods.names(),
            connected_peers: self.peers.len(),
            routing_table_size,
            uptime_secs: self.started.elapsed().as_secs(),
            certificate: super::CertificateInfo::of(
                self.swarm.behaviour().admission.own_certificate(),
            ),
            admission: self.admission_info(),
            http_forward: None,
        }
    }

    fn peer_infos(&mut self) -> Vec<PeerInfo> {
        let in_table: HashSet<PeerId> = self
            .swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .flat_map(|b| b.iter().map(|e| *e.node.key.preimage()).collect::<Vec<_>>())
            .collect();
        let gates = self.swarm.behaviour().admission.gates();
        let mut out: Vec<PeerInfo> = self
            .peers
            .iter()
            .map(|(peer_id, s)| {
                let oldest = s.connections.values().min_by_key(|(_, _, at)| *at);
                let mut addrs: Vec<Multiaddr> = Vec::new();
                for a in s
                    .connections
                    .values()
                    .map(|(a, _, _)| a)
                    .chain(s.listen_addrs.iter())
                {
                    if !addrs.contains(a) {
                        addrs.push(a.clone());
                    }
                }
                let certificate = gates.certificate(peer_id);
                PeerInfo {
                    peer_id: *peer_id,
                    label: certificate
                        .as_ref()
                        .map(|c| c.label().to_string())
                        .or_else(|| s.agent_version.as_deref().and_then(label_of)),
                    admitted: gates.is_admitted(peer_id),
                    certificate: certificate.as_ref().map(super::CertificateInfo::of),
                    addrs,
                    rtt_ms: s.rtt.map(|d| d.as_secs_f64() * 1000.0),
                    direction: oldest.map(|(_, d, _)| *d).unwrap_or(Direction::Outbound),
                    connections: s.connections.len(),
                    agent_version: s.agent_version.clone(),
                    protocols: s.protocols.iter().map(|p| p.to_string()).collect(),
                    rendezvous: self.app_peers.contains(peer_id),
                    in_routing_table: in_table.contains(peer_id),
                    connected_secs: oldest.map(|(_, _, at)| at.elapsed().as_secs()).unwrap_or(0),
                }
            })
            .collect();
        out.sort_by_key(|p| p.peer_id);
        out
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.libp2p_metrics.record(&event);
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let local = *self.swarm.local_peer_id();
                tracing::info!(
                    "listening on {}",
                    address.clone().with(Protocol::P2p(local))
                );
                // Provider records carry only external addresses: announce the concrete listen
                // addresses (loopback and LAN included) so peers can reach us.
                if !addr::is_unspecified(&address) {
                    self.swarm.add_external_address(address);
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.swarm.remove_external_address(&address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                let (remote, direction) = match &endpoint {
                    ConnectedPoint::Dialer { address, .. } => {
                        (address.clone(), Direction::Outbound)
                    }
                    ConnectedPoint::Listener { send_back_addr, .. } => {
                        (send_back_addr.clone(), Direction::Inbound)
                    }
                };
                tracing::debug!(%peer_id, %remote, ?direction, "connected");
                self.peers
                    .entry(peer_id)
                    .or_insert_with(PeerState::new)
                    .connections
                    .insert(connection_id, (remote, direction, Instant::now()));
                self.metrics.connected_peers.set(self.peers.len() as i64);
                if let Some((_, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                match &cause {
                    Some(e) => tracing::info!(%peer_id, "connection closed: {e}"),
                    None => tracing::debug!(%peer_id, "connection closed"),
                }
                if num_established == 0 {
                    self.peers.remove(&peer_id);
                } else if let Some(s) = self.peers.get_mut(&peer_id) {
                    s.connections.remove(&connection_id);
                }
                self.metrics.connected_peers.set(self.peers.len() as i64);
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                tracing::debug!(?peer_id, "dial failed: {error}");
                if let Some((addr, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(Error::Dial {
                        addr,
                        reason: error.to_string(),
                    }));
                }
                // A rendezvous peer we know no address for: ask the DHT where it is.
                if let (Some(peer), DialError::NoAddresses) = (peer_id, &error)
                    && self
                        .app_peers
                        .may_look_up(peer, self.address_lookups.len(), Instant::now())
                {
                    let q = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
                    self.address_lookups.insert(q, peer);
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(e) => {
                self.libp2p_metrics.record(&e);
                self.on_identify(e);
            }
            BehaviourEvent::Ping(e) => {
                self.libp2p_metrics.record(&e);
                self.on_ping(e);
            }
            BehaviourEvent::Kad(e) => {
                self.libp2p_metrics.record(&e);
                self.on_kad(e);
            }
            BehaviourEvent::Mdns(e) => self.on_mdns(e),
            BehaviourEvent::Rpc(e) => self.on_rpc(e),
            BehaviourEvent::Stream(()) => {}
            BehaviourEvent::Admission(e) => self.on_admission(e),
        }
    }

    fn on_identify(&mut self, event: identify::Event) {
        let identify::Event::Received { peer_id, info, .. } = event else {
            return;
        };
        if let Some(s) = self.peers.get_mut(&peer_id) {
            s.agent_version = Some(info.agent_version.clone());
            s.protocols = info.protocols.clone();
            s.listen_addrs = info.listen_addrs.clone();
        }
        self.add_to_routing_table(peer_id, &info.protocols, &info.listen_addrs);
    }

    /// Puts a peer that speaks our kad protocol into the routing table, once it is admitted.
    fn add_to_routing_table(
        &mut self,
        peer_id: PeerId,
        protocols: &[StreamProtocol],
        listen_addrs: &[Multiaddr],
    ) {
        if !protocols.contains(&self.kad_protocol)
            || !self
                .swarm
                .behaviour()
                .admission
                .gates()
                .is_admitted(&peer_id)
        {
            return;
        }
        let was_empty = self.routing_table_size() == 0;
        let kad = &mut self.swarm.behaviour_mut().kad;
        for a in listen_addrs.iter().filter(|a| !addr::is_unspecified(a)) {
            kad.add_address(&peer_id, a.clone());
        }
        if was_empty && self.routing_table_size() > 0 {
            // First peer in the table: join the DHT now rather than at the next tick.
            if let Err(e) = self.swarm.behaviour_mut().kad.bootstrap() {
                tracing::debug!("bootstrap: {e}");
            }
            self.rendezvous();
        }
    }

    fn on_ping(&mut self, event: ping::Event) {
        match event.result {
            Ok(rtt) => {
                if let Some(s) = self.peers.get_mut(&event.peer) {
                    s.rtt = Some(rtt);
                }
            }
            Err(ping::Failure::Timeout) => {
                tracing::debug!(peer = %event.peer, "ping timed out; closing the connection");
                self.swarm.close_connection(event.connection);
            }
            Err(e) => tracing::debug!(peer = %event.peer, "ping: {e}"),
        }
    }

    fn on_kad(&mut self, event: kad::Event) {
        let kad::Event::OutboundQueryProgressed {
            id,
            result,
            step,
            stats,
        } = event
        else {
            return;
        };
        match result {
            QueryResult::GetRecord(r) => self.on_get_record_progress(id, r, step, stats),
            QueryResult::PutRecord(r) => self.on_put_record_result(id, r),
            QueryResult::GetProviders(result) if self.pending_providers.contains_key(&id) => {
                let local = *self.swarm.local_peer_id();
                if let Ok(GetProvidersOk::FoundProviders { providers, .. }) = result {
                    for peer in providers.into_iter().filter(|p| *p != local) {
                        if !self.swarm.is_connected(&peer) {
                            // Connect now, while the query still knows its addresses.
                            let opts = DialOpts::peer_id(peer)
                                .condition(PeerCondition::DisconnectedAndNotDialing)
                                .build();
                            let _ = self.swarm.dial(opts);
                        }
                        if let Some((found, _)) = self.pending_providers.get_mut(&id)
                            && found.len() < MAX_FOUND_PROVIDERS
                        {
                            found.insert(peer);
                        }
                    }
                }
                if step.last
                    && let Some((found, reply)) = self.pending_providers.remove(&id)
                {
                    let _ = reply.send(found.into_iter().collect());
                }
            }
            QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders { providers, .. })) => {
                let local = *self.swarm.local_peer_id();
                for peer in providers.into_iter().filter(|p| *p != local) {
                    let swarm = &self.swarm;
                    match self.app_peers.insert(peer, |p| swarm.is_connected(p)) {
                        Some(true) => tracing::info!(%peer, "found a rendezvous peer"),
                        Some(false) => {}
                        None => {
                            tracing::debug!(%peer, "too many rendezvous peers: not tracked");
                            continue;
                        }
                    }
                    if !self.swarm.is_connected(&peer) {
                        self.metrics
                            .dials
                            .get_or_create(&vec![("reason", "rendezvous")])
                            .inc();
                        let opts = DialOpts::peer_id(peer)
                            .condition(PeerCondition::DisconnectedAndNotDialing)
                            .build();
                        // Errors (no address yet) come back as OutgoingConnectionError.
                        let _ = self.swarm.dial(opts);
                    }
                }
                self.metrics
                    .rendezvous_peers
                    .set(self.app_peers.len() as i64);
            }
            QueryResult::GetClosestPeers(r) if self.is_replication_lookup(&id) => {
                let peers = match r {
                    Ok(GetClosestPeersOk { peers, .. }) => peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                self.on_replication_peers(id, peers.into_iter().map(|p| p.peer_id).collect());
            }
            QueryResult::GetClosestPeers(Ok(GetClosestPeersOk { peers, .. })) => {
                let Some(target) = self.address_lookups.remove(&id) else {
                    return;
                };
                if let Some(found) = peers.into_iter().find(|p| p.peer_id == target)
                    && !found.addrs.is_empty()
                    && !self.swarm.is_connected(&target)
                {
                    let opts = DialOpts::peer_id(target)
                        .addresses(found.addrs)
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build();
                    let _ = self.swarm.dial(opts);
                }
            }
            QueryResult::GetClosestPeers(Err(_)) => {
                self.address_lookups.remove(&id);
            }
            QueryResult::StartProviding(Err(e)) => tracing::debug!("announce: {e}"),
            QueryResult::Bootstrap(r) => tracing::debug!("bootstrap step: {r:?}"),
            _ => {}
        }
    }

    fn on_mdns(&mut self, event: mdns::Event) {
        let mdns::Event::Discovered(found) = event else {
            return;
        };
        let mut by_peer: HashMap<PeerId, BTreeSet<Multiaddr>> = HashMap::new();
        for (peer, a) in found {
            by_peer.entry(peer).or_default().insert(a);
        }
        for (peer, addrs) in by_peer {
            if self.swarm.is_connected(&peer) {
                continue;
            }
            tracing::info!(%peer, "discovered on the LAN (mDNS)");
            self.metrics
                .dials
                .get_or_create(&vec![("reason", "mdns")])
                .inc();
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs.into_iter().collect())
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            let _ = self.swarm.dial(opts);
        }
    }

    fn on_rpc(&mut self, event: mcc_rpc::Event) {
        match event {
            mcc_rpc::Event::Response {
                request_id, result, ..
            } => {
                self.metrics
                    .rpc_outbound
                    .get_or_create(&NodeMetrics::outcome(result.is_ok()))
                    .inc();
                if let Some(reply) = self.pending_calls.remove(&request_id) {
                    let _ = reply.send(result);
                }
            }
            mcc_rpc::Event::InboundAnswered { ok, .. } => {
                self.metrics
                    .rpc_inbound
                    .get_or_create(&NodeMetrics::outcome(ok))
                    .inc();
            }
            mcc_rpc::Event::InboundFailure { peer, error } => {
                tracing::debug!(%peer, "inbound rpc failed: {error}");
                self.metrics
                    .rpc_inbound
                    .get_or_create(&NodeMetrics::outcome(false))
                    .inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_mcc_agent_versions() {
        assert_eq!(label_of("mcc/0.1.0 (kitchen)").as_deref(), Some("kitchen"));
        assert_eq!(label_of("js-libp2p/2.0"), None);
        assert_eq!(label_of("mcc/0.1.0"), None);
    }

    #[test]
    fn app_peers_and_their_lookups_are_bounded() {
        let mut peers = AppPeers::default();
        let first: Vec<PeerId> = (0..MAX_APP_PEERS).map(|_| PeerId::random()).collect();
        for p in &first {
            assert_eq!(peers.insert(*p, |_| true), Some(true));
        }
        assert_eq!(peers.insert(first[0], |_| true), Some(false));
        // Full, and every peer still wanted: a new one is not tracked.
        assert_eq!(peers.insert(PeerId::random(), |_| true), None);
        assert_eq!(peers.len(), MAX_APP_PEERS);
        // Full: the unwanted (e.g. disconnected) ones make room.
        let keep = first[0];
        let newcomer = PeerId::random();
        assert_eq!(peers.insert(newcomer, |p| *p == keep), Some(true));
        assert_eq!(peers.len(), 2);

        // One lookup per peer per ADDRESS_LOOKUP_RETRY, and a bounded number in flight.
        let now = Instant::now();
        assert!(peers.may_look_up(keep, 0, now));
        assert!(!peers.may_look_up(keep, 0, now + Duration::from_secs(1)));
        assert!(!peers.may_look_up(newcomer, MAX_ADDRESS_LOOKUPS, now));
        assert!(peers.may_look_up(newcomer, 1, now));
        assert!(!peers.may_look_up(PeerId::random(), 0, now));
        assert!(peers.may_look_up(keep, 0, now + ADDRESS_LOOKUP_RETRY));
    }
}
