//! HTTP forwarding to services in the mesh, reached two ways:
//!
//! - the path forward on the API listener, `/api/v1/forward/{service}/...`, for curl and
//!   programs. Its answers come from a provider but live on the API's origin, so they are
//!   defused: `Content-Security-Policy: sandbox` (no script runs, the document gets an opaque
//!   origin), `X-Content-Type-Options: nosniff`, and no cookies or `Clear-Site-Data`;
//! - the forward listener (`--http-forward`), for browsers. Each service gets an origin of its
//!   own, `http://{service}.localhost:PORT/` (browsers resolve `*.localhost` to loopback), so a
//!   provider's page can neither read the API (the API refuses its state-changing requests and
//!   never allows it by CORS, see [`super::guard`]) nor other services. `http://ADDR/{service}/`
//!   also works (curl, programs, remote users through `--api-hosts`), but a local browser
//!   navigating there is redirected to the service's own origin, so no page ever runs on the
//!   origin all services share.
//!
//! Both use [`proxy::proxy`], a reverse proxy (`proxy.rs`: keep-alive towards the client
//! whatever the service does, upgrades, timeouts) over the pooled connections of
//! [`pool::Upstreams`] (`pool.rs`), with the header rules of `headers.rs`.

mod headers;
mod pool;
mod proxy;

pub(crate) use pool::{DEFAULT_TIMEOUT, Upstreams};

use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcc_admission::Permission;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use super::host::{API_PREFIX, SERVICE_HOST_SUFFIX, is_local_host, request_host, service_of_host};
use super::types::ErrorBody;
use super::{ApiError, AppState};

/// Response headers a provider must not set on the API's origin: cookies would be scoped to
/// it, and `Clear-Site-Data` would wipe its storage.
const NOT_ON_API_ORIGIN: &[&str] = &["set-cookie", "set-cookie2", "clear-site-data"];

/// Makes a response of the path forward harmless on the API's origin: whatever the provider
/// sent, no script runs (`sandbox` without `allow-scripts`; it also gives the document an
/// opaque origin and blocks forms, popups and plugins), nothing is sniffed into HTML, and no
/// cookie or site-data header reaches the browser. Several CSP headers are all enforced, so
/// appending ours keeps it in force even when the provider sends its own.
pub(crate) fn defuse(resp: &mut Response) {
    let h = resp.headers_mut();
    for name in NOT_ON_API_ORIGIN {
        h.remove(*name);
    }
    h.append(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// The service name from the matched path parameters, checked.
fn service_of(params: &[(String, String)]) -> Result<String, ApiError> {
    let service = params
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    crate::services::registry::validate_name(&service)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(service)
}

/// The raw (still percent-encoded) path after `{prefix}/{service}`, with the query.
/// The service segment is skipped as sent (it may be percent-encoded).
fn upstream_path(original: &axum::http::Uri, prefix: &str) -> String {
    let after_prefix = original.path().strip_prefix(prefix).unwrap_or("");
    let after_prefix = after_prefix.strip_prefix('/').unwrap_or(after_prefix);
    let rest = after_prefix.find('/').map_or("", |i| &after_prefix[i..]);
    match original.query() {
        Some(q) => format!("/{}?{q}", rest.trim_start_matches('/')),
        None => format!("/{}", rest.trim_start_matches('/')),
    }
}

/// Forwards one request to `service`; `prefix` is where the service is mounted on this side
/// (sent upstream as `X-Forwarded-Prefix`).
async fn forward_to(
    s: &AppState,
    service: &str,
    prefix: Option<&str>,
    path_and_query: &str,
    req: Request<Body>,
) -> Response {
    let result = async {
        s.node.admission().may(Permission::ServicesConsume)?;
        proxy::proxy(&s.node, &s.upstreams, service, prefix, path_and_query, req).await
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// `/api/v1/forward/{service}/...` on the API listener: the answer, defused (see [`defuse`]),
/// errors included.
pub(super) async fn api_forward(
    State(s): State<AppState>,
    Path(params): Path<Vec<(String, String)>>,
    OriginalUri(original): OriginalUri,
    req: Request<Body>,
) -> Response {
    let mut resp = match service_of(&params) {
        Ok(service) => {
            let prefix = format!("{API_PREFIX}/{service}");
            let path_and_query = upstream_path(&original, API_PREFIX);
            forward_to(&s, &service, Some(&prefix), &path_and_query, req).await
        }
        Err(e) => e.into_response(),
    };
    defuse(&mut resp);
    resp
}

/// Every request of the forward listener. `Host: {service}.localhost`: the whole path goes to
/// that service, answered as the provider sends it (this origin is the service's). Otherwise
/// `/{service}/...`; a local browser's navigation there is redirected to the service's origin.
async fn listener_forward(State(s): State<AppState>, req: Request<Body>) -> Response {
    let host = request_host(&req).map(str::to_string);
    if let Some(service) = host.as_deref().and_then(service_of_host) {
        let path_and_query = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        return forward_to(&s, &service, None, &path_and_query, req).await;
    }
    let path = req.uri().path();
    let after = path.strip_prefix('/').unwrap_or(path);
    let (segment, rest) = after.split_at(after.find('/').unwrap_or(after.len()));
    if segment.is_empty() {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "no service named: open http://SERVICE.localhost:PORT/ or /SERVICE/",
        )
        .into_response();
    }
    let service = segment.to_string();
    if let Err(e) = crate::services::registry::validate_name(&service) {
        return ApiError::new(StatusCode::BAD_REQUEST, e.to_string()).into_response();
    }
    let path_and_query = match req.uri().query() {
        Some(q) => format!("/{}?{q}", rest.trim_start_matches('/')),
        None => format!("/{}", rest.trim_start_matches('/')),
    };
    let navigation = req
        .headers()
        .get("sec-fetch-mode")
        .is_some_and(|v| v == "navigate");
    if navigation
        && matches!(*req.method(), Method::GET | Method::HEAD)
        && let Some(host) = host.as_deref().filter(|h| is_local_host(h))
    {
        let port = host
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .unwrap_or(80);
        let location = format!("http://{service}{SERVICE_HOST_SUFFIX}:{port}{path_and_query}");
        if let Ok(location) = HeaderValue::from_str(&location) {
            return (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, location)],
            )
                .into_response();
        }
    }
    let prefix = format!("/{service}");
    forward_to(&s, &service, Some(&prefix), &path_and_query, req).await
}

/// The path forward's routes on the API listener, `/forward/{service}/...` with every method,
/// and its OpenAPI path.
pub(super) fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(Doc::openapi())
        .route("/forward/{service}", axum::routing::any(api_forward))
        .route("/forward/{service}/", axum::routing::any(api_forward))
        .route(
            "/forward/{service}/{*path}",
            axum::routing::any(api_forward),
        )
}

