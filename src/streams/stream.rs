//! [`Stream`], one user stream (tokio `AsyncRead + AsyncWrite`), and [`Listener`], the
//! incoming streams on one name.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::StreamExt;
use libp2p::PeerId;
use mcc_admission::{Gates, Permission};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

use crate::node::network::Network;

/// One byte stream to or from a peer, on the protocol `/mcc/stream/1.0.0/<name>`.
///
/// It is a libp2p stream on whatever connection the node has to the peer (direct, relayed or
/// hole-punched), read and written with tokio's `AsyncRead`/`AsyncWrite`. `shutdown()` closes
/// only the writing side: the peer reads to its end while it can still write back (a
/// half-close). Dropping the stream closes both sides.
#[derive(Debug)]
pub struct Stream {
    inner: Compat<libp2p::Stream>,
    peer: PeerId,
    name: Arc<str>,
}

impl Stream {
    pub(super) fn new(inner: libp2p::Stream, peer: PeerId, name: Arc<str>) -> Self {
        Self {
            inner: inner.compat(),
            peer,
            name,
        }
    }

    /// The peer at the other end.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// The stream's name (`chat` for `/mcc/stream/1.0.0/chat`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The libp2p stream inside (futures-io `AsyncRead + AsyncWrite`).
    pub fn into_inner(self) -> libp2p::Stream {
        self.inner.into_inner()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The incoming streams on one name: a `futures::Stream` of `(PeerId, Stream)`, also read
/// with [`Listener::accept`]. The name stays taken on this node until the listener is
/// dropped.
///
/// Streams from peers that may not open user streams (under `--trust-ca`: a certificate
/// without `services:consume`) are dropped without being yielded. While nobody polls the
/// listener, incoming streams wait in a bounded queue (see `mcc_streams::Config`); streams
/// beyond it are refused.
pub struct Listener {
    incoming: mcc_streams::IncomingStreams,
    gates: Gates,
    name: Arc<str>,
    /// Completes when the node's event loop has stopped: the listener then ends.
    stopped: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Listener {
    pub(super) fn new(
        incoming: mcc_streams::IncomingStreams,
        gates: Gates,
        name: &str,
        net: Network,
    ) -> Self {
        Self {
            incoming,
            gates,
            name: name.into(),
            stopped: Box::pin(async move { net.closed().await }),
        }
    }

    /// The name listened on.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next incoming stream; `None` once the node has stopped.
    pub async fn accept(&mut self) -> Option<(PeerId, Stream)> {
        self.next().await
    }
}

impl futures::Stream for Listener {
    type Item = (PeerId, Stream);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.stopped.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        loop {
            match self.incoming.poll_next_unpin(cx) {
                Poll::Ready(Some((peer, stream))) => {
                    if !self.gates.allows(&peer, Permission::ServicesConsume) {
                        tracing::debug!(%peer, name = %self.name, "stream refused: no services:consume");
                        continue;
                    }
                    let name = Arc::clone(&self.name);
                    return Poll::Ready(Some((peer, Stream::new(stream, peer, name))));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("name", &self.name)
            .finish()
    }
}
