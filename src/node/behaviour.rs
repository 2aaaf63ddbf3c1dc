//! The composed behaviour: every feature of the node in one `NetworkBehaviour`.

use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{identify, identity::Keypair, kad, mdns, ping};

use super::{Config, Error, RecordStore};

/// Protocol version announced by identify.
pub const IDENTIFY_PROTOCOL: &str = "/mcc/id/1.0.0";

/// Every behaviour of an mcc node.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: kad::Behaviour<RecordStore>,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub rpc: mcc_rpc::Behaviour,
    /// Raw streams for tunnels (`/mcc/forward/1.0.0`): bytes bypass the event loop.
    pub stream: libp2p_stream::Behaviour,
}

impl Behaviour {
    pub(crate) fn new(
        key: &Keypair,
        config: &Config,
        store: RecordStore,
        stream: libp2p_stream::Behaviour,
        agent_version: String,
        methods: mcc_rpc::Methods,
        mdns_on: bool,
    ) -> Result<Self, Error> {
        let peer_id = key.public().to_peer_id();

        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.to_string(), key.public())
                .with_agent_version(agent_version)
                .with_push_listen_addr_updates(true),
        );

        let ping = ping::Behaviour::new(
            ping::Config::new()
                .with_interval(config.ping_interval)
                .with_timeout(Duration::from_secs(20)),
        );

        let mut kad_config = kad::Config::new(config.kad_protocol.clone());
        kad_config
            .set_parallelism(config.dht_alpha)
            // Only peers whose identify lists our kad protocol go into the routing table; the
            // event loop inserts them itself.
            .set_kbucket_inserts(kad::BucketInserts::Manual)
            .set_query_timeout(Duration::from_secs(30))
            // A refused PUT only shows at the putter when its stream times out (kad resets
            // it lazily): keep that short.
            .set_substreams_timeout(Duration::from_secs(5))
            // A message carries at most one record: room for the largest value plus framing.
            .set_max_packet_size(config.records.limits.max_value_size + 16 * 1024);
        let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
        // kad stays a client until an external address is confirmed, which never happens on a
        // LAN or on loopback: an mcc node always serves the DHT.
        kad.set_mode(Some(kad::Mode::Server));

        let mdns = if mdns_on {
            Some(
                mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                    .map_err(|e| Error::Transport(format!("mdns: {e}")))?,
            )
        } else {
            None
        };

        Ok(Self {
            identify,
            ping,
            kad,
            mdns: mdns.into(),
            rpc: mcc_rpc::Behaviour::new(config.rpc.clone(), methods),
            stream,
        })
    }
}
