//! NAT traversal: reachability (AutoNAT), reservations on relays (circuit relay v2 client),
//! the relay server's counters, and hole punching (DCUtR).
//!
//! A node reserves a slot on every `--relay` it is given, whatever its reachability, and,
//! once AutoNAT finds it private, on up to [`MAX_AUTO_RELAYS`] connected peers that offer the
//! relay hop protocol. A reservation is asked for only after identify with the relay has run
//! both ways, so this node knows its observed address before any relayed connection opens:
//! DCUtR needs it as a hole-punch candidate. The circuit address is then announced like a
//! listen address (identify, provider records), and peers dial it without help.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, autonat, dcutr, kad, relay};

use super::EventLoop;
use crate::node::{MAX_AUTO_RELAYS, NatConfig, Reachability, RelayInfo, addr};

/// How often relays are redialled and reservations renewed when lost.
pub(super) const NAT_TICK: Duration = Duration::from_secs(5);
/// Wait at least this long before asking the same relay again after a failure.
const RESERVE_BACKOFF: Duration = Duration::from_secs(10);

/// What the loop keeps for NAT traversal.
pub(super) struct Nat {
    reachability: Reachability,
    /// The address AutoNAT last confirmed.
    public_addr: Option<Multiaddr>,
    /// Relays from `--relay`: their address (without `/p2p`), and their peer id once known.
    configured: Vec<ConfiguredRelay>,
    auto_relay: bool,
    /// Reservation listeners, by listener id.
    reservations: HashMap<ListenerId, Reservation>,
    /// Relays that refused or lost a reservation lately: not asked again before this.
    backoff: HashMap<PeerId, Instant>,
    /// Peers known to offer the relay hop protocol (from identify), with an address to
    /// reach them at.
    hop_peers: HashMap<PeerId, Multiaddr>,
    /// Peers whose identify has been received since their connection opened.
    identified: HashSet<PeerId>,
    /// The relay server: circuits open now.
    pub(super) server_circuits: usize,
    /// The relay server: peers holding a reservation now. A set, not a counter: libp2p's
    /// relay reports `ReservationClosed` whenever any connection of a peer closes, reserved
    /// or not (refused peers, dial-backs, duplicate connections).
    pub(super) server_reservations: HashSet<PeerId>,
}

struct ConfiguredRelay {
    addr: Multiaddr,
    peer: Option<PeerId>,
    /// The pending dial, if any.
    dialing: Option<ConnectionId>,
}

struct Reservation {
    relay: PeerId,
    /// `<relay address>/p2p/<relay>/p2p-circuit`.
    addr: Multiaddr,
    accepted: bool,
    /// Asked for by `--relay` (kept whatever the reachability).
    configured: bool,
}

impl Nat {
    pub(super) fn new(config: &NatConfig) -> Self {
        Self {
            reachability: Reachability::Unknown,
            public_addr: None,
            configured: config
                .relays
                .iter()
                .map(|a| ConfiguredRelay {
                    peer: addr::peer_id_of(a),
                    addr: without_peer(a),
                    dialing: None,
                })
                .collect(),
            auto_relay: config.auto_relay,
            reservations: HashMap::new(),
            backoff: HashMap::new(),
            hop_peers: HashMap::new(),
            identified: HashSet::new(),
            server_circuits: 0,
            server_reservations: HashSet::new(),
        }
    }

    pub(super) fn reachability(&self) -> Reachability {
        self.reachability
    }

    pub(super) fn public_addr(&self) -> Option<&Multiaddr> {
        self.public_addr.as_ref()
    }

    /// The reservations held or asked for.
    pub(super) fn relays(&self) -> Vec<RelayInfo> {
        let mut out: Vec<RelayInfo> = self
            .reservations
            .values()
            .map(|r| RelayInfo {
                peer_id: r.relay,
                addr: r.addr.clone(),
                accepted: r.accepted,
                configured: r.configured,
            })
            .collect();
        out.sort_by_key(|r| r.peer_id);
        out
    }

    fn has_reservation_on(&self, relay: &PeerId) -> bool {
        self.reservations.values().any(|r| r.relay == *relay)
    }

    fn is_configured(&self, peer: &PeerId) -> bool {
        self.configured.iter().any(|c| c.peer == Some(*peer))
    }

    fn auto_reservations(&self) -> usize {
        self.reservations.values().filter(|r| !r.configured).count()
    }
}

impl EventLoop {
    /// Whether this node holds (or asked for) a reservation on `relay`: the mesh never
    /// closes such a connection.
    pub(super) fn nat_holds_reservation_on(&self, relay: &PeerId) -> bool {
        self.nat.has_reservation_on(relay)
    }
}

