//! The providing side: [`serve`], [`Resolver`], [`ServerConfig`] and [`Stats`].

use std::{
    fmt, io,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::StreamExt as _;
use libp2p::PeerId;
use tokio::{io::AsyncWriteExt as _, net::TcpStream, task::JoinSet};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt as _};

use crate::{
    PROTOCOL_NAME, Refusal, ServeError,
    pipe::{Counted, pipe},
    wire::{self, RequestError},
};

/// How many streams beyond [`ServerConfig::max_concurrent`] may wait for their
/// [`Refusal::Busy`] answer at the same time; further streams are dropped without an answer.
const MAX_BUSY_RESPONDERS: usize = 64;

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

/// Limits of [`serve`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How long a peer may take to send its request, and to take the answer (default 10 s).
    pub handshake_timeout: Duration,
    /// How long connecting to the local service may take (default 10 s); beyond, the peer gets
    /// [`Refusal::Unreachable`].
    pub connect_timeout: Duration,
    /// How many tunnels (in handshake or open) may exist at once (default 1024); further
    /// streams get [`Refusal::Busy`].
    pub max_concurrent: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            max_concurrent: 1024,
        }
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

/// Holds one place in a counter of tasks for as long as it lives.
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
/// answers ok or a [`Refusal`] and then pipes bytes both ways until both directions are closed.
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
    mut control: libp2p_stream::Control,
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
    mut incoming: libp2p_stream::IncomingStreams,
    resolver: Arc<dyn Resolver>,
    config: ServerConfig,
    stats: Stats,
) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let busy = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            // Accept first: libp2p-stream drops inbound streams when we are slow to take them.
            biased;
            next = incoming.next() => {
                let Some((peer, stream)) = next else { break };
                let stream = stream.compat();
                if in_flight.load(Ordering::Relaxed) < config.max_concurrent {
                    let slot = Slot::take(&in_flight);
                    tasks.spawn(serve_stream(
                        peer,
                        stream,
                        resolver.clone(),
                        config.clone(),
                        stats.clone(),
                        slot,
                    ));
                } else if busy.load(Ordering::Relaxed) < MAX_BUSY_RESPONDERS {
                    let slot = Slot::take(&busy);
                    tasks.spawn(refuse_busy(peer, stream, config.clone(), stats.clone(), slot));
                } else {
                    tracing::debug!(%peer, "too many forward streams, dropping one");
                    stats.inner.refused.fetch_add(1, Ordering::Relaxed);
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
    match pipe(counted, tcp).await {
        Ok((received, sent)) => {
            tracing::debug!(%peer, service, received, sent, "forward tunnel closed");
        }
        Err(e) => {
            tracing::debug!(%peer, service, error = %e, "forward tunnel failed");
        }
    }
}

/// Answers [`Refusal::Busy`] to a stream over the concurrency limit (after reading its request,
/// so that the peer reads a clean answer).
async fn refuse_busy(
    peer: PeerId,
    mut stream: PeerStream,
    config: ServerConfig,
    stats: Stats,
    _slot: Slot,
) {
    if read_request(peer, &mut stream, &config, &stats)
        .await
        .is_some()
    {
        let message = "too many tunnels, try again later";
        refuse(peer, stream, Refusal::Busy, message, &config, &stats).await;
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
