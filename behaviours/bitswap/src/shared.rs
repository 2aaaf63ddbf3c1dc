//! State shared by the behaviour, its handlers and the [`Handle`]: each connection's send
//! queue, the wants waiting for answers, the events, the counters.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use cid::Cid;
use cid::multihash::Multihash;
use futures::task::AtomicWaker;
use libp2p::PeerId;
use libp2p::swarm::ConnectionId;
use tokio::sync::{mpsc, oneshot};

use crate::codec::{self, Entry, Message, Prefix, Presence, WantType, Wantlist};
use crate::config::Config;
use crate::error::{StreamError, WantError};

/// Wants remembered per peer after they were sent: a block for one of them that comes when
/// nobody waits (a duplicate, or after a cancel or a timeout) is late, not wrong.
const MAX_ASKED: usize = 4096;

/// The answer to a want.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The peer has the block (answer to a want-have).
    Have,
    /// The peer does not have it.
    DontHave,
    /// The block, verified: its bytes hash to the wanted multihash.
    Block(Bytes),
}

/// What happened that the swarm's owner may want to act on.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// `peer` sent a block that was never wanted from it (`cid: None`: not even a valid block
    /// of a supported hash). Its outstanding wants failed with [`WantError::WrongBlock`].
    UnwantedBlock { peer: PeerId, cid: Option<Cid> },
    /// An inbound stream of `peer` was dropped.
    StreamDropped { peer: PeerId, error: StreamError },
}

/// Counters of the server side.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    blocks: AtomicU64,
    bytes: AtomicU64,
}

impl Stats {
    pub(crate) fn served(&self, len: usize) {
        self.blocks.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
    }
}

struct Waiter {
    id: u64,
    kind: WantType,
    tx: oneshot::Sender<Result<Answer, WantError>>,
}

#[derive(Default)]
struct Wants {
    next_id: u64,
    waiting: HashMap<(PeerId, Multihash<64>), Vec<Waiter>>,
    per_peer: HashMap<PeerId, usize>,
    asked: HashMap<PeerId, Asked>,
}

/// The multihashes last wanted from one peer, oldest first.
#[derive(Default)]
struct Asked {
    order: VecDeque<Multihash<64>>,
    set: std::collections::HashSet<Multihash<64>>,
}

impl Asked {
    fn insert(&mut self, hash: Multihash<64>) {
        if !self.set.insert(hash) {
            return;
        }
        self.order.push_back(hash);
        if self.order.len() > MAX_ASKED
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
    }
}

impl Wants {
    fn remove_peer(&mut self, peer: &PeerId, error: &WantError) {
        let keys: Vec<_> = self
            .waiting
            .keys()
            .filter(|(p, _)| p == peer)
            .copied()
            .collect();
        for key in keys {
            for waiter in self.waiting.remove(&key).unwrap_or_default() {
                let _ = waiter.tx.send(Err(error.clone()));
            }
        }
        self.per_peer.remove(peer);
        self.asked.remove(peer);
    }

    fn take(&mut self, peer: PeerId, hash: Multihash<64>) -> Vec<Waiter> {
        let waiters = self.waiting.remove(&(peer, hash)).unwrap_or_default();
        self.release(peer, waiters.len());
        waiters
    }

    fn release(&mut self, peer: PeerId, n: usize) {
        if let Some(count) = self.per_peer.get_mut(&peer) {
            *count = count.saturating_sub(n);
            if *count == 0 {
                self.per_peer.remove(&peer);
            }
        }
    }
}

/// A connection and its send queue.
type Link = (ConnectionId, mpsc::Sender<Message>);

pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) stats: Stats,
    pub(crate) waker: AtomicWaker,
    links: Mutex<HashMap<PeerId, Vec<Link>>>,
    wants: Mutex<Wants>,
    events: Mutex<VecDeque<Event>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new(config: Config) -> Arc<Self> {
        Arc::new(Self {
            config,
            stats: Stats::default(),
            waker: AtomicWaker::new(),
            links: Mutex::new(HashMap::new()),
            wants: Mutex::new(Wants::default()),
            events: Mutex::new(VecDeque::new()),
        })
    }

    pub(crate) fn add_link(
        &self,
        peer: PeerId,
        connection: ConnectionId,
    ) -> (mpsc::Sender<Message>, mpsc::Receiver<Message>) {
        let (tx, rx) = mpsc::channel(self.config.send_queue());
        lock(&self.links)
            .entry(peer)
            .or_default()
            .push((connection, tx.clone()));
        (tx, rx)
    }

    /// A connection closed: when it was the peer's last, its wants fail.
    pub(crate) fn remove_link(&self, peer: PeerId, connection: ConnectionId) {
        let last = {
            let mut links = lock(&self.links);
            let Some(list) = links.get_mut(&peer) else {
                return;
            };
            list.retain(|(c, _)| *c != connection);
            let last = list.is_empty();
            if last {
                links.remove(&peer);
            }
            last
        };
        if last {
            lock(&self.wants).remove_peer(&peer, &WantError::NotConnected(peer));
        }
    }

    /// The peer refused every Bitswap protocol on a connection.
    pub(crate) fn unsupported(&self, peer: PeerId) {
        lock(&self.wants).remove_peer(&peer, &WantError::Unsupported(peer));
    }

    fn sender(&self, peer: &PeerId) -> Option<mpsc::Sender<Message>> {
        lock(&self.links)
            .get(peer)?
            .iter()
            .find(|(_, tx)| !tx.is_closed())
            .map(|(_, tx)| tx.clone())
    }

    pub(crate) fn is_connected(&self, peer: &PeerId) -> bool {
        self.sender(peer).is_some()
    }

    pub(crate) fn has_wants(&self, peer: &PeerId) -> bool {
        lock(&self.wants).per_peer.contains_key(peer)
    }

    pub(crate) fn push_event(&self, event: Event) {
        lock(&self.events).push_back(event);
        self.waker.wake();
    }

    pub(crate) fn pop_event(&self) -> Option<Event> {
        lock(&self.events).pop_front()
    }

    /// The client side of an inbound message: blocks and presences for our wants.
    pub(crate) fn on_message(&self, peer: PeerId, message: &Message) {
        for block in &message.payload {
            let cid = Prefix::from_bytes(&block.prefix).and_then(|p| p.cid_of(&block.data));
            self.on_block(peer, cid.ok(), &block.data);
        }
        for data in &message.blocks {
            // Bitswap 1.0.0: CIDv0 implied; matched by multihash, so a raw leaf fits too.
            let prefix = Prefix {
                version: 0,
                codec: codec::DAG_PB,
                hash: codec::SHA2_256,
                digest_len: 32,
            };
            self.on_block(peer, prefix.cid_of(data).ok(), data);
        }
        for presence in &message.block_presences {
            let Ok(cid) = Cid::try_from(&presence.cid[..]) else {
                continue;
            };
            let answer = match presence.presence() {
                Presence::Have => Answer::Have,
                Presence::DontHave => Answer::DontHave,
                Presence::Unknown(_) => continue,
            };
            let mut wants = lock(&self.wants);
            let key = (peer, *cid.hash());
            let Some(list) = wants.waiting.get_mut(&key) else {
                continue;
            };
            // A "have" answers want-haves only; a want-block waits for its block.
            let (answered, kept): (Vec<_>, Vec<_>) = std::mem::take(list)
                .into_iter()
                .partition(|w| answer == Answer::DontHave || w.kind != WantType::Block);
            *list = kept;
            if list.is_empty() {
                wants.waiting.remove(&key);
            }
            wants.release(peer, answered.len());
            drop(wants);
            for waiter in answered {
                let _ = waiter.tx.send(Ok(answer.clone()));
            }
        }
    }

    fn on_block(&self, peer: PeerId, cid: Option<Cid>, data: &Bytes) {
        let mut wants = lock(&self.wants);
        let waiters = match &cid {
            Some(cid) => wants.take(peer, *cid.hash()),
            None => Vec::new(),
        };
        if waiters.is_empty() {
            let late = cid.as_ref().is_some_and(|cid| {
                wants
                    .asked
                    .get(&peer)
                    .is_some_and(|a| a.set.contains(cid.hash()))
            });
            if late {
                tracing::trace!(%peer, ?cid, "bitswap: a late or duplicate block");
                return;
            }
            wants.remove_peer(&peer, &WantError::WrongBlock(peer));
            drop(wants);
            self.push_event(Event::UnwantedBlock { peer, cid });
            return;
        }
        drop(wants);
        for waiter in waiters {
            let answer = match waiter.kind {
                WantType::Have => Answer::Have,
                _ => Answer::Block(data.clone()),
            };
            let _ = waiter.tx.send(Ok(answer));
        }
    }

    /// Registers a want and sends it; the receiver gets the answer.
    async fn want(
        self: &Arc<Self>,
        peer: PeerId,
        cid: Cid,
        kind: WantType,
    ) -> Result<(WantGuard, oneshot::Receiver<Result<Answer, WantError>>), WantError> {
        if cid.hash().code() == codec::IDENTITY {
            return Err(WantError::Identity);
        }
        let tx = self.sender(&peer).ok_or(WantError::NotConnected(peer))?;
        let hash = *cid.hash();
        let (answer_tx, answer_rx) = oneshot::channel();
        let id = {
            let mut wants = lock(&self.wants);
            let max = self.config.max_outbound_wants();
            let count = wants.per_peer.entry(peer).or_default();
            if *count >= max {
                return Err(WantError::TooManyWants { max });
            }
            *count += 1;
            wants.next_id += 1;
            let id = wants.next_id;
            wants.asked.entry(peer).or_default().insert(hash);
            wants.waiting.entry((peer, hash)).or_default().push(Waiter {
                id,
                kind,
                tx: answer_tx,
            });
            id
        };
        let guard = WantGuard {
            shared: Arc::clone(self),
            peer,
            cid,
            id,
        };
        let message = Message {
            wantlist: Some(Wantlist {
                entries: vec![Entry {
                    block: Bytes::from(cid.to_bytes()),
                    priority: 1,
                    cancel: false,
                    want_type: kind.into(),
                    send_dont_have: true,
                }],
                full: false,
            }),
            ..Message::default()
        };
        tx.send(message)
            .await
            .map_err(|_| WantError::NotConnected(peer))?;
        Ok((guard, answer_rx))
    }
}

