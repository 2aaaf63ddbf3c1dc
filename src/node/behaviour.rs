//! The composed behaviour: every feature of the node in one `NetworkBehaviour`.

use std::num::NonZeroUsize;
use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, autonat, connection_limits, dcutr, identify, identity::Keypair, kad, mdns,
    memory_connection_limits, ping, relay,
};
use mcc_admission::{Gated, Gates};

use super::RecordStore;
use super::confirmed::Confirmed;
use super::path_aware::PathAware;

/// Protocol version announced by identify.
pub const IDENTIFY_PROTOCOL: &str = "/mcc/id/1.0.0";

/// Every behaviour of an mcc node.
///
/// The connection caps come first (`--max-connections`..., `--max-memory`), then admission:
/// it refuses banned peers before the others set up a connection.
/// kad, rpc and the raw streams are [`Gated`]: with `--trust-ca` they serve a peer only once
/// its certificate verified.
///
/// The swarm negotiates outbound streams optimistically (multistream-select `V1Lazy`, see
/// `builder.rs`); every behaviour that opens streams except the raw streams is [`Confirmed`],
/// which keeps its negotiation as in `V1`. The raw streams go optimistic only on protocols the
/// peer listed (identify), where the opener writes first (tunnels, blob requests); so does RPC
/// ([`Confirmed::optimistic_when_listed`]): a call to a peer that listed the RPC protocol sends
/// its request with the proposal.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Connection caps; persistent peers bypass them (see `node::limits`).
    pub limits: connection_limits::Behaviour,
    /// No new connections while the process uses more memory than `--max-memory`.
    pub memory: Toggle<memory_connection_limits::Behaviour>,
    pub admission: Confirmed<mcc_admission::Behaviour>,
    pub identify: Confirmed<identify::Behaviour>,
    pub ping: Confirmed<ping::Behaviour>,
    pub kad: Confirmed<Gated<kad::Behaviour<RecordStore>>>,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub rpc: Confirmed<Gated<mcc_rpc::Behaviour>>,
    /// Raw streams for tunnels (`/mcc/forward/1.0.0`) and blobs: bytes bypass the event loop.
    /// New streams take a direct connection when there is one ([`PathAware`]).
    pub stream: Gated<PathAware<mcc_streams::Behaviour>>,
    /// Reservations on relays and connections through them (its transport is in the swarm).
    pub relay_client: Confirmed<relay::client::Behaviour>,
    /// The circuit relay v2 hop, with `--relay-server`; only admitted peers may use it.
    pub relay: Confirmed<Toggle<Gated<relay::Behaviour>>>,
    /// Hole punching: turns a relayed connection into a direct one.
    /// Its candidates include this node's external addresses ([`PathAware`]).
    /// Off with `--no-hole-punching`.
    pub dcutr: Confirmed<Toggle<Gated<PathAware<dcutr::Behaviour>>>>,
    /// Reachability probes (AutoNAT v1): as client, and as server for other peers.
    pub autonat: Confirmed<Gated<autonat::Behaviour>>,
    /// Peer exchange (`/mcc/pex/1.0.0`), unless `--no-pex`; admitted peers only.
    pub pex: Confirmed<Toggle<Gated<mcc_pex::Behaviour>>>,
    /// Routes (`/mcc/routes/1.0.0`): message bytes bypass the event loop (connection tasks).
    pub routes: Confirmed<Gated<mcc_routes::Behaviour>>,
    /// Bitswap (`/ipfs/bitswap/1.2.0`) for IPFS peers: blocks bypass the event loop
    /// (connection tasks); served only with `blobs:seed`.
    pub bitswap: Confirmed<Gated<mcc_bitswap::Behaviour>>,
    /// Which connections stay open while idle: the mesh releases those it does not want
    /// (a DHT query's), which then close after the short idle timeout.
    pub keep: super::keep::Behaviour,
}

/// What [`Behaviour::new`] needs besides the key, which only the swarm builder's closure
/// has: the parts built up front (admission, record store, streams) and the settings.
pub(crate) struct BehaviourConfig {
    pub admission: mcc_admission::Behaviour,
    pub store: RecordStore,
    pub stream: mcc_streams::Behaviour,
    /// Announced by identify.
    pub agent_version: String,
    pub methods: mcc_rpc::Methods,
    /// Run mDNS.
    pub mdns: bool,
    pub kad_protocol: StreamProtocol,
    /// Kademlia query parallelism.
    pub dht_alpha: NonZeroUsize,
    /// Largest record value: sizes kad's packets.
    pub max_record_size: usize,
    pub ping_interval: Duration,
    pub rpc: mcc_rpc::Config,
    pub nat: super::NatConfig,
    /// Run the peer exchange.
    pub pex: bool,
    /// Built up front: its handle is the node's `routes::Routes`.
    pub routes: mcc_routes::Behaviour,
    /// Built up front: its handle is used by the node's `blobs::Blobs`.
    pub bitswap: mcc_bitswap::Behaviour,
    /// Connection and memory caps.
    pub limits: super::LimitsConfig,
}

