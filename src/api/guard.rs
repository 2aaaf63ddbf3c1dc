//! Request checks that keep web pages from driving the API (and the forward listener).
//!
//! - `Host`: only this machine's own names (`localhost`, loopback IPs, the address the
//!   listener is bound to) and the names given with `--api-hosts`. A page that rebinds its own
//!   DNS name to 127.0.0.1 sends its name as `Host`, so DNS rebinding gets 403.
//! - `Origin`: a state-changing request (any method but GET, HEAD and OPTIONS) that carries an
//!   `Origin` other than its own (Swagger UI) and not allowed by `--enable-cors` gets 403,
//!   whatever its content type, so "simple"
//!   cross-site requests (`text/plain` POSTs, forms) cannot change anything. `null` (sandboxed
//!   documents such as the path forward's pages) and the forward listener's origin are never
//!   allowed, not even by `--enable-cors '*'`: forwarded pages are written by providers.
//! - `Sec-Fetch-Site`: `cross-site` or `same-site` without an allowed `Origin` gets 403 on
//!   state-changing requests, and on reads too unless they are top-level navigations the user
//!   made (a link they follow: `Sec-Fetch-User: ?1`) or forwards, so an `<img>`, `<iframe>` or
//!   script redirect to `/api/v1/blobs/CID` on a web page cannot make the node fetch.
//!
//! Requests without these headers (curl, the CLI, programs) are not affected, and `/healthz`
//! is always open.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::host::{API_PREFIX, host_name, request_host, service_of_host};

/// What the checks allow, built once per listener.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Extra names (or IPs) accepted in `Host`, lowercase, without port.
    hosts: Vec<String>,
    /// The address the listener is bound to (its IP is accepted in `Host`; an unspecified one
    /// accepts every IP literal).
    bound: Option<SocketAddr>,
    /// `--enable-cors` contains `*`.
    cors_any: bool,
    /// `--enable-cors` origins.
    cors: Vec<String>,
    /// Port of the forward listener: its origins are never allowed on the API.
    forward_port: Option<u16>,
    /// `--api-token`: every API request must carry `Authorization: Bearer <token>`.
    token: Option<String>,
}

/// Scheme, host name and port of an origin such as `http://127.0.0.1:8080`.
fn parse_origin(origin: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let name = host_name(rest);
    let port = match rest.rsplit_once(':') {
        Some((_, p)) if !p.ends_with(']') => p.parse().ok()?,
        _ => match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        },
    };
    Some((scheme, name, port))
}

fn refuse(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, message)
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

impl Guard {
    pub fn new(
        hosts: &[String],
        bound: Option<SocketAddr>,
        cors: &[String],
        forward_port: Option<u16>,
    ) -> Self {
        Self {
            hosts: hosts
                .iter()
                .map(|h| host_name(h))
                .filter(|h| !h.is_empty())
                .collect(),
            bound,
            cors_any: cors.iter().any(|o| o == "*"),
            cors: cors.iter().filter(|o| *o != "*").cloned().collect(),
            forward_port,
            token: None,
        }
    }

