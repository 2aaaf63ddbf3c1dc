//! The providing side: [`serve`], [`Resolver`], [`ServerConfig`] and [`Stats`].

use std::{
    collections::HashMap,
    fmt, io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::StreamExt as _;
use libp2p::PeerId;
use tokio::{io::AsyncWriteExt as _, net::TcpStream, task::JoinSet};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt as _};

use crate::{
    PROTOCOL_NAME, Refusal, ServeError,
    pipe::{Counted, pipe_with_idle_timeout},
    wire::{self, RequestError},
};

/// How many streams beyond the limits may wait for their [`Refusal::Busy`] answer at the same
/// time; further streams are dropped without an answer.
const MAX_BUSY_RESPONDERS: usize = 64;

/// How many of the [`MAX_BUSY_RESPONDERS`] one peer may hold, so that a peer flooding the
/// provider with streams cannot keep the others from hearing why they are refused.
const MAX_BUSY_RESPONDERS_PER_PEER: usize = 8;

/// Default of [`ServerConfig::max_concurrent`].
pub const DEFAULT_MAX_CONCURRENT: usize = 1024;

/// Default of [`ServerConfig::max_per_peer`].
pub const DEFAULT_MAX_PER_PEER: usize = 128;

/// Default of [`ServerConfig::idle_timeout`]: 10 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Maps a requested service name to the local address that provides it.
pub trait Resolver: Send + Sync + 'static {
    /// `Ok("host:port")` when the service exists and `peer` may use it, `Err` otherwise
    /// (usually [`Refusal::UnknownService`] or [`Refusal::Forbidden`]; the refusal is sent to
    /// the peer as is).
    fn resolve(&self, peer: &PeerId, service: &str) -> Result<String, Refusal>;
}

impl<F> Resolver for F
where
    F: Fn(&PeerId, &str) -> Result<String, Refusal> + Send + Sync + 'static,
{
    fn resolve(&self, peer: &PeerId, service: &str) -> Result<String, Refusal> {
        self(peer, service)
    }
}

/// Limits of [`serve`]: built with [`ServerConfig::new`] and the `with_*` methods, read with
/// the getters of the same names.
///
/// ```
/// use std::time::Duration;
/// let config = mcc_forward::ServerConfig::new()
///     .with_max_concurrent(256)
///     .with_max_per_peer(16)
///     .with_idle_timeout(Some(Duration::from_secs(60)));
/// assert_eq!(config.max_per_peer(), 16);
/// ```
#[derive(Debug, Clone)]
pub struct ServerConfig {
    handshake_timeout: Duration,
    connect_timeout: Duration,
    max_concurrent: usize,
    max_per_peer: usize,
    idle_timeout: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerConfig {
    /// The defaults: 10 s for the handshake and for connecting to the local service,
    /// [`DEFAULT_MAX_CONCURRENT`] tunnels in all and [`DEFAULT_MAX_PER_PEER`] per peer, idle
    /// tunnels closed after [`DEFAULT_IDLE_TIMEOUT`].
    pub fn new() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_per_peer: DEFAULT_MAX_PER_PEER,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
        }
    }

    /// Sets [`ServerConfig::handshake_timeout`].
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets [`ServerConfig::connect_timeout`].
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`ServerConfig::max_concurrent`], the limit of tunnels of all peers together.
    pub fn with_max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n;
        self
    }

    /// Sets [`ServerConfig::max_per_peer`], the limit of tunnels of one peer.
    pub fn with_max_per_peer(mut self, n: usize) -> Self {
        self.max_per_peer = n;
        self
    }

    /// Sets [`ServerConfig::idle_timeout`] (`None`: idle tunnels stay open).
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long a peer may take to send its request, and to take the answer.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// How long connecting to the local service may take; beyond, the peer gets
    /// [`Refusal::Unreachable`].
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// How many tunnels (in handshake or open) may exist at once, all peers together; further
    /// streams get [`Refusal::Busy`].
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// How many tunnels (in handshake or open) one peer may have at once; its further streams
    /// get [`Refusal::Busy`] even while the global limit is not reached, so one peer cannot
    /// take every place.
    pub fn max_per_peer(&self) -> usize {
        self.max_per_peer
    }

    /// An open tunnel through which no byte passed, in either direction, for this long is
    /// closed at both ends: the stream to the peer and the connection to the local service
    /// (`None` keeps idle tunnels open).
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }
}

