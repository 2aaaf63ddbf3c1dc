//! The HTTP forward (`--http-forward`) as a reverse proxy, through the real binary: provider A
//! offers `http://` services, consumer C forwards to them, and each test talks HTTP/1.1 to C
//! against a real upstream: python's `http.server` (HTTP/1.0, closes after each answer),
//! nginx (skipped when not installed), a hyper server and raw sockets written here.

mod common;
#[path = "http_proxy/upstreams.rs"]
mod upstreams;

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use common::{Daemon, wait_until};
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode, Version};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use upstreams::{
    EXCHANGE, Nginx, Process, dying_server, free_port, hyper_server, read_head, stalling_server,
    wait_listening,
};

type Body = BoxBody<Bytes, std::io::Error>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Provider A and consumer C (with a forward listener at `forward`, `127.0.0.1:PORT`).
struct Mesh {
    _a: Daemon,
    _c: Daemon,
    forward: String,
}

/// A offering each `(name, port)` as `http://127.0.0.1:port`, C with a forward listener and
/// `consumer_flags`, once C finds every service at A.
async fn mesh(services: &[(&str, u16)], consumer_flags: &[&str]) -> Result<Mesh> {
    let a = Daemon::start(&[]).await?;
    let boot = a.tcp_host_port().await?;
    let mut flags = vec!["--boot", &boot, "--http-forward", "127.0.0.1:0"];
    flags.extend_from_slice(consumer_flags);
    let c = Daemon::start(&flags).await?;
    let a_id = a.peer_id().await?;
    for (name, port) in services {
        a.api
            .add_service(name, &format!("http://127.0.0.1:{port}"))
            .await?;
        wait_until(30, "C finds A's service", || async {
            Ok(c.api
                .providers(name)
                .await?
                .iter()
                .any(|p| p.peer_id.to_string() == a_id))
        })
        .await?;
    }
    let forward = c
        .api
        .node()
        .await?
        .http_forward
        .context("no http_forward in GET /api/v1/node")?
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    Ok(Mesh {
        _a: a,
        _c: c,
        forward,
    })
}

/// One client connection to `addr`; its requests go one after another on it.
async fn connect(addr: &str) -> Result<SendRequest<Body>> {
    let tcp = TcpStream::connect(addr).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn.with_upgrades());
    Ok(sender)
}

fn request(method: Method, host: &str, path: &str) -> hyper::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, host)
}

/// Sends `req` on `conn` and reads the whole answer, within [`EXCHANGE`].
async fn exchange(
    conn: &mut SendRequest<Body>,
    req: Request<Body>,
) -> Result<(hyper::http::response::Parts, Bytes)> {
    let what = format!("{} {}", req.method(), req.uri());
    tokio::time::timeout(EXCHANGE, async {
        conn.ready()
            .await
            .with_context(|| format!("{what}: the client connection was closed"))?;
        let resp = conn
            .send_request(req)
            .await
            .with_context(|| format!("{what}: no answer"))?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        anyhow::Ok((parts, body))
    })
    .await
    .with_context(|| format!("{what}: timed out"))?
}

/// An answer the client sees as HTTP/1.1 with its connection kept open.
fn assert_kept_alive(parts: &hyper::http::response::Parts) {
    assert_eq!(parts.version, Version::HTTP_11, "{parts:?}");
    assert!(
        parts.headers.get(hyper::header::CONNECTION).is_none(),
        "{parts:?}"
    );
    assert!(parts.headers.get("keep-alive").is_none(), "{parts:?}");
}

/// python's `http.server` (HTTP/1.0: one answer per connection, then it closes): two files
/// fetched three times on one client connection, each answer in HTTP/1.1 with the connection
/// kept open. Before the proxy rewrite the client got HTTP/1.0 and a closed connection.
#[tokio::test(flavor = "multi_thread")]
async fn python_http_server_upstream_keeps_the_client_connection() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("hello.txt"), "hello from python\n")?;
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("big.bin"), &big)?;
    let port = free_port()?;
    let python = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--directory")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting python3 -m http.server")?;
    let _python = Process(python);
    wait_listening(port).await?;
    let m = mesh(&[("py", port)], &[]).await?;

    let mut conn = connect(&m.forward).await?;
    for path in ["/py/hello.txt", "/py/big.bin", "/py/hello.txt"] {
        let req = request(Method::GET, &m.forward, path).body(empty())?;
        let (parts, body) = exchange(&mut conn, req).await?;
        assert_eq!(parts.status, StatusCode::OK, "{path}");
        assert_kept_alive(&parts);
        if path.ends_with("big.bin") {
            assert!(body == big, "big.bin differs");
        } else {
            assert_eq!(body, "hello from python\n");
        }
    }
    // A HEAD on the same connection: the length, no body, and the connection still usable.
    let req = request(Method::HEAD, &m.forward, "/py/big.bin").body(empty())?;
    let (parts, body) = exchange(&mut conn, req).await?;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers[hyper::header::CONTENT_LENGTH], "300000");
    assert!(body.is_empty());
    let req = request(Method::GET, &m.forward, "/py/hello.txt").body(empty())?;
    let (parts, _) = exchange(&mut conn, req).await?;
    assert_eq!(parts.status, StatusCode::OK);
    Ok(())
}

