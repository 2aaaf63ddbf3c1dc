//! Parsing of the address forms users type: `host:port` or a full multiaddr.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

/// An address a user gave that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid address {input:?}: {reason}")]
pub struct AddrError {
    pub input: String,
    pub reason: String,
}

fn err(input: &str, reason: impl Into<String>) -> AddrError {
    AddrError {
        input: input.to_string(),
        reason: reason.into(),
    }
}

fn parse_multiaddr(s: &str) -> Result<Multiaddr, AddrError> {
    s.parse::<Multiaddr>().map_err(|e| err(s, e.to_string()))
}

/// Splits `host:port` (`[v6]:port` for IPv6) into host and port.
fn split_host_port(s: &str) -> Result<(&str, u16), AddrError> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| err(s, "expected host:port or a multiaddr starting with '/'"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(err(s, "missing host"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| err(s, format!("bad port {port:?}")))?;
    Ok((host, port))
}

fn ip_of(host: &str) -> Option<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    host.parse().ok()
}

fn ip_proto(ip: IpAddr) -> Protocol<'static> {
    match ip {
        IpAddr::V4(v4) => Protocol::Ip4(v4),
        IpAddr::V6(v6) => Protocol::Ip6(v6),
    }
}

/// A listen address: `host:port` means TCP *and* QUIC on that host and port; a multiaddr is
/// taken as it is.
pub fn parse_listen(s: &str) -> Result<Vec<Multiaddr>, AddrError> {
    let s = s.trim();
    if s.starts_with('/') {
        return Ok(vec![parse_multiaddr(s)?]);
    }
    let (host, port) = split_host_port(s)?;
    let ip = ip_of(host).ok_or_else(|| err(s, "listen host must be an IP address"))?;
    let tcp = Multiaddr::empty()
        .with(ip_proto(ip))
        .with(Protocol::Tcp(port));
    let quic = Multiaddr::empty()
        .with(ip_proto(ip))
        .with(Protocol::Udp(port))
        .with(Protocol::QuicV1);
    Ok(vec![tcp, quic])
}

/// A peer address to dial: `host:port` (TCP, peer id learnt on connect; host may be a DNS
/// name) or a multiaddr, with or without `/p2p/<id>`.
pub fn parse_dial(s: &str) -> Result<Multiaddr, AddrError> {
    let s = s.trim();
    if s.starts_with('/') {
        return parse_multiaddr(s);
    }
    let (host, port) = split_host_port(s)?;
    let base = match ip_of(host) {
        Some(ip) => Multiaddr::empty().with(ip_proto(ip)),
        None => Multiaddr::empty().with(Protocol::Dns(host.to_string().into())),
    };
    Ok(base.with(Protocol::Tcp(port)))
}

/// The `host:port` form of a TCP multiaddr, when it has one (for display and `--boot`).
pub fn host_port(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut ip = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(v4) => ip = Some(IpAddr::V4(v4)),
            Protocol::Ip6(v6) => ip = Some(IpAddr::V6(v6)),
            Protocol::Tcp(port) => return ip.map(|ip| SocketAddr::new(ip, port)),
            _ => {}
        }
    }
    None
}

/// Whether the address is on a loopback interface.
pub fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(v4) => v4.is_loopback(),
        Protocol::Ip6(v6) => v6.is_loopback(),
        Protocol::Dns(h) | Protocol::Dns4(h) | Protocol::Dns6(h) => h == "localhost",
        _ => false,
    })
}

/// Whether the address is an unspecified (`0.0.0.0` / `::`) one, which cannot be dialed.
pub fn is_unspecified(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(v4) => v4.is_unspecified(),
        Protocol::Ip6(v6) => v6.is_unspecified(),
        _ => false,
    })
}

/// The peer id in a trailing `/p2p/<id>`, if any.
pub fn peer_id_of(addr: &Multiaddr) -> Option<libp2p::PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(id)) => Some(id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_host_port_gives_tcp_and_quic() {
        let v = parse_listen("127.0.0.1:9376").unwrap();
        assert_eq!(v[0].to_string(), "/ip4/127.0.0.1/tcp/9376");
        assert_eq!(v[1].to_string(), "/ip4/127.0.0.1/udp/9376/quic-v1");
        let v6 = parse_listen("[::1]:1").unwrap();
        assert_eq!(v6[0].to_string(), "/ip6/::1/tcp/1");
    }

    #[test]
    fn listen_multiaddr_taken_as_is() {
        let v = parse_listen("/ip4/127.0.0.1/udp/0/quic-v1").unwrap();
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn dial_forms() {
        assert_eq!(
            parse_dial("localhost:9376").unwrap().to_string(),
            "/ip4/127.0.0.1/tcp/9376"
        );
        assert_eq!(
            parse_dial("example.org:1").unwrap().to_string(),
            "/dns/example.org/tcp/1"
        );
        let with_id =
            "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        assert!(peer_id_of(&parse_dial(with_id).unwrap()).is_some());
    }

    #[test]
    fn bad_input_is_an_error() {
        for bad in [
            "",
            "nohost",
            "127.0.0.1:",
            ":80",
            "1.2.3.4:99999",
            "/not/a/multiaddr",
        ] {
            assert!(parse_dial(bad).is_err(), "{bad}");
        }
        assert!(parse_listen("example.org:1").is_err());
    }

    #[test]
    fn classifies_addresses() {
        let lo = parse_dial("127.0.0.1:1").unwrap();
        assert!(is_loopback(&lo));
        assert_eq!(host_port(&lo).unwrap().to_string(), "127.0.0.1:1");
        assert!(is_unspecified(&parse_dial("0.0.0.0:1").unwrap()));
    }
}
