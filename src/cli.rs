//! The `mcc` command line: with no subcommand it runs the daemon; subcommands talk to a
//! running node over its REST API.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use serde_json::Value;

use crate::api::ApiConfig;
use crate::client::{self, Client};
use crate::config::FileConfig;
use crate::node::{self, MdnsMode, addr};
use crate::{daemon, label, term};

/// Default data folder.
pub const DEFAULT_DATA_FOLDER: &str = "./.mcc";
/// Default REST API address.
pub const DEFAULT_HTTP: &str = "127.0.0.1:8080";

#[derive(Debug, Parser)]
#[command(
    name = "mcc",
    version,
    about = "mcc: a peer-to-peer mesh companion node. Without a subcommand it runs the node.",
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(flatten)]
    pub daemon: DaemonArgs,
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Data folder (identity, API address, state).
    #[arg(long, env = "MCC_DATA_FOLDER", global = true)]
    pub data_folder: Option<PathBuf>,
    /// API of the node to talk to (default: the one running from the data folder, else
    /// http://127.0.0.1:8080).
    #[arg(long, env = "MCC_API", global = true)]
    pub api: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

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
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the running node.
    Node,
    /// List connected peers.
    Peers,
    /// Connect to a peer (host:port or multiaddr).
    Dial { addr: String },
    /// Echo a message off every connected peer and this node (or one peer).
    Echo {
        message: String,
        /// Only this peer.
        #[arg(long)]
        peer: Option<String>,
    },
    /// Call an RPC method on every connected peer and this node (or one peer).
    Rpc {
        method: String,
        /// JSON parameters (default null).
        params: Option<String>,
        /// Only this peer.
        #[arg(long)]
        peer: Option<String>,
    },
    /// DHT records: `mcc dht put KEY VALUE`, `mcc dht get KEY`.
    #[command(subcommand)]
    Dht(DhtCommand),
    /// DID documents: show, keygen, publish.
    #[command(subcommand)]
    Did(DidCommand),
    /// Local services offered to the mesh: add, ls, rm, find.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Local listeners forwarding to services in the mesh: add, ls, rm.
    #[command(subcommand)]
    Listen(ListenCommand),
    /// Content-addressed files (IPFS CIDs): add, get, ls, rm, providers.
    #[command(subcommand)]
    Blob(BlobCommand),
    /// Certificate authority: init, sign, revoke (works on files; no node needed).
    #[command(subcommand)]
    Ca(CaCommand),
    /// Certificate files: show.
    #[command(subcommand)]
    Cert(CertCommand),
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a CA: DIR/ca.key (secret) and the self-signed DIR/ca.crt that nodes trust.
    Init {
        /// The CA folder (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Name of the CA (its label).
        #[arg(long, default_value = crate::certs::DEFAULT_CA_NAME)]
        name: String,
        /// Validity in days (fractions allowed).
        #[arg(long, default_value_t = crate::certs::DEFAULT_CA_DAYS, allow_negative_numbers = true)]
        days: f64,
    },
    /// Sign a certificate request (from `mcc --newcert`) into a node certificate.
    Sign {
        /// The request file (.csr).
        request: PathBuf,
        /// The CA folder (from `mcc ca init`).
        #[arg(long)]
        ca_dir: PathBuf,
        /// Permissions to grant, comma separated (services:provide, services:consume,
        /// records:write, blobs:seed, rpc:call, all) [default: those requested].
        #[arg(long)]
        permissions: Option<String>,
        /// Validity in days (fractions allowed).
        #[arg(long, default_value_t = crate::certs::DEFAULT_CERT_DAYS, allow_negative_numbers = true)]
        days: f64,
        /// Where to write the certificate [default: the request with extension .crt].
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Revoke certificates (by serial or file) or peers (by peer id): updates
    /// DIR/revocations.crl.
    Revoke {
        /// Certificate serials (32 hex digits), peer ids or certificate files.
        #[arg(required = true)]
        targets: Vec<String>,
        /// The CA folder (from `mcc ca init`).
        #[arg(long)]
        ca_dir: PathBuf,
        /// Also hand the new list to the running node, which spreads it through the mesh.
        #[arg(long)]
        publish: bool,
        /// Refuse a list larger than this (the nodes' --max-record-size: the list travels as
        /// one DHT record).
        #[arg(long, default_value_t = 65536)]
        max_record_size: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Describe a certificate, CA certificate, request, revocation list or private key file.
    Show { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum BlobCommand {
    /// Add a file; prints its CID.
    Add { file: PathBuf },
    /// Fetch a blob (from every seeder at once) and write it to a file or stdout.
    Get {
        cid: String,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// List the blobs stored on the node.
    Ls,
    /// Delete a blob from the node.
    Rm { cid: String },
    /// List the seeders of a blob.
    Providers { cid: String },
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Offer a local service: `mcc service add web tcp://localhost:8000` (or http://...).
    Add { name: String, address: String },
    /// List this node's services.
    Ls,
    /// Stop offering a service.
    Rm { name: String },
    /// Find the providers of a service in the mesh.
    Find { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ListenCommand {
    /// Forward a local port to a service: `mcc listen add web tcp://127.0.0.1:5000`.
    Add {
        service: String,
        address: String,
        /// Only use this provider: a peer id, its did:key DID, or a label (matched against
        /// connected peers' certificate labels; CA-signed only under --trust-ca).
        #[arg(long)]
        peer: Option<String>,
    },
    /// List listeners.
    Ls,
    /// Stop a listener.
    Rm { id: String },
}

#[derive(Debug, Subcommand)]
pub enum DhtCommand {
    /// Store a record. KEY is namespaced (`/mcc/hello`); a bare `hello` means `/mcc/hello`.
    Put {
        key: String,
        /// The value (or use --file).
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        value: Option<String>,
        /// Read the value from this file.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Seconds until the record expires.
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Read a record (raw value to stdout, or to --output).
    Get {
        key: String,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DidCommand {
    /// Resolve a DID (default: this node's own) and print its document.
    Show { did: Option<String> },
    /// Create a new DID key file.
    Keygen {
        /// Where to write the key [default: ./did.key].
        #[arg(long, short, default_value = "did.key")]
        output: PathBuf,
    },
    /// Sign and publish a DID document with a key from `mcc did keygen`.
    Publish {
        /// The key file.
        #[arg(long)]
        key: PathBuf,
        /// Optional JSON document with services / verification methods to include.
        document: Option<PathBuf>,
    },
}

/// CLI errors: each is printed as one line, with a non-zero exit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Client(#[from] client::Error),
    #[error(transparent)]
    Daemon(#[from] daemon::Error),
    #[error(transparent)]
    Identity(#[from] crate::identity::Error),
    #[error(transparent)]
    Certs(#[from] crate::certs::Error),
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::File {
        path: path.to_path_buf(),
        source,
    })
}

fn admission_line(a: &node::AdmissionInfo) -> String {
    match &a.trusted_ca {
        None => "open (any peer; no --trust-ca)".to_string(),
        Some(ca) => {
            let mut line = format!("closed: only certificates of CA {ca}");
            if let Some(seq) = a.revocations_sequence {
                line.push_str(&format!(
                    "; revocation list #{seq} ({} serials, {} peers)",
                    a.revoked_serials.len(),
                    a.revoked_peers.len()
                ));
            }
            if !a.banned.is_empty() {
                line.push_str(&format!("; {} peers banned", a.banned.len()));
            }
            line
        }
    }
}

fn certificate_line(c: &node::CertificateInfo) -> String {
    let issuer = if c.self_signed {
        "self-signed".to_string()
    } else {
        format!("issued by {}", c.issuer)
    };
    let expiry = if c.expires_in_secs == 0 {
        format!("EXPIRED at {}", c.expires)
    } else if c.expiring_soon {
        format!(
            "EXPIRES SOON: in {} days, at {}",
            c.expires_in_secs / 86_400,
            c.expires
        )
    } else {
        format!(
            "expires in {} days, at {}",
            c.expires_in_secs / 86_400,
            c.expires
        )
    };
    format!("{issuer}; {expiry}")
}

/// `hello` → `/mcc/hello`; namespaced keys stay as they are.
fn dht_key(key: &str) -> String {
    if key.starts_with('/') {
        key.to_string()
    } else {
        format!("/{}/{key}", mcc_records::MCC_NAMESPACE)
    }
}

fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(msg.into())
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
}

impl DaemonArgs {
    pub fn resolve(self, data_folder: Option<PathBuf>) -> Result<Resolved, Error> {
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
        let api_hosts = if !self.api_hosts.is_empty() {
            self.api_hosts
        } else {
            file.api_hosts
                .as_ref()
                .map(|h| h.items())
                .unwrap_or_default()
        };

        let label = self.label.or(file.label.clone());
        if let Some(l) = &label
            && label::normalize(l).is_none()
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

        config.services = file
            .services
            .iter()
            .map(|s| (s.name.clone(), s.address.clone()))
            .collect();
        config.listeners = file.listener_entries();
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
                api: ApiConfig {
                    cors_origins: cors,
                    monitoring: self.enable_monitoring || file.enable_monitoring.unwrap_or(false),
                    api_hosts,
                    ..ApiConfig::default()
                },
            },
            loglevel: self.loglevel.or(file.loglevel).unwrap_or(4),
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

/// The API URL the client commands use.
pub fn api_url(common: &CommonArgs) -> String {
    if let Some(api) = &common.api {
        return api.clone();
    }
    let dir = common
        .data_folder
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_FOLDER));
    read_api_file(&dir).unwrap_or_else(|| format!("http://{DEFAULT_HTTP}"))
}

fn read_api_file(dir: &Path) -> Option<String> {
    let s = std::fs::read_to_string(dir.join(daemon::API_FILE)).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// Largest blob `mcc blob get` shows on a terminal (escaped); bigger ones need `-o` or a pipe.
const MAX_TERMINAL_BLOB: u64 = 16 * 1024 * 1024;

/// Runs a client subcommand and prints its result.
pub async fn run_command(cmd: Command, common: &CommonArgs) -> Result<(), Error> {
    let client = Client::new(api_url(common));
    let json = common.json;
    match cmd {
        Command::Node => {
            let n = client.node().await?;
            if json {
                return print_json(&n);
            }
            let rows = [
                ("peer id", n.peer_id.to_string()),
                ("label", n.label),
                ("did", n.did),
                ("version", n.version),
                ("listen", join(&n.listen_addrs)),
                ("rendezvous", n.rendezvous.unwrap_or_else(|| "off".into())),
                ("kad protocol", n.kad_protocol),
                ("mdns", if n.mdns { "on" } else { "off" }.into()),
                ("peers", n.connected_peers.to_string()),
                ("routing table", n.routing_table_size.to_string()),
                ("rpc methods", n.rpc_methods.join(", ")),
                ("uptime", format!("{}s", n.uptime_secs)),
                ("admission", admission_line(&n.admission)),
                ("certificate", certificate_line(&n.certificate)),
                ("permissions", n.certificate.permissions.join(", ")),
                (
                    "http forward",
                    n.http_forward.unwrap_or_else(|| "off".into()),
                ),
            ];
            for (k, v) in rows {
                println!("{k:<14} {}", term::escape(&v));
            }
        }
        Command::Peers => {
            let peers = client.peers().await?;
            if json {
                return print_json(&peers);
            }
            if peers.is_empty() {
                println!("no peers connected");
                return Ok(());
            }
            let rows = peers
                .iter()
                .map(|p| {
                    vec![
                        p.peer_id.to_string(),
                        p.label.clone().unwrap_or_else(|| "-".into()),
                        p.rtt_ms
                            .map(|r| format!("{r:.2} ms"))
                            .unwrap_or_else(|| "-".into()),
                        format!("{:?}", p.direction).to_lowercase(),
                        if p.rendezvous { "yes" } else { "no" }.into(),
                        p.addrs.first().map(|a| a.to_string()).unwrap_or_default(),
                    ]
                })
                .collect();
            print_table(&["PEER ID", "LABEL", "RTT", "DIR", "APP", "ADDRESS"], rows);
        }
        Command::Dial { addr } => {
            let r = client.dial(&addr).await?;
            if json {
                return print_json(&r);
            }
            println!("connected to {}", r.peer_id);
        }
        Command::Echo { message, peer } => {
            let r = client.echo(&message, peer.as_deref()).await?;
            if json {
                return print_json(&r);
            }
            let rows = r
                .replies
                .into_iter()
                .map(|e| {
                    vec![
                        e.peer_id,
                        format!("{:.2} ms", e.rtt_ms),
                        match (e.message, e.error) {
                            (Some(m), _) => m,
                            (None, Some(err)) => format!("error: {err}"),
                            (None, None) => String::new(),
                        },
                    ]
                })
                .collect();
            print_table(&["PEER ID", "RTT", "REPLY"], rows);
        }
        Command::Rpc {
            method,
            params,
            peer,
        } => {
            let params = match params {
                Some(p) => serde_json::from_str(&p)
                    .map_err(|e| usage(format!("params must be JSON: {e}")))?,
                None => Value::Null,
            };
            let r = client.rpc(&method, peer.as_deref(), params).await?;
            if json {
                return print_json(&r);
            }
            let rows = r
                .replies
                .into_iter()
                .map(|e| {
                    vec![
                        e.peer_id,
                        format!("{:.2} ms", e.rtt_ms),
                        match (e.result, e.error) {
                            (Some(v), _) => v.to_string(),
                            (None, Some(err)) => format!("error: {err}"),
                            (None, None) => String::new(),
                        },
                    ]
                })
                .collect();
            print_table(&["PEER ID", "RTT", "RESULT"], rows);
        }
        Command::Dht(cmd) => run_dht(cmd, &client, json).await?,
        Command::Service(cmd) => run_service(cmd, &client, json).await?,
        Command::Listen(cmd) => run_listen(cmd, &client, json).await?,
        Command::Blob(cmd) => run_blob(cmd, &client, json).await?,
        Command::Did(cmd) => run_did(cmd, &client, json).await?,
        Command::Ca(cmd) => run_ca(cmd, &client, json).await?,
        Command::Cert(cmd) => run_cert(cmd, json)?,
    }
    Ok(())
}

/// Prints the files a command wrote: `name: path` lines, or one JSON object.
fn print_written(w: &crate::certs::Written, json: bool) -> Result<(), Error> {
    if json {
        return print_json(w);
    }
    for line in w.lines() {
        println!("{}", term::escape_text(&line));
    }
    for warning in &w.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(())
}

async fn run_ca(cmd: CaCommand, client: &Client, json: bool) -> Result<(), Error> {
    use crate::certs;
    match cmd {
        CaCommand::Init { dir, name, days } => {
            let w = certs::ca_init(&dir, &name, days)?;
            print_written(&w, json)?;
        }
        CaCommand::Sign {
            request,
            ca_dir,
            permissions,
            days,
            output,
        } => {
            let permissions = permissions
                .map(|p| {
                    p.parse::<mcc_admission::Permissions>()
                        .map_err(|e| usage(format!("--permissions: {e}")))
                })
                .transpose()?;
            let (w, _) = certs::ca_sign(&request, &ca_dir, permissions, days, output.as_deref())?;
            print_written(&w, json)?;
        }
        CaCommand::Revoke {
            targets,
            ca_dir,
            publish,
            max_record_size,
        } => {
            let (w, list) = certs::ca_revoke(&ca_dir, &targets, max_record_size)?;
            let published = if publish {
                Some(client.publish_revocations(&list.to_base64()).await)
            } else {
                None
            };
            let ok = matches!(published, Some(Ok(_)));
            if json {
                let mut out = serde_json::json!({
                    "revocations": w.revocations,
                    "sequence": list.sequence(),
                    "published": ok,
                });
                match &published {
                    Some(Ok(answer)) => out["node"] = answer.clone(),
                    Some(Err(e)) => out["publish_error"] = Value::String(e.to_string()),
                    None => {}
                }
                print_json(&out)?;
            } else {
                for line in w.lines() {
                    println!("{line}");
                }
                println!("sequence: {}", list.sequence());
                if publish {
                    println!("published: {}", if ok { "yes" } else { "no" });
                }
            }
            // The list is written either way; a failed publish still fails the command.
            if let Some(Err(e)) = published {
                return Err(usage(format!(
                    "{} was written but not published: {e}",
                    w.revocations
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                )));
            }
        }
    }
    Ok(())
}

fn run_cert(cmd: CertCommand, json: bool) -> Result<(), Error> {
    match cmd {
        CertCommand::Show { file } => {
            let shown = crate::certs::show(&file, mcc_admission::now_unix())?;
            if json {
                return print_json(&shown);
            }
            println!("{}", term::escape_text(&shown.human()));
        }
    }
    Ok(())
}

async fn run_dht(cmd: DhtCommand, client: &Client, json: bool) -> Result<(), Error> {
    match cmd {
        DhtCommand::Put {
            key,
            value,
            file,
            ttl,
        } => {
            let key = dht_key(&key);
            let bytes = match (value, file) {
                (_, Some(f)) => read_file(&f)?,
                (Some(v), None) => v.into_bytes(),
                (None, None) => return Err(usage("give a VALUE or --file")),
            };
            let out = client.put_record(&key, bytes, ttl).await?;
            if json {
                return print_json(&out);
            }
            println!(
                "stored {key}{}",
                if out.replicated {
                    " (locally and on peers)"
                } else {
                    " locally (no peer took it yet; it is replicated when peers arrive)"
                }
            );
        }
        DhtCommand::Get { key, output } => {
            let key = dht_key(&key);
            let value = client.get_record(&key).await?;
            match output {
                Some(path) => std::fs::write(&path, &value).map_err(|source| Error::File {
                    path: path.clone(),
                    source,
                })?,
                None if json => print_json(&serde_json::json!({
                    "key": key,
                    "size": value.len(),
                    "value": String::from_utf8_lossy(&value),
                }))?,
                None => {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    if std::io::IsTerminal::is_terminal(&out) {
                        // Any writer controls /mcc/ values: no raw control sequences on a
                        // terminal. Pipes and files get the exact bytes.
                        let _ = out.write_all(&term::escape_bytes(&value));
                        if !value.ends_with(b"\n") {
                            let _ = out.write_all(b"\n");
                        }
                    } else {
                        let _ = out.write_all(&value);
                    }
                }
            }
        }
    }
    Ok(())
}

async fn run_service(cmd: ServiceCommand, client: &Client, json: bool) -> Result<(), Error> {
    match cmd {
        ServiceCommand::Add { name, address } => {
            let s = client.add_service(&name, &address).await?;
            if json {
                return print_json(&s);
            }
            println!("offering {} at {}", s.name, s.address);
        }
        ServiceCommand::Ls => {
            let list = client.services().await?;
            if json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("no services");
                return Ok(());
            }
            let rows = list
                .into_iter()
                .map(|s| {
                    let from = if s.from_config { "config" } else { "api" };
                    vec![s.name, s.address, from.to_string()]
                })
                .collect();
            print_table(&["NAME", "ADDRESS", "FROM"], rows);
        }
        ServiceCommand::Rm { name } => {
            let s = client.remove_service(&name).await?;
            if json {
                return print_json(&s);
            }
            println!("removed {}", s.name);
        }
        ServiceCommand::Find { name } => {
            let list = client.providers(&name).await?;
            print_providers(&list, json, &format!("no provider of {name} found"))?;
        }
    }
    Ok(())
}

async fn run_listen(cmd: ListenCommand, client: &Client, json: bool) -> Result<(), Error> {
    match cmd {
        ListenCommand::Add {
            service,
            address,
            peer,
        } => {
            let l = client
                .add_listener(&service, &address, peer.as_deref())
                .await?;
            if json {
                return print_json(&l);
            }
            println!(
                "listener {} on {} forwards to {}",
                l.id, l.address, l.service
            );
        }
        ListenCommand::Ls => {
            let list = client.listeners().await?;
            if json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("no listeners");
                return Ok(());
            }
            let rows = list
                .into_iter()
                .map(|l| {
                    vec![
                        l.id,
                        l.address,
                        l.service,
                        l.peer.unwrap_or_else(|| "any".into()),
                    ]
                })
                .collect();
            print_table(&["ID", "ADDRESS", "SERVICE", "PEER"], rows);
        }
        ListenCommand::Rm { id } => {
            let l = client.remove_listener(&id).await?;
            if json {
                return print_json(&l);
            }
            println!("stopped listener {} on {}", l.id, l.address);
        }
    }
    Ok(())
}

/// A progress bar on stderr with bytes, rate and ETA (hidden when stderr is not a terminal
/// or with --json).
fn bar(len: Option<u64>, json: bool, what: &str) -> indicatif::ProgressBar {
    if json {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::with_draw_target(len, indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(what.to_string());
    pb
}

async fn run_blob(cmd: BlobCommand, client: &Client, json: bool) -> Result<(), Error> {
    match cmd {
        BlobCommand::Add { file } => {
            let len = std::fs::metadata(&file)
                .map_err(|source| Error::File {
                    path: file.clone(),
                    source,
                })?
                .len();
            let pb = bar(Some(len), json, "adding");
            let p = pb.clone();
            let info = client.add_blob(&file, move |n| p.set_position(n)).await;
            pb.finish_and_clear();
            let info = info?;
            if json {
                return print_json(&info);
            }
            println!("{}", info.cid);
            eprintln!(
                "added {} ({} bytes, {} blocks)",
                file.display(),
                info.size,
                info.blocks
            );
        }
        BlobCommand::Get { cid, output } => {
            let pb = bar(None, json, "fetching");
            let p = pb.clone();
            let summary = client
                .fetch_blob(&cid, move |v| {
                    if let Some(t) = v.get("total_bytes").and_then(Value::as_u64) {
                        p.set_length(t);
                    }
                    if let Some(n) = v.get("bytes_done").and_then(Value::as_u64) {
                        p.set_position(n);
                    }
                })
                .await;
            pb.finish_and_clear();
            let summary = summary?;
            let written = match &output {
                Some(path) => {
                    // Written next to the target, then renamed: no half file under its name.
                    let dir = path
                        .parent()
                        .filter(|d| !d.as_os_str().is_empty())
                        .unwrap_or(Path::new("."));
                    let tmp =
                        tempfile::NamedTempFile::new_in(dir).map_err(|source| Error::File {
                            path: dir.to_path_buf(),
                            source,
                        })?;
                    let mut out =
                        tokio::fs::File::from_std(tmp.reopen().map_err(|source| Error::File {
                            path: path.clone(),
                            source,
                        })?);
                    let pb = bar(Some(summary.size), json, "saving");
                    let p = pb.clone();
                    let n = client
                        .download_blob(&cid, &mut out, move |n, _| p.set_position(n))
                        .await;
                    pb.finish_and_clear();
                    let n = n?;
                    tmp.persist(path).map_err(|e| Error::File {
                        path: path.clone(),
                        source: e.error,
                    })?;
                    n
                }
                None if std::io::IsTerminal::is_terminal(&std::io::stdout()) => {
                    // Anyone can publish a blob: no raw control sequences on a terminal.
                    if summary.size > MAX_TERMINAL_BLOB {
                        return Err(usage(format!(
                            "the blob is {} bytes; save it with -o FILE or pipe it",
                            summary.size
                        )));
                    }
                    let mut buf = Vec::new();
                    let n = client.download_blob(&cid, &mut buf, |_, _| {}).await?;
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&term::escape_bytes(&buf));
                    let _ = out.flush();
                    n
                }
                None => {
                    let mut out = tokio::io::stdout();
                    client.download_blob(&cid, &mut out, |_, _| {}).await?
                }
            };
            if json {
                return print_json(&summary);
            }
            if let Some(path) = &output {
                let used = summary.seeders.iter().filter(|s| s.blocks > 0).count();
                eprintln!(
                    "saved {} ({written} bytes{})",
                    path.display(),
                    if summary.local {
                        ", already on the node".to_string()
                    } else {
                        format!(" from {used} seeder(s)")
                    }
                );
            }
        }
        BlobCommand::Ls => {
            let list = client.blobs().await?;
            if json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("no blobs");
                return Ok(());
            }
            let rows = list
                .into_iter()
                .map(|b| vec![b.cid, b.size.to_string(), b.blocks.to_string()])
                .collect();
            print_table(&["CID", "SIZE", "BLOCKS"], rows);
        }
        BlobCommand::Rm { cid } => {
            client.delete_blob(&cid).await?;
            if json {
                return print_json(&serde_json::json!({ "deleted": cid }));
            }
            println!("deleted {cid}");
        }
        BlobCommand::Providers { cid } => {
            let list = client.blob_providers(&cid).await?;
            print_providers(&list, json, &format!("no seeder of {cid} found"))?;
        }
    }
    Ok(())
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1)
}

/// The document to publish: the user's (if any) with our id, context and key added.
fn build_document(did: &str, user: Option<Value>) -> Result<Value, Error> {
    let mut doc = mcc_records::did::default_document(did);
    let Some(user) = user else {
        return Ok(doc);
    };
    let Value::Object(user) = user else {
        return Err(usage("the DID document must be a JSON object"));
    };
    if let Some(id) = user.get("id").and_then(Value::as_str)
        && id != did
    {
        return Err(usage(format!(
            "the document's id {id} is not the key's DID {did}"
        )));
    }
    let Value::Object(base) = &mut doc else {
        return Ok(doc);
    };
    for (k, v) in user {
        match (k.as_str(), base.get_mut(&k), v) {
            ("id", _, _) => {}
            // Lists are merged: the key's own entries stay, the user's are added.
            (_, Some(Value::Array(mine)), Value::Array(theirs)) => {
                for item in theirs {
                    if !mine.contains(&item) {
                        mine.push(item);
                    }
                }
            }
            (_, _, v) => {
                base.insert(k, v);
            }
        }
    }
    Ok(doc)
}

async fn run_did(cmd: DidCommand, client: &Client, json: bool) -> Result<(), Error> {
    match cmd {
        DidCommand::Show { did } => {
            let did = match did {
                Some(d) => d,
                None => client.node().await?.did,
            };
            let doc = client.get_did(&did).await?;
            if json {
                return print_json(&doc);
            }
            println!("{did} (sequence {})", doc.seq);
            print_json(&doc.document)?;
        }
        DidCommand::Keygen { output } => {
            let (_, did) = crate::identity::write_did_key(&output)?;
            if json {
                return print_json(&serde_json::json!({"did": did, "key": output}));
            }
            println!("{did}");
            println!("key written to {}", output.display());
        }
        DidCommand::Publish { key, document } => {
            let (keypair, did) = crate::identity::read_did_key(&key)?;
            let user = match document {
                Some(p) => Some(
                    serde_json::from_slice(&read_file(&p)?)
                        .map_err(|e| usage(format!("{}: not JSON: {e}", p.display())))?,
                ),
                None => None,
            };
            let doc = build_document(&did, user)?;
            let current = match client.get_did(&did).await {
                Ok(d) => Some(d.seq),
                Err(client::Error::Api { status: 404, .. }) => None,
                Err(e) => return Err(e.into()),
            };
            let seq = unix_millis().max(current.map_or(1, |c| c + 1));
            let signed = mcc_records::did::SignedDocument::sign(&keypair, doc, seq)
                .map_err(|e| usage(e.to_string()))?;
            let out = client
                .put_did(&crate::api::types::SignedDocumentSchema {
                    document: signed.document,
                    seq: signed.seq,
                    signature: signed.signature,
                })
                .await?;
            if json {
                return print_json(&serde_json::json!({"did": did, "seq": seq, "outcome": out}));
            }
            println!("published {did} (sequence {seq})");
        }
    }
    Ok(())
}

/// Providers of a service or a blob, best first.
fn print_providers(
    list: &[crate::services::Provider],
    json: bool,
    none: &str,
) -> Result<(), Error> {
    if json {
        return print_json(&list);
    }
    if list.is_empty() {
        println!("{none}");
        return Ok(());
    }
    let rows = list
        .iter()
        .map(|p| {
            let state = if p.local {
                "local"
            } else if p.connected {
                "connected"
            } else {
                "-"
            };
            vec![
                p.peer_id.to_string(),
                p.label.clone().unwrap_or_else(|| "-".into()),
                state.to_string(),
                p.rtt_ms
                    .map(|r| format!("{r:.2} ms"))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    print_table(&["PEER ID", "LABEL", "STATE", "RTT"], rows);
    Ok(())
}

fn join<T: ToString>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(" ")
}

fn print_json<T: Serialize>(v: &T) -> Result<(), Error> {
    let s = serde_json::to_string_pretty(v).map_err(|e| usage(e.to_string()))?;
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        println!("{}", term::escape_json(&s));
    } else {
        println!("{s}");
    }
    Ok(())
}

/// Prints rows under headers, columns padded to their widest cell.
/// Cells are escaped ([`term::escape`]): labels, agent strings, replies and errors come from
/// peers.
fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| r.iter().map(|c| term::escape(c).into_owned()).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::with_capacity(80);
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
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
