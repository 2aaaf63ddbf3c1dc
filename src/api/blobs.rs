//! Blob endpoints: streamed upload, download (fetched from seeders when missing, with
//! `Range`), fetch with progress (NDJSON), list, delete, providers.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::types::{BlobInfo, FetchSummary, Provider};
use super::{ApiError, AppState};
use crate::blobs::parse_cid;

/// The routes of this file with their OpenAPI paths.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_blob, list_blobs))
        .routes(routes!(get_blob, delete_blob))
        .routes(routes!(fetch_blob))
        .routes(routes!(blob_providers))
}

/// Stores the request body (streamed, any size, not empty) as a blob.
#[utoipa::path(post, path = "/blobs", tag = "blobs",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = BlobInfo),
              (status = 400, description = "The body is empty or could not be read", body = super::types::ErrorBody)))]
pub(super) async fn post_blob(
    State(s): State<AppState>,
    body: Body,
) -> Result<(StatusCode, Json<BlobInfo>), ApiError> {
    s.node
        .admission()
        .may(mcc_admission::Permission::BlobsSeed)?;
    let stream = body
        .into_data_stream()
        .map(|r| r.map_err(std::io::Error::other));
    let mut reader = tokio_util::io::StreamReader::new(stream);
    // A request without a body (or an empty one) is refused rather than stored as an empty
    // blob: it is almost always a client mistake.
    let first = tokio::io::AsyncBufReadExt::fill_buf(&mut reader)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
    if first.is_empty() {
        return Err(ApiError::bad_request("the body is empty: nothing to store"));
    }
    let info = s.node.blobs().add(reader).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// Blobs stored on this node.
#[utoipa::path(get, path = "/blobs", tag = "blobs",
    responses((status = 200, body = Vec<BlobInfo>)))]
pub(super) async fn list_blobs(State(s): State<AppState>) -> Json<Vec<BlobInfo>> {
    Json(s.node.blobs().list())
}

/// A single byte range of a `Range` header, or `None` for the whole blob. `Err(())`: the
/// range cannot be satisfied.
fn parse_range(headers: &HeaderMap, size: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(v) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        // Several ranges: answer with the whole blob, which a client must accept.
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.is_empty(), b.is_empty()) {
        (true, false) => {
            let n: u64 = b.parse().map_err(|_| ())?;
            size.saturating_sub(n)..size
        }
        (false, _) => {
            let start: u64 = a.parse().map_err(|_| ())?;
            let end = if b.is_empty() {
                size
            } else {
                b.parse::<u64>()
                    .map_err(|_| ())?
                    .saturating_add(1)
                    .min(size)
            };
            start..end
        }
        (true, true) => return Err(()),
    };
    if range.start >= range.end || range.start >= size {
        return Err(());
    }
    Ok(Some(range))
}

/// A blob's bytes; fetched from its seeders first when it is not stored here. `Range`
/// requests get 206.
#[utoipa::path(get, path = "/blobs/{cid}", tag = "blobs",
    params(("cid" = String, Path)),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
              (status = 206, description = "The requested range"),
              (status = 400, body = super::types::ErrorBody), (status = 404, body = super::types::ErrorBody),
              (status = 416, body = super::types::ErrorBody),
              (status = 422, description = "The blob's DAG is out of proportion (a DAG bomb): refused", body = super::types::ErrorBody)))]
pub(super) async fn get_blob(
    State(s): State<AppState>,
    Path(cid): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let cid = parse_cid(&cid)?;
    s.node.blobs().fetch(&cid, |_| {}).await?;
    let size = s
        .node
        .blobs()
        .list()
        .into_iter()
        .find(|b| b.cid == cid.to_string())
        .map(|b| b.size)
        .unwrap_or(0);
    let range = match parse_range(&headers, size) {
        Ok(r) => r,
        Err(()) => {
            let mut resp = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("range not satisfiable for a blob of {size} bytes"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    };
    let (total, stream) = s.node.blobs().read(&cid, range.clone()).await?;
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{cid}\"")) {
        h.insert(header::ETAG, v);
    }
    match range {
        Some(r) => {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = resp.headers_mut();
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(r.end - r.start));
            if let Ok(v) =
                HeaderValue::from_str(&format!("bytes {}-{}/{total}", r.start, r.end - 1))
            {
                h.insert(header::CONTENT_RANGE, v);
            }
        }
        None => {
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(total));
        }
    }
    Ok(resp)
}

/// Fetches a blob from its seeders, streaming progress as JSON lines
/// (`{"blocks_done", "bytes_done", "total_bytes", "seeders"}`), then one final line: the
/// fetch summary, or `{"error": ...}`.
#[utoipa::path(post, path = "/blobs/{cid}/fetch", tag = "blobs",
    params(("cid" = String, Path)),
    responses((status = 200, content_type = "application/x-ndjson", body = FetchSummary),
              (status = 400, body = super::types::ErrorBody)))]
pub(super) async fn fetch_blob(
    State(s): State<AppState>,
    Path(cid): Path<String>,
) -> Result<Response, ApiError> {
    let cid = parse_cid(&cid)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(16);
    let node = s.node.clone();
    tokio::spawn(async move {
        let progress_tx = tx.clone();
        let mut last = std::time::Instant::now();
        let result = node
            .blobs()
            .fetch(&cid, move |p| {
                if last.elapsed() >= std::time::Duration::from_millis(100) {
                    last = std::time::Instant::now();
                    let line = serde_json::json!({
                        "blocks_done": p.blocks_done,
                        "bytes_done": p.bytes_done,
                        "total_bytes": p.total_bytes,
                        "seeders": p.seeders,
                    });
                    let _ = progress_tx.try_send(format!("{line}\n"));
                }
            })
            .await;
        let last_line = match result {
            Ok(summary) => serde_json::to_string(&summary).unwrap_or_default(),
            Err(e) => serde_json::json!({ "error": e.to_string() }).to_string(),
        };
        let _ = tx.send(format!("{last_line}\n")).await;
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, std::io::Error>(line), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}

/// Deletes a blob stored here (blocks no other blob uses too) and stops seeding it.
#[utoipa::path(delete, path = "/blobs/{cid}", tag = "blobs",
    params(("cid" = String, Path)),
    responses((status = 204), (status = 400, body = super::types::ErrorBody),
              (status = 404, body = super::types::ErrorBody)))]
pub(super) async fn delete_blob(
    State(s): State<AppState>,
    Path(cid): Path<String>,
) -> Result<StatusCode, ApiError> {
    let cid = parse_cid(&cid)?;
    s.node.blobs().delete(&cid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Seeders of a blob, best first.
#[utoipa::path(get, path = "/blobs/{cid}/providers", tag = "blobs",
    params(("cid" = String, Path)),
    responses((status = 200, body = Vec<Provider>), (status = 400, body = super::types::ErrorBody)))]
pub(super) async fn blob_providers(
    State(s): State<AppState>,
    Path(cid): Path<String>,
) -> Result<Json<Vec<Provider>>, ApiError> {
    let cid = parse_cid(&cid)?;
    Ok(Json(s.node.blobs().providers(&cid).await?))
}
