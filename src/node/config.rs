//! How a node is set up: [`Config`], its [`RecordsConfig`] part, and [`MdnsMode`].

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use libp2p::{Multiaddr, StreamProtocol};
use serde::{Deserialize, Serialize};

use super::{AdmissionConfig, addr};

/// Default TCP/QUIC port.
pub const DEFAULT_PORT: u16 = 9376;

/// When to run mDNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MdnsMode {
    /// On only if some listen address is not loopback.
    #[default]
    Auto,
    On,
    Off,
}

/// How a node is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where identity (and later other state) is kept; `None` keeps nothing on disk.
    pub data_dir: Option<PathBuf>,
    /// Deterministic identity for demos and tests.
    pub seed: Option<u64>,
    /// Human-readable name, normalized with [`mcc_admission::normalize_label`].
    pub label: Option<String>,
    /// Addresses to listen on (see [`addr::parse_listen`]).
    pub listen: Vec<Multiaddr>,
    /// Peers to join through (see [`addr::parse_dial`]).
    pub boot: Vec<Multiaddr>,
    /// Kademlia protocol name.
    pub kad_protocol: StreamProtocol,
    /// Kademlia query parallelism (alpha).
    pub dht_alpha: NonZeroUsize,
    /// Application key whose providers find each other; `None` turns rendezvous off.
    pub rendezvous: Option<String>,
    /// How often rendezvous looks for other providers of the key.
    pub rendezvous_interval: Duration,
    /// mDNS on the LAN.
    pub mdns: MdnsMode,
    /// RPC limits and timeouts.
    pub rpc: mcc_rpc::Config,
    /// Interval between pings of each connection.
    pub ping_interval: Duration,
    /// How long a connection nothing holds stays open once idle. The mesh holds the
    /// connections it keeps (see `node::keep`); the others (a DHT query's) close this long
    /// after their last use.
    pub idle_connection_timeout: Duration,
    /// DHT record store limits and lookups.
    pub records: RecordsConfig,
    /// Services from the config file: (name, address), registered at every start.
    pub services: Vec<(String, String)>,
    /// Listeners from the config file: (service, local address, pinned peer).
    pub listeners: Vec<(String, String, Option<String>)>,
    /// Seed blobs this node fetched from others (added ones are always seeded).
    pub keep_blobs: bool,
    /// Certificates: this node's own, the trusted CA, revocations.
    pub admission: AdmissionConfig,
    /// Limits of the tunnels this node serves (tunnels in all and per peer, idle timeout); the
    /// idle timeout also applies to the tunnels of this node's own listeners.
    pub forward: mcc_forward::ServerConfig,
    /// NAT traversal: relay server and client, hole punching, reachability.
    pub nat: NatConfig,
    /// Routes: message size limit, queues, interest leases (the authorizer is set by the node).
    pub routes: mcc_routes::Config,
    /// Mesh upkeep: persistent peers, dial backoff, connection targets, peer exchange.
    pub mesh: MeshConfig,
    /// Caps on connections, pending dials, streams per connection and memory.
    pub limits: super::LimitsConfig,
}

/// Mesh upkeep: the address book's dial policy and the connection targets.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// Peers redialled forever with backoff (`--peer`).
    pub peers: Vec<Multiaddr>,
    /// Dial backoff and the failures after which a non-persistent entry is dropped.
    pub backoff: crate::storage::addrbook::Backoff,
    /// Below this many connected peers, dial from the address book (best first).
    pub min_peers: usize,
    /// Above this many, discovery stops dialling and the least useful connections close.
    pub max_peers: usize,
    /// Exchange connected peers with peers (`/mcc/pex/1.0.0`).
    pub pex: bool,
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            backoff: crate::storage::addrbook::Backoff::default(),
            min_peers: 8,
            max_peers: 64,
            pex: true,
        }
    }
}

