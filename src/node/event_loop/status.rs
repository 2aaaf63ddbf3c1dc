//! What the loop reports about the node as a whole: the `NodeInfo` of the API, and the
//! gauges it refreshes on the rendezvous tick (routing table, records, tunnels).

use super::EventLoop;
use crate::node::{CertificateInfo, NodeInfo, RelayServerInfo, VERSION};

impl EventLoop {
    /// `Command::Info`.
    pub(super) fn node_info(&mut self) -> NodeInfo {
        let routing_table_size = self.routing_table_size();
        NodeInfo {
            peer_id: *self.swarm.local_peer_id(),
            label: self.info.label.clone(),
            did: self.info.did.clone(),
            version: VERSION.to_string(),
            agent_version: self.info.agent_version.clone(),
            listen_addrs: self.swarm.listeners().cloned().collect(),
            external_addrs: self.swarm.external_addresses().cloned().collect(),
            kad_protocol: self.peers.kad_protocol.to_string(),
            rendezvous: self.discovery.rendezvous.as_ref().map(|(k, _)| k.clone()),
            mdns: self.info.mdns,
            rpc_methods: self.info.methods.names(),
            connected_peers: self.peers.connected.len(),
            routing_table_size,
            uptime_secs: self.started.elapsed().as_secs(),
            certificate: CertificateInfo::of(self.swarm.behaviour().admission.own_certificate()),
            admission: self.admission_info(),
            http_forward: None,
            reachability: self.nat.reachability(),
            public_addr: self.nat.public_addr().cloned(),
            relays: self.nat.relays(),
            relay_server: self
                .swarm
                .behaviour()
                .relay
                .is_enabled()
                .then_some(RelayServerInfo {
                    reservations: self.nat.server_reservations.len(),
                    circuits: self.nat.server_circuits,
                }),
            observed_addrs: self.observed_addrs(),
            streams: (self.swarm.behaviour().stream.control().stats().into_iter())
                .map(Into::into)
                .collect(),
        }
    }

    /// Sets the gauges that no event keeps current: routing table size, stored records and
    /// record-store counters, tunnels of the forwarding server.
    pub(super) fn refresh_metrics(&mut self) {
        let size = self.routing_table_size();
        self.metrics.routing_table_peers.set(size as i64);
        let store = self.swarm.behaviour_mut().kad.store_mut();
        let (stored, stats) = (store.inner().len(), store.stats());
        self.metrics.update_records(stored, &stats);
        self.metrics.update_tunnels(&self.info.forward_stats);
    }
}