    /// Requires `Authorization: Bearer <token>` on the API (not on `/healthz`, Swagger UI,
    /// the OpenAPI document, the dashboard's files and CORS preflights, which carry no
    /// credentials nor data).
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// Whether the request may pass the token check (no token set, an open path, or the
    /// right bearer token).
    fn token_ok(&self, req: &Request) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let path = req.uri().path();
        if *req.method() == Method::OPTIONS
            || path == "/healthz"
            || path == super::OPENAPI_PATH
            || path == "/docs"
            || path.starts_with("/docs/")
            || super::dashboard::is_dashboard_path(path)
        {
            return true;
        }
        header_str(req.headers(), header::AUTHORIZATION)
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes()))
    }

    /// Whether `Host` (or the request authority) names this machine or an allowed name.
    pub fn host_allowed(&self, authority: &str) -> bool {
        let name = host_name(authority);
        if name == "localhost" || self.hosts.contains(&name) {
            return true;
        }
        match name.parse::<IpAddr>() {
            Ok(ip) => {
                ip.is_loopback()
                    || self
                        .bound
                        .is_some_and(|b| b.ip().is_unspecified() || b.ip() == ip)
            }
            Err(_) => false,
        }
    }

    /// Whether `origin` is the forward listener's (any of this machine's names, its port).
    fn is_forward_origin(&self, origin: &str) -> bool {
        let Some(port) = self.forward_port else {
            return false;
        };
        parse_origin(origin).is_some_and(|(_, _, p)| p == port)
    }

    /// Whether `origin` is the one the request is sent to (same-origin: Swagger UI at `/docs`;
    /// browsers send `Origin` on same-origin POSTs too): scheme `http`, and the host and port of
    /// `Host` (already checked).
    fn is_same_origin(origin: &str, host: Option<&str>) -> bool {
        let Some(host) = host else {
            return false;
        };
        let port = match host.rsplit_once(':') {
            Some((_, p)) if !p.ends_with(']') => p.parse().ok(),
            _ => Some(80),
        };
        parse_origin(origin).is_some_and(|(scheme, name, p)| {
            scheme == "http" && name == host_name(host) && Some(p) == port
        })
    }

    /// Whether a page of `origin` may use the API: listed by `--enable-cors` (or `*`), and
    /// neither `null` nor the forward listener's origin. Also the CORS layer's predicate.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        if origin.eq_ignore_ascii_case("null") || self.is_forward_origin(origin) {
            return false;
        }
        self.cors_any || self.cors.iter().any(|o| o == origin)
    }

    /// The checks of the API listener; `Err` is the 403 to send.
    fn check_api(&self, req: &Request) -> Result<(), ApiError> {
        let path = req.uri().path();
        if path == "/healthz" {
            return Ok(());
        }
        self.check_host(req)?;
        let headers = req.headers();
        let origin = header_str(headers, header::ORIGIN);
        let host =
            header_str(headers, header::HOST).or_else(|| req.uri().authority().map(|a| a.as_str()));
        let origin_ok =
            origin.is_some_and(|o| Self::is_same_origin(o, host) || self.origin_allowed(o));
        let fetch_site = header_str(headers, "sec-fetch-site");
        let other_site = matches!(fetch_site, Some("cross-site") | Some("same-site"));
        if !is_safe(req.method()) {
            if let Some(o) = origin
                && !origin_ok
            {
                return Err(refuse(format!(
                    "origin {o:?} may not change this node (allow a web app with --enable-cors)"
                )));
            }
            if other_site && !origin_ok {
                return Err(refuse(
                    "cross-site requests may not change this node (allow a web app with --enable-cors)",
                ));
            }
        } else if *req.method() != Method::OPTIONS
            && other_site
            && !origin_ok
            && !(header_str(headers, "sec-fetch-mode") == Some("navigate")
                && header_str(headers, "sec-fetch-dest") == Some("document")
                && header_str(headers, "sec-fetch-user") == Some("?1"))
            && !path.starts_with(API_PREFIX)
        {
            return Err(refuse(
                "cross-site reads of the API are refused (allow a web app with --enable-cors)",
            ));
        }
        Ok(())
    }

    /// The checks of the forward listener: `Host` (its per-service names `{service}.localhost`
    /// included), and state-changing requests only from the same origin (or without `Origin`):
    /// other web sites cannot post to mesh services through it, nor can one service's pages
    /// post to another service.
    fn check_forward(&self, req: &Request) -> Result<(), ApiError> {
        let host = request_host(req);
        let service = host.and_then(service_of_host);
        if service.is_none() {
            self.check_host(req)?;
        }
        if !is_safe(req.method())
            && let Some(o) = header_str(req.headers(), header::ORIGIN)
        {
            // A service's pages have its per-service origin, which is then also the Host.
            let own = Self::is_same_origin(o, host);
            if !own {
                return Err(refuse(format!(
                    "origin {o:?} may not send this request to a forwarded service"
                )));
            }
        }
        Ok(())
    }

    fn check_host(&self, req: &Request) -> Result<(), ApiError> {
        let host = header_str(req.headers(), header::HOST)
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
        match host {
            Some(h) if !self.host_allowed(h) => Err(refuse(format!(
                "host {h:?} is not allowed (add it with --api-hosts)"
            ))),
            _ => Ok(()),
        }
    }
}

/// The 401 for a request without the right token.
fn unauthorized() -> Response {
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "missing or wrong API token: send `Authorization: Bearer <token>` (the CLI reads \
         <data-folder>/api-token, or --api-token FILE)",
    )
    .into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"mcc\""),
    );
    resp
}

/// Compares two secrets in time that depends only on their lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware of the API listener.
pub(super) async fn api(
    axum::extract::State(guard): axum::extract::State<Arc<Guard>>,
    req: Request,
    next: Next,
) -> Response {
    if let Err(e) = guard.check_api(&req) {
        return e.into_response();
    }
    if !guard.token_ok(&req) {
        return unauthorized();
    }
    let forward = req.uri().path().starts_with(API_PREFIX);
    let mut resp = next.run(req).await;
    if !forward {
        // The API's own pages (Swagger UI) are not to be framed by other sites.
        resp.headers_mut()
            .entry(header::X_FRAME_OPTIONS)
            .or_insert(HeaderValue::from_static("DENY"));
    }
    resp
}

