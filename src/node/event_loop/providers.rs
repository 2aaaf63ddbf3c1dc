//! Provider records: the keys this node announces (services, blobs, the rendezvous key),
//! announced again when the network has grown or [`REANNOUNCE`] has passed, and provider
//! lookups for the API.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::kad::{self, GetProvidersOk, ProgressStep, QueryId, RecordKey};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use tokio::sync::{mpsc, oneshot};

use super::EventLoop;

/// Announce the provided keys again at least this often.
const REANNOUNCE: Duration = Duration::from_secs(600);
/// Put the DID document again at most this often while the routing table changes size.
const DID_SETTLE: Duration = Duration::from_secs(30);
/// Routing-table size from which growth re-announces at most once per [`DID_SETTLE`] (a
/// key's replication factor: below it, every new peer may be one of the closest).
const GROWTH_QUIET: usize = 20;
/// Routing-table size (at the last announcement) from which growth no longer re-announces:
/// with that many peers known, an announcement's own lookup finds the key's closest peers,
/// and further growth (64, 128 peers in a network of 300 starting at once) would only add
/// lookups dialling dozens of peers each. [`REANNOUNCE`] and the record replication cover
/// the network's later growth.
const GROWTH_STOP: usize = 2 * GROWTH_QUIET;
/// Most providers one provider lookup collects.
const MAX_FOUND_PROVIDERS: usize = 256;

/// What the loop keeps about provider records.
#[derive(Default)]
pub(super) struct Providers {
    /// Keys this node provides (services, blobs), announced again when due; the rendezvous
    /// key is announced with them.
    provided: HashSet<RecordKey>,
    /// Provider lookups the API asked for: providers found so far, and where to answer.
    lookups: HashMap<QueryId, (HashSet<PeerId>, Reply)>,
    /// When the keys were last announced, and the routing table's size then.
    announced: Option<(Instant, usize)>,
    /// The same for this node's DID document, which is also put again after [`DID_SETTLE`]
    /// when the table's size changed.
    did_announced: Option<(Instant, usize)>,
}

/// Where the providers a lookup finds go.
enum Reply {
    /// All of them at once, when the lookup ends.
    All(oneshot::Sender<Vec<PeerId>>),
    /// Each as soon as it is found; the channel closes when the lookup ends. Its capacity is
    /// [`MAX_FOUND_PROVIDERS`], so sending never waits.
    Each(mpsc::Sender<PeerId>),
}

/// The capacity of the channel of [`Command::StreamProviders`](super::command::Command).
pub(crate) const STREAM_CAPACITY: usize = MAX_FOUND_PROVIDERS;

impl Providers {
    /// Whether `id` is a provider lookup the API asked for (and not the rendezvous one).
    pub(super) fn is_lookup(&self, id: &QueryId) -> bool {
        self.lookups.contains_key(id)
    }
}

impl EventLoop {
    /// `Command::Provide`.
    pub(super) fn provide(&mut self, key: RecordKey) {
        if let Err(e) = self.swarm.behaviour_mut().kad.start_providing(key.clone()) {
            tracing::warn!("cannot announce a provider record: {e}");
        }
        self.providers.provided.insert(key);
    }

    /// `Command::StopProviding`.
    pub(super) fn stop_providing(&mut self, key: RecordKey) {
        self.swarm.behaviour_mut().kad.stop_providing(&key);
        self.providers.provided.remove(&key);
    }

    /// `Command::GetProviders`: answered in [`on_provider_lookup`](Self::on_provider_lookup).
    pub(super) fn find_providers(&mut self, key: RecordKey, reply: oneshot::Sender<Vec<PeerId>>) {
        let id = self.swarm.behaviour_mut().kad.get_providers(key);
        self.providers
            .lookups
            .insert(id, (HashSet::new(), Reply::All(reply)));
    }

    /// `Command::StreamProviders`: each provider is sent in
    /// [`on_provider_lookup`](Self::on_provider_lookup) as it is found.
    pub(super) fn stream_providers(&mut self, key: RecordKey, found: mpsc::Sender<PeerId>) {
        let id = self.swarm.behaviour_mut().kad.get_providers(key);
        self.providers
            .lookups
            .insert(id, (HashSet::new(), Reply::Each(found)));
    }

