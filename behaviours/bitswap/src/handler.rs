//! The connection handler: reads every inbound stream until its end (a peer may send many
//! messages on one stream, or one stream per message), writes our messages on one outbound
//! stream of its own (opened at the first message, reopened after a failure), and runs the
//! server side of the connection. All of it is futures polled by this handler, in the
//! connection's task: block bytes never pass through the swarm's event loop.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{AsyncWriteExt, FutureExt, StreamExt};
use libp2p::PeerId;
use libp2p::core::upgrade::{InboundUpgrade, OutboundUpgrade, UpgradeInfo};
use libp2p::swarm::handler::{
    ConnectionEvent, ConnectionHandler, ConnectionHandlerEvent, DialUpgradeError,
    FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{Stream, StreamProtocol, SubstreamProtocol};
use prost::Message as _;
use tokio::sync::mpsc;

use crate::codec::{self, Message};
use crate::error::StreamError;
use crate::server;
use crate::shared::{Event, Shared};
use crate::{PROTOCOL_1_0_0, PROTOCOLS};

/// Inbound streams read at once per connection (kubo keeps one, Helia opens one per message
/// and closes it).
const MAX_INBOUND: usize = 32;
/// Bytes buffered by a reader.
const READ_BUFFER: usize = 64 * 1024;
/// Outbound streams that may fail in a row before the connection stops sending.
const MAX_OUTBOUND_FAILURES: u32 = 3;

/// The Bitswap protocols, in order of preference; the negotiated one comes with the stream.
#[derive(Debug, Clone)]
pub struct Upgrade;

impl UpgradeInfo for Upgrade {
    type Info = StreamProtocol;
    type InfoIter = std::array::IntoIter<StreamProtocol, 3>;

    fn protocol_info(&self) -> Self::InfoIter {
        PROTOCOLS.into_iter()
    }
}

impl InboundUpgrade<Stream> for Upgrade {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = futures::future::Ready<Result<Self::Output, Infallible>>;

    fn upgrade_inbound(self, stream: Stream, info: StreamProtocol) -> Self::Future {
        futures::future::ready(Ok((stream, info)))
    }
}

impl OutboundUpgrade<Stream> for Upgrade {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = futures::future::Ready<Result<Self::Output, Infallible>>;

    fn upgrade_outbound(self, stream: Stream, info: StreamProtocol) -> Self::Future {
        futures::future::ready(Ok((stream, info)))
    }
}

enum Outbound {
    /// Waiting for a first message to send.
    Idle(mpsc::Receiver<Message>),
    /// A stream is asked for; the first message waits with the queue.
    Requested(mpsc::Receiver<Message>, Message),
    /// Writing the queue; on failure the future gives the queue back.
    Running(BoxFuture<'static, Option<mpsc::Receiver<Message>>>),
    /// Nothing more is sent on this connection.
    Done,
}

pub struct Handler {
    peer: PeerId,
    shared: Arc<Shared>,
    outbound: Outbound,
    failures: u32,
    wants: Arc<server::Queue>,
    tasks: FuturesUnordered<BoxFuture<'static, ()>>,
    readers: usize,
}

impl Handler {
    pub(crate) fn new(
        peer: PeerId,
        shared: Arc<Shared>,
        tx: mpsc::Sender<Message>,
        rx: mpsc::Receiver<Message>,
    ) -> Self {
        let wants = server::Queue::new(shared.config.max_inbound_wants());
        let tasks = FuturesUnordered::new();
        tasks.push(server::serve(peer, Arc::clone(&shared), Arc::clone(&wants), tx).boxed());
        Self {
            peer,
            shared,
            outbound: Outbound::Idle(rx),
            failures: 0,
            wants,
            tasks,
            readers: 0,
        }
    }
}

/// Wantlist entries merged into one message at most.
const MAX_MERGED_ENTRIES: usize = 1024;

/// Bytes gathered before a write to the stream. yamux sends each write as data frames of its
/// own and the receiver answers every frame with a window update, so the small parts of a
/// message (its length prefix, each block's prefix) and the tail of a block go out with the
/// bytes after them instead of in frames of a few bytes. About 64 KiB (one Noise message's
/// payload); yamux still cuts each write into its 16 KiB data frames.
const WRITE_CHUNK: usize = 65_535 - 16 - 12;

/// Whether `message` carries only wantlist entries (no blocks, no presences).
fn only_wants(message: &Message) -> bool {
    message.payload.is_empty()
        && message.blocks.is_empty()
        && message.block_presences.is_empty()
        && message.wantlist.as_ref().is_some_and(|w| !w.full)
}

/// Whether `message` carries only answers (blocks, presences) and no wants.
fn only_answers(message: &Message) -> bool {
    message
        .wantlist
        .as_ref()
        .is_none_or(|w| w.entries.is_empty() && !w.full)
        && message.pending_bytes == 0
        && !(message.payload.is_empty()
            && message.blocks.is_empty()
            && message.block_presences.is_empty())
}

/// Merges the messages queued behind `first` that are of its kind into it, as they are
/// already there (it never waits): wantlist-only messages up to [`MAX_MERGED_ENTRIES`]
/// entries (a server such as Helia answers each message with every block still wanted: one
/// message per batch of wants keeps it from sending blocks twice), answers (blocks and
/// presences) up to `max_size` bytes of message. Returns the first queued message that was
/// not merged.
fn merge_queued(
    first: &mut Message,
    rx: &mut mpsc::Receiver<Message>,
    max_size: usize,
) -> Option<Message> {
    if only_wants(first) {
        loop {
            let entries = first.wantlist.as_ref().map_or(0, |w| w.entries.len());
            if entries >= MAX_MERGED_ENTRIES {
                return None;
            }
            let next = rx.try_recv().ok()?;
            if !only_wants(&next) {
                return Some(next);
            }
            if let (Some(into), Some(from)) = (first.wantlist.as_mut(), next.wantlist) {
                into.entries.extend(from.entries);
            }
        }
    }
    if only_answers(first) {
        // Fewer, larger messages: js peers (Helia) spend time on each message they read.
        let mut size = first.encoded_len();
        loop {
            let next = rx.try_recv().ok()?;
            // The sum bounds the merged size from above.
            let next_size = next.encoded_len();
            if !only_answers(&next) || size + next_size > max_size {
                return Some(next);
            }
            size += next_size;
            first.payload.extend(next.payload);
            first.blocks.extend(next.blocks);
            first.block_presences.extend(next.block_presences);
        }
    }
    None
}

/// Bitswap 1.0.0 knows only bare blocks (CIDv0 implied) and no presences.
fn for_1_0_0(mut message: Message) -> Message {
    message.blocks = message.payload.drain(..).map(|b| b.data).collect();
    message.block_presences.clear();
    message
}

/// Writes the parts of one frame ([`codec::encode_parts`]): parts smaller than
/// [`WRITE_CHUNK`] are gathered (with the start of the next large part) into one write; the
/// rest of a large part is written as it is, without a copy.
async fn write_parts<W: futures::AsyncWrite + Unpin>(
    stream: &mut W,
    parts: Vec<Bytes>,
) -> std::io::Result<()> {
    let mut gathered = BytesMut::new();
    for part in parts {
        if gathered.len() + part.len() <= WRITE_CHUNK {
            gathered.put_slice(&part);
            continue;
        }
        let mut rest = part;
        if !gathered.is_empty() {
            let take = WRITE_CHUNK - gathered.len();
            gathered.put_slice(&rest.split_to(take));
            stream.write_all(&gathered).await?;
            gathered.clear();
        }
        // The tail joins what follows (one data frame instead of two).
        let tail = rest.len() % WRITE_CHUNK;
        let tail = rest.split_off(rest.len() - tail);
        if !rest.is_empty() {
            stream.write_all(&rest).await?;
        }
        gathered.put_slice(&tail);
    }
    if !gathered.is_empty() {
        stream.write_all(&gathered).await?;
    }
    Ok(())
}

async fn write_queue(
    peer: PeerId,
    mut stream: Stream,
    protocol: StreamProtocol,
    first: Message,
    mut rx: mpsc::Receiver<Message>,
    max_size: usize,
) -> Option<mpsc::Receiver<Message>> {
    let old = protocol == PROTOCOL_1_0_0;
    let mut next = Some(first);
    loop {
        let mut message = match next.take() {
            Some(m) => m,
            None => match rx.recv().await {
                Some(m) => m,
                None => break,
            },
        };
        let after = merge_queued(&mut message, &mut rx, max_size);
        let message = if old { for_1_0_0(message) } else { message };
        let parts = codec::encode_parts(&message);
        drop(message);
        if let Err(e) = write_parts(&mut stream, parts).await {
            tracing::debug!(%peer, "bitswap: writing failed: {e}");
            return Some(rx);
        }
        // Flush once the queue is drained: messages queued together go out together.
        match after.map_or_else(|| rx.try_recv(), Ok) {
            Ok(m) => next = Some(m),
            Err(_) => {
                if let Err(e) = stream.flush().await {
                    tracing::debug!(%peer, "bitswap: flushing failed: {e}");
                    return Some(rx);
                }
            }
        }
    }
    let _ = stream.close().await;
    None
}

async fn read_stream(peer: PeerId, stream: Stream, shared: Arc<Shared>, wants: Arc<server::Queue>) {
    let max = shared.config.max_message_size();
    let mut reader = futures::io::BufReader::with_capacity(READ_BUFFER, stream);
    loop {
        let error: StreamError = match codec::read_frame(&mut reader, max).await {
            Ok(Some(body)) => match codec::decode_bytes(body) {
                Ok(message) => {
                    shared.on_message(peer, &message);
                    if let Some(list) = &message.wantlist {
                        let dropped = wants.apply(list);
                        if dropped > 0 {
                            tracing::debug!(%peer, dropped, "bitswap: wants dropped");
                        }
                    }
                    continue;
                }
                Err(e) => e.into(),
            },
            Ok(None) => return,
            Err(e) => e.into(),
        };
        tracing::debug!(%peer, "bitswap: inbound stream dropped: {error}");
        shared.push_event(Event::StreamDropped { peer, error });
        return;
    }
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = Upgrade;
    type OutboundProtocol = Upgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Upgrade, ()> {
        SubstreamProtocol::new(Upgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        self.shared.has_wants(&self.peer) || !self.wants.is_empty()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Upgrade, (), Infallible>> {
        loop {
            match std::mem::replace(&mut self.outbound, Outbound::Done) {
                Outbound::Idle(mut rx) => match rx.poll_recv(cx) {
                    Poll::Ready(Some(first)) => {
                        self.outbound = Outbound::Requested(rx, first);
                        return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                            protocol: SubstreamProtocol::new(Upgrade, ()),
                        });
                    }
                    Poll::Ready(None) => {}
                    Poll::Pending => self.outbound = Outbound::Idle(rx),
                },
                Outbound::Running(mut writer) => match writer.poll_unpin(cx) {
                    Poll::Pending => self.outbound = Outbound::Running(writer),
                    Poll::Ready(Some(rx)) => {
                        self.failures += 1;
                        if self.failures < MAX_OUTBOUND_FAILURES {
                            self.outbound = Outbound::Idle(rx);
                            continue;
                        }
                    }
                    Poll::Ready(None) => {}
                },
                other => self.outbound = other,
            }
            break;
        }
        while let Poll::Ready(Some(())) = self.tasks.poll_next_unpin(cx) {
            self.readers = self.tasks.len().saturating_sub(1);
        }
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, event: Infallible) {
        match event {}
    }

    fn on_connection_event(&mut self, event: ConnectionEvent<Upgrade, Upgrade, (), ()>) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: (mut stream, _protocol),
                ..
            }) => {
                self.readers = self.tasks.len().saturating_sub(1);
                if self.readers >= MAX_INBOUND {
                    tracing::debug!(peer = %self.peer, "bitswap: too many inbound streams");
                    return;
                }
                stream.ignore_for_keep_alive();
                self.tasks.push(
                    read_stream(
                        self.peer,
                        stream,
                        Arc::clone(&self.shared),
                        Arc::clone(&self.wants),
                    )
                    .boxed(),
                );
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: (mut stream, protocol),
                ..
            }) => {
                if let Outbound::Requested(rx, first) =
                    std::mem::replace(&mut self.outbound, Outbound::Done)
                {
                    self.failures = 0;
                    stream.ignore_for_keep_alive();
                    let max_size = codec::MAX_MESSAGE_SIZE;
                    self.outbound = Outbound::Running(
                        write_queue(self.peer, stream, protocol, first, rx, max_size).boxed(),
                    );
                }
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { error, .. }) => {
                tracing::debug!(peer = %self.peer, "bitswap: no stream to the peer: {error}");
                self.outbound = Outbound::Done;
                if matches!(error, libp2p::swarm::StreamUpgradeError::NegotiationFailed) {
                    self.shared.unsupported(self.peer);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;
    use crate::codec::{Block, BlockPresence, Wantlist};

    /// Keeps every write apart.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl futures::AsyncWrite for Writes {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.0.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn block(len: usize, fill: u8) -> Message {
        Message {
            wantlist: Some(Wantlist::default()),
            payload: vec![Block {
                prefix: Bytes::from_static(&[1, 0x55, 0x12, 0x20]),
                data: Bytes::from(vec![fill; len]),
            }],
            ..Message::default()
        }
    }

    #[tokio::test]
    async fn small_parts_go_out_with_the_bytes_after_them() {
        let mut message = block(1 << 20, 1);
        message.payload.extend(block(300_000, 2).payload);
        message.payload.extend(block(10, 3).payload);
        let mut writes = Writes::default();
        write_parts(&mut writes, codec::encode_parts(&message))
            .await
            .unwrap();
        assert_eq!(writes.0.concat(), codec::encode(&message).to_vec());
        // Every write but the last is a whole number of chunks.
        let (last, rest) = writes.0.split_last().unwrap();
        assert!(rest.iter().all(|w| w.len() % WRITE_CHUNK == 0), "{rest:?}");
        assert!(last.len() <= WRITE_CHUNK);
    }

    #[tokio::test]
    async fn queued_answers_merge_up_to_the_size_limit_and_wants_apart() {
        let (tx, mut rx) = mpsc::channel(8);
        let want = Message {
            wantlist: Some(Wantlist {
                entries: vec![crate::codec::Entry::default()],
                full: false,
            }),
            ..Message::default()
        };
        let presence = Message {
            wantlist: Some(Wantlist::default()),
            block_presences: vec![BlockPresence::default()],
            ..Message::default()
        };
        for message in [
            block(1000, 2),
            presence,
            block(1000, 3),
            block(2000, 4),
            want.clone(),
        ] {
            tx.try_send(message).unwrap();
        }
        let mut first = block(1000, 1);
        let after = merge_queued(&mut first, &mut rx, 4500).unwrap();
        // Three blocks and the presence fit; the fourth block would pass 4500 bytes.
        assert_eq!(first.payload.len(), 3);
        assert_eq!(first.block_presences.len(), 1);
        assert!(first.encoded_len() <= 4500);
        assert_eq!(after.payload[0].data.len(), 2000);
        // A want is never merged into answers, nor answers into wants.
        let mut answers = after;
        assert_eq!(
            merge_queued(&mut answers, &mut rx, 4500).as_ref(),
            Some(&want)
        );
        tx.try_send(block(10, 5)).unwrap();
        let mut wants = want;
        assert!(merge_queued(&mut wants, &mut rx, 4500).is_some_and(|m| m.payload.len() == 1));
    }
}