/// Counters of [`serve`], for metrics. Cloning shares the counters.
#[derive(Clone, Default)]
pub struct Stats {
    inner: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    opened: AtomicU64,
    refused: AtomicU64,
    active: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Stats {
    /// Tunnels opened since the start (an ok answer was sent).
    pub fn tunnels_opened(&self) -> u64 {
        self.inner.opened.load(Ordering::Relaxed)
    }

    /// Streams refused since the start (answered with a [`Refusal`], or dropped because too
    /// many were waiting for a [`Refusal::Busy`] answer).
    pub fn tunnels_refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// Tunnels open right now.
    pub fn active(&self) -> u64 {
        self.inner.active.load(Ordering::Relaxed)
    }

    /// Bytes received from peers (and written to local services), counted as they pass.
    pub fn bytes_in(&self) -> u64 {
        self.inner.bytes_in.load(Ordering::Relaxed)
    }

    /// Bytes sent to peers (read from local services), counted as they pass.
    pub fn bytes_out(&self) -> u64 {
        self.inner.bytes_out.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stats")
            .field("tunnels_opened", &self.tunnels_opened())
            .field("tunnels_refused", &self.tunnels_refused())
            .field("active", &self.active())
            .field("bytes_in", &self.bytes_in())
            .field("bytes_out", &self.bytes_out())
            .finish()
    }
}

/// Places for tasks, limited in total and per peer.
struct Quota {
    max_total: usize,
    max_per_peer: usize,
    state: Mutex<Taken>,
}

#[derive(Default)]
struct Taken {
    total: usize,
    per_peer: HashMap<PeerId, usize>,
}

/// Why [`Quota::take`] gave no place.
enum Full {
    /// The peer holds its `max_per_peer` places already.
    Peer { held: usize },
    /// All peers together hold `max_total` places.
    Total { held: usize },
}

impl Quota {
    fn new(max_total: usize, max_per_peer: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_peer,
            state: Mutex::new(Taken::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Taken> {
        // The counters stay consistent even if a holder panicked (no code panics inside).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a place for `peer`: refused when the peer holds its share already, or when all
    /// places are taken.
    fn take(self: &Arc<Self>, peer: PeerId) -> Result<Slot, Full> {
        let mut taken = self.lock();
        let held = taken.per_peer.get(&peer).copied().unwrap_or(0);
        if held >= self.max_per_peer {
            return Err(Full::Peer { held });
        }
        if taken.total >= self.max_total {
            return Err(Full::Total { held: taken.total });
        }
        taken.total += 1;
        taken.per_peer.insert(peer, held + 1);
        Ok(Slot {
            quota: Arc::clone(self),
            peer,
        })
    }
}

/// Holds one place of a [`Quota`] for as long as it lives.
struct Slot {
    quota: Arc<Quota>,
    peer: PeerId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut taken = self.quota.lock();
        taken.total = taken.total.saturating_sub(1);
        if let Some(held) = taken.per_peer.get_mut(&self.peer) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                taken.per_peer.remove(&self.peer);
            }
        }
    }
}

/// Counts one open tunnel in [`Stats::active`] for as long as it lives.
struct Active<'a>(&'a Stats);

