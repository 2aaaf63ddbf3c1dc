//! The event loop: the one task that owns the libp2p `Swarm`.
//!
//! It waits on the [`Command`]s of the node's handles, the swarm's events and a few timers,
//! and hands each to the file of its concern. This file keeps the [`EventLoop`] itself, its
//! `run` loop and the dispatch; everything else is split by concern, each file adding
//! `impl EventLoop` methods and, where it has state, a small struct held in one field:
//!
//! - `command.rs`: the [`Command`] enum the handles send.
//! - `peers.rs` (`peers: Peers`): connections, identify, ping, API dials, the routing
//!   table, the `PeerInfo` list.
//! - `discovery.rs` (`discovery: Discovery`): boot dials, the rendezvous tick and the
//!   rendezvous peers it finds, their address lookups, mDNS, listen addresses.
//! - `bootstrap.rs` (`bootstrap: Bootstrap`): the routing table's refresh, and kad's automatic
//!   bootstraps that are no longer needed.
//! - `providers.rs` (`providers: Providers`): provided keys and their re-announcement,
//!   provider lookups.
//! - `records.rs` (`records: Records`): record gets (with read-repair) and puts, this
//!   node's DID document, the expiry sweep.
//! - `replication.rs` (`replication: Replication`): the batched replication job.
//! - `rpc.rs` (`rpc: Rpc`): outgoing calls, the peers worth calling, RPC metrics.
//! - `admission.rs`: admission events, the admission summary, revocation lists.
//! - `status.rs`: `NodeInfo`, and the gauges refreshed on the rendezvous tick.
//! - `nat.rs` (`nat: Nat`): reachability (AutoNAT), relay reservations, the relay server's
//!   counters, hole punching (DCUtR).
//! - `mesh.rs` (`mesh: Mesh`): the address book, persistent peers, redials with backoff,
//!   min/max peers, observed addresses; `pex.rs`: the peer exchange.
//! - `limits.rs` (`limit_bypass: Bypass`): persistent peers, exempt from the connection caps.
//!
//! A new concern gets its own file with its state struct, a field
//! here, and one arm in [`EventLoop::on_behaviour_event`] (and in `on_command` if the
//! handles ask it things).

mod admission;
mod bitswap;
mod bootstrap;
pub(crate) mod command;
mod discovery;
mod limits;
mod mesh;
mod nat;
mod peers;
mod pex;
pub(crate) mod providers;
mod records;
mod replication;
mod routes;
mod rpc;
mod status;

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::{FutureExt as _, StreamExt};
use libp2p::core::transport::ListenerId;
use libp2p::kad::{self, GetProvidersOk, QueryId, QueryResult};
use libp2p::metrics::Recorder;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm};
use tokio::sync::mpsc;

pub(crate) use self::command::Command;
use self::discovery::Discovery;
use self::mesh::Mesh;
use self::nat::Nat;
use self::peers::Peers;
use self::providers::Providers;
use self::records::Records;
use self::replication::Replication;
use self::rpc::Rpc;
use super::metrics::NodeMetrics;
use super::{Behaviour, BehaviourEvent, Config, Error};

/// Most commands, and most swarm events, handled in one pass of the loop.
const BATCH: usize = 64;

/// What the loop is told about the node when it is built: facts it reports (label, DID,
/// RPC methods...), what it publishes (the DID document) or reads for metrics (forwarding
/// counters), and the temp folder it keeps alive.
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
    /// The state folder of a node without data folder (record and blob stores). Not a fact:
    /// `EventLoop::new` moves it out into `EventLoop::_store_tmp`, so the folder is
    /// deleted when the loop ends.
    pub _store_tmp: Option<tempfile::TempDir>,
}

