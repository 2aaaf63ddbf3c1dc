//! The fetching side: [`fetch`] and [`fetch_with`].
//!
//! One worker task per seeder owns that seeder's stream. Workers take CIDs from a shared queue
//! (at most [`FetchConfig::window`] requests outstanding per stream), read the answers in order
//! and hand each block to a blocking task that verifies it, stores it, decodes it when it is a
//! dag-pb node and queues the children that are not in the store yet. All bookkeeping lives in
//! one [`State`] behind a mutex; a `watch` channel wakes idle workers and the progress loop.

use std::{
    collections::{HashMap, HashSet, VecDeque, hash_map::Entry},
    io,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use libp2p::PeerId;
use tokio::{
    io::AsyncWriteExt as _,
    sync::{Semaphore, mpsc, watch},
    task::JoinSet,
};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt as _};

use super::{
    FetchError, PROTOCOL_NAME, Progress, SeederReport,
    wire::{self, Response, ResponseError},
};
use crate::{
    BlockStore, Cid, DAG_PB, RAW, SHA2_256,
    unixfs::{self, DecodeError, MAX_LEAVES, MAX_WALK, Refusal},
    verify,
};

mod remote;

pub use remote::{RemoteAnswer, RemoteBlocks, RemoteSeeders};

/// How often [`fetch`] calls its progress callback at most.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// How many received blocks may wait for verification and storage at once, at least: the
/// bound is for the whole fetch (the larger of this and the number of CPUs), not per seeder.
/// Per seeder, three seeders ran three times as many hash-and-write tasks as the CPUs could
/// take, which starved the tasks that move the bytes (3 seeders measured 0.71 × one on
/// loopback); shared, a fast seeder simply gets more of the places.
const MIN_PROCESSING: usize = 4;
/// Most blocks one seeder asks for at the tail that others are still sending (see
/// [`Ctx::take`]).
const MAX_STOLEN: usize = 2;
/// How long the workers of a completed fetch may take to close their streams.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Decides whether a peer may still seed: see [`FetchConfig::allow`].
pub type AllowSeeder = Arc<dyn Fn(&PeerId) -> bool + Send + Sync>;

/// Tuning of [`fetch_with`].
#[derive(Clone)]
pub struct FetchConfig {
    /// Requests sent ahead on each seeder's stream before their answers arrive (default 8).
    pub window: usize,
    /// How long a seeder may take to answer the oldest outstanding request (default 30 s);
    /// a seeder that takes longer is dropped.
    pub request_timeout: Duration,
    /// How long opening a stream may take, dialing included (default 30 s); a seeder that takes
    /// longer is dropped.
    pub open_timeout: Duration,
    /// Stream failures in a row (streams that fail or close, busy answers) after which a seeder is
    /// dropped (default 5). Each failure is followed by a short, growing pause.
    pub max_attempts: u32,
    /// Asked about a seeder each time a stream to it opens and before each block it sends is
    /// accepted (default: none, every seeder is allowed). A seeder it refuses is dropped and
    /// nothing more it sends is stored. With admission, this is where a permission is checked:
    /// the peer is admitted once a stream is open, which may be after the seeders were picked.
    pub allow: Option<AllowSeeder>,
    /// Seeders reached by another protocol (Bitswap), asked besides `seeders` (default none);
    /// a peer in both is asked over `/mcc/blobs/1.0.0`.
    pub remote: Option<RemoteSeeders>,
    /// Whether a `/mcc/blobs/1.0.0` seeder with nothing left in the queue also asks for blocks
    /// that other seeders are still sending, the first copy to arrive being stored (default
    /// true): the end of a download, or a seeder that joins late, then does not wait on the
    /// slowest seeder's window. Costs at most a few blocks sent twice.
    pub steal: bool,
}

impl std::fmt::Debug for FetchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchConfig")
            .field("window", &self.window)
            .field("request_timeout", &self.request_timeout)
            .field("open_timeout", &self.open_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("allow", &self.allow.as_ref().map(|_| "..."))
            .field("remote", &self.remote)
            .field("steal", &self.steal)
            .finish()
    }
}

impl FetchConfig {
    fn allows(&self, peer: &PeerId) -> bool {
        self.allow.as_ref().is_none_or(|allow| allow(peer))
    }
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            window: 8,
            request_timeout: Duration::from_secs(30),
            open_timeout: Duration::from_secs(30),
            max_attempts: 5,
            allow: None,
            remote: None,
            steal: true,
        }
    }
}

/// Downloads the DAG under `root` into `store`: [`fetch_with`] with the default
/// [`FetchConfig`].
pub async fn fetch(
    control: mcc_streams::Control,
    seeders: Vec<PeerId>,
    root: Cid,
    store: Arc<dyn BlockStore>,
    progress: impl FnMut(&Progress) + Send,
) -> Result<Vec<SeederReport>, FetchError> {
    fetch_with(
        FetchConfig::default(),
        control,
        seeders,
        root,
        store,
        progress,
    )
    .await
}

