//! Admission endpoints: the trusted CA, revocations, banned peers; publishing a revocation
//! list.

use axum::Json;
use axum::extract::State;

use utoipa_axum::{router::OpenApiRouter, routes};

use super::types::{AdmissionInfo, RevocationOutcome};
use super::{ApiError, AppState};

/// The routes of this file with their OpenAPI paths.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_admission))
        .routes(routes!(put_revocations))
}

/// Admission on this node: open or closed, trusted CA, revocation list in force, bans.
#[utoipa::path(get, path = "/admission", tag = "admission",
    responses((status = 200, body = AdmissionInfo)))]
pub(super) async fn get_admission(
    State(s): State<AppState>,
) -> Result<Json<AdmissionInfo>, ApiError> {
    Ok(Json(s.node.admission().info().await?))
}

/// Publishes a CA-signed revocation list (the base64 text of `mcc ca revoke`'s file): this
/// node applies it if it trusts that CA and the list is newer, saves it, and stores it in the
/// DHT at `/mcc/revocations/<ca>` where every node of the network picks it up.
#[utoipa::path(put, path = "/admission/revocations", tag = "admission",
    request_body(content = String, content_type = "text/plain"),
    responses((status = 200, body = RevocationOutcome), (status = 400, body = super::types::ErrorBody),
        (status = 403, body = super::types::ErrorBody), (status = 413, body = super::types::ErrorBody),
        (status = 507, body = super::types::ErrorBody)))]
pub(super) async fn put_revocations(
    State(s): State<AppState>,
    body: Result<String, axum::extract::rejection::StringRejection>,
) -> Result<Json<RevocationOutcome>, ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let list = mcc_admission::RevocationList::from_base64(&body)
        .map_err(|e| ApiError::bad_request(format!("not a revocation list: {e}")))?;
    s.node
        .admission()
        .may(mcc_admission::Permission::RecordsWrite)?;
    Ok(Json(s.node.admission().publish_revocations(list).await?))
}
