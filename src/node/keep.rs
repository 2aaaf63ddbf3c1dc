//! Which connections the mesh keeps open while idle: a `NetworkBehaviour` whose connection
//! handler keeps its connection alive only while the event loop wants it.
//!
//! A connection closes once every handler of it agrees it may (`connection_keep_alive`) and
//! no stream is open on it, after the swarm's idle timeout (`Config::idle_connection_timeout`,
//! short). Every connection starts *kept*; the mesh releases the ones it does not want
//! (a connection this node opened only for a DHT query), which then close a few seconds
//! after their last query, unless another concern holds them (open streams of tunnels or
//! blobs, pending RPC requests, routes interests, relay reservations). A released connection
//! can be kept again (it became useful: an RPC call, a node below `--min-peers`): then one
//! connection is kept, not every spare one (an AutoNAT dial-back closes once idle even while
//! the peer is in use).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::DeniedUpgrade;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::handler::ConnectionEvent;
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, NotifyHandler, SubstreamProtocol, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};

/// The behaviour: remembers the connections of each peer and whether the mesh keeps them.
#[derive(Default)]
pub struct Behaviour {
    /// Open connections, by peer, with whether they are kept.
    connections: HashMap<PeerId, HashMap<ConnectionId, Conn>>,
    /// Decisions to pass on to the handlers.
    pending: VecDeque<ToSwarm<Infallible, bool>>,
}

/// What the behaviour knows of one connection.
#[derive(Debug, Clone, Copy)]
struct Conn {
    kept: bool,
    relayed: bool,
}

impl Behaviour {
    /// Releases every connection to `peer` (`false`), or keeps one (`true`): the mesh needs
    /// one connection per peer, so when none is kept, the oldest direct one is (the oldest
    /// relayed one without a direct one), and the others stay as they are. Keeping them all
    /// would keep the spare ones (an AutoNAT dial-back, a second connection from
    /// simultaneous dials) open for as long as the peer is used.
    pub fn set_kept(&mut self, peer: PeerId, kept: bool) {
        if !kept {
            return self.set(peer, None, false);
        }
        let Some(conns) = self.connections.get(&peer) else {
            return;
        };
        if conns.values().any(|c| c.kept) {
            return;
        }
        if let Some(id) = conns
            .iter()
            .min_by_key(|(id, c)| (c.relayed, **id))
            .map(|(id, _)| *id)
        {
            self.set(peer, Some(id), true);
        }
    }

    /// Keeps or releases one connection.
    pub fn set_connection_kept(&mut self, peer: PeerId, id: ConnectionId, kept: bool) {
        self.set(peer, Some(id), kept);
    }

    fn set(&mut self, peer: PeerId, only: Option<ConnectionId>, kept: bool) {
        let Some(conns) = self.connections.get_mut(&peer) else {
            return;
        };
        for (id, c) in conns.iter_mut() {
            if c.kept != kept && only.is_none_or(|o| o == *id) {
                c.kept = kept;
                self.pending.push_back(ToSwarm::NotifyHandler {
                    peer_id: peer,
                    handler: NotifyHandler::One(*id),
                    event: kept,
                });
            }
        }
    }

    /// Whether some connection to `peer` is kept.
    pub fn is_kept(&self, peer: &PeerId) -> bool {
        self.connections
            .get(peer)
            .is_some_and(|c| c.values().any(|c| c.kept))
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let relayed = is_relayed(local_addr);
        let conn = Conn {
            kept: true,
            relayed,
        };
        self.connections.entry(peer).or_default().insert(id, conn);
        Ok(Handler { kept: true })
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let conn = Conn {
            kept: true,
            relayed: is_relayed(addr),
        };
        self.connections.entry(peer).or_default().insert(id, conn);
        Ok(Handler { kept: true })
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(c) = event
            && let Some(conns) = self.connections.get_mut(&c.peer_id)
        {
            conns.remove(&c.connection_id);
            if conns.is_empty() {
                self.connections.remove(&c.peer_id);
            }
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        match self.pending.pop_front() {
            Some(e) => Poll::Ready(e),
            None => Poll::Pending,
        }
    }
}

/// Whether a connection's address goes through a relay.
fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter()
        .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2pCircuit))
}

/// Keeps its connection alive while kept; speaks no protocol.
pub struct Handler {
    kept: bool,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = bool;
    type ToBehaviour = Infallible;
    type InboundProtocol = DeniedUpgrade;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Infallible;

    fn listen_protocol(&self) -> SubstreamProtocol<DeniedUpgrade, ()> {
        SubstreamProtocol::new(DeniedUpgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        self.kept
    }

    fn on_behaviour_event(&mut self, kept: bool) {
        self.kept = kept;
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, Infallible, Infallible>> {
        Poll::Pending
    }

    fn on_connection_event(
        &mut self,
        _: ConnectionEvent<DeniedUpgrade, DeniedUpgrade, (), Infallible>,
    ) {
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(b: &mut Behaviour, peer: PeerId, id: usize, addr: &str) -> ConnectionId {
        let id = ConnectionId::new_unchecked(id);
        let addr: Multiaddr = addr.parse().unwrap();
        let _ = b.handle_established_outbound_connection(
            id,
            peer,
            &addr,
            Endpoint::Dialer,
            PortUse::Reuse,
        );
        id
    }

    fn kept(b: &Behaviour, peer: &PeerId) -> Vec<ConnectionId> {
        let mut ids: Vec<ConnectionId> = b.connections[peer]
            .iter()
            .filter(|(_, c)| c.kept)
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn keeping_a_peer_again_keeps_one_connection_the_oldest_direct_one() {
        let mut b = Behaviour::default();
        let peer = PeerId::random();
        let relay = PeerId::random();
        let relayed = open(
            &mut b,
            peer,
            1,
            &format!("/ip4/127.0.0.1/tcp/1/p2p/{relay}/p2p-circuit"),
        );
        let direct = open(&mut b, peer, 2, "/ip4/127.0.0.1/tcp/2");
        let spare = open(&mut b, peer, 3, "/ip4/127.0.0.1/udp/3/quic-v1");
        assert_eq!(kept(&b, &peer), vec![relayed, direct, spare]);

        b.set_kept(peer, false);
        assert!(kept(&b, &peer).is_empty());
        assert!(!b.is_kept(&peer));
        b.set_kept(peer, true);
        assert_eq!(kept(&b, &peer), vec![direct]);

        // A spare released on its own stays released when the peer is kept again.
        b.set_connection_kept(peer, spare, false);
        b.set_kept(peer, true);
        assert_eq!(kept(&b, &peer), vec![direct]);
    }
}
