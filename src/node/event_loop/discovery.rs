//! Finding other nodes and being found: boot dials, the rendezvous key (looking up its other
//! providers, the "rendezvous peers" of the same application, and where they are), mDNS on
//! the LAN, and the external addresses this node announces.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::kad::{GetClosestPeersOk, QueryId, RecordKey};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, mdns};

use super::EventLoop;
use crate::node::{Config, addr, provider_key};
use crate::storage::addrbook::Source;

/// How often boot addresses are dialed again while the node has no peer at all.
pub(super) const BOOT_RETRY: Duration = Duration::from_secs(5);
/// With as many peers as the mesh wants, the rendezvous key is looked up on one tick in
/// this many at first, then twice as rarely after each lookup, up to one tick in
/// [`LOOKUP_EVERY_WHEN_FULL_MAX`] (30 min at the default 10 s): what a full node finds is
/// only remembered, and every node of the network asks the same few peers, those closest to
/// the key (with 1,000 nodes looking every minute, each of them would accept a new
/// connection every few seconds for it).
const LOOKUP_EVERY_WHEN_FULL: u32 = 6;
const LOOKUP_EVERY_WHEN_FULL_MAX: u32 = 180;
/// Most rendezvous peers remembered (provider records are announced by peers: bounded).
const MAX_APP_PEERS: usize = 1024;
/// Most address lookups of rendezvous peers in flight at once.
const MAX_ADDRESS_LOOKUPS: usize = 8;
/// A rendezvous peer's address is looked up at most this often.
const ADDRESS_LOOKUP_RETRY: Duration = Duration::from_secs(300);

/// What the loop needs to find other nodes.
pub(super) struct Discovery {
    /// Addresses dialed while the node has no peer.
    boot: Vec<Multiaddr>,
    /// The rendezvous string and its provider key.
    pub(super) rendezvous: Option<(String, RecordKey)>,
    /// How often [`EventLoop::rendezvous_tick`] runs.
    pub(super) rendezvous_interval: Duration,
    /// Providers of the rendezvous key seen so far (same application).
    app_peers: AppPeers,
    /// Lookups of a rendezvous peer's addresses, started when we could not dial it.
    address_lookups: HashMap<QueryId, PeerId>,
    /// Announce loopback listen addresses: only when every listen address is loopback (a
    /// node on a real network would hand peers an address that reaches themselves).
    announce_loopback: bool,
    /// When a full node looks the rendezvous key up.
    lookups: LookupSchedule,
}

/// Which rendezvous ticks look the key up: every one while the mesh wants peers; when it is
/// full, one in [`LOOKUP_EVERY_WHEN_FULL`], backing off to one in
/// [`LOOKUP_EVERY_WHEN_FULL_MAX`].
#[derive(Debug)]
struct LookupSchedule {
    /// Ticks skipped in a row because the node had enough peers.
    skipped: u32,
    /// A full node looks up on one tick in this many.
    every: u32,
}

impl Default for LookupSchedule {
    fn default() -> Self {
        Self {
            skipped: 0,
            every: LOOKUP_EVERY_WHEN_FULL,
        }
    }
}

impl LookupSchedule {
    /// Whether this tick looks up, for a node whose mesh is `full` or not.
    fn due(&mut self, full: bool) -> bool {
        if !full {
            *self = Self::default();
            return true;
        }
        if self.skipped + 1 < self.every {
            self.skipped += 1;
            return false;
        }
        self.skipped = 0;
        self.every = (self.every * 2).min(LOOKUP_EVERY_WHEN_FULL_MAX);
        true
    }
}

impl Discovery {
    pub(super) fn new(config: &Config) -> Self {
        let rendezvous = config.rendezvous.clone().map(|k| {
            let key = provider_key(&k);
            (k, key)
        });
        Self {
            boot: config.boot.clone(),
            rendezvous,
            rendezvous_interval: config.rendezvous_interval,
            app_peers: AppPeers::default(),
            address_lookups: HashMap::new(),
            announce_loopback: config.listen.iter().all(addr::is_loopback),
            lookups: LookupSchedule::default(),
        }
    }

    /// Whether `peer` was found as a provider of the rendezvous key.
    pub(super) fn is_rendezvous_peer(&self, peer: &PeerId) -> bool {
        self.app_peers.contains(peer)
    }
}

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

impl EventLoop {
    /// Dials the boot addresses again while the node has no peer at all.
    pub(super) fn boot_tick(&mut self) {
        if self.peers.connected.is_empty() {
            self.dial_boot();
        }
    }

    fn dial_boot(&mut self) {
        for addr in self.discovery.boot.clone() {
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
            if let Err(e) = self.dial_noted(opts, Source::Boot) {
                tracing::debug!(%addr, "boot dial failed: {e}");
            }
        }
    }

    /// Announces this node's provided keys and the rendezvous key when due (see
    /// [`reannounce_if_due`](Self::reannounce_if_due)) and looks for the other providers of
    /// the rendezvous key. Runs every `rendezvous_interval`, and when the first peer enters
    /// the routing table.
    pub(super) fn rendezvous_tick(&mut self) {
        let size = self.routing_table_size();
        self.reannounce_if_due(size);
        // With enough peers nothing found would be dialled: look up rarely (each lookup
        // connects to the peers closest to the key).
        let full = self.mesh_discovery_budget() == 0;
        if !self.discovery.lookups.due(full) {
            return;
        }
        if let Some((_, key)) = self.discovery.rendezvous.clone()
            && size > 0
        {
            self.swarm.behaviour_mut().kad.get_providers(key);
        }
    }

