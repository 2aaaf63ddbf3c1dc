//! RPC endpoints: echo and RPC calls, to one peer or to this node and every connected peer at
//! once.

use axum::Json;
use axum::extract::{Path, State};
use libp2p::PeerId;
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::types::{
    EchoReply, EchoRequest, EchoResponse, ErrorBody, RpcReply, RpcRequest, RpcResponse,
};
use super::{ApiError, ApiJson, AppState};
use crate::node::CallOutcome;

/// The routes of this file with their OpenAPI paths.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_echo))
        .routes(routes!(post_rpc))
}

fn parse_peer(s: &str) -> Result<PeerId, ApiError> {
    s.parse()
        .map_err(|e| ApiError::bad_request(format!("invalid peer id {s:?}: {e}")))
}

fn text_of(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn ms(o: &CallOutcome) -> f64 {
    o.rtt.as_secs_f64() * 1000.0
}

/// Echoes a message off one peer, or off this node and every connected peer at once.
#[utoipa::path(post, path = "/echo", tag = "rpc", request_body = EchoRequest,
    responses((status = 200, body = EchoResponse), (status = 400, body = ErrorBody)))]
async fn post_echo(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<EchoRequest>,
) -> Result<Json<EchoResponse>, ApiError> {
    let peer = req.peer.as_deref().map(parse_peer).transpose()?;
    let outcomes = s.node.echo(&req.message, peer).await?;
    let replies = outcomes
        .into_iter()
        .map(|o| {
            let rtt_ms = ms(&o);
            let (message, error) = match o.result {
                Ok(v) => (Some(text_of(v)), None),
                Err(e) => (None, Some(e.to_string())),
            };
            EchoReply {
                peer_id: o.peer_id.to_string(),
                message,
                error,
                rtt_ms,
            }
        })
        .collect();
    Ok(Json(EchoResponse { replies }))
}

/// Calls an RPC method on one peer, or on this node and every connected peer at once.
#[utoipa::path(post, path = "/rpc/{method}", tag = "rpc", request_body = RpcRequest,
    params(("method" = String, Path, description = "Method name, e.g. echo")),
    responses((status = 200, body = RpcResponse), (status = 400, body = ErrorBody)))]
async fn post_rpc(
    State(s): State<AppState>,
    Path(method): Path<String>,
    ApiJson(req): ApiJson<RpcRequest>,
) -> Result<Json<RpcResponse>, ApiError> {
    if method.is_empty() || method.len() > 128 {
        return Err(ApiError::bad_request("method name must be 1 to 128 bytes"));
    }
    let outcomes = match req.peer.as_deref().map(parse_peer).transpose()? {
        Some(p) => vec![s.node.call_outcome(p, &method, req.params).await],
        None => s.node.multicall(&method, req.params, true).await?,
    };
    let replies = outcomes
        .into_iter()
        .map(|o| {
            let rtt_ms = ms(&o);
            let (result, error) = match o.result {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(e.to_string())),
            };
            RpcReply {
                peer_id: o.peer_id.to_string(),
                result,
                error,
                rtt_ms,
            }
        })
        .collect();
    Ok(Json(RpcResponse { replies }))
}
