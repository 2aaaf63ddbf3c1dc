//! The daemon's resource caps ([`LimitsArgs`]): connections in total and per peer, pending
//! dials, streams per connection, memory. Flattened into [`super::DaemonArgs`]; the caps
//! themselves are described in `node::LimitsConfig`.

use clap::Args;

use super::{Error, usage};
use crate::config::FileConfig;
use crate::node;

/// Resource caps (also read from the YAML config file).
#[derive(Debug, Default, Args)]
pub struct LimitsArgs {
    /// Established connections, all peers together; 0 for unlimited [default: 512].
    /// Persistent peers are not counted against it. Must be at least --max-peers.
    #[arg(long, env = "MCC_MAX_CONNECTIONS")]
    pub max_connections: Option<u32>,
    /// Established connections to one peer; 0 for unlimited [default: 8].
    #[arg(long, env = "MCC_MAX_CONNECTIONS_PER_PEER")]
    pub max_connections_per_peer: Option<u32>,
    /// Incoming connections still in their handshake; more are closed at once; 0 for
    /// unlimited [default: 64].
    #[arg(long, env = "MCC_MAX_PENDING_INCOMING")]
    pub max_pending_incoming: Option<u32>,
    /// Outgoing dials in flight; more fail at once; 0 for unlimited [default: 256].
    #[arg(long, env = "MCC_MAX_PENDING_OUTGOING")]
    pub max_pending_outgoing: Option<u32>,
    /// Streams open at once on one connection, both directions; a peer that opens more has
    /// its connection closed; 1 to 4096 [default: 512].
    #[arg(long, env = "MCC_MAX_STREAMS_PER_CONNECTION")]
    pub max_streams_per_connection: Option<usize>,
    /// Inbound streams of one connection still choosing their protocol; more are dropped
    /// [default: 128].
    #[arg(long, env = "MCC_MAX_NEGOTIATING_STREAMS")]
    pub max_negotiating_streams: Option<usize>,
    /// Refuse new connections while the process uses more than this much memory, in MiB;
    /// 0 for no limit [default: 2048].
    #[arg(long, env = "MCC_MAX_MEMORY")]
    pub max_memory: Option<usize>,
}

/// 0 means no cap.
fn cap(n: u32) -> Option<u32> {
    (n > 0).then_some(n)
}

impl LimitsArgs {
    /// Flags win over the file, the file over the defaults. `mesh` is the resolved mesh
    /// config: the connection cap must leave room for `--max-peers`.
    pub fn resolve(
        self,
        file: &FileConfig,
        mesh: &node::MeshConfig,
    ) -> Result<node::LimitsConfig, Error> {
        let mut limits = node::LimitsConfig {
            max_memory: Some(node::DAEMON_MAX_MEMORY),
            ..node::LimitsConfig::default()
        };
        if let Some(n) = self.max_connections.or(file.max_connections) {
            limits.max_connections = cap(n);
        }
        if let Some(n) = self
            .max_connections_per_peer
            .or(file.max_connections_per_peer)
        {
            limits.max_connections_per_peer = cap(n);
        }
        if let Some(n) = self.max_pending_incoming.or(file.max_pending_incoming) {
            limits.max_pending_incoming = cap(n);
        }
        if let Some(n) = self.max_pending_outgoing.or(file.max_pending_outgoing) {
            limits.max_pending_outgoing = cap(n);
        }
        if let Some(n) = self
            .max_streams_per_connection
            .or(file.max_streams_per_connection)
        {
            if !(1..=node::MAX_STREAMS_PER_CONNECTION).contains(&n) {
                return Err(usage(format!(
                    "--max-streams-per-connection must be between 1 and {}",
                    node::MAX_STREAMS_PER_CONNECTION
                )));
            }
            limits.max_streams_per_connection = n;
        }
        if let Some(n) = self
            .max_negotiating_streams
            .or(file.max_negotiating_streams)
        {
            if n == 0 {
                return Err(usage("--max-negotiating-streams must be at least 1"));
            }
            limits.max_negotiating_streams = n;
        }
        if let Some(mib) = self.max_memory.or(file.max_memory) {
            limits.max_memory = match mib {
                0 => None,
                m => Some(
                    m.checked_mul(1 << 20)
                        .ok_or_else(|| usage("--max-memory is too large"))?,
                ),
            };
        }
        if let Some(max) = limits.max_connections
            && (max as usize) < mesh.max_peers
        {
            return Err(usage(format!(
                "--max-connections ({max}) must be at least --max-peers ({})",
                mesh.max_peers
            )));
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_bad_values_are_refused() {
        let mesh = node::MeshConfig::default();
        let file = FileConfig::parse(
            "max-connections: 100\nmax-connections-per-peer: 2\nmax-pending-incoming: 0\n\
             max-pending-outgoing: 9\nmax-streams-per-connection: 64\n\
             max-negotiating-streams: 16\nmax-memory: 512\n",
        )
        .unwrap();
        let l = LimitsArgs::default().resolve(&file, &mesh).unwrap();
        assert_eq!(l.max_connections, Some(100));
        assert_eq!(l.max_connections_per_peer, Some(2));
        assert_eq!(l.max_pending_incoming, None);
        assert_eq!(l.max_pending_outgoing, Some(9));
        assert_eq!(l.max_streams_per_connection, 64);
        assert_eq!(l.max_negotiating_streams, 16);
        assert_eq!(l.max_memory, Some(512 << 20));

        let flags = LimitsArgs {
            max_connections: Some(0),
            max_memory: Some(0),
            ..LimitsArgs::default()
        };
        let l = flags.resolve(&file, &mesh).unwrap();
        assert_eq!((l.max_connections, l.max_memory), (None, None));

        let defaults = LimitsArgs::default()
            .resolve(&FileConfig::default(), &mesh)
            .unwrap();
        assert_eq!(
            defaults,
            node::LimitsConfig {
                max_memory: Some(2 << 30),
                ..node::LimitsConfig::default()
            }
        );

        for bad in [
            LimitsArgs {
                max_streams_per_connection: Some(0),
                ..LimitsArgs::default()
            },
            LimitsArgs {
                max_streams_per_connection: Some(5000),
                ..LimitsArgs::default()
            },
            LimitsArgs {
                max_negotiating_streams: Some(0),
                ..LimitsArgs::default()
            },
            // Below the default --max-peers (64).
            LimitsArgs {
                max_connections: Some(10),
                ..LimitsArgs::default()
            },
        ] {
            assert!(bad.resolve(&FileConfig::default(), &mesh).is_err());
        }
    }
}
