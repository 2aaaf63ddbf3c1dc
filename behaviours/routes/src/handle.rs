//! The application's side: [`Handle`], [`Publisher`], [`Subscription`] and what they return,
//! over the shared state of [`crate::router`].

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use libp2p::PeerId;
use tokio::sync::mpsc;

use crate::codec;
use crate::error::{PublishError, RouteError};
use crate::router::{Message, RouteInfo, Shared, StatsSnapshot};

pub(crate) fn check(route: &str, tag: Option<&str>) -> Result<(), RouteError> {
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
        self.shared.listeners(&self.route, self.tag.as_deref())
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
    pub(crate) shared: Arc<Shared>,
    pub(crate) route: String,
    pub(crate) id: u64,
    pub(crate) rx: mpsc::Receiver<Message>,
    pub(crate) dropped: Arc<AtomicU64>,
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
