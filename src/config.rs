//! The YAML config file (`--config FILE`).
//!
//! Keys are the long flag names (`boot`, `http`, `data-folder`, `enable-monitoring`, ...).
//! Command-line flags and `MCC_*` environment variables win over the file. `listen:` takes
//! both forms MCC uses: plain addresses (where the node listens) and `{service, address}`
//! entries (local listeners forwarding to a remote service); `services:` lists local services.
//!
//! ```yaml
//! label: kitchen
//! boot: ["192.0.2.10:9376"]
//! listen:
//!   - "0.0.0.0:9376"
//! http: 127.0.0.1:8080
//! enable-monitoring: true
//! services:
//!   - name: web
//!     address: "tcp://localhost:1111"
//! ```

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::node::MdnsMode;

/// A string or a list of strings (`boot: a,b` or `boot: [a, b]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum StringList {
    One(String),
    Many(Vec<String>),
}

impl StringList {
    /// The entries, a single string split at commas.
    pub fn items(&self) -> Vec<String> {
        match self {
            StringList::One(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            StringList::Many(v) => v.clone(),
        }
    }
}

/// A `listen:` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum ListenEntry {
    /// Where the node listens (`host:port` or multiaddr).
    Addr(String),
    /// A local listener forwarding to a remote service.
    Listener {
        service: String,
        address: String,
        #[serde(default)]
        peer: Option<String>,
    },
}

/// A `services:` entry: a local service offered to the mesh.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceEntry {
    pub name: String,
    pub address: String,
}

