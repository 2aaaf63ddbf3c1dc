//! The route message counters in Prometheus: `mcc_route_messages_{sent,received,dropped}_total`,
//! read from the routes behaviour's totals at each scrape.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;

struct Totals(mcc_routes::Handle);

impl std::fmt::Debug for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("route totals")
    }
}

impl Collector for Totals {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.0.stats();
        for (name, help, value) in [
            (
                "route_messages_sent",
                "Route messages put on the wire, one per interested peer",
                stats.sent,
            ),
            (
                "route_messages_received",
                "Route messages received from peers for local subscribers",
                stats.received,
            ),
            (
                "route_messages_dropped",
                "Route messages dropped: a full subscription queue, or a peer's queue full past the send timeout",
                stats.dropped,
            ),
        ] {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

/// Registers the route counters of `handle` as `mcc_route_messages_*_total`.
pub(crate) fn register(registry: &mut Registry, handle: mcc_routes::Handle) {
    registry
        .sub_registry_with_prefix("mcc")
        .register_collector(Box::new(Totals(handle)));
}
