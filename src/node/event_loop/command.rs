//! The messages the [`Node`](crate::node::Node) handle (and the feature handles built on it)
//! send to the event loop, each with the oneshot its answer goes back on.
//!
//! Not to be confused with `cli::Command` (the CLI's subcommands). The loop answers them in
//! `EventLoop::on_command` (event_loop/mod.rs), which hands each one to the file of its
//! concern.

use std::time::Duration;

use libp2p::kad::RecordKey;
use libp2p::{Multiaddr, PeerId};
use mcc_rpc::CallError;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::node::error::Error;
use crate::node::info::{
    AddrBookEntry, AdmissionInfo, FoundRecord, NodeInfo, PeerInfo, PinTarget, PutOutcome,
};

pub(crate) enum Command {
    /// This node's facts and counters.
    Info(oneshot::Sender<NodeInfo>),
    /// The connected peers.
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    /// Connected peers that (as far as we know) speak the RPC protocol.
    RpcPeers(oneshot::Sender<Vec<PeerId>>),
    /// Dial an address; answered once connected (or failed).
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, Error>>,
    },
    /// Call an RPC method of a peer.
    Call {
        peer: PeerId,
        method: String,
        params: Value,
        reply: oneshot::Sender<Result<Value, CallError>>,
    },
    /// Store a record locally and put it to the peers closest to its key.
    PutRecord {
        key: Vec<u8>,
        value: Vec<u8>,
        ttl: Option<Duration>,
        reply: oneshot::Sender<Result<PutOutcome, Error>>,
    },
    /// Look a record up in the DHT (best of the versions found; stale copies repaired).
    GetRecord {
        key: Vec<u8>,
        reply: oneshot::Sender<Result<FoundRecord, Error>>,
    },
    /// Announce this node as a provider of `key` (kept announced until withdrawn).
    Provide { key: RecordKey },
    /// Withdraw a provider announcement.
    StopProviding { key: RecordKey },
    /// Find the providers of `key` (connected to as they are found).
    GetProviders {
        key: RecordKey,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    /// Find the providers of `key`, each sent on `found` as soon as the lookup finds it (the
    /// channel closes when the lookup ends).
    StreamProviders {
        key: RecordKey,
        found: mpsc::Sender<PeerId>,
    },
    /// This node's own copy only.
    GetLocalRecord {
        key: Vec<u8>,
        reply: oneshot::Sender<Option<libp2p::kad::Record>>,
    },
    /// The providers of `key` in this node's own store (no lookup).
    GetLocalProviders {
        key: RecordKey,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    /// Admission state.
    Admission(oneshot::Sender<AdmissionInfo>),
    /// The address book.
    AddrBook(oneshot::Sender<Vec<AddrBookEntry>>),
    /// Pin (`persistent`) or unpin a peer of the address book. An address without peer id
    /// is dialled and its peer pinned once connected.
    Pin {
        target: PinTarget,
        persistent: bool,
        reply: oneshot::Sender<Result<AddrBookEntry, Error>>,
    },
    /// Install a newer revocation list: `Ok(true)` if applied.
    SetRevocations {
        list: Box<mcc_admission::RevocationList>,
        reply: oneshot::Sender<Result<bool, mcc_admission::CertError>>,
    },
}
