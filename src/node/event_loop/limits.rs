//! The connection caps' exemptions: persistent peers (`--peer`, pins) bypass
//! `--max-connections` and its siblings, so a node full of strangers still reaches them. The
//! bypass list follows the address book on every mesh tick.

use std::collections::HashSet;

use libp2p::PeerId;

use super::EventLoop;

/// The peers the connection caps let through.
#[derive(Default)]
pub(super) struct Bypass {
    peers: HashSet<PeerId>,
}

impl EventLoop {
    /// Makes the bypass list the address book's persistent peers.
    pub(super) fn limits_sync_bypass(&mut self) {
        let persistent: HashSet<PeerId> = self
            .mesh
            .book
            .entries()
            .filter(|e| e.persistent)
            .map(|e| e.peer_id)
            .collect();
        if persistent == self.limit_bypass.peers {
            return;
        }
        let limits = &mut self.swarm.behaviour_mut().limits;
        for gone in self.limit_bypass.peers.difference(&persistent) {
            limits.remove_peer_id(gone);
        }
        for new in persistent.difference(&self.limit_bypass.peers) {
            limits.bypass_peer_id(new);
        }
        self.limit_bypass.peers = persistent;
    }
}
