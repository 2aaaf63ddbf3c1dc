//! How a request names what it is for, shared by the [`guard`](super::guard) and the
//! [`forward`](super::forward): the host part of a `Host` header, the per-service hosts of the
//! forward listener (`web.localhost`) and the path prefix of the path forward on the API
//! listener. Both modules depend on this one and not on each other.

use axum::http::{Request, header};

/// Path prefix of the path forward on the API listener.
pub(super) const API_PREFIX: &str = "/api/v1/forward";

/// Per-service hosts of the forward listener end with this: `web.localhost`.
pub(super) const SERVICE_HOST_SUFFIX: &str = ".localhost";

/// The service that a `Host` such as `web.localhost:8090` names, if it is valid.
pub(super) fn service_of_host(authority: &str) -> Option<String> {
    let name = host_name(authority);
    let service = name.strip_suffix(SERVICE_HOST_SUFFIX)?;
    crate::services::registry::validate_name(service).ok()?;
    Some(service.to_string())
}

/// The `Host` of a request (or its URI authority).
pub(super) fn request_host<B>(req: &Request<B>) -> Option<&str> {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}

/// The host part of a `Host` header or URL authority: no port, no brackets, lowercase, no
/// trailing dot.
pub(super) fn host_name(authority: &str) -> String {
    let a = authority.trim();
    let name = match a.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => match a.rsplit_once(':') {
            Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => a,
        },
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether a `Host` names this machine the way a local browser does (so `*.localhost` reaches
/// it too).
pub(super) fn is_local_host(authority: &str) -> bool {
    let name = host_name(authority);
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_hosts() {
        assert_eq!(
            service_of_host("web.localhost:8090").as_deref(),
            Some("web")
        );
        assert_eq!(
            service_of_host("My.Db.localhost.").as_deref(),
            Some("my.db")
        );
        assert_eq!(service_of_host("localhost:8090"), None);
        assert_eq!(service_of_host(".localhost"), None);
        assert_eq!(service_of_host("web.evil.example"), None);
        assert!(is_local_host("127.0.0.1:8090") && is_local_host("localhost"));
        assert!(!is_local_host("box.lan:8090"));
    }
}
