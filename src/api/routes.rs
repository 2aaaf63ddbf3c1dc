//! Route endpoints: publish a body, follow a route as Server-Sent Events, list routes
//! (`/routes/{route}`, slashes allowed in the route).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::types::{ErrorBody, PublishResponse, RouteEntry, RouteMessage};
use super::{ApiError, AppState};
use crate::routes::{Message, RouteInfo};

/// Longest `wait_ms` accepted.
const MAX_WAIT_MS: u64 = 60_000;
/// Suffix of the event stream path.
const EVENTS: &str = "/events";

/// The routes of this file with their OpenAPI paths.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(Doc::openapi())
        .routes(routes!(list_routes))
        .route("/routes/{*route}", axum::routing::post(publish).get(events))
}

/// Operations routed with a wildcard (route names contain slashes), which `routes!` cannot
/// take, so listed here by hand.
#[derive(OpenApi)]
#[openapi(paths(publish, events))]
struct Doc;

/// Query of `POST /routes/{route}`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PublishQuery {
    /// Wait up to this many milliseconds (at most 60000) for someone to listen first.
    #[param(maximum = 60000)]
    wait_ms: Option<u64>,
    /// Type tag of the message: reaches interests with no tag or this one.
    tag: Option<String>,
}

/// Query of `GET /routes/{route}/events`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// Only messages of this type tag (and untyped ones).
    tag: Option<String>,
}

/// Publishes the raw body on ROUTE: it goes to local subscribers and to every connected peer
/// that announced an interest, and to nobody else.
#[utoipa::path(post, path = "/routes/{route}", tag = "routes",
    params(("route" = String, Path, description = "Route name, e.g. sensors/temp: a-z 0-9 . _ - and /"),
        PublishQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, body = PublishResponse),
        (status = 400, description = "Bad route name or tag", body = ErrorBody),
        (status = 403, description = "This node's certificate lacks routes:publish", body = ErrorBody),
        (status = 413, description = "Message over the size limit", body = ErrorBody),
        (status = 504, description = "Nobody listened within wait_ms", body = ErrorBody),
    ))]
async fn publish(
    State(s): State<AppState>,
    Path(route): Path<String>,
    query: Result<Query<PublishQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Result<Json<PublishResponse>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let publisher = s.node.routes().publish_typed(&route, q.tag.as_deref())?;
    if let Some(ms) = q.wait_ms {
        if ms > MAX_WAIT_MS {
            return Err(ApiError::bad_request(format!(
                "wait_ms is at most {MAX_WAIT_MS}"
            )));
        }
        let waited =
            tokio::time::timeout(Duration::from_millis(ms), publisher.wait_for_listener()).await;
        if waited.is_err() {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("nobody listens on {route} (waited {ms} ms)"),
            ));
        }
    }
    let delivery = publisher
        .send(body)
        .await
        .map_err(crate::routes::Error::from)?;
    Ok(Json(PublishResponse {
        route,
        seq: delivery.seq,
        peers: delivery.peers,
        dropped: delivery.dropped,
    }))
}

/// Follows ROUTE: subscribes and streams every message as a Server-Sent Event
/// (`event: message`, `id:` the sequence number, `data:` a RouteMessage in JSON) until the
/// client goes away. A client that reads too slowly loses messages; each event's `dropped`
/// says how many so far.
#[utoipa::path(get, path = "/routes/{route}/events", tag = "routes",
    params(("route" = String, Path, description = "Route name, e.g. sensors/temp"), EventsQuery),
    responses(
        (status = 200, description = "text/event-stream of RouteMessage events", body = RouteMessage,
            content_type = "text/event-stream"),
        (status = 400, description = "Bad route name or tag", body = ErrorBody),
        (status = 403, description = "This node's certificate lacks routes:subscribe", body = ErrorBody),
        (status = 409, description = "Subscribers here use another tag", body = ErrorBody),
    ))]
async fn events(
    State(s): State<AppState>,
    Path(path): Path<String>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Some(route) = path.strip_suffix(EVENTS) else {
        // One wildcard route serves both paths: `/routes/{route}` itself only takes POST.
        let mut resp = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST publishes on a route; GET /api/v1/routes/{route}/events follows it",
        )
        .into_response();
        resp.headers_mut().insert(
            axum::http::header::ALLOW,
            axum::http::HeaderValue::from_static("POST"),
        );
        return Ok(resp);
    };
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let sub = s.node.routes().subscribe_typed(route, q.tag.as_deref())?;
    let dropped = sub.dropped_counter();
    let stream = sub.map(move |m| {
        let body = message_body(m, dropped.load(std::sync::atomic::Ordering::Relaxed));
        let event = Event::default()
            .event("message")
            .id(body.seq.to_string())
            .json_data(&body)
            .unwrap_or_else(|_| Event::default().comment("unencodable message"));
        Ok::<_, Infallible>(event)
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn message_body(m: Message, dropped: u64) -> RouteMessage {
    let (payload, payload_hex) = match std::str::from_utf8(&m.payload) {
        Ok(text) => (Some(text.to_string()), None),
        Err(_) => (
            None,
            Some(m.payload.iter().map(|b| format!("{b:02x}")).collect()),
        ),
    };
    RouteMessage {
        from: m.from.to_string(),
        route: m.route,
        seq: m.seq,
        time_unix_ms: m.time_unix_ms,
        payload,
        payload_hex,
        dropped,
    }
}

fn entry(r: RouteInfo) -> RouteEntry {
    RouteEntry {
        route: r.route,
        tag: r.tag,
        subscribers: r.subscribers,
        interested: r.interested.iter().map(ToString::to_string).collect(),
        sent: r.sent,
        received: r.received,
        dropped: r.dropped,
    }
}

/// Routes with local subscribers, peers' interests or traffic, with their counters.
#[utoipa::path(get, path = "/routes", tag = "routes",
    responses((status = 200, body = Vec<RouteEntry>)))]
async fn list_routes(State(s): State<AppState>) -> Json<Vec<RouteEntry>> {
    Json(s.node.routes().list().into_iter().map(entry).collect())
}
