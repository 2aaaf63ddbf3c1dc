//! Node endpoints: this node (`/node`), its connected peers and dialing a peer (`/peers`).

use axum::Json;
use axum::extract::State;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::types::{DialRequest, DialResponse, ErrorBody, NodeInfo, PeerInfo};
use super::{ApiError, ApiJson, AppState};
use crate::node::addr;

/// The routes of this file with their OpenAPI paths.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_node))
        .routes(routes!(get_peers, post_peers))
}

/// This node: id, label, addresses, version.
#[utoipa::path(get, path = "/node", tag = "node",
    responses((status = 200, body = NodeInfo), (status = 503, body = ErrorBody)))]
async fn get_node(State(s): State<AppState>) -> Result<Json<NodeInfo>, ApiError> {
    let mut info = s.node.info().await?;
    info.http_forward = s.http_forward.clone();
    Ok(Json(info))
}

/// Connected peers with their addresses and round-trip times.
#[utoipa::path(get, path = "/peers", tag = "node",
    responses((status = 200, body = Vec<PeerInfo>), (status = 503, body = ErrorBody)))]
async fn get_peers(State(s): State<AppState>) -> Result<Json<Vec<PeerInfo>>, ApiError> {
    Ok(Json(s.node.peers().await?))
}

/// Dials a peer by `host:port` or multiaddr and waits for the connection.
#[utoipa::path(post, path = "/peers", tag = "node", request_body = DialRequest,
    responses((status = 200, body = DialResponse), (status = 400, body = ErrorBody),
              (status = 502, body = ErrorBody)))]
async fn post_peers(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<DialRequest>,
) -> Result<Json<DialResponse>, ApiError> {
    let addr = addr::parse_dial(&req.addr).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let peer = s.node.dial(addr).await?;
    Ok(Json(DialResponse {
        peer_id: peer.to_string(),
    }))
}
