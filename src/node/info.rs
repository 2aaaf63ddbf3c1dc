//! What the node reports: about itself ([`NodeInfo`]), its peers ([`PeerInfo`], [`Direction`]),
//! calls ([`CallOutcome`]), records ([`FoundRecord`], [`PutOutcome`]) and admission
//! ([`AdmissionInfo`], [`CertificateInfo`]).

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use mcc_admission::{Certificate, format_unix, keys, now_unix};
use mcc_rpc::CallError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// What a node says about itself.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeInfo {
    #[schema(value_type = String)]
    pub peer_id: PeerId,
    pub label: String,
    /// This node's `did:key`, derived from its identity.
    pub did: String,
    pub version: String,
    pub agent_version: String,
    #[schema(value_type = Vec<String>)]
    pub listen_addrs: Vec<Multiaddr>,
    #[schema(value_type = Vec<String>)]
    pub external_addrs: Vec<Multiaddr>,
    pub kad_protocol: String,
    pub rendezvous: Option<String>,
    pub mdns: bool,
    pub rpc_methods: Vec<String>,
    pub connected_peers: usize,
    pub routing_table_size: usize,
    pub uptime_secs: u64,
    /// This node's certificate (label, permissions, expiry).
    pub certificate: CertificateInfo,
    pub admission: AdmissionInfo,
    /// URL of the forward listener (`--http-forward`), where browsers open forwarded web
    /// services on an origin of their own; absent when it is off.
    #[serde(default)]
    pub http_forward: Option<String>,
    /// Whether peers can dial this node directly, as AutoNAT last found.
    pub reachability: Reachability,
    /// The address AutoNAT last confirmed peers can dial this node at.
    #[schema(value_type = Option<String>)]
    pub public_addr: Option<Multiaddr>,
    /// Reservations on relays, held or asked for.
    pub relays: Vec<RelayInfo>,
    /// This node's relay server (`--relay-server`), absent when it is off.
    pub relay_server: Option<RelayServerInfo>,
    /// How peers see this node: the addresses identify reported them observing, with how
    /// many reports each, most reported first.
    #[serde(default)]
    pub observed_addrs: Vec<ObservedAddr>,
    /// Raw streams (tunnels, blob transfers, user streams) per protocol since start.
    #[serde(default)]
    pub streams: Vec<StreamStats>,
}

/// The raw streams of one protocol since the node started (`mcc_streams::ProtocolStats`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StreamStats {
    pub protocol: String,
    /// Outbound streams negotiated.
    pub opened: u64,
    /// Outbound streams that could not be opened (unsupported, no connection, timeout, io).
    pub open_failed: u64,
    /// Outbound streams opened optimistically (the peer listed the protocol): the first
    /// bytes went out with the protocol proposal, one round trip less.
    pub optimistic: u64,
    /// Inbound streams negotiated.
    pub inbound: u64,
    /// Inbound streams taken by their acceptor (forward server, blob server, listener).
    pub accepted: u64,
    /// Inbound streams waiting now for a slow acceptor (queued or held by their connection).
    pub queued: u64,
    /// Inbound streams dropped because the queue and the holding room were full.
    pub refused: u64,
}

impl From<mcc_streams::ProtocolStats> for StreamStats {
    fn from(s: mcc_streams::ProtocolStats) -> Self {
        Self {
            protocol: s.protocol,
            opened: s.opened,
            open_failed: s.open_failed,
            optimistic: s.optimistic,
            inbound: s.inbound,
            accepted: s.accepted,
            queued: s.queued,
            refused: s.refused,
        }
    }
}

/// An address peers observed this node at (identify's observed address).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ObservedAddr {
    #[schema(value_type = String)]
    pub addr: Multiaddr,
    /// Identify reports that named it.
    pub count: u64,
}

/// One peer of the address book, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AddrBookEntry {
    #[schema(value_type = String)]
    pub peer_id: PeerId,
    /// Addresses to dial it at, newest first (relayed `/p2p-circuit` addresses included).
    #[schema(value_type = Vec<String>)]
    pub addrs: Vec<Multiaddr>,
    /// Where it was learnt from: boot, mdns, pex, kad, rendezvous, manual, relay, inbound.
    pub sources: Vec<crate::storage::addrbook::Source>,
    /// Redialled forever (`--peer`, `mcc addrbook pin`).
    pub persistent: bool,
    pub connected: bool,
    /// Consecutive failed dials.
    pub failed: u32,
    /// Dials this node started to it.
    pub attempts: u64,
    /// The current wait after failures (0 after a success).
    pub backoff_ms: u64,
    /// Milliseconds until it may be dialled again (0: now).
    pub next_dial_in_ms: u64,
    pub last_success_unix_ms: Option<u64>,
    pub rtt_ms: Option<f64>,
    /// Found as a provider of this node's rendezvous key (same application).
    pub same_app: bool,
}

/// Whether this node can be dialled from outside, as AutoNAT last found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    Public,
    Private,
    Unknown,
}

/// A reservation on a relay.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RelayInfo {
    #[schema(value_type = String)]
    pub peer_id: PeerId,
    /// The circuit address peers dial this node at (`.../p2p/<relay>/p2p-circuit`).
    #[schema(value_type = String)]
    pub addr: Multiaddr,
    /// The relay accepted the reservation.
    pub accepted: bool,
    /// Given with `--relay` (otherwise chosen because this node is private).
    pub configured: bool,
}

