//! User stream endpoints: raw byte pipes to and from peers through an HTTP/1.1 upgrade
//! (`Connection: upgrade`, `Upgrade: mcc-stream`). After `101 Switching Protocols` the HTTP
//! connection carries the stream's bytes both ways; closing the writing side of the
//! connection (a TCP half-close) half-closes the stream, and the peer's half-close reaches
//! the client as end of input while the other direction keeps flowing.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use libp2p::PeerId;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::types::{ErrorBody, STREAM_PEER_HEADER, STREAM_UPGRADE};
use super::{ApiError, AppState};
use crate::streams::{self, Stream};

/// Buffer per direction of a pipe.
const PIPE_BUFFER: usize = 64 * 1024;

/// The routes of this file with their OpenAPI paths.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(listen))
        .routes(routes!(connect))
}

/// Waits for the first peer to open the stream NAME to this node, then switches the HTTP
/// connection to that stream's raw bytes (the name is free again for the next listener).
#[utoipa::path(get, path = "/streams/{name}/listen", tag = "streams",
    params(
        ("name" = String, Path, description = "1-64 characters of A-Z a-z 0-9 . _ -"),
        ("Upgrade" = String, Header, description = "mcc-stream (with Connection: upgrade)"),
    ),
    responses(
        (status = 101, description = "The stream's bytes follow, both ways",
            headers(("mcc-peer" = String, description = "The peer that opened the stream"))),
        (status = 400, description = "Invalid stream name", body = ErrorBody),
        (status = 409, description = "Something on this node already listens on NAME",
            body = ErrorBody),
        (status = 426, description = "Not an HTTP/1.1 upgrade to mcc-stream", body = ErrorBody),
        (status = 503, description = "The node stopped while waiting", body = ErrorBody),
    ))]
async fn listen(State(s): State<AppState>, Path(name): Path<String>, req: Request) -> Response {
    answer(listen_upgrade(s, name, req).await)
}

async fn listen_upgrade(s: AppState, name: String, mut req: Request) -> Result<Response, ApiError> {
    streams::validate_name(&name)?;
    let on_upgrade = upgrade_requested(&mut req)?;
    let mut listener = s.node.streams().listen(&name)?;
    let (peer, stream) = listener
        .accept()
        .await
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the node is not running"))?;
    drop(listener);
    tracing::debug!(%peer, name, "stream accepted for an API client");
    Ok(switch(on_upgrade, peer, stream))
}

/// Opens the stream NAME to PEER (dialing it through its known addresses if needed), then
/// switches the HTTP connection to that stream's raw bytes.
#[utoipa::path(get, path = "/streams/{name}/connect/{peer}", tag = "streams",
    params(
        ("name" = String, Path, description = "1-64 characters of A-Z a-z 0-9 . _ -"),
        ("peer" = String, Path, description = "Peer id"),
        ("Upgrade" = String, Header, description = "mcc-stream (with Connection: upgrade)"),
    ),
    responses(
        (status = 101, description = "The stream's bytes follow, both ways",
            headers(("mcc-peer" = String, description = "The peer at the other end"))),
        (status = 400, description = "Invalid stream name or peer id, or this node itself",
            body = ErrorBody),
        (status = 426, description = "Not an HTTP/1.1 upgrade to mcc-stream", body = ErrorBody),
        (status = 502, description = "The peer is unreachable or does not listen on NAME",
            body = ErrorBody),
        (status = 504, description = "The peer did not answer in time", body = ErrorBody),
    ))]
async fn connect(
    State(s): State<AppState>,
    Path((name, peer)): Path<(String, String)>,
    req: Request,
) -> Response {
    answer(connect_upgrade(s, name, peer, req).await)
}

async fn connect_upgrade(
    s: AppState,
    name: String,
    peer: String,
    mut req: Request,
) -> Result<Response, ApiError> {
    streams::validate_name(&name)?;
    let peer: PeerId = peer
        .parse()
        .map_err(|_| streams::Error::InvalidPeer(peer.clone()))?;
    let on_upgrade = upgrade_requested(&mut req)?;
    let stream = s.node.streams().open(peer, &name).await?;
    Ok(switch(on_upgrade, peer, stream))
}

/// The answer, with `Upgrade: mcc-stream` on a 426 (RFC 9110 asks for it).
fn answer(result: Result<Response, ApiError>) -> Response {
    match result {
        Ok(resp) => resp,
        Err(e) => {
            let required = e.status == StatusCode::UPGRADE_REQUIRED;
            let mut resp = e.into_response();
            if required {
                resp.headers_mut()
                    .insert(header::UPGRADE, HeaderValue::from_static(STREAM_UPGRADE));
            }
            resp
        }
    }
}

/// The upgrade of a request asking for `Upgrade: mcc-stream` over HTTP/1.1, or a 426.
fn upgrade_requested(req: &mut Request) -> Result<OnUpgrade, ApiError> {
    if req.version() != Version::HTTP_11 || !asks_upgrade(req.headers()) {
        return Err(ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            format!(
                "this endpoint pipes raw bytes: send an HTTP/1.1 request with \
                 `Connection: upgrade` and `Upgrade: {STREAM_UPGRADE}`"
            ),
        ));
    }
    Ok(hyper::upgrade::on(req))
}

/// Whether `Connection` lists `upgrade` and `Upgrade` is `mcc-stream`.
fn asks_upgrade(headers: &HeaderMap) -> bool {
    let connection = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let upgrade = headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(STREAM_UPGRADE));
    connection && upgrade
}

/// Answers `101 Switching Protocols` and pipes the upgraded connection to `stream` in a task
/// of its own once the answer has gone out.
fn switch(on_upgrade: OnUpgrade, peer: PeerId, stream: Stream) -> Response {
    tokio::spawn(pipe(on_upgrade, stream));
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static(STREAM_UPGRADE));
    if let Ok(v) = HeaderValue::from_str(&peer.to_string()) {
        headers.insert(STREAM_PEER_HEADER, v);
    }
    resp.into_response()
}

/// Copies both ways until both sides have finished writing: the end of one direction
/// half-closes the other side's writer, the other direction keeps flowing.
async fn pipe(on_upgrade: OnUpgrade, mut stream: Stream) {
    let peer = stream.peer();
    let upgraded = match on_upgrade.await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(%peer, "the API client did not take the stream: {e}");
            return;
        }
    };
    let mut client = hyper_util::rt::TokioIo::new(upgraded);
    match tokio::io::copy_bidirectional_with_sizes(
        &mut client,
        &mut stream,
        PIPE_BUFFER,
        PIPE_BUFFER,
    )
    .await
    {
        Ok((up, down)) => {
            tracing::debug!(%peer, name = stream.name(), up, down, "stream pipe closed")
        }
        Err(e) => tracing::debug!(%peer, name = stream.name(), "stream pipe failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_upgrade_to_mcc_stream_is_taken() {
        let mut h = HeaderMap::new();
        assert!(!asks_upgrade(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("MCC-Stream"));
        assert!(!asks_upgrade(&h), "no Connection: upgrade");
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(asks_upgrade(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!asks_upgrade(&h));
    }
}
