//! Connected peers: what the loop knows of each (connections, identify info, ping round
//! trip), API dials, the kad routing table they enter, and the `PeerInfo` list of the API.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::core::ConnectedPoint;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionError, ConnectionId, DialError};
use libp2p::{Multiaddr, PeerId, StreamProtocol, identify, ping};
use tokio::sync::oneshot;

use super::EventLoop;
use crate::node::{CertificateInfo, Direction, Error, PeerInfo, addr};
use crate::storage::addrbook::Source;

/// An API dial and where its answer goes.
type PendingDial = (Multiaddr, oneshot::Sender<Result<PeerId, Error>>);

/// The loop's view of the connected peers.
pub(super) struct Peers {
    /// Every connected peer (removed with its last connection).
    pub(super) connected: HashMap<PeerId, PeerState>,
    /// Dials the API asked for, answered when the connection is up or failed.
    pending_dials: HashMap<ConnectionId, PendingDial>,
    /// API dials through a relay this node is still connecting to, by relay: sent once the
    /// relay connection is up (the relay transport refuses a circuit while another dial to
    /// the relay is under way).
    waiting_for_relay: HashMap<PeerId, Vec<PendingDial>>,
    /// The kad protocol a peer must speak to enter the routing table.
    pub(super) kad_protocol: StreamProtocol,
}

impl Peers {
    /// Whether `peer` has a connection that does not go through a relay.
    pub(super) fn has_direct_connection(&self, peer: &PeerId) -> bool {
        self.connected
            .get(peer)
            .is_some_and(|s| s.connections.values().any(|c| !c.relayed))
    }

    /// How many connections `peer` has open.
    pub(super) fn connection_count(&self, peer: &PeerId) -> usize {
        self.connected.get(peer).map_or(0, |s| s.connections.len())
    }

    /// Why this node dialled `peer` on connection `id` when no concern noted it: a direct
    /// connection to a peer reached over a relay is a hole punch (DCUtR), one through a relay
    /// a relayed dial, a second connection to a connected peer an AutoNAT dial-back, anything
    /// else a Kademlia dial (the one behaviour left that dials peers by itself).
    pub(super) fn unsourced_dial_source(
        &self,
        peer: &PeerId,
        id: ConnectionId,
        endpoint: &ConnectedPoint,
    ) -> Source {
        if endpoint.is_relayed() {
            return Source::Relay;
        }
        let others: Vec<&Conn> = self
            .connected
            .get(peer)
            .map(|s| {
                s.connections
                    .iter()
                    .filter(|(c, _)| **c != id)
                    .map(|(_, c)| c)
                    .collect()
            })
            .unwrap_or_default();
        if others.iter().any(|c| c.relayed) {
            Source::HolePunch
        } else if !others.is_empty() {
            Source::AutoNat
        } else {
            Source::Kad
        }
    }

    /// The remote address of an outbound connection to `peer`.
    pub(super) fn outbound_addr(&self, peer: &PeerId) -> Option<Multiaddr> {
        self.connected.get(peer).and_then(|s| {
            s.connections
                .values()
                .find(|c| c.direction == Direction::Outbound)
                .map(|c| c.remote.clone())
        })
    }

    /// When the oldest open connection to `peer` was established.
    pub(super) fn connected_since(&self, peer: &PeerId) -> Option<Instant> {
        self.connected
            .get(peer)
            .and_then(|s| s.connections.values().map(|c| c.since).min())
    }

    /// The last ping round trip to `peer`.
    pub(super) fn rtt(&self, peer: &PeerId) -> Option<Duration> {
        self.connected.get(peer).and_then(|s| s.rtt)
    }

    pub(super) fn new(kad_protocol: StreamProtocol) -> Self {
        Self {
            connected: HashMap::new(),
            pending_dials: HashMap::new(),
            waiting_for_relay: HashMap::new(),
            kad_protocol,
        }
    }
}

