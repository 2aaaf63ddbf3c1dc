//! Mesh upkeep: the address book, persistent peers, redials with backoff, the connection
//! targets (min/max peers) and the addresses peers observe this node at.
//!
//! Every connection, identify and ping feeds the book (`storage::addrbook`); every mesh tick
//! ([`MESH_TICK`]) then:
//!
//! - dials the persistent peers that are not connected and due (whatever the peer count);
//! - below `min_peers`, dials the best due entries of the book (persistent, same
//!   application, recent success, few failures, low round trip), at most
//!   [`MAX_DIALS_PER_TICK`] at once;
//! - above `max_peers`, closes the least useful connections (see [`EventLoop::mesh_trim`]);
//! - saves the book if it changed (at most every [`SAVE_EVERY`]).
//!
//! Discovery (rendezvous, mDNS) asks [`EventLoop::mesh_discovery_budget`] before dialling:
//! it dials only while the node has fewer than `max(min_peers, max_peers / 2)` peers
//! (connected or being dialled), so a large network does not become a full mesh while a
//! small one (below that) still does.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use libp2p::core::ConnectedPoint;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::oneshot;

use super::EventLoop;
use crate::node::{AddrBookEntry, Config, Error, MeshConfig, addr};
use crate::storage::addrbook::{AddrBook, Failure, Source};

mod book;
mod trim;

use book::entry_info;

/// How often the mesh is looked after.
pub(super) const MESH_TICK: Duration = Duration::from_secs(1);
/// Most book dials started per tick.
const MAX_DIALS_PER_TICK: usize = 8;
/// A connection younger than this is never closed for being over `max_peers`: it may be
/// serving the DHT query or the peer exchange that opened it (a DHT lookup in a small
/// network touches most nodes, and closing its connections mid-query fails it).
const GRACE: Duration = Duration::from_secs(20);
/// A peer this node called, or that called it (RPC), within this window is in use: never
/// closed for being over `max_peers`.
const IN_USE: Duration = Duration::from_secs(30);
/// A connection that lived this long was stable: its peer is redialled at once when it drops.
const STABLE: Duration = Duration::from_secs(60);
/// The book is saved at most this often (and when the loop ends, and on pin/unpin).
const SAVE_EVERY: Duration = Duration::from_secs(5);
/// Most observed addresses remembered.
const MAX_OBSERVED: usize = 16;
/// Most dials of other concerns whose source is remembered.
const MAX_PENDING_SOURCES: usize = 1024;

type PinReply = oneshot::Sender<Result<AddrBookEntry, Error>>;

/// The loop's mesh state.
pub(super) struct Mesh {
    pub(super) book: AddrBook,
    config: MeshConfig,
    /// Dials the mesh started from the book.
    dials: HashMap<ConnectionId, PeerId>,
    /// Why other concerns dialled (boot, mDNS, rendezvous, relay, API), by connection.
    sources: HashMap<ConnectionId, Source>,
    /// Addresses without peer id to pin once connected (`--peer`, `mcc addrbook pin ADDR`).
    pin_on_connect: HashMap<ConnectionId, Option<PinReply>>,
    /// When each peer was last called over RPC.
    used: HashMap<PeerId, Instant>,
    /// Peers connected only because a DHT query dialled them (no concern of the mesh did):
    /// the first to close above `max_peers`.
    dht_only: HashSet<PeerId>,
    /// Addresses peers observed this node at (identify), with counts.
    observed: HashMap<Multiaddr, u64>,
    /// Whether loopback addresses are worth keeping (a loopback-only node).
    keep_loopback: bool,
    /// When the book was last saved.
    saved: Instant,
}

impl Mesh {
    pub(super) fn new(config: &Config) -> Self {
        let book = match &config.data_dir {
            Some(dir) => AddrBook::load(dir),
            None => AddrBook::in_memory(),
        };
        Self {
            book,
            config: config.mesh.clone(),
            dials: HashMap::new(),
            sources: HashMap::new(),
            pin_on_connect: HashMap::new(),
            used: HashMap::new(),
            dht_only: HashSet::new(),
            observed: HashMap::new(),
            keep_loopback: config.listen.iter().all(addr::is_loopback),
            saved: Instant::now(),
        }
    }

    /// The peer count discovery dials up to: half of `max_peers` (at least `min_peers`),
    /// since every node dials as well as being dialled: a node that dials up to `k` peers
    /// ends up with about `2k` connections.
    fn discovery_target(&self) -> usize {
        let c = &self.config;
        (c.max_peers / 2).max(c.min_peers)
    }

