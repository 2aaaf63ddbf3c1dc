//! The address book as the API sees it: listing, pinning, observed addresses.

use libp2p::swarm::dial_opts::DialOpts;

use super::{PinReply, now_ms};
use crate::node::event_loop::EventLoop;
use crate::node::{AddrBookEntry, Error, ObservedAddr, PinTarget, addr};
use crate::storage::addrbook::{Entry, Source};

/// The API view of a book entry.
pub(super) fn entry_info(e: &Entry, connected: bool, now: u64) -> AddrBookEntry {
    AddrBookEntry {
        peer_id: e.peer_id,
        addrs: e.addrs.clone(),
        sources: e.sources.clone(),
        persistent: e.persistent,
        connected,
        failed: e.failed,
        attempts: e.attempts,
        backoff_ms: e.backoff_ms,
        next_dial_in_ms: e.next_dial_unix_ms.saturating_sub(now),
        last_success_unix_ms: e.last_success_unix_ms,
        rtt_ms: e.rtt_ms,
        same_app: e.same_app,
    }
}

impl EventLoop {
    /// `Command::AddrBook`: the book, best entries first.
    pub(in crate::node::event_loop) fn addrbook(&self) -> Vec<AddrBookEntry> {
        let now = now_ms();
        let mut out: Vec<AddrBookEntry> = self
            .mesh
            .book
            .entries()
            .map(|e| entry_info(e, self.swarm.is_connected(&e.peer_id), now))
            .collect();
        out.sort_by_key(|e| e.peer_id);
        out
    }

    /// `Command::Pin`.
    pub(in crate::node::event_loop) fn pin(
        &mut self,
        target: PinTarget,
        persistent: bool,
        reply: PinReply,
    ) {
        let (peer, addr) = match target {
            PinTarget::Peer(p) => (p, None),
            PinTarget::Addr(a) => match addr::peer_id_of(&a) {
                Some(p) => (p, Some(a)),
                None if persistent => return self.pin_by_dialling(a, reply),
                None => return self.unpin_by_addr(a, reply),
            },
        };
        if let Some(a) = &addr {
            self.mesh
                .book
                .learn(peer, std::slice::from_ref(a), Source::Manual);
        } else if self.mesh.book.get(&peer).is_none() {
            let _ = reply.send(Err(Error::NotFound(format!(
                "{peer} is not in the address book (pin it by address)"
            ))));
            return;
        }
        if !self.mesh.book.set_persistent(peer, persistent) {
            let _ = reply.send(Err(Error::StoreFull(
                "the address book is full of persistent peers".into(),
            )));
            return;
        }
        let connected = self.swarm.is_connected(&peer);
        let info = self
            .mesh
            .book
            .get(&peer)
            .map(|e| entry_info(e, connected, now_ms()));
        let _ = reply.send(info.ok_or_else(|| Error::NotFound(peer.to_string())));
        if let Err(e) = self.mesh.book.save_if_dirty() {
            tracing::warn!("cannot save the address book: {e}");
        }
    }

    /// Pins an address without peer id: dials it, pinned once connected.
    fn pin_by_dialling(&mut self, a: libp2p::Multiaddr, reply: PinReply) {
        let opts = DialOpts::unknown_peer_id().address(a.clone()).build();
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.mesh.pin_on_connect.insert(id, Some(reply));
                self.mesh.sources.insert(id, Source::Manual);
            }
            Err(e) => {
                let _ = reply.send(Err(Error::Dial {
                    addr: a,
                    reason: e.to_string(),
                }));
            }
        }
    }

    /// Unpins the peer of the book that has the address `a` (given without peer id).
    fn unpin_by_addr(&mut self, a: libp2p::Multiaddr, reply: PinReply) {
        let found = self
            .mesh
            .book
            .entries()
            .find(|e| e.addrs.contains(&a))
            .map(|e| e.peer_id);
        match found {
            Some(peer) => self.pin(PinTarget::Peer(peer), false, reply),
            None => {
                let _ = reply.send(Err(Error::NotFound(format!(
                    "no peer of the address book has the address {a}"
                ))));
            }
        }
    }

    /// The addresses peers observed this node at, most reported first.
    pub(in crate::node::event_loop) fn observed_addrs(&self) -> Vec<ObservedAddr> {
        let mut out: Vec<ObservedAddr> = self
            .mesh
            .observed
            .iter()
            .map(|(a, c)| ObservedAddr {
                addr: a.clone(),
                count: *c,
            })
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then(a.addr.cmp(&b.addr)));
        out
    }
}
