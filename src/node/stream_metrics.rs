//! The raw stream counters in Prometheus, read from `mcc_streams::Control::stats` at each
//! scrape: `mcc_streams_total{protocol, outcome}` (outcome `opened`, `open_failed`,
//! `optimistic`, `inbound`, `accepted`, `refused`) and the gauge `mcc_streams_queued{protocol}`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

struct Streams(mcc_streams::Control);

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stream counters")
    }
}

impl Collector for Streams {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.0.stats();
        {
            let mut family = encoder.encode_descriptor(
                "streams",
                "Raw streams (tunnels, blob transfers, user streams) by protocol and outcome: opened, open_failed, optimistic, inbound, accepted, refused",
                None,
                ConstCounter::new(0u64).metric_type(),
            )?;
            for s in &stats {
                for (outcome, value) in [
                    ("opened", s.opened),
                    ("open_failed", s.open_failed),
                    ("optimistic", s.optimistic),
                    ("inbound", s.inbound),
                    ("accepted", s.accepted),
                    ("refused", s.refused),
                ] {
                    let labels = [("protocol", s.protocol.as_str()), ("outcome", outcome)];
                    ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "streams_queued",
            "Inbound raw streams waiting now for a slow acceptor, by protocol",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for s in &stats {
            let labels = [("protocol", s.protocol.as_str())];
            let queued = i64::try_from(s.queued).unwrap_or(i64::MAX);
            ConstGauge::new(queued).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Registers the stream counters of `control` as `mcc_streams_total` and
/// `mcc_streams_queued`.
pub(crate) fn register(registry: &mut Registry, control: mcc_streams::Control) {
    registry
        .sub_registry_with_prefix("mcc")
        .register_collector(Box::new(Streams(control)));
}
