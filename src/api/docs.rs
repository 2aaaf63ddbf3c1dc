//! Swagger UI at `/docs`, with its files stored gzipped in the binary.
//!
//! `utoipa-swagger-ui` (features `vendored` and `gzip`) embeds Swagger UI's files compressed
//! (about a quarter of their 4.3 MB) and answers them with `Content-Encoding: gzip` whatever the
//! client asked for. Every browser accepts gzip; for a client that does not say so in
//! `Accept-Encoding` (curl without `--compressed`, scripts), [`gunzip_unless_accepted`]
//! decompresses the answer, so `/docs` reads the same to every client.

use std::io::Read;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Largest Swagger UI file once decompressed (the largest is 1.5 MB).
const MAX_FILE: usize = 16 * 1024 * 1024;

/// Middleware of the `/docs` routes: serves a gzipped answer decompressed to a client that
/// does not accept gzip.
pub async fn gunzip_unless_accepted(req: Request, next: Next) -> Response {
    let accepts = accepts_gzip(req.headers());
    let mut resp = next.run(req).await;
    let gzipped = resp
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    if !gzipped {
        return resp;
    }
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if accepts {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(zipped) = axum::body::to_bytes(body, MAX_FILE).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut plain = Vec::new();
    let read = flate2::read::GzDecoder::new(zipped.as_ref())
        .take(MAX_FILE as u64)
        .read_to_end(&mut plain);
    if read.is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    parts.headers.remove(header::CONTENT_ENCODING);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(plain))
}

/// Whether `Accept-Encoding` allows gzip (`gzip` or `*`, not with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn accept_encoding_is_parsed() {
        assert!(!accepts_gzip(&HeaderMap::new()));
        assert!(accepts_gzip(&with("gzip, deflate, br, zstd")));
        assert!(accepts_gzip(&with("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&with("*")));
        assert!(!accepts_gzip(&with("gzip;q=0, br")));
        assert!(!accepts_gzip(&with("identity")));
        assert!(!accepts_gzip(&with("x-gzip-not")));
    }
}
