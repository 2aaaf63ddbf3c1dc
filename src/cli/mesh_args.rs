//! The daemon's mesh upkeep flags ([`MeshArgs`]): persistent peers, dial backoff, connection
//! targets, peer exchange. Flattened into [`super::DaemonArgs`].

use std::time::Duration;

use clap::Args;

use super::{Error, usage};
use crate::config::FileConfig;
use crate::node::{self, addr};

/// Mesh upkeep options (also read from the YAML config file).
#[derive(Debug, Default, Args)]
pub struct MeshArgs {
    /// Persistent peer, redialled forever with backoff: host:port or multiaddr; comma
    /// separated or repeated.
    #[arg(long = "peer", env = "MCC_PEER", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Failed dials in a row after which a non-persistent peer leaves the address book
    /// [default: 10].
    #[arg(long, env = "MCC_MAX_DIAL_ATTEMPTS")]
    pub max_dial_attempts: Option<u32>,
    /// Seconds to wait after a first failed dial [default: 1].
    #[arg(long, env = "MCC_DIAL_BACKOFF")]
    pub dial_backoff: Option<f64>,
    /// Each further failure multiplies the wait by 1 + this [default: 1.5].
    #[arg(long, env = "MCC_DIAL_BACKOFF_MULTIPLIER")]
    pub dial_backoff_multiplier: Option<f64>,
    /// Longest wait between dials of a peer, in seconds [default: 60].
    #[arg(long, env = "MCC_DIAL_BACKOFF_MAX")]
    pub dial_backoff_max: Option<f64>,
    /// Below this many connected peers, dial peers from the address book [default: 8].
    #[arg(long, env = "MCC_MIN_PEERS")]
    pub min_peers: Option<usize>,
    /// Above this many, stop dialling found peers and close the least useful connections
    /// [default: 64].
    #[arg(long, env = "MCC_MAX_PEERS")]
    pub max_peers: Option<usize>,
    /// Do not exchange connected peers with peers (/mcc/pex/1.0.0).
    #[arg(long, env = "MCC_NO_PEX")]
    pub no_pex: bool,
}

fn secs(name: &str, v: f64) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| usage(format!("--{name} must be a positive number of seconds")))
}

impl MeshArgs {
    /// Flags win over the file, the file over the defaults.
    pub fn resolve(self, file: &FileConfig) -> Result<node::MeshConfig, Error> {
        let mut mesh = node::MeshConfig {
            pex: !(self.no_pex || file.no_pex.unwrap_or(false)),
            ..node::MeshConfig::default()
        };
        let peers = if self.peers.is_empty() {
            file.peers.as_ref().map(|p| p.items()).unwrap_or_default()
        } else {
            self.peers
        };
        mesh.peers = peers
            .iter()
            .map(|p| addr::parse_dial(p).map_err(|e| usage(format!("--peer: {e}"))))
            .collect::<Result<_, _>>()?;
        let b = &mut mesh.backoff;
        if let Some(n) = self.max_dial_attempts.or(file.max_dial_attempts) {
            if n == 0 {
                return Err(usage("--max-dial-attempts must be at least 1"));
            }
            b.max_attempts = n;
        }
        if let Some(s) = self.dial_backoff.or(file.dial_backoff) {
            b.initial = secs("dial-backoff", s)?;
        }
        if let Some(m) = self
            .dial_backoff_multiplier
            .or(file.dial_backoff_multiplier)
        {
            if !(0.0..=100.0).contains(&m) {
                return Err(usage("--dial-backoff-multiplier must be between 0 and 100"));
            }
            b.multiplier = m;
        }
        if let Some(s) = self.dial_backoff_max.or(file.dial_backoff_max) {
            b.max = secs("dial-backoff-max", s)?;
        }
        if b.max < b.initial {
            return Err(usage("--dial-backoff-max must be at least --dial-backoff"));
        }
        if let Some(n) = self.min_peers.or(file.min_peers) {
            mesh.min_peers = n;
        }
        if let Some(n) = self.max_peers.or(file.max_peers) {
            if n == 0 {
                return Err(usage("--max-peers must be at least 1"));
            }
            mesh.max_peers = n;
        }
        if mesh.min_peers > mesh.max_peers {
            // Only one of them given: the other follows.
            if self.min_peers.or(file.min_peers).is_some()
                && self.max_peers.or(file.max_peers).is_some()
            {
                return Err(usage("--min-peers must not be above --max-peers"));
            }
            if self.max_peers.or(file.max_peers).is_some() {
                mesh.min_peers = mesh.max_peers;
            } else {
                mesh.max_peers = mesh.min_peers;
            }
        }
        Ok(mesh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_bad_values_are_refused() {
        let file = FileConfig::parse(
            "peers: [\"127.0.0.1:4001\"]\nmax-dial-attempts: 3\ndial-backoff: 0.5\n\
             dial-backoff-multiplier: 1\ndial-backoff-max: 10\nmin-peers: 2\nmax-peers: 4\n\
             no-pex: true\n",
        )
        .unwrap();
        let m = MeshArgs::default().resolve(&file).unwrap();
        assert_eq!(m.peers.len(), 1);
        assert_eq!(m.backoff.max_attempts, 3);
        assert_eq!(m.backoff.initial, Duration::from_millis(500));
        assert_eq!(m.backoff.multiplier, 1.0);
        assert_eq!(m.backoff.max, Duration::from_secs(10));
        assert_eq!((m.min_peers, m.max_peers), (2, 4));
        assert!(!m.pex);

        let flags = MeshArgs {
            max_peers: Some(3),
            ..MeshArgs::default()
        };
        assert_eq!(flags.resolve(&file).unwrap().max_peers, 3);

        let defaults = MeshArgs::default().resolve(&FileConfig::default()).unwrap();
        assert_eq!((defaults.min_peers, defaults.max_peers), (8, 64));
        assert!(defaults.pex);
        // --max-peers alone below the default minimum lowers the minimum.
        let small = MeshArgs {
            max_peers: Some(4),
            ..MeshArgs::default()
        };
        assert_eq!(small.resolve(&FileConfig::default()).unwrap().min_peers, 4);

        for bad in [
            MeshArgs {
                peers: vec!["not an address".into()],
                ..MeshArgs::default()
            },
            MeshArgs {
                max_dial_attempts: Some(0),
                ..MeshArgs::default()
            },
            MeshArgs {
                dial_backoff: Some(-1.0),
                ..MeshArgs::default()
            },
            MeshArgs {
                min_peers: Some(9),
                max_peers: Some(3),
                ..MeshArgs::default()
            },
            MeshArgs {
                dial_backoff: Some(10.0),
                dial_backoff_max: Some(1.0),
                ..MeshArgs::default()
            },
        ] {
            assert!(bad.resolve(&FileConfig::default()).is_err());
        }
    }
}
