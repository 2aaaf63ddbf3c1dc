//! `/debug/pprof/...` on the API listener (mounted by `crate::api::router`, so behind the
//! same guard and token as `/api/v1`), like Go's `net/http/pprof`:
//! - `GET /debug/pprof/profile?seconds=N`: a CPU profile of the next N seconds (default 30,
//!   at most [`MAX_SECONDS`]), gzipped pprof; 409 while another CPU profile runs;
//! - `GET /debug/pprof/heap`: the live sampled heap, gzipped pprof (needs `--heap-profile`,
//!   else 409: sampling is off);
//! - `GET /debug/pprof/goroutine`: the thread and runtime dump, gzipped pprof, or text with
//!   `?debug=1`.

use std::time::Duration;

use axum::extract::Query;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use serde::Deserialize;

use super::{Error, cpu, heap, threads};

/// Longest CPU profile one request may ask for, in seconds.
pub const MAX_SECONDS: u64 = 60;
/// CPU profile length without `seconds`.
pub const DEFAULT_SECONDS: u64 = 30;

impl Error {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::CpuBusy | Error::Heap(_) => StatusCode::CONFLICT,
            Error::HeapUnavailable => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

fn from_error(e: Error) -> Response {
    error(e.status(), e.to_string())
}

fn pprof_body(bytes: Vec<u8>, name: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// The routes, for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/debug/pprof/profile", get(profile))
        .route("/debug/pprof/heap", get(heap_profile))
        .route("/debug/pprof/goroutine", get(goroutine))
}

#[derive(Debug, Deserialize)]
struct ProfileQuery {
    seconds: Option<String>,
}

async fn profile(Query(q): Query<ProfileQuery>) -> Response {
    let seconds = match q.seconds.as_deref() {
        None => DEFAULT_SECONDS,
        Some(s) => match s.parse::<u64>() {
            Ok(n) if (1..=MAX_SECONDS).contains(&n) => n,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("seconds must be a whole number from 1 to {MAX_SECONDS}"),
                );
            }
        },
    };
    match cpu::profile_for(Duration::from_secs(seconds)).await {
        Ok(p) => pprof_body(p.pprof_gz, "cpu.pb.gz"),
        Err(e) => from_error(e),
    }
}

async fn heap_profile() -> Response {
    match heap::dump().await {
        Ok(p) => pprof_body(p, "heap.pb.gz"),
        Err(e) => from_error(e),
    }
}

#[derive(Debug, Deserialize)]
struct GoroutineQuery {
    debug: Option<String>,
}

async fn goroutine(Query(q): Query<GoroutineQuery>) -> Response {
    use pprof::protos::Message;
    let d = threads::dump();
    if q.debug.as_deref().is_some_and(|d| d != "0") {
        return (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            d.text(),
        )
            .into_response();
    }
    pprof_body(
        super::output::gzip(&d.pprof().encode_to_vec()),
        "goroutine.pb.gz",
    )
}