    /// `Command::GetLocalProviders`: the unexpired providers of `key` in this node's store.
    pub(super) fn local_providers(&mut self, key: &RecordKey) -> Vec<PeerId> {
        use libp2p::kad::store::RecordStore as _;
        let now = Instant::now();
        let store = self.swarm.behaviour_mut().kad.store_mut();
        store
            .providers(key)
            .into_iter()
            .filter(|p| !p.is_expired(now))
            .map(|p| p.provider)
            .collect()
    }

    /// A step of an API provider lookup: connect to the providers found (while the query
    /// still knows their addresses), and answer on the last step.
    pub(super) fn on_provider_lookup(
        &mut self,
        id: QueryId,
        result: Result<GetProvidersOk, kad::GetProvidersError>,
        step: ProgressStep,
    ) {
        let local = *self.swarm.local_peer_id();
        if let Ok(GetProvidersOk::FoundProviders { providers, .. }) = result {
            for peer in providers.into_iter().filter(|p| *p != local) {
                if !self.swarm.is_connected(&peer) {
                    // Connect now, while the query still knows its addresses.
                    let opts = DialOpts::peer_id(peer)
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build();
                    let _ = self.swarm.dial(opts);
                }
                if let Some((found, reply)) = self.providers.lookups.get_mut(&id)
                    && found.len() < MAX_FOUND_PROVIDERS
                    && found.insert(peer)
                    && let Reply::Each(tx) = reply
                {
                    // Never full (see `Reply::Each`); a closed channel: nobody waits anymore.
                    let _ = tx.try_send(peer);
                }
            }
        }
        if step.last
            && let Some((found, reply)) = self.providers.lookups.remove(&id)
            && let Reply::All(reply) = reply
        {
            let _ = reply.send(found.into_iter().collect());
        }
    }

    /// Announces the provided keys and the rendezvous key now, e.g. because this node has a
    /// new address (a relay reservation) that provider records should carry.
    pub(super) fn reannounce_now(&mut self) {
        self.providers.announced = None;
        let size = self.routing_table_size();
        self.reannounce_if_due(size);
    }

    /// Announces the provided keys and the rendezvous key again (and puts this node's DID
    /// document again) when new peers arrived since the last time or every [`REANNOUNCE`]
    /// (see [`announcement_due`]). `size` is the routing table's size now.
    pub(super) fn reannounce_if_due(&mut self, size: usize) {
        let joining = self.bootstrap.is_joining();
        let since = |last: Option<(Instant, usize)>| last.map(|(at, n)| (at.elapsed(), n));
        if !announcement_due(since(self.providers.announced), size, joining) {
            if did_due(since(self.providers.did_announced), size, joining) {
                self.providers.did_announced = Some((Instant::now(), size));
                self.announce_did();
            }
            return;
        }
        self.providers.did_announced = Some((Instant::now(), size));
        self.providers.announced = Some((Instant::now(), size));
        if size > 0 {
            // New peers since the last time: make sure they can resolve our DID.
            self.announce_did();
        }
        let mut keys: Vec<RecordKey> = self.providers.provided.iter().cloned().collect();
        keys.extend(self.discovery.rendezvous.iter().map(|(_, k)| k.clone()));
        for key in keys {
            if let Err(e) = self.swarm.behaviour_mut().kad.start_providing(key) {
                tracing::warn!("cannot announce a provider record: {e}");
            }
        }
    }
}

