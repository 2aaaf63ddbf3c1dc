//! JSON RPC for mcc over libp2p request-response, on protocol [`PROTOCOL_NAME`]
//! (`/mcc/rpc/1.0.0`).
//!
//! Every call opens a stream, sends one JSON request and reads one JSON response (see
//! [`codec`] for the wire format):
//!
//! ```text
//! -> {"method": "echo", "params": {"hello": "world"}}
//! <- {"result": {"hello": "world"}}
//! <- {"error": {"code": "method_not_found", "message": "..."}}   (on failure)
//! ```
//!
//! * [`Methods`] is the registry of methods a node answers; it comes with the built-in `echo`.
//! * [`Behaviour`] is the [`NetworkBehaviour`](libp2p::swarm::NetworkBehaviour): it answers
//!   inbound requests from [`Methods`] and sends calls with [`Behaviour::call`], whose outcome
//!   is reported as an [`Event::OutboundResult`]; inbound requests end in
//!   [`Event::InboundAnswered`] or [`Event::InboundFailure`].
//! * [`Config`] sets the timeout, size limits, inbound concurrency, protocol name and the
//!   [`Authorizer`] that may refuse a caller before any handler runs.
//!
//! # Example
//!
//! ```
//! use mcc_rpc::{Behaviour, Config, Methods, RpcError};
//! use libp2p::PeerId;
//! use serde_json::json;
//!
//! let methods = Methods::new();
//! methods.register("add", |_caller: PeerId, params: serde_json::Value| async move {
//!     let arg = |name: &str| {
//!         params[name]
//!             .as_i64()
//!             .ok_or_else(|| RpcError::invalid_params(format!("{name} must be an integer")))
//!     };
//!     Ok(json!(arg("a")? + arg("b")?))
//! });
//!
//! // A node can answer itself without the network:
//! let sum = futures::executor::block_on(methods.invoke(
//!     PeerId::random(),
//!     "add",
//!     json!({"a": 1, "b": 2}),
//! ));
//! assert_eq!(sum, Ok(json!(3)));
//!
//! // For the network, put the behaviour into a swarm (usually as a field of a
//! // `#[derive(NetworkBehaviour)]` struct). Methods registered later are still served.
//! let behaviour = Behaviour::new(Config::default(), methods.clone());
//! assert!(behaviour.methods().contains("add"));
//! // Then, with `swarm: Swarm<Behaviour>` and a connected or dialable `peer`:
//! //
//! // let id = swarm.behaviour_mut().call(&peer, "add", json!({"a": 1, "b": 2}))?;
//! // ...
//! // SwarmEvent::Behaviour(mcc_rpc::Event::OutboundResult { request_id, result, .. })
//! //     if request_id == id => assert_eq!(result?, json!(3)),
//! ```

pub mod codec;

mod behaviour;
mod config;
mod error;
mod methods;

pub use behaviour::{Authorizer, Behaviour, Event};
pub use config::Config;
pub use error::{CallError, ErrorCode, InboundFailure, RpcError};
pub use libp2p::request_response::OutboundRequestId;
pub use methods::{ECHO_METHOD, HandlerFuture, Methods};

/// The protocol name RPC streams negotiate by default.
pub const PROTOCOL_NAME: libp2p::StreamProtocol = libp2p::StreamProtocol::new("/mcc/rpc/1.0.0");
