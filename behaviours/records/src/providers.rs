//! Which provider records a full key keeps: the policy of [`ValidatingStore`](crate::ValidatingStore).
//!
//! kad's `MemoryStore` keeps the first providers of a key and ignores later ones. Anyone who
//! announces a key first from `max_providers_per_key` identities (free in an open network)
//! then owns it: the real provider is never stored and consumers are sent to the attackers.
//! Identities are cheap, networks are not, so this policy spreads the slots over the *networks*
//! the announcements came from:
//!
//! - the local node's own record is always kept and takes no slot;
//! - a provider already stored may always refresh its record;
//! - while the key has room, a new provider is stored;
//! - when it is full, an **expired** record is evicted first;
//! - otherwise the newcomer's network is its [`Origin`]: the /24 (IPv4) or /48 (IPv6) of the
//!   remote address of the connection the `ADD_PROVIDER` arrived on, as the transport observed
//!   it (never the addresses the record claims). If fewer providers of the key come from the
//!   newcomer's network than from the most represented one, the newcomer evicts the
//!   least recently refreshed provider of that most represented network; otherwise (its network
//!   is already among the most represented) it replaces the least recently refreshed provider
//!   of its own network — within one network the newest refresh wins.
//!
//! So attackers on one network can hold at most an equal share of a full key with every other
//! network that announces it: a provider from another network always gets in, and a full key
//! ends up with at most `ceil(max / networks)` providers per network.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};

/// Most addresses kept per provider record (the rest are dropped).
pub const MAX_PROVIDER_ADDRESSES: usize = 8;
/// Longest address kept in a provider record, in bytes (longer ones are dropped).
pub const MAX_PROVIDER_ADDRESS_LEN: usize = 256;

/// The network a provider record came from (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The first three bytes of an IPv4 address (its /24).
    V4([u8; 3]),
    /// The first six bytes of an IPv6 address (its /48).
    V6([u8; 6]),
    /// No IP address known (a relayed or DNS address, or a record stored before a restart):
    /// all such records count as one network.
    Unknown,
}

impl Origin {
    /// The /24 or /48 of `ip` (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn of_ip(ip: IpAddr) -> Origin {
        match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                Origin::V4([o[0], o[1], o[2]])
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Origin::of_ip(IpAddr::V4(v4)),
                None => {
                    let o = v6.octets();
                    Origin::V6([o[0], o[1], o[2], o[3], o[4], o[5]])
                }
            },
        }
    }

    /// The origin of a connection's remote address: its first IP component.
    pub fn of_address(address: &Multiaddr) -> Origin {
        address
            .iter()
            .find_map(|p| match p {
                Protocol::Ip4(ip) => Some(Origin::of_ip(IpAddr::V4(ip))),
                Protocol::Ip6(ip) => Some(Origin::of_ip(IpAddr::V6(ip))),
                _ => None,
            })
            .unwrap_or(Origin::Unknown)
    }
}

/// Drops the addresses of a provider record beyond [`MAX_PROVIDER_ADDRESSES`], longer than
/// [`MAX_PROVIDER_ADDRESS_LEN`] bytes, or repeated.
pub fn trim_provider_addresses(addresses: &mut Vec<Multiaddr>) {
    let mut kept: Vec<Multiaddr> = Vec::with_capacity(addresses.len().min(MAX_PROVIDER_ADDRESSES));
    for a in addresses.drain(..) {
        if kept.len() == MAX_PROVIDER_ADDRESSES {
            break;
        }
        if a.as_ref().len() <= MAX_PROVIDER_ADDRESS_LEN && !kept.contains(&a) {
            kept.push(a);
        }
    }
    *addresses = kept;
}

/// A stored provider of a key (other than the local node), as the policy sees it.
#[derive(Debug, Clone)]
pub struct Slot {
    pub provider: PeerId,
    pub origin: Origin,
    /// When its record was last stored or refreshed; `None` if not known (counts as oldest).
    pub refreshed: Option<Instant>,
    pub expired: bool,
}

/// What to do with a new provider of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Store it: the key has room.
    Insert,
    /// Remove this provider first, then store the newcomer.
    Evict(PeerId),
}

