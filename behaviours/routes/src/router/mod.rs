//! The state shared by the behaviour, its connection handlers and the application:
//! local subscriptions, peers' interests, per-connection send queues and counters.
//!
//! Message bytes never pass through the swarm's task: a [`Publisher`] puts an encoded frame
//! straight into the send queue of each interested peer's connection handler, and a handler
//! that reads a message hands it straight to the local [`Subscription`] queues.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::task::AtomicWaker;
use libp2p::PeerId;
use libp2p::swarm::ConnectionId;
use tokio::sync::{Notify, mpsc};

use crate::Event;
use crate::codec::{self, Frame};
use crate::config::{Action, Config};
use crate::error::RouteError;
use crate::handle::{Subscription, check};

mod publish;

/// Most events kept for the behaviour to report; older ones are dropped first.
const MAX_EVENTS: usize = 1024;
/// Most routes one peer may be interested in; further interests are ignored.
pub const MAX_INTERESTS_PER_PEER: usize = 1024;

/// One message as a subscriber sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who published it (this node for local publishers).
    pub from: PeerId,
    pub route: String,
    /// The publisher's sequence number on this route, from 1; a gap means messages were
    /// dropped on the way (counted at the publisher or here).
    pub seq: u64,
    /// When the publisher sent it, milliseconds since the Unix epoch (its clock).
    pub time_unix_ms: u64,
    pub payload: Bytes,
}

/// Totals since start, for metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

/// A copy of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Messages put on the wire (one per interested peer).
    pub sent: u64,
    /// Messages received from peers and handed to local subscribers.
    pub received: u64,
    /// Messages dropped: a full subscription queue here, or a peer's queue that stayed full
    /// past the send timeout.
    pub dropped: u64,
}

/// What [`Handle::routes`] reports about one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub route: String,
    pub tag: Option<String>,
    /// Local subscriptions.
    pub subscribers: usize,
    /// Connected peers with a live interest.
    pub interested: Vec<PeerId>,
    /// Messages sent to peers from here.
    pub sent: u64,
    /// Messages received from peers for local subscribers.
    pub received: u64,
    /// Messages dropped here (full subscription queues, full peer queues).
    pub dropped: u64,
}

struct LocalSub {
    id: u64,
    tx: mpsc::Sender<Message>,
    dropped: Arc<AtomicU64>,
}

#[derive(Default)]
struct RouteState {
    tag: Option<String>,
    subs: Vec<LocalSub>,
    seq: u64,
    sent: u64,
    received: u64,
    dropped: u64,
}

struct Interest {
    tag: Option<String>,
    expires: Instant,
}

#[derive(Default)]
struct PeerState {
    /// Send queues of the peer's connections; messages go on the first one.
    links: Vec<(ConnectionId, mpsc::Sender<Bytes>)>,
    interests: HashMap<String, Interest>,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, RouteState>,
    peers: HashMap<PeerId, PeerState>,
    next_sub: u64,
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    local: PeerId,
    state: Mutex<State>,
    events: Mutex<VecDeque<Event>>,
    pub(crate) waker: AtomicWaker,
    pub(crate) interest_changed: Notify,
    pub(crate) stats: Stats,
}

