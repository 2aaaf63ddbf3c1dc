//! Request and response bodies of the REST API, shared by the server and the typed client.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

// Bodies defined by the subsystem that produces them (they derive `ToSchema` there), named here
// too so that the handlers and the client find every body of the API in this module.
pub use crate::blobs::{BlobInfo, FetchSummary, SeederSummary};
pub use crate::node::{
    AddrBookEntry, AdmissionInfo, Direction, NodeInfo, PeerInfo, PutOutcome, RevocationOutcome,
};
pub use crate::services::{Listener, Provider, Service};

/// Every error response: `{"error": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// `POST /api/v1/peers`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DialRequest {
    /// `host:port` (TCP; the peer id is learnt on connect) or a multiaddr.
    #[schema(example = "127.0.0.1:9376")]
    pub addr: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DialResponse {
    pub peer_id: String,
}

/// `POST /api/v1/addrbook/pin` and `/unpin`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinRequest {
    /// A peer id, or an address (`host:port` or multiaddr; with `/p2p/<id>` or dialled to
    /// learn it).
    #[schema(example = "127.0.0.1:9376")]
    pub target: String,
}

/// `POST /api/v1/echo`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EchoRequest {
    #[schema(example = "hi")]
    pub message: String,
    /// Echo off this peer only; otherwise off this node and every connected peer.
    #[serde(default)]
    pub peer: Option<String>,
}

/// One peer's echo: `message` on success, `error` otherwise.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EchoReply {
    pub peer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub rtt_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EchoResponse {
    pub replies: Vec<EchoReply>,
}

/// `POST /api/v1/rpc/{method}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RpcRequest {
    /// Call this peer only (this node's own id calls itself); otherwise this node and every
    /// connected peer.
    #[serde(default)]
    pub peer: Option<String>,
    /// Any JSON value, handed to the method.
    #[serde(default)]
    pub params: Value,
}

/// One peer's answer: `result` on success, `error` otherwise.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RpcReply {
    pub peer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub rtt_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RpcResponse {
    pub replies: Vec<RpcReply>,
}

/// A signed DID document as stored in the DHT (`PUT /api/v1/dids/{did}`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedDocumentSchema {
    /// The W3C DID Core document; its `id` is the DID.
    pub document: Value,
    /// Sequence number: higher replaces lower.
    pub seq: u64,
    /// Multibase (base58btc, `z...`) ed25519 signature by the DID's key over
    /// `"mcc-did-v1\n" + canonical JSON of {"document", "seq"}`.
    pub signature: String,
}

/// `POST /api/v1/services`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceRequest {
    #[schema(example = "web")]
    pub name: String,
    /// `tcp://host:port` or `http://host:port`.
    #[schema(example = "tcp://localhost:1111")]
    pub address: String,
}

/// `POST /api/v1/listeners`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerRequest {
    #[schema(example = "web")]
    pub service: String,
    /// Local address to listen on, `tcp://127.0.0.1:5000`.
    #[schema(example = "tcp://127.0.0.1:5000")]
    pub address: String,
    /// Only use this provider: a peer id, its `did:key:` DID, or a label (the connected peers
    /// with that certificate label; CA-signed only under `--trust-ca`).
    #[serde(default)]
    pub peer: Option<String>,
}

/// The `Upgrade` protocol of the stream endpoints (`/api/v1/streams/...`): after
/// `101 Switching Protocols` the connection carries the stream's raw bytes both ways.
pub const STREAM_UPGRADE: &str = "mcc-stream";
/// The header of the `101` answer of the stream endpoints naming the peer at the other end.
pub const STREAM_PEER_HEADER: &str = "mcc-peer";

/// `GET /api/v1/routes`: one route this node subscribes to, publishes on, or that peers want.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RouteEntry {
    #[schema(example = "sensors/temp")]
    pub route: String,
    /// Type tag of the local subscriptions, if any.
    pub tag: Option<String>,
    /// Local subscriptions (API event streams, CLI `route sub`, embedders).
    pub subscribers: usize,
    /// Connected peers with a live interest: a publisher here sends to these, and only these.
    pub interested: Vec<String>,
    /// Messages sent from here to peers.
    pub sent: u64,
    /// Messages received from peers for local subscribers.
    pub received: u64,
    /// Messages dropped here: full subscription queues, or peers' queues full past the send
    /// timeout.
    pub dropped: u64,
}

/// `POST /api/v1/routes/{route}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PublishResponse {
    pub route: String,
    /// The message's sequence number on this route from this node.
    pub seq: u64,
    /// Peers it was sent to (those with an interest).
    pub peers: u64,
    /// Peers it was dropped for (their queue stayed full).
    pub dropped: u64,
}

/// The `data` of one Server-Sent Event (`event: message`) of
/// `GET /api/v1/routes/{route}/events`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RouteMessage {
    /// The publishing node's peer id.
    pub from: String,
    pub route: String,
    /// The publisher's sequence number on this route (gaps: dropped messages).
    pub seq: u64,
    /// When it was published, ms since the Unix epoch (the publisher's clock).
    pub time_unix_ms: u64,
    /// The payload when it is UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The payload in hex when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_hex: Option<String>,
    /// Messages this subscription has dropped so far (its queue was full).
    pub dropped: u64,
}
