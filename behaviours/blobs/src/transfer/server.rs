//! The seeding side: [`serve`], [`serve_with`] and [`ServeStats`].

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::StreamExt as _;
use libp2p::PeerId;
use tokio::{
    io::{AsyncWriteExt as _, BufReader},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    task::{JoinHandle, JoinSet},
};
use tokio_util::compat::FuturesAsyncReadCompatExt as _;

use super::{
    IDLE_TIMEOUT, PROTOCOL_NAME, ServeError,
    wire::{self, RequestError, STATUS_NOT_FOUND, STATUS_OK, STATUS_REFUSED},
};
use crate::{BlockStore, Cid, MAX_BLOCK_SIZE};

/// How many streams are served at once; further streams get a busy answer.
const MAX_STREAMS: usize = 256;
/// How many streams beyond [`MAX_STREAMS`] may wait for their busy answer at the same time;
/// further streams are dropped without an answer.
const MAX_BUSY_RESPONDERS: usize = 64;
/// How many blocks one stream reads ahead of the answer being written.
const READ_AHEAD: usize = 4;
/// How many blocks all streams together may hold in memory (read and not yet written).
const MAX_BUFFERED_BLOCKS: usize = 128;
/// How many streams of one peer are served at once; its further streams get a busy answer. With
/// [`MAX_STREAMS`], at least 32 peers are needed to take every place.
const MAX_STREAMS_PER_PEER: usize = 8;
/// How many blocks the streams of one peer may hold in memory together. A peer that asks for
/// blocks and never reads the answers holds this many for up to [`WRITE_TIMEOUT`], not the whole
/// [`MAX_BUFFERED_BLOCKS`]: the other peers are still served. (One stream holds at most
/// [`READ_AHEAD`] + 2, so a peer fetching over two streams is never slowed down by this.)
const MAX_BUFFERED_PER_PEER: usize = 16;
/// How long writing one answer may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Counters of [`serve`], shared by its clones.
#[derive(Clone, Default)]
pub struct ServeStats {
    inner: Arc<StatsInner>,
}

#[derive(Default)]
struct StatsInner {
    streams: AtomicU64,
    requests: AtomicU64,
    blocks: AtomicU64,
    bytes: AtomicU64,
    not_found: AtomicU64,
    refused: AtomicU64,
}

impl ServeStats {
    /// Streams accepted.
    pub fn streams(&self) -> u64 {
        self.inner.streams.load(Ordering::Relaxed)
    }

    /// Well-formed GetBlock requests received.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Blocks sent.
    pub fn blocks_served(&self) -> u64 {
        self.inner.blocks.load(Ordering::Relaxed)
    }

    /// Bytes of the blocks sent (not counting framing).
    pub fn bytes_served(&self) -> u64 {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    /// Requests answered "not found".
    pub fn not_found(&self) -> u64 {
        self.inner.not_found.load(Ordering::Relaxed)
    }

    /// Requests answered "busy or refused".
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for ServeStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeStats")
            .field("streams", &self.streams())
            .field("requests", &self.requests())
            .field("blocks_served", &self.blocks_served())
            .field("bytes_served", &self.bytes_served())
            .field("not_found", &self.not_found())
            .field("refused", &self.refused())
            .finish()
    }
}

/// Serves blocks of `store` to every peer: [`serve_with`] with an `allow` that allows all.
pub fn serve(
    control: mcc_streams::Control,
    store: Arc<dyn BlockStore>,
    stats: ServeStats,
) -> impl Future<Output = Result<(), ServeError>> + Send + 'static {
    serve_with(control, store, stats, |_: &PeerId| true)
}

/// Serves blocks: accepts inbound streams on [`PROTOCOL_NAME`] and answers their GetBlock
/// requests from `store`, each stream in its own tokio task.
///
/// Blocks are read with `store.get` on a blocking thread, a few requests ahead of the answer
/// being written (pipelined requests are answered in order). `allow` is asked once per stream;
/// the requests of a peer it refuses are answered "refused".
///
/// A malformed request ends its stream once the requests before it are answered; so does a
/// stream idle for [`IDLE_TIMEOUT`](super::IDLE_TIMEOUT). A peer that takes longer than a minute
/// to take an answer loses its stream at once. A block the store cannot read
/// (or one larger than [`MAX_BLOCK_SIZE`]) is answered "not found".
///
/// Quotas keep one peer from starving the others: at most 256 streams are served at once, at
/// most 8 of them from one peer, and the blocks read ahead of their answers take places among
/// 128 in memory, at most 16 per peer (so a peer that requests blocks and never reads the
/// answers holds 16 places, not all). A stream over a quota gets a busy answer.
///
/// The protocol is registered when `serve_with` is *called*, so streams opened right after
/// `tokio::spawn(serve(..))` are not refused as unsupported. The future fails at once with
/// [`ServeError::AlreadyRegistered`] when the protocol is already accepted on this behaviour.
/// It runs until the behaviour behind `control` is gone; when it returns or is dropped, the
/// streams it serves are dropped and the protocol is unregistered.
pub fn serve_with<A>(
    mut control: mcc_streams::Control,
    store: Arc<dyn BlockStore>,
    stats: ServeStats,
    allow: A,
) -> impl Future<Output = Result<(), ServeError>> + Send + 'static
where
    A: Fn(&PeerId) -> bool + Send + Sync + 'static,
{
    let incoming = control.accept(PROTOCOL_NAME);
    // Holding a control keeps the behaviour's shared state, and so `incoming`, alive.
    drop(control);
    async move {
        let incoming = incoming.map_err(|_| ServeError::AlreadyRegistered)?;
        accept_loop(incoming, store, stats, allow).await;
        Ok(())
    }
}