/// Routed with wildcards (paths contain slashes), which `routes!` cannot take, so listed here
/// by hand.
#[derive(OpenApi)]
#[openapi(paths(forward_doc))]
struct Doc;

/// Proxies any HTTP request to the named HTTP service on a provider and streams the answer
/// back (method, headers, query and body pass through; hop-by-hop headers do not; `Via` and
/// `X-Forwarded-*` are added; upgrades such as WebSocket work). 502 when no tunnel opens or
/// the service fails, 504 when it does not answer within `--http-forward-timeout`. For curl
/// and programs: the answer is on the API's origin, so it gets `Content-Security-Policy:
/// sandbox` (no script runs) and `X-Content-Type-Options: nosniff`, and loses `Set-Cookie`.
/// Browsers should open services on the forward listener (`--http-forward`, `http_forward` in
/// `GET /api/v1/node`) instead.
#[utoipa::path(get, path = "/forward/{service}/{path}", tag = "services",
    params(("service" = String, Path), ("path" = String, Path, description = "Path on the service (slashes allowed); every method works")),
    responses((status = 200, description = "The service's answer"),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 502, body = ErrorBody), (status = 504, body = ErrorBody)))]
#[allow(dead_code)]
async fn forward_doc() {}

/// Routes of the forward listener: every request goes to a service; nothing else.
pub(super) fn listener_routes() -> Router<AppState> {
    Router::new().fallback(listener_forward)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defuse_sandboxes_and_drops_cookies() {
        let mut resp = Response::builder()
            .header(header::CONTENT_TYPE, "text/html")
            .header(header::SET_COOKIE, "a=1")
            .header(header::SET_COOKIE, "b=2")
            .header("clear-site-data", "\"storage\"")
            .header(header::CONTENT_SECURITY_POLICY, "default-src *")
            .header(header::X_CONTENT_TYPE_OPTIONS, "whatever")
            .body(Body::empty())
            .unwrap();
        defuse(&mut resp);
        let h = resp.headers();
        assert!(h.get(header::SET_COOKIE).is_none());
        assert!(h.get("clear-site-data").is_none());
        let csp: Vec<_> = h.get_all(header::CONTENT_SECURITY_POLICY).iter().collect();
        assert_eq!(csp, ["default-src *", "sandbox"]);
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }

    #[test]
    fn upstream_path_keeps_encoding_and_query() {
        let uri: axum::http::Uri = "/api/v1/forward/web/a%2Fb/c?x=1".parse().unwrap();
        assert_eq!(upstream_path(&uri, API_PREFIX), "/a%2Fb/c?x=1");
        let uri: axum::http::Uri = "/api/v1/forward/w%65b/x".parse().unwrap();
        assert_eq!(upstream_path(&uri, API_PREFIX), "/x");
        let uri: axum::http::Uri = "/web".parse().unwrap();
        assert_eq!(upstream_path(&uri, ""), "/");
        let uri: axum::http::Uri = "/web/?q".parse().unwrap();
        assert_eq!(upstream_path(&uri, ""), "/?q");
    }
}