/// nginx upstream: a gzip download arrives chunked, a chunked upload (PUT) is stored whole,
/// HEAD and 304 answers carry no body, all on one client connection; and since nginx keeps
/// its connections alive, the forward's requests share one upstream connection.
#[tokio::test(flavor = "multi_thread")]
async fn nginx_upstream_chunked_both_ways_head_and_304() -> Result<()> {
    let root = tempfile::tempdir()?;
    let text = "a line of text for gzip to squeeze\n".repeat(20_000);
    std::fs::write(root.path().join("big.txt"), &text)?;
    let Some(nginx) = Nginx::start(root.path())? else {
        eprintln!("skipping: nginx is not installed");
        return Ok(());
    };
    wait_listening(nginx.port).await?;
    let m = mesh(&[("ngx", nginx.port)], &[]).await?;
    let mut conn = connect(&m.forward).await?;

    // Chunked download: nginx gzips on the fly, without a length.
    let gzip = |host: &str, path: &str| {
        request(Method::GET, host, path)
            .header(hyper::header::ACCEPT_ENCODING, "gzip")
            .body(empty())
    };
    let (parts, through) = exchange(&mut conn, gzip(&m.forward, "/ngx/big.txt")?).await?;
    assert_eq!(parts.status, StatusCode::OK);
    assert_kept_alive(&parts);
    assert_eq!(parts.headers[hyper::header::CONTENT_ENCODING], "gzip");
    assert_eq!(parts.headers[hyper::header::TRANSFER_ENCODING], "chunked");
    assert!(parts.headers.get(hyper::header::CONTENT_LENGTH).is_none());
    let direct_host = format!("127.0.0.1:{}", nginx.port);
    let mut direct = connect(&direct_host).await?;
    let (_, expected) = exchange(&mut direct, gzip(&direct_host, "/big.txt")?).await?;
    assert!(
        through == expected,
        "the gzip stream differs from nginx's own"
    );

    // Chunked upload: a body of several frames without a length, stored by nginx as sent.
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = (0..50)
        .map(|i| {
            Ok(Frame::data(Bytes::from(
                format!("chunk {i:03} ").repeat(1000),
            )))
        })
        .collect();
    let uploaded: Vec<u8> = (0..50)
        .flat_map(|i| format!("chunk {i:03} ").repeat(1000).into_bytes())
        .collect();
    let body = BodyExt::boxed(StreamBody::new(futures::stream::iter(frames)));
    let req = request(Method::PUT, &m.forward, "/ngx/up/file.bin").body(body)?;
    let (parts, _) = exchange(&mut conn, req).await?;
    assert_eq!(parts.status, StatusCode::CREATED, "{parts:?}");
    assert_kept_alive(&parts);
    let stored = std::fs::read(root.path().join("up/file.bin"))?;
    assert!(stored == uploaded, "the stored upload differs");

    // HEAD: the length of the file, no body; the connection goes on.
    let req = request(Method::HEAD, &m.forward, "/ngx/big.txt").body(empty())?;
    let (parts, body) = exchange(&mut conn, req).await?;
    assert_eq!(parts.status, StatusCode::OK);
    assert_kept_alive(&parts);
    assert_eq!(
        parts.headers[hyper::header::CONTENT_LENGTH],
        text.len().to_string()
    );
    assert!(body.is_empty());

    // 304 for a matching ETag: no body; the connection goes on.
    let req = request(Method::GET, &m.forward, "/ngx/big.txt").body(empty())?;
    let (parts, body) = exchange(&mut conn, req).await?;
    assert_eq!(body.len(), text.len());
    let etag = parts.headers[hyper::header::ETAG].clone();
    let req = request(Method::GET, &m.forward, "/ngx/big.txt")
        .header(hyper::header::IF_NONE_MATCH, etag)
        .body(empty())?;
    let (parts, body) = exchange(&mut conn, req).await?;
    assert_eq!(parts.status, StatusCode::NOT_MODIFIED);
    assert_kept_alive(&parts);
    assert!(body.is_empty());
    let req = request(Method::GET, &m.forward, "/ngx/up/file.bin").body(empty())?;
    let (parts, body) = exchange(&mut conn, req).await?;
    assert_eq!(parts.status, StatusCode::OK);
    assert!(body == uploaded);
    // 7 requests through the forward, 1 straight to nginx.
    let connections = nginx.connections()?;
    assert!(
        connections <= 3,
        "8 requests took {connections} nginx connections"
    );
    Ok(())
}