/// Downloads the whole DAG under `root` into `store` from `seeders` in parallel.
///
/// - Blocks already in the store are skipped (their subtrees are still walked), so a fetch that
///   was interrupted resumes where it stopped. When nothing is missing, the fetch succeeds at once
///   even without seeders; otherwise no seeder is [`FetchError::NoSeeders`].
/// - The root comes first (from any seeder); a dag-pb node is decoded with [`unixfs::decode`]
///   and its missing children are queued after what is queued already, so internal nodes come
///   before their children.
/// - Each seeder has a worker with its own stream that takes CIDs from the shared queue, so fast
///   seeders do more. A seeder answering "not found" is not asked for that block again but stays;
///   a seeder that sends a block that fails [`verify`], breaks the protocol, does not answer
///   within [`FetchConfig::request_timeout`] or fails [`FetchConfig::max_attempts`] times in a
///   row is dropped for this download. The blocks it had in flight go back to the queue.
/// - Every block is verified before `store.put` (on a blocking thread). A block found in the
///   store is read back and verified too before it is trusted (a file may be empty or damaged
///   after a crash); one that fails is fetched again. Every block must hold the bytes its parent's
///   `blocksizes` entry says, or the fetch fails with [`FetchError::Decode`].
/// - The DAG must be in proportion ([`unixfs::measure`]): the fetch fails with
///   [`FetchError::Refused`] as soon as it counts more than [`MAX_LEAVES`] leaves in file order
///   or more than [`MAX_WALK`] distinct blocks, and, once every block is stored, when
///   [`unixfs::measure`] refuses the DAG. The blocks stored meanwhile stay in the store (the
///   caller removes them).
/// - `progress` is called from this future at most every 100 ms while something changes, and
///   once more at the end.
///
/// Returns one [`SeederReport`] per distinct seeder, in the order given, when every block is
/// stored; [`FetchError::AllSeedersFailed`] when blocks are missing and no seeder left can
/// provide them. Dropping the future stops the download (blocks being stored at that moment
/// are still stored).
pub async fn fetch_with(
    config: FetchConfig,
    control: mcc_streams::Control,
    seeders: Vec<PeerId>,
    root: Cid,
    store: Arc<dyn BlockStore>,
    progress: impl FnMut(&Progress) + Send,
) -> Result<Vec<SeederReport>, FetchError> {
    // No seeder comes later: the sender is gone at once.
    let (_, more) = mpsc::channel(1);
    fetch_streaming(config, control, seeders, more, root, store, progress).await
}

/// A seeder found while a [`fetch_streaming`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewSeeder {
    /// A peer asked over `/mcc/blobs/1.0.0`.
    Blobs(PeerId),
    /// A peer asked through [`FetchConfig::remote`] (ignored without one).
    Remote(PeerId),
}

/// [`fetch_with`] that also takes seeders found after it started: each one that `more` yields
/// gets a worker at once (a peer already seeding is ignored). Until `more` ends, a fetch
/// without seeders, or whose seeders all failed, waits for more instead of failing; it fails
/// with [`FetchError::NoSeeders`] when `more` ends without any seeder.
///
/// This is how a fetch starts with the first providers a DHT lookup finds.
pub async fn fetch_streaming(
    config: FetchConfig,
    control: mcc_streams::Control,
    seeders: Vec<PeerId>,
    mut more: mpsc::Receiver<NewSeeder>,
    root: Cid,
    store: Arc<dyn BlockStore>,
    mut progress: impl FnMut(&Progress) + Send,
) -> Result<Vec<SeederReport>, FetchError> {
    let mut peers = Vec::with_capacity(seeders.len());
    for peer in seeders {
        if !peers.contains(&peer) {
            peers.push(peer);
        }
    }
    // Seeders from `remote_from` on are asked through `config.remote`.
    let remote_from = peers.len();
    if let Some(remote) = &config.remote {
        for peer in &remote.peers {
            if !peers.contains(peer) {
                peers.push(*peer);
            }
        }
    }
    let root = unixfs::normalize(root);
    let ctx = Arc::new(Ctx::new(store, root, &peers));

    let start = {
        let ctx = ctx.clone();
        tokio::task::spawn_blocking(move || walk_root(&ctx))
    };
    match start.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(e) if e.is_panic() => return Err(store_panicked()),
        Err(_) => return Err(FetchError::Cancelled),
    }
    if ctx.lock().pending.is_empty() {
        check_shape(&ctx).await?;
        let done = ctx.lock().progress();
        progress(&done);
        return Ok(ctx.reports());
    }
    ctx.update(|state| state.started = true);
    tracing::debug!(%root, seeders = peers.len(), "fetching");

    let mut workers = JoinSet::new();
    let spawn = |workers: &mut JoinSet<()>, index: usize, peer: PeerId, remote: bool| {
        match (&config.remote, remote) {
            (Some(r), true) => workers.spawn(remote::worker(
                ctx.clone(),
                index,
                peer,
                r.blocks.clone(),
                config.clone(),
            )),
            _ => workers.spawn(worker(
                ctx.clone(),
                index,
                peer,
                control.clone(),
                config.clone(),
            )),
        };
    };
    for (index, peer) in peers.iter().enumerate() {
        spawn(&mut workers, index, *peer, index >= remote_from);
    }
    let mut more_open = true;
    let mut changes = ctx.changes.subscribe();
    let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported: Option<Progress> = None;
    loop {
        changes.borrow_and_update();
        if ctx.lock().outcome.is_some() {
            break;
        }
        tokio::select! {
            _ = changes.changed() => {}
            found = more.recv(), if more_open => match found {
                Some(found) => {
                    let (peer, remote) = match found {
                        NewSeeder::Blobs(peer) => (peer, false),
                        NewSeeder::Remote(peer) => (peer, true),
                    };
                    if remote && config.remote.is_none() {
                        continue;
                    }
                    if let Some(index) = ctx.add_seeder(peer) {
                        tracing::debug!(%peer, remote, "seeder joined the fetch");
                        spawn(&mut workers, index, peer, remote);
                    }
                }
                None => {
                    more_open = false;
                    ctx.update(|state| state.more = false);
                }
            },
            _ = tick.tick() => {
                let now = ctx.lock().progress();
                if reported.as_ref() != Some(&now) {
                    progress(&now);
                    reported = Some(now);
                }
            }
            Some(joined) = workers.join_next(), if !workers.is_empty() => {
                // A worker ends on its own only once its seeder is dropped; a panicking or
                // cancelled one has marked its seeder dropped (see `WorkerGuard`).
                if let Err(e) = joined
                    && e.is_cancelled()
                {
                    ctx.fail(FetchError::Cancelled);
                }
            }
        }
    }
    if matches!(ctx.lock().outcome, Some(Ok(()))) {
        // The workers are idle: let them close their streams cleanly.
        let closed = async { while workers.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, closed).await;
    }
    workers.abort_all();

    let (outcome, last) = {
        let mut state = ctx.lock();
        let outcome = state.outcome.take();
        (outcome, state.progress())
    };
    progress(&last);
    let reports = ctx.reports();
    for report in &reports {
        tracing::debug!(
            peer = %report.peer,
            blocks = report.blocks,
            bytes = report.bytes,
            dropped = report.dropped.as_deref(),
            "seeder report"
        );
    }
    match outcome {
        Some(Ok(())) => {
            check_shape(&ctx).await?;
            Ok(reports)
        }
        Some(Err(e)) => Err(e),
        None => Err(FetchError::Cancelled),
    }
}

