//! [`Handler`]: one connection's streams. Inbound streams go to their protocol's acceptor
//! queue, or wait here while it is full; open requests arrive on a channel straight from the
//! [`Control`](crate::Control)s and become outbound substream requests, several at a time.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use libp2p::swarm::StreamUpgradeError;
use libp2p::swarm::handler::{
    ConnectionEvent, ConnectionHandler, ConnectionHandlerEvent, DialUpgradeError,
    FullyNegotiatedInbound, FullyNegotiatedOutbound, ProtocolsChange, SubstreamProtocol,
};
use libp2p::{PeerId, Stream, StreamProtocol};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use crate::error::OpenError;
use crate::shared::{Inbound, OpenRequest, Shared};
use crate::stats::Counters;
use crate::upgrade::{Outbound, Upgrade};

/// Protocols of the remote remembered per connection, at most.
const MAX_REMOTE_PROTOCOLS: usize = 256;

/// An inbound stream waiting for room in its acceptor's queue.
struct Held {
    queue: PollSender<Inbound>,
    stream: Stream,
    protocol: StreamProtocol,
    counters: Arc<Counters>,
}

pub struct Handler {
    remote: PeerId,
    shared: Arc<Mutex<Shared>>,
    /// Open requests from the controls; `None` once the behaviour stopped routing here.
    requests: Option<mpsc::Receiver<OpenRequest>>,
    /// Outbound streams being negotiated.
    opening: usize,
    max_opening: usize,
    max_held: usize,
    negotiation_timeout: std::time::Duration,
    held: VecDeque<Held>,
    /// The protocols the remote listed (identify): streams on them open optimistically.
    remote_protocols: HashSet<StreamProtocol>,
}

impl Handler {
    pub(crate) fn new(
        remote: PeerId,
        shared: Arc<Mutex<Shared>>,
        requests: mpsc::Receiver<OpenRequest>,
    ) -> Self {
        let (max_opening, max_held, negotiation_timeout) = {
            let s = Shared::lock(&shared);
            let c = s.config();
            (
                c.max_opening_per_connection(),
                c.max_held_per_connection(),
                c.negotiation_timeout(),
            )
        };
        Self {
            remote,
            shared,
            requests: Some(requests),
            opening: 0,
            max_opening,
            max_held,
            negotiation_timeout,
            held: VecDeque::new(),
            remote_protocols: HashSet::new(),
        }
    }

    fn on_inbound(&mut self, stream: Stream, protocol: StreamProtocol) {
        let (acceptor, counters) = {
            let mut shared = Shared::lock(&self.shared);
            (shared.acceptor(&protocol), shared.counters(&protocol))
        };
        Counters::add(&counters.inbound);
        let Some(acceptor) = acceptor else {
            tracing::debug!(peer = %self.remote, %protocol, "nobody accepts the protocol now, dropping the stream");
            Counters::add(&counters.refused);
            return;
        };
        // Streams already held for this protocol go first.
        let behind = self.held.iter().any(|h| h.protocol == protocol);
        let stream = if behind {
            stream
        } else {
            match acceptor.try_send((self.remote, stream)) {
                Ok(()) => {
                    Counters::add(&counters.queued);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    Counters::add(&counters.refused);
                    return;
                }
                Err(mpsc::error::TrySendError::Full((_, stream))) => stream,
            }
        };
        if self.held.len() >= self.max_held {
            tracing::debug!(peer = %self.remote, %protocol, held = self.held.len(), "acceptor queue and holding room full, dropping the stream");
            Counters::add(&counters.refused);
            return;
        }
        Counters::add(&counters.queued);
        self.held.push_back(Held {
            queue: PollSender::new(acceptor),
            stream,
            protocol,
            counters,
        });
    }

    /// Moves held streams into their queues as room appears.
    fn deliver_held(&mut self, cx: &mut Context<'_>) {
        let mut i = 0;
        while i < self.held.len() {
            let ready = match self.held[i].queue.poll_reserve(cx) {
                Poll::Pending => {
                    i += 1;
                    continue;
                }
                Poll::Ready(r) => r.is_ok(),
            };
            let Some(mut held) = self.held.remove(i) else {
                break;
            };
            // Reserved: `send_item` fails only if the acceptor went away meanwhile. A
            // delivered stream stays counted as queued until the acceptor takes it.
            if !(ready && held.queue.send_item((self.remote, held.stream)).is_ok()) {
                held.counters.dequeue();
                Counters::add(&held.counters.refused);
            }
        }
    }
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = Upgrade;
    type OutboundProtocol = Outbound;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = OpenRequest;

    fn listen_protocol(&self) -> SubstreamProtocol<Upgrade, ()> {
        let protocols = Shared::lock(&self.shared).accepted_protocols();
        SubstreamProtocol::new(Upgrade { protocols }, ()).with_timeout(self.negotiation_timeout)
    }

    fn connection_keep_alive(&self) -> bool {
        self.opening > 0 || !self.held.is_empty()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Outbound, OpenRequest, Infallible>> {
        if !self.held.is_empty() {
            self.deliver_held(cx);
        }
        while self.opening < self.max_opening {
            let Some(requests) = self.requests.as_mut() else {
                break;
            };
            match requests.poll_recv(cx) {
                Poll::Ready(Some(request)) => {
                    if request.reply.is_closed() {
                        continue; // the caller gave up
                    }
                    self.opening += 1;
                    // Optimistic only when the peer said it speaks the protocol; the swarm's
                    // negotiation setting decides whether that saves the round trip.
                    let confirm = !self.remote_protocols.contains(&request.protocol);
                    if !confirm {
                        Counters::add(&request.counters.optimistic);
                    }
                    let upgrade = Outbound {
                        protocol: request.protocol.clone(),
                        confirm,
                    };
                    return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                        protocol: SubstreamProtocol::new(upgrade, request)
                            .with_timeout(self.negotiation_timeout),
                    });
                }
                Poll::Ready(None) => self.requests = None,
                Poll::Pending => break,
            }
        }
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, event: Infallible) {
        match event {}
    }

    fn on_connection_event(&mut self, event: ConnectionEvent<Upgrade, Outbound, (), OpenRequest>) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: (stream, protocol),
                ..
            }) => self.on_inbound(stream, protocol),
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: (stream, _),
                info: request,
            }) => {
                self.opening = self.opening.saturating_sub(1);
                // A caller that gave up drops the stream with the answer.
                let _ = request.reply.send(Ok(stream));
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError {
                info: request,
                error,
            }) => {
                self.opening = self.opening.saturating_sub(1);
                let error = match error {
                    StreamUpgradeError::NegotiationFailed | StreamUpgradeError::Apply(_) => {
                        OpenError::UnsupportedProtocol(request.protocol)
                    }
                    StreamUpgradeError::Timeout => OpenError::Timeout,
                    StreamUpgradeError::Io(e) => OpenError::Io(e),
                };
                let _ = request.reply.send(Err(error));
            }
            ConnectionEvent::RemoteProtocolsChange(change) => match change {
                ProtocolsChange::Added(added) => {
                    // Bounded: a peer listing thousands of protocols gains nothing.
                    for p in added {
                        if self.remote_protocols.len() < MAX_REMOTE_PROTOCOLS {
                            self.remote_protocols.insert(p.clone());
                        }
                    }
                }
                ProtocolsChange::Removed(removed) => {
                    for p in removed {
                        self.remote_protocols.remove(p);
                    }
                }
            },
            _ => {}
        }
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        for held in self.held.drain(..) {
            held.counters.dequeue();
            Counters::add(&held.counters.refused);
        }
    }
}
