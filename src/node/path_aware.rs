//! [`PathAware`]: two adjustments of wrapped behaviours to relayed connections.
//!
//! **Prefer direct** ([`PathAware::prefer_direct`]): new streams to a peer go over a direct
//! connection once there is one. `mcc-streams` opens a stream on the newest connection to the peer it was told of. After a
//! hole punch a peer has a relayed and a direct connection; new tunnels, blob transfers and
//! user streams should take the direct one, while the streams already on the relayed one keep
//! running. The wrapper hides relayed connections from the wrapped behaviour while a direct
//! connection to the same peer is open: it does not pass on their establishment, and when a
//! direct connection appears it tells the wrapped behaviour the relayed ones closed. Their
//! handlers are untouched, so open streams carry on; the connection itself closes when idle.
//!
//! **External addresses as hole-punch candidates** ([`PathAware::external_candidates`]): DCUtR
//! offers the peer only the addresses identify *observed*, and identify skips an observation
//! equal to a known external address — so a node reachable at its listen address (a public
//! host, any node on loopback) would offer none and every punch with it would fail. The
//! wrapper also hands the wrapped behaviour each confirmed external address as a candidate.

use std::collections::HashMap;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint, Multiaddr};
use libp2p::swarm::behaviour::{
    ConnectionClosed, ConnectionEstablished, FromSwarm, NewExternalAddrCandidate,
};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent,
    ToSwarm,
};

/// Wraps a behaviour; see the module documentation.
pub struct PathAware<B> {
    inner: B,
    /// Hide a peer's relayed connections while it has a direct one.
    prefer_direct: bool,
    /// Pass confirmed external addresses on as address candidates too.
    external_candidates: bool,
    /// Open connections per peer: endpoint, and whether the wrapped behaviour knows of it.
    connections: HashMap<PeerId, HashMap<ConnectionId, (ConnectedPoint, bool)>>,
}

impl<B> PathAware<B> {
    /// New streams take a direct connection when there is one.
    pub fn prefer_direct(inner: B) -> Self {
        Self {
            inner,
            prefer_direct: true,
            external_candidates: false,
            connections: HashMap::new(),
        }
    }

    /// Confirmed external addresses are address candidates too.
    pub fn external_candidates(inner: B) -> Self {
        Self {
            inner,
            prefer_direct: false,
            external_candidates: true,
            connections: HashMap::new(),
        }
    }
}

impl<B> std::ops::Deref for PathAware<B> {
    type Target = B;
    fn deref(&self) -> &B {
        &self.inner
    }
}

impl<B> std::ops::DerefMut for PathAware<B> {
    fn deref_mut(&mut self) -> &mut B {
        &mut self.inner
    }
}

impl<B: NetworkBehaviour> PathAware<B> {
    fn established(&mut self, e: ConnectionEstablished) {
        let relayed = e.endpoint.is_relayed();
        let conns = self.connections.entry(e.peer_id).or_default();
        let has_direct = conns.values().any(|(p, _)| !p.is_relayed());
        let visible = !(relayed && has_direct);
        let other_established = conns.values().filter(|(_, v)| *v).count();
        if visible {
            self.inner
                .on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
                    other_established,
                    ..e
                }));
        }
        conns.insert(e.connection_id, (e.endpoint.clone(), visible));
        if relayed || has_direct {
            return;
        }
        // The first direct connection: hide the relayed ones from now on.
        let hidden: Vec<(ConnectionId, ConnectedPoint)> = conns
            .iter_mut()
            .filter(|(_, (p, v))| *v && p.is_relayed())
            .map(|(id, (p, v))| {
                *v = false;
                (*id, p.clone())
            })
            .collect();
        let remaining = conns.values().filter(|(_, v)| *v).count();
        for (id, endpoint) in hidden {
            self.inner
                .on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
                    peer_id: e.peer_id,
                    connection_id: id,
                    endpoint: &endpoint,
                    cause: None,
                    remaining_established: remaining,
                }));
        }
    }

    fn closed(&mut self, e: ConnectionClosed) {
        let Some(conns) = self.connections.get_mut(&e.peer_id) else {
            self.inner.on_swarm_event(FromSwarm::ConnectionClosed(e));
            return;
        };
        let visible = conns
            .remove(&e.connection_id)
            .map(|(_, v)| v)
            .unwrap_or(true);
        let remaining = conns.values().filter(|(_, v)| *v).count();
        if conns.is_empty() {
            self.connections.remove(&e.peer_id);
        }
        if visible {
            self.inner
                .on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
                    remaining_established: remaining,
                    ..e
                }));
        }
    }
}