fn tags_match(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Shared {
    pub(crate) fn new(local: PeerId, config: Config) -> Arc<Shared> {
        Arc::new(Shared {
            config,
            local,
            state: Mutex::new(State::default()),
            events: Mutex::new(VecDeque::new()),
            waker: AtomicWaker::new(),
            interest_changed: Notify::new(),
            stats: Stats::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain maps and counters: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push_event(&self, event: Event) {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if events.len() >= MAX_EVENTS {
            events.pop_front();
        }
        events.push_back(event);
        drop(events);
        self.waker.wake();
    }

    pub(crate) fn pop_event(&self) -> Option<Event> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    fn lease_secs(&self) -> u32 {
        u32::try_from(self.config.lease().as_secs()).unwrap_or(u32::MAX)
    }

    /// A new connection: its send queue joins the peer's links and gets our interests.
    pub(crate) fn add_link(&self, peer: PeerId, connection: ConnectionId) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(self.config.peer_queue());
        let mut state = self.lock();
        for (route, r) in &state.routes {
            if !r.subs.is_empty() {
                // A fresh queue has room for the first `peer_queue` frames; beyond that the
                // lease refresh sends the rest.
                let _ = tx.try_send(codec::encode_interest(
                    route,
                    r.tag.as_deref(),
                    self.lease_secs(),
                ));
            }
        }
        state
            .peers
            .entry(peer)
            .or_default()
            .links
            .push((connection, tx));
        rx
    }

    /// A closed connection; the peer's interests go with its last one.
    pub(crate) fn remove_link(&self, peer: PeerId, connection: ConnectionId) {
        let mut state = self.lock();
        let Some(p) = state.peers.get_mut(&peer) else {
            return;
        };
        p.links.retain(|(c, _)| *c != connection);
        if p.links.is_empty() {
            let gone = state.peers.remove(&peer).map(|p| p.interests);
            drop(state);
            for route in gone.into_iter().flat_map(|i| i.into_keys()) {
                self.push_event(Event::InterestRemoved {
                    peer,
                    route,
                    expired: false,
                });
            }
            self.interest_changed.notify_waiters();
        }
    }

    /// Whether a connection to `peer` is still useful to routes.
    pub(crate) fn keep_alive(&self, peer: &PeerId) -> bool {
        let state = self.lock();
        state
            .peers
            .get(peer)
            .is_some_and(|p| !p.interests.is_empty())
            || state.routes.values().any(|r| !r.subs.is_empty())
    }

    /// A frame read from `peer`.
    pub(crate) fn on_frame(&self, peer: PeerId, frame: Frame) {
        match frame {
            Frame::Interest {
                route,
                tag,
                lease_secs,
            } => {
                if !self.config.allows(&peer, Action::Subscribe, &route) {
                    tracing::debug!(%peer, %route, "routes: interest refused");
                    return;
                }
                let lease = Duration::from_secs(u64::from(lease_secs))
                    .clamp(Duration::from_secs(1), crate::config::MAX_LEASE);
                let mut state = self.lock();
                let Some(p) = state.peers.get_mut(&peer) else {
                    return;
                };
                if p.interests.len() >= MAX_INTERESTS_PER_PEER && !p.interests.contains_key(&route)
                {
                    tracing::debug!(%peer, %route, "routes: too many interests from the peer");
                    return;
                }
                let new = p
                    .interests
                    .insert(
                        route.clone(),
                        Interest {
                            tag: tag.clone(),
                            expires: Instant::now() + lease,
                        },
                    )
                    .is_none();
                drop(state);
                if new {
                    self.push_event(Event::InterestAdded { peer, route, tag });
                    self.interest_changed.notify_waiters();
                }
            }
            Frame::Withdraw { route } => {
                let mut state = self.lock();
                let removed = state
                    .peers
                    .get_mut(&peer)
                    .and_then(|p| p.interests.remove(&route))
                    .is_some();
                drop(state);
                if removed {
                    self.push_event(Event::InterestRemoved {
                        peer,
                        route,
                        expired: false,
                    });
                    self.interest_changed.notify_waiters();
                }
            }
            Frame::Message {
                route,
                seq,
                time_unix_ms,
                payload,
            } => {
                if !self.config.allows(&peer, Action::Publish, &route) {
                    tracing::debug!(%peer, %route, "routes: message refused");
                    return;
                }
                let message = Message {
                    from: peer,
                    route,
                    seq,
                    time_unix_ms,
                    payload,
                };
                self.deliver(message, true);
            }
            Frame::Unknown { kind, len } => {
                tracing::debug!(%peer, kind, len, "routes: unknown frame kind skipped");
            }
        }
    }

    /// Hands `message` to every local subscription of its route without waiting: a full
    /// queue drops the message for that subscription and counts it.
    fn deliver(&self, message: Message, remote: bool) {
        let mut state = self.lock();
        let Some(r) = state.routes.get_mut(&message.route) else {
            return;
        };
        if r.subs.is_empty() {
            return;
        }
        if remote {
            r.received += 1;
            self.stats.received.fetch_add(1, Ordering::Relaxed);
        }
        let mut dropped = 0;
        for sub in &r.subs {
            match sub.tx.try_send(message.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    sub.dropped.fetch_add(1, Ordering::Relaxed);
                    dropped += 1;
                }
                // Being dropped: its Drop removes it.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        if dropped > 0 {
            r.dropped += dropped;
            self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// Sends the interests again to every peer, and forgets peers' expired interests.
    pub(crate) fn refresh(&self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut state = self.lock();
        let frames: Vec<Bytes> = state
            .routes
            .iter()
            .filter(|(_, r)| !r.subs.is_empty())
            .map(|(route, r)| codec::encode_interest(route, r.tag.as_deref(), self.lease_secs()))
            .collect();
        for (peer, p) in state.peers.iter_mut() {
            if let Some((_, tx)) = p.links.first() {
                for f in &frames {
                    let _ = tx.try_send(f.clone());
                }
            }
            p.interests.retain(|route, i| {
                let live = i.expires > now;
                if !live {
                    expired.push((*peer, route.clone()));
                }
                live
            });
        }
        drop(state);
        if !expired.is_empty() {
            self.interest_changed.notify_waiters();
        }
        for (peer, route) in expired {
            self.push_event(Event::InterestRemoved {
                peer,
                route,
                expired: true,
            });
        }
    }

    pub(crate) fn subscribe(
        self: &Arc<Self>,
        route: &str,
        tag: Option<&str>,
    ) -> Result<Subscription, RouteError> {
        check(route, tag)?;
        let (tx, rx) = mpsc::channel(self.config.subscriber_queue());
        let dropped = Arc::new(AtomicU64::new(0));
        let mut state = self.lock();
        let id = state.next_sub;
        state.next_sub += 1;
        let r = state.routes.entry(route.to_string()).or_default();
        if !r.subs.is_empty() && r.tag.as_deref() != tag {
            return Err(RouteError::TagMismatch {
                existing: r.tag.clone(),
                requested: tag.map(str::to_string),
            });
        }
        let first = r.subs.is_empty();
        r.tag = tag.map(str::to_string);
        r.subs.push(LocalSub {
            id,
            tx,
            dropped: Arc::clone(&dropped),
        });
        if first {
            let frame = codec::encode_interest(route, tag, self.lease_secs());
            for p in state.peers.values() {
                if let Some((_, tx)) = p.links.first() {
                    let _ = tx.try_send(frame.clone());
                }
            }
        }
        drop(state);
        self.interest_changed.notify_waiters();
        Ok(Subscription {
            shared: Arc::clone(self),
            route: route.to_string(),
            id,
            rx,
            dropped,
        })
    }

    pub(crate) fn unsubscribe(&self, route: &str, id: u64) {
        let mut state = self.lock();
        let Some(r) = state.routes.get_mut(route) else {
            return;
        };
        r.subs.retain(|s| s.id != id);
        if r.subs.is_empty() {
            let frame = codec::encode_withdraw(route);
            for p in state.peers.values() {
                if let Some((_, tx)) = p.links.first() {
                    let _ = tx.try_send(frame.clone());
                }
            }
        }
        drop(state);
        self.interest_changed.notify_waiters();
    }

    /// Peers with a live interest in `route` matching `tag`.
    fn interested(state: &State, route: &str, tag: Option<&str>, now: Instant) -> Vec<PeerId> {
        state
            .peers
            .iter()
            .filter(|(_, p)| {
                p.interests
                    .get(route)
                    .is_some_and(|i| i.expires > now && tags_match(i.tag.as_deref(), tag))
            })
            .map(|(peer, _)| *peer)
            .collect()
    }

    pub(crate) fn routes(&self) -> Vec<RouteInfo> {
        let now = Instant::now();
        let state = self.lock();
        let mut names: Vec<&String> = state.routes.keys().collect();
        for p in state.peers.values() {
            names.extend(p.interests.keys());
        }
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|route| {
                let r = state.routes.get(route);
                let mut interested = Shared::interested(&state, route, None, now);
                interested.sort();
                RouteInfo {
                    route: route.clone(),
                    tag: r.and_then(|r| r.tag.clone()),
                    subscribers: r.map_or(0, |r| r.subs.len()),
                    interested,
                    sent: r.map_or(0, |r| r.sent),
                    received: r.map_or(0, |r| r.received),
                    dropped: r.map_or(0, |r| r.dropped),
                }
            })
            .collect()
    }

    /// Connected peers with a live interest in `route` matching `tag`.
    pub(crate) fn listeners(&self, route: &str, tag: Option<&str>) -> Vec<PeerId> {
        let state = self.lock();
        Shared::interested(&state, route, tag, Instant::now())
    }

    pub(crate) fn has_listener(&self, route: &str, tag: Option<&str>) -> bool {
        let state = self.lock();
        state.routes.get(route).is_some_and(|r| !r.subs.is_empty())
            || !Shared::interested(&state, route, tag, Instant::now()).is_empty()
    }
}
