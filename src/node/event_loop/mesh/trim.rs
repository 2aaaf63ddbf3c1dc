//! Above `--max-peers`: which connections close (see [`EventLoop::mesh_trim`]).

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::{GRACE, IN_USE, STABLE};
use crate::node::event_loop::EventLoop;

/// What decides which connection closes first (the smallest): kept for the mesh (not only
/// a DHT query's), same application, round trip (reversed), age (reversed).
type TrimRank = (bool, bool, Reverse<u64>, Reverse<Duration>);

impl EventLoop {
    /// Above `max_peers`: closes the least useful connections, down to the low-water mark
    /// ([`Mesh::low_water`](super::Mesh::low_water), between the discovery target and
    /// `max_peers`). Trimming below `max_peers` leaves room: a node at its maximum would
    /// otherwise close every newcomer again, and a peer below its `min_peers` would find no
    /// one to keep it.
    ///
    /// Only settled connections count: a connection younger than [`GRACE`] is left alone
    /// (it may be serving the DHT query or the peer exchange that opened it), so a node can
    /// hold more than `max_peers` connections for a few seconds, never longer. Among the
    /// settled ones, never closed: persistent peers, relays this node holds a reservation
    /// on, peers it called or was called by over RPC within [`IN_USE`]. The others close in this order:
    /// first peers this node dialled only for a DHT query (kad dials peers by itself, and
    /// connections stay open until the idle timeout), then peers of another application (not found through the rendezvous key; a
    /// connection younger than [`STABLE`] is not judged yet), then the highest round trip
    /// (an unknown one counts as the lowest: a newcomer, not yet pinged, is often a peer below
    /// its own minimum), then the oldest connection. Since `min_peers ≤ max_peers`, this
    /// never goes below `min_peers`. Streams (tunnels, blob transfers) are not visible to
    /// the loop: a peer used only that way may be closed; pin such peers.
    pub(in crate::node::event_loop) fn mesh_trim(&mut self) {
        let max = self.mesh.config.max_peers;
        let now = Instant::now();
        let settled: Vec<PeerId> = self
            .peers
            .connected
            .keys()
            .filter(|p| {
                self.peers
                    .connected_since(p)
                    .is_some_and(|s| now.duration_since(s) >= GRACE)
            })
            .copied()
            .collect();
        if settled.len() <= max {
            return;
        }
        let excess = settled.len() - self.mesh.low_water();
        let mut candidates: Vec<(TrimRank, PeerId)> = settled
            .iter()
            .filter(|p| {
                !self.mesh.book.get(p).is_some_and(|e| e.persistent)
                    && !self.nat_holds_reservation_on(p)
                    && self
                        .mesh
                        .used
                        .get(p)
                        .is_none_or(|t| now.duration_since(*t) >= IN_USE)
            })
            .map(|p| {
                let age = self
                    .peers
                    .connected_since(p)
                    .map(|s| now.duration_since(s))
                    .unwrap_or_default();
                // A newcomer gets the benefit of the doubt until the rendezvous lookups and
                // pings had time to tell (it is often a peer below its own minimum).
                let young = age < STABLE;
                let same_app = young || self.discovery.is_rendezvous_peer(p);
                let rtt = self.peers.rtt(p).map(|d| d.as_micros() as u64).unwrap_or(0);
                (
                    (
                        !self.mesh.dht_only.contains(p),
                        same_app,
                        Reverse(rtt),
                        Reverse(age),
                    ),
                    *p,
                )
            })
            .collect();
        candidates.sort();
        tracing::debug!(
            settled = settled.len(),
            candidates = candidates.len(),
            excess,
            "over --max-peers"
        );
        for (_, peer) in candidates.into_iter().take(excess) {
            tracing::debug!(me = %self.swarm.local_peer_id(), %peer, "over --max-peers: closing the least useful connection");
            let _ = self.swarm.disconnect_peer_id(peer);
            self.metrics.mesh.closed.inc();
        }
    }
}