/// Measures the DAG once every block is stored: refuses one out of proportion.
async fn check_shape(ctx: &Arc<Ctx>) -> Result<(), FetchError> {
    let root = ctx.root;
    let store = ctx.store.clone();
    let measured = tokio::task::spawn_blocking(move || unixfs::measure(&root, |c| store.get(c)));
    match measured.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(DecodeError::Refused(why))) => Err(FetchError::Refused(why)),
        Ok(Err(DecodeError::Store(e))) => Err(FetchError::Store(e)),
        Ok(Err(e)) => Err(FetchError::Decode(format!("{root}: {e}"))),
        Err(e) if e.is_panic() => Err(store_panicked()),
        Err(_) => Err(FetchError::Cancelled),
    }
}

fn store_panicked() -> FetchError {
    FetchError::Store(io::Error::other("the block store panicked"))
}

/// A known block that is not stored yet.
struct Pending {
    /// How many links of the DAG lead to it (for progress).
    refs: u64,
    /// Seeders not to ask for it (they do not have it, or sent a bad copy).
    excluded: Vec<usize>,
    /// Bytes of the file it holds, as its parent says (`None` for the root).
    size: Option<u64>,
    /// A copy arrived and is being verified and stored: later copies are dropped.
    processing: bool,
}

/// What the fetch knows about one seeder.
struct Seeder {
    peer: PeerId,
    blocks: u64,
    bytes: u64,
    dropped: Option<String>,
    /// Requested blocks not answered yet, in request order.
    in_flight: VecDeque<Cid>,
}

struct State {
    /// Every known block not stored yet: queued, requested or being stored.
    pending: HashMap<Cid, Pending>,
    /// Blocks waiting for a seeder, in the order to request them.
    queue: VecDeque<Cid>,
    /// Blocks already stored (or found and verified in the store) and walked by this fetch: not
    /// looked at again.
    walked: HashSet<Cid>,
    /// Leaves counted in file order so far (a lower bound: a link to a block walked already
    /// does not count the leaves under it again).
    leaves: u64,
    seeders: Vec<Seeder>,
    active: usize,
    blocks_done: u64,
    bytes_done: u64,
    total_bytes: Option<u64>,
    /// The last reason a seeder was dropped.
    last_error: Option<String>,
    /// Whether the walk from the root has started the fetch (before, the DAG may look complete
    /// while the root's links are still being walked).
    started: bool,
    /// Whether more seeders may still join (see [`fetch_streaming`]).
    more: bool,
    /// Set once the fetch is over.
    outcome: Option<Result<(), FetchError>>,
}

impl State {
    fn progress(&self) -> Progress {
        Progress {
            blocks_done: self.blocks_done,
            bytes_done: self.bytes_done,
            total_bytes: self.total_bytes,
            seeders: self.active,
        }
    }

    fn count_done(&mut self, len: u64, refs: u64) {
        self.blocks_done = self.blocks_done.saturating_add(refs);
        self.bytes_done = self.bytes_done.saturating_add(len.saturating_mul(refs));
    }

    /// Puts the blocks `index` has in flight back at the front of the queue, in order.
    fn requeue_in_flight(&mut self, index: usize) {
        let in_flight = std::mem::take(&mut self.seeders[index].in_flight);
        for cid in in_flight.into_iter().rev() {
            if self.needs_asking(&cid) {
                self.queue.push_front(cid);
            }
        }
    }

