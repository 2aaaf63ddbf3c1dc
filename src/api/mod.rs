//! The REST API: axum handlers over a [`Node`] handle, described by an OpenAPI document
//! (utoipa) and browsable with Swagger UI at `/docs`.

mod admission;
mod blobs;
mod forward;
mod guard;
pub mod types;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use libp2p::PeerId;
use mcc_admission::Permission;
use serde_json::Value;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};
use utoipa_swagger_ui::SwaggerUi;

use crate::node::{self, CallOutcome, Node, NodeInfo, PeerInfo, PutOutcome, addr};
use crate::services::{Listener, Provider, Service};
use types::*;

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
}

impl ApiConfig {
    /// The URL of the forward listener, shown in `GET /api/v1/node`.
    pub fn http_forward_url(&self) -> Option<String> {
        self.http_forward.map(crate::daemon::api_url)
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    node: Node,
    http_forward: Option<String>,
}

/// An API error: a status and a JSON `{"error": ...}` body.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        Self::new(r.status(), r.body_text())
    }
}

// Each subsystem maps its own errors to a status next to its enum (`status()`); the message
// is the error with its sources.
impl From<node::Error> for ApiError {
    fn from(e: node::Error) -> Self {
        Self::new(e.status(), node::error_chain(&e))
    }
}

impl From<crate::services::Error> for ApiError {
    fn from(e: crate::services::Error) -> Self {
        Self::new(e.status(), node::error_chain(&e))
    }
}

impl From<crate::blobs::Error> for ApiError {
    fn from(e: crate::blobs::Error) -> Self {
        Self::new(e.status(), node::error_chain(&e))
    }
}

/// `Json` whose rejections are JSON errors too.
#[derive(FromRequest)]
#[from_request(via(Json), rejection(ApiError))]
struct ApiJson<T>(T);

fn parse_peer(s: &str) -> Result<PeerId, ApiError> {
    s.parse()
        .map_err(|e| ApiError::bad_request(format!("invalid peer id {s:?}: {e}")))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mcc",
        description = "REST API of an mcc node: a peer-to-peer mesh companion on libp2p."
    ),
    tags(
        (name = "node", description = "This node and its peers"),
        (name = "rpc", description = "Echo and RPC to peers"),
        (name = "records", description = "Validated DHT records and DID documents"),
        (name = "services", description = "Services, listeners and HTTP forwarding"),
        (name = "blobs", description = "Content-addressed files with IPFS CIDs"),
        (name = "admission", description = "Certificates, trusted CA and revocations"),
    ),
    // Routed with wildcards (keys and paths contain slashes), so listed here by hand.
    paths(put_record, get_record, forward_doc),
)]
struct ApiDoc;

/// The whole HTTP application: API, OpenAPI document, Swagger UI, health and metrics.
pub fn router(node: Node, config: &ApiConfig) -> Router {
    let v1 = OpenApiRouter::new()
        .routes(routes!(get_node))
        .routes(routes!(get_peers, post_peers))
        .routes(routes!(post_echo))
        .routes(routes!(post_rpc))
        .routes(routes!(get_did, put_did))
        .route(
            "/records/{*key}",
            axum::routing::put(put_record).get(get_record),
        )
        .routes(routes!(get_services, post_services))
        .routes(routes!(delete_service))
        .routes(routes!(get_providers))
        .routes(routes!(get_listeners, post_listeners))
        .routes(routes!(delete_listener))
        .routes(routes!(blobs::post_blob, blobs::list_blobs))
        .routes(routes!(blobs::get_blob, blobs::delete_blob))
        .routes(routes!(blobs::fetch_blob))
        .routes(routes!(blobs::blob_providers))
        .routes(routes!(admission::get_admission))
        .routes(routes!(admission::put_revocations))
        .route(
            "/forward/{service}",
            axum::routing::any(forward::api_forward),
        )
        .route(
            "/forward/{service}/",
            axum::routing::any(forward::api_forward),
        )
        .route(
            "/forward/{service}/{*path}",
            axum::routing::any(forward::api_forward),
        );
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1)
        .routes(routes!(healthz))
        .split_for_parts();
    let mut openapi = openapi;
    document_forbidden(&mut openapi);

    let mut app = api
        .merge(SwaggerUi::new("/docs").url(OPENAPI_PATH, openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    if config.monitoring {
        app = app.route("/metrics", get(metrics));
    }
    let guard = Arc::new(guard::Guard::new(
        &config.api_hosts,
        config.bound,
        &config.cors_origins,
        config.http_forward.map(|a| a.port()),
    ));
    let mut app = app
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(AppState {
            node,
            http_forward: config.http_forward_url(),
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
        })
        .layer(axum::middleware::from_fn_with_state(guard, guard::forward))
}

/// Adds the 403 of [`guard`] to every operation but `/healthz`.
fn document_forbidden(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    for (path, item) in openapi.paths.paths.iter_mut() {
        if path == "/healthz" {
            continue;
        }
        let ops = [
            (&mut item.get, false),
            (&mut item.head, false),
            (&mut item.put, true),
            (&mut item.post, true),
            (&mut item.delete, true),
            (&mut item.patch, true),
        ];
        for (op, changes) in ops {
            let Some(op) = op.as_mut() else { continue };
            let description = if changes {
                "Refused: the Host is not this machine or an --api-hosts name, or the request \
                 comes from a web page whose origin --enable-cors does not allow"
            } else {
                "Refused: the Host is not this machine or an --api-hosts name, or a \
                 cross-site read from a web page whose origin --enable-cors does not allow"
            };
            op.responses.responses.entry("403".to_string()).or_insert(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build()
                    .into(),
            );
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
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
#[serde(deny_unknown_fields)]
struct PutQuery {
    /// Seconds until the record expires (default: the DHT's record TTL, 36 h, republished
    /// while this node runs).
    ttl: Option<u64>,
}

/// Stores a record (raw body) under a namespaced key such as `mcc/hello`.
#[utoipa::path(put, path = "/api/v1/records/{key}", tag = "records",
    params(("key" = String, Path, description = "Namespaced key, e.g. `mcc/hello` (slashes allowed)"), PutQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
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
    let ttl = query.0.ttl.map(std::time::Duration::from_secs);
    s.node.admission().may(Permission::RecordsWrite)?;
    Ok(Json(s.node.put_record(key, body.to_vec(), ttl).await?))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct GetQuery {
    /// Only this node's own copy, without a network lookup.
    local: Option<bool>,
}

/// Reads a record: the best valid version in the DHT, as the raw value.
#[utoipa::path(get, path = "/api/v1/records/{key}", tag = "records",
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

/// Local services offered to the mesh.
#[utoipa::path(get, path = "/services", tag = "services",
    responses((status = 200, body = Vec<Service>)))]
async fn get_services(State(s): State<AppState>) -> Json<Vec<Service>> {
    Json(s.node.services().list())
}

/// Registers (or replaces) a local service and announces it in the DHT.
#[utoipa::path(post, path = "/services", tag = "services", request_body = ServiceRequest,
    responses((status = 201, body = Service), (status = 400, body = ErrorBody)))]
async fn post_services(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<ServiceRequest>,
) -> Result<(StatusCode, Json<Service>), ApiError> {
    let svc = s.node.services().add(&req.name, &req.address).await?;
    Ok((StatusCode::CREATED, Json(svc)))
}

/// Removes a local service and withdraws its announcement.
#[utoipa::path(delete, path = "/services/{name}", tag = "services",
    params(("name" = String, Path)),
    responses((status = 200, body = Service), (status = 404, body = ErrorBody)))]
