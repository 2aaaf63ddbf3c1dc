//! [`Control`] opens and accepts streams; [`IncomingStreams`] yields the accepted ones.

use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use libp2p::{PeerId, Stream, StreamProtocol};
use tokio::sync::{mpsc, oneshot};

use crate::error::{AlreadyRegistered, OpenError};
use crate::shared::{Inbound, OpenRequest, Route, Shared};
use crate::stats::{Counters, ProtocolStats};

/// A cloneable handle to the behaviour: opens streams, accepts protocols, reads the counters.
#[derive(Clone)]
pub struct Control {
    shared: Arc<Mutex<Shared>>,
}

impl Control {
    pub(crate) fn new(shared: Arc<Mutex<Shared>>) -> Self {
        Self { shared }
    }

    /// Opens a stream on `protocol` to `peer`, on its newest connection; without one, the
    /// swarm dials the peer (with the addresses it knows) and the stream waits for the
    /// connection.
    ///
    /// Waits while the connection already negotiates its
    /// [`Config::max_opening_per_connection`](crate::Config::max_opening_per_connection)
    /// streams. Callers bound the whole wait with their own timeout.
    pub async fn open_stream(
        &mut self,
        peer: PeerId,
        protocol: StreamProtocol,
    ) -> Result<Stream, OpenError> {
        let (reply, answer) = oneshot::channel();
        let (counters, route) = {
            let mut shared = Shared::lock(&self.shared);
            let counters = shared.counters(&protocol);
            let request = OpenRequest {
                protocol: protocol.clone(),
                reply,
                counters: counters.clone(),
            };
            (counters, shared.route(peer, request))
        };
        let result = match route {
            Err(e) => Err(e),
            Ok(Route::Connection(sender, request)) => match sender.send(request).await {
                Ok(()) => answer.await.unwrap_or(Err(OpenError::ConnectionClosed)),
                Err(_) => Err(OpenError::ConnectionClosed),
            },
            Ok(Route::Waiting) => answer.await.unwrap_or(Err(OpenError::ConnectionClosed)),
        };
        match &result {
            Ok(_) => Counters::add(&counters.opened),
            Err(e) => {
                tracing::debug!(%peer, %protocol, error = %e, "cannot open stream");
                Counters::add(&counters.open_failed);
            }
        }
        result
    }

    /// Accepts inbound streams on `protocol` until the returned [`IncomingStreams`] is
    /// dropped. Streams wait in a queue of
    /// [`Config::max_queued`](crate::Config::max_queued); when it is full, each connection
    /// holds up to [`Config::max_held_per_connection`](crate::Config::max_held_per_connection)
    /// more until there is room, and only drops (resets) streams beyond that, counted as
    /// refused.
    pub fn accept(
        &mut self,
        protocol: StreamProtocol,
    ) -> Result<IncomingStreams, AlreadyRegistered> {
        let mut shared = Shared::lock(&self.shared);
        let (receiver, id) = shared.accept(protocol.clone())?;
        let counters = shared.counters(&protocol);
        Ok(IncomingStreams {
            receiver,
            counters,
            shared: Arc::downgrade(&self.shared),
            protocol,
            id,
        })
    }

    /// The counters of every protocol streams were opened or accepted on, by protocol name.
    pub fn stats(&self) -> Vec<ProtocolStats> {
        Shared::lock(&self.shared).stats()
    }
}

/// The inbound streams of one accepted protocol, with the peer that opened each.
///
/// Ends when the behaviour is gone. Dropping it stops accepting the protocol; streams still
/// queued are dropped and counted as refused.
#[must_use = "streams wait in a queue until taken"]
pub struct IncomingStreams {
    receiver: mpsc::Receiver<Inbound>,
    counters: Arc<Counters>,
    /// Weak: the queue must end when the behaviour and its handles are gone.
    shared: Weak<Mutex<Shared>>,
    protocol: StreamProtocol,
    id: u64,
}

impl IncomingStreams {
    /// The protocol these streams speak.
    pub fn protocol(&self) -> &StreamProtocol {
        &self.protocol
    }
}

impl futures::Stream for IncomingStreams {
    type Item = (PeerId, Stream);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.receiver.poll_recv(cx);
        if let Poll::Ready(Some(_)) = &next {
            self.counters.dequeue();
            Counters::add(&self.counters.accepted);
        }
        next
    }
}

impl Drop for IncomingStreams {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            Shared::lock(&shared).unregister(&self.protocol, self.id);
        }
        self.receiver.close();
        while self.receiver.try_recv().is_ok() {
            self.counters.dequeue();
            Counters::add(&self.counters.refused);
        }
    }
}
