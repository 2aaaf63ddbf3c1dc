//! Address book endpoints: the book (`GET /addrbook`) and pinning peers
//! (`POST /addrbook/pin`, `POST /addrbook/unpin`).

use axum::Json;
use axum::extract::State;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::types::{AddrBookEntry, ErrorBody, PinRequest};
use super::{ApiError, ApiJson, AppState};
use crate::node::PinTarget;

/// The routes of this file with their OpenAPI paths.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_addrbook))
        .routes(routes!(post_pin))
        .routes(routes!(post_unpin))
}

/// Every peer this node has seen: addresses, sources, persistence, failures and backoff.
#[utoipa::path(get, path = "/addrbook", tag = "node",
    responses((status = 200, body = Vec<AddrBookEntry>), (status = 503, body = ErrorBody)))]
async fn get_addrbook(State(s): State<AppState>) -> Result<Json<Vec<AddrBookEntry>>, ApiError> {
    Ok(Json(s.node.addrbook().await?))
}

/// Makes a peer persistent: redialled forever with backoff, never closed for `--max-peers`.
/// An address without peer id is dialled to learn it.
#[utoipa::path(post, path = "/addrbook/pin", tag = "node", request_body = PinRequest,
    responses((status = 200, body = AddrBookEntry), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn post_pin(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<PinRequest>,
) -> Result<Json<AddrBookEntry>, ApiError> {
    let target = parse(&req.target)?;
    Ok(Json(s.node.pin(target, true).await?))
}

/// Makes a peer ordinary again (dropped after `--max-dial-attempts` failures in a row).
#[utoipa::path(post, path = "/addrbook/unpin", tag = "node", request_body = PinRequest,
    responses((status = 200, body = AddrBookEntry), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn post_unpin(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<PinRequest>,
) -> Result<Json<AddrBookEntry>, ApiError> {
    let target = parse(&req.target)?;
    Ok(Json(s.node.pin(target, false).await?))
}

fn parse(target: &str) -> Result<PinTarget, ApiError> {
    target.parse().map_err(|e| {
        ApiError::bad_request(format!(
            "{target:?} is neither a peer id nor an address: {e}"
        ))
    })
}