impl<'a> Active<'a> {
    fn new(stats: &'a Stats) -> Self {
        stats.inner.opened.fetch_add(1, Ordering::Relaxed);
        stats.inner.active.fetch_add(1, Ordering::Relaxed);
        Active(stats)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.inner.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves tunnels: accepts inbound streams on [`PROTOCOL_NAME`] and serves each in its own tokio
/// task.
///
/// Each task reads the request (under [`ServerConfig::handshake_timeout`]), asks `resolver`,
/// connects to the local address (under [`ServerConfig::connect_timeout`], with `TCP_NODELAY`),
/// answers ok or a [`Refusal`] and then pipes bytes both ways until both directions are closed,
/// or until nothing passed for [`ServerConfig::idle_timeout`].
///
/// A stream beyond [`ServerConfig::max_per_peer`] tunnels of its peer, or beyond
/// [`ServerConfig::max_concurrent`] tunnels in all, is answered [`Refusal::Busy`] with a message
/// naming the limit.
///
/// The protocol is registered when `serve` is *called*, not when the returned future is first
/// polled, so streams opened right after `tokio::spawn(serve(..))` are not refused as
/// unsupported. The future fails at once with [`ServeError::AlreadyRegistered`] when the protocol
/// is already accepted on this behaviour.
///
/// Runs until the behaviour behind `control` is gone (the accepted streams end). The tunnel
/// tasks belong to the returned future: when it returns or is dropped, tunnels still open are
/// aborted and the protocol is unregistered.
pub fn serve(
    mut control: mcc_streams::Control,
    resolver: Arc<dyn Resolver>,
    config: ServerConfig,
    stats: Stats,
) -> impl Future<Output = Result<(), ServeError>> + Send + 'static {
    let incoming = control.accept(PROTOCOL_NAME);
    // Holding a control keeps the behaviour's shared state, and so `incoming`, alive.
    drop(control);
    async move {
        let incoming = incoming.map_err(|_| ServeError::AlreadyRegistered)?;
        accept_loop(incoming, resolver, config, stats).await;
        Ok(())
    }
}

/// Serves the accepted streams until they end.
async fn accept_loop(
    mut incoming: mcc_streams::IncomingStreams,
    resolver: Arc<dyn Resolver>,
    config: ServerConfig,
    stats: Stats,
) {
    let tunnels = Quota::new(config.max_concurrent, config.max_per_peer);
    let busy = Quota::new(MAX_BUSY_RESPONDERS, MAX_BUSY_RESPONDERS_PER_PEER);
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            // Accept first: streams beyond mcc-streams' bounded queue and holding room are dropped.
            biased;
            next = incoming.next() => {
                let Some((peer, stream)) = next else { break };
                let stream = stream.compat();
                let full = match tunnels.take(peer) {
                    Ok(slot) => {
                        tasks.spawn(serve_stream(
                            peer,
                            stream,
                            resolver.clone(),
                            config.clone(),
                            stats.clone(),
                            slot,
                        ));
                        continue;
                    }
                    Err(full) => full,
                };
                let message = match full {
                    Full::Peer { held } => format!(
                        "this peer already has {held} tunnels open (at most {} per peer)",
                        config.max_per_peer
                    ),
                    Full::Total { held } => format!(
                        "too many tunnels ({held} open, at most {}), try again later",
                        config.max_concurrent
                    ),
                };
                match busy.take(peer) {
                    Ok(slot) => {
                        tasks.spawn(refuse_busy(
                            peer,
                            stream,
                            message,
                            config.clone(),
                            stats.clone(),
                            slot,
                        ));
                    }
                    Err(_) => {
                        tracing::debug!(%peer, message, "too many forward streams, dropping one");
                        stats.inner.refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Some(result) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = result
                    && e.is_panic()
                {
                    tracing::error!(error = %e, "forward tunnel task panicked");
                }
            }
        }
    }
    tracing::debug!(
        tunnels = tasks.len(),
        "forward streams ended, aborting the remaining tunnels"
    );
}

type PeerStream = Compat<libp2p::Stream>;

/// Serves one stream from request to the end of the tunnel.
async fn serve_stream(
    peer: PeerId,
    mut stream: PeerStream,
    resolver: Arc<dyn Resolver>,
    config: ServerConfig,
    stats: Stats,
    _slot: Slot,
) {
    let Some(service) = read_request(peer, &mut stream, &config, &stats).await else {
        return;
    };

    let addr = match resolver.resolve(&peer, &service) {
        Ok(addr) => addr,
        Err(refusal) => {
            let message = match refusal {
                Refusal::UnknownService => format!("no service named {service:?}"),
                Refusal::Forbidden => format!(
                    "access to {service:?} is not allowed (the services:consume permission is required)"
                ),
                other => format!("{other}"),
            };
            refuse(peer, stream, refusal, &message, &config, &stats).await;
            return;
        }
    };

    let tcp = match tokio::time::timeout(config.connect_timeout, TcpStream::connect(&*addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            let refusal = if e.kind() == io::ErrorKind::ConnectionRefused {
                Refusal::Refused
            } else {
                Refusal::Unreachable
            };
            tracing::debug!(%peer, service, addr, error = %e, "cannot connect to local service");
            let message = format!("cannot connect to {service:?}: {e}");
            refuse(peer, stream, refusal, &message, &config, &stats).await;
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, service, addr, "timed out connecting to local service");
            let message = format!("timed out connecting to {service:?}");
            refuse(
                peer,
                stream,
                Refusal::Unreachable,
                &message,
                &config,
                &stats,
            )
            .await;
            return;
        }
    };
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }

    match tokio::time::timeout(
        config.handshake_timeout,
        wire::write_answer(&mut stream, None, ""),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::debug!(%peer, service, error = %e, "cannot answer forward request");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, service, "timed out answering forward request");
            return;
        }
    }

    let _active = Active::new(&stats);
    tracing::debug!(%peer, service, "forward tunnel open");
    let counted = Counted {
        inner: stream,
        read: &stats.inner.bytes_in,
        written: &stats.inner.bytes_out,
    };
    match pipe_with_idle_timeout(counted, tcp, config.idle_timeout).await {
        Ok((received, sent)) => {
            tracing::debug!(%peer, service, received, sent, "forward tunnel closed");
        }
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
            tracing::debug!(%peer, service, error = %e, "idle forward tunnel closed");
        }
        Err(e) => {
            tracing::debug!(%peer, service, error = %e, "forward tunnel failed");
        }
    }
}