    /// Whether pending `cid` must go back to the queue: no copy is being stored, no other
    /// seeder has it in flight (see [`Ctx::take`] on the tail) and it is not queued.
    fn needs_asking(&self, cid: &Cid) -> bool {
        self.pending.get(cid).is_some_and(|p| !p.processing)
            && !self.seeders.iter().any(|s| s.in_flight.contains(cid))
            && !self.queue.contains(cid)
    }

    /// At the tail (nothing queued for seeder `index`): the block to ask it for as well, the
    /// last one requested from the seeder with the most blocks in flight (at least two, so
    /// the one it is sending now stays its own) that nobody else was asked for yet.
    fn steal_for(&self, index: usize) -> Option<Cid> {
        let busiest = self
            .seeders
            .iter()
            .enumerate()
            .filter(|(i, s)| *i != index && s.dropped.is_none() && s.in_flight.len() >= 2)
            .max_by_key(|(_, s)| s.in_flight.len())?;
        busiest
            .1
            .in_flight
            .iter()
            .skip(1)
            .rev()
            .copied()
            .find(|cid| {
                self.pending
                    .get(cid)
                    .is_some_and(|p| !p.processing && !p.excluded.contains(&index))
                    && self
                        .seeders
                        .iter()
                        .filter(|s| s.in_flight.contains(cid))
                        .count()
                        == 1
            })
    }

    fn drop_seeder(&mut self, index: usize, why: String) {
        let seeder = &mut self.seeders[index];
        if seeder.dropped.is_some() {
            return;
        }
        tracing::debug!(peer = %seeder.peer, why, "dropping seeder");
        self.last_error = Some(format!("{}: {why}", seeder.peer));
        seeder.dropped = Some(why);
        self.active -= 1;
        self.requeue_in_flight(index);
    }

    /// Ends the fetch when every block is stored, or when blocks are missing, nothing is in
    /// progress and no seeder left may be asked for any queued block.
    fn check_end(&mut self) {
        if self.outcome.is_some() || !self.started {
            return;
        }
        if self.pending.is_empty() {
            self.outcome = Some(Ok(()));
            return;
        }
        if self.more {
            // A seeder that joins later may have what is missing.
            return;
        }
        if self.seeders.is_empty() {
            self.outcome = Some(Err(FetchError::NoSeeders));
            return;
        }
        if self.pending.len() > self.queue.len() {
            // Blocks are requested or being stored: they may still complete the DAG, or go back
            // to the queue.
            return;
        }
        let askable = |cid: &Cid| {
            let excluded = &self.pending[cid].excluded;
            self.seeders
                .iter()
                .enumerate()
                .any(|(i, s)| s.dropped.is_none() && !excluded.contains(&i))
        };
        if self.active > 0 && self.queue.iter().any(askable) {
            return;
        }
        let last = if self.active == 0 {
            self.last_error
                .clone()
                .unwrap_or_else(|| "no seeder left".to_string())
        } else {
            let cid = self
                .queue
                .front()
                .map(ToString::to_string)
                .unwrap_or_default();
            format!("no seeder left has block {cid}")
        };
        self.outcome = Some(Err(FetchError::AllSeedersFailed {
            missing: self.pending.len(),
            last,
        }));
    }
}

/// What the workers, the blocking tasks and the progress loop share.
struct Ctx {
    store: Arc<dyn BlockStore>,
    root: Cid,
    state: Mutex<State>,
    /// Ticks on every change of `state` that may matter to a worker or the progress loop.
    changes: watch::Sender<()>,
    /// Places for received blocks being verified and stored (see [`MIN_PROCESSING`]).
    processing: Arc<Semaphore>,
}

/// What to do with a block a seeder sent: see [`Ctx::answered`].
enum Arrival {
    /// Verify and store it.
    Process,
    /// Another seeder's copy came first: drop it.
    Duplicate,
    /// The seeder was dropped meanwhile (its blocks are back in the queue).
    Dropped,
}

/// The answer of [`Ctx::add_link`].
enum Link {
    /// The block is already known: pending or walked.
    Known,
    /// The block is new: look it up in the store.
    New,
}

