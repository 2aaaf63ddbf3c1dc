//! A NAT lab in network namespaces: two hosts behind home routers and a relay host on a
//! "public" segment, each host running a real `mcc` process ([`Daemon`]).
//!
//! ```text
//!   hostA 192.168.1.2 ── routerA ──┐                 ┌── routerB ── hostB 192.168.2.2
//!         (lan 192.168.1.1, wan 11.0.0.2)   bridge   (wan 11.0.0.3, lan 192.168.2.1)
//!                                  └──── pub ────────┘
//!                                         │
//!                                   relay 11.0.0.1
//! ```
//!
//! The public segment is a bridge in its own namespace (`pub`); the relay and each router's WAN
//! side hang off it through veth pairs. Its addresses exist only inside the lab's namespaces;
//! they are globally routable ones on purpose, as AutoNAT ignores private ranges.
//!
//! [`Nat`] picks what the routers do:
//! * [`Nat::PortPreserving`]: `MASQUERADE` (keeps source ports when it can) and a drop rule for
//!   unsolicited inbound connections on the WAN (`INPUT -i wan --ctstate NEW -j DROP`): a home
//!   router that hole punching gets through;
//! * [`Nat::Symmetric`]: `MASQUERADE --random-fully` (a new port per mapping) and the same drop
//!   rule: hole punching cannot work;
//! * [`Nat::None`]: no routers; hostA (11.0.0.12) and hostB (11.0.0.13) sit on the public
//!   segment themselves.
//!
//! Namespace names are `mcc-n<pid>-<k>-<role>`, unique per lab so tests run in parallel; the
//! lab deletes them on drop (killing what runs inside first), and [`Lab::create`] deletes the
//! ones of dead test processes. Without root, `ip` or `iptables`, [`Lab::create`] returns
//! `None` after printing why, unless `MCC_REQUIRE_NETNS=1`.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::Daemon;
use super::netns::{self, Netns};

/// The port every node listens on (TCP and UDP/QUIC).
pub const PORT: u16 = 4001;

const RELAY_IP: Ipv4Addr = Ipv4Addr::new(11, 0, 0, 1);
const WAN_A: Ipv4Addr = Ipv4Addr::new(11, 0, 0, 2);
const WAN_B: Ipv4Addr = Ipv4Addr::new(11, 0, 0, 3);
const PUBLIC_A: Ipv4Addr = Ipv4Addr::new(11, 0, 0, 12);
const PUBLIC_B: Ipv4Addr = Ipv4Addr::new(11, 0, 0, 13);
const LAN_A: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);
const LAN_B: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 2);
const GATEWAY_A: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
const GATEWAY_B: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 1);

/// What the routers between the hosts and the public segment do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// No routers: both hosts on the public segment.
    None,
    /// Port-preserving MASQUERADE plus a drop rule for unsolicited inbound (punchable).
    PortPreserving,
    /// `MASQUERADE --random-fully` plus the drop rule (symmetric: not punchable).
    Symmetric,
}

impl Nat {
    pub fn name(self) -> &'static str {
        match self {
            Nat::None => "no NAT",
            Nat::PortPreserving => "port-preserving NAT",
            Nat::Symmetric => "symmetric NAT",
        }
    }
}

/// A host of the lab that runs a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    A,
    B,
    Relay,
}

impl Host {
    fn role(self) -> &'static str {
        match self {
            Host::A => "a",
            Host::B => "b",
            Host::Relay => "relay",
        }
    }
}

/// Which transports a node listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Quic,
    /// TCP and QUIC on the same port (`--listen host:port`).
    Both,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "TCP",
            Transport::Quic => "QUIC",
            Transport::Both => "TCP+QUIC",
        }
    }

    /// The `--listen`/`--boot` form of `ip:PORT` for this transport.
    pub fn addr(self, ip: Ipv4Addr) -> String {
        match self {
            Transport::Both => format!("{ip}:{PORT}"),
            _ => self.multiaddr(ip),
        }
    }

    /// `ip:PORT` as a multiaddr of this transport (TCP for [`Transport::Both`]).
    pub fn multiaddr(self, ip: Ipv4Addr) -> String {
        match self {
            Transport::Quic => format!("/ip4/{ip}/udp/{PORT}/quic-v1"),
            _ => format!("/ip4/{ip}/tcp/{PORT}"),
        }
    }
}

