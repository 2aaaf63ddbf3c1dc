//! [`Shared`]: the state the behaviour, its connection handlers and every [`Control`] share
//! behind one mutex: accepted protocols, the connections that can open streams, opens waiting
//! for a dial, and the counters. No lock is held across an await or while a stream moves.
//!
//! [`Control`]: crate::Control

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use libp2p::swarm::ConnectionId;
use libp2p::{PeerId, Stream, StreamProtocol};
use tokio::sync::{mpsc, oneshot};

use crate::config::{Config, MAX_COUNTED_PROTOCOLS};
use crate::error::{AlreadyRegistered, OpenError};
use crate::stats::{Counters, ProtocolStats};

/// Peers with opens waiting for a dial, at most.
const MAX_WAITING_PEERS: usize = 1024;

/// An inbound stream on its way to the acceptor.
pub(crate) type Inbound = (PeerId, Stream);

/// A request to open a stream, answered on `reply`.
/// (Public only as the handler's open info; not reachable by name.)
pub struct OpenRequest {
    pub(crate) protocol: StreamProtocol,
    pub(crate) reply: oneshot::Sender<Result<Stream, OpenError>>,
    pub(crate) counters: Arc<Counters>,
}

/// An accepted protocol: the sending side of its acceptor's queue.
struct Registration {
    id: u64,
    sender: mpsc::Sender<Inbound>,
}

/// Where an open request goes.
pub(crate) enum Route {
    /// To this connection's handler.
    Connection(mpsc::Sender<OpenRequest>, OpenRequest),
    /// It waits for the connection being dialed.
    Waiting,
}

pub(crate) struct Shared {
    config: Config,
    registrations: HashMap<StreamProtocol, Registration>,
    next_registration: u64,
    /// The open-request sender of every live handler, by connection.
    handlers: HashMap<ConnectionId, mpsc::Sender<OpenRequest>>,
    /// The connections the behaviour was told of (not hidden by a wrapper), newest last.
    connections: HashMap<PeerId, Vec<ConnectionId>>,
    /// Opens waiting for a connection to their peer.
    waiting: HashMap<PeerId, Vec<OpenRequest>>,
    /// Peers to dial, read by the behaviour's `poll`.
    dials: mpsc::Sender<PeerId>,
    counters: HashMap<StreamProtocol, Arc<Counters>>,
    /// Counters of protocols beyond [`MAX_COUNTED_PROTOCOLS`]: kept by no one.
    uncounted: Arc<Counters>,
}

impl Shared {
    pub fn new(config: Config, dials: mpsc::Sender<PeerId>) -> Self {
        Self {
            config,
            registrations: HashMap::new(),
            next_registration: 0,
            handlers: HashMap::new(),
            connections: HashMap::new(),
            waiting: HashMap::new(),
            dials,
            counters: HashMap::new(),
            uncounted: Arc::default(),
        }
    }

    pub fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
        // A panic while the lock was held cannot leave the maps half-written in a way that
        // matters: every method here changes one entry at a time.
        shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn counters(&mut self, protocol: &StreamProtocol) -> Arc<Counters> {
        if let Some(c) = self.counters.get(protocol) {
            return c.clone();
        }
        if self.counters.len() >= MAX_COUNTED_PROTOCOLS {
            return self.uncounted.clone();
        }
        let c = Arc::<Counters>::default();
        self.counters.insert(protocol.clone(), c.clone());
        c
    }

    pub fn stats(&self) -> Vec<ProtocolStats> {
        let mut all: Vec<ProtocolStats> =
            self.counters.iter().map(|(p, c)| c.snapshot(p)).collect();
        all.sort_by(|a, b| a.protocol.cmp(&b.protocol));
        all
    }

    /// Registers `protocol`; returns its queue's receiver and the registration's id.
    pub fn accept(
        &mut self,
        protocol: StreamProtocol,
    ) -> Result<(mpsc::Receiver<Inbound>, u64), AlreadyRegistered> {
        if let Some(r) = self.registrations.get(&protocol)
            && !r.sender.is_closed()
        {
            return Err(AlreadyRegistered(protocol));
        }
        let (sender, receiver) = mpsc::channel(self.config.max_queued());
        let id = self.next_registration;
        self.next_registration += 1;
        self.registrations
            .insert(protocol, Registration { id, sender });
        Ok((receiver, id))
    }

