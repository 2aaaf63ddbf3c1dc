//! Gating other behaviours until a peer is admitted: [`Gates`] and [`Gated`].
//!
//! [`Gated<B>`] wraps any `NetworkBehaviour` `B`. On a connection whose peer is not admitted
//! yet, the wrapped connection handler is not polled (so `B` opens no stream to the peer), and
//! every inbound stream of `B`'s protocols waits after protocol negotiation until the peer is
//! admitted. If the peer is refused instead, those streams are dropped (the remote sees them
//! reset) and the connection is closed by the admission [`Behaviour`](crate::Behaviour).
//! Waiting rather than refusing at once matters: both sides finish the exchange at slightly
//! different moments, and a stream the remote opened right after it admitted us must not fail
//! just because our side is a few microseconds behind.
//!
//! [`Gates`] is the shared state: which peers are admitted, with which certificate, and one
//! gate per connection. Without a trusted CA (open network) every gate is born open and every
//! peer has every permission.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{InboundUpgrade, UpgradeInfo};
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::handler::{
    ConnectionEvent, ConnectionHandler, ConnectionHandlerEvent, FullyNegotiatedInbound,
    InboundUpgradeSend, ListenUpgradeError, SubstreamProtocol,
};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, Stream, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};

use crate::{Certificate, Permission};

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Open,
    Closed,
}

/// The gate of one connection, shared by the handlers of every gated behaviour on it.
#[derive(Debug)]
struct Gate {
    /// Set once the gate is open: handlers poll this without taking the lock.
    open: AtomicBool,
    state: Mutex<GateState>,
}

#[derive(Debug)]
struct GateState {
    status: Status,
    wakers: Vec<Waker>,
}

