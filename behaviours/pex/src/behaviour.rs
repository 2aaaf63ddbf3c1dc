//! [`Behaviour`] and [`Event`]: who has been told what, the rate limit, and the
//! request-response exchange underneath.

use std::collections::{HashMap, HashSet, VecDeque};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures::FutureExt;
use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::request_response::{
    self, OutboundFailure, OutboundRequestId, ProtocolSupport, ResponseChannel,
};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};

use crate::codec::{Codec, PeerRecord};
use crate::{Config, MAX_SHARED, PROTOCOL_NAME};

type Inner = request_response::Behaviour<Codec>;

/// What the peer exchange reports.
#[derive(Debug)]
pub enum Event {
    /// `peer` shared peers it is connected to.
    Received {
        peer: PeerId,
        peers: Vec<PeerRecord>,
    },
    /// `peer` acknowledged a message of `count` peers.
    Sent { peer: PeerId, count: usize },
    /// A message to `peer` was not delivered; its peers will be offered again (unless the
    /// remote does not speak the protocol, then nothing more is sent to it).
    OutboundFailure {
        peer: PeerId,
        error: OutboundFailure,
    },
}

/// A connected remote.
#[derive(Default)]
struct Remote {
    connections: usize,
    /// Peers sent to it, on the way or queued for it: each is offered once, and at most
    /// [`Config::max_peers_per_remote`] in all.
    told: HashSet<PeerId>,
    /// Peers to send to it, oldest first. A peer no longer shared when its turn comes is
    /// skipped; the addresses sent are those shared at that moment.
    queue: VecDeque<PeerId>,
    last_sent: Option<Instant>,
    /// The message on the way, with the peers it carries.
    in_flight: Option<(OutboundRequestId, Vec<PeerId>)>,
    /// It does not speak the protocol.
    unsupported: bool,
}

impl Remote {
    /// Queues `peer` for the remote `remote` unless it was offered already, is the remote, or
    /// the remote was offered `cap` peers already.
    fn offer(&mut self, remote: &PeerId, peer: PeerId, cap: usize) {
        if peer == *remote || self.unsupported || self.told.len() >= cap {
            return;
        }
        if self.told.insert(peer) {
            self.queue.push_back(peer);
        }
    }

    /// Whether a message may be started now; `Err(due)` when only the rate limit holds it.
    fn ready(&self, now: Instant, interval: Duration) -> Result<bool, Instant> {
        if self.unsupported
            || self.in_flight.is_some()
            || self.connections == 0
            || self.queue.is_empty()
        {
            return Ok(false);
        }
        match self.last_sent {
            Some(last) if now.duration_since(last) < interval => Err(last + interval),
            _ => Ok(true),
        }
    }
}

/// The peer exchange behaviour: see the crate docs.
pub struct Behaviour {
    inner: Inner,
    config: Config,
    /// Peers to share, with their addresses.
    shared: HashMap<PeerId, Vec<Multiaddr>>,
    remotes: HashMap<PeerId, Remote>,
    pending_events: VecDeque<Event>,
    /// Something changed that may let a message go (a peer to share, a remote connected, a
    /// message answered or failed, the timer): `poll` looks at the remotes only then, so a
    /// poll costs nothing when nothing changed, whatever the number of peers.
    dirty: bool,
    /// Wakes `poll` when a rate-limited remote may be sent to again, at `timer_at`.
    timer: Option<futures_timer::Delay>,
    timer_at: Option<Instant>,
    waker: Option<Waker>,
}

