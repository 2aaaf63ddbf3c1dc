//! [`Confirmed`]: the wrapped behaviour's outbound streams are negotiated as with
//! multistream-select `V1` (the listener confirms the protocol before the stream is used),
//! while the swarm negotiates optimistically (`V1Lazy`, set in `builder.rs`).
//!
//! libp2p's swarm chooses the negotiation of outbound streams for all behaviours at once
//! (`with_substream_upgrade_protocol_override`); there is no setting per stream. Under `V1Lazy`
//! a dialer settles on the *last* protocol it proposes without waiting for the answer, so the
//! first bytes go out with the proposal (one round trip less), but a peer that does not speak
//! the protocol only shows later as a broken stream instead of a refused negotiation. Every
//! behaviour except the raw streams relies on that refusal (ping and kad stop using a peer
//! that lacks their protocol; request-response reports `UnsupportedProtocols`), and many talk
//! to peers that may lack the protocol (IPFS and js-libp2p peers). This wrapper appends a
//! sentinel protocol that no peer supports to each proposal: the real protocols are then
//! never the last, so they are confirmed as in `V1`; a refusal of all of them ends in the
//! sentinel, which the wrapper reports to the wrapped handler as the `NegotiationFailed` it
//! would have had under `V1`. The raw streams (`mcc-streams`) decide per stream themselves.
//!
//! [`Confirmed::optimistic_when_listed`] drops the sentinel from a proposal whose last
//! protocol the peer listed on this connection (identify's protocol list, reported to every
//! handler as `RemoteProtocolsChange`): that stream is negotiated optimistically, its first
//! bytes leaving with the proposal, one round trip less. A peer that listed the protocol
//! accepts it, so nothing changes but the latency; only a peer that lists a protocol and then
//! refuses it would show a broken stream (an I/O error) instead of a refused negotiation.
//! Until identify has run, proposals keep the sentinel.

use std::collections::HashSet;
use std::ops::{Deref, DerefMut};
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{OutboundUpgrade, UpgradeInfo};
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::handler::{
    ConnectionEvent, ConnectionHandler, ConnectionHandlerEvent, DialUpgradeError,
    FullyNegotiatedOutbound, OutboundUpgradeSend, ProtocolsChange, UpgradeInfoSend,
};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, Stream, StreamUpgradeError,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};

/// Proposed after the wrapped protocols; no peer supports it.
const SENTINEL: &str = "/mcc/confirm-previous";

/// Wraps a behaviour; see the module documentation.
pub struct Confirmed<B> {
    inner: B,
    /// Whether proposals ending with a protocol the peer listed go without the sentinel.
    optimistic_when_listed: bool,
}

impl<B> Confirmed<B> {
    /// Every outbound stream of `inner` is confirmed.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            optimistic_when_listed: false,
        }
    }

    /// Outbound streams of `inner` are confirmed, except those whose last proposed protocol
    /// the peer listed on the connection: those are negotiated optimistically.
    pub fn optimistic_when_listed(inner: B) -> Self {
        Self {
            inner,
            optimistic_when_listed: true,
        }
    }

    fn handler<H>(&self, inner: H) -> Handler<H> {
        Handler {
            inner,
            optimistic_when_listed: self.optimistic_when_listed,
            listed: HashSet::new(),
        }
    }
}

impl<B> Deref for Confirmed<B> {
    type Target = B;
    fn deref(&self) -> &B {
        &self.inner
    }
}

impl<B> DerefMut for Confirmed<B> {
    fn deref_mut(&mut self) -> &mut B {
        &mut self.inner
    }
}

impl<B: NetworkBehaviour> NetworkBehaviour for Confirmed<B> {
    type ConnectionHandler = Handler<THandler<B>>;
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
        self.inner
            .handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)
            .map(|inner| self.handler(inner))
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
        self.inner
            .handle_established_outbound_connection(
                connection_id,
                peer,
                addr,
                role_override,
                port_use,
            )
            .map(|inner| self.handler(inner))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.inner.on_swarm_event(event)
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

/// The wrapped handler, its outbound upgrades followed by the sentinel.
pub struct Handler<H> {
    inner: H,
    /// See [`Confirmed::optimistic_when_listed`].
    optimistic_when_listed: bool,
    /// The protocols the peer listed on this connection (kept only when
    /// `optimistic_when_listed`).
    listed: HashSet<String>,
}

impl<H> Handler<H> {
    /// Keeps track of the protocols the peer lists.
    fn on_remote_protocols(&mut self, change: &ProtocolsChange<'_>) {
        if !self.optimistic_when_listed {
            return;
        }
        match change.clone() {
            ProtocolsChange::Added(added) => {
                self.listed.extend(added.map(|p| p.as_ref().to_owned()));
            }
            ProtocolsChange::Removed(removed) => {
                for p in removed {
                    self.listed.remove(p.as_ref());
                }
            }
        }
    }
}