/// Answers [`Refusal::Busy`] with `message` to a stream over a limit (after reading its request,
/// so that the peer reads a clean answer).
async fn refuse_busy(
    peer: PeerId,
    mut stream: PeerStream,
    message: String,
    config: ServerConfig,
    stats: Stats,
    _slot: Slot,
) {
    if read_request(peer, &mut stream, &config, &stats)
        .await
        .is_some()
    {
        refuse(peer, stream, Refusal::Busy, &message, &config, &stats).await;
    }
}

/// Reads the request under the handshake timeout. Answers [`Refusal::BadRequest`] to a malformed
/// one; returns the service name of a good one.
async fn read_request(
    peer: PeerId,
    stream: &mut PeerStream,
    config: &ServerConfig,
    stats: &Stats,
) -> Option<String> {
    match tokio::time::timeout(config.handshake_timeout, wire::read_request(stream)).await {
        Ok(Ok(service)) => Some(service),
        Ok(Err(RequestError::Bad(message))) => {
            tracing::debug!(%peer, message, "bad forward request");
            refuse(peer, stream, Refusal::BadRequest, &message, config, stats).await;
            None
        }
        Ok(Err(RequestError::Io(e))) => {
            tracing::debug!(%peer, error = %e, "cannot read forward request");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "timed out waiting for forward request");
            None
        }
    }
}

/// Sends a refusal and closes the stream (best effort, under the handshake timeout).
async fn refuse<S>(
    peer: PeerId,
    mut stream: S,
    refusal: Refusal,
    message: &str,
    config: &ServerConfig,
    stats: &Stats,
) where
    S: tokio::io::AsyncWrite + Unpin,
{
    stats.inner.refused.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%peer, %refusal, message, "refusing forward tunnel");
    let answer = async {
        wire::write_answer(&mut stream, Some(refusal), message).await?;
        stream.shutdown().await
    };
    match tokio::time::timeout(config.handshake_timeout, answer).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "cannot send refusal"),
        Err(_) => tracing::debug!(%peer, "timed out sending refusal"),
    }
}
