//! The connection handler: one long-lived outbound stream that writes the connection's send
//! queue, and the peer's inbound stream read frame by frame into the shared state.
//!
//! Both run as futures polled by this handler, in the connection's own task: the swarm's
//! event loop never sees message bytes.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{AsyncWriteExt, FutureExt, StreamExt};
use libp2p::PeerId;
use libp2p::core::upgrade::ReadyUpgrade;
use libp2p::swarm::handler::{
    ConnectionEvent, ConnectionHandler, ConnectionHandlerEvent, DialUpgradeError,
    FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{Stream, StreamProtocol, SubstreamProtocol};
use tokio::sync::mpsc;

use crate::PROTOCOL_NAME;
use crate::codec::{self, Read};
use crate::router::Shared;

/// Inbound streams read at once per connection; a peer needs one.
const MAX_INBOUND: usize = 2;
/// Bytes buffered by the writer before a flush.
const WRITE_BUFFER: usize = 64 * 1024;

enum Outbound {
    /// Not asked for yet.
    Idle(mpsc::Receiver<Bytes>),
    /// Asked for; the queue waits here.
    Requested(mpsc::Receiver<Bytes>),
    /// Writing the queue.
    Running(BoxFuture<'static, ()>),
    /// Failed or ended: nothing more is sent on this connection.
    Done,
}

pub struct Handler {
    peer: PeerId,
    shared: Arc<Shared>,
    outbound: Outbound,
    readers: FuturesUnordered<BoxFuture<'static, ()>>,
}

impl Handler {
    pub(crate) fn new(peer: PeerId, shared: Arc<Shared>, queue: mpsc::Receiver<Bytes>) -> Self {
        Self {
            peer,
            shared,
            outbound: Outbound::Idle(queue),
            readers: FuturesUnordered::new(),
        }
    }
}

async fn write_queue(peer: PeerId, mut stream: Stream, mut queue: mpsc::Receiver<Bytes>) {
    let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BUFFER);
    while let Some(frame) = queue.recv().await {
        buf.extend_from_slice(&frame);
        // Batch whatever else is queued already, up to the buffer size.
        while buf.len() < WRITE_BUFFER {
            match queue.try_recv() {
                Ok(frame) => buf.extend_from_slice(&frame),
                Err(_) => break,
            }
        }
        if let Err(e) = stream.write_all(&buf).await {
            tracing::debug!(%peer, "routes: writing failed: {e}");
            return;
        }
        if let Err(e) = stream.flush().await {
            tracing::debug!(%peer, "routes: flushing failed: {e}");
            return;
        }
        buf.clear();
    }
    let _ = stream.close().await;
}

async fn read_stream(peer: PeerId, stream: Stream, shared: Arc<Shared>) {
    let max_body = shared.config.max_message_size() + 1 + codec::MAX_ROUTE_LEN + 16;
    let mut reader = futures::io::BufReader::with_capacity(WRITE_BUFFER, stream);
    loop {
        match codec::read_frame(&mut reader, max_body).await {
            Ok(Read::Frame(Ok(frame))) => shared.on_frame(peer, frame),
            Ok(Read::Frame(Err(e))) => {
                tracing::debug!(%peer, "routes: frame skipped: {e}");
            }
            Ok(Read::End) => return,
            Err(e) => {
                tracing::debug!(%peer, "routes: stream dropped: {e}");
                return;
            }
        }
    }
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        SubstreamProtocol::new(ReadyUpgrade::new(PROTOCOL_NAME), ())
    }

    fn connection_keep_alive(&self) -> bool {
        self.shared.keep_alive(&self.peer)
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Infallible>> {
        match std::mem::replace(&mut self.outbound, Outbound::Done) {
            Outbound::Idle(queue) => {
                self.outbound = Outbound::Requested(queue);
                return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                    protocol: SubstreamProtocol::new(ReadyUpgrade::new(PROTOCOL_NAME), ()),
                });
            }
            Outbound::Running(mut writer) => {
                if writer.poll_unpin(cx).is_pending() {
                    self.outbound = Outbound::Running(writer);
                }
            }
            other => self.outbound = other,
        }
        while let Poll::Ready(Some(())) = self.readers.poll_next_unpin(cx) {}
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, event: Infallible) {
        match event {}
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol, (), ()>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: mut stream,
                ..
            }) => {
                if self.readers.len() >= MAX_INBOUND {
                    tracing::debug!(peer = %self.peer, "routes: too many inbound streams");
                    return;
                }
                stream.ignore_for_keep_alive();
                self.readers
                    .push(read_stream(self.peer, stream, Arc::clone(&self.shared)).boxed());
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: mut stream,
                ..
            }) => {
                if let Outbound::Requested(queue) =
                    std::mem::replace(&mut self.outbound, Outbound::Done)
                {
                    stream.ignore_for_keep_alive();
                    self.outbound =
                        Outbound::Running(write_queue(self.peer, stream, queue).boxed());
                }
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { error, .. }) => {
                tracing::debug!(peer = %self.peer, "routes: no stream to the peer: {error}");
                self.outbound = Outbound::Done;
            }
            _ => {}
        }
    }
}
