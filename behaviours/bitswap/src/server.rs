//! The server side of one connection: the peer's wants, queued (bounded), answered one at a
//! time from the [`BlockSource`](crate::BlockSource) on tokio's blocking pool.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use cid::Cid;
use libp2p::PeerId;
use tokio::sync::{Notify, mpsc};

use crate::codec::{Block, BlockPresence, Message, Prefix, Presence, WantType, Wantlist};
use crate::shared::Shared;

#[derive(Debug, Clone)]
struct Want {
    cid: Cid,
    kind: WantType,
    send_dont_have: bool,
}

/// The wants a peer has queued on one connection.
pub(crate) struct Queue {
    wants: Mutex<VecDeque<Want>>,
    notify: Notify,
    max: usize,
}

impl Queue {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            wants: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            max,
        })
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Want>> {
        self.wants.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Applies a wantlist: cancels remove, wants are added (a want-block upgrades a queued
    /// want-have), beyond the cap they are dropped; a full list replaces what was queued.
    /// Returns how many wants were dropped.
    pub(crate) fn apply(&self, list: &Wantlist) -> usize {
        let mut dropped = 0;
        {
            let mut wants = self.lock();
            if list.full {
                wants.clear();
            }
            for entry in &list.entries {
                let Ok(cid) = Cid::try_from(&entry.block[..]) else {
                    dropped += 1;
                    continue;
                };
                let existing = wants.iter().position(|w| w.cid.hash() == cid.hash());
                if entry.cancel {
                    if let Some(i) = existing {
                        wants.remove(i);
                    }
                    continue;
                }
                let kind = entry.want_type();
                if let Some(want) = existing.and_then(|i| wants.get_mut(i)) {
                    if kind == WantType::Block {
                        want.kind = WantType::Block;
                    }
                    want.send_dont_have |= entry.send_dont_have;
                } else if wants.len() < self.max {
                    wants.push_back(Want {
                        cid,
                        kind,
                        send_dont_have: entry.send_dont_have,
                    });
                } else {
                    dropped += 1;
                }
            }
        }
        self.notify.notify_one();
        dropped
    }

    async fn next(&self) -> Want {
        loop {
            if let Some(want) = self.lock().pop_front() {
                return want;
            }
            self.notify.notified().await;
        }
    }
}

/// What the store said about one want.
enum Found {
    Block(Bytes),
    Have,
    Missing,
}

/// Lookups run at once per connection (disk reads overlap the sending of earlier blocks).
const MAX_LOOKUPS: usize = 4;

/// Answers the wants of `queue` on `tx` until the connection's send queue closes. A block is
/// read only once the send queue has room for it; up to [`MAX_LOOKUPS`] at a time.
pub(crate) async fn serve(
    peer: PeerId,
    shared: Arc<Shared>,
    queue: Arc<Queue>,
    tx: mpsc::Sender<Message>,
) {
    use futures::StreamExt;
    let mut running = futures::stream::FuturesUnordered::new();
    loop {
        tokio::select! {
            want = queue.next(), if running.len() < MAX_LOOKUPS => {
                let (shared, tx) = (Arc::clone(&shared), tx.clone());
                running.push(answer(peer, shared, want, tx));
            }
            Some(open) = running.next() => {
                if !open {
                    return;
                }
            }
        }
    }
}

/// Answers one want; `false` once the send queue is closed.
async fn answer(peer: PeerId, shared: Arc<Shared>, want: Want, tx: mpsc::Sender<Message>) -> bool {
    let Ok(permit) = tx.reserve_owned().await else {
        return false;
    };
    let found = look_up(&shared, &peer, &want).await;
    let message = match found {
        Found::Block(data) => {
            shared.stats.served(data.len());
            Message {
                wantlist: Some(Wantlist::default()),
                payload: vec![Block {
                    prefix: Prefix::of(&want.cid).to_bytes(),
                    data,
                }],
                ..Message::default()
            }
        }
        Found::Have => presence(&want.cid, Presence::Have),
        Found::Missing if want.send_dont_have => presence(&want.cid, Presence::DontHave),
        Found::Missing => return true,
    };
    permit.send(message);
    true
}

fn presence(cid: &Cid, presence: Presence) -> Message {
    Message {
        wantlist: Some(Wantlist::default()),
        block_presences: vec![BlockPresence {
            cid: Bytes::from(cid.to_bytes()),
            r#type: presence.into(),
        }],
        ..Message::default()
    }
}

async fn look_up(shared: &Shared, peer: &PeerId, want: &Want) -> Found {
    let Some(source) = shared.config.block_source().cloned() else {
        return Found::Missing;
    };
    if !shared.config.serves(peer) {
        return Found::Missing;
    }
    let hash = *want.cid.hash();
    let kind = want.kind;
    let looked = tokio::task::spawn_blocking(move || match kind {
        WantType::Have => {
            if source.has(&hash) {
                Found::Have
            } else {
                Found::Missing
            }
        }
        // A newer peer's want type: answer with the block, the most it can mean.
        WantType::Block | WantType::Unknown(_) => match source.get(&hash) {
            Some(data) => Found::Block(data),
            None => Found::Missing,
        },
    })
    .await;
    looked.unwrap_or(Found::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Entry;

    fn cid(n: u8) -> Cid {
        Prefix {
            version: 1,
            codec: 0x55,
            hash: crate::codec::SHA2_256,
            digest_len: 32,
        }
        .cid_of(&[n])
        .unwrap()
    }

    fn entry(cid: &Cid, kind: WantType, cancel: bool) -> Entry {
        Entry {
            block: Bytes::from(cid.to_bytes()),
            priority: 1,
            cancel,
            want_type: kind.into(),
            send_dont_have: true,
        }
    }

    #[test]
    fn wants_beyond_the_cap_are_dropped_and_cancels_remove() {
        let queue = Queue::new(2);
        let list = Wantlist {
            entries: vec![
                entry(&cid(1), WantType::Have, false),
                entry(&cid(2), WantType::Block, false),
                entry(&cid(3), WantType::Block, false),
                Entry {
                    block: Bytes::from_static(b"not a cid"),
                    ..Entry::default()
                },
            ],
            full: false,
        };
        assert_eq!(queue.apply(&list), 2);
        assert_eq!(queue.lock().len(), 2);
        let cancel = Wantlist {
            entries: vec![
                entry(&cid(1), WantType::Block, true),
                entry(&cid(2), WantType::Block, false),
            ],
            full: false,
        };
        assert_eq!(queue.apply(&cancel), 0);
        let wants = queue.lock();
        assert_eq!(wants.len(), 1);
        assert_eq!(wants[0].cid, cid(2));
    }
}
