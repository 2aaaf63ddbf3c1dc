//! Routes: interest-filtered publish/subscribe between nodes (`mcc route`,
//! `/api/v1/routes/...`), over the protocol crate `mcc_routes` (`/mcc/routes/1.0.0`).
//!
//! [`Routes`] is the handle (as `node.routes()`, with `node.publish(route)` and
//! `node.subscribe(route)` as shortcuts). A [`Subscription`] is a `futures::Stream` of
//! [`Message`]s with a [`Subscription::dropped`] counter; a [`Publisher`] sends to the peers
//! that announced an interest, and only to them, and can wait for one
//! ([`Publisher::wait_for_listener`]). Message bytes go from the publisher to the connection
//! tasks and from there to the subscriptions, never through the event loop.
//!
//! Permissions (under `--trust-ca`; an open network allows everything): subscribing needs
//! this node's `routes:subscribe`, and a peer's interest is taken only if it holds
//! `routes:subscribe`; publishing needs this node's `routes:publish`, and a peer's message is
//! taken only if it holds `routes:publish`. Until a peer is admitted its routes stream waits,
//! like every gated protocol.
//!
//! ```no_run
//! # async fn demo(a: mcc::Node, b: mcc::Node) -> Result<(), Box<dyn std::error::Error>> {
//! use futures::StreamExt;
//!
//! let mut sub = b.subscribe("sensors/temp")?;
//! let publisher = a.publish("sensors/temp")?;
//! publisher.wait_for_listener().await;
//! publisher.send(&b"21.5"[..]).await?;
//! if let Some(message) = sub.next().await {
//!     println!("{} #{}: {:?}", message.from, message.seq, message.payload);
//! }
//! # Ok(()) }
//! ```

mod error;
mod metrics;

use mcc_admission::Permission;
pub use mcc_routes::{
    Delivery, Message, Publisher, RouteInfo, StatsSnapshot as Stats, Subscription,
};

pub use self::error::Error;
pub(crate) use self::metrics::register as register_metrics;
use crate::node::network::Network;

/// The routes of a node: a cloneable handle over the node's routes behaviour.
#[derive(Clone)]
pub struct Routes {
    net: Network,
    handle: mcc_routes::Handle,
}

impl Routes {
    pub(crate) fn new(net: Network, handle: mcc_routes::Handle) -> Self {
        Self { net, handle }
    }

    /// Subscribes to `route` (see [`mcc_routes::Handle::subscribe`]).
    pub fn subscribe(&self, route: &str) -> Result<Subscription, Error> {
        self.subscribe_typed(route, None)
    }

    /// Subscribes to `route` for messages of type `tag` (or untyped ones).
    pub fn subscribe_typed(&self, route: &str, tag: Option<&str>) -> Result<Subscription, Error> {
        self.net.may(Permission::RoutesSubscribe)?;
        Ok(self.handle.subscribe(route, tag)?)
    }

    /// A publisher for `route`.
    pub fn publish(&self, route: &str) -> Result<Publisher, Error> {
        self.publish_typed(route, None)
    }

    /// A publisher for messages of type `tag` on `route`.
    pub fn publish_typed(&self, route: &str, tag: Option<&str>) -> Result<Publisher, Error> {
        self.net.may(Permission::RoutesPublish)?;
        Ok(self.handle.publisher(route, tag)?)
    }

    /// Every route with local subscribers, peers' interests or traffic, sorted by name.
    pub fn list(&self) -> Vec<RouteInfo> {
        self.handle.routes()
    }

    /// Messages sent, received and dropped since start.
    pub fn stats(&self) -> Stats {
        self.handle.stats()
    }

    /// The largest message accepted.
    pub fn max_message_size(&self) -> usize {
        self.handle.max_message_size()
    }
}