/// Holds one place in a counter for as long as it lives.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Slot(counter.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What every stream task shares.
struct Shared {
    store: Arc<dyn BlockStore>,
    stats: ServeStats,
    buffered: Arc<Semaphore>,
    peers: Mutex<HashMap<PeerId, PeerQuota>>,
}

/// What the streams of one peer use.
struct PeerQuota {
    streams: usize,
    /// [`MAX_BUFFERED_PER_PEER`] permits.
    buffered: Arc<Semaphore>,
}

/// One stream of a peer, counted in its [`PeerQuota`] for as long as it lives.
struct PeerSlot {
    shared: Arc<Shared>,
    peer: PeerId,
    buffered: Arc<Semaphore>,
}

impl PeerSlot {
    /// A place for a new stream of `peer`, unless it has [`MAX_STREAMS_PER_PEER`] already.
    fn take(shared: &Arc<Shared>, peer: PeerId) -> Option<Self> {
        let mut peers = shared.peers.lock().unwrap_or_else(|e| e.into_inner());
        let quota = peers.entry(peer).or_insert_with(|| PeerQuota {
            streams: 0,
            buffered: Arc::new(Semaphore::new(MAX_BUFFERED_PER_PEER)),
        });
        if quota.streams >= MAX_STREAMS_PER_PEER {
            return None;
        }
        quota.streams += 1;
        Some(PeerSlot {
            shared: shared.clone(),
            peer,
            buffered: quota.buffered.clone(),
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut peers = self.shared.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(quota) = peers.get_mut(&self.peer) {
            quota.streams = quota.streams.saturating_sub(1);
            if quota.streams == 0 {
                peers.remove(&self.peer);
            }
        }
    }
}

async fn accept_loop<A>(
    mut incoming: mcc_streams::IncomingStreams,
    store: Arc<dyn BlockStore>,
    stats: ServeStats,
    allow: A,
) where
    A: Fn(&PeerId) -> bool + Send + Sync + 'static,
{
    let shared = Arc::new(Shared {
        store,
        stats,
        buffered: Arc::new(Semaphore::new(MAX_BUFFERED_BLOCKS)),
        peers: Mutex::new(HashMap::new()),
    });
    let serving = Arc::new(AtomicUsize::new(0));
    let busy = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            // Accept first: streams beyond mcc-streams' bounded queue and holding room are dropped.
            biased;
            next = incoming.next() => {
                let Some((peer, stream)) = next else { break };
                shared.stats.inner.streams.fetch_add(1, Ordering::Relaxed);
                let place = if serving.load(Ordering::Relaxed) < MAX_STREAMS {
                    PeerSlot::take(&shared, peer)
                } else {
                    None
                };
                if let Some(place) = place {
                    let slot = Slot::take(&serving);
                    let allowed = allow(&peer);
                    tasks.spawn(serve_stream(peer, stream, shared.clone(), allowed, (slot, place)));
                } else if busy.load(Ordering::Relaxed) < MAX_BUSY_RESPONDERS {
                    let slot = Slot::take(&busy);
                    tasks.spawn(refuse_busy(peer, stream, shared.clone(), slot));
                } else {
                    tracing::debug!(%peer, "too many blob streams, dropping one");
                }
            }
            Some(result) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = result
                    && e.is_panic()
                {
                    tracing::error!(error = %e, "blob stream task panicked");
                }
            }
        }
    }
    tracing::debug!(
        streams = tasks.len(),
        "blob streams ended, dropping those still open"
    );
}

/// An answer in the making, in request order.
enum Answer {
    /// The store is reading the block; the permits count it in [`MAX_BUFFERED_PER_PEER`] and
    /// [`MAX_BUFFERED_BLOCKS`].
    Block(
        Cid,
        JoinHandle<std::io::Result<Option<Vec<u8>>>>,
        (OwnedSemaphorePermit, OwnedSemaphorePermit),
    ),
    /// The peer may not fetch.
    Refused,
}

