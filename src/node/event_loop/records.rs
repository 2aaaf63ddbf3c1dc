//! DHT records in the event loop: validated puts, lookups that keep the best of several
//! versions, repair of peers that hold a stale one (read-repair), this node's DID document,
//! and the sweep of expired records. The periodic replication of stored records is in
//! replication.rs.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::kad::{
    self, GetRecordOk, PeerRecord, ProgressStep, PutRecordError, QueryId, QueryStats, Quorum,
    Record, RecordKey, store::RecordStore as _,
};
use tokio::sync::oneshot;

use mcc_admission::{Gates, Permission};
use mcc_records::SourcedStore as _;

use super::EventLoop;
use crate::node::{Config, Error, FoundRecord, PutOutcome};

/// How often expired records are swept from the store (kad also drops them when read).
pub(super) const EXPIRY_SWEEP: Duration = Duration::from_secs(600);

/// What the loop keeps about record gets and puts.
pub(super) struct Records {
    /// Lookups under way.
    pending_gets: HashMap<QueryId, PendingGet>,
    /// Puts the API asked for, answered when kad reports the outcome.
    pending_puts: HashMap<QueryId, PendingPut>,
    /// Largest value a version found in a lookup may have.
    max_value: usize,
    /// A lookup ends once this many valid versions are found.
    get_quorum: usize,
}

impl Records {
    pub(super) fn new(config: &Config) -> Self {
        Self {
            pending_gets: HashMap::new(),
            pending_puts: HashMap::new(),
            max_value: config.records.limits.max_value_size,
            get_quorum: config.records.get_quorum.get(),
        }
    }
}

/// Why a version a peer supplied in a lookup does not count, if it does not: with
/// `--trust-ca` only versions from peers holding `records:write` count (the record's
/// `publisher` field is not signed, so the supplier is what is checked; a publisher this node
/// knows to lack `records:write` disqualifies the version too).
fn untrusted_version(gates: &Gates, supplier: &PeerId, record: &Record) -> Option<&'static str> {
    if !gates.allows(supplier, Permission::RecordsWrite) {
        return Some("the supplying peer lacks records:write");
    }
    if let Some(publisher) = &record.publisher
        && let Some(cert) = gates.certificate(publisher)
        && !cert.permissions().allows(Permission::RecordsWrite)
    {
        return Some("its publisher lacks records:write");
    }
    None
}

/// What a finished lookup answers and writes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RepairPlan {
    /// Index of the version answered.
    pub(crate) best: usize,
    /// Store the best version locally, on behalf of this remote holder of it.
    pub(crate) write_local_from: Option<PeerId>,
    /// Push the best version to holders of other versions and to cache candidates.
    pub(crate) push: bool,
}

/// The repair rule. `versions` are the versions that count (holder, `None` = this node) and
/// `best` the one [`mcc_records::select_best`] picked.
///
/// Signed records (DID documents, revocation lists): the newest valid version is repaired
/// everywhere. Free `/mcc/` keys have no order between versions, so a repair needs agreement:
/// nothing is written back unless at least two holders (this node's copy counts) have the best
/// value, or this node's copy is the only version found; on a tie this node's own value is
/// answered and kept; the local value is replaced only by a value more holders have.
pub(crate) fn repair_plan(
    free: bool,
    versions: &[(Option<PeerId>, &[u8])],
    best: usize,
) -> RepairPlan {
    let holders_of = |value: &[u8]| versions.iter().filter(|(_, v)| *v == value).count();
    let local = versions.iter().position(|(p, _)| p.is_none());
    let mut best = best;
    if free
        && let Some(l) = local
        && holders_of(versions[l].1) >= holders_of(versions[best].1)
    {
        best = l;
    }
    let best_value = versions[best].1;
    let supplier = versions
        .iter()
        .find(|(p, v)| p.is_some() && *v == best_value)
        .and_then(|(p, _)| *p);
    // This node's own copy, with no other version found, is cached at peers that lack it (as
    // a put from this node would be).
    let only_local = versions.len() == 1 && local.is_some();
    let agreed = !free || holders_of(best_value) >= 2 || only_local;
    let local_is_stale = local.is_some_and(|l| versions[l].1 != best_value);
    RepairPlan {
        best,
        write_local_from: if agreed && local_is_stale {
            supplier
        } else {
            None
        },
        push: agreed,
    }
}

struct PendingGet {
    key: RecordKey,
    /// Valid versions found: holder (None = this node) and record.
    found: Vec<(Option<PeerId>, Record)>,
    /// Peers that answered without the record: candidates to cache the best version.
    cache_candidates: Vec<PeerId>,
    started: Instant,
    reply: Option<oneshot::Sender<Result<FoundRecord, Error>>>,
}

