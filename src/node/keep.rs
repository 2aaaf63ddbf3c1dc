//! Which connections the mesh keeps open while idle: a `NetworkBehaviour` whose connection
//! handler keeps its connection alive only while the event loop wants it.
//!
//! A connection closes once every handler of it agrees it may (`connection_keep_alive`) and
//! no stream is open on it, after the swarm's idle timeout (`Config::idle_connection_timeout`,
//! short). Every connection starts *kept*; the mesh releases the ones it does not want
//! (a connection this node opened only for a DHT query), which then close a few seconds
//! after their last query, unless another concern holds them (open streams of tunnels or
//! blobs, pending RPC requests, routes interests, relay reservations). A released connection
//! can be kept again (it became useful: an RPC call, a node below `--min-peers`).

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
    connections: HashMap<PeerId, HashMap<ConnectionId, bool>>,
    /// Decisions to pass on to the handlers.
    pending: VecDeque<ToSwarm<Infallible, bool>>,
}

impl Behaviour {
    /// Keeps (`true`) or releases (`false`) every connection to `peer`.
    pub fn set_kept(&mut self, peer: PeerId, kept: bool) {
        self.set(peer, None, kept);
    }

    /// Keeps or releases one connection.
    pub fn set_connection_kept(&mut self, peer: PeerId, id: ConnectionId, kept: bool) {
        self.set(peer, Some(id), kept);
    }

    fn set(&mut self, peer: PeerId, only: Option<ConnectionId>, kept: bool) {
        let Some(conns) = self.connections.get_mut(&peer) else {
            return;
        };
        for (id, k) in conns.iter_mut() {
            if *k != kept && only.is_none_or(|o| o == *id) {
                *k = kept;
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
            .is_some_and(|c| c.values().any(|k| *k))
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.connections.entry(peer).or_default().insert(id, true);
        Ok(Handler { kept: true })
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.connections.entry(peer).or_default().insert(id, true);
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
