//! DHT records in the event loop: validated puts, lookups that keep the best of several
//! versions, and repair of peers that hold a stale one.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::kad::{
    self, GetRecordOk, PeerRecord, ProgressStep, PutRecordError, QueryId, QueryStats, Quorum,
    Record, RecordKey, store::RecordStore as _,
};
use tokio::sync::oneshot;

use super::EventLoop;
use crate::node::{Error, FoundRecord, PutOutcome};

pub(crate) struct PendingGet {
    key: RecordKey,
    /// Valid versions found: holder (None = this node) and record.
    found: Vec<(Option<PeerId>, Record)>,
    /// Peers that answered without the record: candidates to cache the best version.
    cache_candidates: Vec<PeerId>,
    started: Instant,
    reply: Option<oneshot::Sender<Result<FoundRecord, Error>>>,
}

pub(crate) struct PendingPut {
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
        record.expires = ttl.map(|t| Instant::now() + t);
        match kad.put_record(record, Quorum::One) {
            Ok(id) => {
                self.pending_puts.insert(id, PendingPut { reply });
            }
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
        self.pending_gets.insert(
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
        let max = self.record_max_value;
        let quorum = self.get_quorum;
        let Some(pending) = self.pending_gets.get_mut(&id) else {
            return;
        };
        match result {
            Ok(GetRecordOk::FoundRecord(PeerRecord { peer, record })) => {
                match mcc_records::validate(record.key.as_ref(), &record.value, max) {
                    Ok(_) => pending.found.push((peer, record)),
                    Err(e) => tracing::debug!(?peer, "ignoring an invalid record: {e}"),
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
        let Some(mut pending) = self.pending_gets.remove(&id) else {
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
        let Some(best) = mcc_records::select_best(&key_bytes, &values, self.record_max_value)
        else {
            let _ = reply.send(Err(Error::NotFound(
                String::from_utf8_lossy(&key_bytes).into_owned(),
            )));
            return;
        };
        let best_record = pending.found[best].1.clone();

        // Holders of another version and peers without one get the best version.
        let mut stale: HashSet<PeerId> = pending
            .found
            .iter()
            .filter(|(_, r)| r.value != best_record.value)
            .filter_map(|(p, _)| *p)
            .collect();
        stale.extend(pending.cache_candidates.iter().copied());
        let local_is_stale = pending
            .found
            .iter()
            .any(|(p, r)| p.is_none() && r.value != best_record.value);
        let kad = &mut self.swarm.behaviour_mut().kad;
        if local_is_stale && let Err(e) = kad.store_mut().put(best_record.clone()) {
            tracing::debug!("not keeping the newer version locally: {e}");
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
        let Some(pending) = self.pending_puts.remove(&id) else {
            return;
        };
        let outcome = match result {
            Ok(_) => Ok(PutOutcome {
                stored_locally: true,
                replicated: true,
            }),
            Err(PutRecordError::QuorumFailed { success, .. })
            | Err(PutRecordError::Timeout { success, .. }) => {
                if success.is_empty() && self.routing_table_size() > 0 && self.peers_refused_put() {
                    Err(Error::Refused)
                } else {
                    Ok(PutOutcome {
                        stored_locally: true,
                        replicated: !success.is_empty(),
                    })
                }
            }
        };
        if let Some(reply) = pending.reply {
            let _ = reply.send(outcome);
        }
    }

    /// Whether a put that reached no peer was refused rather than had nowhere to go: with
    /// peers connected, a put that nobody stored means they refused it.
    fn peers_refused_put(&self) -> bool {
        !self.peers.is_empty()
    }
}
