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
    pub records_stored: Gauge,
    pub records_accepted: Counter,
    pub records_refused: Family<Labels, Counter>,
    /// Last store stats seen, to turn them into counter increments.
    last_stats: mcc_records::Stats,
    pub tunnels: Family<Labels, Counter>,
    pub tunnels_active: Gauge,
    pub tunnel_bytes: Family<Labels, Counter>,
    last_tunnels: [u64; 4],
    /// Peers admitted / refused by certificate, and refusals of our certificate by peers.
    pub admission: Family<Labels, Counter>,
    pub certificate: CertMetrics,
    /// Hole punches: attempts (relayed connections to peers with no direct one), successes,
    /// failures.
    pub holepunch: Family<Labels, Counter>,
    /// Circuits this node's relay server opened.
    pub relay_circuits: Counter,
    /// 1 public, -1 private, 0 unknown (AutoNAT).
    pub reachability: Gauge,
    /// Address book, backoffs, connection targets, peer exchange.
    pub mesh: MeshMetrics,
}

/// Mesh upkeep: the address book and what keeps the connection count between its targets.
#[derive(Clone, Default)]
pub(crate) struct MeshMetrics {
    pub addrbook_entries: Gauge,
    /// Failed dials that put a book entry in backoff.
    pub backoffs: Counter,
    /// Entries dropped after `--max-dial-attempts` failures in a row.
    pub dropped: Counter,
    /// Connections closed for being over `--max-peers`.
    pub closed: Counter,
    /// Peer exchange messages, by direction (sent, received).
    pub pex: Family<Labels, Counter>,
    /// DHT queries this node finished, by purpose (bootstrap, rendezvous, announce, ...), and
    /// the requests they sent: what the upkeep of a quiet network is made of.
    pub dht_queries: Family<Labels, Counter>,
    pub dht_query_requests: Family<Labels, Counter>,
    /// Kad's automatic bootstraps finished at once: the table already held K peers.
    pub bootstraps_skipped: Counter,
}

impl MeshMetrics {
    fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("mcc");
        r.register(
            "addrbook_entries",
            "Peers in the address book",
            self.addrbook_entries.clone(),
        );
        r.register(
            "dial_backoffs",
            "Failed dials that put an address book entry in backoff",
            self.backoffs.clone(),
        );
        r.register(
            "addrbook_dropped",
            "Address book entries dropped after --max-dial-attempts failures in a row",
            self.dropped.clone(),
        );
        r.register(
            "mesh_closed",
            "Connections closed for being over --max-peers",
            self.closed.clone(),
        );
        r.register(
            "pex_messages",
            "Peer exchange messages, by direction (sent, received)",
            self.pex.clone(),
        );
        r.register(
            "dht_queries",
            "DHT queries this node finished, by purpose",
            self.dht_queries.clone(),
        );
        r.register(
            "dht_query_requests",
            "Requests sent by the DHT queries this node finished, by purpose",
            self.dht_query_requests.clone(),
        );
        r.register(
            "dht_bootstraps_skipped",
            "Automatic DHT bootstraps finished at once because the routing table already held K peers",
            self.bootstraps_skipped.clone(),
        );
    }
}

/// This node's certificate: seconds to expiry and the 30-day warning.
#[derive(Clone, Default)]
pub(crate) struct CertMetrics {
    pub expiry_seconds: Gauge,
    pub expiring_soon: Gauge,
}

