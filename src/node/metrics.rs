//! mcc's own Prometheus metrics (libp2p's come from `libp2p-metrics`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

#[derive(Clone)]
pub(crate) struct NodeMetrics {
    pub rpc_inbound: Family<Labels, Counter>,
    pub rpc_outbound: Family<Labels, Counter>,
    pub connected_peers: Gauge,
    pub routing_table_peers: Gauge,
    pub rendezvous_peers: Gauge,
    pub dials: Family<Labels, Counter>,
}

impl NodeMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            rpc_inbound: Family::default(),
            rpc_outbound: Family::default(),
            connected_peers: Gauge::default(),
            routing_table_peers: Gauge::default(),
            rendezvous_peers: Gauge::default(),
            dials: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("mcc");
        r.register(
            "rpc_inbound_requests",
            "RPC requests answered for peers, by outcome",
            m.rpc_inbound.clone(),
        );
        r.register(
            "rpc_outbound_requests",
            "RPC calls made to peers, by outcome",
            m.rpc_outbound.clone(),
        );
        r.register(
            "connected_peers",
            "Peers with at least one open connection",
            m.connected_peers.clone(),
        );
        r.register(
            "routing_table_peers",
            "Peers in the Kademlia routing table",
            m.routing_table_peers.clone(),
        );
        r.register(
            "rendezvous_peers",
            "Providers of the rendezvous key found so far",
            m.rendezvous_peers.clone(),
        );
        r.register("dials", "Dials started, by reason", m.dials.clone());
        m
    }

    pub fn outcome(ok: bool) -> Labels {
        vec![("outcome", if ok { "ok" } else { "error" })]
    }
}
