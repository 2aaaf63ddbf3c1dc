//! [`Behaviour`]: hands each connection a [`Handler`] and keeps [`Shared`] up to date with
//! the connections it is told of; dials peers that streams are opened to.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::behaviour::{ConnectionClosed, ConnectionEstablished, DialFailure};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, DialError, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::control::Control;
use crate::handler::Handler;
use crate::shared::Shared;

/// Dials asked for by opens and not yet handed to the swarm, at most.
const MAX_QUEUED_DIALS: usize = 64;

/// Raw streams for any number of protocols; see the crate documentation.
pub struct Behaviour {
    shared: Arc<Mutex<Shared>>,
    dials: mpsc::Receiver<PeerId>,
}

impl Behaviour {
    pub fn new(config: Config) -> Self {
        let (sender, dials) = mpsc::channel(MAX_QUEUED_DIALS);
        Self {
            shared: Arc::new(Mutex::new(Shared::new(config, sender))),
            dials,
        }
    }

    /// A handle to open and accept streams.
    pub fn control(&self) -> Control {
        Control::new(self.shared.clone())
    }

    fn handler(&self, connection: ConnectionId, peer: PeerId) -> Handler {
        let requests = Shared::lock(&self.shared).new_handler(connection);
        Handler::new(peer, self.shared.clone(), requests)
    }
}

impl Default for Behaviour {
    fn default() -> Self {
        Self::new(Config::new())
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(connection, peer))
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(connection, peer))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                ..
            }) => Shared::lock(&self.shared).connection_established(peer_id, connection_id),
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id,
                ..
            }) => Shared::lock(&self.shared).connection_closed(peer_id, connection_id),
            // A dial refused because one is under way already says nothing yet.
            FromSwarm::DialFailure(DialFailure {
                peer_id: Some(peer),
                error,
                ..
            }) if !matches!(error, DialError::DialPeerConditionFalse(_)) => {
                Shared::lock(&self.shared).dial_failed(peer, error.to_string())
            }
            _ => {}
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

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        match self.dials.poll_recv(cx) {
            Poll::Ready(Some(peer)) => Poll::Ready(ToSwarm::Dial {
                opts: DialOpts::peer_id(peer)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
            }),
            // The sender lives in `shared`, which `self` holds.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}