/// One open connection.
struct Conn {
    /// The remote address (for an inbound relayed connection, `/p2p/<peer>` only).
    remote: Multiaddr,
    direction: Direction,
    since: Instant,
    /// Goes through a relay.
    relayed: bool,
}

pub(super) struct PeerState {
    /// Open connections.
    connections: HashMap<ConnectionId, Conn>,
    listen_addrs: Vec<Multiaddr>,
    rtt: Option<Duration>,
    agent_version: Option<String>,
    pub(super) protocols: Vec<StreamProtocol>,
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

/// The relay of a circuit address `<relay addr>/p2p/<relay>/p2p-circuit/...` and the address
/// to dial it on; `None` for other addresses (or a circuit without a relay address).
fn relay_of(addr: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    use libp2p::multiaddr::Protocol;
    let mut relay = Multiaddr::empty();
    let mut relay_id = None;
    for p in addr.iter() {
        match p {
            Protocol::P2pCircuit => break,
            Protocol::P2p(id) => relay_id = Some(id),
            _ => relay_id = None,
        }
        relay.push(p);
    }
    let circuit = addr.iter().any(|p| matches!(p, Protocol::P2pCircuit));
    match relay_id {
        Some(id) if circuit && relay.iter().count() > 1 => Some((id, relay)),
        _ => None,
    }
}

/// The label an mcc node puts in its agent version: `mcc/<version> (<label>)`.
fn label_of(agent: &str) -> Option<String> {
    let rest = agent.strip_prefix("mcc/")?;
    let (_, tail) = rest.split_once(" (")?;
    mcc_admission::normalize_label(tail.strip_suffix(')')?)
}

impl EventLoop {
    /// `Command::Dial`: dials `addr`, answered in [`on_connection_established`] or
    /// [`on_dial_failure`].
    ///
    /// [`on_connection_established`]: Self::on_connection_established
    /// [`on_dial_failure`]: Self::on_dial_failure
    pub(super) fn dial(&mut self, addr: Multiaddr, reply: oneshot::Sender<Result<PeerId, Error>>) {
        // Through a relay not connected yet: connect to the relay first. Dialled together,
        // the relay transport's own dial to the relay loses to any dial already under way
        // (a boot dial, say) and the circuit fails with "oneshot canceled".
        if let Some((relay, relay_addr)) = relay_of(&addr)
            && !self.swarm.is_connected(&relay)
        {
            let opts = DialOpts::peer_id(relay)
                .addresses(vec![relay_addr])
                .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
                .build();
            let dialled = self.dial_noted(opts, crate::storage::addrbook::Source::Manual);
            tracing::debug!(%relay, ?dialled, "dialling the relay before the circuit");
            match dialled {
                // Refused for this reason: a dial to the relay is under way: wait for it.
                Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => {}
                Err(_) => return self.dial_now(addr, reply),
            }
            self.peers
                .waiting_for_relay
                .entry(relay)
                .or_default()
                .push((addr, reply));
            return;
        }
        self.dial_now(addr, reply);
    }

