//! Routes: interest-filtered publish/subscribe between connected peers
//! (`/mcc/routes/1.0.0`), the "intents and interests" of a mesh.
//!
//! A route is a name (`sensors/temp`: the service name rules plus `/`, see
//! [`codec::validate_route`]) with an optional type tag. A node that subscribes announces an
//! **interest** to every connected peer, replays it to peers that connect later, and refreshes
//! it before its lease runs out (every third of [`Config::lease`]); a peer that stops
//! refreshing loses its interest when the lease ends. A [`Publisher`] sends a message only to
//! the peers with a live, matching interest (and to local subscribers): when nobody listens,
//! nothing crosses the wire. [`Publisher::listeners`] says who listens and
//! [`Publisher::wait_for_listener`] waits for someone.
//!
//! # Delivery
//!
//! Each connection runs one long-lived outbound stream, written by its connection handler
//! from a bounded send queue, and reads the peer's stream the same way; publishers fill the
//! queues and readers fill the subscriptions directly, so message bytes never pass through the
//! swarm's event loop. Messages to one peer take the first of its connections, so their order
//! is kept per route per peer. When a peer's queue is full the publisher waits (backpressure),
//! at most [`Config::send_timeout`]; then the message is dropped for that peer and counted.
//! A subscription has a bounded queue too ([`Config::subscriber_queue`]): a subscriber that
//! does not read loses the newest messages, counted in [`Subscription::dropped`] and in
//! [`Handle::stats`], while the connection and every other subscriber go on. Sequence numbers
//! (per route, per publishing node) show the gaps.
//!
//! # Wire format
//!
//! One stream per direction per connection, protocol `/mcc/routes/1.0.0`, carrying frames
//! `kind (u8) | body length (u32 BE) | body` (bodies larger than the message limit close the
//! stream):
//!
//! ```text
//! 1 interest  route_len u8 | route | tag_len u8 | tag (empty: none) | lease_secs u32
//! 2 withdraw  route_len u8 | route
//! 3 message   route_len u8 | route | seq u64 | time_unix_ms u64 | payload
//! ```
//!
//! Unknown kinds are skipped whole, so newer peers can add kinds. A frame whose body does not
//! decode (a bad route name) is skipped.
//!
//! # Permissions
//!
//! [`Config::with_authorizer`] decides per peer and route whether an interest
//! ([`Action::Subscribe`]) and a message ([`Action::Publish`]) are accepted. mcc wraps the
//! behaviour in its admission gate and maps these to the `routes:subscribe` and
//! `routes:publish` permissions.
//!
//! # Example
//!
//! ```
//! use futures::StreamExt;
//! use libp2p::PeerId;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let behaviour = mcc_routes::Behaviour::new(PeerId::random(), mcc_routes::Config::new());
//! let routes = behaviour.handle();
//! // (the behaviour goes into a swarm; local subscribers get local messages too)
//! let mut sub = routes.subscribe("sensors/temp", None).unwrap();
//! let publisher = routes.publisher("sensors/temp", None).unwrap();
//! publisher.wait_for_listener().await;
//! publisher.send(&b"21.5"[..]).await.unwrap();
//! let message = sub.next().await.unwrap();
//! assert_eq!((message.seq, &message.payload[..]), (1, &b"21.5"[..]));
//! # }
//! ```

mod behaviour;
pub mod codec;
mod config;
mod error;
mod handle;
mod handler;
mod router;

use libp2p::StreamProtocol;

pub use behaviour::{Behaviour, Event};
pub use config::{
    Action, Authorizer, Config, DEFAULT_LEASE, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_PEER_QUEUE,
    DEFAULT_SEND_TIMEOUT, DEFAULT_SUBSCRIBER_QUEUE, MAX_LEASE,
};
pub use error::{DecodeError, NameError, PublishError, ReadError, RouteError};
pub use handle::{Delivery, Handle, Publisher, Subscription};
pub use handler::Handler;
pub use router::{MAX_INTERESTS_PER_PEER, Message, RouteInfo, StatsSnapshot};

/// The protocol name.
pub const PROTOCOL_NAME: StreamProtocol = StreamProtocol::new("/mcc/routes/1.0.0");