impl Gate {
    fn new(status: Status) -> Arc<Gate> {
        Arc::new(Gate {
            open: AtomicBool::new(status == Status::Open),
            state: Mutex::new(GateState {
                status,
                wakers: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        // A poisoned lock only means another thread panicked while holding it; the state
        // itself (a status and wakers) is always consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, status: Status) {
        let wakers = {
            let mut state = self.lock();
            if state.status == status {
                return;
            }
            state.status = status;
            self.open.store(status == Status::Open, Ordering::Release);
            std::mem::take(&mut state.wakers)
        };
        for w in wakers {
            w.wake();
        }
    }

    /// The status; when pending, `cx` is woken once it changes.
    fn poll_status(&self, cx: &mut Context<'_>) -> Status {
        // The common case, on every poll of every gated handler of an admitted peer.
        if self.open.load(Ordering::Acquire) {
            return Status::Open;
        }
        let mut state = self.lock();
        if state.status == Status::Pending && !state.wakers.iter().any(|w| w.will_wake(cx.waker()))
        {
            state.wakers.push(cx.waker().clone());
        }
        state.status
    }
}

/// Shared admission state: admitted peers and their certificates, and the gates of their
/// connections. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gates {
    inner: Arc<Mutex<GatesInner>>,
    /// The peer whose handler event is being processed by a gated behaviour with
    /// [`Gated::tracking_source`] (see [`Gates::current_source`]), with the remote address of
    /// the connection it arrived on.
    source: Arc<Mutex<Option<Source>>>,
}

/// A peer whose message is being processed, and the remote address of its connection.
type Source = (PeerId, Option<Multiaddr>);

#[derive(Debug)]
struct GatesInner {
    enforcing: bool,
    admitted: HashMap<PeerId, Certificate>,
    connections: HashMap<ConnectionId, (PeerId, Arc<Gate>)>,
}

impl Gates {
    /// New state; `enforcing` is false for an open network (every gate open, every permission
    /// granted).
    pub fn new(enforcing: bool) -> Gates {
        Gates {
            inner: Arc::new(Mutex::new(GatesInner {
                enforcing,
                admitted: HashMap::new(),
                connections: HashMap::new(),
            })),
            source: Arc::new(Mutex::new(None)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GatesInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether peers must be admitted before they are served.
    pub fn is_enforcing(&self) -> bool {
        self.lock().enforcing
    }

    /// Whether `peer` may be served (always true in an open network).
    pub fn is_admitted(&self, peer: &PeerId) -> bool {
        let inner = self.lock();
        !inner.enforcing || inner.admitted.contains_key(peer)
    }

    /// Whether `peer` holds `permission`: in an open network always; otherwise only an
    /// admitted peer whose certificate grants it.
    pub fn allows(&self, peer: &PeerId, permission: Permission) -> bool {
        let inner = self.lock();
        if !inner.enforcing {
            return true;
        }
        inner
            .admitted
            .get(peer)
            .is_some_and(|c| c.permissions().allows(permission))
    }

    /// The verified certificate of an admitted peer (none in an open network).
    pub fn certificate(&self, peer: &PeerId) -> Option<Certificate> {
        self.lock().admitted.get(peer).cloned()
    }

    /// Admitted peers and their certificates.
    pub fn admitted(&self) -> Vec<(PeerId, Certificate)> {
        self.lock()
            .admitted
            .iter()
            .map(|(p, c)| (*p, c.clone()))
            .collect()
    }

    /// The gate for a new connection (shared by every gated behaviour on it).
    fn gate(&self, connection: ConnectionId, peer: PeerId) -> Arc<Gate> {
        let mut inner = self.lock();
        if !inner.enforcing {
            return Gate::new(Status::Open);
        }
        let status = if inner.admitted.contains_key(&peer) {
            Status::Open
        } else {
            Status::Pending
        };
        Arc::clone(
            &inner
                .connections
                .entry(connection)
                .or_insert_with(|| (peer, Gate::new(status)))
                .1,
        )
    }

    /// Admits `peer` with its verified certificate and opens all its connections.
    pub(crate) fn admit(&self, peer: PeerId, certificate: Certificate) {
        let gates = {
            let mut inner = self.lock();
            inner.admitted.insert(peer, certificate);
            Self::gates_of(&inner, &peer)
        };
        for g in gates {
            g.set(Status::Open);
        }
    }

    /// Takes admission away from `peer` and closes the gates of its connections.
    pub(crate) fn refuse(&self, peer: &PeerId) {
        let gates = {
            let mut inner = self.lock();
            inner.admitted.remove(peer);
            Self::gates_of(&inner, peer)
        };
        for g in gates {
            g.set(Status::Closed);
        }
    }

    /// Forgets a connection; forgets the peer's admission once it has no connection left.
    pub(crate) fn remove_connection(&self, connection: &ConnectionId) {
        let mut inner = self.lock();
        if let Some((peer, gate)) = inner.connections.remove(connection) {
            gate.set(Status::Closed);
            if !inner.connections.values().any(|(p, _)| *p == peer) {
                inner.admitted.remove(&peer);
            }
        }
    }

    fn gates_of(inner: &GatesInner, peer: &PeerId) -> Vec<Arc<Gate>> {
        inner
            .connections
            .values()
            .filter(|(p, _)| p == peer)
            .map(|(_, g)| Arc::clone(g))
            .collect()
    }

    /// The remote peer whose message a gated behaviour with
    /// [`tracking_source`](Gated::tracking_source) is processing right now, if any. A record
    /// store can use it to learn who is writing (kad stores inbound records synchronously while
    /// it handles the message).
    pub fn current_source(&self) -> Option<PeerId> {
        self.source
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(peer, _)| *peer)
    }

    /// The remote address of the connection the [`current_source`](Gates::current_source)'s
    /// message arrived on, as the transport saw it (the dialled address of an outbound
    /// connection, the observed send-back address of an inbound one), never an address the
    /// peer claims about itself.
    pub fn current_source_address(&self) -> Option<Multiaddr> {
        self.source
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|(_, address)| address.clone())
    }

    fn set_source(&self, source: Option<Source>) {
        *self.source.lock().unwrap_or_else(|e| e.into_inner()) = source;
    }
}

/// A behaviour that serves a peer only once it is admitted (see the module documentation).
/// Dereferences to the wrapped behaviour.
pub struct Gated<B> {
    inner: B,
    gates: Gates,
    track_source: bool,
    /// Remote address of each open connection (kept only when tracking the source).
    remote_addresses: HashMap<ConnectionId, Multiaddr>,
}

impl<B> Gated<B> {
    /// Wraps `inner`, gated by `gates`.
    pub fn new(inner: B, gates: Gates) -> Self {
        Gated {
            inner,
            gates,
            track_source: false,
            remote_addresses: HashMap::new(),
        }
    }

    /// Records the remote peer in [`Gates::current_source`] (and the connection's remote address
    /// in [`Gates::current_source_address`]) while `inner` handles each of its connection
    /// handler events.
    pub fn tracking_source(mut self) -> Self {
        self.track_source = true;
        self
    }

    /// The wrapped behaviour.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> Deref for Gated<B> {
    type Target = B;
    fn deref(&self) -> &B {
        &self.inner
    }
}

impl<B> DerefMut for Gated<B> {
    fn deref_mut(&mut self) -> &mut B {
        &mut self.inner
    }
}

impl<B: NetworkBehaviour> NetworkBehaviour for Gated<B> {
    type ConnectionHandler = GatedHandler<THandler<B>>;
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
        let inner = self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )?;
        if self.track_source {
            self.remote_addresses
                .insert(connection_id, remote_addr.clone());
        }
        Ok(GatedHandler {
            inner,
            gate: self.gates.gate(connection_id, peer),
        })
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
        let inner = self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )?;
        if self.track_source {
            self.remote_addresses.insert(connection_id, addr.clone());
        }
        Ok(GatedHandler {
            inner,
            gate: self.gates.gate(connection_id, peer),
        })
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        // A connection another behaviour denied after this one accepted it ends in a dial or
        // listen failure, not a close.
        match &event {
            FromSwarm::ConnectionClosed(e) => {
                self.remote_addresses.remove(&e.connection_id);
            }
            FromSwarm::DialFailure(e) => {
                self.remote_addresses.remove(&e.connection_id);
            }
            FromSwarm::ListenFailure(e) => {
                self.remote_addresses.remove(&e.connection_id);
            }
            _ => {}
        }
        self.inner.on_swarm_event(event)
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        if self.track_source {
            let address = self.remote_addresses.get(&connection_id).cloned();
            self.gates.set_source(Some((peer_id, address)));
            self.inner
                .on_connection_handler_event(peer_id, connection_id, event);
            self.gates.set_source(None);
        } else {
            self.inner
                .on_connection_handler_event(peer_id, connection_id, event);
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.inner.poll(cx)
    }
}

/// Why a gated inbound stream was not handed to the wrapped handler.
#[derive(Debug)]
pub enum GateError<E> {
    /// The wrapped upgrade failed.
    Inner(E),
    /// The peer was refused (or the connection is closing) before it was admitted.
    Closed,
}

/// The wrapped handler's inbound upgrade, run once the connection's gate opens.
pub struct GatedUpgrade<U> {
    inner: U,
    gate: Arc<Gate>,
}

impl<U: InboundUpgradeSend> UpgradeInfo for GatedUpgrade<U> {
    type Info = U::Info;
    type InfoIter = U::InfoIter;

    fn protocol_info(&self) -> Self::InfoIter {
        self.inner.protocol_info()
    }
}

impl<U: InboundUpgradeSend> InboundUpgrade<Stream> for GatedUpgrade<U> {
    type Output = U::Output;
    type Error = GateError<U::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<U::Output, Self::Error>> + Send>>;

    fn upgrade_inbound(self, socket: Stream, info: Self::Info) -> Self::Future {
        let GatedUpgrade { inner, gate } = self;
        Box::pin(async move {
            match poll_fn(|cx| match gate.poll_status(cx) {
                Status::Pending => Poll::Pending,
                s => Poll::Ready(s),
            })
            .await
            {
                Status::Open => inner
                    .upgrade_inbound(socket, info)
                    .await
                    .map_err(GateError::Inner),
                _ => Err(GateError::Closed),
            }
        })
    }
}

/// The connection handler of [`Gated`].
pub struct GatedHandler<H> {
    inner: H,
    gate: Arc<Gate>,
}

impl<H: ConnectionHandler> ConnectionHandler for GatedHandler<H> {
    type FromBehaviour = H::FromBehaviour;
    type ToBehaviour = H::ToBehaviour;
    type InboundProtocol = GatedUpgrade<H::InboundProtocol>;
    type OutboundProtocol = H::OutboundProtocol;
    type InboundOpenInfo = H::InboundOpenInfo;
    type OutboundOpenInfo = H::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        let gate = Arc::clone(&self.gate);
        self.inner
            .listen_protocol()
            .map_upgrade(|inner| GatedUpgrade { inner, gate })
    }

    fn connection_keep_alive(&self) -> bool {
        self.inner.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        match self.gate.poll_status(cx) {
            Status::Open => self.inner.poll(cx),
            Status::Pending | Status::Closed => Poll::Pending,
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.inner.poll_close(cx)
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        self.inner.on_behaviour_event(event)
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        let event = match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol, info }) => {
                ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol, info })
            }
            ConnectionEvent::ListenUpgradeError(ListenUpgradeError { info, error }) => {
                match error {
                    GateError::Inner(error) => {
                        ConnectionEvent::ListenUpgradeError(ListenUpgradeError { info, error })
                    }
                    GateError::Closed => return,
                }
            }
            ConnectionEvent::FullyNegotiatedOutbound(e) => {
                ConnectionEvent::FullyNegotiatedOutbound(e)
            }
            ConnectionEvent::DialUpgradeError(e) => ConnectionEvent::DialUpgradeError(e),
            ConnectionEvent::AddressChange(e) => ConnectionEvent::AddressChange(e),
            ConnectionEvent::LocalProtocolsChange(e) => ConnectionEvent::LocalProtocolsChange(e),
            ConnectionEvent::RemoteProtocolsChange(e) => ConnectionEvent::RemoteProtocolsChange(e),
            _ => return,
        };
        self.inner.on_connection_event(event)
    }
}
