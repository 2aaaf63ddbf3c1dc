//! The routing table's refresh (kad's bootstrap: a lookup of this node's own id, then one
//! lookup per bucket), started by the node rather than by kad's timers.
//!
//! The node bootstraps when the first peer enters its table (`peers.rs`) and then every
//! [`REFRESH`] (Kubo's period; kad's own periodic bootstrap is off). Kad still starts one by
//! itself ("automatic") when a peer enters a table of fewer than K (20) peers, 0.5 s after
//! the last such insert, or when the running bootstrap ends. A joining node inserts its first
//! 20 peers during its own first bootstrap, so kad would run a second full one right after it,
//! in a large network a lookup per bucket of up to the query timeout each (the join storm of
//! the scale bench). When such an automatic bootstrap starts while the table already holds K
//! peers or more (and some peer is connected), kad's own reason for it is gone: the node
//! finishes it, step by step (finishing a bootstrap ends only its current lookup; kad then
//! starts the next bucket's, which is finished before it sends anything). Networks whose
//! tables stay below K (every test network) keep kad's behaviour.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use libp2p::kad::{self, QueryId};

use super::EventLoop;

/// How often the node refreshes its routing table (kad's default is 5 min).
pub(super) const REFRESH: Duration = Duration::from_secs(600);
/// How long a join holds back the announcements that follow the table's growth at most: a
/// join in a large, slow network may take minutes, and until the announcement that follows
/// it the node's DID document and provider records sit only with its first few peers.
pub(super) const JOIN_HOLD: Duration = Duration::from_secs(30);

/// The running bootstraps the node knows of.
#[derive(Default)]
pub(super) struct Bootstrap {
    /// Those it lets run: its own, and kad's automatic ones started while the table was small.
    ours: HashSet<QueryId>,
    /// Kad's automatic ones it is finishing.
    skipped: HashSet<QueryId>,
    last_started: Option<Instant>,
    /// The join: the bootstrap started when the first peer entered the table, and when.
    join: Option<(QueryId, Instant)>,
}

impl Bootstrap {
    /// Is `id` an automatic bootstrap this node is finishing?
    pub(super) fn is_skipped(&self, id: &QueryId) -> bool {
        self.skipped.contains(id)
    }

    /// Whether a join runs (for less than [`JOIN_HOLD`] so far).
    pub(super) fn is_joining(&self) -> bool {
        self.join.is_some_and(|(_, at)| at.elapsed() < JOIN_HOLD)
    }
}

impl EventLoop {
    /// Starts a bootstrap of the node's own (none without peers in the table).
    pub(super) fn start_bootstrap(&mut self) -> Option<QueryId> {
        match self.swarm.behaviour_mut().kad.bootstrap() {
            Ok(id) => {
                self.bootstrap.ours.insert(id);
                self.bootstrap.last_started = Some(Instant::now());
                Some(id)
            }
            Err(e) => {
                tracing::debug!("bootstrap: {e}");
                None
            }
        }
    }

    /// The first peer entered the table: joins the DHT (a bootstrap that holds back growth
    /// announcements until it ends, see the module comment).
    pub(super) fn start_join(&mut self) {
        self.bootstrap.join = self.start_bootstrap().map(|id| (id, Instant::now()));
    }

    /// The periodic refresh: [`REFRESH`] after the node's last bootstrap started.
    pub(super) fn bootstrap_tick(&mut self) {
        let due = self
            .bootstrap
            .last_started
            .is_some_and(|t| t.elapsed() >= REFRESH);
        if due && self.bootstrap.ours.is_empty() {
            let _ = self.start_bootstrap();
        }
    }

    /// Finishes kad's automatic bootstraps that started while the table already held K peers
    /// (see the module comment). Called after each batch of swarm events: kad starts one
    /// while it is polled, and its first requests are the only ones it gets to send.
    pub(super) fn skip_needless_bootstraps(&mut self) {
        let new: Vec<QueryId> = self
            .swarm
            .behaviour()
            .kad
            .iter_queries()
            .filter(|q| matches!(q.info(), kad::QueryInfo::Bootstrap { .. }))
            .map(|q| q.id())
            .filter(|id| !self.bootstrap.ours.contains(id) && !self.bootstrap.skipped.contains(id))
            .collect();
        if new.is_empty() {
            return;
        }
        let table = self.routing_table_size();
        let connected = self.swarm.connected_peers().next().is_some();
        if table < kad::K_VALUE.get() || !connected {
            // Kad's reason holds: let it run, and do not look at it again.
            self.bootstrap.ours.extend(new);
            return;
        }
        for id in new {
            if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                q.finish();
            }
            self.bootstrap.skipped.insert(id);
            self.metrics.mesh.bootstraps_skipped.inc();
            tracing::debug!(?id, table, "automatic bootstrap finished at once");
        }
    }

    /// A bootstrap's step ended: a skipped one's next step is finished before it sends
    /// anything; a last step forgets the query, and the join's last step brings the
    /// announcements it held back.
    pub(super) fn on_bootstrap_step(&mut self, id: QueryId, last: bool) {
        if last {
            self.bootstrap.ours.remove(&id);
            self.bootstrap.skipped.remove(&id);
            if self.bootstrap.join.is_some_and(|(join, _)| join == id) {
                self.bootstrap.join = None;
                let size = self.routing_table_size();
                tracing::debug!(table = size, "joined the DHT");
                self.reannounce_if_due(size);
            }
        } else if self.bootstrap.is_skipped(&id)
            && let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id)
        {
            q.finish();
        }
    }
}