impl Ctx {
    fn new(store: Arc<dyn BlockStore>, root: Cid, peers: &[PeerId]) -> Self {
        let seeders = peers
            .iter()
            .map(|peer| Seeder {
                peer: *peer,
                blocks: 0,
                bytes: 0,
                dropped: None,
                in_flight: VecDeque::new(),
            })
            .collect();
        Self {
            store,
            root,
            state: Mutex::new(State {
                pending: HashMap::new(),
                queue: VecDeque::new(),
                walked: HashSet::new(),
                leaves: 0,
                seeders,
                active: peers.len(),
                blocks_done: 0,
                bytes_done: 0,
                total_bytes: None,
                last_error: None,
                started: false,
                more: true,
                outcome: None,
            }),
            changes: watch::Sender::new(()),
            processing: Arc::new(Semaphore::new(processing_places())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the state under the lock, then wakes whoever waits for changes.
    fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let result = {
            let mut state = self.lock();
            let result = f(&mut state);
            state.check_end();
            result
        };
        self.changes.send_modify(|()| {});
        result
    }

    fn fail(&self, error: FetchError) {
        self.update(|state| {
            if state.outcome.is_none() {
                state.outcome = Some(Err(error));
            }
        });
    }

    fn reports(&self) -> Vec<SeederReport> {
        self.lock()
            .seeders
            .iter()
            .map(|s| SeederReport {
                peer: s.peer,
                blocks: s.blocks,
                bytes: s.bytes,
                dropped: s.dropped.clone(),
            })
            .collect()
    }

    /// Adds a seeder found late: its index, or `None` if it seeds this fetch already.
    fn add_seeder(&self, peer: PeerId) -> Option<usize> {
        self.update(|state| {
            if state.seeders.iter().any(|s| s.peer == peer) {
                return None;
            }
            state.seeders.push(Seeder {
                peer,
                blocks: 0,
                bytes: 0,
                dropped: None,
                in_flight: VecDeque::new(),
            });
            state.active += 1;
            Some(state.seeders.len() - 1)
        })
    }

    /// Whether worker `index` has nothing more to do.
    fn is_over_for(&self, index: usize) -> bool {
        let state = self.lock();
        state.outcome.is_some() || state.seeders[index].dropped.is_some()
    }

    /// Takes up to `max` queued blocks that seeder `index` may be asked for. With `steal`, a
    /// seeder with nothing queued for it takes blocks that others are still sending (the first
    /// copy to arrive is stored, the other dropped): at the tail of a download, or when it
    /// joined after the queue was handed out, it helps instead of idling while slower seeders
    /// finish their windows.
    fn take(&self, index: usize, max: usize, steal: bool) -> Vec<Cid> {
        let mut state = self.lock();
        let state = &mut *state;
        let mut taken = Vec::new();
        if state.outcome.is_some() || state.seeders[index].dropped.is_some() {
            return taken;
        }
        let mut i = 0;
        while taken.len() < max && i < state.queue.len() {
            let cid = state.queue[i];
            if state.pending[&cid].excluded.contains(&index) {
                i += 1;
                continue;
            }
            state.queue.remove(i);
            taken.push(cid);
        }
        state.seeders[index].in_flight.extend(taken.iter().copied());
        while steal && taken.len() < max && taken.len() < MAX_STOLEN {
            if state
                .queue
                .iter()
                .any(|c| !state.pending[c].excluded.contains(&index))
            {
                break;
            }
            let Some(cid) = state.steal_for(index) else {
                break;
            };
            state.seeders[index].in_flight.push_back(cid);
            taken.push(cid);
        }
        taken
    }

    /// Whether a queued block may be asked of seeder `index` (or, with `steal`, one in
    /// flight elsewhere: see [`take`](Self::take)).
    fn has_work_for(&self, index: usize, steal: bool) -> bool {
        let state = self.lock();
        state
            .queue
            .iter()
            .any(|cid| !state.pending[cid].excluded.contains(&index))
            || (steal && state.steal_for(index).is_some())
    }

    /// Seeder `index` answered with a block: it leaves its in-flight list, and is to be
    /// processed unless another seeder's copy came first.
    fn answered(&self, index: usize, cid: &Cid) -> Arrival {
        let mut state = self.lock();
        let state = &mut *state;
        let seeder = &mut state.seeders[index];
        if seeder.dropped.is_some() {
            return Arrival::Dropped;
        }
        if seeder.in_flight.front() == Some(cid) {
            seeder.in_flight.pop_front();
        } else if let Some(i) = seeder.in_flight.iter().position(|c| c == cid) {
            seeder.in_flight.remove(i);
        }
        match state.pending.get_mut(cid) {
            Some(pending) if !pending.processing => {
                pending.processing = true;
                Arrival::Process
            }
            _ => Arrival::Duplicate,
        }
    }

    /// Seeder `index` does not have `cid`: ask the others.
    fn not_found(&self, index: usize, cid: Cid) {
        self.update(|state| {
            let seeder = &mut state.seeders[index];
            if seeder.dropped.is_some() {
                return;
            }
            if let Some(i) = seeder.in_flight.iter().position(|c| *c == cid) {
                seeder.in_flight.remove(i);
            }
            if let Some(pending) = state.pending.get_mut(&cid)
                && !pending.excluded.contains(&index)
            {
                pending.excluded.push(index);
            }
            if state.needs_asking(&cid) {
                state.queue.push_front(cid);
            }
        });
    }

    /// The stream of seeder `index` failed: its blocks go back to the queue, for anyone.
    fn requeue(&self, index: usize) {
        self.update(|state| state.requeue_in_flight(index));
    }

    fn drop_seeder(&self, index: usize, why: String) {
        self.update(|state| state.drop_seeder(index, why));
    }

    /// Seeder `index` sent a block that does not match `cid`: drop it and ask the others.
    fn bad_block(&self, index: usize, cid: Cid) {
        self.update(|state| {
            if let Some(pending) = state.pending.get_mut(&cid) {
                if !pending.excluded.contains(&index) {
                    pending.excluded.push(index);
                }
                pending.processing = false;
            }
            if state.needs_asking(&cid) {
                state.queue.push_front(cid);
            }
            state.drop_seeder(
                index,
                "sent a block that does not match its CID".to_string(),
            );
        });
    }

    /// `cid` (of `len` bytes, from seeder `index`) is stored.
    fn stored(&self, index: usize, cid: &Cid, len: usize) {
        self.update(|state| {
            let refs = state.pending.remove(cid).map_or(0, |p| p.refs);
            state.count_done(len as u64, refs);
            let seeder = &mut state.seeders[index];
            seeder.blocks += 1;
            seeder.bytes += len as u64;
        });
    }

    /// How many links lead to pending `cid`.
    fn refs(&self, cid: &Cid) -> u64 {
        self.lock().pending.get(cid).map_or(1, |p| p.refs)
    }

    fn set_total(&self, total: u64) {
        self.update(|state| state.total_bytes = Some(total));
    }

    /// A link to `cid` (said to hold `size` bytes of the file), reached by `refs` paths: counted
    /// on a pending block, or as done (with its `tsize`) on a block walked already.
    ///
    /// Also enforces the bounds on the DAG: [`MAX_LEAVES`] leaves counted in file order and
    /// [`MAX_WALK`] distinct blocks.
    fn add_link(&self, cid: &Cid, tsize: u64, size: u64, refs: u64) -> Result<Link, FetchError> {
        let mut state = self.lock();
        if cid.codec() == RAW {
            state.leaves = state.leaves.saturating_add(refs);
            if state.leaves > MAX_LEAVES {
                return Err(Refusal::TooManyLeaves {
                    leaves: state.leaves,
                }
                .into());
            }
        }
        if state.pending.len() + state.walked.len() > MAX_WALK {
            return Err(Refusal::TooManyBlocks.into());
        }
        if let Some(pending) = state.pending.get_mut(cid) {
            if pending.size.is_some_and(|s| s != size) {
                return Err(FetchError::Decode(format!(
                    "{cid} is linked with two different sizes"
                )));
            }
            pending.refs = pending.refs.saturating_add(refs);
            return Ok(Link::Known);
        }
        if state.walked.contains(cid) {
            state.count_done(tsize, refs);
            return Ok(Link::Known);
        }
        Ok(Link::New)
    }

    /// The size the parent of pending `cid` says it has.
    fn expected_size(&self, cid: &Cid) -> Option<u64> {
        self.lock().pending.get(cid).and_then(|p| p.size)
    }

    /// Marks block `cid` as walked: `false` if it was already.
    fn walk(&self, cid: &Cid) -> bool {
        self.lock().walked.insert(*cid)
    }

    /// A block found in the store.
    fn present(&self, len: u64, refs: u64) {
        self.update(|state| state.count_done(len, refs));
    }

    /// A block missing from the store (said to hold `size` bytes of the file): queue it (unless
    /// another walk just did).
    fn missing(&self, cid: Cid, size: Option<u64>, refs: u64) {
        self.update(|state| match state.pending.entry(cid) {
            Entry::Occupied(mut entry) => {
                let pending = entry.get_mut();
                pending.refs = pending.refs.saturating_add(refs);
            }
            Entry::Vacant(entry) => {
                entry.insert(Pending {
                    refs,
                    excluded: Vec::new(),
                    size,
                    processing: false,
                });
                state.queue.push_back(cid);
            }
        });
    }
}

/// How many received blocks one fetch verifies and stores at once.
fn processing_places() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(MIN_PROCESSING)
}

/// Checks that the fetch can verify and follow `cid`.
fn check_supported(cid: &Cid) -> Result<(), FetchError> {
    if cid.version() != cid::Version::V1 {
        // `verify` compares with the CIDv1 of the bytes: a CIDv0 would never match.
        return Err(FetchError::Decode(format!(
            "{cid} is a CIDv0, only CIDv1 is supported"
        )));
    }
    if cid.hash().code() != SHA2_256 {
        return Err(FetchError::Decode(format!(
            "{cid} uses hash {:#x}, only sha2-256 is supported",
            cid.hash().code()
        )));
    }
    match cid.codec() {
        RAW | DAG_PB => Ok(()),
        other => Err(FetchError::Decode(format!(
            "{cid} has codec {other:#x}, only raw and dag-pb are supported"
        ))),
    }
}

/// A block's children, with the bytes of the file each holds.
type Children = Vec<(unixfs::Link, u64)>;

/// The bytes of the file a block holds and its children: none for a raw leaf, the decoded
/// links of a dag-pb node.
fn decode_block(cid: &Cid, data: &[u8]) -> Result<(u64, Children), FetchError> {
    if cid.codec() != DAG_PB {
        return Ok((data.len() as u64, Vec::new()));
    }
    let node = unixfs::decode(data).map_err(|e| FetchError::Decode(format!("{cid}: {e}")))?;
    Ok((
        node.filesize,
        node.links.into_iter().zip(node.blocksizes).collect(),
    ))
}

/// Fails unless block `cid`, holding `bytes` of the file, holds what its parent says.
fn check_size(cid: &Cid, bytes: u64, expected: Option<u64>) -> Result<(), FetchError> {
    match expected {
        Some(size) if size != bytes => Err(FetchError::Decode(format!(
            "{cid} holds {bytes} bytes of the file, its parent says {size}"
        ))),
        _ => Ok(()),
    }
}

/// The bytes of the DAG under a node of `len` bytes with these children.
fn dag_size(len: usize, children: &Children) -> u64 {
    children.iter().fold(len as u64, |total, (link, _)| {
        total.saturating_add(link.tsize)
    })
}

/// A block of the store, read back and verified (`None` if absent or damaged).
fn stored_block(ctx: &Ctx, cid: &Cid) -> Result<Option<Vec<u8>>, FetchError> {
    let data = ctx.store.get(cid).map_err(FetchError::Store)?;
    Ok(data.filter(|d| {
        let good = verify(cid, d);
        if !good {
            tracing::debug!(%cid, "stored copy of a block is damaged: fetching it again");
        }
        good
    }))
}

/// Starts the fetch (blocking): walks the root if it is stored, queues it otherwise.
fn walk_root(ctx: &Ctx) -> Result<(), FetchError> {
    let root = ctx.root;
    check_supported(&root)?;
    match stored_block(ctx, &root)? {
        Some(data) => {
            let (_, children) = decode_block(&root, &data)?;
            ctx.set_total(dag_size(data.len(), &children));
            ctx.walk(&root);
            ctx.present(data.len() as u64, 1);
            walk_links(ctx, children, 1)
        }
        None => {
            ctx.missing(root, None, 1);
            Ok(())
        }
    }
}

/// Walks links (blocking), breadth first: blocks in the store (read back and verified) are
/// counted as done and nodes among them walked in turn; missing or damaged ones are queued.
fn walk_links(ctx: &Ctx, links: Children, refs: u64) -> Result<(), FetchError> {
    let mut todo: VecDeque<(unixfs::Link, u64, u64)> = links
        .into_iter()
        .map(|(link, size)| (link, size, refs))
        .collect();
    while let Some((link, size, refs)) = todo.pop_front() {
        let cid = link.cid;
        check_supported(&cid)?;
        if let Link::Known = ctx.add_link(&cid, link.tsize, size, refs)? {
            continue;
        }
        // A block file is trusted only once read back and verified: after a crash it may be
        // empty or damaged (block writes are fsynced only at commit).
        let Some(data) = stored_block(ctx, &cid)? else {
            ctx.missing(cid, Some(size), refs);
            continue;
        };
        let (bytes, children) = decode_block(&cid, &data)?;
        check_size(&cid, bytes, Some(size))?;
        if !ctx.walk(&cid) {
            // Walked by another task since `add_link`.
            ctx.present(link.tsize, refs);
            continue;
        }
        let len = if cid.codec() == DAG_PB {
            data.len() as u64
        } else {
            link.tsize
        };
        ctx.present(len, refs);
        todo.extend(children.into_iter().map(|(l, size)| (l, size, refs)));
    }
    Ok(())
}

/// Verifies, stores and follows a block received from seeder `index` (blocking).
fn process(ctx: &Ctx, index: usize, cid: Cid, data: Vec<u8>) -> Result<(), FetchError> {
    if !verify(&cid, &data) {
        ctx.bad_block(index, cid);
        return Ok(());
    }
    let (bytes, children) = decode_block(&cid, &data)?;
    check_size(&cid, bytes, ctx.expected_size(&cid))?;
    ctx.store.put(&cid, &data).map_err(FetchError::Store)?;
    if cid == ctx.root {
        ctx.set_total(dag_size(data.len(), &children));
    }
    ctx.walk(&cid);
    // Children are queued before the node leaves `pending`, so the fetch cannot look complete
    // in between.
    walk_links(ctx, children, ctx.refs(&cid))?;
    ctx.stored(index, &cid, data.len());
    Ok(())
}

/// Marks its seeder dropped if the worker ends while the fetch goes on (a panic, an abort).
struct WorkerGuard {
    ctx: Arc<Ctx>,
    index: usize,
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        if self.ctx.lock().outcome.is_none() {
            self.ctx
                .drop_seeder(self.index, "its worker stopped unexpectedly".to_string());
        }
    }
}

