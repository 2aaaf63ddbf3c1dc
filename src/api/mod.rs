//! The REST API: axum handlers over a [`Node`] handle, described by an OpenAPI document
//! (utoipa) and browsable with Swagger UI at `/docs`.
//!
//! # Layout
//!
//! - this file: [`ApiConfig`], the two applications ([`router`] for the API listener,
//!   [`forward_router`] for the forward listener), [`serve`], the state every handler gets,
//!   `/healthz` and `/metrics`;
//! - one file per group of endpoints, holding its handlers and a `routes()` that returns them
//!   with their OpenAPI paths: `node` (node, peers, dial), `rpc` (echo, rpc), `records`
//!   (records, DIDs), `services` (services, providers, listeners), `blobs`, `admission`,
//!   `streams` (byte pipes to peers through an HTTP upgrade), and `forward` (the path
//!   forward on the API listener, and the forward listener's only route);
//! - [`types`]: request and response bodies, shared with the typed client; `error`:
//!   [`ApiError`] and how errors map to HTTP statuses; `openapi`: the document's info, tags
//!   and post-processing; `guard`: the `Host`/`Origin` checks of both listeners; `host`: the
//!   host parsing that guard and forward share; `docs`: Swagger UI's gzipped files served
//!   to every client; `dashboard`: the web page at `/` (embedded files that use the API like
//!   any client).
//!
//! New endpoints: a file with the handlers and their `routes()`, one `.merge(...)` line in
//! `v1()` below, and a tag in `openapi` if they start a new group.

mod addrbook;
mod admission;
mod blobs;
mod dashboard;
mod docs;
mod error;
mod forward;
mod guard;
mod host;
mod node;
mod openapi;
mod records;
mod routes;
mod rpc;
mod rules;
mod services;
mod streams;
pub mod types;

pub use error::ApiError;
use error::ApiJson;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};
use utoipa_swagger_ui::SwaggerUi;

use crate::node::Node;
use types::Health;

/// Largest JSON request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// Path of the OpenAPI document.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// What the HTTP server exposes besides the API.
#[derive(Debug, Clone, Default)]
pub struct ApiConfig {
    /// Origins allowed by CORS (`*` for any); empty turns CORS off.
    pub cors_origins: Vec<String>,
    /// Serve Prometheus metrics at `/metrics`.
    pub monitoring: bool,
    /// Names besides this machine's own (`localhost`, loopback IPs, the bound address) that
    /// requests may carry in `Host` (`--api-hosts`).
    pub api_hosts: Vec<String>,
    /// Where the API listener is bound (its IP is accepted in `Host`).
    pub bound: Option<SocketAddr>,
    /// Where the forward listener (`--http-forward`) is bound, if it runs.
    pub http_forward: Option<SocketAddr>,
    /// How long the forwards wait for a service's answer, and between two pieces of its
    /// body (`--http-forward-timeout`); `None`: 60 s.
    pub http_forward_timeout: Option<std::time::Duration>,
    /// Bearer token every API request must carry (`--api-token`), `/healthz`, Swagger UI and
    /// the OpenAPI document excepted.
    pub token: Option<String>,
}

impl ApiConfig {
    /// The URL of the forward listener, shown in `GET /api/v1/node`.
    pub fn http_forward_url(&self) -> Option<String> {
        self.http_forward.map(api_url)
    }

    /// The upstream connections of one forward, with its timeout.
    fn upstreams(&self) -> Arc<forward::Upstreams> {
        forward::Upstreams::new(
            self.http_forward_timeout
                .unwrap_or(forward::DEFAULT_TIMEOUT),
        )
    }
}

/// The URL clients use for an API bound to `addr` (an unspecified host becomes loopback).
pub fn api_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

#[derive(Clone)]
pub(crate) struct AppState {
    node: Node,
    http_forward: Option<String>,
    /// Idle connections to services of this listener's forward.
    upstreams: Arc<forward::Upstreams>,
}

/// The REST API under `/api/v1` with its OpenAPI paths: one `merge` per file of endpoints.
fn v1() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(node::routes())
        .merge(addrbook::routes())
        .merge(rpc::routes())
        .merge(records::routes())
        .merge(services::routes())
        .merge(blobs::routes())
        .merge(admission::routes())
        .merge(streams::routes())
        .merge(routes::routes())
        .merge(forward::api_routes())
}

/// The API's routes (`/api/v1/...` and `/healthz`) and their OpenAPI document.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (api, mut openapi) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/v1", v1())
        .routes(routes!(healthz))
        .split_for_parts();
    openapi::document_forbidden(&mut openapi);
    rules::document_rules(&mut openapi);
    rules::document_json_body(&mut openapi);
    (api, openapi)
}

/// The whole HTTP application: API, OpenAPI document, Swagger UI, health and metrics.
pub fn router(node: Node, config: &ApiConfig) -> Router {
    let (api, openapi) = api();
    let mut app = api
        .merge(
            Router::from(SwaggerUi::new("/docs").url(OPENAPI_PATH, openapi))
                .layer(axum::middleware::from_fn(docs::gunzip_unless_accepted)),
        )
        .merge(dashboard::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    if config.monitoring {
        app = app.route("/metrics", get(metrics));
    }
    // CPU, heap and thread profiles (`crate::profile::http`), behind the same guard.
    app = app.merge(crate::profile::http::routes());
    let guard = Arc::new(
        guard::Guard::new(
            &config.api_hosts,
            config.bound,
            &config.cors_origins,
            config.http_forward.map(|a| a.port()),
        )
        .with_token(config.token.clone()),
    );
    let mut app = app
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(AppState {
            node,
            http_forward: config.http_forward_url(),
            upstreams: config.upstreams(),
        });
    if !config.cors_origins.is_empty() {
        // Never `null` nor the forward listener's origin, even with `*` (see `guard`).
        let allowed = guard.clone();
        let origins = AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin.to_str().is_ok_and(|o| allowed.origin_allowed(o))
        });
        app = app.layer(
            CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                .allow_headers(Any),
        );
    }
    app.layer(axum::middleware::from_fn_with_state(guard, guard::api))
}

/// The forward listener's application (`--http-forward`): `/{service}/...` goes to the
/// service, answered as the provider sends it, on an origin of its own. No API here.
pub fn forward_router(node: Node, config: &ApiConfig) -> Router {
    let guard = Arc::new(guard::Guard::new(
        &config.api_hosts,
        config.http_forward,
        &[],
        None,
    ));
    forward::listener_routes()
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(AppState {
            node,
            http_forward: config.http_forward_url(),
            upstreams: config.upstreams(),
        })
        .layer(axum::middleware::from_fn_with_state(guard, guard::forward))
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The client's address reaches the forwards (`X-Forwarded-For`).
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

/// Liveness probe.
#[utoipa::path(get, path = "/healthz", tag = "node",
    responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_string(),
    })
}

async fn metrics(State(s): State<AppState>) -> Result<Response, ApiError> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, s.node.registry())
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response())
}