/// The headers a `/headers` answer lists, as (name, value) pairs.
fn seen(text: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// hyper upstream: hop-by-hop headers go neither way, `X-Forwarded-*` are sent (`Via` on
/// answers only), 204 has no body, `Expect: 100-continue` gets its 100 before the body is
/// sent, and the upstream connection (it keeps alive) is reused across requests and client
/// connections.
#[tokio::test(flavor = "multi_thread")]
async fn hyper_upstream_headers_continue_204_and_pooling() -> Result<()> {
    let (port, accepted) = hyper_server().await?;
    let m = mesh(&[("hy", port)], &[]).await?;
    let mut conn = connect(&m.forward).await?;

    let req = request(Method::GET, &m.forward, "/hy/headers?x=1")
        .header("connection", "x-drop-me")
        .header("x-drop-me", "1")
        .header("keep-alive", "timeout=9")
        .header("te", "trailers")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("x-keep-me", "1")
        .body(empty())?;
    let (parts, body) = exchange(&mut conn, req).await?;
    assert_eq!(parts.status, StatusCode::OK);
    assert_kept_alive(&parts);
    let headers = seen(&body);
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    for gone in [
        "x-drop-me",
        "keep-alive",
        "te",
        "proxy-authorization",
        "upgrade",
    ] {
        assert_eq!(get(gone), None, "{gone} reached the upstream: {headers:?}");
    }
    assert_eq!(get("x-keep-me"), Some("1"));
    assert_eq!(get("host"), Some("hy"));
    // No Via upstream, as from nginx (it would turn nginx's gzip off).
    assert_eq!(get("via"), None, "{headers:?}");
    assert_eq!(get("x-forwarded-for"), Some("127.0.0.1"), "{headers:?}");
    assert_eq!(get("x-forwarded-proto"), Some("http"));
    assert_eq!(get("x-forwarded-host"), Some(m.forward.as_str()));
    assert_eq!(get("x-forwarded-prefix"), Some("/hy"));

    let req = request(Method::GET, &m.forward, "/hy/hop").body(empty())?;
    let (parts, body) = exchange(&mut conn, req).await?;
    assert_eq!(body, "hop");
    assert_kept_alive(&parts);
    for gone in [
        "x-private",
        "proxy-authenticate",
        "proxy-x",
        "trailer",
        "upgrade",
        "transfer-encoding",
    ] {
        assert!(parts.headers.get(gone).is_none(), "{gone}: {parts:?}");
    }
    assert_eq!(parts.headers["x-kept"], "yes");
    assert_eq!(parts.headers["via"], "1.1 mcc");

    let req = request(Method::DELETE, &m.forward, "/hy/empty").body(empty())?;
    let (parts, body) = exchange(&mut conn, req).await?;
    assert_eq!(parts.status, StatusCode::NO_CONTENT);
    assert_kept_alive(&parts);
    assert!(body.is_empty());
    let req = request(Method::POST, &m.forward, "/hy/echo").body(full("after 204"))?;
    let (_, body) = exchange(&mut conn, req).await?;
    assert_eq!(body, "after 204");

    // Expect: 100-continue, by hand: the 100 comes before the client sends the body.
    let mut tcp = TcpStream::connect(&m.forward).await?;
    let payload = "continue me ".repeat(5000);
    let head = format!(
        "POST /hy/echo HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\n\r\n",
        m.forward,
        payload.len()
    );
    tcp.write_all(head.as_bytes()).await?;
    let interim = read_head(&mut tcp).await?;
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    tcp.write_all(payload.as_bytes()).await?;
    let head = read_head(&mut tcp).await?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut body = vec![0u8; payload.len()];
    tokio::time::timeout(EXCHANGE, tcp.read_exact(&mut body)).await??;
    assert!(body == payload.as_bytes());

    // All of it went over few upstream connections: idle ones are reused, not reopened.
    let before = accepted.load(Ordering::SeqCst);
    for _ in 0..5 {
        let mut c = connect(&m.forward).await?;
        let req = request(Method::GET, &m.forward, "/hy/headers").body(empty())?;
        exchange(&mut c, req).await?;
    }
    let after = accepted.load(Ordering::SeqCst);
    assert!(
        after - before <= 1,
        "5 sequential requests opened {} upstream connections",
        after - before
    );
    Ok(())
}

/// WebSocket through the forward: the upgrade request reaches the upstream, its 101 comes
/// back, then bytes flow both ways on the client's connection.
#[tokio::test(flavor = "multi_thread")]
async fn websocket_upgrade_through_the_forward() -> Result<()> {
    let (port, _) = hyper_server().await?;
    let m = mesh(&[("ws", port)], &[]).await?;
    let mut tcp = TcpStream::connect(&m.forward).await?;
    let head = format!(
        "GET /ws/ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        m.forward
    );
    tcp.write_all(head.as_bytes()).await?;
    let answer = read_head(&mut tcp).await?;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("upgrade: websocket"), "{answer}");
    assert!(lower.contains("connection: upgrade"), "{answer}");
    for i in 0..20 {
        let msg = format!("message {i} ").repeat(i * 100 + 1);
        tcp.write_all(msg.as_bytes()).await?;
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(EXCHANGE, tcp.read_exact(&mut back)).await??;
        assert!(back == msg.as_bytes(), "echo {i} differs");
    }
    Ok(())
}