struct PendingPut {
    reply: Option<oneshot::Sender<Result<PutOutcome, Error>>>,
}

impl EventLoop {
    pub(super) fn put_record(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        ttl: Option<Duration>,
        reply: Option<oneshot::Sender<Result<PutOutcome, Error>>>,
    ) {
        let fail = |reply: Option<oneshot::Sender<Result<PutOutcome, Error>>>, e: Error| {
            if let Some(r) = reply {
                let _ = r.send(Err(e));
            }
        };
        let kad = &mut self.swarm.behaviour_mut().kad;
        // Precise errors for the caller before kad's store gives its coarse one.
        if let Err(e) = kad.store_mut().check(&key, &value) {
            return fail(reply, e.into());
        }
        let record_key = RecordKey::new(&key);
        if let Some(current) = kad.store_mut().get(&record_key)
            && let Err(e) = mcc_records::check_replace(&key, &current.value, &value)
        {
            return fail(reply, e.into());
        }
        let mut record = Record::new(record_key, value);
        // A TTL past what an Instant can hold (the API caps it) must not panic the loop.
        let expires = ttl.map(|t| Instant::now().checked_add(t));
        if let Some(None) = expires {
            return fail(reply, Error::Store("the record's TTL is too long".into()));
        }
        record.expires = expires.flatten();
        match kad.put_record(record, Quorum::One) {
            Ok(id) => {
                self.records.pending_puts.insert(id, PendingPut { reply });
            }
            Err(e @ kad::store::Error::MaxRecords) => fail(reply, Error::StoreFull(e.to_string())),
            Err(e) => fail(reply, Error::Store(e.to_string())),
        }
    }

    pub(super) fn get_record(
        &mut self,
        key: Vec<u8>,
        reply: oneshot::Sender<Result<FoundRecord, Error>>,
    ) {
        if let Err(e) = mcc_records::parse_key(&key) {
            let _ = reply.send(Err(mcc_records::ValidationError::from(e).into()));
            return;
        }
        let key = RecordKey::new(&key);
        let id = self.swarm.behaviour_mut().kad.get_record(key.clone());
        self.records.pending_gets.insert(
            id,
            PendingGet {
                key,
                found: Vec::new(),
                cache_candidates: Vec::new(),
                started: Instant::now(),
                reply: Some(reply),
            },
        );
    }

    /// Puts this node's own DID document again (at start, and when new peers arrived).
    pub(super) fn announce_did(&mut self) {
        let Some(doc) = &self.info.own_did_doc else {
            return;
        };
        let key = mcc_records::did_key(&self.info.did);
        // Re-put what the store holds (it may be newer than the one signed at start).
        let value = self
            .swarm
            .behaviour_mut()
            .kad
            .store_mut()
            .get(&key)
            .map(|r| r.value.clone())
            .unwrap_or_else(|| doc.to_bytes());
        let record = Record::new(key, value);
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .kad
            .put_record(record, Quorum::One)
        {
            tracing::warn!("cannot publish own DID document: {e}");
        }
    }