/// NAT traversal: circuit relay v2 (server and client), DCUtR hole punching, AutoNAT.
#[derive(Debug, Clone)]
pub struct NatConfig {
    /// Serve as a circuit relay v2 hop for other peers.
    pub relay_server: bool,
    /// Limits of the relay server.
    pub relay_limits: RelayLimits,
    /// Relays to hold a reservation on (dialled at start, redialled while away), whatever the
    /// reachability.
    pub relays: Vec<Multiaddr>,
    /// When AutoNAT finds this node private, reserve on connected peers that offer the relay
    /// hop protocol ([`MAX_AUTO_RELAYS`] of them).
    pub auto_relay: bool,
    /// Addresses this node is reachable at from outside (port forwards, public IPs).
    pub external_addrs: Vec<Multiaddr>,
    /// Turn relayed connections into direct ones (DCUtR).
    pub hole_punching: bool,
    /// Delay before the first AutoNAT probe.
    pub autonat_boot_delay: Duration,
    /// Delay between AutoNAT probes while the reachability is not settled.
    pub autonat_retry_interval: Duration,
}

/// Most relays a private node reserves on by itself.
pub const MAX_AUTO_RELAYS: usize = 2;

/// Limits of the relay server. libp2p's defaults (2 min and 128 KiB per circuit) only suit
/// signalling; these let NATed devices use the relay for their data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayLimits {
    /// Bytes a circuit may carry, both directions together; 0: unlimited.
    pub max_circuit_bytes: u64,
    /// How long a circuit may last; `None`: unlimited.
    pub max_circuit_duration: Option<Duration>,
    /// Circuits relayed at once, all peers together.
    pub max_circuits: usize,
    /// Circuits relayed at once per peer.
    pub max_circuits_per_peer: usize,
    /// Reservations held at once, all peers together.
    pub max_reservations: usize,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            max_circuit_bytes: 1 << 30,
            max_circuit_duration: Some(Duration::from_secs(3600)),
            max_circuits: 64,
            max_circuits_per_peer: 16,
            max_reservations: 128,
        }
    }
}

impl Default for NatConfig {
    fn default() -> Self {
        Self {
            relay_server: false,
            relay_limits: RelayLimits::default(),
            relays: Vec::new(),
            auto_relay: true,
            external_addrs: Vec::new(),
            hole_punching: true,
            autonat_boot_delay: Duration::from_secs(5),
            autonat_retry_interval: Duration::from_secs(60),
        }
    }
}

/// DHT records: store limits and lookup behaviour.
#[derive(Debug, Clone)]
pub struct RecordsConfig {
    /// Store limits (records, value size, providers).
    pub limits: crate::storage::records::Limits,
    /// A lookup stops once this many valid versions were found (then the best one wins).
    pub get_quorum: NonZeroUsize,
    /// Publish this node's own DID document at start and when new peers arrive.
    pub publish_did: bool,
    /// How often every stored record of other publishers is put again to the peers closest to
    /// its key (1 h, as kad's default), walking the store in small batches.
    pub replication_interval: Duration,
    /// How often this node's own records are published again (24 h, as kad's default); they
    /// are sent with a 36 h expiry.
    pub publication_interval: Duration,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        Self {
            limits: crate::storage::records::Limits::default(),
            get_quorum: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
            publish_did: true,
            replication_interval: Duration::from_secs(3600),
            publication_interval: Duration::from_secs(24 * 3600),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: None,
            seed: None,
            label: None,
            listen: addr::parse_listen(&format!("127.0.0.1:{DEFAULT_PORT}")).unwrap_or_default(),
            boot: Vec::new(),
            kad_protocol: libp2p::kad::PROTOCOL_NAME,
            dht_alpha: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
            rendezvous: Some("mcc".to_string()),
            rendezvous_interval: Duration::from_secs(10),
            mdns: MdnsMode::Auto,
            rpc: mcc_rpc::Config::default().with_request_timeout(Duration::from_secs(10)),
            ping_interval: Duration::from_secs(15),
            idle_connection_timeout: Duration::from_secs(30),
            records: RecordsConfig::default(),
            services: Vec::new(),
            listeners: Vec::new(),
            keep_blobs: true,
            admission: AdmissionConfig::default(),
            forward: mcc_forward::ServerConfig::default(),
            routes: mcc_routes::Config::default(),
            nat: NatConfig::default(),
            mesh: MeshConfig::default(),
            limits: super::LimitsConfig::default(),
        }
    }
}
