//! The daemon's side of the command line: its flags ([`DaemonArgs`]), merged with the YAML
//! config file into the daemon's settings ([`Resolved`]), `mcc --newcert`, and the log level.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::output::print_written;
use super::{CommonArgs, DEFAULT_DATA_FOLDER, DEFAULT_HTTP, Error, usage};
use crate::api::ApiConfig;
use crate::config::FileConfig;
use crate::daemon;
use crate::node::{self, MdnsMode, addr};

/// Options of the daemon (also read from the YAML config file).
#[derive(Debug, Default, Args)]
pub struct DaemonArgs {
    /// Log level: 0 off, 1 fatal, 2 error, 3 warn, 4 info (default), 5 debug, 6 trace.
    #[arg(long, env = "MCC_LOGLEVEL", value_parser = clap::value_parser!(u8).range(0..=6))]
    pub loglevel: Option<u8>,
    /// Peers to join through: host:port or multiaddr; comma separated or repeated.
    #[arg(long, env = "MCC_BOOT", value_delimiter = ',')]
    pub boot: Vec<String>,
    /// Where to listen: host:port (TCP and QUIC) or multiaddr; repeatable
    /// [default: 127.0.0.1:9376].
    #[arg(long, env = "MCC_LISTEN", value_delimiter = ',')]
    pub listen: Vec<String>,
    /// REST API address, or "off" [default: 127.0.0.1:8080].
    #[arg(long, env = "MCC_HTTP")]
    pub http: Option<String>,
    /// Origins allowed by CORS on the API ("*" for any); comma separated. Only these web
    /// pages may send state-changing requests to the API.
    #[arg(long, env = "MCC_ENABLE_CORS", value_delimiter = ',')]
    pub enable_cors: Vec<String>,
    /// Forward listener for browsers: http://SERVICE.localhost:PORT/ (or http://ADDR/SERVICE/)
    /// opens a mesh HTTP service on an origin of its own, not the API's; "off" disables
    /// [default: off].
    #[arg(long, env = "MCC_HTTP_FORWARD")]
    pub http_forward: Option<String>,
    /// Seconds the HTTP forwards wait for a service's answer (then 504), and between two
    /// pieces of its body (then the answer is cut) [default: 60].
    #[arg(long, env = "MCC_HTTP_FORWARD_TIMEOUT")]
    pub http_forward_timeout: Option<f64>,
    /// Names the API and forward listener accept in the Host header besides localhost,
    /// loopback IPs and the bound address (against DNS rebinding); comma separated.
    #[arg(long, env = "MCC_API_HOSTS", value_delimiter = ',')]
    pub api_hosts: Vec<String>,
    /// Label of this node (lowercase letters and digits, at most 30 bytes; random if absent).
    #[arg(long, env = "MCC_LABEL")]
    pub label: Option<String>,
    /// Serve Prometheus metrics at /metrics.
    #[arg(long, env = "MCC_ENABLE_MONITORING")]
    pub enable_monitoring: bool,
    /// Kademlia query parallelism [default: 3].
    #[arg(long, env = "MCC_DHT_ALPHA")]
    pub dht_alpha: Option<NonZeroUsize>,
    /// YAML config file; flags and environment variables win over it.
    #[arg(long, env = "MCC_CONFIG")]
    pub config: Option<PathBuf>,
    /// Deterministic identity from this number (demos and tests only).
    #[arg(long, env = "MCC_SEED")]
    pub seed: Option<u64>,
    /// Kademlia protocol name [default: /ipfs/kad/1.0.0].
    #[arg(long, env = "MCC_KAD_PROTOCOL")]
    pub kad_protocol: Option<String>,
    /// Rendezvous key: nodes announcing the same key find each other [default: mcc];
    /// "off" disables.
    #[arg(long, env = "MCC_RENDEZVOUS")]
    pub rendezvous: Option<String>,
    /// Seconds between rendezvous lookups [default: 10].
    #[arg(long, env = "MCC_RENDEZVOUS_INTERVAL")]
    pub rendezvous_interval: Option<f64>,
    /// mDNS discovery on the LAN: auto (on when listening on a non-loopback address), on, off.
    #[arg(long, env = "MCC_MDNS")]
    pub mdns: Option<MdnsMode>,
    /// Seconds before an RPC call to a peer fails [default: 10].
    #[arg(long, env = "MCC_RPC_TIMEOUT")]
    pub rpc_timeout: Option<f64>,
    /// Most tunnels this node serves at once, all peers together [default: 1024].
    #[arg(long, env = "MCC_MAX_TUNNELS")]
    pub max_tunnels: Option<usize>,
    /// Most tunnels this node serves at once to one peer [default: 128].
    #[arg(long, env = "MCC_MAX_TUNNELS_PER_PEER")]
    pub max_tunnels_per_peer: Option<usize>,
    /// Messages queued per route subscription (API event stream, `route sub`) before newer
    /// ones are dropped and counted [default: 1024].
    #[arg(long, env = "MCC_ROUTE_QUEUE")]
    pub route_queue: Option<usize>,
    /// Seconds without a byte in either direction after which a tunnel is closed; 0 keeps idle
    /// tunnels open [default: 600].
    #[arg(long, env = "MCC_TUNNEL_IDLE_TIMEOUT")]
    pub tunnel_idle_timeout: Option<f64>,
    /// Most DHT records this node stores [default: 65536].
    #[arg(long, env = "MCC_MAX_RECORDS")]
    pub max_records: Option<usize>,
    /// Largest DHT record value in bytes [default: 65536].
    #[arg(long, env = "MCC_MAX_RECORD_SIZE")]
    pub max_record_size: Option<usize>,
    /// Seed blobs fetched from other nodes: true or false [default: true].
    #[arg(long, env = "MCC_KEEP_BLOBS")]
    pub keep_blobs: Option<bool>,
    /// Most providers kept per DHT key [default: 20].
    #[arg(long, env = "MCC_MAX_PROVIDERS_PER_KEY")]
    pub max_providers_per_key: Option<usize>,
    /// Node certificate file, or "random" for a self-signed one with every permission (default).
    #[arg(long, env = "MCC_CERT")]
    pub cert: Option<String>,
    /// Private key file matching --cert (default: the identity in the data folder).
    #[arg(long, env = "MCC_PRIVKEY")]
    pub privkey: Option<PathBuf>,
    /// Create a new node key, a self-signed certificate and a certificate request for a CA
    /// (at --cert and --privkey, default <data-folder>/node.crt and node.key; the request
    /// next to the certificate as .csr), print their paths and exit.
    #[arg(long)]
    pub newcert: bool,
    /// Root CA certificate: only nodes with a certificate it signed may join (closed
    /// network). Without it the network is open.
    #[arg(long, env = "MCC_TRUST_CA")]
    pub trust_ca: Option<PathBuf>,
    /// Revocation list file from `mcc ca revoke` (newer lists are also fetched from the DHT).
    #[arg(long, env = "MCC_REVOCATIONS")]
    pub revocations: Option<PathBuf>,
    /// Seconds between lookups of the CA's revocation list in the DHT [default: 300].
    #[arg(long, env = "MCC_REVOCATION_REFRESH")]
    pub revocation_refresh: Option<f64>,
    #[command(flatten)]
    pub nat: super::nat_args::NatArgs,
    #[command(flatten)]
    pub mesh: super::mesh_args::MeshArgs,
    #[command(flatten)]
    pub limits: super::limits_args::LimitsArgs,
    #[command(flatten)]
    pub profile: super::profile_args::ProfileArgs,
}

