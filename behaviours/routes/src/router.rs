//! The state shared by the behaviour, its connection handlers and the application:
//! local subscriptions, peers' interests, per-connection send queues and counters.
//!
//! Message bytes never pass through the swarm's task: a [`Publisher`] puts an encoded frame
//! straight into the send queue of each interested peer's connection handler, and a handler
//! that reads a message hands it straight to the local [`Subscription`] queues.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::task::AtomicWaker;
use libp2p::PeerId;
use libp2p::swarm::ConnectionId;
use tokio::sync::{Notify, mpsc};

use crate::Event;
use crate::codec::{self, Frame};
use crate::config::{Action, Config};
use crate::error::{PublishError, RouteError};

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
    sent: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
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
    interest_changed: Notify,
    stats: Stats,
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

    fn subscribe(
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

    fn unsubscribe(&self, route: &str, id: u64) {
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

    fn routes(&self) -> Vec<RouteInfo> {
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

    fn has_listener(&self, route: &str, tag: Option<&str>) -> bool {
        let state = self.lock();
        state.routes.get(route).is_some_and(|r| !r.subs.is_empty())
            || !Shared::interested(&state, route, tag, Instant::now()).is_empty()
    }

    async fn publish(
        &self,
        route: &str,
        tag: Option<&str>,
        payload: Bytes,
    ) -> Result<Delivery, PublishError> {
        let max = self.config.max_message_size();
        if payload.len() > max {
            return Err(PublishError::TooLarge {
                len: payload.len(),
                max,
            });
        }
        let now = Instant::now();
        let time_unix_ms = now_unix_ms();
        let (seq, targets, local) = {
            let mut state = self.lock();
            let targets: Vec<mpsc::Sender<Bytes>> = state
                .peers
                .values()
                .filter(|p| {
                    p.interests
                        .get(route)
                        .is_some_and(|i| i.expires > now && tags_match(i.tag.as_deref(), tag))
                })
                .filter_map(|p| p.links.first().map(|(_, tx)| tx.clone()))
                .collect();
            let r = match state.routes.get_mut(route) {
                Some(r) => r,
                None => state.routes.entry(route.to_string()).or_default(),
            };
            r.seq += 1;
            (r.seq, targets, !r.subs.is_empty())
        };
        if local {
            self.deliver(
                Message {
                    from: self.local,
                    route: route.to_string(),
                    seq,
                    time_unix_ms,
                    payload: payload.clone(),
                },
                false,
            );
        }
        if targets.is_empty() {
            return Ok(Delivery {
                seq,
                peers: 0,
                dropped: 0,
            });
        }
        let frame = codec::encode_message(route, seq, time_unix_ms, &payload);
        let mut waiting = Vec::new();
        let mut sent = 0u64;
        for tx in targets {
            match tx.try_send(frame.clone()) {
                Ok(()) => sent += 1,
                Err(mpsc::error::TrySendError::Full(_)) => waiting.push(tx),
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        let mut dropped = 0u64;
        if !waiting.is_empty() {
            let timeout = self.config.send_timeout();
            let results = futures::future::join_all(waiting.iter().map(|tx| {
                let frame = frame.clone();
                async move {
                    match tokio::time::timeout(timeout, tx.reserve()).await {
                        Ok(Ok(permit)) => {
                            permit.send(frame);
                            Some(true)
                        }
                        Ok(Err(_closed)) => None,
                        Err(_elapsed) => Some(false),
                    }
                }
            }))
            .await;
            for r in results {
                match r {
                    Some(true) => sent += 1,
                    Some(false) => dropped += 1,
                    None => {}
                }
            }
        }
        self.stats.sent.fetch_add(sent, Ordering::Relaxed);
        self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
        if let Some(r) = self.lock().routes.get_mut(route) {
            r.sent += sent;
            r.dropped += dropped;
        }
        Ok(Delivery {
            seq,
            peers: sent,
            dropped,
        })
    }
}

fn check(route: &str, tag: Option<&str>) -> Result<(), RouteError> {
    codec::validate_route(route).map_err(|reason| RouteError::BadRoute {
        route: route.to_string(),
        reason,
    })?;
    if let Some(tag) = tag {
        codec::validate_tag(tag).map_err(|reason| RouteError::BadTag {
            tag: tag.to_string(),
            reason,
        })?;
    }
    Ok(())
}

/// The application's side of routes: subscribe, publish, look. Cheap to clone; get it from
/// [`crate::Behaviour::handle`].
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl Handle {
    /// Subscribes to `route` (with type tag `tag`, if set): the interest is announced to every
    /// connected peer, to peers that connect later, and refreshed while the subscription
    /// lives. Every subscription of one route on this node uses the same tag.
    pub fn subscribe(&self, route: &str, tag: Option<&str>) -> Result<Subscription, RouteError> {
        self.shared.subscribe(route, tag)
    }

    /// A publisher for `route` (messages of type `tag`, if set: they reach interests without
    /// a tag or with the same one).
    pub fn publisher(&self, route: &str, tag: Option<&str>) -> Result<Publisher, RouteError> {
        check(route, tag)?;
        Ok(Publisher {
            shared: Arc::clone(&self.shared),
            route: route.to_string(),
            tag: tag.map(str::to_string),
        })
    }

    /// Every route with local subscribers, peers' interests or traffic, sorted by name.
    pub fn routes(&self) -> Vec<RouteInfo> {
        self.shared.routes()
    }

    /// Totals since start.
    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.shared.stats;
        StatsSnapshot {
            sent: s.sent.load(Ordering::Relaxed),
            received: s.received.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
        }
    }

    /// The largest payload accepted.
    pub fn max_message_size(&self) -> usize {
        self.shared.config.max_message_size()
    }
}

/// What one [`Publisher::send`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The message's sequence number.
    pub seq: u64,
    /// Peers it was queued for.
    pub peers: u64,
    /// Peers it was dropped for (their queue stayed full past the send timeout).
    pub dropped: u64,
}

/// Publishes on one route; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<Shared>,
    route: String,
    tag: Option<String>,
}

impl Publisher {
    pub fn route(&self) -> &str {
        &self.route
    }

    /// Sends `payload` to local subscribers and to every peer with a matching interest, and
    /// to nobody else. Waits while an interested peer's queue is full, at most the send
    /// timeout for all of them together; then the message is dropped for those peers and
    /// counted.
    pub async fn send(&self, payload: impl Into<Bytes>) -> Result<Delivery, PublishError> {
        self.shared
            .publish(&self.route, self.tag.as_deref(), payload.into())
            .await
    }

    /// Connected peers with a live interest in this route.
    pub fn listeners(&self) -> Vec<PeerId> {
        let state = self.shared.lock();
        Shared::interested(&state, &self.route, self.tag.as_deref(), Instant::now())
    }

    /// Waits until someone listens: a local subscription or an interested peer.
    pub async fn wait_for_listener(&self) {
        loop {
            let notified = self.shared.interest_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared.has_listener(&self.route, self.tag.as_deref()) {
                return;
            }
            notified.await;
        }
    }
}

/// One subscription: a `Stream` of [`Message`]s. Dropping it withdraws the interest when it
/// was the route's last one here.
pub struct Subscription {
    shared: Arc<Shared>,
    route: String,
    id: u64,
    rx: mpsc::Receiver<Message>,
    dropped: Arc<AtomicU64>,
}

impl Subscription {
    pub fn route(&self) -> &str {
        &self.route
    }

    /// Messages dropped because this subscription's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A counter that keeps counting this subscription's drops, to read from elsewhere.
    pub fn dropped_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.dropped)
    }

    /// The next message; `None` never happens while the subscription lives.
    pub async fn recv(&mut self) -> Option<Message> {
        self.rx.recv().await
    }
}

impl futures::Stream for Subscription {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.shared.unsubscribe(&self.route, self.id);
    }
}
