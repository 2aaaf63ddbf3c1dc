//! [`Behaviour`]: hands each connection a handler with its send queue, refreshes leases and
//! reports interest changes as [`Event`]s.

use std::sync::Arc;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};

use crate::config::Config;
use crate::handle::Handle;
use crate::handler::Handler;
use crate::router::Shared;

/// What changed in peers' interests. Messages are not events: they go straight to the
/// subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `peer` now wants `route` (its interest is new, not a refresh).
    InterestAdded {
        peer: PeerId,
        route: String,
        tag: Option<String>,
    },
    /// `peer` no longer wants `route`: withdrawn, its connection closed, or (`expired`) its
    /// lease ran out without a refresh.
    InterestRemoved {
        peer: PeerId,
        route: String,
        expired: bool,
    },
}

/// Routes between the connected peers; see the crate documentation.
pub struct Behaviour {
    shared: Arc<Shared>,
    refresh: Option<tokio::time::Interval>,
}

impl Behaviour {
    /// A behaviour for the node `local` (the sender of locally published messages).
    pub fn new(local: PeerId, config: Config) -> Self {
        Self {
            shared: Shared::new(local, config),
            refresh: None,
        }
    }

    /// The application's handle: subscribe, publish, list.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: Arc::clone(&self.shared),
        }
    }

    fn new_handler(&self, peer: PeerId, connection: ConnectionId) -> Handler {
        let queue = self.shared.add_link(peer, connection);
        Handler::new(peer, Arc::clone(&self.shared), queue)
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.new_handler(peer, connection))
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.new_handler(peer, connection))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id,
            connection_id,
            ..
        }) = event
        {
            self.shared.remove_link(peer_id, connection_id);
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        self.shared.waker.register(cx.waker());
        if let Some(event) = self.shared.pop_event() {
            return Poll::Ready(ToSwarm::GenerateEvent(event));
        }
        let period = self.shared.config.lease() / 3;
        let refresh = self.refresh.get_or_insert_with(|| {
            let mut interval =
                tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        while refresh.poll_tick(cx).is_ready() {
            self.shared.refresh();
        }
        if let Some(event) = self.shared.pop_event() {
            return Poll::Ready(ToSwarm::GenerateEvent(event));
        }
        Poll::Pending
    }
}