/// One lab: its namespaces and a temporary folder for the nodes' data. Dropping it kills
/// every process inside and deletes the namespaces.
pub struct Lab {
    pub nat: Nat,
    stem: String,
    /// Hosts first, so their processes die before the links go.
    namespaces: Vec<Netns>,
    tmp: tempfile::TempDir,
}

impl Lab {
    /// Builds the topology, or returns `None` (after saying why) when this machine cannot;
    /// `what` names the test in that message.
    pub fn create(nat: Nat, what: &str) -> Result<Option<Self>> {
        let tools: &[&str] = match nat {
            Nat::None => &[],
            _ => &["iptables"],
        };
        if !netns::usable(what, tools)? {
            return Ok(None);
        }
        let mut lab = Self {
            nat,
            stem: netns::unique_stem("n"),
            namespaces: Vec::new(),
            tmp: tempfile::tempdir()?,
        };
        // The first namespace tells whether this machine lets us make any.
        if let Err(e) = lab.add_ns(Host::Relay.role()) {
            netns::skip(what, &format!("{e:#}"))?;
            return Ok(None);
        }
        lab.build()
            .with_context(|| format!("building the {} lab", nat.name()))?;
        Ok(Some(lab))
    }

    fn build(&mut self) -> Result<()> {
        for role in ["a", "b", "pub"] {
            self.add_ns(role)?;
        }
        let public = self.ns_name("pub");
        netns::ip(&["-n", &public, "link", "add", "br0", "type", "bridge"])?;
        netns::ip(&["-n", &public, "link", "set", "br0", "up"])?;
        self.attach(Host::Relay.role(), "eth0", RELAY_IP)?;
        match self.nat {
            Nat::None => {
                self.attach("a", "eth0", PUBLIC_A)?;
                self.attach("b", "eth0", PUBLIC_B)?;
            }
            Nat::PortPreserving | Nat::Symmetric => {
                self.add_router("a", "ra", LAN_A, GATEWAY_A, WAN_A)?;
                self.add_router("b", "rb", LAN_B, GATEWAY_B, WAN_B)?;
            }
        }
        Ok(())
    }

    fn ns_name(&self, role: &str) -> String {
        format!("{}-{role}", self.stem)
    }

    fn add_ns(&mut self, role: &str) -> Result<()> {
        let ns = Netns::create(&self.ns_name(role))?;
        self.namespaces.push(ns);
        Ok(())
    }

    /// A veth pair from `iface` in `role`'s namespace (address `ip`/24) to the bridge.
    fn attach(&self, role: &str, iface: &str, ip: Ipv4Addr) -> Result<()> {
        let ns = self.ns_name(role);
        let public = self.ns_name("pub");
        let port = format!("p-{role}");
        netns::ip(&[
            "-n", &ns, "link", "add", iface, "type", "veth", "peer", "name", &port, "netns",
            &public,
        ])?;
        netns::ip(&["-n", &public, "link", "set", &port, "master", "br0"])?;
        netns::ip(&["-n", &public, "link", "set", &port, "up"])?;
        netns::ip(&["-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", iface])?;
        netns::ip(&["-n", &ns, "link", "set", iface, "up"])
    }