fn secs(name: &str, v: f64) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| usage(format!("--{name} must be a positive number of seconds")))
}

/// The daemon settings: flags and environment, then the config file, then defaults.
pub struct Resolved {
    pub daemon: daemon::Config,
    pub loglevel: u8,
    /// The profiles to write (`--cpu-profile`, ...).
    pub profile: crate::profile::Config,
}

impl DaemonArgs {
    pub fn resolve(
        self,
        data_folder: Option<PathBuf>,
        api_token: Option<String>,
    ) -> Result<Resolved, Error> {
        let file = match &self.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };

        let data_dir = data_folder
            .or(file.data_folder.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_FOLDER));

        let listen_raw = if !self.listen.is_empty() {
            self.listen
        } else if !file.listen_addrs().is_empty() {
            file.listen_addrs()
        } else {
            vec![format!("127.0.0.1:{}", node::DEFAULT_PORT)]
        };
        let mut listen = Vec::new();
        for l in &listen_raw {
            listen.extend(addr::parse_listen(l).map_err(|e| usage(format!("--listen: {e}")))?);
        }

        let boot_raw = if !self.boot.is_empty() {
            self.boot
        } else {
            file.boot.as_ref().map(|b| b.items()).unwrap_or_default()
        };
        let boot = boot_raw
            .iter()
            .map(|b| addr::parse_dial(b).map_err(|e| usage(format!("--boot: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;

        let http = match self.http.or(file.http.clone()).as_deref() {
            Some("off") | Some("") => None,
            Some(h) => Some(parse_socket(h).map_err(|e| usage(format!("--http: {e}")))?),
            None => Some(parse_socket(DEFAULT_HTTP).map_err(usage)?),
        };

        let http_forward = match self.http_forward.or(file.http_forward.clone()).as_deref() {
            None | Some("off") | Some("") => None,
            Some(h) => Some(parse_socket(h).map_err(|e| usage(format!("--http-forward: {e}")))?),
        };
        let http_forward_timeout = self
            .http_forward_timeout
            .or(file.http_forward_timeout)
            .map(|s| secs("http-forward-timeout", s))
            .transpose()?;
        let api_hosts = if !self.api_hosts.is_empty() {
            self.api_hosts
        } else {
            file.api_hosts
                .as_ref()
                .map(|h| h.items())
                .unwrap_or_default()
        };

        let api_token = match api_token.or(file.api_token.clone()).as_deref() {
            None | Some("") | Some("off") => None,
            Some("auto") => Some(daemon::ApiToken::Auto),
            Some(f) => Some(daemon::ApiToken::File(PathBuf::from(f))),
        };

        let label = self.label.or(file.label.clone());
        if let Some(l) = &label
            && mcc_admission::normalize_label(l).is_none()
        {
            tracing::warn!("label {l:?} has no letters or digits; using a random one");
        }

        let mut config = node::Config {
            data_dir: Some(data_dir),
            seed: self.seed.or(file.seed),
            label,
            listen,
            boot,
            ..node::Config::default()
        };
        if let Some(p) = self.kad_protocol.or(file.kad_protocol.clone()) {
            config.kad_protocol = libp2p::StreamProtocol::try_from_owned(p.clone())
                .map_err(|e| usage(format!("--kad-protocol {p:?}: {e}")))?;
        }
        if let Some(a) = self.dht_alpha.or(file.dht_alpha) {
            config.dht_alpha = a;
        }
        match self.rendezvous.or(file.rendezvous.clone()).as_deref() {
            Some("off") | Some("") => config.rendezvous = None,
            Some(k) => config.rendezvous = Some(k.to_string()),
            None => {}
        }
        if let Some(s) = self.rendezvous_interval.or(file.rendezvous_interval) {
            config.rendezvous_interval = secs("rendezvous-interval", s)?;
        }
        if let Some(m) = self.mdns.or(file.mdns) {
            config.mdns = m;
        }
        if let Some(s) = self.rpc_timeout.or(file.rpc_timeout) {
            config.rpc = config
                .rpc
                .clone()
                .with_request_timeout(secs("rpc-timeout", s)?);
        }

        let forward = &mut config.forward;
        if let Some(n) = self.max_tunnels.or(file.max_tunnels) {
            if n == 0 {
                return Err(usage("--max-tunnels must be at least 1"));
            }
            *forward = forward.clone().with_max_concurrent(n);
        }
        if let Some(n) = self.max_tunnels_per_peer.or(file.max_tunnels_per_peer) {
            if n == 0 {
                return Err(usage("--max-tunnels-per-peer must be at least 1"));
            }
            *forward = forward.clone().with_max_per_peer(n);
        }
        if let Some(s) = self.tunnel_idle_timeout.or(file.tunnel_idle_timeout) {
            let idle = if s == 0.0 {
                None
            } else {
                Some(secs("tunnel-idle-timeout", s)?)
            };
            *forward = forward.clone().with_idle_timeout(idle);
        }
        if let Some(n) = self.route_queue.or(file.route_queue) {
            if n == 0 {
                return Err(usage("--route-queue must be at least 1"));
            }
            config.routes = config.routes.clone().with_subscriber_queue(n);
        }

        config.services = file
            .services
            .iter()
            .map(|s| (s.name.clone(), s.address.clone()))
            .collect();
        config.listeners = file.listener_entries();
        config.nat = self.nat.resolve(&file)?;
        config.mesh = self.mesh.resolve(&file)?;
        config.limits = self.limits.resolve(&file, &config.mesh)?;
        let profile = self.profile.resolve(&file);
        if let Some(k) = self.keep_blobs.or(file.keep_blobs) {
            config.keep_blobs = k;
        }
        // Hidden knobs for tests: record replication and republication intervals in seconds.
        for (var, slot) in [
            (
                "MCC_RECORD_REPLICATION_INTERVAL",
                &mut config.records.replication_interval,
            ),
            (
                "MCC_RECORD_PUBLICATION_INTERVAL",
                &mut config.records.publication_interval,
            ),
        ] {
            if let Ok(v) = std::env::var(var) {
                let secs: u64 = v
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| usage(format!("{var} must be a number of seconds > 0")))?;
                *slot = std::time::Duration::from_secs(secs);
            }
        }
        let limits = &mut config.records.limits;
        if let Some(n) = self.max_records.or(file.max_records) {
            limits.max_records = n;
        }
        if let Some(n) = self.max_record_size.or(file.max_record_size) {
            if !(1..=1 << 20).contains(&n) {
                return Err(usage(
                    "--max-record-size must be between 1 and 1048576 bytes",
                ));
            }
            limits.max_value_size = n;
        }
        if let Some(n) = self.max_providers_per_key.or(file.max_providers_per_key) {
            limits.max_providers_per_key = n;
        }

        let cert = self.cert.or(file.cert.clone());
        let privkey = self.privkey.or(file.privkey.clone());
        let admission = &mut config.admission;
        admission.certificate = match cert.as_deref() {
            None | Some("random") | Some("") => None,
            Some(path) => Some(crate::certs::load_certificate(Path::new(path))?),
        };
        if let Some(p) = self.trust_ca.or(file.trust_ca.clone()) {
            let ca = crate::certs::load_certificate(&p)?;
            if !ca.is_ca() {
                return Err(usage(format!(
                    "--trust-ca {}: not a CA certificate (give the ca.crt of `mcc ca init`)",
                    p.display()
                )));
            }
            admission.trusted_ca = Some(ca);
        }
        if let Some(p) = self.revocations.or(file.revocations.clone()) {
            admission.revocations = Some(crate::certs::load_revocations(&p)?);
        }
        if let Some(s) = self.revocation_refresh.or(file.revocation_refresh) {
            admission.revocation_refresh = secs("revocation-refresh", s)?;
        }
        let keypair = match &privkey {
            Some(p) => Some(crate::certs::load_private_key(p)?),
            None => None,
        };
        if keypair.is_some() && config.seed.is_some() {
            return Err(usage("--privkey and --seed cannot be used together"));
        }

        let cors = if !self.enable_cors.is_empty() {
            self.enable_cors
        } else {
            file.enable_cors
                .as_ref()
                .map(|c| c.items())
                .unwrap_or_default()
        };
        Ok(Resolved {
            daemon: daemon::Config {
                node: config,
                keypair,
                http,
                http_forward,
                api_token,
                api: ApiConfig {
                    cors_origins: cors,
                    monitoring: self.enable_monitoring || file.enable_monitoring.unwrap_or(false),
                    api_hosts,
                    http_forward_timeout,
                    ..ApiConfig::default()
                },
            },
            loglevel: self.loglevel.or(file.loglevel).unwrap_or(4),
            profile,
        })
    }
}

/// `mcc --newcert`: writes a new node key, a self-signed certificate and a certificate
/// request, and prints their paths. Paths: --cert and --privkey, else `node.crt` and `node.key`
/// in the data folder; the request goes next to the certificate with extension `csr`.
pub fn newcert(args: &DaemonArgs, common: &CommonArgs) -> Result<(), Error> {
    let file = match &args.config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let data_dir = common
        .data_folder
        .clone()
        .or(file.data_folder.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_FOLDER));
    let cert = match args.cert.as_deref().map(str::trim) {
        None | Some("") | Some("random") => data_dir.join("node.crt"),
        Some(p) => PathBuf::from(p),
    };
    let key = args
        .privkey
        .clone()
        .unwrap_or_else(|| data_dir.join("node.key"));
    let request = cert.with_extension("csr");
    let label = args.label.clone().or(file.label.clone());
    let w = crate::certs::newcert(
        &cert,
        &key,
        &request,
        label.as_deref(),
        crate::certs::DEFAULT_CERT_DAYS,
    )?;
    print_written(&w, common.json)
}

fn parse_socket(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let s = s.strip_prefix("http://").unwrap_or(s);
    let s = s.replace("localhost:", "127.0.0.1:");
    s.parse()
        .map_err(|_| format!("expected host:port with an IP address, got {s:?}"))
}

/// tracing filter for an MCC log level.
pub fn log_filter(level: u8) -> &'static str {
    match level {
        0 => "off",
        1 | 2 => "error",
        3 => "warn",
        4 => "info",
        5 => "debug",
        _ => "trace",
    }
}