    /// The peer count trimming goes down to once above `max_peers`: halfway between the
    /// discovery target and `max_peers` (6 for `--min-peers 4 --max-peers 8`, 48 for the
    /// defaults 8 and 64), never below `min_peers`.
    fn low_water(&self) -> usize {
        let (target, max) = (self.discovery_target(), self.config.max_peers);
        (target + max.saturating_sub(target) / 2)
            .max(self.config.min_peers)
            .min(max)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl EventLoop {
    /// At start: the `--peer` addresses become persistent entries (an address without peer
    /// id is dialled and pinned once connected).
    pub(super) fn mesh_start(&mut self) {
        for a in self.mesh.config.peers.clone() {
            match addr::peer_id_of(&a) {
                Some(peer) => {
                    self.mesh.book.learn(peer, &[a], Source::Manual);
                    self.mesh.book.set_persistent(peer, true);
                }
                None => {
                    let opts = DialOpts::unknown_peer_id().address(a.clone()).build();
                    let id = opts.connection_id();
                    if let Err(e) = self.swarm.dial(opts) {
                        tracing::warn!(addr = %a, "--peer: cannot dial: {e}");
                    } else {
                        self.mesh.pin_on_connect.insert(id, None);
                        self.mesh.sources.insert(id, Source::Manual);
                    }
                }
            }
        }
        self.refresh_mesh_metrics();
    }

    /// Dials for another concern and, if the dial starts, remembers why (`source`) for the
    /// book entry of the peer it reaches.
    pub(super) fn dial_noted(&mut self, opts: DialOpts, source: Source) -> Result<(), DialError> {
        let id = opts.connection_id();
        self.swarm.dial(opts)?;
        if self.mesh.sources.len() < MAX_PENDING_SOURCES {
            self.mesh.sources.insert(id, source);
        }
        Ok(())
    }

    /// How many more peers discovery (rendezvous, mDNS, peer exchange) may dial now.
    pub(super) fn mesh_discovery_budget(&self) -> usize {
        let busy = self.mesh_kept_count() + self.mesh.sources.len() + self.mesh.dials.len();
        self.mesh.discovery_target().saturating_sub(busy)
    }

    pub(super) fn mesh_on_connection(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        endpoint: &ConnectedPoint,
    ) {
        let source = self.mesh.sources.remove(&id);
        let from_book = self.mesh.dials.remove(&id).is_some();
        match endpoint {
            ConnectedPoint::Dialer { address, .. } => {
                let source = source.unwrap_or_else(|| {
                    if from_book {
                        Source::Manual
                    } else {
                        self.peers.unsourced_dial_source(&peer, id, endpoint)
                    }
                });
                let first = self.peers.connection_count(&peer) <= 1;
                match source {
                    // Kad dialled it for a query: released, it closes once idle unless
                    // something makes it useful (see `mesh_keep`).
                    Source::Kad if first && !self.mesh_recently_used(&peer) => {
                        tracing::debug!(%peer, "connected for a DHT query: released");
                        self.mesh.dht_only.insert(peer);
                        self.swarm.behaviour_mut().keep.set_kept(peer, false);
                    }
                    // A dial-back for the peer's reachability check: only the check needs it.
                    Source::AutoNat if !first => {
                        self.swarm
                            .behaviour_mut()
                            .keep
                            .set_connection_kept(peer, id, false);
                    }
                    Source::Kad | Source::AutoNat => {}
                    _ => self.mesh_keep(peer),
                }
                let book = &mut self.mesh.book;
                if from_book && book.get(&peer).is_some() {
                    book.add_addrs_if_known(&peer, std::slice::from_ref(address));
                } else {
                    book.learn(peer, std::slice::from_ref(address), source);
                }
            }
            ConnectedPoint::Listener { .. } => {
                self.mesh_keep(peer);
                let book = &mut self.mesh.book;
                if book.get(&peer).is_none() {
                    book.learn(peer, &[], Source::Inbound);
                }
            }
        }
        self.mesh.book.succeeded(peer, now_ms());
        if self.discovery.is_rendezvous_peer(&peer) {
            self.mesh.book.set_same_app(&peer);
        }
        if let Some(reply) = self.mesh.pin_on_connect.remove(&id) {
            self.mesh.book.set_persistent(peer, true);
            if let Some(reply) = reply {
                let info = self
                    .mesh
                    .book
                    .get(&peer)
                    .map(|e| entry_info(e, true, now_ms()));
                let _ = reply.send(info.ok_or_else(|| {
                    Error::StoreFull("the address book is full of persistent peers".into())
                }));
            }
        }
        self.refresh_mesh_metrics();
    }

    /// The last connection to `peer` closed (before `Peers` forgets it).
    pub(super) fn mesh_on_disconnected(&mut self, peer: &PeerId) {
        let lived = self
            .peers
            .connected_since(peer)
            .map(|s| s.elapsed())
            .unwrap_or_default();
        let backoff = self.mesh.config.backoff;
        // A DHT query's connection closing once idle is this node's doing, not a flap.
        if !self.mesh.dht_only.remove(peer) {
            self.mesh
                .book
                .disconnected(peer, lived, STABLE, now_ms(), &backoff);
        }
        self.mesh.used.remove(peer);
        self.pex_forget(peer);
    }

    pub(super) fn mesh_on_dial_failure(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        error: &DialError,
    ) {
        self.mesh.sources.remove(&id);
        let from_book = self.mesh.dials.remove(&id);
        if let Some(reply) = self.mesh.pin_on_connect.remove(&id) {
            tracing::warn!("pinning a peer: dial failed: {error}");
            if let Some(reply) = reply {
                let _ = reply.send(Err(Error::Dial {
                    addr: Multiaddr::empty(),
                    reason: error.to_string(),
                }));
            }
        }
        let Some(peer) = peer.or(from_book) else {
            return;
        };
        // Only failures of the peer count, not our own refusals or conditions.
        if matches!(
            error,
            DialError::NoAddresses
                | DialError::DialPeerConditionFalse(_)
                | DialError::Aborted
                | DialError::LocalPeerId { .. }
                | DialError::Denied { .. }
        ) || self.swarm.is_connected(&peer)
        {
            return;
        }
        let backoff = self.mesh.config.backoff;
        match self.mesh.book.failed(&peer, now_ms(), &backoff) {
            Failure::BackedOff { backoff_ms } => {
                tracing::debug!(%peer, backoff_ms, "dial failed: backing off");
                self.metrics.mesh.backoffs.inc();
            }
            Failure::Dropped => {
                tracing::info!(%peer, "dropped from the address book after repeated failures");
                self.metrics.mesh.dropped.inc();
            }
            Failure::Unknown => {}
        }
        self.refresh_mesh_metrics();
    }

    /// Identify: the peer's listen addresses go into the book, our observed address is
    /// counted.
    pub(super) fn mesh_on_identify(
        &mut self,
        peer: PeerId,
        listen_addrs: &[Multiaddr],
        observed: &Multiaddr,
    ) {
        let addrs = self.mesh_dialable(listen_addrs);
        self.mesh.book.add_addrs_if_known(&peer, &addrs);
        self.pex_share(peer, addrs);
        let o = &mut self.mesh.observed;
        if !o.contains_key(observed) && o.len() >= MAX_OBSERVED {
            // Forget the least reported one to make room.
            if let Some(worst) = o.iter().min_by_key(|(_, c)| **c).map(|(a, _)| a.clone()) {
                o.remove(&worst);
            }
        }
        *o.entry(observed.clone()).or_insert(0) += 1;
    }

    /// The addresses of `addrs` worth dialling (not unspecified; loopback only on a
    /// loopback-only node), at most `MAX_ADDRS`.
    pub(super) fn mesh_dialable(&self, addrs: &[Multiaddr]) -> Vec<Multiaddr> {
        let keep_loopback = self.mesh.keep_loopback;
        addrs
            .iter()
            .filter(|a| !addr::is_unspecified(a) && (keep_loopback || !addr::is_loopback(a)))
            .take(crate::storage::addrbook::MAX_ADDRS)
            .cloned()
            .collect()
    }

    pub(super) fn mesh_on_ping(&mut self, peer: &PeerId, rtt: Duration) {
        self.mesh.book.set_rtt(peer, rtt);
    }

    /// This node called `peer`, or `peer` called it: it is in use for a while.
    pub(super) fn mesh_used(&mut self, peer: PeerId) {
        self.mesh.used.insert(peer, Instant::now());
        if self.mesh.dht_only.contains(&peer) {
            self.mesh_keep(peer);
        }
    }

    fn mesh_recently_used(&self, peer: &PeerId) -> bool {
        self.mesh
            .used
            .get(peer)
            .is_some_and(|t| t.elapsed() < IN_USE)
    }

    /// A connection the mesh wants after all (a peer it had only for a DHT query): kept
    /// open while idle, no longer the first to be trimmed.
    pub(super) fn mesh_keep(&mut self, peer: PeerId) {
        self.mesh.dht_only.remove(&peer);
        self.swarm.behaviour_mut().keep.set_kept(peer, true);
    }

    /// Whether `peer` is connected only for DHT queries (its connection closes once idle).
    pub(super) fn mesh_is_dht_only(&self, peer: &PeerId) -> bool {
        self.mesh.dht_only.contains(peer)
    }

    /// Peers connected and kept (not only for DHT queries).
    fn mesh_kept_count(&self) -> usize {
        self.peers
            .connected
            .len()
            .saturating_sub(self.mesh.dht_only.len())
    }

    /// Learns peers from another concern (peer exchange, rendezvous addresses).
    pub(super) fn mesh_learn(&mut self, peer: PeerId, addrs: &[Multiaddr], source: Source) {
        if peer == *self.swarm.local_peer_id() {
            return;
        }
        self.mesh.book.learn(peer, addrs, source);
    }

    /// The mesh tick: redial persistent peers, fill up to `min_peers`, trim above
    /// `max_peers`, save the book.
    pub(super) fn mesh_tick(&mut self) {
        let now = now_ms();
        self.mesh_promote();
        let connected = self.mesh_kept_count();
        let in_flight = self.mesh.dials.len();
        let budget = self
            .mesh
            .config
            .min_peers
            .saturating_sub(connected + in_flight)
            .min(MAX_DIALS_PER_TICK);
        let dialing: Vec<PeerId> = self.mesh.dials.values().copied().collect();
        let local = *self.swarm.local_peer_id();
        let swarm = &self.swarm;
        let skip = |p: &PeerId| *p == local || swarm.is_connected(p) || dialing.contains(p);
        // With enough peers only persistent peers are redialled: no need to rank the book.
        let due = if budget == 0 {
            self.mesh.book.due_persistent(now, skip)
        } else {
            self.mesh.book.due(now, skip)
        };
        // Every due persistent peer, and the best others within the budget.
        let mut left = budget;
        let dials: Vec<(PeerId, Vec<Multiaddr>)> = due
            .into_iter()
            .filter(|e| {
                e.persistent
                    || (left > 0 && {
                        left -= 1;
                        true
                    })
            })
            .map(|e| (e.peer_id, e.addrs.clone()))
            .collect();
        tracing::trace!(me = %local, connected, in_flight, dials = dials.len(), budget, "mesh tick");
        for (peer, addrs) in dials {
            self.mesh_dial(peer, addrs);
        }
        self.mesh_trim();
        if self.mesh.saved.elapsed() >= SAVE_EVERY {
            self.mesh.saved = Instant::now();
            if let Err(e) = self.mesh.book.save_if_dirty() {
                tracing::warn!("cannot save the address book: {e}");
            }
        }
        self.refresh_mesh_metrics();
    }

    /// Below `min_peers` kept connections: keeps connections opened for DHT queries (best
    /// first: same application, low round trip) rather than dialling new ones.
    fn mesh_promote(&mut self) {
        let missing = self
            .mesh
            .config
            .min_peers
            .saturating_sub(self.mesh_kept_count());
        if missing == 0 || self.mesh.dht_only.is_empty() {
            return;
        }
        let mut candidates: Vec<(bool, u64, PeerId)> = self
            .mesh
            .dht_only
            .iter()
            .map(|p| {
                let rtt = self.peers.rtt(p).map_or(u64::MAX, |d| d.as_micros() as u64);
                (!self.discovery.is_rendezvous_peer(p), rtt, *p)
            })
            .collect();
        candidates.sort_unstable();
        for (_, _, peer) in candidates.into_iter().take(missing) {
            tracing::debug!(%peer, "below --min-peers: keeping a DHT query's connection");
            self.mesh_keep(peer);
        }
    }

    fn mesh_dial(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        let id = opts.connection_id();
        self.metrics
            .dials
            .get_or_create(&vec![("reason", "addrbook")])
            .inc();
        self.mesh.book.dialing(&peer);
        // The book's own wait until this dial is over: a dial that never reports (it
        // cannot) is retried after the initial backoff.
        if self.swarm.dial(opts).is_ok() {
            self.mesh.dials.insert(id, peer);
        }
    }

    /// Saves the book when the loop ends.
    pub(super) fn mesh_save(&mut self) {
        if let Err(e) = self.mesh.book.save_if_dirty() {
            tracing::warn!("cannot save the address book: {e}");
        }
    }

    fn refresh_mesh_metrics(&self) {
        self.metrics
            .mesh
            .addrbook_entries
            .set(self.mesh.book.len() as i64);
    }
}
