//! The daemon's NAT traversal flags ([`NatArgs`]): relay server and its limits, relays to
//! reserve on, external addresses. Flattened into [`super::DaemonArgs`].

use std::time::Duration;

use clap::Args;

use super::{Error, usage};
use crate::config::FileConfig;
use crate::node::{self, addr};

/// NAT traversal options (also read from the YAML config file).
#[derive(Debug, Default, Args)]
pub struct NatArgs {
    /// Serve as a circuit relay for NATed peers (run it on a node peers can dial).
    #[arg(long, env = "MCC_RELAY_SERVER")]
    pub relay_server: bool,
    /// Relay server: bytes one circuit may carry, both directions together; 0 for unlimited
    /// [default: 1073741824].
    #[arg(long, env = "MCC_RELAY_MAX_CIRCUIT_BYTES")]
    pub relay_max_circuit_bytes: Option<u64>,
    /// Relay server: seconds one circuit may last; 0 for unlimited [default: 3600].
    #[arg(long, env = "MCC_RELAY_MAX_CIRCUIT_DURATION")]
    pub relay_max_circuit_duration: Option<f64>,
    /// Relay server: circuits relayed at once [default: 64; 16 per peer].
    #[arg(long, env = "MCC_RELAY_MAX_CIRCUITS")]
    pub relay_max_circuits: Option<usize>,
    /// Relay to hold a reservation on, so peers reach this node through it: host:port or
    /// multiaddr; comma separated or repeated. Private nodes also reserve on connected relays
    /// by themselves.
    #[arg(long = "relay", env = "MCC_RELAY", value_delimiter = ',')]
    pub relays: Vec<String>,
    /// Do not reserve on relays by itself when private (only on --relay ones).
    #[arg(long, env = "MCC_NO_AUTO_RELAY")]
    pub no_auto_relay: bool,
    /// Keep relayed connections relayed: no hole punching (DCUtR).
    #[arg(long, env = "MCC_NO_HOLE_PUNCHING")]
    pub no_hole_punching: bool,
    /// Address peers can dial this node at from outside (public IP, port forward):
    /// host:port or multiaddr; comma separated or repeated.
    #[arg(
        long = "external-addr",
        env = "MCC_EXTERNAL_ADDR",
        value_delimiter = ','
    )]
    pub external_addrs: Vec<String>,
}

impl NatArgs {
    /// Flags win over the file, the file over the defaults.
    pub fn resolve(self, file: &FileConfig) -> Result<node::NatConfig, Error> {
        let mut nat = node::NatConfig {
            relay_server: self.relay_server || file.relay_server.unwrap_or(false),
            auto_relay: !(self.no_auto_relay || file.no_auto_relay.unwrap_or(false)),
            hole_punching: !(self.no_hole_punching || file.no_hole_punching.unwrap_or(false)),
            ..node::NatConfig::default()
        };
        let relays = if self.relays.is_empty() {
            file.relays.as_ref().map(|r| r.items()).unwrap_or_default()
        } else {
            self.relays
        };
        nat.relays = relays
            .iter()
            .map(|r| addr::parse_dial(r).map_err(|e| usage(format!("--relay: {e}"))))
            .collect::<Result<_, _>>()?;
        let external = if self.external_addrs.is_empty() {
            file.external_addrs
                .as_ref()
                .map(|r| r.items())
                .unwrap_or_default()
        } else {
            self.external_addrs
        };
        nat.external_addrs = external
            .iter()
            .map(|r| addr::parse_dial(r).map_err(|e| usage(format!("--external-addr: {e}"))))
            .collect::<Result<_, _>>()?;
        let limits = &mut nat.relay_limits;
        if let Some(b) = self
            .relay_max_circuit_bytes
            .or(file.relay_max_circuit_bytes)
        {
            limits.max_circuit_bytes = b;
        }
        if let Some(s) = self
            .relay_max_circuit_duration
            .or(file.relay_max_circuit_duration)
        {
            limits.max_circuit_duration = if s == 0.0 {
                None
            } else {
                Some(
                    Duration::try_from_secs_f64(s)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| {
                            usage("--relay-max-circuit-duration must be a number of seconds ≥ 0")
                        })?,
                )
            };
        }
        if let Some(n) = self.relay_max_circuits.or(file.relay_max_circuits) {
            if n == 0 {
                return Err(usage("--relay-max-circuits must be at least 1"));
            }
            limits.max_circuits = n;
            limits.max_circuits_per_peer = limits.max_circuits_per_peer.min(n);
        }
        Ok(nat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_bad_values_are_refused() {
        let file = FileConfig::parse(
            "relay-server: true\nrelays: [\"127.0.0.1:4001\"]\nrelay-max-circuit-bytes: 0\n\
             relay-max-circuit-duration: 0\nrelay-max-circuits: 4\nno-hole-punching: true\n",
        )
        .unwrap();
        let nat = NatArgs::default().resolve(&file).unwrap();
        assert!(nat.relay_server);
        assert!(!nat.hole_punching);
        assert_eq!(nat.relays.len(), 1);
        assert_eq!(nat.relay_limits.max_circuit_bytes, 0);
        assert_eq!(nat.relay_limits.max_circuit_duration, None);
        assert_eq!(nat.relay_limits.max_circuits, 4);
        assert_eq!(nat.relay_limits.max_circuits_per_peer, 4);

        let flags = NatArgs {
            relays: vec!["127.0.0.2:5".into()],
            relay_max_circuit_duration: Some(30.0),
            ..NatArgs::default()
        };
        let nat = flags.resolve(&file).unwrap();
        assert_eq!(nat.relays[0].to_string(), "/ip4/127.0.0.2/tcp/5");
        assert_eq!(
            nat.relay_limits.max_circuit_duration,
            Some(Duration::from_secs(30))
        );

        let bad = NatArgs {
            relays: vec!["not an address".into()],
            ..NatArgs::default()
        };
        assert!(bad.resolve(&FileConfig::default()).is_err());
        let bad = NatArgs {
            relay_max_circuit_duration: Some(-1.0),
            ..NatArgs::default()
        };
        assert!(bad.resolve(&FileConfig::default()).is_err());
        let bad = NatArgs {
            relay_max_circuits: Some(0),
            ..NatArgs::default()
        };
        assert!(bad.resolve(&FileConfig::default()).is_err());
    }

    #[test]
    fn defaults_let_a_relay_carry_data() {
        let nat = NatArgs::default().resolve(&FileConfig::default()).unwrap();
        assert!(!nat.relay_server);
        assert!(nat.auto_relay);
        assert!(nat.hole_punching);
        assert!(nat.relay_limits.max_circuit_bytes >= 1 << 30);
    }
}
