//! Per-protocol counters: [`ProtocolStats`].

use std::sync::atomic::{AtomicU64, Ordering};

use libp2p::StreamProtocol;

/// What happened to the streams of one protocol since the behaviour was built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtocolStats {
    pub protocol: String,
    /// Outbound streams negotiated.
    pub opened: u64,
    /// Outbound streams proposed optimistically: the peer had listed the protocol, so the
    /// first bytes may go out with the proposal (with the swarm set to `V1Lazy`).
    pub optimistic: u64,
    /// Outbound streams that failed (unsupported, timeout, io, no connection).
    pub open_failed: u64,
    /// Inbound streams negotiated for this protocol.
    pub inbound: u64,
    /// Inbound streams taken by the acceptor.
    pub accepted: u64,
    /// Inbound streams waiting now: in the acceptor's queue or held by their connection.
    pub queued: u64,
    /// Inbound streams dropped: queue and holding room full, or nobody accepting.
    pub refused: u64,
}

/// The live counters behind a [`ProtocolStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub opened: AtomicU64,
    pub open_failed: AtomicU64,
    pub optimistic: AtomicU64,
    pub inbound: AtomicU64,
    pub accepted: AtomicU64,
    pub queued: AtomicU64,
    pub refused: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Lowers the `queued` gauge (never below zero).
    pub fn dequeue(&self) {
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    pub fn snapshot(&self, protocol: &StreamProtocol) -> ProtocolStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProtocolStats {
            protocol: protocol.to_string(),
            opened: get(&self.opened),
            open_failed: get(&self.open_failed),
            optimistic: get(&self.optimistic),
            inbound: get(&self.inbound),
            accepted: get(&self.accepted),
            queued: get(&self.queued),
            refused: get(&self.refused),
        }
    }
}