impl<H: ConnectionHandler> ConnectionHandler for Handler<H> {
    type FromBehaviour = H::FromBehaviour;
    type ToBehaviour = H::ToBehaviour;
    type InboundProtocol = H::InboundProtocol;
    type OutboundProtocol = Upgrade<H::OutboundProtocol>;
    type InboundOpenInfo = H::InboundOpenInfo;
    type OutboundOpenInfo = H::OutboundOpenInfo;

    fn listen_protocol(
        &self,
    ) -> libp2p::swarm::SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.inner.listen_protocol()
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
        let event = std::task::ready!(self.inner.poll(cx));
        let (optimistic, listed) = (self.optimistic_when_listed, &self.listed);
        Poll::Ready(event.map_protocol(|inner| {
            // Under `V1Lazy` the last proposed protocol is the one taken optimistically.
            let confirm = !(optimistic
                && UpgradeInfoSend::protocol_info(&inner)
                    .last()
                    .is_some_and(|p| listed.contains(p.as_ref())));
            Upgrade { inner, confirm }
        }))
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
            ConnectionEvent::FullyNegotiatedInbound(e) => {
                ConnectionEvent::FullyNegotiatedInbound(e)
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol,
                info,
            }) => {
                ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound { protocol, info })
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info, error }) => {
                let error = match error {
                    StreamUpgradeError::Apply(Error::Inner(e)) => StreamUpgradeError::Apply(e),
                    StreamUpgradeError::Apply(Error::Unsupported) => {
                        StreamUpgradeError::NegotiationFailed
                    }
                    StreamUpgradeError::NegotiationFailed => StreamUpgradeError::NegotiationFailed,
                    StreamUpgradeError::Timeout => StreamUpgradeError::Timeout,
                    StreamUpgradeError::Io(e) => StreamUpgradeError::Io(e),
                };
                ConnectionEvent::DialUpgradeError(DialUpgradeError { info, error })
            }
            ConnectionEvent::ListenUpgradeError(e) => ConnectionEvent::ListenUpgradeError(e),
            ConnectionEvent::AddressChange(e) => ConnectionEvent::AddressChange(e),
            ConnectionEvent::LocalProtocolsChange(e) => ConnectionEvent::LocalProtocolsChange(e),
            ConnectionEvent::RemoteProtocolsChange(e) => {
                self.on_remote_protocols(&e);
                ConnectionEvent::RemoteProtocolsChange(e)
            }
            _ => return,
        };
        self.inner.on_connection_event(event)
    }
}

/// A protocol name of the wrapped upgrade, or the sentinel.
#[derive(Clone)]
pub enum Info<I> {
    Inner(I),
    Sentinel,
}

impl<I: AsRef<str>> AsRef<str> for Info<I> {
    fn as_ref(&self) -> &str {
        match self {
            Info::Inner(i) => i.as_ref(),
            Info::Sentinel => SENTINEL,
        }
    }
}

/// The wrapped outbound upgrade with the sentinel proposed after its protocols (unless the
/// stream goes optimistically).
pub struct Upgrade<U> {
    inner: U,
    /// Whether the sentinel follows the wrapped protocols.
    confirm: bool,
}

/// The wrapped upgrade's error, or: the peer refused every protocol.
#[derive(Debug)]
pub enum Error<E> {
    Inner(E),
    Unsupported,
}

impl<U: OutboundUpgradeSend> UpgradeInfo for Upgrade<U> {
    type Info = Info<<U as UpgradeInfoSend>::Info>;
    type InfoIter = std::vec::IntoIter<Self::Info>;

    fn protocol_info(&self) -> Self::InfoIter {
        let mut all: Vec<Self::Info> = UpgradeInfoSend::protocol_info(&self.inner)
            .map(Info::Inner)
            .collect();
        if self.confirm {
            all.push(Info::Sentinel);
        }
        all.into_iter()
    }
}

impl<U: OutboundUpgradeSend> OutboundUpgrade<Stream> for Upgrade<U> {
    type Output = U::Output;
    type Error = Error<U::Error>;
    type Future = BoxFuture<'static, Result<U::Output, Error<U::Error>>>;

    fn upgrade_outbound(self, stream: Stream, info: Self::Info) -> Self::Future {
        match info {
            Info::Inner(info) => OutboundUpgradeSend::upgrade_outbound(self.inner, stream, info)
                .map(|r| r.map_err(Error::Inner))
                .boxed(),
            Info::Sentinel => futures::future::ready(Err(Error::Unsupported)).boxed(),
        }
    }
}