impl<B: NetworkBehaviour> NetworkBehaviour for PathAware<B> {
    type ConnectionHandler = THandler<B>;
    type ToSwarm = B::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) if self.prefer_direct => self.established(e),
            FromSwarm::ConnectionClosed(e) if self.prefer_direct => self.closed(e),
            FromSwarm::ExternalAddrConfirmed(e) if self.external_candidates => {
                self.inner
                    .on_swarm_event(FromSwarm::NewExternalAddrCandidate(
                        NewExternalAddrCandidate { addr: e.addr },
                    ));
                self.inner.on_swarm_event(event)
            }
            other => self.inner.on_swarm_event(other),
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event)
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.inner.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use libp2p::swarm::dummy;

    use super::*;

    /// Records what it is told of connections: (connection, established?).
    #[derive(Default)]
    struct Recorder(Vec<(ConnectionId, bool, usize)>);

    impl NetworkBehaviour for Recorder {
        type ConnectionHandler = dummy::ConnectionHandler;
        type ToSwarm = ();
        fn handle_established_inbound_connection(
            &mut self,
            _: ConnectionId,
            _: PeerId,
            _: &Multiaddr,
            _: &Multiaddr,
        ) -> Result<THandler<Self>, ConnectionDenied> {
            Ok(dummy::ConnectionHandler)
        }
        fn handle_established_outbound_connection(
            &mut self,
            _: ConnectionId,
            _: PeerId,
            _: &Multiaddr,
            _: Endpoint,
            _: PortUse,
        ) -> Result<THandler<Self>, ConnectionDenied> {
            Ok(dummy::ConnectionHandler)
        }
        fn on_swarm_event(&mut self, event: FromSwarm) {
            match event {
                FromSwarm::ConnectionEstablished(e) => {
                    self.0.push((e.connection_id, true, e.other_established))
                }
                FromSwarm::ConnectionClosed(e) => {
                    self.0
                        .push((e.connection_id, false, e.remaining_established))
                }
                _ => {}
            }
        }
        fn on_connection_handler_event(
            &mut self,
            _: PeerId,
            _: ConnectionId,
            e: THandlerOutEvent<Self>,
        ) {
            libp2p::core::util::unreachable(e)
        }
        fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<(), THandlerInEvent<Self>>> {
            Poll::Pending
        }
    }

    fn endpoint(addr: &str) -> ConnectedPoint {
        ConnectedPoint::Dialer {
            address: addr.parse().unwrap(),
            role_override: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        }
    }

    fn open(b: &mut PathAware<Recorder>, peer: PeerId, id: ConnectionId, ep: &ConnectedPoint) {
        b.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
            peer_id: peer,
            connection_id: id,
            endpoint: ep,
            failed_addresses: &[],
            other_established: 0,
        }));
    }

    fn close(b: &mut PathAware<Recorder>, peer: PeerId, id: ConnectionId, ep: &ConnectedPoint) {
        b.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: peer,
            connection_id: id,
            endpoint: ep,
            cause: None,
            remaining_established: 0,
        }));
    }

    #[test]
    fn relayed_connections_are_hidden_once_a_direct_one_is_open() {
        let peer = PeerId::random();
        let relay = PeerId::random();
        let relayed = endpoint(&format!("/ip4/11.0.0.1/tcp/1/p2p/{relay}/p2p-circuit"));
        let direct = endpoint("/ip4/11.0.0.2/tcp/2");
        let (r1, d, r2) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
            ConnectionId::new_unchecked(3),
        );
        let mut b = PathAware::prefer_direct(Recorder::default());
        open(&mut b, peer, r1, &relayed);
        assert_eq!(b.0, vec![(r1, true, 0)], "relayed only: visible");
        open(&mut b, peer, d, &direct);
        assert_eq!(
            b.0[1..],
            [(d, true, 1), (r1, false, 1)],
            "punched: relayed hidden"
        );
        open(&mut b, peer, r2, &relayed);
        assert_eq!(
            b.0.len(),
            3,
            "a relayed connection next to a direct one stays hidden"
        );
        close(&mut b, peer, r1, &relayed);
        close(&mut b, peer, r2, &relayed);
        assert_eq!(b.0.len(), 3, "hidden connections close silently");
        close(&mut b, peer, d, &direct);
        assert_eq!(b.0[3], (d, false, 0));
        assert!(b.connections.is_empty());
    }
}
