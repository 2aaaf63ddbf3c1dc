//! Services and forwarding through the real binary: A offers services, C (which only knows B)
//! reaches them by name through its listener and its HTTP forward.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::{Daemon, cli, wait_until};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP echo server on 127.0.0.1; returns its port.
async fn echo_server() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    Ok(port)
}

/// An HTTP server: `GET /hello` answers with its name, the query and the Host it saw;
/// `POST /upload` answers with the sha256 and length of the streamed body.
async fn http_server(name: &'static str) -> Result<u16> {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route(
            "/hello",
            get(move |uri: axum::http::Uri| async move {
                format!("{name} says hello; query={}", uri.query().unwrap_or(""))
            }),
        )
        .route(
            "/upload",
            post(|body: axum::body::Body| async move {
                use futures::StreamExt;
                let mut stream = body.into_data_stream();
                let mut h = Sha256::new();
                let mut n = 0usize;
                while let Some(Ok(chunk)) = stream.next().await {
                    n += chunk.len();
                    h.update(&chunk);
                }
                format!("{n} {:x}", h.finalize())
            }),
        );
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Ok(port)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Deterministic pseudo-random bytes.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `payload` through a connection to `port` and checks the echo (sha256).
async fn echo_through(port: u16, payload: &[u8]) -> Result<()> {
    let s = TcpStream::connect(("127.0.0.1", port)).await?;
    let (mut r, mut w) = s.into_split();
    let want = Sha256::digest(payload);
    let to_send = payload.to_vec();
    let writer = tokio::spawn(async move {
        w.write_all(&to_send).await?;
        w.shutdown().await?;
        anyhow::Ok(())
    });
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0;
    loop {
        let k = tokio::time::timeout(Duration::from_secs(30), r.read(&mut buf)).await??;
        if k == 0 {
            break;
        }
        n += k;
        h.update(&buf[..k]);
    }
    writer.await??;
    ensure!(n == payload.len(), "echoed {n} of {} bytes", payload.len());
    ensure!(h.finalize() == want, "checksum differs");
    Ok(())
}

