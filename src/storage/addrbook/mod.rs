//! The address book: every peer this node has seen, where it was reached, and when to dial it
//! again.
//!
//! One JSON file, `<data-folder>/addrbook.json`, replaced atomically
//! ([`crate::fsutil::write_atomic`]: temp file, fsync, rename), so `kill -9` leaves either the
//! previous or the new book, never a torn one. The event loop changes the book in memory and
//! saves it when it is dirty, at most every 5 s (at once on pin/unpin and at shutdown): a
//! crash loses at most those last seconds of changes, which the next connections relearn. An unreadable file is set
//! aside as `addrbook.json.bad` and the node starts with an empty book.
//!
//! The book is bounded ([`MAX_ENTRIES`] peers, [`MAX_ADDRS`] addresses each): when full, the
//! least useful non-persistent entry is evicted (never a persistent one).
//!
//! Backoff: after the first failed dial an entry waits `initial`; each further failure
//! multiplies the wait by `1 + multiplier` (the seed's rule: 1 s, 2.5 s, 6.25 s, ... with the
//! defaults), capped at `max`. A success resets it. A non-persistent entry is dropped after
//! `max_attempts` consecutive failures; a persistent one is dialled forever.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

/// Most peers in the book.
pub const MAX_ENTRIES: usize = 4096;
/// Most addresses kept per peer (newest first).
pub const MAX_ADDRS: usize = 16;
/// Largest book file read at start.
const MAX_FILE_BYTES: u64 = 16 << 20;
/// The file in the data folder.
pub const FILE_NAME: &str = "addrbook.json";

/// Where a peer was learnt from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Boot,
    Mdns,
    Pex,
    Kad,
    Rendezvous,
    /// `mcc dial`, `--peer`, `mcc addrbook pin ADDR`.
    Manual,
    Relay,
    /// It connected to us.
    Inbound,
    /// A direct connection hole-punched (DCUtR) to a peer reached over a relay.
    HolePunch,
    /// An AutoNAT dial-back: the peer asked this node to check its address.
    AutoNat,
    /// Written by a newer version.
    #[serde(other)]
    Unknown,
}

/// One peer of the book.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Entry {
    #[schema(value_type = String)]
    pub peer_id: PeerId,
    /// Addresses to dial it at, newest first (listen, observed and relayed addresses).
    #[schema(value_type = Vec<String>)]
    pub addrs: Vec<Multiaddr>,
    /// Where it was learnt from.
    pub sources: Vec<Source>,
    /// Redialled forever (`--peer`, `mcc addrbook pin`).
    pub persistent: bool,
    /// Last time a connection to it was established.
    pub last_success_unix_ms: Option<u64>,
    /// Dials this node started to it.
    pub attempts: u64,
    /// Consecutive failed dials.
    pub failed: u32,
    /// The wait after the last failure; 0 when the last dial succeeded.
    pub backoff_ms: u64,
    /// Not dialled again before this.
    pub next_dial_unix_ms: u64,
    /// Last ping round trip.
    pub rtt_ms: Option<f64>,
    /// Found as a provider of this node's rendezvous key (same application).
    #[serde(default)]
    pub same_app: bool,
    /// Connections in a row that closed before they were stable: each one doubles the wait
    /// before the peer is redialled (a peer that keeps closing us is not hammered).
    #[serde(default)]
    pub flaps: u32,
}

impl Entry {
    fn new(peer_id: PeerId) -> Self {
        Self {
            peer_id,
            addrs: Vec::new(),
            sources: Vec::new(),
            persistent: false,
            last_success_unix_ms: None,
            attempts: 0,
            failed: 0,
            backoff_ms: 0,
            next_dial_unix_ms: 0,
            rtt_ms: None,
            same_app: false,
            flaps: 0,
        }
    }

    /// Higher is better: persistent, then same application, recent success, few failures,
    /// low round trip.
    fn rank(
        &self,
    ) -> (
        bool,
        bool,
        u64,
        std::cmp::Reverse<u32>,
        std::cmp::Reverse<u64>,
    ) {
        (
            self.persistent,
            self.same_app,
            self.last_success_unix_ms.unwrap_or(0) / 60_000,
            std::cmp::Reverse(self.failed),
            std::cmp::Reverse(self.rtt_ms.map(|r| r as u64).unwrap_or(u64::MAX)),
        )
    }
}

/// How dials back off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    /// Each failure multiplies the wait by `1 + multiplier`.
    pub multiplier: f64,
    pub max: Duration,
    /// Consecutive failures after which a non-persistent entry is dropped.
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            multiplier: 1.5,
            max: Duration::from_secs(60),
            max_attempts: 10,
        }
    }
}