impl CertMetrics {
    pub fn update(&self, expires_in_secs: u64, expiring_soon: bool) {
        self.expiry_seconds
            .set(i64::try_from(expires_in_secs).unwrap_or(i64::MAX));
        self.expiring_soon.set(i64::from(expiring_soon));
    }
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
            records_stored: Gauge::default(),
            records_accepted: Counter::default(),
            records_refused: Family::default(),
            last_stats: mcc_records::Stats::default(),
            tunnels: Family::default(),
            tunnels_active: Gauge::default(),
            tunnel_bytes: Family::default(),
            last_tunnels: [0; 4],
            admission: Family::default(),
            certificate: CertMetrics::default(),
            holepunch: Family::default(),
            relay_circuits: Counter::default(),
            reachability: Gauge::default(),
            mesh: MeshMetrics::default(),
        };
        m.mesh.register(registry);
        let nat = registry.sub_registry_with_prefix("mcc");
        nat.register(
            "holepunch",
            "Hole punches (DCUtR) by outcome: attempt, success, failure",
            m.holepunch.clone(),
        );
        nat.register(
            "relay_circuits",
            "Circuits opened by this node's relay server",
            m.relay_circuits.clone(),
        );
        nat.register(
            "reachability",
            "AutoNAT reachability: 1 public, -1 private, 0 unknown",
            m.reachability.clone(),
        );
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
        r.register(
            "records_stored",
            "Records in this node's DHT store",
            m.records_stored.clone(),
        );
        r.register(
            "records_accepted",
            "Record puts accepted by the store",
            m.records_accepted.clone(),
        );
        r.register(
            "records_refused",
            "Record puts refused by the store, by reason",
            m.records_refused.clone(),
        );
        r.register(
            "tunnels",
            "Inbound tunnels to local services, by outcome",
            m.tunnels.clone(),
        );
        r.register(
            "tunnels_active",
            "Inbound tunnels open now",
            m.tunnels_active.clone(),
        );
        r.register(
            "tunnel_bytes",
            "Bytes through inbound tunnels (in: to local services, out: from them)",
            m.tunnel_bytes.clone(),
        );
        r.register(
            "admission",
            "Certificate checks: peers admitted or refused, and refusals of ours by peers",
            m.admission.clone(),
        );
        r.register(
            "certificate_expiry_seconds",
            "Seconds until this node's certificate expires (0: expired)",
            m.certificate.expiry_seconds.clone(),
        );
        r.register(
            "certificate_expiring_soon",
            "1 when this node's certificate expires within 30 days (or has expired)",
            m.certificate.expiring_soon.clone(),
        );
        m
    }

    /// Brings the tunnel counters up to the forwarding server's stats.
    pub fn update_tunnels(&mut self, stats: &mcc_forward::Stats) {
        let now = [
            stats.tunnels_opened(),
            stats.tunnels_refused(),
            stats.bytes_in(),
            stats.bytes_out(),
        ];
        let labels = [
            ("outcome", "opened"),
            ("outcome", "refused"),
            ("direction", "in"),
            ("direction", "out"),
        ];
        for (i, (k, v)) in labels.into_iter().enumerate() {
            let family = if i < 2 {
                &self.tunnels
            } else {
                &self.tunnel_bytes
            };
            family
                .get_or_create(&vec![(k, v)])
                .inc_by(now[i].saturating_sub(self.last_tunnels[i]));
        }
        self.last_tunnels = now;
        self.tunnels_active.set(stats.active() as i64);
    }

    /// Brings the record counters up to the store's stats.
    pub fn update_records(&mut self, stored: usize, stats: &mcc_records::Stats) {
        self.records_stored.set(stored as i64);
        let last = &self.last_stats;
        self.records_accepted
            .inc_by(stats.accepted.saturating_sub(last.accepted));
        for (reason, now, before) in [
            ("invalid", stats.refused_invalid, last.refused_invalid),
            ("stale", stats.refused_stale, last.refused_stale),
            ("too_large", stats.refused_too_large, last.refused_too_large),
        ] {
            self.records_refused
                .get_or_create(&vec![("reason", reason)])
                .inc_by(now.saturating_sub(before));
        }
        self.last_stats = stats.clone();
    }

    pub fn outcome(ok: bool) -> Labels {
        vec![("outcome", if ok { "ok" } else { "error" })]
    }
}