/// One raw HTTP/1.1 exchange on an open connection; returns status and body.
async fn http_exchange(s: &mut TcpStream, path: &str) -> Result<(u16, String)> {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await? == 0 {
            bail!(
                "connection closed in headers: {}",
                String::from_utf8_lossy(&head)
            );
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status: u16 = head.split_whitespace().nth(1).context("status")?.parse()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .context(format!("no content-length in {head}"))?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test(flavor = "multi_thread")]
async fn services_are_found_by_name_and_forwarded() -> Result<()> {
    let echo_port = echo_server().await?;
    let web_port = http_server("web").await?;
    let web2_port = http_server("web2").await?;

    let a = Daemon::start(&["--enable-monitoring"]).await?;
    let b = Daemon::start(&["--boot", &a.tcp_host_port().await?]).await?;
    let mut c = Daemon::start(&["--boot", &b.tcp_host_port().await?]).await?;
    let a_id = a.peer_id().await?;

    // A offers a TCP service (through the CLI) and two HTTP services (through REST).
    let a_dir = a.dir.to_string_lossy().into_owned();
    let (ok, _, err) = cli(&[
        "service",
        "add",
        "echo",
        &format!("tcp://localhost:{echo_port}"),
        "--data-folder",
        &a_dir,
    ])?;
    assert!(ok, "{err}");
    a.api
        .add_service("web", &format!("http://127.0.0.1:{web_port}"))
        .await?;
    a.api
        .add_service("web2", &format!("http://127.0.0.1:{web2_port}"))
        .await?;
    let (ok, out, _) = cli(&["service", "ls", "--data-folder", &a_dir])?;
    assert!(ok && out.contains("echo") && out.contains("web2"), "{out}");

    // C discovers them by name.
    for name in ["echo", "web"] {
        wait_until(30, "C finds the provider", || async {
            Ok(c.api
                .providers(name)
                .await?
                .iter()
                .any(|p| p.peer_id.to_string() == a_id))
        })
        .await?;
    }
    let c_dir = c.dir.to_string_lossy().into_owned();
    let (ok, out, err) = cli(&["service", "find", "echo", "--data-folder", &c_dir])?;
    assert!(ok && out.contains(&a_id), "{out}{err}");

    // A listener on C: 100 MB through it come back intact.
    let port = free_port()?;
    let (ok, out, err) = cli(&[
        "listen",
        "add",
        "echo",
        &format!("tcp://127.0.0.1:{port}"),
        "--data-folder",
        &c_dir,
    ])?;
    assert!(ok, "{err}");
    assert!(out.contains("listener"), "{out}");
    let start = Instant::now();
    echo_through(port, &data(100 << 20, 7)).await?;
    eprintln!("100 MiB echoed through the mesh in {:?}", start.elapsed());

    // 100 concurrent connections through the one listener.
    let mut tasks = Vec::new();
    for i in 0..100u64 {
        tasks.push(tokio::spawn(async move {
            echo_through(port, &data(64 * 1024, i + 1)).await
        }));
    }
    for t in tasks {
        if let Err(e) = t.await? {
            let pick = |log: String| {
                log.lines()
                    .filter(|l| {
                        l.contains("WARN") || l.contains("ERROR") || l.contains("connection closed")
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            bail!(
                "{e}; C's warnings:\n{}\nA's warnings:\n{}",
                pick(c.log()),
                pick(a.log())
            );
        }
    }

    // A counts the tunnels it served.
    let metrics_url = format!("{}/metrics", a.api.base_url());
    wait_until(10, "tunnel metrics", || async {
        let text = reqwest::get(&metrics_url).await?.text().await?;
        let opened = text
            .lines()
            .find(|l| l.starts_with("mcc_tunnels_total{outcome=\"opened\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        Ok(opened >= 101.0)
    })
    .await?;

    // HTTP forward from C's API: GET with a query, and a streaming POST.
    let base = c.api.base_url().to_string();
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{base}/api/v1/forward/web/hello?x=1&y=two"))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await?, "web says hello; query=x=1&y=two");
    let body = data(20 << 20, 3);
    let want = format!("{} {:x}", body.len(), Sha256::digest(&body));
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(1 << 16).map(|c| Ok(c.to_vec())).collect();
    let stream = futures::stream::iter(chunks);
    let r = http
        .post(format!("{base}/api/v1/forward/web/upload"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await?, want);

    // One keep-alive client connection, two services in a row (a known MCC bug).
    let api_port: u16 = base.rsplit(':').next().context("port")?.parse()?;
    let mut conn = TcpStream::connect(("127.0.0.1", api_port)).await?;
    let (st, body1) = http_exchange(&mut conn, "/api/v1/forward/web/hello?n=1").await?;
    assert_eq!((st, body1.as_str()), (200, "web says hello; query=n=1"));
    let (st, body2) = http_exchange(&mut conn, "/api/v1/forward/web2/hello?n=2").await?;
    assert_eq!((st, body2.as_str()), (200, "web2 says hello; query=n=2"));
    let (st, body3) = http_exchange(&mut conn, "/api/v1/forward/web/hello?n=3").await?;
    assert_eq!((st, body3.as_str()), (200, "web says hello; query=n=3"));

    // Unknown service: clear errors.
    let r = http
        .get(format!("{base}/api/v1/forward/nosuch/x"))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 404);
    let v: serde_json::Value = r.json().await?;
    assert!(v["error"].as_str().unwrap_or("").contains("nosuch"), "{v}");
    let err = c
        .api
        .add_listener("Bad Name", "tcp://127.0.0.1:1", None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    let err = c
        .api
        .add_listener("echo", &format!("tcp://127.0.0.1:{port}"), None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    let ghost_port = free_port()?;
    c.api
        .add_listener("ghost", &format!("tcp://127.0.0.1:{ghost_port}"), None)
        .await?;
    let mut s = TcpStream::connect(("127.0.0.1", ghost_port)).await?;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(45), s.read(&mut buf)).await??;
    assert_eq!(n, 0, "a connection to an unknown service is closed");

    // The listener survives a restart of C (kill -9).
    c.kill();
    c.restart().await?;
    assert!(
        c.api
            .listeners()
            .await?
            .iter()
            .any(|l| l.address.ends_with(&format!(":{port}")))
    );
    wait_until(30, "listener works after restart", || async {
        Ok(echo_through(port, &data(1 << 20, 9)).await.is_ok())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn listener_fails_over_to_the_next_provider() -> Result<()> {
    let echo_port = echo_server().await?;
    let mut a = Daemon::start(&[]).await?;
    let boot = a.tcp_host_port().await?;
    let d = Daemon::start(&["--boot", &boot]).await?;
    let c = Daemon::start(&["--boot", &boot]).await?;
    let addr = format!("tcp://127.0.0.1:{echo_port}");
    a.api.add_service("echo", &addr).await?;
    d.api.add_service("echo", &addr).await?;
    let ids = [a.peer_id().await?, d.peer_id().await?];
    wait_until(30, "both providers found", || async {
        let found = c.api.providers("echo").await?;
        Ok(ids
            .iter()
            .all(|id| found.iter().any(|p| p.peer_id.to_string() == *id)))
    })
    .await?;
    let port = free_port()?;
    c.api
        .add_listener("echo", &format!("tcp://127.0.0.1:{port}"), None)
        .await?;
    echo_through(port, &data(1 << 20, 1)).await?;

    // Stop one provider: new connections still work, through the other.
    a.kill();
    for i in 0..5 {
        echo_through(port, &data(256 * 1024, 10 + i)).await?;
    }
    // Removing the service on D leaves no provider: connections are closed.
    d.api.remove_service("echo").await?;
    assert!(d.api.services().await?.is_empty());
    Ok(())
}