/// An HTTP/1.0 answer without a length: its body ends where the connection closes.
const CLOSE_DELIMITED: &[u8] =
    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nthe whole answer, ended by closing";

/// An upstream that dies mid-response (half its Content-Length, or chunks without the last)
/// or stalls in it for longer than `--http-forward-timeout`: the client's request fails
/// quickly instead of hanging or ending as if complete. An answer that ends by closing (HTTP/1.0
/// without a length) is complete, though.
#[tokio::test(flavor = "multi_thread")]
async fn upstream_dying_mid_response_fails_the_client_quickly() -> Result<()> {
    let mut half = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
    half.extend(std::iter::repeat_n(b'x', 50_000));
    let half: &'static [u8] = half.leak();
    let chunks: &'static [u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n";
    let m = mesh(
        &[
            ("half", dying_server(half).await?),
            ("chunks", dying_server(chunks).await?),
            ("stall", stalling_server(half).await?),
            ("close", dying_server(CLOSE_DELIMITED).await?),
        ],
        &["--http-forward-timeout", "2"],
    )
    .await?;
    for path in ["/half/", "/chunks/", "/stall/"] {
        let started = Instant::now();
        let mut conn = connect(&m.forward).await?;
        let req = request(Method::GET, &m.forward, path).body(empty())?;
        match exchange(&mut conn, req).await {
            Ok((parts, body)) => bail!("{path}: complete answer {parts:?}, {} bytes", body.len()),
            Err(e) => {
                let text = format!("{e:#}");
                assert!(!text.contains("timed out"), "{path}: {text}");
            }
        }
        assert!(started.elapsed() < EXCHANGE, "{path}");
    }
    // An HTTP/1.0 answer that ends where the connection closes is whole: re-framed as chunked
    // for the client, whose connection stays open.
    let mut conn = connect(&m.forward).await?;
    for _ in 0..2 {
        let req = request(Method::GET, &m.forward, "/close/").body(empty())?;
        let (parts, body) = exchange(&mut conn, req).await?;
        assert_eq!(parts.status, StatusCode::OK);
        assert_kept_alive(&parts);
        assert_eq!(parts.headers[hyper::header::TRANSFER_ENCODING], "chunked");
        assert_eq!(body, "the whole answer, ended by closing");
    }
    Ok(())
}

/// An upstream that accepts and never answers gets the client a 504 with a JSON error after
/// `--http-forward-timeout`; an upstream that refuses connections, a 502 with a JSON error.
#[tokio::test(flavor = "multi_thread")]
async fn silent_upstream_504_and_refused_upstream_502() -> Result<()> {
    let silent = TcpListener::bind("127.0.0.1:0").await?;
    let silent_port = silent.local_addr()?.port();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            held.push(tcp);
        }
    });
    let refused_port = free_port()?;
    let m = mesh(
        &[("silent", silent_port), ("refused", refused_port)],
        &["--http-forward-timeout", "2"],
    )
    .await?;
    let mut conn = connect(&m.forward).await?;

    let started = Instant::now();
    let req = request(Method::GET, &m.forward, "/silent/").body(empty())?;
    let (parts, body) = exchange(&mut conn, req).await?;
    let waited = started.elapsed();
    assert_eq!(parts.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(waited >= Duration::from_millis(1900), "{waited:?}");
    let error: serde_json::Value = serde_json::from_slice(&body)?;
    assert!(error["error"].as_str().is_some(), "{error}");

    let req = request(Method::GET, &m.forward, "/refused/").body(empty())?;
    let (parts, body) = exchange(&mut conn, req).await?;
    assert_eq!(parts.status, StatusCode::BAD_GATEWAY);
    let error: serde_json::Value = serde_json::from_slice(&body)?;
    assert!(error["error"].as_str().is_some(), "{error}");
    held.abort();
    Ok(())
}