    /// Removes the registration `id` of `protocol` (not a newer one).
    pub fn unregister(&mut self, protocol: &StreamProtocol, id: u64) {
        if self.registrations.get(protocol).is_some_and(|r| r.id == id) {
            self.registrations.remove(protocol);
        }
    }

    /// The protocols accepted now.
    pub fn accepted_protocols(&self) -> Vec<StreamProtocol> {
        self.registrations
            .iter()
            .filter(|(_, r)| !r.sender.is_closed())
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// The queue of `protocol`'s acceptor, if it is accepted.
    pub fn acceptor(&self, protocol: &StreamProtocol) -> Option<mpsc::Sender<Inbound>> {
        self.registrations.get(protocol).map(|r| r.sender.clone())
    }

    /// A new handler's channel for open requests.
    pub fn new_handler(&mut self, connection: ConnectionId) -> mpsc::Receiver<OpenRequest> {
        // Handlers of closed connections (or of ones a wrapper hid) are gone: forget them.
        self.handlers.retain(|_, s| !s.is_closed());
        let (sender, receiver) = mpsc::channel(self.config.max_opening_per_connection());
        self.handlers.insert(connection, sender);
        receiver
    }

    /// Where an open request to `peer` goes: its newest connection, or a dial.
    pub fn route(&mut self, peer: PeerId, request: OpenRequest) -> Result<Route, OpenError> {
        let live = self.connections.get(&peer).and_then(|conns| {
            conns
                .iter()
                .rev()
                .filter_map(|c| self.handlers.get(c))
                .find(|s| !s.is_closed())
        });
        if let Some(sender) = live {
            return Ok(Route::Connection(sender.clone(), request));
        }
        let limit = self.config.max_opening_per_connection();
        let full = self.waiting.len() >= MAX_WAITING_PEERS && !self.waiting.contains_key(&peer);
        let waiting = self.waiting.entry(peer);
        if full {
            return Err(OpenError::NotConnected {
                peer,
                reason: "too many peers being dialed for streams".into(),
            });
        }
        let queue = waiting.or_default();
        if queue.len() >= limit {
            return Err(OpenError::NotConnected {
                peer,
                reason: format!("{limit} streams already wait for a connection"),
            });
        }
        let first = queue.is_empty();
        queue.push(request);
        if first {
            // A full dial queue means dials are pending anyway; this open then waits for
            // whichever connection comes, or its caller's timeout.
            let _ = self.dials.try_send(peer);
        }
        Ok(Route::Waiting)
    }

    /// The behaviour was told of a connection: opens waiting for its peer go to it.
    pub fn connection_established(&mut self, peer: PeerId, connection: ConnectionId) {
        self.connections.entry(peer).or_default().push(connection);
        let Some(waiting) = self.waiting.remove(&peer) else {
            return;
        };
        let Some(sender) = self.handlers.get(&connection) else {
            for request in waiting {
                let _ = request.reply.send(Err(OpenError::ConnectionClosed));
            }
            return;
        };
        for request in waiting {
            // The waiting list is bounded by the channel's capacity and the channel is new.
            if let Err(e) = sender.try_send(request) {
                let request = match e {
                    mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
                };
                let _ = request.reply.send(Err(OpenError::ConnectionClosed));
            }
        }
    }

    pub fn connection_closed(&mut self, peer: PeerId, connection: ConnectionId) {
        if let Some(conns) = self.connections.get_mut(&peer) {
            conns.retain(|c| *c != connection);
            if conns.is_empty() {
                self.connections.remove(&peer);
            }
        }
        // Its handler may live on (a wrapper hid the connection): it opens no more streams.
        self.handlers.remove(&connection);
    }

    /// A dial to `peer` failed: its waiting opens fail unless a connection exists.
    pub fn dial_failed(&mut self, peer: PeerId, reason: String) {
        if self.connections.contains_key(&peer) {
            return;
        }
        for request in self.waiting.remove(&peer).unwrap_or_default() {
            let _ = request.reply.send(Err(OpenError::NotConnected {
                peer,
                reason: reason.clone(),
            }));
        }
    }
}