    pub(super) fn on_get_record_progress(
        &mut self,
        id: QueryId,
        result: Result<GetRecordOk, kad::GetRecordError>,
        step: ProgressStep,
        stats: QueryStats,
    ) {
        let max = self.records.max_value;
        let quorum = self.records.get_quorum;
        let Some(pending) = self.records.pending_gets.get_mut(&id) else {
            return;
        };
        match result {
            Ok(GetRecordOk::FoundRecord(PeerRecord { peer, record })) => {
                let gates = self.swarm.behaviour_mut().kad.store_mut().gates();
                if let Some(why) = peer.and_then(|p| untrusted_version(gates, &p, &record)) {
                    tracing::debug!(?peer, "ignoring a version: {why}");
                } else {
                    match mcc_records::validate(record.key.as_ref(), &record.value, max) {
                        Ok(_) => pending.found.push((peer, record)),
                        Err(e) => tracing::debug!(?peer, "ignoring an invalid record: {e}"),
                    }
                }
                if pending.found.len() >= quorum
                    && let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id)
                {
                    q.finish();
                }
            }
            Ok(GetRecordOk::FinishedWithNoAdditionalRecord { cache_candidates }) => {
                pending
                    .cache_candidates
                    .extend(cache_candidates.into_values());
            }
            Err(e) => tracing::debug!("record lookup ended: {e}"),
        }
        if step.last {
            self.finish_get(id, stats);
        }
    }

    fn finish_get(&mut self, id: QueryId, stats: QueryStats) {
        let Some(mut pending) = self.records.pending_gets.remove(&id) else {
            return;
        };
        let Some(reply) = pending.reply.take() else {
            return;
        };
        let values: Vec<&[u8]> = pending
            .found
            .iter()
            .map(|(_, r)| r.value.as_slice())
            .collect();
        let key_bytes = pending.key.to_vec();
        let Some(best) = mcc_records::select_best(&key_bytes, &values, self.records.max_value)
        else {
            let _ = reply.send(Err(Error::NotFound(
                String::from_utf8_lossy(&key_bytes).into_owned(),
            )));
            return;
        };
        let versions: Vec<(Option<PeerId>, &[u8])> = pending
            .found
            .iter()
            .map(|(p, r)| (*p, r.value.as_slice()))
            .collect();
        let plan = repair_plan(mcc_records::is_free_key(&key_bytes), &versions, best);
        let best_record = pending.found[plan.best].1.clone();

        // Holders of another version and peers without one get the best version.
        let mut stale: HashSet<PeerId> = HashSet::new();
        if plan.push {
            stale.extend(
                pending
                    .found
                    .iter()
                    .filter(|(_, r)| r.value != best_record.value)
                    .filter_map(|(p, _)| *p),
            );
            stale.extend(pending.cache_candidates.iter().copied());
        }
        let kad = &mut self.swarm.behaviour_mut().kad;
        if let Some(supplier) = plan.write_local_from {
            // Stored on behalf of the peer that supplied it: the same records:write check and
            // quota as its own PUT would get.
            if let Err(e) = kad
                .store_mut()
                .put_from(best_record.clone(), Some(supplier))
            {
                tracing::debug!("not keeping the newer version locally: {e}");
            }
        }
        if !stale.is_empty() {
            tracing::debug!(peers = stale.len(), "updating stale or missing copies");
            kad.put_record_to(best_record.clone(), stale.into_iter(), Quorum::One);
        }
        let _ = reply.send(Ok(FoundRecord {
            value: best_record.value,
            publisher: best_record.publisher,
            versions: pending.found.len(),
            queried: stats.num_requests(),
            duration: pending.started.elapsed(),
        }));
    }

    pub(super) fn on_put_record_result(
        &mut self,
        id: QueryId,
        result: Result<kad::PutRecordOk, PutRecordError>,
    ) {
        let Some(pending) = self.records.pending_puts.remove(&id) else {
            return;
        };
        let could_refuse = self.routing_table_size() > 0 && self.peers_refused_put();
        let outcome = put_outcome(&result, could_refuse);
        if let Some(reply) = pending.reply {
            let _ = reply.send(outcome);
        }
    }

    /// Whether a record get or put this node started is still running (its connections
    /// must not be trimmed under it).
    pub(super) fn records_query_running(&self) -> bool {
        !self.records.pending_gets.is_empty() || !self.records.pending_puts.is_empty()
    }

    /// Whether a put that reached no peer was refused rather than had nowhere to go: with
    /// peers connected, a put that nobody stored means they refused it.
    fn peers_refused_put(&self) -> bool {
        !self.peers.connected.is_empty()
    }

    /// `Command::GetLocalRecord`: this node's own unexpired copy.
    pub(super) fn local_record(&mut self, key: &[u8]) -> Option<Record> {
        let store = self.swarm.behaviour_mut().kad.store_mut();
        store
            .get(&RecordKey::new(&key))
            .map(|r| r.into_owned())
            .filter(|r| !r.is_expired(Instant::now()))
    }

    /// Removes expired records from the store (every [`EXPIRY_SWEEP`]).
    pub(super) fn sweep_expired_records(&mut self) {
        let removed = self
            .swarm
            .behaviour_mut()
            .kad
            .store_mut()
            .inner_mut()
            .remove_expired();
        if removed > 0 {
            tracing::debug!(removed, "expired records swept");
        }
    }
}