/// Withdraws a want that ends without an answer (timeout, dropped future). An answered want
/// needs no cancel: servers forget a want once they sent its block, and a cancel is one more
/// message that Helia answers by sending again what it is still sending.
struct WantGuard {
    shared: Arc<Shared>,
    peer: PeerId,
    cid: Cid,
    id: u64,
}

impl Drop for WantGuard {
    fn drop(&mut self) {
        let hash = *self.cid.hash();
        {
            let mut wants = lock(&self.shared.wants);
            let key = (self.peer, hash);
            let removed = match wants.waiting.get_mut(&key) {
                Some(list) => {
                    let before = list.len();
                    list.retain(|w| w.id != self.id);
                    let removed = before != list.len();
                    if list.is_empty() {
                        wants.waiting.remove(&key);
                    }
                    removed
                }
                None => false,
            };
            if !removed {
                return;
            }
            wants.release(self.peer, 1);
            if wants.waiting.contains_key(&key) {
                // Another want of the same block is still waiting.
                return;
            }
        }
        if let Some(tx) = self.shared.sender(&self.peer) {
            let cancel = Message {
                wantlist: Some(Wantlist {
                    entries: vec![Entry {
                        block: Bytes::from(self.cid.to_bytes()),
                        cancel: true,
                        ..Entry::default()
                    }],
                    full: false,
                }),
                ..Message::default()
            };
            // A full queue: the cancel waits for room in a task (one per want at most).
            if let Err(mpsc::error::TrySendError::Full(cancel)) = tx.try_send(cancel)
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                runtime.spawn(async move {
                    let _ = tx.send(cancel).await;
                });
            }
        }
    }
}

/// The application's side of the behaviour: ask peers for blocks.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl Handle {
    /// Asks `peer` for `cid`: the block ([`WantType::Block`]) or whether it has it
    /// ([`WantType::Have`]). Always asks for dont-have answers. Waits at most
    /// [`Config::want_timeout`]; dropping the future cancels the want at the peer.
    ///
    /// A block is matched by multihash and returned only if its bytes hash to it.
    pub async fn want(&self, peer: PeerId, cid: Cid, kind: WantType) -> Result<Answer, WantError> {
        let timeout = self.shared.config.want_timeout();
        let asked = async {
            let (guard, rx) = self.shared.want(peer, cid, kind).await?;
            let answer = rx.await.unwrap_or(Err(WantError::NotConnected(peer)));
            drop(guard);
            answer
        };
        tokio::time::timeout(timeout, asked)
            .await
            .unwrap_or(Err(WantError::Timeout))
    }

    /// Asks every peer in `peers` whether it has `cid`, at once: the peers that have it.
    pub async fn who_has(&self, peers: &[PeerId], cid: Cid) -> Vec<PeerId> {
        let asks = peers.iter().map(|peer| async move {
            match self.want(*peer, cid, WantType::Have).await {
                Ok(Answer::Have | Answer::Block(_)) => Some(*peer),
                _ => None,
            }
        });
        futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Whether a connection to `peer` can carry Bitswap messages (as far as we know).
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.shared.is_connected(peer)
    }

    /// Blocks served so far and their bytes.
    pub fn served(&self) -> (u64, u64) {
        (
            self.shared.stats.blocks.load(Ordering::Relaxed),
            self.shared.stats.bytes.load(Ordering::Relaxed),
        )
    }
}
