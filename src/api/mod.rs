//! The REST API: axum handlers over a [`Node`] handle, described by an OpenAPI document
//! (utoipa) and browsable with Swagger UI at `/docs`.

mod admission;
mod blobs;
pub mod types;

use std::future::Future;

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
}

#[derive(Clone)]
pub(crate) struct AppState {
    node: Node,
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

impl From<node::Error> for ApiError {
    fn from(e: node::Error) -> Self {
        use mcc_records::ValidationError as V;
        let status = match &e {
            node::Error::Invalid(V::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            node::Error::Invalid(V::Stale { .. }) | node::Error::Refused => StatusCode::CONFLICT,
            node::Error::Invalid(_) => StatusCode::BAD_REQUEST,
            node::Error::NotFound(_) => StatusCode::NOT_FOUND,
            node::Error::StoreFull(_) => StatusCode::INSUFFICIENT_STORAGE,
            node::Error::Services(e) => {
                use crate::services::registry::Error as R;
                match e {
                    R::UnknownService(_) | R::UnknownListener(_) => StatusCode::NOT_FOUND,
                    R::DuplicateListener(_) => StatusCode::CONFLICT,
                    R::InvalidName { .. } | R::InvalidAddress { .. } => StatusCode::BAD_REQUEST,
                    R::Save { .. } | R::Corrupt { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                }
            }
            node::Error::NoProvider(_) => StatusCode::NOT_FOUND,
            node::Error::Tunnel(_) => StatusCode::BAD_GATEWAY,
            node::Error::ListenerBind { .. } => StatusCode::CONFLICT,
            node::Error::InvalidPeer(_) | node::Error::InvalidCid(_) => StatusCode::BAD_REQUEST,
            node::Error::Blob(_) => StatusCode::BAD_GATEWAY,
            node::Error::BlobRefused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            node::Error::Addr(_) => StatusCode::BAD_REQUEST,
            node::Error::Dial { .. } | node::Error::Call(_) => StatusCode::BAD_GATEWAY,
            node::Error::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            node::Error::Forbidden(_) => StatusCode::FORBIDDEN,
            node::Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
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
        .route("/forward/{service}", axum::routing::any(forward))
        .route("/forward/{service}/", axum::routing::any(forward))
        .route("/forward/{service}/{*path}", axum::routing::any(forward));
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1)
        .routes(routes!(healthz))
        .split_for_parts();

    let mut app = api
        .merge(SwaggerUi::new("/docs").url(OPENAPI_PATH, openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    if config.monitoring {
        app = app.route("/metrics", get(metrics));
    }
    let mut app = app
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(AppState { node });
    if !config.cors_origins.is_empty() {
        let origins = if config.cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                config
                    .cors_origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        app = app.layer(
            CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                .allow_headers(Any),
        );
    }
    app
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
    Ok(Json(s.node.info().await?))
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
    s.node.may(Permission::RecordsWrite)?;
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
    s.node.may(Permission::RecordsWrite)?;
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
    Json(s.node.local_services())
}

/// Registers (or replaces) a local service and announces it in the DHT.
#[utoipa::path(post, path = "/services", tag = "services", request_body = ServiceRequest,
    responses((status = 201, body = Service), (status = 400, body = ErrorBody)))]
async fn post_services(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<ServiceRequest>,
) -> Result<(StatusCode, Json<Service>), ApiError> {
    let svc = s.node.add_service(&req.name, &req.address).await?;
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
    Ok(Json(s.node.remove_service(&name).await?))
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
        return Ok(Json(s.node.stored_providers(&name).await?));
    }
    Ok(Json(s.node.providers(&name).await?))
}

/// Local listeners forwarding to services in the mesh.
#[utoipa::path(get, path = "/listeners", tag = "services",
    responses((status = 200, body = Vec<Listener>)))]
async fn get_listeners(State(s): State<AppState>) -> Json<Vec<Listener>> {
    Json(s.node.listeners())
}

/// Starts a listener: every connection to `address` is tunnelled to a provider of `service`.
#[utoipa::path(post, path = "/listeners", tag = "services", request_body = ListenerRequest,
    responses((status = 201, body = Listener), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn post_listeners(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<ListenerRequest>,
) -> Result<(StatusCode, Json<Listener>), ApiError> {
    s.node.may(Permission::ServicesConsume)?;
    let l = s
        .node
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
    Ok(Json(s.node.remove_listener(&id)?))
}

/// Proxies any HTTP request to the named HTTP service on a provider and streams the answer
/// back (method, headers, query and body pass through; hop-by-hop headers do not).
#[utoipa::path(get, path = "/api/v1/forward/{service}/{path}", tag = "services",
    params(("service" = String, Path), ("path" = String, Path, description = "Path on the service (slashes allowed); every method works")),
    responses((status = 200, description = "The service's answer"),
              (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
#[allow(dead_code)]
async fn forward_doc() {}

async fn forward(
    State(s): State<AppState>,
    Path(params): Path<Vec<(String, String)>>,
    axum::extract::OriginalUri(original): axum::extract::OriginalUri,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let service = params
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    crate::services::registry::validate_name(&service)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    s.node.may(Permission::ServicesConsume)?;
    // The rest of the raw (still percent-encoded) path after /forward/<service>.
    let marker = format!("/forward/{service}");
    let full = original.path();
    let rest = full
        .find(&marker)
        .map(|i| &full[i + marker.len()..])
        .unwrap_or("");
    let path_and_query = match original.query() {
        Some(q) => format!("/{}?{q}", rest.trim_start_matches('/')),
        None => format!("/{}", rest.trim_start_matches('/')),
    };
    forward::proxy(&s.node, &service, &path_and_query, req).await
}

mod forward {
    //! The HTTP side of forwarding: one HTTP/1.1 exchange over a fresh tunnel.

    use axum::body::Body;
    use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, Version, header};
    use hyper_util::rt::TokioIo;

    use super::ApiError;
    use crate::node::Node;

    /// Headers that belong to one connection, not to the message.
    const HOP_BY_HOP: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];

    fn strip_hop_by_hop(headers: &mut HeaderMap) {
        let listed: Vec<String> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        for h in HOP_BY_HOP
            .iter()
            .copied()
            .chain(listed.iter().map(String::as_str))
        {
            headers.remove(h);
        }
    }

    fn bad_gateway(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::BAD_GATEWAY, format!("forwarding failed: {e}"))
    }

    pub(super) async fn proxy(
        node: &Node,
        service: &str,
        path_and_query: &str,
        req: Request<Body>,
    ) -> Result<axum::response::Response, ApiError> {
        let tunnel = node.open_tunnel(service, None).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tunnel))
            .await
            .map_err(bad_gateway)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("forwarded HTTP connection: {e}");
            }
        });

        let (mut parts, body) = req.into_parts();
        parts.uri = path_and_query
            .parse()
            .map_err(|e| ApiError::bad_request(format!("bad path: {e}")))?;
        parts.version = Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        if let Some(host) = parts.headers.remove(header::HOST) {
            parts.headers.insert("x-forwarded-host", host);
        }
        parts.headers.insert(
            header::HOST,
            HeaderValue::from_str(service).map_err(|e| ApiError::bad_request(e.to_string()))?,
        );
        if let Ok(prefix) = HeaderValue::from_str(&format!("/api/v1/forward/{service}")) {
            parts.headers.insert("x-forwarded-prefix", prefix);
        }
        let resp = sender
            .send_request(Request::from_parts(parts, body))
            .await
            .map_err(bad_gateway)?;
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(axum::response::Response::from_parts(parts, Body::new(body)))
    }
}
