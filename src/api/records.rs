//! Record endpoints: validated DHT records under namespaced keys (`/records/{key}`, slashes
//! allowed) and DID documents (`/dids/{did}`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use mcc_admission::Permission;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::types::{ErrorBody, PutOutcome, SignedDocumentSchema};
use super::{ApiError, ApiJson, AppState};

/// The routes of this file with their OpenAPI paths.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(Doc::openapi())
        .routes(routes!(get_did, put_did))
        .route(
            "/records/{*key}",
            axum::routing::put(put_record).get(get_record),
        )
}

/// Operations routed with a wildcard (keys contain slashes), which `routes!` cannot take, so
/// listed here by hand.
#[derive(OpenApi)]
#[openapi(paths(put_record, get_record))]
struct Doc;

/// A record key from the path: `mcc/hello` or `%2Fmcc%2Fhello` both mean `/mcc/hello`.
fn record_key(raw: &str) -> Result<Vec<u8>, ApiError> {
    let key = if raw.starts_with('/') {
        raw.to_string()
    } else {
        format!("/{raw}")
    };
    mcc_records::parse_key(key.as_bytes()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(key.into_bytes())
}

/// Query of `PUT /records`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PutQuery {
    /// Seconds until the record expires (default: the DHT's record TTL, 36 h, republished
    /// while this node runs); at most a year.
    #[param(maximum = 31536000)]
    ttl: Option<u64>,
}

/// Longest `ttl` of `PUT /records`: a year, in seconds.
const MAX_TTL_SECS: u64 = 365 * 24 * 3600;

/// Stores a record (raw body) under a namespaced key such as `mcc/hello`.
#[utoipa::path(put, path = "/records/{key}", tag = "records",
    params(("key" = String, Path, description = "Namespaced key, e.g. `mcc/hello` (slashes allowed)"), PutQuery),
    request_body(content = Option<Vec<u8>>, content_type = "application/octet-stream",
        description = "The value; none (or an empty body) stores an empty value"),
    responses((status = 200, body = PutOutcome), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 507, body = ErrorBody, description = "The record store is full")))]
async fn put_record(
    State(s): State<AppState>,
    Path(key): Path<String>,
    query: Result<axum::extract::Query<PutQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<PutOutcome>, ApiError> {
    let key = record_key(&key)?;
    let query = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    if query.0.ttl.is_some_and(|t| t > MAX_TTL_SECS) {
        return Err(ApiError::bad_request(format!(
            "ttl is at most {MAX_TTL_SECS} seconds (a year)"
        )));
    }
    let ttl = query.0.ttl.map(std::time::Duration::from_secs);
    s.node.admission().may(Permission::RecordsWrite)?;
    Ok(Json(s.node.put_record(key, body.to_vec(), ttl).await?))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct GetQuery {
    /// Only this node's own copy, without a network lookup.
    local: Option<bool>,
}

/// Reads a record: the best valid version in the DHT, as the raw value.
#[utoipa::path(get, path = "/records/{key}", tag = "records",
    params(("key" = String, Path, description = "Namespaced key, e.g. `mcc/hello`"), GetQuery),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_record(
    State(s): State<AppState>,
    Path(key): Path<String>,
    query: Result<axum::extract::Query<GetQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let key = record_key(&key)?;
    let query = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let found = if query.0.local.unwrap_or(false) {
        s.node.get_local_record(key).await?
    } else {
        s.node.get_record(key).await?
    };
    let mut resp = (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        found.value,
    )
        .into_response();
    let h = resp.headers_mut();
    if let Some(p) = found
        .publisher
        .and_then(|p| HeaderValue::from_str(&p.to_string()).ok())
    {
        h.insert("x-mcc-publisher", p);
    }
    h.insert("x-mcc-versions", HeaderValue::from(found.versions));
    h.insert("x-mcc-queried-peers", HeaderValue::from(found.queried));
    Ok(resp)
}

fn parse_did(did: &str) -> Result<(), ApiError> {
    mcc_records::parse_key(mcc_records::did_key(did).as_ref())
        .map(drop)
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Resolves a DID to its document (the `x-mcc-seq` header carries its sequence number; add
/// `?proof=true` for the signed envelope).
#[utoipa::path(get, path = "/dids/{did}", tag = "records",
    params(("did" = String, Path, description = "A did:key"), DidQuery),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn get_did(
    State(s): State<AppState>,
    Path(did): Path<String>,
    query: Result<axum::extract::Query<DidQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    parse_did(&did)?;
    let query = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let doc = s.node.resolve_did(&did).await?;
    let seq = doc.seq;
    let mut resp = if query.0.proof.unwrap_or(false) {
        Json(doc).into_response()
    } else {
        Json(doc.document).into_response()
    };
    resp.headers_mut()
        .insert("x-mcc-seq", HeaderValue::from(seq));
    Ok(resp)
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DidQuery {
    /// Return `{document, seq, signature}` instead of the bare document.
    proof: Option<bool>,
}

/// Publishes a signed DID document `{document, seq, signature}`. Only the DID's key can sign
/// it, and `seq` must be higher than the one published.
#[utoipa::path(put, path = "/dids/{did}", tag = "records",
    params(("did" = String, Path, description = "A did:key")),
    request_body = SignedDocumentSchema,
    responses((status = 200, body = PutOutcome), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn put_did(
    State(s): State<AppState>,
    Path(did): Path<String>,
    ApiJson(doc): ApiJson<mcc_records::did::SignedDocument>,
) -> Result<Json<PutOutcome>, ApiError> {
    parse_did(&did)?;
    s.node.admission().may(Permission::RecordsWrite)?;
    if doc.did() != Some(did.as_str()) {
        return Err(ApiError::bad_request(format!(
            "the document's id ({}) is not {did}",
            doc.did().unwrap_or("missing")
        )));
    }
    doc.verify()
        .map_err(|e| ApiError::bad_request(format!("invalid DID document: {e}")))?;
    Ok(Json(s.node.publish_did(&doc).await?))
}
