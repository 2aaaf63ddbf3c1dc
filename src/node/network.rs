//! [`Network`]: the narrow, cloneable handle to the event loop that every feature handle
//! ([`crate::services::Services`], [`crate::blobs::Blobs`], [`super::Admission`]) is built on.
//!
//! It owns the bounded command sender and the `mcc_streams::Control`, and turns the
//! event-loop commands into typed methods. It knows nothing of services or blobs.

use std::time::Duration;

use libp2p::kad::RecordKey;
use libp2p::{PeerId, kad};
use mcc_admission::{Certificate, Permission};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::error::Error;
use super::event_loop::command::Command;
use super::info::{FoundRecord, NodeInfo, PeerInfo, Provider, PutOutcome};

/// A cloneable handle to the event loop: commands, raw streams and who this node is.
#[derive(Clone)]
pub struct Network {
    tx: mpsc::Sender<Command>,
    control: mcc_streams::Control,
    peer_id: PeerId,
    label: std::sync::Arc<str>,
    certificate: std::sync::Arc<Certificate>,
}

impl Network {
    pub(crate) fn new(
        tx: mpsc::Sender<Command>,
        control: mcc_streams::Control,
        peer_id: PeerId,
        label: &str,
        certificate: Certificate,
    ) -> Self {
        Self {
            tx,
            control,
            peer_id,
            label: label.into(),
            certificate: std::sync::Arc::new(certificate),
        }
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// This node's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// This node's certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// Whether this node's own certificate grants `permission`: the check made before it acts.
    pub fn may(&self, permission: Permission) -> Result<(), Error> {
        if self.certificate.permissions().allows(permission) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "this node's certificate lacks the {permission} permission"
            )))
        }
    }

    /// A control to open raw streams (tunnels, blob transfers) to peers.
    pub fn control(&self) -> mcc_streams::Control {
        self.control.clone()
    }

    pub(crate) async fn send(&self, cmd: Command) -> Result<(), Error> {
        self.tx.send(cmd).await.map_err(|_| Error::Stopped)
    }

    pub(crate) async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Announces this node as a provider of `key` (failures are logged by the event loop).
    pub async fn provide(&self, key: RecordKey) -> Result<(), Error> {
        self.send(Command::Provide { key }).await
    }

    /// Withdraws the announcement of `key`.
    pub async fn stop_providing(&self, key: RecordKey) -> Result<(), Error> {
        self.send(Command::StopProviding { key }).await
    }

    /// Looks the providers of `key` up in the DHT.
    pub async fn providers(&self, key: RecordKey) -> Result<Vec<PeerId>, Error> {
        self.request(|reply| Command::GetProviders { key, reply })
            .await
    }

    /// Looks the providers of `key` up in the DHT, yielding each as soon as it is found (and
    /// connecting to it); the receiver ends with the lookup.
    pub async fn providers_stream(&self, key: RecordKey) -> Result<mpsc::Receiver<PeerId>, Error> {
        let (found, rx) = mpsc::channel(super::event_loop::providers::STREAM_CAPACITY);
        self.send(Command::StreamProviders { key, found }).await?;
        Ok(rx)
    }

    /// The providers of `key` this node holds records of itself (no lookup).
    pub async fn local_providers(&self, key: RecordKey) -> Result<Vec<PeerId>, Error> {
        self.request(|reply| Command::GetLocalProviders { key, reply })
            .await
    }

    /// The providers of a DHT key with what is known of them, this node included when
    /// `local`: this node first, then connected peers by round-trip time, then the others.
    pub async fn ranked_providers(
        &self,
        key: libp2p::kad::RecordKey,
        local: bool,
    ) -> Result<Vec<Provider>, Error> {
        let me = self.peer_id();
        let ids: Vec<PeerId> = self
            .providers(key)
            .await?
            .into_iter()
            .filter(|p| *p != me)
            .collect();
        let peers = self.peers().await?;
        let mut out: Vec<Provider> = ids
            .into_iter()
            .map(|id| {
                let p = peers.iter().find(|p| p.peer_id == id);
                Provider {
                    peer_id: id,
                    label: p.and_then(|p| p.label.clone()),
                    local: false,
                    connected: p.is_some(),
                    rtt_ms: p.and_then(|p| p.rtt_ms),
                    addrs: p.map(|p| p.addrs.clone()).unwrap_or_default(),
                }
            })
            .collect();
        if local {
            out.push(Provider {
                peer_id: self.peer_id(),
                label: Some(self.label().to_string()),
                local: true,
                connected: true,
                rtt_ms: Some(0.0),
                addrs: Vec::new(),
            });
        }
        out.sort_by(|a, b| {
            (!a.local, !a.connected)
                .cmp(&(!b.local, !b.connected))
                .then(
                    a.rtt_ms
                        .unwrap_or(f64::MAX)
                        .total_cmp(&b.rtt_ms.unwrap_or(f64::MAX)),
                )
        });
        Ok(out)
    }

    /// What the node says about itself.
    pub async fn info(&self) -> Result<NodeInfo, Error> {
        self.request(Command::Info).await
    }

    /// The connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, Error> {
        self.request(Command::Peers).await
    }

    /// The connected peers that speak this node's RPC protocol.
    pub async fn rpc_peers(&self) -> Result<Vec<PeerId>, Error> {
        self.request(Command::RpcPeers).await
    }

    /// Calls `method` on another peer over RPC.
    pub async fn call(&self, peer: PeerId, method: &str, params: Value) -> Result<Value, Error> {
        Ok(self
            .request(|reply| Command::Call {
                peer,
                method: method.to_string(),
                params,
                reply,
            })
            .await??)
    }

    /// Validates and stores a record locally and on the closest peers.
    pub async fn put_record(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<PutOutcome, Error> {
        self.request(|reply| Command::PutRecord {
            key,
            value,
            ttl,
            reply,
        })
        .await?
    }

    /// Looks a record up (locally and in the DHT) and returns the best valid version.
    pub async fn get_record(&self, key: Vec<u8>) -> Result<FoundRecord, Error> {
        self.request(|reply| Command::GetRecord { key, reply })
            .await?
    }

    /// This node's own copy of a record (`None`: it holds none).
    pub async fn get_local_record(&self, key: Vec<u8>) -> Result<Option<kad::Record>, Error> {
        self.request(|reply| Command::GetLocalRecord { key, reply })
            .await
    }

    /// Completes when the event loop has stopped.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}