impl Backoff {
    /// The wait after a failure, given the previous wait (0: the first failure).
    pub fn next(&self, previous_ms: u64) -> u64 {
        let max = self.max.as_millis() as u64;
        if previous_ms == 0 {
            return (self.initial.as_millis() as u64).min(max);
        }
        let next = previous_ms as f64 * (1.0 + self.multiplier.max(0.0));
        (next.min(max as f64) as u64).max(previous_ms.min(max))
    }
}

/// What happened to an entry after a failed dial.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// Backed off until the given time.
    BackedOff { backoff_ms: u64 },
    /// Dropped: too many consecutive failures.
    Dropped,
    /// Not in the book.
    Unknown,
}

/// The book in memory, and its file.
#[derive(Debug)]
pub struct AddrBook {
    entries: HashMap<PeerId, Entry>,
    path: Option<PathBuf>,
    dirty: bool,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    entries: Vec<Entry>,
}

impl AddrBook {
    /// An empty book that is never saved.
    pub fn in_memory() -> Self {
        Self {
            entries: HashMap::new(),
            path: None,
            dirty: false,
        }
    }

    /// Loads `<dir>/addrbook.json` (or starts empty). Loaded entries are due at once: a
    /// restarted node dials its book without waiting out old backoffs.
    pub fn load(dir: &Path) -> Self {
        let path = dir.join(FILE_NAME);
        let mut book = Self {
            entries: HashMap::new(),
            path: Some(path.clone()),
            dirty: false,
        };
        let bytes = match std::fs::metadata(&path) {
            Ok(m) if m.len() > MAX_FILE_BYTES => {
                tracing::warn!(path = %path.display(), "address book too large: ignored");
                return book;
            }
            Ok(_) => match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cannot read the address book: {e}");
                    return book;
                }
            },
            Err(_) => return book,
        };
        match serde_json::from_slice::<File>(&bytes) {
            Ok(file) => {
                for mut e in file.entries.into_iter().take(MAX_ENTRIES) {
                    e.addrs.truncate(MAX_ADDRS);
                    e.next_dial_unix_ms = 0;
                    book.entries.insert(e.peer_id, e);
                }
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "address book unreadable ({e}): set aside");
                let _ = std::fs::rename(&path, path.with_extension("json.bad"));
            }
        }
        book
    }

    /// Writes the book if it changed since the last save.
    pub fn save_if_dirty(&mut self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            self.dirty = false;
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        let mut entries: Vec<Entry> = self.entries.values().cloned().collect();
        entries.sort_by_key(|e| e.peer_id);
        let bytes = serde_json::to_vec(&File {
            version: 1,
            entries,
        })
        .map_err(std::io::Error::other)?;
        crate::fsutil::write_atomic(path, &bytes, 0o600)?;
        self.dirty = false;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, peer: &PeerId) -> Option<&Entry> {
        self.entries.get(peer)
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// The entry of `peer`, created (evicting the least useful non-persistent one when full)
    /// if needed; `None` if the book is full of persistent entries.
    fn entry(&mut self, peer: PeerId) -> Option<&mut Entry> {
        if !self.entries.contains_key(&peer) {
            if self.entries.len() >= MAX_ENTRIES {
                let worst = self
                    .entries
                    .values()
                    .filter(|e| !e.persistent)
                    .min_by_key(|e| e.rank())
                    .map(|e| e.peer_id)?;
                self.entries.remove(&worst);
            }
            self.entries.insert(peer, Entry::new(peer));
        }
        self.dirty = true;
        self.entries.get_mut(&peer)
    }

    /// Learns `peer` (from `source`) with `addrs` (put first, newest first).
    pub fn learn(&mut self, peer: PeerId, addrs: &[Multiaddr], source: Source) {
        let Some(e) = self.entry(peer) else {
            return;
        };
        if !e.sources.contains(&source) && e.sources.len() < 16 {
            e.sources.push(source);
        }
        for a in addrs.iter().rev() {
            let a = without_p2p(a, &peer);
            e.addrs.retain(|x| *x != a);
            e.addrs.insert(0, a);
        }
        e.addrs.truncate(MAX_ADDRS);
    }

    /// Adds addresses only for a peer already in the book (e.g. identify of an inbound
    /// peer that is known), returning whether it is known.
    pub fn add_addrs_if_known(&mut self, peer: &PeerId, addrs: &[Multiaddr]) -> bool {
        if !self.entries.contains_key(peer) {
            return false;
        }
        self.learn(*peer, addrs, Source::Unknown);
        if let Some(e) = self.entries.get_mut(peer) {
            e.sources.retain(|s| *s != Source::Unknown);
        }
        true
    }

    pub fn set_persistent(&mut self, peer: PeerId, persistent: bool) -> bool {
        if persistent {
            match self.entry(peer) {
                Some(e) => {
                    e.persistent = true;
                    true
                }
                None => false,
            }
        } else if let Some(e) = self.entries.get_mut(&peer) {
            e.persistent = false;
            self.dirty = true;
            true
        } else {
            false
        }
    }

    pub fn set_same_app(&mut self, peer: &PeerId) {
        if let Some(e) = self.entries.get_mut(peer)
            && !e.same_app
        {
            e.same_app = true;
            self.dirty = true;
        }
    }

    /// Last round trip (not saved on its own: rides along with the next change).
    pub fn set_rtt(&mut self, peer: &PeerId, rtt: Duration) {
        if let Some(e) = self.entries.get_mut(peer) {
            e.rtt_ms = Some(rtt.as_secs_f64() * 1000.0);
        }
    }

    /// A dial of `peer` starts.
    pub fn dialing(&mut self, peer: &PeerId) {
        if let Some(e) = self.entries.get_mut(peer) {
            e.attempts = e.attempts.saturating_add(1);
            self.dirty = true;
        }
    }

    /// A connection to `peer` was established: failures and backoff reset.
    pub fn succeeded(&mut self, peer: PeerId, now_ms: u64) {
        if let Some(e) = self.entry(peer) {
            e.failed = 0;
            e.backoff_ms = 0;
            e.next_dial_unix_ms = 0;
            e.last_success_unix_ms = Some(now_ms);
        }
    }

    /// The last connection to `peer` closed after `lived`: a stable one (at least
    /// `stable`) makes it due at once, a short one waits `initial × 2^flaps` (capped).
    pub fn disconnected(
        &mut self,
        peer: &PeerId,
        lived: Duration,
        stable: Duration,
        now_ms: u64,
        backoff: &Backoff,
    ) {
        let Some(e) = self.entries.get_mut(peer) else {
            return;
        };
        if lived >= stable {
            e.flaps = 0;
            e.next_dial_unix_ms = now_ms;
        } else {
            e.flaps = e.flaps.saturating_add(1);
            let wait = (backoff.initial.as_millis() as u64)
                .saturating_mul(1u64 << e.flaps.min(16))
                .min(backoff.max.as_millis() as u64);
            e.next_dial_unix_ms = now_ms.saturating_add(wait);
        }
        self.dirty = true;
    }

    /// A dial of `peer` failed.
    pub fn failed(&mut self, peer: &PeerId, now_ms: u64, backoff: &Backoff) -> Failure {
        if !self.entries.contains_key(peer) {
            return Failure::Unknown;
        }
        self.dirty = true;
        let Some(e) = self.entries.get_mut(peer) else {
            return Failure::Unknown;
        };
        e.failed = e.failed.saturating_add(1);
        if !e.persistent && e.failed >= backoff.max_attempts {
            self.entries.remove(peer);
            return Failure::Dropped;
        }
        e.backoff_ms = backoff.next(e.backoff_ms);
        e.next_dial_unix_ms = now_ms.saturating_add(e.backoff_ms);
        Failure::BackedOff {
            backoff_ms: e.backoff_ms,
        }
    }

    /// Entries with addresses that may be dialled at `now_ms` and that `skip` does not
    /// exclude (connected, dialling), best first: persistent, same application, recent
    /// success, few failures, low round trip.
    pub fn due(&self, now_ms: u64, skip: impl Fn(&PeerId) -> bool) -> Vec<&Entry> {
        self.due_among(now_ms, false, skip)
    }

    /// The persistent entries of [`due`](Self::due): what a node with enough peers still
    /// redials (a cheap scan: no ranking of the whole book on every tick).
    pub fn due_persistent(&self, now_ms: u64, skip: impl Fn(&PeerId) -> bool) -> Vec<&Entry> {
        self.due_among(now_ms, true, skip)
    }

    fn due_among(
        &self,
        now_ms: u64,
        persistent_only: bool,
        skip: impl Fn(&PeerId) -> bool,
    ) -> Vec<&Entry> {
        let mut out: Vec<&Entry> = self
            .entries
            .values()
            .filter(|e| {
                (e.persistent || !persistent_only)
                    && !e.addrs.is_empty()
                    && e.next_dial_unix_ms <= now_ms
                    && !skip(&e.peer_id)
            })
            .collect();
        out.sort_by(|a, b| {
            b.rank()
                .partial_cmp(&a.rank())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        out
    }
}

/// `addr` without a trailing `/p2p/<peer>` (a relayed address keeps its relay's `/p2p`).
fn without_p2p(addr: &Multiaddr, peer: &PeerId) -> Multiaddr {
    let mut a = addr.clone();
    if let Some(libp2p::multiaddr::Protocol::P2p(p)) = a.iter().last()
        && p == *peer
    {
        a.pop();
    }
    a
}

#[cfg(test)]
mod tests;
