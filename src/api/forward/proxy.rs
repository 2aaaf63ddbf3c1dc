//! [`proxy`]: one request forwarded to a service as a reverse proxy does.
//!
//! The client's connection belongs to the forward listener (hyper's server): whatever the
//! service does with its own connection (HTTP/1.0, `Connection: close`), the client is
//! answered in HTTP/1.1 and keeps its connection. Upstream, each request goes on an idle
//! connection to the service from [`Upstreams`] or on a new one over a fresh tunnel, with
//! hyper's HTTP/1.1 client; hyper keeps the framing right both ways (chunked bodies, HEAD,
//! 204 and 304 without bodies, interim `100 Continue`). Upgrades (WebSocket) are forwarded:
//! on the service's `101` both connections are handed over and piped in a task.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, Uri, Version, header};
use axum::response::Response;
use hyper::body::{Body as HttpBody, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::headers;
use super::pool::{Answer, Upstreams};
use crate::api::ApiError;
use crate::node::Node;

fn bad_gateway(service: &str, e: &hyper::Error) -> ApiError {
    let why = if e.is_incomplete_message() {
        "the service closed the connection before answering".to_string()
    } else {
        e.to_string()
    };
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        format!("forwarding to {service} failed: {why}"),
    )
}

/// A new HTTP/1.1 connection to `service` over a fresh tunnel (driven in a task of its own).
async fn connect(node: &Node, service: &str) -> Result<SendRequest<Body>, ApiError> {
    let tunnel = node.services().open_tunnel(service, None).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tunnel))
        .await
        .map_err(|e| bad_gateway(service, &e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("forwarded HTTP connection: {e}");
        }
    });
    Ok(sender)
}

/// The parts of a request needed to send it again (bodiless and idempotent requests only).
struct Replay {
    method: axum::http::Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
}

impl Replay {
    fn of(req: &Request<Body>) -> Option<Replay> {
        (req.method().is_idempotent() && req.body().is_end_stream()).then(|| Replay {
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers: req.headers().clone(),
        })
    }

    fn request(self) -> Request<Body> {
        let mut req = Request::new(Body::empty());
        *req.method_mut() = self.method;
        *req.uri_mut() = self.uri;
        *req.headers_mut() = self.headers;
        req
    }
}

/// Sends `req` to `service`: on an idle connection when there is one (sent again on a new
/// connection if that one turns out closed and sending again is safe), else on a new one.
async fn send(
    node: &Node,
    pool: &Upstreams,
    service: &str,
    req: Request<Body>,
) -> Result<(hyper::Response<Incoming>, SendRequest<Body>), ApiError> {
    let mut req = req;
    if let Some(mut sender) = pool.take(service).await {
        let replay = Replay::of(&req);
        match sender.try_send_request(req).await {
            Ok(resp) => return Ok((resp, sender)),
            Err(mut e) => match (e.take_message(), replay) {
                (Some(unsent), _) => req = unsent,
                (None, Some(replay)) => req = replay.request(),
                (None, None) => return Err(bad_gateway(service, e.error())),
            },
        }
        tracing::debug!(
            service,
            "idle upstream connection was closed; opening another"
        );
    }
    let mut sender = connect(node, service).await?;
    match sender.send_request(req).await {
        Ok(resp) => Ok((resp, sender)),
        Err(e) => Err(bad_gateway(service, &e)),
    }
}

/// Forwards `req` to `service` at `path_and_query`; `prefix` is where the service is mounted
/// on this side (sent as `X-Forwarded-Prefix`). Waits at most the pool's timeout for the
/// tunnel and the answer's head (then 504); the answer's body is streamed back.
pub(crate) async fn proxy(
    node: &Node,
    pool: &Arc<Upstreams>,
    service: &str,
    prefix: Option<&str>,
    path_and_query: &str,
    mut req: Request<Body>,
) -> Result<Response, ApiError> {
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let upgrade = headers::upgrade_of(req.headers());
    let client_io: Option<OnUpgrade> = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));

    let (mut parts, body) = req.into_parts();
    parts.uri = path_and_query
        .parse()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad path: {e}")))?;
    parts.version = Version::HTTP_11;
    parts.extensions = Default::default();
    headers::strip_hop_by_hop(&mut parts.headers);
    if let Some(protocol) = upgrade.clone() {
        headers::set_upgrade(&mut parts.headers, protocol);
    }
    let host = HeaderValue::from_str(service)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    headers::add_forwarded(&mut parts.headers, &host, client, prefix);
    let req = Request::from_parts(parts, body);

    let timeout = pool.timeout();
    let (resp, sender) = tokio::time::timeout(timeout, send(node, pool, service, req))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("{service} did not answer within {}s", timeout.as_secs_f64()),
            )
        })??;

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        return switch(service, client_io, resp);
    }
    let (mut parts, body) = resp.into_parts();
    parts.version = Version::HTTP_11;
    headers::strip_hop_by_hop(&mut parts.headers);
    headers::add_via(&mut parts.headers);
    let body = Answer::new(body, pool, service, sender);
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// Answers the client's upgrade with the service's `101` and pipes both connections once
/// both are handed over.
fn switch(
    service: &str,
    client_io: Option<OnUpgrade>,
    mut resp: hyper::Response<Incoming>,
) -> Result<Response, ApiError> {
    let Some(client_io) = client_io else {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("{service} switched protocols without being asked"),
        ));
    };
    let protocol = resp.headers().get(header::UPGRADE).cloned();
    let upstream_io = hyper::upgrade::on(&mut resp);
    let (mut parts, _) = resp.into_parts();
    parts.version = Version::HTTP_11;
    headers::strip_hop_by_hop(&mut parts.headers);
    headers::add_via(&mut parts.headers);
    if let Some(protocol) = protocol {
        headers::set_upgrade(&mut parts.headers, protocol);
    }
    let service = service.to_string();
    tokio::spawn(async move {
        match tokio::try_join!(client_io, upstream_io) {
            Ok((client, upstream)) => {
                let mut client = TokioIo::new(client);
                let mut upstream = TokioIo::new(upstream);
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                    tracing::debug!(service, "forwarded upgrade ended: {e}");
                }
            }
            Err(e) => tracing::debug!(service, "forwarded upgrade failed: {e}"),
        }
    });
    Ok(Response::from_parts(parts, Body::empty()))
}