/// How an attempt to use a stream failed.
enum Failure {
    /// Worth another stream, after a pause.
    Retry(String),
    /// The seeder is dropped.
    Fatal(String),
}

type PeerStream = Compat<libp2p::Stream>;

async fn open(
    control: &mut mcc_streams::Control,
    peer: PeerId,
    timeout: Duration,
) -> Result<PeerStream, Failure> {
    match tokio::time::timeout(timeout, control.open_stream(peer, PROTOCOL_NAME)).await {
        Ok(Ok(stream)) => Ok(stream.compat()),
        Ok(Err(mcc_streams::OpenError::UnsupportedProtocol(_))) => {
            Err(Failure::Fatal(format!("does not support {PROTOCOL_NAME}")))
        }
        Ok(Err(e)) => Err(Failure::Retry(e.to_string())),
        Err(_) => Err(Failure::Fatal(format!(
            "could not open a stream within {timeout:?}"
        ))),
    }
}

/// Fetches from one seeder until the fetch is over or the seeder is dropped.
async fn worker(
    ctx: Arc<Ctx>,
    index: usize,
    peer: PeerId,
    mut control: mcc_streams::Control,
    config: FetchConfig,
) {
    let _guard = WorkerGuard {
        ctx: ctx.clone(),
        index,
    };
    let window = config.window.max(1);
    let mut changes = ctx.changes.subscribe();
    let mut stream: Option<PeerStream> = None;
    // Mirrors our entry in `State::seeders[index].in_flight`.
    let mut requested: VecDeque<Cid> = VecDeque::new();
    let mut failures = 0u32;
    let mut requests = Vec::new();

    loop {
        changes.borrow_and_update();
        if ctx.is_over_for(index) {
            if let Some(mut s) = stream {
                // Tell the seeder we are done (it answered everything we asked, or we give up
                // on it anyway).
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, s.shutdown()).await;
            }
            return;
        }
        if requested.is_empty() {
            // Open the stream before taking work, so that no block waits on a slow dial.
            if !ctx.has_work_for(index, config.steal) {
                let _ = changes.changed().await;
                continue;
            }
            if stream.is_none() {
                match open(&mut control, peer, config.open_timeout).await {
                    Ok(_) if !config.allows(&peer) => {
                        ctx.drop_seeder(index, "is not allowed to seed".to_string());
                        return;
                    }
                    Ok(opened) => stream = Some(opened),
                    Err(failure) => {
                        if failed(&ctx, index, peer, &config, &mut failures, failure).await {
                            return;
                        }
                        continue;
                    }
                }
            }
        }
        let Some(s) = stream.as_mut() else {
            unreachable!("a stream is open while requests are outstanding")
        };
        let new = ctx.take(index, window - requested.len(), config.steal);
        if requested.is_empty() && new.is_empty() {
            // Another worker was faster.
            continue;
        }
        requested.extend(new.iter().copied());

        let step = async {
            if !new.is_empty() {
                requests.clear();
                for cid in &new {
                    wire::encode_request(cid, &mut requests);
                }
                let sent = async {
                    s.write_all(&requests).await?;
                    s.flush().await
                };
                sent.await
                    .map_err(|e| Failure::Retry(format!("cannot send requests: {e}")))?;
            }
            match tokio::time::timeout(config.request_timeout, wire::read_response(s)).await {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(ResponseError::Io(e))) => {
                    Err(Failure::Retry(format!("cannot read an answer: {e}")))
                }
                Ok(Err(ResponseError::Protocol(why))) => {
                    Err(Failure::Fatal(format!("broke the protocol: {why}")))
                }
                Err(_) => Err(Failure::Fatal(format!(
                    "did not answer within {:?}",
                    config.request_timeout
                ))),
            }
        };

        let failure = match step.await {
            Ok(Response::Block(_)) if !config.allows(&peer) => {
                Failure::Fatal("is no longer allowed to seed".to_string())
            }
            Ok(Response::Block(data)) => {
                failures = 0;
                let Some(cid) = requested.pop_front() else {
                    unreachable!("a request is outstanding")
                };
                match ctx.answered(index, &cid) {
                    Arrival::Process => {}
                    Arrival::Duplicate => continue,
                    Arrival::Dropped => return,
                }
                let Ok(permit) = ctx.processing.clone().acquire_owned().await else {
                    unreachable!("the semaphore is never closed")
                };
                let ctx = ctx.clone();
                tokio::task::spawn_blocking(move || {
                    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        process(&ctx, index, cid, data)
                    }));
                    drop(permit);
                    match result {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => ctx.fail(e),
                        Err(_) => ctx.fail(store_panicked()),
                    }
                });
                continue;
            }
            Ok(Response::NotFound(message)) => {
                failures = 0;
                let Some(cid) = requested.pop_front() else {
                    unreachable!("a request is outstanding")
                };
                tracing::trace!(%peer, %cid, message, "block not found");
                ctx.not_found(index, cid);
                continue;
            }
            Ok(Response::Refused(message)) => Failure::Retry(format!("refused: {message}")),
            // A newer seeder's answer we cannot use: as before statuses were readable, the
            // seeder is dropped for this download.
            Ok(Response::Unknown { status, message }) => {
                Failure::Fatal(format!("answered with unknown status {status}: {message}"))
            }
            Err(failure) => failure,
        };

        // The stream is of no more use: what it had in flight goes back to the queue.
        stream = None;
        requested.clear();
        if failed(&ctx, index, peer, &config, &mut failures, failure).await {
            return;
        }
    }
}

/// Handles a failed stream of seeder `index` (whose outstanding requests are forgotten): drops
/// the seeder (`true`), or puts its blocks back in the queue and pauses before the next try.
async fn failed(
    ctx: &Ctx,
    index: usize,
    peer: PeerId,
    config: &FetchConfig,
    failures: &mut u32,
    failure: Failure,
) -> bool {
    match failure {
        Failure::Fatal(why) => {
            ctx.drop_seeder(index, why);
            true
        }
        Failure::Retry(why) => {
            *failures += 1;
            if *failures >= config.max_attempts {
                ctx.drop_seeder(
                    index,
                    format!("failed {failures} times in a row, last: {why}"),
                );
                return true;
            }
            tracing::debug!(%peer, failures, why, "blob stream failed, retrying");
            ctx.requeue(index);
            tokio::time::sleep(backoff(*failures)).await;
            false
        }
    }
}

/// The pause after `failures` failures in a row: 50 ms, doubling, at most 2 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(50u64 << failures.saturating_sub(1).min(5)).min(Duration::from_secs(2))
}