/// The file's content.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileConfig {
    pub loglevel: Option<u8>,
    pub boot: Option<StringList>,
    #[serde(default)]
    pub listen: Vec<ListenEntry>,
    pub http: Option<String>,
    pub enable_cors: Option<StringList>,
    pub http_forward: Option<String>,
    pub http_forward_timeout: Option<f64>,
    pub api_hosts: Option<StringList>,
    pub api_token: Option<String>,
    pub data_folder: Option<PathBuf>,
    pub label: Option<String>,
    pub enable_monitoring: Option<bool>,
    pub dht_alpha: Option<NonZeroUsize>,
    pub seed: Option<u64>,
    pub kad_protocol: Option<String>,
    pub rendezvous: Option<String>,
    pub rendezvous_interval: Option<f64>,
    pub mdns: Option<MdnsMode>,
    pub rpc_timeout: Option<f64>,
    pub max_tunnels: Option<usize>,
    pub max_tunnels_per_peer: Option<usize>,
    pub tunnel_idle_timeout: Option<f64>,
    pub route_queue: Option<usize>,
    pub max_records: Option<usize>,
    pub max_record_size: Option<usize>,
    pub max_providers_per_key: Option<usize>,
    pub keep_blobs: Option<bool>,
    pub cert: Option<String>,
    pub privkey: Option<PathBuf>,
    pub trust_ca: Option<PathBuf>,
    pub revocations: Option<PathBuf>,
    pub revocation_refresh: Option<f64>,
    pub relay_server: Option<bool>,
    pub relay_max_circuit_bytes: Option<u64>,
    pub relay_max_circuit_duration: Option<f64>,
    pub relay_max_circuits: Option<usize>,
    pub relays: Option<StringList>,
    pub no_auto_relay: Option<bool>,
    pub no_hole_punching: Option<bool>,
    pub external_addrs: Option<StringList>,
    pub peers: Option<StringList>,
    pub max_dial_attempts: Option<u32>,
    pub dial_backoff: Option<f64>,
    pub dial_backoff_multiplier: Option<f64>,
    pub dial_backoff_max: Option<f64>,
    pub min_peers: Option<usize>,
    pub max_peers: Option<usize>,
    pub no_pex: Option<bool>,
    pub max_connections: Option<u32>,
    pub max_connections_per_peer: Option<u32>,
    pub max_pending_incoming: Option<u32>,
    pub max_pending_outgoing: Option<u32>,
    pub max_streams_per_connection: Option<usize>,
    pub max_negotiating_streams: Option<usize>,
    pub max_memory: Option<usize>,
    pub cpu_profile: Option<u64>,
    pub heap_profile: Option<u64>,
    pub goroutine_profile: Option<u64>,
    pub profile_dir: Option<PathBuf>,
    #[serde(default)]
    pub services: Vec<ServiceEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|reason| Error::Parse {
            path: path.to_path_buf(),
            reason,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }

    /// The plain listen addresses.
    pub fn listen_addrs(&self) -> Vec<String> {
        self.listen
            .iter()
            .filter_map(|l| match l {
                ListenEntry::Addr(a) => Some(a.clone()),
                ListenEntry::Listener { .. } => None,
            })
            .collect()
    }

    /// The listener entries: (service, local address, pinned peer).
    pub fn listener_entries(&self) -> Vec<(String, String, Option<String>)> {
        self.listen
            .iter()
            .filter_map(|l| match l {
                ListenEntry::Listener {
                    service,
                    address,
                    peer,
                } => Some((service.clone(), address.clone(), peer.clone())),
                ListenEntry::Addr(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_and_mcc_sections() {
        let c = FileConfig::parse(
            r#"
label: Kitchen
boot: "127.0.0.1:9376, 127.0.0.1:9377"
listen:
  - "127.0.0.1:9400"
  - service: web
    address: "tcp://localhost:5000"
http: 127.0.0.1:8081
http-forward: 127.0.0.1:8082
http-forward-timeout: 30
api-hosts: "mcc.lan, box.lan"
api-token: auto
enable-monitoring: true
dht-alpha: 5
mdns: off
services:
  - name: web
    address: "tcp://localhost:1111"
"#,
        )
        .unwrap();
        assert_eq!(c.label.as_deref(), Some("Kitchen"));
        assert_eq!(c.boot.as_ref().map(|b| b.items().len()), Some(2));
        assert_eq!(c.listen_addrs(), vec!["127.0.0.1:9400".to_string()]);
        assert_eq!(
            c.listener_entries(),
            vec![("web".to_string(), "tcp://localhost:5000".to_string(), None)]
        );
        assert_eq!(c.enable_monitoring, Some(true));
        assert_eq!(c.http_forward.as_deref(), Some("127.0.0.1:8082"));
        assert_eq!(c.http_forward_timeout, Some(30.0));
        assert_eq!(c.api_hosts.as_ref().map(|h| h.items().len()), Some(2));
        assert_eq!(c.api_token.as_deref(), Some("auto"));
        assert_eq!(c.dht_alpha.map(|n| n.get()), Some(5));
        assert_eq!(c.mdns, Some(MdnsMode::Off));
        assert_eq!(c.services[0].name, "web");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(FileConfig::parse("nonsense: 1").is_err());
        assert!(FileConfig::parse("dht-alpha: 0").is_err());
        assert!(FileConfig::parse("mdns: sometimes").is_err());
        assert!(FileConfig::parse("listen: 5").is_err());
    }

    #[test]
    fn tunnel_limits() {
        let c = FileConfig::parse(
            "max-tunnels: 300\nmax-tunnels-per-peer: 7\ntunnel-idle-timeout: 90.5\n",
        )
        .unwrap();
        assert_eq!(c.max_tunnels, Some(300));
        assert_eq!(c.max_tunnels_per_peer, Some(7));
        assert_eq!(c.tunnel_idle_timeout, Some(90.5));
        assert!(FileConfig::parse("max-tunnels-per-peer: -1").is_err());
        let c = FileConfig::parse("route-queue: 64\n").unwrap();
        assert_eq!(c.route_queue, Some(64));
    }

    #[test]
    fn empty_file_is_defaults() {
        assert_eq!(FileConfig::parse("\n").unwrap(), FileConfig::default());
    }
}
