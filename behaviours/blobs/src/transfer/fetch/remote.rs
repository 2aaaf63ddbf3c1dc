//! Seeders reached by another protocol (Bitswap, for IPFS peers): [`RemoteBlocks`] asks one
//! peer for one block; a worker per such seeder asks for [`FetchConfig::window`] blocks at
//! once and for the next batch when all are answered, pulling from the same queue as the
//! `/mcc/blobs/1.0.0` workers. (Batches, not a sliding window: a Bitswap server such as Helia
//! answers every wantlist message with every block still wanted, so a want sent while blocks
//! are on their way makes it send them twice.) Every block is verified and stored by the same
//! [`process`] as theirs.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use libp2p::PeerId;

use super::{Arrival, Ctx, FetchConfig, WorkerGuard, process, store_panicked};
use crate::Cid;

/// What a remote seeder answered for one block.
#[derive(Debug)]
pub enum RemoteAnswer {
    /// The block's bytes (verified again by the fetch before they are stored).
    Block(Vec<u8>),
    /// The seeder does not have it: ask the others.
    NotFound,
    /// The seeder is of no more use for this download (timeout, disconnect, a wrong block):
    /// it is dropped, with this reason.
    Failed(String),
}

/// Asks a peer for one block over another protocol than `/mcc/blobs/1.0.0`.
pub trait RemoteBlocks: Send + Sync + 'static {
    /// Asks `peer` for the block `cid`.
    fn get(&self, peer: PeerId, cid: Cid) -> BoxFuture<'static, RemoteAnswer>;
}

/// Peers to fetch from with [`RemoteBlocks`], besides the `/mcc/blobs/1.0.0` seeders.
#[derive(Clone)]
pub struct RemoteSeeders {
    pub peers: Vec<PeerId>,
    pub blocks: Arc<dyn RemoteBlocks>,
}

impl std::fmt::Debug for RemoteSeeders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSeeders")
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

/// Fetches from one remote seeder until the fetch is over or the seeder is dropped.
pub(super) async fn worker(
    ctx: Arc<Ctx>,
    index: usize,
    peer: PeerId,
    blocks: Arc<dyn RemoteBlocks>,
    config: FetchConfig,
) {
    let _guard = WorkerGuard {
        ctx: ctx.clone(),
        index,
    };
    let window = config.window.max(1);
    let mut changes = ctx.changes.subscribe();
    let mut asks = FuturesUnordered::new();
    loop {
        changes.borrow_and_update();
        if ctx.is_over_for(index) {
            return;
        }
        if asks.is_empty() {
            // No stealing: a Bitswap server may send a block twice already (see above).
            for cid in ctx.take(index, window, false) {
                let ask = blocks.get(peer, cid);
                asks.push(async move { (cid, ask.await) });
            }
        }
        if asks.is_empty() {
            let _ = changes.changed().await;
            continue;
        }
        let (cid, answer) = tokio::select! {
            Some(done) = asks.next() => done,
            _ = changes.changed() => continue,
        };
        match answer {
            RemoteAnswer::Block(_) if !config.allows(&peer) => {
                ctx.drop_seeder(index, "is no longer allowed to seed".to_string());
                return;
            }
            RemoteAnswer::Block(data) => {
                match ctx.answered(index, &cid) {
                    Arrival::Process => {}
                    Arrival::Duplicate => continue,
                    Arrival::Dropped => return,
                }
                let ctx = ctx.clone();
                let processed = tokio::task::spawn_blocking(move || {
                    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        process(&ctx, index, cid, data)
                    }));
                    match result {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => ctx.fail(e),
                        Err(_) => ctx.fail(store_panicked()),
                    }
                });
                // Processing in turn bounds the blocks held per seeder; its asks stay in
                // flight meanwhile.
                let _ = processed.await;
            }
            RemoteAnswer::NotFound => ctx.not_found(index, cid),
            RemoteAnswer::Failed(why) => {
                ctx.drop_seeder(index, why);
                return;
            }
        }
    }
}