/// This node's relay server.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RelayServerInfo {
    /// Reservations held by peers now.
    pub reservations: usize,
    /// Circuits relayed now.
    pub circuits: usize,
}

/// A connected peer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PeerInfo {
    #[schema(value_type = String)]
    pub peer_id: PeerId,
    /// Label from the peer's verified certificate, else from its identify agent version.
    pub label: Option<String>,
    /// Served by this node's protocols (always true in an open network).
    pub admitted: bool,
    /// The peer's verified certificate (with `--trust-ca` only).
    pub certificate: Option<CertificateInfo>,
    /// Remote addresses of the open connections, then the listen addresses it announced.
    #[schema(value_type = Vec<String>)]
    pub addrs: Vec<Multiaddr>,
    /// Last ping round-trip time.
    pub rtt_ms: Option<f64>,
    /// Direction of the oldest open connection.
    pub direction: Direction,
    pub connections: usize,
    pub agent_version: Option<String>,
    pub protocols: Vec<String>,
    /// Found as a provider of this node's rendezvous key (same application).
    pub rendezvous: bool,
    /// In the Kademlia routing table.
    pub in_routing_table: bool,
    pub connected_secs: u64,
    /// Every open connection goes through a relay (no direct one yet).
    #[serde(default)]
    pub relayed: bool,
    /// Connected only because a DHT query of this node dialled it: not kept by the mesh,
    /// the connection closes once idle.
    #[serde(default)]
    pub dht_only: bool,
}

/// One peer's answer to a (multi)call.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    pub peer_id: PeerId,
    pub result: Result<Value, CallError>,
    pub rtt: Duration,
}

/// A record found in the DHT: the best valid version among those seen.
#[derive(Debug, Clone)]
pub struct FoundRecord {
    pub value: Vec<u8>,
    pub publisher: Option<PeerId>,
    /// Valid versions seen (this node's own copy included).
    pub versions: usize,
    /// Peers asked during the lookup (a measure of hops).
    pub queried: u32,
    pub duration: Duration,
}

/// How a put went.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PutOutcome {
    /// Stored in this node's own store.
    pub stored_locally: bool,
    /// Stored on at least one other peer (false on a node without peers: it is replicated
    /// when peers arrive).
    pub replicated: bool,
}

/// A provider of a DHT key (a service, a blob), with what is known of it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Provider {
    #[schema(value_type = String)]
    pub peer_id: PeerId,
    pub label: Option<String>,
    /// This node itself.
    pub local: bool,
    pub connected: bool,
    pub rtt_ms: Option<f64>,
    #[schema(value_type = Vec<String>)]
    pub addrs: Vec<libp2p::Multiaddr>,
}

/// A certificate as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CertificateInfo {
    pub label: String,
    pub permissions: Vec<String>,
    pub serial: String,
    /// Peer id form of the issuing key.
    pub issuer: String,
    /// Issued by this node's own key (open mode), not by a CA.
    pub self_signed: bool,
    pub not_before: u64,
    pub not_after: u64,
    /// `not_after` as UTC text.
    pub expires: String,
    /// Seconds left; 0 once expired.
    pub expires_in_secs: u64,
    /// Within 30 days of expiry (or expired).
    pub expiring_soon: bool,
}

impl CertificateInfo {
    pub fn of(cert: &Certificate) -> Self {
        let now = now_unix();
        CertificateInfo {
            label: cert.label().to_string(),
            permissions: cert.permissions().names().map(str::to_string).collect(),
            serial: cert.serial().to_string(),
            issuer: keys::peer_id_of(cert.issuer()).to_string(),
            self_signed: keys::peer_id_of(cert.issuer()) == cert.peer_id(),
            not_before: cert.not_before(),
            not_after: cert.not_after(),
            expires: format_unix(cert.not_after()),
            expires_in_secs: cert.expires_in(now).map(|d| d.as_secs()).unwrap_or(0),
            expiring_soon: cert.expires_within(now, mcc_admission::EXPIRY_WARNING),
        }
    }
}

/// How admission stands on this node.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdmissionInfo {
    /// `open` (any peer) or `closed` (only certificates from the trusted CA).
    pub mode: String,
    /// Peer id form of the trusted CA key.
    pub trusted_ca: Option<String>,
    pub trusted_ca_expires: Option<String>,
    /// Sequence number of the revocation list in force.
    pub revocations_sequence: Option<u64>,
    pub revoked_serials: Vec<String>,
    pub revoked_peers: Vec<String>,
    /// Peers refused recently and still kept out.
    pub banned: Vec<String>,
}

/// A peer of the address book, named by id or by an address (`mcc addrbook pin ID|ADDR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinTarget {
    Peer(PeerId),
    Addr(Multiaddr),
}

impl std::str::FromStr for PinTarget {
    type Err = super::addr::AddrError;

    /// A peer id, else a dial address (`host:port` or multiaddr).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(p) = s.parse::<PeerId>() {
            return Ok(PinTarget::Peer(p));
        }
        super::addr::parse_dial(s).map(PinTarget::Addr)
    }
}
