//! The upstreams of `tests/http_proxy.rs`: python and nginx processes, a hyper server and raw
//! servers that die or stall mid-answer, with the small socket helpers they share.

use std::convert::Infallible;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::common::wait_until;

/// The longest a single read of a test may take.
pub const EXCHANGE: Duration = Duration::from_secs(10);

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until something accepts connections on `port`.
pub async fn wait_listening(port: u16) -> Result<()> {
    wait_until(10, "the upstream listens", || async {
        Ok(TcpStream::connect(("127.0.0.1", port)).await.is_ok())
    })
    .await
}

/// A child process killed on drop.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// nginx serving files and accepting PUT (WebDAV), started by the test on a loopback port.
pub struct Nginx {
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Nginx {
    /// Starts nginx with `root` as its document root, or `None` when nginx is not installed.
    pub fn start(root: &std::path::Path) -> Result<Option<Nginx>> {
        if Command::new("nginx").arg("-v").output().is_err() {
            return Ok(None);
        }
        let port = free_port()?;
        let dir = tempfile::tempdir()?;
        let d = dir.path().display();
        let r = root.display();
        // `user root` only matters when the test runs as root: the workers may then read the
        // test's private temp folders (as an ordinary user the line is ignored).
        let conf = format!(
            "user root;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{}}\nhttp {{\n log_format conn '$connection $request';\n \
             access_log {d}/access.log conn;\n client_body_temp_path {d}/body;\n \
             proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fcgi;\n uwsgi_temp_path {d}/uwsgi;\n \
             scgi_temp_path {d}/scgi;\n server {{\n  listen 127.0.0.1:{port};\n  root {r};\n  \
             location / {{ dav_methods PUT; create_full_put_path on; client_max_body_size 10m;\n   \
             gzip on; gzip_min_length 0; gzip_types text/plain; }}\n }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf)?;
        let status = Command::new("nginx")
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .status()
            .context("starting nginx")?;
        ensure!(status.success(), "nginx did not start");
        Ok(Some(Nginx { dir, port }))
    }
}

impl Nginx {
    /// How many connections served the requests logged so far.
    pub fn connections(&self) -> Result<usize> {
        let log = std::fs::read_to_string(self.dir.path().join("access.log"))?;
        let mut ids: Vec<&str> = log.lines().filter_map(|l| l.split(' ').next()).collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(ids.len())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("nginx")
            .arg("-c")
            .arg(self.dir.path().join("nginx.conf"))
            .args(["-s", "stop"])
            .status();
    }
}

/// A hyper server: `/headers` answers the request's headers as text, `/echo` the body,
/// `/empty` 204, `/hop` an answer full of hop-by-hop headers, `/ws` upgrades and echoes bytes.
/// Returns its port and the count of connections it accepted.
pub async fn hyper_server() -> Result<(u16, Arc<AtomicUsize>)> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), hyper::service::service_fn(handle))
                    .with_upgrades(),
            );
        }
    });
    Ok((port, accepted))
}

pub async fn handle(mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let ok = |b: Bytes| Response::new(Full::new(b));
    Ok(match req.uri().path() {
        "/headers" => {
            let text: String = req
                .headers()
                .iter()
                .map(|(k, v)| format!("{k}: {}\n", v.to_str().unwrap_or("?")))
                .collect();
            ok(text.into())
        }
        "/echo" => match req.into_body().collect().await {
            Ok(b) => ok(b.to_bytes()),
            Err(_) => ok(Bytes::new()),
        },
        "/empty" => {
            let mut r = ok(Bytes::new());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        "/hop" => {
            let mut r = ok("hop".into());
            let h = r.headers_mut();
            for (k, v) in [
                ("connection", "x-private"),
                ("x-private", "1"),
                ("keep-alive", "timeout=5"),
                ("proxy-authenticate", "Basic"),
                ("proxy-x", "1"),
                ("trailer", "x-t"),
                ("upgrade", "h2c"),
                ("x-kept", "yes"),
            ] {
                h.insert(k, hyper::header::HeaderValue::from_static(v));
            }
            r
        }
        "/ws" => {
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(io) = upgrade.await {
                    let (mut r, mut w) = tokio::io::split(TokioIo::new(io));
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            });
            let mut r = ok(Bytes::new());
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = r.headers_mut();
            h.insert(
                "connection",
                hyper::header::HeaderValue::from_static("upgrade"),
            );
            h.insert(
                "upgrade",
                hyper::header::HeaderValue::from_static("websocket"),
            );
            r
        }
        _ => {
            let mut r = ok("not found".into());
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    })
}

/// Reads an answer's head (up to the blank line) from a raw connection, within [`EXCHANGE`].
pub async fn read_head(tcp: &mut TcpStream) -> Result<String> {
    let mut head = Vec::new();
    tokio::time::timeout(EXCHANGE, async {
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if tcp.read(&mut byte).await? == 0 {
                bail!("closed after {:?}", String::from_utf8_lossy(&head));
            }
            head.push(byte[0]);
            ensure!(head.len() < 16 * 1024, "head too long");
        }
        Ok(())
    })
    .await
    .context("timed out reading a head")??;
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// A raw upstream that reads each request head and answers with `answer`, then closes the
/// connection: an upstream that dies mid-response.
pub async fn dying_server(answer: &'static [u8]) -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = l.accept().await {
            tokio::spawn(async move {
                if read_head(&mut tcp).await.is_ok() {
                    let _ = tcp.write_all(answer).await;
                }
                // Dropped: the connection closes mid-answer.
            });
        }
    });
    Ok(port)
}

/// An upstream that answers half its Content-Length and then neither sends nor closes.
pub async fn stalling_server(answer: &'static [u8]) -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = l.accept().await {
            tokio::spawn(async move {
                if read_head(&mut tcp).await.is_ok() {
                    let _ = tcp.write_all(answer).await;
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    Ok(port)
}
