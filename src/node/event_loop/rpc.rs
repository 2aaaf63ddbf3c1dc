//! RPC calls to peers (the `mcc_rpc` behaviour): outgoing calls waiting for their answer,
//! the peers worth calling, and the RPC metrics.

use std::collections::HashMap;

use libp2p::{PeerId, StreamProtocol};
use mcc_rpc::{CallError, OutboundRequestId};
use serde_json::Value;
use tokio::sync::oneshot;

use super::EventLoop;
use crate::node::metrics::NodeMetrics;

/// What the loop keeps about RPC.
pub(super) struct Rpc {
    /// The RPC protocol a peer must speak to be called.
    protocol: StreamProtocol,
    /// Calls waiting for their answer.
    pending_calls: HashMap<OutboundRequestId, oneshot::Sender<Result<Value, CallError>>>,
}

impl Rpc {
    pub(super) fn new(protocol: StreamProtocol) -> Self {
        Self {
            protocol,
            pending_calls: HashMap::new(),
        }
    }
}

impl EventLoop {
    /// `Command::Call`: answered in [`on_rpc`](Self::on_rpc).
    pub(super) fn call(
        &mut self,
        peer: PeerId,
        method: String,
        params: Value,
        reply: oneshot::Sender<Result<Value, CallError>>,
    ) {
        self.mesh_used(peer);
        match self.swarm.behaviour_mut().rpc.call(&peer, &method, params) {
            Ok(id) => {
                self.rpc.pending_calls.insert(id, reply);
            }
            Err(e) => {
                self.metrics
                    .rpc_outbound
                    .get_or_create(&NodeMetrics::outcome(false))
                    .inc();
                let _ = reply.send(Err(e));
            }
        }
    }

    /// `Command::RpcPeers`: connected peers that (as far as we know) speak the RPC protocol.
    pub(super) fn rpc_peers(&self) -> Vec<PeerId> {
        let rpc = &self.rpc.protocol;
        let gates = self.swarm.behaviour().admission.gates();
        self.peers
            .connected
            .iter()
            // Not yet identified peers are tried too: they may well speak it.
            .filter(|(_, s)| s.protocols.is_empty() || s.protocols.contains(rpc))
            // With --trust-ca, only admitted peers.
            .filter(|(p, _)| gates.is_admitted(p))
            .map(|(p, _)| *p)
            .collect()
    }

    pub(super) fn on_rpc(&mut self, event: mcc_rpc::Event) {
        match event {
            mcc_rpc::Event::OutboundResult {
                request_id, result, ..
            } => {
                self.metrics
                    .rpc_outbound
                    .get_or_create(&NodeMetrics::outcome(result.is_ok()))
                    .inc();
                if let Some(reply) = self.rpc.pending_calls.remove(&request_id) {
                    let _ = reply.send(result);
                }
            }
            mcc_rpc::Event::InboundAnswered { peer, ok, .. } => {
                self.mesh_used(peer);
                self.metrics
                    .rpc_inbound
                    .get_or_create(&NodeMetrics::outcome(ok))
                    .inc();
            }
            mcc_rpc::Event::InboundFailure { peer, error } => {
                tracing::debug!(%peer, "inbound rpc failed: {error}");
                self.metrics
                    .rpc_inbound
                    .get_or_create(&NodeMetrics::outcome(false))
                    .inc();
            }
        }
    }
}
