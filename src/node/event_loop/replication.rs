//! The batched replication job: stored records put again to the peers closest to their key,
//! in place of kad's own job, walking the store a batch at a time.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::kad::{self, PutRecordError, QueryId, Quorum, RecordKey, store::RecordStore as _};

use super::EventLoop;

/// While a run is under way, the loop calls [`EventLoop::pump_replication`] this often too.
pub(super) const PUMP_INTERVAL: Duration = Duration::from_millis(100);

/// Keys read from the store at a time by the replication walk.
const REPLICATION_BATCH: usize = 32;
/// Records the replication walk works on at once (closest-peer lookups and puts).
const REPLICATION_IN_FLIGHT: usize = 8;
/// Expiry given to this node's own records when they are published again (kad's default TTL).
const RECORD_TTL: Duration = Duration::from_secs(36 * 3600);

/// Periodic replication and republication of stored records, in place of kad's job (which
/// collects every record into memory at once): the store is walked in key order, a batch of
/// [`REPLICATION_BATCH`] keys at a time, and each record is loaded only when its turn comes,
/// with at most [`REPLICATION_IN_FLIGHT`] records in the network at once.
///
/// As kad does: other publishers' records are put again to the peers closest to their key on
/// every run (with the expiry they have); this node's own records only on the runs where the
/// publication interval has passed, with a fresh 36 h expiry unless they have their own.
pub(super) struct Replication {
    interval: Duration,
    publication_interval: Duration,
    next_publish: Instant,
    /// Whether a walk is under way.
    running: bool,
    /// The walk of this run also publishes this node's own records.
    publish: bool,
    /// The last key read from the store in this run.
    cursor: Option<RecordKey>,
    /// Keys of the current batch still to do.
    queue: VecDeque<RecordKey>,
    lookups: HashMap<QueryId, RecordKey>,
    puts: HashSet<QueryId>,
    /// Records sent out in this run.
    sent: usize,
}

impl Replication {
    pub(super) fn new(interval: Duration, publication_interval: Duration) -> Self {
        Replication {
            interval,
            publication_interval,
            next_publish: Instant::now() + publication_interval,
            running: false,
            publish: false,
            cursor: None,
            queue: VecDeque::new(),
            lookups: HashMap::new(),
            puts: HashSet::new(),
            sent: 0,
        }
    }

    /// How often a run starts.
    pub(super) fn interval(&self) -> Duration {
        self.interval
    }

    fn in_flight(&self) -> usize {
        self.lookups.len() + self.puts.len()
    }

    /// Whether `id` is a closest-peer lookup of the replication walk.
    pub(super) fn is_lookup(&self, id: &QueryId) -> bool {
        self.lookups.contains_key(id)
    }

    /// Whether `id` is a put of the replication walk.
    pub(super) fn is_put(&self, id: &QueryId) -> bool {
        self.puts.contains(id)
    }

    /// Whether a run is under way (the event loop then calls
    /// [`pump_replication`](EventLoop::pump_replication) on a short tick too).
    pub(super) fn running(&self) -> bool {
        self.running
    }
}

impl EventLoop {
    /// Starts a replication run (on the replication tick), unless one is still under way.
    pub(super) fn start_replication(&mut self) {
        let r = &mut self.replication;
        if r.running {
            tracing::debug!("record replication still running, skipping this tick");
            return;
        }
        let now = Instant::now();
        r.publish = now >= r.next_publish;
        if r.publish {
            r.next_publish = now + r.publication_interval;
        }
        r.running = true;
        r.cursor = None;
        r.queue.clear();
        r.sent = 0;
        self.pump_replication();
    }

    /// Starts work on the next records of the walk while fewer than
    /// [`REPLICATION_IN_FLIGHT`] are in the network, looking at no more than
    /// [`REPLICATION_BATCH`] records per call so the event loop never stalls on a long run
    /// of records that need nothing (the short tick carries on).
    pub(super) fn pump_replication(&mut self) {
        let local = *self.swarm.local_peer_id();
        let now = Instant::now();
        let mut budget = REPLICATION_BATCH;
        while self.replication.running
            && self.replication.in_flight() < REPLICATION_IN_FLIGHT
            && budget > 0
        {
            budget -= 1;
            let store = self.swarm.behaviour_mut().kad.store_mut();
            let Some(key) = self.replication.queue.pop_front() else {
                let batch = store.inner().keys_after(
                    self.replication.cursor.as_ref().map(|k| k.as_ref()),
                    REPLICATION_BATCH,
                );
                match batch.last() {
                    Some(last) => {
                        self.replication.cursor = Some(last.clone());
                        self.replication.queue.extend(batch);
                    }
                    None => {
                        self.replication.running = false;
                        tracing::debug!(
                            sent = self.replication.sent,
                            published = self.replication.publish,
                            "record replication run done"
                        );
                    }
                }
                continue;
            };
            let Some(record) = store.get(&key).map(|r| r.into_owned()) else {
                continue;
            };
            if record.is_expired(now) {
                store.remove(&key);
                continue;
            }
            if record.publisher == Some(local) && !self.replication.publish {
                continue;
            }
            let id = self
                .swarm
                .behaviour_mut()
                .kad
                .get_closest_peers(key.to_vec());
            self.replication.lookups.insert(id, key);
        }
    }

    /// The peers closest to a record's key are known: put the record to them.
    pub(super) fn on_replication_peers(&mut self, id: QueryId, peers: Vec<PeerId>) {
        let Some(key) = self.replication.lookups.remove(&id) else {
            return;
        };
        let local = *self.swarm.local_peer_id();
        let publish = self.replication.publish;
        let kad = &mut self.swarm.behaviour_mut().kad;
        let peers: Vec<PeerId> = peers.into_iter().filter(|p| *p != local).collect();
        if let Some(mut record) = kad.store_mut().get(&key).map(|r| r.into_owned())
            && !peers.is_empty()
            && !record.is_expired(Instant::now())
        {
            if publish && record.publisher == Some(local) {
                record.expires = record.expires.or_else(|| Some(Instant::now() + RECORD_TTL));
            }
            let put = kad.put_record_to(record, peers.into_iter(), Quorum::One);
            self.replication.puts.insert(put);
            self.replication.sent += 1;
        }
        self.pump_replication();
    }

    /// A put of the replication walk ended: carry on with the walk.
    pub(super) fn on_replication_put(
        &mut self,
        id: QueryId,
        result: Result<kad::PutRecordOk, PutRecordError>,
    ) {
        if self.replication.puts.remove(&id) {
            if let Err(e) = result {
                tracing::debug!("replicating a record: {e}");
            }
            self.pump_replication();
        }
    }
}