/// The decision for a new provider (not among `slots`) from `origin`, on a key that holds
/// `slots` and at most `max` providers (see the [module docs](self)).
pub fn admit(slots: &[Slot], origin: Origin, max: usize) -> Admission {
    if slots.len() < max {
        return Admission::Insert;
    }
    let oldest = |it: &mut dyn Iterator<Item = &Slot>| {
        it.min_by_key(|s| s.refreshed)
            .map(|s| Admission::Evict(s.provider))
    };
    if let Some(evict) = oldest(&mut slots.iter().filter(|s| s.expired)) {
        return evict;
    }
    let mut counts: HashMap<Origin, usize> = HashMap::new();
    for s in slots {
        *counts.entry(s.origin).or_default() += 1;
    }
    let own = counts.get(&origin).copied().unwrap_or(0);
    let most = counts.values().copied().max().unwrap_or(0);
    let evicted = if own < most {
        oldest(
            &mut slots
                .iter()
                .filter(|s| counts.get(&s.origin) == Some(&most)),
        )
    } else {
        oldest(&mut slots.iter().filter(|s| s.origin == origin))
    };
    // `max` is 0 (nothing can be stored) or `slots` is empty: nothing to evict, the inner
    // store decides.
    evicted.unwrap_or(Admission::Insert)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(s: &str) -> Origin {
        Origin::of_ip(s.parse().unwrap())
    }

    #[test]
    fn origins_are_prefixes_of_observed_addresses() {
        assert_eq!(ip("127.0.0.1"), ip("127.0.0.200"));
        assert_ne!(ip("127.0.0.1"), ip("127.0.2.1"));
        assert_eq!(ip("2001:db8:1::1"), ip("2001:db8:1:ffff::2"));
        assert_ne!(ip("2001:db8:1::1"), ip("2001:db8:2::1"));
        assert_eq!(ip("::ffff:10.1.2.3"), ip("10.1.2.99"));
        let a: Multiaddr = "/ip4/127.0.2.1/tcp/4001".parse().unwrap();
        assert_eq!(Origin::of_address(&a), ip("127.0.2.9"));
        let d: Multiaddr = "/dns4/example.com/tcp/4001".parse().unwrap();
        assert_eq!(Origin::of_address(&d), Origin::Unknown);
    }

    #[test]
    fn addresses_are_capped() {
        let mut addrs: Vec<Multiaddr> = (0..20u16)
            .map(|i| format!("/ip4/127.0.0.1/tcp/{}", 1000 + i).parse().unwrap())
            .collect();
        addrs.insert(0, addrs[1].clone());
        let long = Multiaddr::empty().with(Protocol::Dns("a".repeat(300).into()));
        addrs.insert(0, long);
        trim_provider_addresses(&mut addrs);
        assert_eq!(addrs.len(), MAX_PROVIDER_ADDRESSES);
        assert!(
            addrs
                .iter()
                .all(|a| a.as_ref().len() <= MAX_PROVIDER_ADDRESS_LEN)
        );
        assert_eq!(addrs[0].to_string(), "/ip4/127.0.0.1/tcp/1001");
        assert_eq!(addrs[1].to_string(), "/ip4/127.0.0.1/tcp/1000");
    }

    #[test]
    fn full_keys_are_shared_between_networks() {
        let t0 = Instant::now();
        let slot = |origin: Origin, age: u64| Slot {
            provider: PeerId::random(),
            origin,
            refreshed: Some(t0 + Duration::from_secs(100 - age)),
            expired: false,
        };
        let a = ip("127.0.0.1");
        let b = ip("127.0.2.1");
        let c = ip("127.0.3.1");
        let mut slots = vec![slot(a, 5), slot(a, 9), slot(a, 7)];
        assert_eq!(admit(&slots[..2], b, 3), Admission::Insert);
        // Another network gets in: the oldest of the attackers' network goes.
        assert_eq!(admit(&slots, b, 3), Admission::Evict(slots[1].provider));
        // One more attacker only replaces its own network's oldest.
        assert_eq!(admit(&slots, a, 3), Admission::Evict(slots[1].provider));
        // An expired record goes first, whatever its network.
        slots[0].expired = true;
        assert_eq!(admit(&slots, b, 3), Admission::Evict(slots[0].provider));
        slots[0].expired = false;
        // Two networks of 2 and 1: a third network evicts from the larger one.
        slots[2] = slot(b, 1);
        assert_eq!(admit(&slots, c, 3), Admission::Evict(slots[1].provider));
        // The smaller network's newcomer also takes from the larger one.
        assert_eq!(admit(&slots, b, 3), Admission::Evict(slots[1].provider));
        // Unknown refresh times count as oldest.
        slots[0].refreshed = None;
        assert_eq!(admit(&slots, c, 3), Admission::Evict(slots[0].provider));
        assert_eq!(admit(&[], a, 0), Admission::Insert);
    }
}