    /// Providers of the rendezvous key were found: remember them (bounded) and connect.
    pub(super) fn on_rendezvous_providers(&mut self, providers: HashSet<PeerId>) {
        let local = *self.swarm.local_peer_id();
        for peer in providers.into_iter().filter(|p| *p != local) {
            let swarm = &self.swarm;
            match self
                .discovery
                .app_peers
                .insert(peer, |p| swarm.is_connected(p))
            {
                Some(true) => tracing::info!(%peer, "found a rendezvous peer"),
                Some(false) => {}
                None => {
                    tracing::debug!(%peer, "too many rendezvous peers: not tracked");
                    continue;
                }
            }
            self.mesh.book.set_same_app(&peer);
            // Above the mesh's discovery target, found peers are only remembered.
            if self.mesh_discovery_budget() == 0 {
                continue;
            }
            if self.mesh_is_dht_only(&peer) {
                // Connected for a DHT query: keep that connection rather than dial.
                self.mesh_keep(peer);
            } else if !self.swarm.is_connected(&peer) {
                self.metrics
                    .dials
                    .get_or_create(&vec![("reason", "rendezvous")])
                    .inc();
                let opts = DialOpts::peer_id(peer)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build();
                // Errors (no address yet) come back as OutgoingConnectionError.
                let _ = self.dial_noted(opts, Source::Rendezvous);
            }
        }
        self.metrics
            .rendezvous_peers
            .set(self.discovery.app_peers.len() as i64);
    }

    /// A dial of `peer` found no address: if it is a rendezvous peer (and the bounds allow),
    /// ask the DHT where it is.
    pub(super) fn look_up_address_of(&mut self, peer: PeerId) {
        let d = &mut self.discovery;
        if d.app_peers
            .may_look_up(peer, d.address_lookups.len(), Instant::now())
        {
            let q = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
            self.discovery.address_lookups.insert(q, peer);
        }
    }

    /// An address lookup ended: dial the peer at the addresses found.
    pub(super) fn on_address_lookup(
        &mut self,
        id: QueryId,
        result: Result<GetClosestPeersOk, libp2p::kad::GetClosestPeersError>,
    ) {
        let Some(target) = self.discovery.address_lookups.remove(&id) else {
            return;
        };
        let Ok(GetClosestPeersOk { peers, .. }) = result else {
            return;
        };
        if let Some(found) = peers.into_iter().find(|p| p.peer_id == target)
            && !found.addrs.is_empty()
            && !self.swarm.is_connected(&target)
        {
            self.mesh_learn(target, &found.addrs, Source::Rendezvous);
            if self.mesh_discovery_budget() == 0 {
                return;
            }
            let opts = DialOpts::peer_id(target)
                .addresses(found.addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            let _ = self.swarm.dial(opts);
        }
    }

    pub(super) fn on_mdns(&mut self, event: mdns::Event) {
        let mdns::Event::Discovered(found) = event else {
            return;
        };
        let mut by_peer: HashMap<PeerId, BTreeSet<Multiaddr>> = HashMap::new();
        for (peer, a) in found {
            by_peer.entry(peer).or_default().insert(a);
        }
        for (peer, addrs) in by_peer {
            let addrs: Vec<Multiaddr> = addrs.into_iter().collect();
            self.mesh_learn(peer, &addrs, Source::Mdns);
            if self.swarm.is_connected(&peer) || self.mesh_discovery_budget() == 0 {
                continue;
            }
            tracing::info!(%peer, "discovered on the LAN (mDNS)");
            self.metrics
                .dials
                .get_or_create(&vec![("reason", "mdns")])
                .inc();
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            let _ = self.dial_noted(opts, Source::Mdns);
        }
    }

    pub(super) fn on_new_listen_addr(&mut self, address: Multiaddr) {
        let local = *self.swarm.local_peer_id();
        tracing::info!(
            "listening on {}",
            address.clone().with(Protocol::P2p(local))
        );
        // Provider records carry only external addresses: announce the concrete listen
        // addresses (LAN included; loopback on a loopback-only node) so peers can reach us.
        if !addr::is_unspecified(&address)
            && (self.discovery.announce_loopback || !addr::is_loopback(&address))
        {
            self.swarm.add_external_address(address);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_full_node_looks_up_ever_more_rarely_and_a_wanting_one_every_tick() {
        let mut s = LookupSchedule::default();
        assert!((0..5).all(|_| s.due(false)));
        let mut s = LookupSchedule::default();
        // Full: the gaps between lookups double up to the maximum.
        let mut gaps = Vec::new();
        let mut last = 0;
        for tick in 1..=3000u32 {
            if s.due(true) {
                gaps.push(tick - last);
                last = tick;
            }
        }
        assert_eq!(gaps[..6], [6, 12, 24, 48, 96, 180]);
        assert!(gaps[6..].iter().all(|g| *g == LOOKUP_EVERY_WHEN_FULL_MAX));
        // Wanting peers again: every tick, and a full node starts over at the shortest gap.
        assert!(s.due(false) && s.due(false));
        assert_eq!((1..=6).filter(|_| s.due(true)).count(), 1);
    }
}