/// Whether the provided keys, the rendezvous key and the DID document are due for an
/// announcement, given the last one (how long ago, and the routing table's size then), the
/// table's size now, and whether the node is joining the DHT (`bootstrap.rs`).
fn announcement_due(last: Option<(Duration, usize)>, size: usize, joining: bool) -> bool {
    match last {
        None => true,
        // While the node joins, its table grows from one peer to most of its final size:
        // growth waits for the join's end (`bootstrap.rs`), which asks again, so a joining
        // node announces twice (at its first peer, at the join's end) rather than at 2, 4, 8
        // and 16 peers, each announcement a lookup that dials the key's closest peers. The
        // first peer counts: an announcement to an empty table reached nobody.
        Some((ago, n)) if joining => (n == 0 && size > 0) || ago >= REANNOUNCE,
        // Again when the routing table has doubled (1, 2, 4, 8... peers): a forming
        // network learns about us quickly without a storm of re-announcements. From
        // GROWTH_QUIET peers on, at most once per DID_SETTLE: a node joining a large
        // network sees its table double every few seconds, and each announcement is a
        // lookup plus a put to 20 peers (for every provided key and the DID).
        // Below GROWTH_STOP peers only.
        Some((ago, n)) => {
            let grown = size >= (2 * n).max(1)
                && n < GROWTH_STOP
                && (n < GROWTH_QUIET || ago >= DID_SETTLE);
            grown || ago >= REANNOUNCE
        }
    }
}

/// Whether the DID document alone is due again (when [`announcement_due`] is not), given its
/// last put (how long ago, the table's size then) and the table's size now.
///
/// The DID document (one record) is put again once the table has settled: a table that
/// stopped growing short of the next doubling (say 29 peers after 16) would leave it with the
/// closest peers of a network only partly known then. Only a change of a quarter or more
/// counts: in a large network the table changes with almost every lookup, and a put every
/// DID_SETTLE from every node would keep connections to the DID's closest peers busy for
/// ever. And below GROWTH_STOP peers only (300 nodes: 8 puts per node on the way from 20 to
/// 120 peers). Not while joining: the join's end brings an announcement.
fn did_due(last: Option<(Duration, usize)>, size: usize, joining: bool) -> bool {
    last.is_some_and(|(ago, n)| {
        !joining && n < GROWTH_STOP && size.abs_diff(n) * 4 >= n.max(1) && ago >= DID_SETTLE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::ZERO;

    #[test]
    fn a_joining_node_announces_at_its_first_peer_then_waits_for_the_join_s_end() {
        // Never announced: at once.
        assert!(announcement_due(None, 0, true));
        // The announcement at start-up reached nobody: the first peer brings one.
        assert!(announcement_due(Some((NOW, 0)), 1, true));
        // Then the table's doublings wait while the node joins...
        for size in [2, 4, 8, 16, 40, 100] {
            assert!(!announcement_due(Some((DID_SETTLE, 1)), size, true));
            assert!(!did_due(Some((DID_SETTLE, 1)), size, true));
        }
        // ...and the join's end (joining no more) announces once for all of them.
        assert!(announcement_due(Some((DID_SETTLE, 1)), 100, false));
        // The periodic announcement still runs during a join.
        assert!(announcement_due(Some((REANNOUNCE, 1)), 1, true));
    }

    #[test]
    fn growth_announces_on_doublings_below_the_limits() {
        assert!(announcement_due(Some((NOW, 1)), 2, false));
        assert!(!announcement_due(Some((NOW, 2)), 3, false));
        // From GROWTH_QUIET peers on, at most once per DID_SETTLE.
        assert!(!announcement_due(
            Some((NOW, GROWTH_QUIET)),
            2 * GROWTH_QUIET,
            false
        ));
        assert!(announcement_due(
            Some((DID_SETTLE, GROWTH_QUIET)),
            2 * GROWTH_QUIET,
            false
        ));
        // From GROWTH_STOP peers on, only REANNOUNCE.
        assert!(!announcement_due(
            Some((DID_SETTLE, GROWTH_STOP)),
            4 * GROWTH_STOP,
            false
        ));
        assert!(announcement_due(
            Some((REANNOUNCE, GROWTH_STOP)),
            GROWTH_STOP,
            false
        ));
    }

    #[test]
    fn the_did_follows_a_settled_table_change_of_a_quarter() {
        assert!(did_due(Some((DID_SETTLE, 16)), 29, false));
        assert!(!did_due(Some((NOW, 16)), 29, false));
        assert!(!did_due(Some((DID_SETTLE, 16)), 19, false));
        assert!(!did_due(Some((DID_SETTLE, GROWTH_STOP)), 100, false));
        assert!(!did_due(None, 29, false));
    }
}