/// Middleware of the forward listener.
pub(super) async fn forward(
    axum::extract::State(guard): axum::extract::State<Arc<Guard>>,
    req: Request,
    next: Next,
) -> Response {
    match guard.check_forward(&req) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> Request {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    fn guard() -> Guard {
        Guard::new(
            &["mcc.lan".into(), "Box.Example:8080".into()],
            Some("127.0.0.1:8080".parse().unwrap()),
            &["http://app.example".into()],
            Some(8081),
        )
    }

    #[test]
    fn hosts() {
        let g = guard();
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.2",
            "localhost",
            "LOCALHOST:8080",
            "localhost.",
            "[::1]:8080",
            "mcc.lan:8080",
            "box.example",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "192.168.1.2:8080",
            "localhost.evil",
            "[fe80::1]",
        ] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
        let any = Guard::new(&[], Some("0.0.0.0:8080".parse().unwrap()), &[], None);
        assert!(any.host_allowed("192.168.1.2:8080"));
        assert!(!any.host_allowed("evil.example"));
    }

    #[test]
    fn origins() {
        let g = guard();
        assert!(g.origin_allowed("http://app.example"));
        assert!(!g.origin_allowed("http://evil.example"));
        assert!(!g.origin_allowed("null"));
        let any = Guard::new(&[], None, &["*".into()], Some(8081));
        assert!(any.origin_allowed("http://evil.example"));
        assert!(!any.origin_allowed("null"));
        assert!(!any.origin_allowed("http://127.0.0.1:8081"));
        assert!(!any.origin_allowed("http://localhost:8081"));
        assert!(any.origin_allowed("http://127.0.0.1:3000"));
    }

    #[test]
    fn api_checks() {
        let g = guard();
        let host = ("host", "127.0.0.1:8080");
        let ok = |r: Request| g.check_api(&r).is_ok();
        assert!(ok(req("POST", "/api/v1/blobs", &[host])));
        assert!(ok(req("GET", "/api/v1/node", &[host])));
        assert!(!ok(req("GET", "/api/v1/node", &[("host", "evil.example")])));
        assert!(ok(req("GET", "/healthz", &[("host", "evil.example")])));
        let origin = |o| ("origin", o);
        assert!(!ok(req(
            "POST",
            "/api/v1/blobs",
            &[host, origin("http://evil.example")]
        )));
        assert!(!ok(req(
            "DELETE",
            "/api/v1/services/x",
            &[host, origin("null")]
        )));
        assert!(!ok(req(
            "PUT",
            "/api/v1/x",
            &[host, origin("http://127.0.0.1:8081")]
        )));
        assert!(ok(req(
            "POST",
            "/api/v1/blobs",
            &[host, origin("http://app.example")]
        )));
        // Swagger UI: same-origin POSTs carry Origin too (the Host's host and port).
        for h in [
            "127.0.0.1:8080",
            "localhost:8080",
            "mcc.lan:8080",
            "[::1]:8080",
            "localhost",
        ] {
            let own = format!("http://{h}");
            let r = req(
                "POST",
                "/api/v1/blobs",
                &[("host", h), ("origin", own.as_str())],
            );
            assert!(g.check_api(&r).is_ok(), "{h}");
        }
        for other in [
            "http://localhost:8080",
            "http://127.0.0.1:9999",
            "http://127.0.0.1",
        ] {
            assert!(
                !ok(req("POST", "/api/v1/blobs", &[host, origin(other)])),
                "{other}"
            );
        }
        // Bound to every address: any IP passes the Host check, but a page on another IP and
        // the same port is not same-origin.
        let any = Guard::new(&[], Some("0.0.0.0:8080".parse().unwrap()), &[], None);
        let r = req(
            "POST",
            "/api/v1/blobs",
            &[host, origin("http://203.0.113.5:8080")],
        );
        assert!(any.check_api(&r).is_err());
        assert!(ok(req(
            "GET",
            "/api/v1/node",
            &[host, origin("http://evil.example")]
        )));
        let site = |s| ("sec-fetch-site", s);
        assert!(!ok(req(
            "POST",
            "/api/v1/blobs",
            &[host, site("cross-site")]
        )));
        assert!(!ok(req(
            "POST",
            "/api/v1/blobs",
            &[host, site("same-site")]
        )));
        assert!(ok(req(
            "POST",
            "/api/v1/blobs",
            &[host, site("same-origin")]
        )));
        assert!(ok(req(
            "POST",
            "/api/v1/blobs",
            &[host, site("cross-site"), origin("http://app.example")]
        )));
        // Reads: a cross-site <img> is refused, a navigation or a forward is not.
        assert!(!ok(req(
            "GET",
            "/api/v1/blobs/x",
            &[host, site("cross-site")]
        )));
        let nav = |dest, user| {
            [
                host,
                site("cross-site"),
                ("sec-fetch-mode", "navigate"),
                ("sec-fetch-dest", dest),
                ("sec-fetch-user", user),
            ]
        };
        assert!(ok(req("GET", "/api/v1/blobs/x", &nav("document", "?1"))));
        assert!(!ok(req("GET", "/api/v1/blobs/x", &nav("document", "?0"))));
        assert!(!ok(req("GET", "/api/v1/blobs/x", &nav("iframe", "?1"))));
        assert!(ok(req(
            "GET",
            "/api/v1/forward/web/a.css",
            &[host, site("cross-site")]
        )));
    }

    #[test]
    fn forward_checks() {
        let g = Guard::new(&[], Some("127.0.0.1:8081".parse().unwrap()), &[], None);
        let host = ("host", "127.0.0.1:8081");
        let ok = |r: Request| g.check_forward(&r).is_ok();
        assert!(ok(req("POST", "/web/form", &[host])));
        assert!(ok(req(
            "POST",
            "/web/form",
            &[host, ("origin", "http://127.0.0.1:8081")]
        )));
        // Another name of this machine is another origin.
        assert!(!ok(req(
            "POST",
            "/web/form",
            &[host, ("origin", "http://localhost:8081")]
        )));
        assert!(!ok(req(
            "POST",
            "/web/form",
            &[host, ("origin", "http://evil.example")]
        )));
        assert!(!ok(req(
            "POST",
            "/web/form",
            &[host, ("origin", "http://127.0.0.1:8080")]
        )));
        assert!(!ok(req("GET", "/web/", &[("host", "evil.example:8081")])));
        assert!(ok(req(
            "GET",
            "/web/",
            &[host, ("origin", "http://evil.example")]
        )));
        // Per-service origins: only the service's own pages may post to it.
        let web = ("host", "web.localhost:8081");
        let origin = |o| ("origin", o);
        assert!(ok(req("GET", "/", &[web])));
        assert!(ok(req(
            "POST",
            "/f",
            &[web, origin("http://web.localhost:8081")]
        )));
        assert!(!ok(req(
            "POST",
            "/f",
            &[web, origin("http://db.localhost:8081")]
        )));
        assert!(!ok(req(
            "POST",
            "/f",
            &[web, origin("http://127.0.0.1:8081")]
        )));
        assert!(!ok(req(
            "POST",
            "/db/f",
            &[host, origin("http://web.localhost:8081")]
        )));
    }

    #[test]
    fn the_token_is_required_except_on_open_paths() {
        let open = Guard::default();
        assert!(open.token_ok(&req("GET", "/api/v1/node", &[])));
        let g = Guard::default().with_token(Some("s3cret".into()));
        assert!(!g.token_ok(&req("GET", "/api/v1/node", &[])));
        assert!(!g.token_ok(&req(
            "GET",
            "/api/v1/node",
            &[("authorization", "Bearer wrong")]
        )));
        assert!(!g.token_ok(&req("GET", "/api/v1/node", &[("authorization", "s3cret")])));
        assert!(!g.token_ok(&req(
            "GET",
            "/api/v1/node",
            &[("authorization", "Bearer s3cre")]
        )));
        assert!(g.token_ok(&req(
            "GET",
            "/api/v1/node",
            &[("authorization", "Bearer s3cret")]
        )));
        assert!(g.token_ok(&req(
            "POST",
            "/api/v1/blobs",
            &[("authorization", "Bearer s3cret")]
        )));
        for path in [
            "/healthz",
            "/api/v1/openapi.json",
            "/docs",
            "/docs/index.html",
            "/",
            "/dashboard/app.js",
        ] {
            assert!(g.token_ok(&req("GET", path, &[])), "{path}");
        }
        assert!(g.token_ok(&req("OPTIONS", "/api/v1/node", &[])));
        assert!(!g.token_ok(&req("GET", "/docsx", &[])));
        assert!(!same_secret(b"abc", b"abd") && same_secret(b"abc", b"abc"));
    }
}