/// Serves the requests of one stream until it ends, breaks or idles out.
async fn serve_stream(
    peer: PeerId,
    stream: libp2p::Stream,
    shared: Arc<Shared>,
    allowed: bool,
    (_slot, place): (Slot, PeerSlot),
) {
    let own_buffered = place.buffered.clone();
    let (reader, mut writer) = tokio::io::split(stream.compat());
    let mut reader = BufReader::new(reader);
    let (answers, mut pending) = mpsc::channel::<Answer>(READ_AHEAD);

    let read_requests = {
        let shared = shared.clone();
        async move {
            loop {
                let cid = match tokio::time::timeout(IDLE_TIMEOUT, wire::read_request(&mut reader))
                    .await
                {
                    Ok(Ok(Some(cid))) => cid,
                    Ok(Ok(None)) => return Ok(()),
                    Ok(Err(RequestError::Bad(why))) => return Err(format!("bad request: {why}")),
                    Ok(Err(RequestError::Io(e))) => return Err(format!("cannot read: {e}")),
                    Err(_) => return Err("idle for too long".to_string()),
                };
                shared.stats.inner.requests.fetch_add(1, Ordering::Relaxed);
                let answer = if allowed {
                    // The peer's own quota first: a peer at its quota waits without taking
                    // places that other peers need.
                    let Ok(own) = own_buffered.clone().acquire_owned().await else {
                        return Err("shutting down".to_string());
                    };
                    let Ok(global) = shared.buffered.clone().acquire_owned().await else {
                        return Err("shutting down".to_string());
                    };
                    let permit = (own, global);
                    let store = shared.store.clone();
                    let read = tokio::task::spawn_blocking(move || store.get(&cid));
                    Answer::Block(cid, read, permit)
                } else {
                    Answer::Refused
                };
                if answers.send(answer).await.is_err() {
                    // The writer stopped: the stream is broken.
                    return Ok(());
                }
            }
        }
    };

    let write_answers = async move {
        while let Some(answer) = pending.recv().await {
            let written = tokio::time::timeout(WRITE_TIMEOUT, async {
                match answer {
                    Answer::Block(cid, read, _permit) => {
                        write_block(peer, &cid, read, &mut writer, &shared.stats).await
                    }
                    Answer::Refused => {
                        shared.stats.inner.refused.fetch_add(1, Ordering::Relaxed);
                        let message = b"not allowed to fetch from this peer";
                        wire::write_response(&mut writer, STATUS_REFUSED, message).await
                    }
                }?;
                writer.flush().await
            })
            .await;
            match written {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("cannot write: {e}")),
                Err(_) => return Err("timed out writing an answer".to_string()),
            }
        }
        // Every request is answered and the peer closed its side: close ours.
        writer.shutdown().await.map_err(|e| e.to_string())
    };

    tokio::pin!(write_answers);
    let outcome = tokio::select! {
        // Whatever ends the requests (the peer's end of stream, a malformed request, idling),
        // the requests before are still answered.
        read = read_requests => {
            let written = write_answers.await;
            read.and(written)
        }
        written = &mut write_answers => written,
    };
    match outcome {
        Ok(()) => tracing::trace!(%peer, "blob stream done"),
        Err(why) => tracing::debug!(%peer, why, "dropping blob stream"),
    }
}

/// Writes the answer for a block being read by `read`.
async fn write_block<W>(
    peer: PeerId,
    cid: &Cid,
    read: JoinHandle<std::io::Result<Option<Vec<u8>>>>,
    writer: &mut W,
    stats: &ServeStats,
) -> std::io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    let message: &[u8] = match read.await {
        Ok(Ok(Some(data))) if data.len() <= MAX_BLOCK_SIZE => {
            wire::write_response(writer, STATUS_OK, &data).await?;
            stats.inner.blocks.fetch_add(1, Ordering::Relaxed);
            stats
                .inner
                .bytes
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            return Ok(());
        }
        Ok(Ok(Some(data))) => {
            tracing::warn!(%peer, %cid, len = data.len(), "stored block too large to serve");
            b"block too large"
        }
        Ok(Ok(None)) => b"",
        Ok(Err(e)) => {
            tracing::warn!(%peer, %cid, error = %e, "cannot read block");
            b"cannot read the block"
        }
        Err(e) => {
            tracing::error!(%peer, %cid, error = %e, "block read task failed");
            b"cannot read the block"
        }
    };
    stats.inner.not_found.fetch_add(1, Ordering::Relaxed);
    wire::write_response(writer, STATUS_NOT_FOUND, message).await
}

/// Answers "busy" to the first request of a stream over [`MAX_STREAMS`], then closes it.
async fn refuse_busy(peer: PeerId, stream: libp2p::Stream, shared: Arc<Shared>, _slot: Slot) {
    let mut stream = stream.compat();
    let answer = async {
        if wire::read_request(&mut stream)
            .await
            .ok()
            .flatten()
            .is_none()
        {
            return Ok(());
        }
        shared.stats.inner.refused.fetch_add(1, Ordering::Relaxed);
        wire::write_response(&mut stream, STATUS_REFUSED, b"busy, try again later").await?;
        stream.shutdown().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, answer).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "cannot send busy answer"),
        Err(_) => tracing::debug!(%peer, "timed out sending busy answer"),
    }
}