/// `addr` without its trailing `/p2p/<id>`.
fn without_peer(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

/// Whether `addr` goes through a relay.
pub(crate) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

impl EventLoop {
    /// Dials the configured relays; called at start and on every [`NAT_TICK`].
    pub(super) fn nat_tick(&mut self) {
        for i in 0..self.nat.configured.len() {
            let c = &self.nat.configured[i];
            if c.dialing.is_some() || c.peer.is_some_and(|p| self.swarm.is_connected(&p)) {
                continue;
            }
            if let Some(p) = c.peer
                && self
                    .nat
                    .backoff
                    .get(&p)
                    .is_some_and(|t| *t > Instant::now())
            {
                continue;
            }
            let opts = match c.peer {
                Some(p) => DialOpts::peer_id(p)
                    .addresses(vec![c.addr.clone()])
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
                None => DialOpts::unknown_peer_id().address(c.addr.clone()).build(),
            };
            let id = opts.connection_id();
            self.metrics
                .dials
                .get_or_create(&vec![("reason", "relay")])
                .inc();
            match self.dial_noted(opts, crate::storage::addrbook::Source::Relay) {
                Ok(()) => self.nat.configured[i].dialing = Some(id),
                Err(e) => tracing::debug!(addr = %self.nat.configured[i].addr, "relay dial: {e}"),
            }
        }
        // Reservations lost while the relay stayed connected: ask again.
        let connected: Vec<PeerId> = self
            .nat
            .identified
            .iter()
            .copied()
            .filter(|p| self.swarm.is_connected(p))
            .collect();
        for peer in connected {
            self.reserve_if_wanted(peer);
        }
    }

    /// A connection opened: learns the peer id of a configured relay dialled by address.
    pub(super) fn nat_on_connection(&mut self, peer: PeerId, id: ConnectionId, relayed: bool) {
        for c in &mut self.nat.configured {
            if c.dialing == Some(id) {
                c.dialing = None;
                c.peer = Some(peer);
            }
        }
        if relayed && !self.has_direct_connection(&peer) {
            // DCUtR starts on its own; the outcome comes as a `dcutr::Event`.
            self.metrics
                .holepunch
                .get_or_create(&vec![("outcome", "attempt")])
                .inc();
        }
    }

    /// The last connection to `peer` closed.
    pub(super) fn nat_on_disconnected(&mut self, peer: &PeerId) {
        self.nat.identified.remove(peer);
    }

    /// A dial failed: a configured relay is tried again on the next tick.
    pub(super) fn nat_on_dial_failure(&mut self, id: ConnectionId) {
        for c in &mut self.nat.configured {
            if c.dialing == Some(id) {
                c.dialing = None;
            }
        }
    }

    /// Identify from `peer`: remembers whether it offers the relay hop, then reserves on it
    /// when wanted.
    pub(super) fn nat_on_identify(
        &mut self,
        peer: PeerId,
        protocols: &[libp2p::StreamProtocol],
        listen_addrs: &[Multiaddr],
    ) {
        self.nat.identified.insert(peer);
        if protocols.contains(&relay::HOP_PROTOCOL_NAME) {
            if let Some(a) = self.address_of(&peer, listen_addrs) {
                self.nat.hop_peers.insert(peer, a);
            }
        } else {
            self.nat.hop_peers.remove(&peer);
        }
        self.reserve_if_wanted(peer);
    }

    /// An address to reach `peer` at for a reservation: the one of our outbound connection,
    /// else a direct listen address it announced.
    fn address_of(&self, peer: &PeerId, listen_addrs: &[Multiaddr]) -> Option<Multiaddr> {
        if let Some(c) = self.nat.configured.iter().find(|c| c.peer == Some(*peer)) {
            return Some(c.addr.clone());
        }
        self.peers
            .outbound_addr(peer)
            .filter(|a| !is_relayed(a))
            .map(|a| without_peer(&a))
            .or_else(|| {
                // A relay listening on every interface announces 127.0.0.1 too, which would
                // point us at ourselves: a loopback address only when there is nothing else.
                let direct = || {
                    listen_addrs
                        .iter()
                        .filter(|a| !is_relayed(a) && !addr::is_unspecified(a))
                };
                direct()
                    .find(|a| !addr::is_loopback(a))
                    .or_else(|| direct().next())
                    .map(without_peer)
            })
    }

    /// Reserves on `peer` if it is a configured relay, or a hop peer while this node is
    /// private and holds fewer than [`MAX_AUTO_RELAYS`] automatic reservations.
    fn reserve_if_wanted(&mut self, peer: PeerId) {
        if self.nat.has_reservation_on(&peer)
            || !self.nat.identified.contains(&peer)
            || self
                .nat
                .backoff
                .get(&peer)
                .is_some_and(|t| *t > Instant::now())
        {
            return;
        }
        let configured = self.nat.is_configured(&peer);
        let auto = !configured
            && self.nat.auto_relay
            && self.nat.reachability == Reachability::Private
            && self.nat.auto_reservations() < MAX_AUTO_RELAYS
            && self.nat.hop_peers.contains_key(&peer);
        if !configured && !auto {
            return;
        }
        let base = match self
            .nat
            .configured
            .iter()
            .find(|c| c.peer == Some(peer))
            .map(|c| c.addr.clone())
            .or_else(|| self.nat.hop_peers.get(&peer).cloned())
        {
            Some(a) => a,
            None => return,
        };
        let circuit = base.with(Protocol::P2p(peer)).with(Protocol::P2pCircuit);
        match self.swarm.listen_on(circuit.clone()) {
            Ok(id) => {
                tracing::info!(relay = %peer, "asking for a relay reservation");
                self.nat.reservations.insert(
                    id,
                    Reservation {
                        relay: peer,
                        addr: circuit,
                        accepted: false,
                        configured,
                    },
                );
            }
            Err(e) => {
                tracing::warn!(relay = %peer, "cannot ask for a reservation: {e}");
                self.nat
                    .backoff
                    .insert(peer, Instant::now() + RESERVE_BACKOFF);
            }
        }
    }

    /// A listener closed: if it was a reservation, it is gone (asked again after a backoff).
    pub(super) fn nat_on_listener_closed(&mut self, id: ListenerId, reason: Option<String>) {
        if let Some(r) = self.nat.reservations.remove(&id) {
            match reason {
                Some(e) => tracing::warn!(relay = %r.relay, "relay reservation ended: {e}"),
                None => tracing::info!(relay = %r.relay, "relay reservation ended"),
            }
            self.nat
                .backoff
                .insert(r.relay, Instant::now() + RESERVE_BACKOFF);
        }
    }

    /// A new listen address: a circuit address means a reservation was accepted. Peers learn it
    /// from identify (pushed) and from provider records, announced again now.
    pub(super) fn nat_on_new_listen_addr(&mut self, id: ListenerId, address: &Multiaddr) {
        if let Some(r) = self.nat.reservations.get_mut(&id)
            && is_relayed(address)
            && !r.accepted
        {
            r.accepted = true;
            tracing::info!(relay = %r.relay, "relay reservation accepted: reachable at {address}");
            self.reannounce_now();
        }
    }

    pub(super) fn on_relay_client(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            } => {
                tracing::debug!(relay = %relay_peer_id, renewal, "reservation accepted");
                self.nat.backoff.remove(&relay_peer_id);
            }
            relay::client::Event::OutboundCircuitEstablished { relay_peer_id, .. } => {
                tracing::debug!(relay = %relay_peer_id, "outbound circuit established");
            }
            relay::client::Event::InboundCircuitEstablished { src_peer_id, .. } => {
                tracing::debug!(peer = %src_peer_id, "inbound circuit established");
            }
        }
    }

    pub(super) fn on_relay_server(&mut self, event: relay::Event) {
        let nat = &mut self.nat;
        match event {
            relay::Event::ReservationReqAccepted {
                renewed,
                src_peer_id,
            } => {
                if !renewed {
                    tracing::info!(peer = %src_peer_id, "relay: reservation accepted");
                }
                nat.server_reservations.insert(src_peer_id);
            }
            relay::Event::ReservationTimedOut { src_peer_id } => {
                nat.server_reservations.remove(&src_peer_id);
            }
            // A reservation lives on one connection: it is surely gone once the peer has none.
            // (Should only the reserving one of several close, the peer counts until it
            // reserves again or leaves.)
            relay::Event::ReservationClosed { src_peer_id } => {
                if !self.swarm.is_connected(&src_peer_id) {
                    nat.server_reservations.remove(&src_peer_id);
                }
            }
            relay::Event::CircuitReqAccepted {
                src_peer_id,
                dst_peer_id,
            } => {
                tracing::info!(src = %src_peer_id, dst = %dst_peer_id, "relay: circuit opened");
                nat.server_circuits += 1;
                self.metrics.relay_circuits.inc();
            }
            relay::Event::CircuitClosed {
                src_peer_id,
                dst_peer_id,
                error,
            } => {
                tracing::debug!(src = %src_peer_id, dst = %dst_peer_id, ?error, "relay: circuit closed");
                nat.server_circuits = nat.server_circuits.saturating_sub(1);
            }
            relay::Event::ReservationReqDenied {
                src_peer_id,
                status,
            } => {
                tracing::info!(peer = %src_peer_id, ?status, "relay: reservation denied");
            }
            relay::Event::CircuitReqDenied {
                src_peer_id,
                dst_peer_id,
                status,
            } => {
                tracing::info!(src = %src_peer_id, dst = %dst_peer_id, ?status, "relay: circuit denied");
            }
            e => tracing::debug!("relay: {e:?}"),
        }
    }

    pub(super) fn on_dcutr(&mut self, event: dcutr::Event) {
        let outcome = match &event.result {
            Ok(_) => {
                tracing::info!(peer = %event.remote_peer_id, "hole punch succeeded: direct connection");
                "success"
            }
            Err(e) => {
                tracing::info!(peer = %event.remote_peer_id, "hole punch failed: {e}");
                "failure"
            }
        };
        self.metrics
            .holepunch
            .get_or_create(&vec![("outcome", outcome)])
            .inc();
    }

    pub(super) fn on_autonat(&mut self, event: autonat::Event) {
        match event {
            autonat::Event::StatusChanged { old, new } => {
                tracing::info!("reachability: {old:?} -> {new:?}");
                self.set_reachability(new);
            }
            autonat::Event::OutboundProbe(autonat::OutboundProbeEvent::Response {
                address,
                ..
            }) => {
                self.nat.public_addr = Some(address);
            }
            // The dial-back connection of a probe this node answered is released (see
            // `mesh_on_connection`) and closes once idle. Not closed at once: request-response
            // spreads calls over every connection to a peer, and the calls sent on it would
            // fail with "connection closed".
            e => tracing::debug!("autonat: {e:?}"),
        }
    }

    fn set_reachability(&mut self, status: autonat::NatStatus) {
        let reachability = match &status {
            autonat::NatStatus::Public(a) => {
                self.nat.public_addr = Some(a.clone());
                Reachability::Public
            }
            autonat::NatStatus::Private => {
                self.nat.public_addr = None;
                Reachability::Private
            }
            autonat::NatStatus::Unknown => Reachability::Unknown,
        };
        self.nat.reachability = reachability;
        // A private node cannot be dialled for DHT queries: it stays a kad client and is
        // reached through relays. Public (or not yet known) nodes serve the DHT.
        let mode = if reachability == Reachability::Private {
            kad::Mode::Client
        } else {
            kad::Mode::Server
        };
        self.swarm.behaviour_mut().kad.set_mode(Some(mode));
        match reachability {
            Reachability::Private => {
                let peers: Vec<PeerId> = self.nat.hop_peers.keys().copied().collect();
                for p in peers {
                    self.reserve_if_wanted(p);
                }
            }
            Reachability::Public => {
                // Reachable directly: automatic reservations are not needed any more.
                let auto: Vec<ListenerId> = self
                    .nat
                    .reservations
                    .iter()
                    .filter(|(_, r)| !r.configured)
                    .map(|(id, _)| *id)
                    .collect();
                for id in auto {
                    self.swarm.remove_listener(id);
                }
            }
            Reachability::Unknown => {}
        }
        self.metrics.reachability.set(match reachability {
            Reachability::Public => 1,
            Reachability::Private => -1,
            Reachability::Unknown => 0,
        });
    }

    /// Whether `peer` has a connection that does not go through a relay.
    fn has_direct_connection(&self, peer: &PeerId) -> bool {
        self.peers.has_direct_connection(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circuit_addresses_are_relayed_and_peer_ids_are_stripped() {
        let peer = PeerId::random();
        let a: Multiaddr = format!("/ip4/11.0.0.1/tcp/4001/p2p/{peer}")
            .parse()
            .unwrap();
        assert!(!is_relayed(&a));
        assert_eq!(
            without_peer(&a),
            "/ip4/11.0.0.1/tcp/4001".parse::<Multiaddr>().unwrap()
        );
        assert!(is_relayed(&a.with(Protocol::P2pCircuit)));
    }

    #[test]
    fn configured_relays_keep_the_peer_id_they_were_given() {
        let peer = PeerId::random();
        let config = NatConfig {
            relays: vec![
                format!("/ip4/127.0.0.1/tcp/1/p2p/{peer}").parse().unwrap(),
                "/ip4/127.0.0.1/tcp/2".parse().unwrap(),
            ],
            ..NatConfig::default()
        };
        let nat = Nat::new(&config);
        assert!(nat.is_configured(&peer));
        assert_eq!(nat.configured[1].peer, None);
        assert_eq!(nat.reachability(), Reachability::Unknown);
    }
}