    /// Dials `addr` at once (see [`dial`](Self::dial)).
    fn dial_now(&mut self, addr: Multiaddr, reply: oneshot::Sender<Result<PeerId, Error>>) {
        let opts = match addr::peer_id_of(&addr) {
            // A direct address of a peer reached only through a relay: dial it anyway.
            Some(peer)
                if !super::nat::is_relayed(&addr)
                    && self.peers.connected.contains_key(&peer)
                    && !self.peers.has_direct_connection(&peer) =>
            {
                DialOpts::peer_id(peer)
                    .addresses(vec![addr.clone()])
                    .condition(libp2p::swarm::dial_opts::PeerCondition::NotDialing)
                    .build()
            }
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
        match self.dial_noted(opts, crate::storage::addrbook::Source::Manual) {
            Ok(()) => {
                self.peers.pending_dials.insert(id, (addr, reply));
            }
            Err(e) => {
                let _ = reply.send(Err(Error::Dial {
                    addr,
                    reason: e.to_string(),
                }));
            }
        }
    }

    pub(super) fn on_connection_established(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        endpoint: &ConnectedPoint,
    ) {
        let (remote, direction) = match endpoint {
            ConnectedPoint::Dialer { address, .. } => (address.clone(), Direction::Outbound),
            // An inbound relayed connection's send-back address is only `/p2p/<peer>`: show
            // the relay it came through instead (`<relay addr>/p2p-circuit/p2p/<peer>`).
            ConnectedPoint::Listener { local_addr, .. } if endpoint.is_relayed() => (
                local_addr
                    .clone()
                    .with(libp2p::multiaddr::Protocol::P2p(peer_id)),
                Direction::Inbound,
            ),
            ConnectedPoint::Listener { send_back_addr, .. } => {
                (send_back_addr.clone(), Direction::Inbound)
            }
        };
        tracing::debug!(%peer_id, %remote, ?direction, "connected");
        self.peers
            .connected
            .entry(peer_id)
            .or_insert_with(PeerState::new)
            .connections
            .insert(
                connection_id,
                Conn {
                    remote,
                    direction,
                    since: Instant::now(),
                    relayed: endpoint.is_relayed(),
                },
            );
        self.metrics
            .connected_peers
            .set(self.peers.connected.len() as i64);
        if let Some((_, reply)) = self.peers.pending_dials.remove(&connection_id) {
            let _ = reply.send(Ok(peer_id));
        }
        // The relay is up: the dials through it go now.
        self.dial_those_waiting_for(&peer_id);
    }

    /// Dials the circuits that waited for a connection to `relay`.
    fn dial_those_waiting_for(&mut self, relay: &PeerId) {
        let waiting = self.peers.waiting_for_relay.remove(relay);
        for (addr, reply) in waiting.unwrap_or_default() {
            self.dial_now(addr, reply);
        }
    }

    pub(super) fn on_connection_closed(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        num_established: u32,
        cause: Option<&ConnectionError>,
    ) {
        match cause {
            Some(e) => tracing::info!(%peer_id, "connection closed: {e}"),
            None => tracing::debug!(%peer_id, "connection closed"),
        }
        if num_established == 0 {
            self.peers.connected.remove(&peer_id);
        } else if let Some(s) = self.peers.connected.get_mut(&peer_id) {
            s.connections.remove(&connection_id);
        }
        self.metrics
            .connected_peers
            .set(self.peers.connected.len() as i64);
    }

    /// An outgoing connection failed: answers the API dial it was, and looks up the address
    /// of a rendezvous peer it had none for.
    pub(super) fn on_dial_failure(
        &mut self,
        connection_id: ConnectionId,
        peer_id: Option<PeerId>,
        error: DialError,
    ) {
        tracing::debug!(?peer_id, "dial failed: {error}");
        if let Some((addr, reply)) = self.peers.pending_dials.remove(&connection_id) {
            let _ = reply.send(Err(Error::Dial {
                addr,
                reason: error.to_string(),
            }));
        }
        // A dial to a relay failed: the dials waiting on it go anyway, and the relay
        // transport dials the relay itself (with its own error if it fails again).
        if let Some(peer) = peer_id
            && !self.swarm.is_connected(&peer)
        {
            self.dial_those_waiting_for(&peer);
        }
        // A rendezvous peer we know no address for: ask the DHT where it is.
        if let (Some(peer), DialError::NoAddresses) = (peer_id, &error) {
            self.look_up_address_of(peer);
        }
    }

    pub(super) fn on_identify(&mut self, event: identify::Event) {
        let identify::Event::Received { peer_id, info, .. } = event else {
            return;
        };
        if let Some(s) = self.peers.connected.get_mut(&peer_id) {
            s.agent_version = Some(info.agent_version.clone());
            s.protocols = info.protocols.clone();
            s.listen_addrs = info.listen_addrs.clone();
        }
        self.mesh_on_identify(peer_id, &info.listen_addrs, &info.observed_addr);
        self.add_to_routing_table(peer_id, &info.protocols, &info.listen_addrs);
        self.nat_on_identify(peer_id, &info.protocols, &info.listen_addrs);
    }

    /// A peer was admitted: identify may have come first, so it can enter the routing table
    /// now.
    pub(super) fn on_peer_admitted(&mut self, peer: PeerId) {
        if let Some(s) = self.peers.connected.get(&peer) {
            let (protocols, addrs) = (s.protocols.clone(), s.listen_addrs.clone());
            self.add_to_routing_table(peer, &protocols, &addrs);
            let addrs = self.mesh_dialable(&addrs);
            self.pex_share(peer, addrs);
        }
    }

    /// Puts a peer that speaks our kad protocol into the routing table, once it is admitted.
    fn add_to_routing_table(
        &mut self,
        peer_id: PeerId,
        protocols: &[StreamProtocol],
        listen_addrs: &[Multiaddr],
    ) {
        if !protocols.contains(&self.peers.kad_protocol)
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
            self.start_join();
            self.refresh_metrics();
            self.rendezvous_tick();
        }
    }

