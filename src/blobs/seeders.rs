//! Seeders of a fetch as the DHT lookup finds them: the fetch starts with the first providers
//! found ([`first`]), and those found later join it while it runs ([`join_late`]).

use libp2p::PeerId;
use mcc_admission::Permission;
use mcc_blobs::{Cid, transfer};
use tokio::sync::mpsc;

use super::bitswap;
use crate::node::network::Network;

/// What picks and sorts the seeders of one fetch.
pub(super) struct Finder<'a> {
    pub(super) net: &'a Network,
    pub(super) bitswap: Option<&'a mcc_bitswap::Handle>,
    pub(super) gates: &'a mcc_admission::Gates,
    pub(super) root: Cid,
}

impl Finder<'_> {
    /// The providers of a batch that may seed: not this node and, with `--trust-ca`, not a
    /// peer whose certificate lacks blobs:seed (a seeder not admitted yet is checked again
    /// once a stream to it is open).
    fn admissible(&self, batch: Vec<PeerId>) -> Vec<PeerId> {
        let me = self.net.peer_id();
        batch
            .into_iter()
            .filter(|p| *p != me)
            .filter(|p| !self.gates.is_admitted(p) || self.gates.allows(p, Permission::BlobsSeed))
            .collect()
    }

    /// Waits for the first providers the lookup finds (with those that came at the same
    /// time): the (`/mcc/blobs/1.0.0`, Bitswap) seeders to start with, sorted by
    /// [`bitswap::sort_seeders`]. Both are empty only when the lookup ended without any (and
    /// no connected Bitswap peer has the root).
    pub(super) async fn first(
        &self,
        found: &mut mpsc::Receiver<PeerId>,
    ) -> (Vec<PeerId>, Vec<PeerId>) {
        loop {
            let (batch, ended) = next_batch(found).await;
            let batch = self.admissible(batch);
            if batch.is_empty() && !ended {
                continue;
            }
            // The first sort also asks the connected Bitswap peers (IPFS nodes that are not
            // providers in our DHT) for the root.
            let (mcc, others) =
                bitswap::sort_seeders(self.net, self.bitswap, batch, self.root, true).await;
            if ended || !mcc.is_empty() || !others.is_empty() {
                return (mcc, others);
            }
        }
    }

    /// Hands every provider found from now on to the running fetch through `join`, until the
    /// lookup or the fetch ends.
    pub(super) async fn join_late(
        &self,
        mut found: mpsc::Receiver<PeerId>,
        join: mpsc::Sender<transfer::NewSeeder>,
    ) {
        loop {
            let (batch, ended) = next_batch(&mut found).await;
            let batch = self.admissible(batch);
            if !batch.is_empty() {
                let (mcc, others) =
                    bitswap::sort_seeders(self.net, self.bitswap, batch, self.root, false).await;
                let new = mcc
                    .into_iter()
                    .map(transfer::NewSeeder::Blobs)
                    .chain(others.into_iter().map(transfer::NewSeeder::Remote));
                for seeder in new {
                    tracing::debug!(root = %self.root, ?seeder, "seeder found during the fetch");
                    if join.send(seeder).await.is_err() {
                        return;
                    }
                }
            }
            if ended {
                return;
            }
        }
    }
}

/// The next provider found and any that arrived with it; `true` once the lookup is over.
async fn next_batch(found: &mut mpsc::Receiver<PeerId>) -> (Vec<PeerId>, bool) {
    let Some(first) = found.recv().await else {
        return (Vec::new(), true);
    };
    let mut batch = vec![first];
    loop {
        match found.try_recv() {
            Ok(peer) => batch.push(peer),
            Err(mpsc::error::TryRecvError::Empty) => return (batch, false),
            Err(mpsc::error::TryRecvError::Disconnected) => return (batch, true),
        }
    }
}