    /// Router `router` between host `host` (LAN `lan`/24 via `gateway`) and the bridge (`wan`).
    fn add_router(
        &mut self,
        host: &str,
        router: &str,
        lan: Ipv4Addr,
        gateway: Ipv4Addr,
        wan: Ipv4Addr,
    ) -> Result<()> {
        self.add_ns(router)?;
        let (h, r) = (self.ns_name(host), self.ns_name(router));
        netns::ip(&[
            "-n", &h, "link", "add", "eth0", "type", "veth", "peer", "name", "lan", "netns", &r,
        ])?;
        netns::ip(&["-n", &h, "addr", "add", &format!("{lan}/24"), "dev", "eth0"])?;
        netns::ip(&["-n", &h, "link", "set", "eth0", "up"])?;
        netns::ip(&[
            "-n",
            &r,
            "addr",
            "add",
            &format!("{gateway}/24"),
            "dev",
            "lan",
        ])?;
        netns::ip(&["-n", &r, "link", "set", "lan", "up"])?;
        netns::ip(&[
            "-n",
            &h,
            "route",
            "add",
            "default",
            "via",
            &gateway.to_string(),
        ])?;
        self.attach(router, "wan", wan)?;
        netns::run_in(&r, "sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
        let mut masquerade = vec![
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            "wan",
            "-j",
            "MASQUERADE",
        ];
        if self.nat == Nat::Symmetric {
            masquerade.push("--random-fully");
        }
        netns::run_in(&r, "iptables", &masquerade)?;
        netns::run_in(
            &r,
            "iptables",
            &[
                "-A",
                "INPUT",
                "-i",
                "wan",
                "-m",
                "conntrack",
                "--ctstate",
                "NEW",
                "-j",
                "DROP",
            ],
        )
    }

    /// The namespace `host` runs in.
    pub fn ns(&self, host: Host) -> String {
        self.ns_name(host.role())
    }

    /// The host's own address.
    pub fn ip(&self, host: Host) -> Ipv4Addr {
        match (host, self.nat) {
            (Host::Relay, _) => RELAY_IP,
            (Host::A, Nat::None) => PUBLIC_A,
            (Host::B, Nat::None) => PUBLIC_B,
            (Host::A, _) => LAN_A,
            (Host::B, _) => LAN_B,
        }
    }

    /// The address the relay sees `host` coming from: its router's WAN address behind NAT.
    pub fn public_ip(&self, host: Host) -> Ipv4Addr {
        match (host, self.nat) {
            (Host::A, Nat::PortPreserving | Nat::Symmetric) => WAN_A,
            (Host::B, Nat::PortPreserving | Nat::Symmetric) => WAN_B,
            _ => self.ip(host),
        }
    }

    /// `ip:PORT` of `host` in the `--boot`/`--listen` form of `transport`.
    pub fn addr(&self, host: Host, transport: Transport) -> String {
        transport.addr(self.ip(host))
    }

    /// `ip:PORT` of `host` as a multiaddr of `transport` (TCP for [`Transport::Both`]).
    pub fn multiaddr(&self, host: Host, transport: Transport) -> String {
        transport.multiaddr(self.ip(host))
    }

    /// `ip:PORT` of `host` as a socket address (TCP).
    pub fn socket_addr(&self, host: Host) -> SocketAddr {
        SocketAddr::from((self.ip(host), PORT))
    }

    /// The data folder of `host`'s node.
    pub fn dir(&self, host: Host) -> PathBuf {
        self.tmp.path().join(host.role())
    }

    /// Flags every lab node gets: its address on `transport`, the API on the namespace's
    /// loopback, no mDNS (the lab's topology alone decides who reaches whom), fast rendezvous.
    pub fn base_args(&self, host: Host, transport: Transport) -> Vec<String> {
        let mut args = super::base_args_listening(&self.addr(host, transport));
        args.extend(["--mdns".to_string(), "off".to_string()]);
        args
    }

    /// Starts `host`'s node with [`Lab::base_args`] plus `extra`.
    pub async fn start(&self, host: Host, transport: Transport, extra: &[&str]) -> Result<Daemon> {
        let mut args = self.base_args(host, transport);
        args.extend(extra.iter().map(|s| s.to_string()));
        Daemon::spawn_in_netns(&self.ns(host), &self.dir(host), args)
            .await
            .with_context(|| format!("starting the node on {host:?} ({})", self.nat.name()))
    }

    /// A TCP connection from inside `host`'s namespace.
    pub async fn connect(&self, host: Host, to: SocketAddr) -> Result<tokio::net::TcpStream> {
        netns::connect(&self.ns(host), to).await
    }

    /// A TCP listener inside `host`'s namespace.
    pub async fn bind(&self, host: Host, addr: SocketAddr) -> Result<tokio::net::TcpListener> {
        netns::bind(&self.ns(host), addr).await
    }

    /// The routers' NAT tables and filter counters, for failure messages.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        for router in ["ra", "rb"] {
            if self.nat == Nat::None {
                break;
            }
            let ns = self.ns_name(router);
            for table in ["nat", "filter"] {
                let rules = netns::output_in(&ns, "iptables", &["-t", table, "-L", "-v", "-n"]);
                out.push_str(&format!("--- {router} iptables -t {table} ---\n{rules}"));
            }
        }
        out
    }
}