impl Behaviour {
    /// Builds every behaviour; called inside `SwarmBuilder::with_behaviour`. Fails only when
    /// mDNS cannot start.
    pub(crate) fn new(
        key: &Keypair,
        relay_client: relay::client::Behaviour,
        config: BehaviourConfig,
    ) -> std::io::Result<Self> {
        let BehaviourConfig {
            admission,
            store,
            stream,
            agent_version,
            methods,
            mdns: mdns_on,
            kad_protocol,
            dht_alpha,
            max_record_size,
            ping_interval,
            rpc: rpc_config,
            nat,
            pex,
            routes,
            bitswap,
            limits,
        } = config;
        let peer_id = key.public().to_peer_id();

        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.to_string(), key.public())
                .with_agent_version(agent_version)
                .with_push_listen_addr_updates(true),
        );

        let ping = ping::Behaviour::new(
            ping::Config::new()
                .with_interval(ping_interval)
                .with_timeout(Duration::from_secs(20)),
        );

        let mut kad_config = kad::Config::new(kad_protocol);
        kad_config
            .set_parallelism(dht_alpha)
            // Only peers whose identify lists our kad protocol go into the routing table; the
            // event loop inserts them itself.
            .set_kbucket_inserts(kad::BucketInserts::Manual)
            .set_query_timeout(Duration::from_secs(30))
            // The routing table's refresh is the event loop's (event_loop/bootstrap.rs): every
            // 10 min, as Kubo does, rather than kad's 5 (in a quiet network it is most of a
            // node's DHT traffic), and told apart from kad's automatic bootstraps.
            .set_periodic_bootstrap_interval(None)
            // A refused PUT only shows at the putter when its stream times out (kad resets
            // it lazily): keep that short.
            .set_substreams_timeout(Duration::from_secs(5))
            // A message carries at most one record: room for the largest value plus framing.
            .set_max_packet_size(max_record_size + 16 * 1024)
            // kad's own job loads every stored record into memory at once; the event loop
            // replicates and republishes in bounded batches instead (event_loop/records.rs).
            .set_replication_interval(None)
            .set_publication_interval(None);
        let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
        // kad stays a client until an external address is confirmed, which never happens on a
        // LAN or on loopback: an mcc node always serves the DHT.
        kad.set_mode(Some(kad::Mode::Server));

        let mdns = if mdns_on {
            Some(mdns::tokio::Behaviour::new(
                mdns::Config::default(),
                peer_id,
            )?)
        } else {
            None
        };

        let gates: Gates = admission.gates();
        let authorizer: mcc_rpc::Authorizer = {
            let gates = gates.clone();
            std::sync::Arc::new(move |peer, _method| {
                if gates.allows(peer, mcc_admission::Permission::RpcCall) {
                    Ok(())
                } else {
                    Err(mcc_rpc::RpcError::new(
                        mcc_rpc::ErrorCode::Forbidden,
                        "the caller's certificate lacks the rpc:call permission",
                    ))
                }
            })
        };
        let rpc = mcc_rpc::Behaviour::new(rpc_config.with_authorizer(authorizer), methods);
        let relay = nat.relay_server.then(|| {
            Gated::new(
                relay::Behaviour::new(peer_id, relay_config(&nat.relay_limits)),
                gates.clone(),
            )
        });
        let autonat = autonat::Behaviour::new(
            peer_id,
            autonat::Config {
                boot_delay: nat.autonat_boot_delay,
                retry_interval: nat.autonat_retry_interval,
                // LAN meshes count: a peer that LAN peers can dial is reachable for them.
                only_global_ips: false,
                // Dial-back requests: at most 30 a minute in all, 3 a minute per peer.
                throttle_clients_period: Duration::from_secs(60),
                ..autonat::Config::default()
            },
        );
        let pex = pex.then(|| {
            Gated::new(
                mcc_pex::Behaviour::new(mcc_pex::Config::new()),
                gates.clone(),
            )
        });
        Ok(Self {
            limits: connection_limits::Behaviour::new(limits.connection_limits()),
            memory: limits
                .max_memory
                .map(memory_connection_limits::Behaviour::with_max_bytes)
                .into(),
            pex: Confirmed::new(pex.into()),
            relay_client: Confirmed::new(relay_client),
            relay: Confirmed::new(relay.into()),
            dcutr: Confirmed::new(
                nat.hole_punching
                    .then(|| {
                        Gated::new(
                            PathAware::external_candidates(dcutr::Behaviour::new(peer_id)),
                            gates.clone(),
                        )
                    })
                    .into(),
            ),
            autonat: Confirmed::new(Gated::new(autonat, gates.clone())),
            admission: Confirmed::new(admission),
            identify: Confirmed::new(identify),
            ping: Confirmed::new(ping),
            // The store learns which peer writes a record (records:write) from the gate.
            kad: Confirmed::new(Gated::new(kad, gates.clone()).tracking_source()),
            mdns: mdns.into(),
            rpc: Confirmed::optimistic_when_listed(Gated::new(rpc, gates.clone())),
            routes: Confirmed::new(Gated::new(routes, gates.clone())),
            bitswap: Confirmed::new(Gated::new(bitswap, gates.clone())),
            keep: super::keep::Behaviour::default(),
            stream: Gated::new(PathAware::prefer_direct(stream), gates),
        })
    }
}

/// libp2p's relay server config with mcc's limits.
fn relay_config(limits: &super::RelayLimits) -> relay::Config {
    // `max_circuit_duration` 0 would close every circuit at once: "unlimited" is ten years.
    const UNLIMITED: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
    relay::Config {
        max_circuit_bytes: limits.max_circuit_bytes,
        max_circuit_duration: limits.max_circuit_duration.unwrap_or(UNLIMITED),
        max_circuits: limits.max_circuits,
        max_circuits_per_peer: limits.max_circuits_per_peer,
        max_reservations: limits.max_reservations,
        ..relay::Config::default()
    }
}