async fn delete_service(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Service>, ApiError> {
    Ok(Json(s.node.services().remove(&name).await?))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct ProvidersQuery {
    /// Only the provider records this node stores itself, without a network lookup.
    local: Option<bool>,
}

/// Providers of a service: this node first when it offers it, then connected peers by RTT.
#[utoipa::path(get, path = "/services/{name}/providers", tag = "services",
    params(("name" = String, Path), ProvidersQuery),
    responses((status = 200, body = Vec<Provider>), (status = 400, body = ErrorBody)))]
async fn get_providers(
    State(s): State<AppState>,
    Path(name): Path<String>,
    query: Result<axum::extract::Query<ProvidersQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Provider>>, ApiError> {
    let query = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if query.0.local.unwrap_or(false) {
        return Ok(Json(s.node.services().stored_providers(&name).await?));
    }
    Ok(Json(s.node.services().providers(&name).await?))
}

/// Local listeners forwarding to services in the mesh.
#[utoipa::path(get, path = "/listeners", tag = "services",
    responses((status = 200, body = Vec<Listener>)))]
async fn get_listeners(State(s): State<AppState>) -> Json<Vec<Listener>> {
    Json(s.node.services().listeners())
}

/// Starts a listener: every connection to `address` is tunnelled to a provider of `service`.
#[utoipa::path(post, path = "/listeners", tag = "services", request_body = ListenerRequest,
    responses((status = 201, body = Listener), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn post_listeners(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<ListenerRequest>,
) -> Result<(StatusCode, Json<Listener>), ApiError> {
    s.node.admission().may(Permission::ServicesConsume)?;
    let l = s
        .node
        .services()
        .add_listener(&req.service, &req.address, req.peer.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(l)))
}

/// Stops and forgets a listener.
#[utoipa::path(delete, path = "/listeners/{id}", tag = "services",
    params(("id" = String, Path)),
    responses((status = 200, body = Listener), (status = 404, body = ErrorBody)))]
async fn delete_listener(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Listener>, ApiError> {
    Ok(Json(s.node.services().remove_listener(&id)?))
}

/// Proxies any HTTP request to the named HTTP service on a provider and streams the answer
/// back (method, headers, query and body pass through; hop-by-hop headers do not). For curl
/// and programs: the answer is on the API's origin, so it gets `Content-Security-Policy:
/// sandbox` (no script runs) and `X-Content-Type-Options: nosniff`, and loses `Set-Cookie`.
/// Browsers should open services on the forward listener (`--http-forward`, `http_forward` in
/// `GET /api/v1/node`) instead.
#[utoipa::path(get, path = "/api/v1/forward/{service}/{path}", tag = "services",
    params(("service" = String, Path), ("path" = String, Path, description = "Path on the service (slashes allowed); every method works")),
    responses((status = 200, description = "The service's answer"),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 502, body = ErrorBody)))]
#[allow(dead_code)]
async fn forward_doc() {}
