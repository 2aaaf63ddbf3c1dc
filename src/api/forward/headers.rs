//! The headers the forward drops, keeps and adds on its way to a service and back, as a
//! reverse proxy does (RFC 9110 §7.6).

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

/// Headers that belong to one connection, not to the message (RFC 9110 §7.6.1), never
/// forwarded in either direction; nor is any header that `Connection` names, nor any
/// `Proxy-*` header (they are for this hop: credentials and challenges of a proxy).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What this forward adds to `Via` on answers (RFC 9110 §7.6.3): it received HTTP/1.1 and
/// names itself `mcc`. Requests go upstream without it, as from nginx: nginx itself, as a
/// service, stops compressing answers to requests that carry `Via` (`gzip_proxied off`), and
/// bytes that cross the mesh are worth compressing.
pub(super) const VIA: &str = "1.1 mcc";

/// Removes the hop-by-hop headers: those of [`HOP_BY_HOP`], those `Connection` lists, and
/// every `Proxy-*` header.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
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
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for h in proxy {
        headers.remove(h);
    }
}

/// The protocol a request asks to switch to: its `Upgrade` header, when `Connection` lists
/// `upgrade`.
pub(super) fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let asked = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    asked
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Puts back the two headers of a protocol switch (after [`strip_hop_by_hop`]).
pub(super) fn set_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// Appends `value` to a list header (`Via`, `X-Forwarded-For`), as one comma-separated line.
fn append_to_list(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    let before: Vec<&str> = headers
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let joined = if before.is_empty() {
        value.to_string()
    } else {
        format!("{}, {value}", before.join(", "))
    };
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(name, v);
    }
}

/// Adds this hop to `Via`.
pub(super) fn add_via(headers: &mut HeaderMap) {
    append_to_list(headers, header::VIA, VIA);
}

/// Rewrites a request's headers for the service: `Host` becomes the service's name, the
/// client's `Host` goes to `X-Forwarded-Host`, `X-Forwarded-Proto: http`, the client's
/// address is appended to `X-Forwarded-For`, the mount point goes to `X-Forwarded-Prefix`
/// (when there is one). `Via` is left as the client sent it (see [`VIA`]).
pub(super) fn add_forwarded(
    headers: &mut HeaderMap,
    service: &HeaderValue,
    client: Option<IpAddr>,
    prefix: Option<&str>,
) {
    match headers.remove(header::HOST) {
        Some(host) => {
            headers.insert("x-forwarded-host", host);
        }
        None => {
            headers.remove("x-forwarded-host");
        }
    }
    headers.insert(header::HOST, service.clone());
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Some(ip) = client {
        append_to_list(
            headers,
            HeaderName::from_static("x-forwarded-for"),
            &ip.to_string(),
        );
    }
    match prefix.and_then(|p| HeaderValue::from_str(p).ok()) {
        Some(p) => {
            headers.insert("x-forwarded-prefix", p);
        }
        None => {
            headers.remove("x-forwarded-prefix");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn strips_hop_by_hop_listed_and_proxy_headers() {
        let mut h = map(&[
            ("connection", "close, X-Private"),
            ("connection", "x-other"),
            ("x-private", "1"),
            ("x-other", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x-t"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("proxy-whatever", "1"),
            ("x-kept", "1"),
            ("content-length", "3"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-length", "x-kept"]);
    }

    #[test]
    fn upgrade_needs_both_headers() {
        let h = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(
            upgrade_of(&h).as_ref().map(|v| v.as_bytes()),
            Some(&b"websocket"[..])
        );
        assert!(upgrade_of(&map(&[("upgrade", "websocket")])).is_none());
        assert!(upgrade_of(&map(&[("connection", "upgrade")])).is_none());
    }

    #[test]
    fn forwarded_headers_append_and_replace() {
        let mut h = map(&[
            ("host", "web.localhost:8082"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-prefix", "/evil"),
            ("via", "1.0 front"),
        ]);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        add_forwarded(&mut h, &HeaderValue::from_static("web"), Some(ip), None);
        assert_eq!(h["host"], "web");
        assert_eq!(h["x-forwarded-host"], "web.localhost:8082");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert!(h.get("x-forwarded-prefix").is_none());
        assert_eq!(h["via"], "1.0 front");
    }
}
