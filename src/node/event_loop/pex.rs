//! The peer exchange (`/mcc/pex/1.0.0`, `mcc_pex`): which connected peers are shared, and
//! what peers tell us.
//!
//! A connected peer is shared once it is admitted and its identify listen addresses are
//! known; it stops being shared when its last connection closes. What peers share goes into
//! the address book with source `pex`; the mesh tick dials it while the node is below
//! `--min-peers` (`mesh.rs`).

use libp2p::{Multiaddr, PeerId};

use super::EventLoop;
use crate::storage::addrbook::Source;

impl EventLoop {
    pub(super) fn on_pex(&mut self, event: mcc_pex::Event) {
        match event {
            mcc_pex::Event::Received { peer, peers } => {
                self.metrics
                    .mesh
                    .pex
                    .get_or_create(&vec![("direction", "received")])
                    .inc();
                tracing::debug!(%peer, count = peers.len(), "peer exchange: received");
                for record in peers {
                    let addrs = self.mesh_dialable(&record.addrs);
                    if !addrs.is_empty() {
                        self.mesh_learn(record.peer_id, &addrs, Source::Pex);
                    }
                }
            }
            mcc_pex::Event::Sent { peer, count } => {
                self.metrics
                    .mesh
                    .pex
                    .get_or_create(&vec![("direction", "sent")])
                    .inc();
                tracing::debug!(%peer, count, "peer exchange: sent");
            }
            mcc_pex::Event::OutboundFailure { peer, error } => {
                tracing::debug!(%peer, "peer exchange: {error}");
            }
        }
    }

    /// Shares `peer` (connected) at `addrs` once it is admitted.
    pub(super) fn pex_share(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if addrs.is_empty() || !self.swarm.behaviour().admission.gates().is_admitted(&peer) {
            return;
        }
        if let Some(pex) = self.swarm.behaviour_mut().pex.as_mut() {
            pex.add_peer(peer, addrs);
        }
    }

    /// `peer` is gone: no longer shared.
    pub(super) fn pex_forget(&mut self, peer: &PeerId) {
        if let Some(pex) = self.swarm.behaviour_mut().pex.as_mut() {
            pex.remove_peer(peer);
        }
    }
}
