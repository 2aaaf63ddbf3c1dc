//! Fetching from IPFS peers over Bitswap, mixed with mcc seeders.
//!
//! [`Bitswap`] adapts the node's [`mcc_bitswap::Handle`] to the fetch engine of `mcc-blobs`
//! ([`transfer::RemoteBlocks`]): one want-block per block, answered with the block (verified
//! by multihash in `mcc-bitswap`, and again against its CID by the fetch before it is stored)
//! or dont-have. [`sort_seeders`] decides which peers are asked over which protocol.

use std::collections::HashMap;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use libp2p::PeerId;
use mcc_bitswap::{Answer, WantType};
use mcc_blobs::{Cid, transfer};

use crate::node::network::Network;

/// How long connecting to a provider may take before the fetch goes on without it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for identify on freshly connected providers.
const IDENTIFY_WAIT: Duration = Duration::from_secs(3);

/// The node's Bitswap wants, as a [`transfer::RemoteBlocks`].
pub(crate) struct Bitswap(pub(crate) mcc_bitswap::Handle);

impl transfer::RemoteBlocks for Bitswap {
    fn get(&self, peer: PeerId, cid: Cid) -> BoxFuture<'static, transfer::RemoteAnswer> {
        let handle = self.0.clone();
        async move {
            match handle.want(peer, cid, WantType::Block).await {
                Ok(Answer::Block(data)) => transfer::RemoteAnswer::Block(data.to_vec()),
                Ok(Answer::DontHave | Answer::Have) => transfer::RemoteAnswer::NotFound,
                Err(e) => transfer::RemoteAnswer::Failed(format!("bitswap: {e}")),
            }
        }
        .boxed()
    }
}

fn speaks_bitswap(protocols: &[String]) -> bool {
    protocols
        .iter()
        .any(|p| mcc_bitswap::PROTOCOLS.iter().any(|b| p == b.as_ref()))
}

fn speaks_mcc_blobs(protocols: &[String]) -> bool {
    protocols
        .iter()
        .any(|p| p == transfer::PROTOCOL_NAME.as_ref())
}

/// The peers to fetch `root` from: (`/mcc/blobs/1.0.0` seeders, Bitswap seeders).
///
/// Providers found in the DHT are connected first (so identify tells what they speak); a peer
/// that lists `/mcc/blobs/1.0.0`, or whose protocols are unknown, is an mcc seeder. Peers that
/// list only Bitswap, providers or not (every connected IPFS peer), are asked with a
/// want-have broadcast for the root, and those that have it are the Bitswap seeders (connected
/// peers that are not providers only when `ask_connected`). Without a Bitswap handle, every
/// provider is an mcc seeder.
pub(crate) async fn sort_seeders(
    net: &Network,
    bitswap: Option<&mcc_bitswap::Handle>,
    providers: Vec<PeerId>,
    root: Cid,
    ask_connected: bool,
) -> (Vec<PeerId>, Vec<PeerId>) {
    let Some(bitswap) = bitswap else {
        return (providers, Vec::new());
    };
    let mut protocols = connected_protocols(net).await;
    let unconnected: Vec<PeerId> = providers
        .iter()
        .filter(|p| !protocols.contains_key(p))
        .copied()
        .collect();
    if !unconnected.is_empty() {
        connect(net, &unconnected).await;
    }
    // Peers just connected (providers, or dialled by the user a moment ago) may not have
    // been identified yet.
    let deadline = tokio::time::Instant::now() + IDENTIFY_WAIT;
    loop {
        protocols = connected_protocols(net).await;
        let identified = protocols.values().all(|list| !list.is_empty());
        if identified || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let me = net.peer_id();
    let mut mcc = Vec::new();
    let mut candidates = Vec::new();
    for peer in &providers {
        match protocols.get(peer) {
            Some(list) if !speaks_mcc_blobs(list) && speaks_bitswap(list) => candidates.push(*peer),
            _ => mcc.push(*peer),
        }
    }
    for (peer, list) in protocols.iter().filter(|_| ask_connected) {
        if *peer != me
            && !providers.contains(peer)
            && !speaks_mcc_blobs(list)
            && speaks_bitswap(list)
        {
            candidates.push(*peer);
        }
    }
    let have = if candidates.is_empty() {
        Vec::new()
    } else {
        bitswap.who_has(&candidates, root).await
    };
    tracing::debug!(%root, mcc = mcc.len(), bitswap = have.len(), asked = candidates.len(),
        "seeders sorted");
    (mcc, have)
}

/// Connected peers and the protocols their identify listed (empty: not identified yet).
async fn connected_protocols(net: &Network) -> HashMap<PeerId, Vec<String>> {
    match net.peers().await {
        Ok(peers) => peers
            .into_iter()
            .map(|p| (p.peer_id, p.protocols))
            .collect(),
        Err(_) => HashMap::new(),
    }
}

/// Connects to `peers` at once (dialing the addresses the DHT gave), each within
/// [`CONNECT_TIMEOUT`]: a Bitswap stream is opened and closed at once (a Bitswap peer reads
/// it as a stream without messages). Failures are left to the fetch.
async fn connect(net: &Network, peers: &[PeerId]) {
    let dials = peers.iter().map(|peer| {
        let mut control = net.control();
        async move {
            let opened = tokio::time::timeout(
                CONNECT_TIMEOUT,
                control.open_stream(*peer, mcc_bitswap::PROTOCOL_NAME),
            )
            .await;
            if let Ok(Ok(mut stream)) = opened {
                use futures::AsyncWriteExt;
                let _ = stream.close().await;
            }
        }
    });
    futures::future::join_all(dials).await;
}
