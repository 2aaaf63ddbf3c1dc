//! The HTTP forward behind nginx with nginx's default proxy settings (HTTP/1.0 upstream,
//! `Connection: close`). Skipped when nginx is not installed (`.ci/run` installs it).

mod common;

use std::process::Command;

use anyhow::{Context, Result};
use common::{Daemon, wait_until};
use tokio::net::TcpListener;

async fn http_server() -> Result<u16> {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route("/hello", get(|| async { "hello through nginx" }))
        .route("/echo", post(|body: axum::body::Bytes| async move { body }));
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Ok(port)
}

struct Nginx {
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let conf = self.dir.path().join("nginx.conf");
        let _ = Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .args(["-s", "stop"])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http_forward_works_behind_nginx_defaults() -> Result<()> {
    if Command::new("nginx").arg("-v").output().is_err() {
        eprintln!("skipping: nginx is not installed");
        return Ok(());
    }
    let web = http_server().await?;
    let a = Daemon::start(&[]).await?;
    let c = Daemon::start(&["--boot", &a.tcp_host_port().await?]).await?;
    a.api
        .add_service("web", &format!("http://127.0.0.1:{web}"))
        .await?;
    let a_id = a.peer_id().await?;
    wait_until(30, "provider found", || async {
        Ok(c.api
            .providers("web")
            .await?
            .iter()
            .any(|p| p.peer_id.to_string() == a_id))
    })
    .await?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let upstream = c.api.base_url().trim_start_matches("http://").to_string();
    let dir = tempfile::tempdir()?;
    let d = dir.path().display();
    let conf = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\n\
         http {{\n access_log {d}/access.log;\n client_body_temp_path {d}/body;\n \
         proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fcgi;\n uwsgi_temp_path {d}/uwsgi;\n \
         scgi_temp_path {d}/scgi;\n server {{\n  listen 127.0.0.1:{port};\n  \
         location / {{ proxy_pass http://{upstream}; }}\n }}\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf)?;
    let status = Command::new("nginx")
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .status()
        .context("starting nginx")?;
    anyhow::ensure!(status.success(), "nginx did not start");
    let _nginx = Nginx { dir };

    let base = format!("http://127.0.0.1:{port}/api/v1/forward/web");
    let http = reqwest::Client::new();
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(r) = http.get(format!("{base}/hello")).send().await {
            assert_eq!(r.status().as_u16(), 200);
            assert_eq!(r.text().await?, "hello through nginx");
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::ensure!(ok, "nginx never answered");
    // Several requests on one keep-alive client connection to nginx.
    for i in 0..5 {
        let body = format!("payload {i} ").repeat(10_000);
        let r = http
            .post(format!("{base}/echo"))
            .body(body.clone())
            .send()
            .await?;
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.text().await?, body);
    }
    Ok(())
}
