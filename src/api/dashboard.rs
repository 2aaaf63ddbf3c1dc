//! The dashboard: a page at `/` of the API listener that shows this node and drives it through
//! the REST API (`/api/v1/...`) like any other client.
//!
//! Its files (`dashboard/index.html`, `style.css`, `icon.svg`, and the JavaScript modules
//! `app.js` (the entry), `util.js`, `live.js`, `blobs.js`, `routes.js`) are plain HTML, CSS
//! and JavaScript without a framework or build step, embedded in the binary: the page works
//! offline and `cargo build` needs nothing else. They hold no data, so they are served without
//! the API token (see `guard`); every data request of the page carries it.
//!
//! Every answer has a strict Content-Security-Policy (scripts, styles and requests to this
//! origin only, no inline script, no framing), `X-Content-Type-Options: nosniff`, and
//! `Cache-Control: no-cache` with an `ETag` (a hash of the file), so browsers revalidate and an
//! upgraded node never runs an old script.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{ApiError, AppState};

/// Path prefix of the dashboard's scripts, styles and images.
pub const ASSETS: &str = "/dashboard/";

/// What the dashboard's answers allow the page: its own scripts, styles, images and API
/// requests; no inline script or style, no plugins, no forms posting elsewhere, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    etag: OnceLock<HeaderValue>,
}

impl Asset {
    const fn new(body: &'static [u8], content_type: &'static str) -> Self {
        Self {
            body,
            content_type,
            etag: OnceLock::new(),
        }
    }

    /// A strong ETag: the first 16 bytes of the file's SHA-256 in hex.
    fn etag(&self) -> &HeaderValue {
        self.etag.get_or_init(|| {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(self.body);
            let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
            HeaderValue::from_str(&format!("\"{hex}\""))
                .unwrap_or(HeaderValue::from_static("\"0\""))
        })
    }

    /// The file, or `304 Not Modified` when the browser's copy is current.
    fn respond(&self, headers: &HeaderMap) -> Response {
        let etag = self.etag();
        let fresh = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim().as_bytes() == etag.as_bytes()));
        let mut resp = if fresh {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(self.content_type),
                )],
                self.body,
            )
                .into_response()
        };
        let h = resp.headers_mut();
        h.insert(header::ETAG, etag.clone());
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        resp
    }
}

static INDEX: Asset = Asset::new(
    include_bytes!("dashboard/index.html"),
    "text/html; charset=utf-8",
);
static ICON: Asset = Asset::new(include_bytes!("dashboard/icon.svg"), "image/svg+xml");

/// `text/javascript` for the page's modules.
const JS: &str = "text/javascript; charset=utf-8";

/// The files under [`ASSETS`], by name.
static FILES: [(&str, Asset); 7] = [
    ("app.js", Asset::new(include_bytes!("dashboard/app.js"), JS)),
    (
        "util.js",
        Asset::new(include_bytes!("dashboard/util.js"), JS),
    ),
    (
        "live.js",
        Asset::new(include_bytes!("dashboard/live.js"), JS),
    ),
    (
        "blobs.js",
        Asset::new(include_bytes!("dashboard/blobs.js"), JS),
    ),
    (
        "routes.js",
        Asset::new(include_bytes!("dashboard/routes.js"), JS),
    ),
    (
        "style.css",
        Asset::new(
            include_bytes!("dashboard/style.css"),
            "text/css; charset=utf-8",
        ),
    ),
    (
        "icon.svg",
        Asset::new(include_bytes!("dashboard/icon.svg"), "image/svg+xml"),
    ),
];

/// Whether `path` is one of the dashboard's files (served without the API token).
pub(super) fn is_dashboard_path(path: &str) -> bool {
    path == "/" || path == "/favicon.ico" || path.starts_with(ASSETS)
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match FILES.iter().find(|(n, _)| *n == name) {
        Some((_, asset)) => asset.respond(&headers),
        None => ApiError::new(StatusCode::NOT_FOUND, "no such dashboard file").into_response(),
    }
}

/// The dashboard's routes: `/`, its files under `/dashboard/`, and the icon.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|h: HeaderMap| async move { INDEX.respond(&h) }))
        .route("/dashboard/{name}", get(file))
        .route(
            "/favicon.ico",
            get(|h: HeaderMap| async move { ICON.respond(&h) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(name: &str) -> &'static Asset {
        &FILES.iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn assets_have_types_csp_and_revalidate() {
        let resp = asset("app.js").respond(&HeaderMap::new());
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self';") && !csp.contains("unsafe"));
        let etag = h[header::ETAG].clone();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(
            asset("app.js").respond(&again).status(),
            StatusCode::NOT_MODIFIED
        );
        assert_ne!(INDEX.etag(), asset("app.js").etag());
        assert!(is_dashboard_path("/") && is_dashboard_path("/dashboard/app.js"));
        assert!(!is_dashboard_path("/api/v1/node") && !is_dashboard_path("/docs"));
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = std::str::from_utf8(INDEX.body).unwrap();
        assert!(!html.contains("<script>") && !html.contains("style="));
        assert!(html.contains("src=\"/dashboard/app.js\""));
        // Every module the page imports is served.
        for (name, a) in &FILES {
            let text = std::str::from_utf8(a.body).unwrap();
            for import in text.lines().filter_map(|l| l.split("from \"./").nth(1)) {
                let file = import.split('"').next().unwrap();
                assert!(
                    FILES.iter().any(|(n, _)| *n == file),
                    "{name} imports {file}"
                );
            }
        }
    }
}