    /// How many peers the kad routing table holds.
    pub(super) fn routing_table_size(&mut self) -> usize {
        self.swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .map(|b| b.num_entries())
            .sum()
    }

    pub(super) fn on_ping(&mut self, event: ping::Event) {
        match event.result {
            Ok(rtt) => {
                if let Some(s) = self.peers.connected.get_mut(&event.peer) {
                    s.rtt = Some(rtt);
                }
                self.mesh_on_ping(&event.peer, rtt);
            }
            Err(ping::Failure::Timeout) => {
                tracing::debug!(peer = %event.peer, "ping timed out; closing the connection");
                self.swarm.close_connection(event.connection);
            }
            Err(e) => tracing::debug!(peer = %event.peer, "ping: {e}"),
        }
    }

    /// `Command::Peers`: the connected peers, sorted by id.
    pub(super) fn peer_infos(&mut self) -> Vec<PeerInfo> {
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
            .connected
            .iter()
            .map(|(peer_id, s)| {
                let oldest = s.connections.values().min_by_key(|c| c.since);
                let mut addrs: Vec<Multiaddr> = Vec::new();
                for a in s
                    .connections
                    .values()
                    .map(|c| &c.remote)
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
                    certificate: certificate.as_ref().map(CertificateInfo::of),
                    addrs,
                    rtt_ms: s.rtt.map(|d| d.as_secs_f64() * 1000.0),
                    direction: oldest.map(|c| c.direction).unwrap_or(Direction::Outbound),
                    connections: s.connections.len(),
                    agent_version: s.agent_version.clone(),
                    protocols: s.protocols.iter().map(|p| p.to_string()).collect(),
                    rendezvous: self.discovery.is_rendezvous_peer(peer_id),
                    in_routing_table: in_table.contains(peer_id),
                    connected_secs: oldest.map(|c| c.since.elapsed().as_secs()).unwrap_or(0),
                    relayed: !s.connections.is_empty() && s.connections.values().all(|c| c.relayed),
                    dht_only: self.mesh_is_dht_only(peer_id),
                }
            })
            .collect();
        out.sort_by_key(|p| p.peer_id);
        out
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
    fn a_circuit_address_names_its_relay() {
        let relay = PeerId::random();
        let target = PeerId::random();
        let relay_addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/4001/p2p/{relay}")
            .parse()
            .unwrap();
        let circuit: Multiaddr = format!("{relay_addr}/p2p-circuit/p2p/{target}")
            .parse()
            .unwrap();
        assert_eq!(relay_of(&circuit), Some((relay, relay_addr)));
        // Not a circuit, or a circuit with no address to reach its relay on.
        let direct: Multiaddr = format!("/ip4/127.0.0.1/tcp/4001/p2p/{target}")
            .parse()
            .unwrap();
        assert_eq!(relay_of(&direct), None);
        let bare: Multiaddr = format!("/p2p/{relay}/p2p-circuit/p2p/{target}")
            .parse()
            .unwrap();
        assert_eq!(relay_of(&bare), None);
    }
}