/// The loop's state: the swarm, the command receiver, and one field per concern. Built by
/// the node's builder, which calls [`wait_listening`](Self::wait_listening) and then spawns
/// [`run`](Self::run).
pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    /// What the node told the loop about itself (its `_store_tmp` is taken out).
    info: Info,
    /// When the loop was built, for the uptime in `NodeInfo`.
    started: Instant,
    peers: Peers,
    bootstrap: bootstrap::Bootstrap,
    discovery: Discovery,
    providers: Providers,
    records: Records,
    replication: Replication,
    rpc: Rpc,
    nat: Nat,
    mesh: Mesh,
    /// Persistent peers, exempt from the connection caps (`limits.rs`).
    limit_bypass: limits::Bypass,
    libp2p_metrics: libp2p::metrics::Metrics,
    metrics: NodeMetrics,
    /// The state folder of a node without data folder, deleted when the loop is dropped.
    /// Last field on purpose: fields drop in order, so the swarm (and the record store in
    /// it) is closed before its folder goes.
    _store_tmp: Option<tempfile::TempDir>,
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        config: &Config,
        mut info: Info,
        libp2p_metrics: libp2p::metrics::Metrics,
        metrics: NodeMetrics,
    ) -> Self {
        let store_tmp = info._store_tmp.take();
        Self {
            swarm,
            commands,
            info,
            started: Instant::now(),
            peers: Peers::new(config.kad_protocol.clone()),
            bootstrap: bootstrap::Bootstrap::default(),
            discovery: Discovery::new(config),
            providers: Providers::default(),
            records: Records::new(config),
            replication: Replication::new(
                config.records.replication_interval,
                config.records.publication_interval,
            ),
            rpc: Rpc::new(config.rpc.protocol().clone()),
            nat: Nat::new(&config.nat),
            mesh: Mesh::new(config),
            limit_bypass: limits::Bypass::default(),
            libp2p_metrics,
            metrics,
            _store_tmp: store_tmp,
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
        let mut rendezvous_timer = tokio::time::interval(self.discovery.rendezvous_interval);
        rendezvous_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.announce_did();
        let mut boot_tick = tokio::time::interval(discovery::BOOT_RETRY);
        boot_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sweep_tick = tokio::time::interval_at(
            tokio::time::Instant::now() + records::EXPIRY_SWEEP,
            records::EXPIRY_SWEEP,
        );
        let replicate_every = self.replication.interval();
        let mut replication_tick = tokio::time::interval_at(
            tokio::time::Instant::now() + replicate_every,
            replicate_every,
        );
        replication_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut nat_tick = tokio::time::interval(nat::NAT_TICK);
        nat_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut replication_pump = tokio::time::interval(replication::PUMP_INTERVAL);
        replication_pump.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut mesh_tick = tokio::time::interval(mesh::MESH_TICK);
        mesh_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.mesh_start();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => {
                        self.on_command(cmd);
                        self.drain_commands();
                    }
                    None => break,
                },
                event = self.swarm.select_next_some() => {
                    self.on_swarm_event(event);
                    self.drain_swarm_events();
                    self.skip_needless_bootstraps();
                }
                _ = rendezvous_timer.tick() => {
                    self.refresh_metrics();
                    self.rendezvous_tick();
                }
                _ = boot_tick.tick() => self.boot_tick(),
                _ = nat_tick.tick() => self.nat_tick(),
                _ = replication_tick.tick() => self.start_replication(),
                _ = replication_pump.tick(), if self.replication.running() => {
                    self.pump_replication();
                }
                _ = sweep_tick.tick() => self.sweep_expired_records(),
                _ = mesh_tick.tick() => {
                    // Before the tick's dials: a newly pinned peer is dialled past the caps.
                    self.limits_sync_bypass();
                    self.mesh_tick();
                    self.bootstrap_tick();
                }
            }
        }
        self.mesh_save();
        tracing::info!("node stopped");
    }

    /// Handles the commands already queued behind the one just received (up to [`BATCH`]),
    /// so that a burst of calls costs one pass of the loop, not one each.
    fn drain_commands(&mut self) {
        for _ in 1..BATCH {
            match self.commands.try_recv() {
                Ok(cmd) => self.on_command(cmd),
                // Empty, or closed: the next `recv` says so.
                Err(_) => return,
            }
        }
    }

    /// Handles the swarm events that are ready at once (up to [`BATCH`]) before the loop
    /// goes round. Polled without a waker: the loop polls the swarm with its own waker before
    /// it sleeps, so no wake-up is lost.
    fn drain_swarm_events(&mut self) {
        for _ in 1..BATCH {
            match self.swarm.select_next_some().now_or_never() {
                Some(event) => self.on_swarm_event(event),
                None => return,
            }
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
                let _ = reply.send(self.rpc_peers());
            }
            Command::Dial { addr, reply } => self.dial(addr, reply),
            Command::Call {
                peer,
                method,
                params,
                reply,
            } => self.call(peer, method, params, reply),
            Command::PutRecord {
                key,
                value,
                ttl,
                reply,
            } => self.put_record(key, value, ttl, Some(reply)),
            Command::GetRecord { key, reply } => self.get_record(key, reply),
            Command::Provide { key } => self.provide(key),
            Command::StopProviding { key } => self.stop_providing(key),
            Command::GetProviders { key, reply } => self.find_providers(key, reply),
            Command::StreamProviders { key, found } => self.stream_providers(key, found),
            Command::GetLocalProviders { key, reply } => {
                let _ = reply.send(self.local_providers(&key));
            }
            Command::GetLocalRecord { key, reply } => {
                let _ = reply.send(self.local_record(&key));
            }
            Command::Admission(reply) => {
                let _ = reply.send(self.admission_info());
            }
            Command::AddrBook(reply) => {
                let _ = reply.send(self.addrbook());
            }
            Command::Pin {
                target,
                persistent,
                reply,
            } => self.pin(target, persistent, reply),
            Command::SetRevocations { list, reply } => {
                let _ = reply.send(self.set_revocations(*list));
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.libp2p_metrics.record(&event);
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                self.nat_on_new_listen_addr(listener_id, &address);
                self.on_new_listen_addr(address);
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => self.nat_on_listener_closed(listener_id, reason.err().map(|e| e.to_string())),
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.swarm.remove_external_address(&address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                established_in,
                ..
            } => {
                // Seconds to set up a connection mean a starved process or a stuck handshake.
                if established_in > std::time::Duration::from_secs(1) {
                    let dialer = endpoint.is_dialer();
                    tracing::debug!(%peer_id, ?established_in, dialer, "slow connection setup");
                }
                self.on_connection_established(peer_id, connection_id, &endpoint);
                self.mesh_on_connection(peer_id, connection_id, &endpoint);
                self.nat_on_connection(peer_id, connection_id, endpoint.is_relayed());
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                if num_established == 0 {
                    self.mesh_on_disconnected(&peer_id);
                }
                self.on_connection_closed(peer_id, connection_id, num_established, cause.as_ref());
                if num_established == 0 {
                    self.nat_on_disconnected(&peer_id);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                self.nat_on_dial_failure(connection_id);
                self.mesh_on_dial_failure(connection_id, peer_id, &error);
                self.on_dial_failure(connection_id, peer_id, error);
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
            BehaviourEvent::Stream(never) => match never {},
            BehaviourEvent::Admission(e) => self.on_admission(e),
            BehaviourEvent::RelayClient(e) => self.on_relay_client(e),
            BehaviourEvent::Relay(e) => {
                self.libp2p_metrics.record(&e);
                self.on_relay_server(e);
            }
            BehaviourEvent::Dcutr(e) => {
                self.libp2p_metrics.record(&e);
                self.on_dcutr(e);
            }
            BehaviourEvent::Autonat(e) => self.on_autonat(e),
            BehaviourEvent::Pex(e) => self.on_pex(e),
            BehaviourEvent::Routes(e) => routes::on_event(e),
            BehaviourEvent::Bitswap(e) => bitswap::on_event(e),
            BehaviourEvent::Limits(never) | BehaviourEvent::Memory(never) => match never {},
        }
    }

    /// Why this node ran query `id` (for the metrics); call before the handlers below forget it.
    fn query_purpose(&self, id: &QueryId, result: &QueryResult) -> &'static str {
        match result {
            QueryResult::Bootstrap(_) if self.bootstrap.is_skipped(id) => "bootstrap_skipped",
            QueryResult::Bootstrap(_) => "bootstrap",
            QueryResult::GetRecord(_) => "record_get",
            QueryResult::PutRecord(_) | QueryResult::GetClosestPeers(_)
                if self.replication.is_put(id) || self.replication.is_lookup(id) =>
            {
                "replication"
            }
            QueryResult::PutRecord(_) => "record_put",
            QueryResult::GetProviders(_) if self.providers.is_lookup(id) => "provider_lookup",
            QueryResult::GetProviders(_) => "rendezvous",
            QueryResult::GetClosestPeers(_) => "address_lookup",
            QueryResult::StartProviding(_) | QueryResult::RepublishProvider(_) => "announce",
            QueryResult::RepublishRecord(_) => "record_put",
        }
    }

    /// Kad query progress goes to the concern that started the query.
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
        // A query's statistics so far come with each step, except a bootstrap's: each of its
        // steps is a lookup of its own (one per bucket) with statistics of its own.
        let bootstrap = matches!(result, QueryResult::Bootstrap(_));
        if step.last || bootstrap {
            let purpose = vec![("purpose", self.query_purpose(&id, &result))];
            let mesh = &self.metrics.mesh;
            if step.last {
                mesh.dht_queries.get_or_create(&purpose).inc();
            }
            mesh.dht_query_requests
                .get_or_create(&purpose)
                .inc_by(u64::from(stats.num_requests()));
        }
        match result {
            QueryResult::GetRecord(r) => self.on_get_record_progress(id, r, step, stats),
            QueryResult::PutRecord(r) if self.replication.is_put(&id) => {
                self.on_replication_put(id, r)
            }
            QueryResult::PutRecord(r) => {
                tracing::debug!(
                    requests = stats.num_requests(),
                    successes = stats.num_successes(),
                    failures = stats.num_failures(),
                    duration = ?stats.duration(),
                    ok = r.is_ok(),
                    "record put finished"
                );
                self.on_put_record_result(id, r)
            }
            QueryResult::GetProviders(r) if self.providers.is_lookup(&id) => {
                self.on_provider_lookup(id, r, step)
            }
            // Any other provider lookup is the rendezvous tick's.
            QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders { providers, .. })) => {
                self.on_rendezvous_providers(providers);
                // Nothing more would be dialled: stop here rather than ask every peer close
                // to the key (each lookup of a large network would reach the same few).
                if self.mesh_discovery_budget() == 0
                    && let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id)
                {
                    q.finish();
                }
            }
            QueryResult::GetClosestPeers(r) if self.replication.is_lookup(&id) => {
                let peers = match r {
                    Ok(kad::GetClosestPeersOk { peers, .. }) => peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                self.on_replication_peers(id, peers.into_iter().map(|p| p.peer_id).collect());
            }
            // Any other closest-peer lookup is an address lookup of a rendezvous peer.
            QueryResult::GetClosestPeers(r) => self.on_address_lookup(id, r),
            QueryResult::StartProviding(Err(e)) => tracing::debug!("announce: {e}"),
            QueryResult::Bootstrap(r) => {
                tracing::debug!("bootstrap step: {r:?}");
                self.on_bootstrap_step(id, step.last);
            }
            _ => {}
        }
    }
}