/// What a put query's result tells the caller (the record is in this node's store already).
/// Every peer failing its PUT (`QuorumFailed` with no success) while peers were there to ask
/// (`could_refuse`) means they refused the record: a refused PUT fails within kad's substream
/// timeout, well before the query's. A query that ran out of time (`Timeout`) only says the
/// network was too slow: the record stays stored here, not replicated, and is not reported as
/// refused (a 1,000-node network on two cores showed "every peer refused the record" for
/// puts that had simply timed out).
fn put_outcome(
    result: &Result<kad::PutRecordOk, PutRecordError>,
    could_refuse: bool,
) -> Result<PutOutcome, Error> {
    let success = match result {
        Ok(_) => {
            return Ok(PutOutcome {
                stored_locally: true,
                replicated: true,
            });
        }
        Err(PutRecordError::QuorumFailed { success, .. }) => {
            if success.is_empty() && could_refuse {
                return Err(Error::Refused);
            }
            success
        }
        Err(PutRecordError::Timeout { success, .. }) => success,
    };
    Ok(PutOutcome {
        stored_locally: true,
        replicated: !success.is_empty(),
    })
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;

    fn plan(free: bool, versions: &[(Option<PeerId>, &[u8])]) -> RepairPlan {
        let values: Vec<&[u8]> = versions.iter().map(|(_, v)| *v).collect();
        let key: &[u8] = if free { b"/mcc/k" } else { b"/mcc/other" };
        let best = mcc_records::select_best(key, &values, 1024).expect("a version");
        repair_plan(free, versions, best)
    }

    /// M4: a value only one remote holder supplied is answered but never written back or
    /// pushed to others.
    #[test]
    fn single_remote_holder_is_not_repaired_towards() {
        let u = PeerId::random();
        let p = plan(true, &[(Some(u), b"injected")]);
        assert_eq!(
            p,
            RepairPlan {
                best: 0,
                write_local_from: None,
                push: false
            }
        );
        // Also not over a local value: the local one wins the tie and stays.
        let p = plan(true, &[(Some(u), b"injected"), (None, b"mine")]);
        assert_eq!(
            p,
            RepairPlan {
                best: 1,
                write_local_from: None,
                push: false
            }
        );
        let p = plan(true, &[(None, b"mine"), (Some(u), b"injected")]);
        assert_eq!(p.best, 0);
        assert_eq!(p.write_local_from, None);
        assert!(!p.push);
        // This node's own copy alone is still cached at peers without one.
        let p = plan(true, &[(None, b"mine")]);
        assert_eq!(p.write_local_from, None);
        assert!(p.push);
    }

    /// M4: on a tie the local value is kept (and answered); two remote holders against one
    /// local copy win.
    #[test]
    fn ties_keep_the_local_value_and_majorities_repair() {
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        // 2 against 2: local side kept, and pushed to the other side (agreement of 2).
        let p = plan(
            true,
            &[
                (Some(a), b"theirs"),
                (Some(b), b"theirs"),
                (None, b"mine"),
                (Some(c), b"mine"),
            ],
        );
        assert_eq!(p.best, 2);
        assert_eq!(p.write_local_from, None);
        assert!(p.push);
        // 2 against the local copy alone: the local copy is replaced, on behalf of a holder.
        let p = plan(
            true,
            &[(None, b"mine"), (Some(a), b"theirs"), (Some(b), b"theirs")],
        );
        assert_eq!(p.best, 1);
        assert_eq!(p.write_local_from, Some(a));
        assert!(p.push);
        // Two remote holders agree, nothing local: pushed to the others, nothing written
        // locally (this node had no copy).
        let p = plan(true, &[(Some(a), b"v"), (Some(b), b"v"), (Some(c), b"w")]);
        assert_eq!(p.best, 0);
        assert_eq!(p.write_local_from, None);
        assert!(p.push);
        // The local copy agreeing with one remote holder counts as two.
        let p = plan(true, &[(None, b"v"), (Some(a), b"v"), (Some(c), b"w")]);
        assert_eq!(p.best, 0);
        assert!(p.push);
    }

    /// Signed records are repaired towards the newest valid version, even from one holder.
    #[test]
    fn signed_records_repair_from_a_single_holder() {
        let u = PeerId::random();
        let p = repair_plan(false, &[(None, b"old"), (Some(u), b"new")], 1);
        assert_eq!(
            p,
            RepairPlan {
                best: 1,
                write_local_from: Some(u),
                push: true
            }
        );
    }

    fn quorum_failed(success: Vec<PeerId>) -> PutRecordError {
        PutRecordError::QuorumFailed {
            key: RecordKey::new(b"k"),
            success,
            quorum: NonZeroUsize::MIN,
        }
    }

    fn timeout(success: Vec<PeerId>) -> PutRecordError {
        PutRecordError::Timeout {
            key: RecordKey::new(b"k"),
            success,
            quorum: NonZeroUsize::MIN,
        }
    }

    #[test]
    fn only_a_put_every_peer_failed_in_time_is_refused() {
        assert!(matches!(
            put_outcome(&Err(quorum_failed(vec![])), true),
            Err(Error::Refused)
        ));
        // Nobody to ask: stored here only.
        let o = put_outcome(&Err(quorum_failed(vec![])), false).unwrap();
        assert!(o.stored_locally && !o.replicated);
        // Out of time: not a refusal, whoever stored it.
        let o = put_outcome(&Err(timeout(vec![])), true).unwrap();
        assert!(o.stored_locally && !o.replicated);
        let o = put_outcome(&Err(timeout(vec![PeerId::random()])), true).unwrap();
        assert!(o.replicated);
        let o = put_outcome(&Err(quorum_failed(vec![PeerId::random()])), true).unwrap();
        assert!(o.replicated);
    }
}