impl Behaviour {
    pub fn new(config: Config) -> Self {
        let inner = request_response::Behaviour::with_codec(
            Codec::new(&config),
            [(PROTOCOL_NAME, ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(config.request_timeout())
                .with_max_concurrent_streams(32),
        );
        Self {
            inner,
            config,
            shared: HashMap::new(),
            remotes: HashMap::new(),
            pending_events: VecDeque::new(),
            dirty: false,
            timer: None,
            timer_at: None,
            waker: None,
        }
    }

    /// Shares `peer` at `addrs` with every connected remote that has not been told yet
    /// (replacing the addresses if it is already shared). Ignored beyond [`MAX_SHARED`]
    /// peers or without addresses.
    pub fn add_peer(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if addrs.is_empty() || (!self.shared.contains_key(&peer) && self.shared.len() >= MAX_SHARED)
        {
            return;
        }
        if self.shared.insert(peer, addrs).is_some() {
            // Already offered to every remote: those not told yet get the new addresses.
            return;
        }
        let cap = self.config.max_peers_per_remote();
        for (remote, state) in self.remotes.iter_mut() {
            state.offer(remote, peer, cap);
        }
        self.changed();
    }

    /// Marks that a message may be due and wakes `poll`.
    fn changed(&mut self) {
        self.dirty = true;
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Stops sharing `peer` (remotes already told keep what they were told).
    pub fn remove_peer(&mut self, peer: &PeerId) {
        self.shared.remove(peer);
    }

    /// How many peers are shared.
    pub fn shared_peers(&self) -> usize {
        self.shared.len()
    }

    /// Starts the messages that are due; returns the earliest time a rate-limited remote
    /// with something to send becomes due. O(remotes), plus the peers sent.
    fn send_due(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let max = self.config.max_peers_per_message();
        let interval = self.config.min_interval();
        for (remote, state) in self.remotes.iter_mut() {
            match state.ready(now, interval) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(due) => {
                    next = Some(next.map_or(due, |n| n.min(due)));
                    continue;
                }
            }
            let mut batch = Vec::new();
            while batch.len() < max {
                let Some(p) = state.queue.pop_front() else {
                    break;
                };
                if let Some(addrs) = self.shared.get(&p) {
                    batch.push(PeerRecord {
                        peer_id: p,
                        addrs: addrs.clone(),
                    });
                }
            }
            if batch.is_empty() {
                continue;
            }
            let ids: Vec<PeerId> = batch.iter().map(|p| p.peer_id).collect();
            let id = self.inner.send_request(remote, batch);
            state.in_flight = Some((id, ids));
            state.last_sent = Some(now);
        }
        next
    }

    /// Arms the timer for `at` unless it already fires earlier.
    fn wake_at(&mut self, at: Instant, now: Instant) {
        if self.timer_at.is_some_and(|t| t <= at) {
            return;
        }
        let wait = at
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        self.timer = Some(futures_timer::Delay::new(wait));
        self.timer_at = Some(at);
    }

    fn on_inner_event(&mut self, event: request_response::Event<Vec<PeerRecord>, ()>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    self.ack(channel);
                    self.pending_events.push_back(Event::Received {
                        peer,
                        peers: request,
                    });
                }
                request_response::Message::Response { request_id, .. } => {
                    if let Some(state) = self.remotes.get_mut(&peer)
                        && let Some((id, ids)) = state.in_flight.take()
                    {
                        if id != request_id {
                            state.in_flight = Some((id, ids));
                            return;
                        }
                        self.pending_events.push_back(Event::Sent {
                            peer,
                            count: ids.len(),
                        });
                        self.dirty = true;
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(state) = self.remotes.get_mut(&peer) {
                    if let Some((id, ids)) = state.in_flight.take() {
                        if id == request_id {
                            // Offered again, first.
                            for p in ids.into_iter().rev() {
                                state.queue.push_front(p);
                            }
                            self.dirty = true;
                        } else {
                            state.in_flight = Some((id, ids));
                        }
                    }
                    if matches!(error, OutboundFailure::UnsupportedProtocols) {
                        state.unsupported = true;
                        state.queue.clear();
                        state.told.clear();
                    }
                }
                self.pending_events
                    .push_back(Event::OutboundFailure { peer, error });
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, "peer exchange: inbound failure: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn ack(&mut self, channel: ResponseChannel<()>) {
        // Fails only if the remote is gone: nothing to do then.
        let _ = self.inner.send_response(channel, ());
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = THandler<Inner>;
    type ToSwarm = Event;

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
        match &event {
            FromSwarm::ConnectionEstablished(e) => {
                let state = self.remotes.entry(e.peer_id).or_default();
                state.connections += 1;
                if state.connections == 1 {
                    let cap = self.config.max_peers_per_remote();
                    for p in self.shared.keys() {
                        state.offer(&e.peer_id, *p, cap);
                    }
                    self.changed();
                }
            }
            FromSwarm::ConnectionClosed(e) => {
                if e.remaining_established == 0 {
                    self.remotes.remove(&e.peer_id);
                } else if let Some(r) = self.remotes.get_mut(&e.peer_id) {
                    r.connections = r.connections.saturating_sub(1);
                }
            }
            _ => {}
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        loop {
            if let Some(event) = self.pending_events.pop_front() {
                return Poll::Ready(ToSwarm::GenerateEvent(event));
            }
            if self.dirty {
                self.dirty = false;
                let now = Instant::now();
                if let Some(at) = self.send_due(now) {
                    self.wake_at(at, now);
                }
            }
            if let Some(timer) = self.timer.as_mut()
                && timer.poll_unpin(cx).is_ready()
            {
                self.timer = None;
                self.timer_at = None;
                self.dirty = true;
                continue;
            }
            match self.inner.poll(cx) {
                Poll::Ready(ToSwarm::GenerateEvent(event)) => self.on_inner_event(event),
                Poll::Ready(other) => {
                    return Poll::Ready(
                        other.map_out(|_| unreachable!("GenerateEvent is matched above")),
                    );
                }
                Poll::Pending => {
                    self.waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        }
    }
}
