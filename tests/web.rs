//! Web pages cannot drive the API (review findings M2 and M3), through the real binary:
//! the path forward's answers are sandboxed, the forward listener serves services on an origin
//! of its own, state-changing requests from foreign origins and requests with foreign `Host`
//! names get 403, and in headless Chromium a forwarded page's script changes nothing.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::{Daemon, wait_until};
use tokio::net::TcpListener;

/// The provider's web server (offered as services `web` and `web2`): `/page` is a page whose
/// script attacks the API at `api` and the other service through the forward listener `fwd`
/// (see [`attack_page`]); `/cookie` sets a cookie; `/secret` is what `web2` must keep from
/// `web`'s pages; `/own` is for the page's own reads.
async fn web_server(api: String, fwd: String) -> Result<u16> {
    use axum::routing::get;
    let page = attack_page(&api, &fwd);
    let app = axum::Router::new()
        .route(
            "/page",
            get(move || async move { ([(axum::http::header::CONTENT_TYPE, "text/html")], page) }),
        )
        .route("/secret", get(|| async { "TOP-SECRET" }))
        .route("/own", get(|| async { "own-ok" }))
        .route(
            "/cookie",
            get(|| async {
                (
                    [
                        (axum::http::header::CONTENT_TYPE, "text/html"),
                        (axum::http::header::SET_COOKIE, "session=provider; Path=/"),
                    ],
                    "<p>cookie page</p>",
                )
            }),
        );
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Ok(port)
}

/// A page whose script tries what the review's M3 describes against the consumer's API: add a
/// service exposing a local port (JSON POST), store a blob (`no-cors` text/plain POST) and read
/// `/api/v1/node`, both same-origin (relative URLs, when served on the API origin) and at the
/// API's URL; then it tries to read service `web2`'s secret through the forward listener (path
/// and per-service host) and reads `/own` from its own origin. It writes each outcome into
/// `#out` and ends with `done`.
fn attack_page(api: &str, fwd: &str) -> String {
    let fwd_port = fwd.rsplit(':').next().unwrap_or("0");
    format!(
        r#"<!doctype html><html><body><pre id="out">script did not run</pre><script>
const API = "{api}";
const OTHERS = ["{fwd}/web2/secret", "http://web2.localhost:{fwd_port}/secret"];
const lines = [];
function log(s) {{ lines.push(s); document.getElementById("out").textContent = lines.join("\n"); }}
async function attempt(name, f) {{
  try {{ log(name + ": " + await f()); }} catch (e) {{ log(name + ": failed " + e.name); }}
}}
(async () => {{
  log("ran at " + location.origin);
  const bases = location.pathname.startsWith("/api/") ? ["", API] : [API];
  for (const base of bases) {{
    await attempt("add service " + base, async () => {{
      const r = await fetch(base + "/api/v1/services", {{method: "POST",
        headers: {{"Content-Type": "application/json"}},
        body: JSON.stringify({{name: "pwned", address: "tcp://127.0.0.1:22"}})}});
      return "status " + r.status;
    }});
    await attempt("add blob " + base, async () => {{
      const r = await fetch(base + "/api/v1/blobs", {{method: "POST", mode: "no-cors",
        headers: {{"Content-Type": "text/plain"}}, body: "planted by a forwarded page"}});
      return "type " + r.type + " status " + r.status;
    }});
    await attempt("read node " + base, async () => {{
      const r = await fetch(base + "/api/v1/node");
      const t = await r.text();
      return "status " + r.status + (t.includes("peer_id") ? " READ-THE-API" : "");
    }});
  }}
  for (const url of OTHERS) {{
    await attempt("read " + url, async () => {{
      const t = await (await fetch(url)).text();
      return t.includes("TOP-SECRET") ? "READ-ANOTHER-SERVICE" : "no secret";
    }});
  }}
  await attempt("own origin", async () => await (await fetch("/own")).text());
  log("done");
}})();
</script></body></html>"#
    )
}

/// Provider A offering `web` (the page server), consumer C with a forward listener and the
/// given extra flags; returns them once C finds A's service.
async fn mesh(consumer_flags: &[&str]) -> Result<(Daemon, Daemon)> {
    let a = Daemon::start(&[]).await?;
    let boot = a.tcp_host_port().await?;
    let mut flags = vec!["--boot", &boot, "--http-forward", "127.0.0.1:0"];
    flags.extend_from_slice(consumer_flags);
    let c = Daemon::start(&flags).await?;
    let web = web_server(c.api.base_url().to_string(), forward_url(&c).await?).await?;
    let a_id = a.peer_id().await?;
    for name in ["web", "web2"] {
        a.api
            .add_service(name, &format!("http://127.0.0.1:{web}"))
            .await?;
        wait_until(30, "C finds A's web services", || async {
            Ok(c.api
                .providers(name)
                .await?
                .iter()
                .any(|p| p.peer_id.to_string() == a_id))
        })
        .await?;
    }
    Ok((a, c))
}

/// The forward listener's URL from `GET /api/v1/node`.
async fn forward_url(c: &Daemon) -> Result<String> {
    c.api
        .node()
        .await?
        .http_forward
        .context("no http_forward in GET /api/v1/node")
}

/// M3: the path forward's answers cannot run script on the API origin nor set cookies there;
/// the forward listener serves the same service unchanged on its own origin, and not the API.
#[tokio::test(flavor = "multi_thread")]
async fn forwards_are_sandboxed_or_on_their_own_origin() -> Result<()> {
    let (_a, c) = mesh(&[]).await?;
    let http = reqwest::Client::new();
    let base = c.api.base_url().to_string();

    let r = http
        .get(format!("{base}/api/v1/forward/web/cookie"))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    let h = r.headers().clone();
    let csp: Vec<&str> = h
        .get_all("content-security-policy")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        csp.iter()
            .any(|v| v.split(';').any(|d| d.trim() == "sandbox")),
        "no CSP sandbox on the path forward: {h:?}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.get("set-cookie").is_none(), "cookie on the API origin");
    assert_eq!(r.text().await?, "<p>cookie page</p>");
    // Errors of the path forward are defused too.
    let r = http
        .get(format!("{base}/api/v1/forward/Bad%20Name/x"))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.headers().get("content-security-policy").is_some());

    // The forward listener: advertised by GET /api/v1/node, its own port.
    let fwd = forward_url(&c).await?;
    assert_ne!(fwd, base);
    let r = http.get(format!("{fwd}/web/cookie")).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("content-security-policy").is_none());
    assert_eq!(r.headers()["set-cookie"], "session=provider; Path=/");
    assert_eq!(r.text().await?, "<p>cookie page</p>");
    // Not the API.
    for path in ["/", "/api/v1/node"] {
        let r = http.get(format!("{fwd}{path}")).send().await?;
        assert!(r.status().is_client_error(), "{path}: {}", r.status());
        assert!(!r.text().await?.contains("peer_id"));
    }
    // Each service has an origin of its own: http://{service}.localhost:PORT/, and a local
    // browser navigating to the shared /{service}/ form is sent there.
    let fwd_port = fwd.rsplit(':').next().context("port")?;
    let r = http
        .get(format!("{fwd}/own"))
        .header("host", format!("web.localhost:{fwd_port}"))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await?, "own-ok");
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let r = no_redirect
        .get(format!("{fwd}/web/cookie?x=1"))
        .header("sec-fetch-mode", "navigate")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 307);
    assert_eq!(
        r.headers()["location"],
        format!("http://web.localhost:{fwd_port}/cookie?x=1").as_str()
    );
    // One service's pages cannot post to another.
    let r = http
        .post(format!("{fwd}/cookie"))
        .header("host", format!("web2.localhost:{fwd_port}"))
        .header("origin", format!("http://web.localhost:{fwd_port}"))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403);
    // Host check on the forward listener too (DNS rebinding onto the services).
    let r = http
        .get(format!("{fwd}/web/cookie"))
        .header("host", "evil.example")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403);
    // Another site cannot post to the services through it.
    let r = http
        .post(format!("{fwd}/web/cookie"))
        .header("origin", "http://evil.example")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403);

    // `mcc node` shows it.
    let (ok, out, err) = common::cli(&["node", "--api", &base])?;
    ensure!(ok, "mcc node failed: {err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("http forward") && l.contains(&fwd)),
        "{out}"
    );
    Ok(())
}

/// M2: a "simple" cross-origin POST (text/plain, no preflight) cannot store a blob; the same
/// POST without `Origin` (curl, the CLI) or from an --enable-cors origin still works.
#[tokio::test(flavor = "multi_thread")]
async fn foreign_origins_cannot_change_the_node() -> Result<()> {
    let c = Daemon::start(&[
        "--enable-cors",
        "http://app.example",
        "--http-forward",
        "127.0.0.1:0",
    ])
    .await?;
    let base = c.api.base_url().to_string();
    let fwd = forward_url(&c).await?;
    let http = reqwest::Client::new();
    let post = |headers: Vec<(&'static str, String)>, body: &'static str| {
        let mut r = http
            .post(format!("{base}/api/v1/blobs"))
            .header("content-type", "text/plain")
            .body(body);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send()
    };

    for (k, v) in [
        ("origin", "http://evil.example".to_string()),
        ("origin", "null".to_string()),
        ("origin", fwd.clone()),
        ("sec-fetch-site", "cross-site".to_string()),
        ("sec-fetch-site", "same-site".to_string()),
    ] {
        let r = post(vec![(k, v.clone())], "planted by a web page").await?;
        assert_eq!(r.status().as_u16(), 403, "{k}: {v}");
        let e: serde_json::Value = r.json().await?;
        assert!(e["error"].is_string(), "{e}");
    }
    // JSON endpoints and DELETE too.
    let r = http
        .post(format!("{base}/api/v1/services"))
        .header("origin", "http://evil.example")
        .json(&serde_json::json!({"name": "pwned", "address": "tcp://127.0.0.1:22"}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403);
    assert!(c.api.services().await?.is_empty());
    assert!(
        c.api.blobs().await?.is_empty(),
        "a foreign origin stored a blob"
    );

    // Without Origin, from the API's own origin (Swagger UI) and from the allowed origin:
    // stored.
    let r = post(vec![], "from curl").await?;
    assert_eq!(r.status().as_u16(), 201);
    let r = post(
        vec![
            ("origin", base.clone()),
            ("sec-fetch-site", "same-origin".to_string()),
        ],
        "from Swagger UI",
    )
    .await?;
    assert_eq!(r.status().as_u16(), 201);
    let r = post(
        vec![
            ("origin", "http://app.example".to_string()),
            ("sec-fetch-site", "cross-site".to_string()),
        ],
        "from the allowed app",
    )
    .await?;
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://app.example"
    );
    assert_eq!(c.api.blobs().await?.len(), 3);
    // Reads from a foreign origin stay possible for the browser's CORS to block (no CORS
    // header), but a cross-site `<img>`-style read of the API is refused outright.
    let r = http
        .get(format!("{base}/api/v1/node"))
        .header("origin", "http://evil.example")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = http
        .get(format!("{base}/api/v1/blobs"))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "no-cors")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403);
    // Swagger UI's own requests are same-origin.
    let r = http
        .get(format!("{base}/api/v1/openapi.json"))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    let spec: serde_json::Value = r.json().await?;
    assert!(spec["paths"]["/api/v1/blobs"]["post"]["responses"]["403"].is_object());
    Ok(())
}

/// M2, DNS rebinding: a request naming another host gets 403 (reads included), except
/// `/healthz` and names given with --api-hosts.
#[tokio::test(flavor = "multi_thread")]
async fn foreign_host_names_are_refused() -> Result<()> {
    let c = Daemon::start(&["--api-hosts", "mcc.test,box.test"]).await?;
    let base = c.api.base_url().to_string();
    let port = base.rsplit(':').next().context("port")?;
    let http = reqwest::Client::new();
    let get = |path: &str, host: String| {
        http.get(format!("{base}{path}"))
            .header("host", host)
            .send()
    };
    let r = get("/api/v1/node", format!("evil.example:{port}")).await?;
    assert_eq!(r.status().as_u16(), 403);
    let e: serde_json::Value = r.json().await?;
    assert!(
        e["error"].as_str().unwrap_or("").contains("--api-hosts"),
        "{e}"
    );
    assert_eq!(
        get("/docs/", format!("evil.example:{port}"))
            .await?
            .status()
            .as_u16(),
        403
    );
    let r = http
        .post(format!("{base}/api/v1/blobs"))
        .header("host", format!("evil.example:{port}"))
        .body("rebound")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403);
    assert!(c.api.blobs().await?.is_empty());
    assert_eq!(
        get("/healthz", "evil.example".into())
            .await?
            .status()
            .as_u16(),
        200
    );
    for host in [
        format!("mcc.test:{port}"),
        "BOX.test".to_string(),
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
    ] {
        let r = get("/api/v1/node", host.clone()).await?;
        assert_eq!(r.status().as_u16(), 200, "{host}");
    }
    Ok(())
}

/// The Chromium binary, or `None` (the test then skips unless MCC_REQUIRE_CHROMIUM=1).
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// Loads `url` in headless Chromium and returns the DOM after its scripts ran. The browser
/// runs in its own process group, which is killed at the end whatever happens.
fn dump_dom(browser: &str, url: &str, profile: &Path) -> Result<String> {
    use std::os::unix::process::CommandExt;
    let out_path = profile.join("dom.html");
    let out = std::fs::File::create(&out_path)?;
    let err = std::fs::File::create(profile.join("chromium.log"))?;
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-proxy-server",
            "--virtual-time-budget=10000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.join("profile").display()
        ))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .context("starting chromium")?;
    let pgid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // The browser's helpers share its process group: end them all.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
    match status {
        Some(s) if s.success() => Ok(std::fs::read_to_string(out_path)?),
        Some(s) => bail!(
            "chromium exited with {s}: {}",
            std::fs::read_to_string(profile.join("chromium.log")).unwrap_or_default()
        ),
        None => bail!("chromium did not finish within 60 s"),
    }
}

/// The text of the page's `#out` element in a dumped DOM (the script's source is in the DOM
/// too, so assertions look at this only).
fn out_text(dom: &str) -> Result<&str> {
    let start = dom
        .find("<pre id=\"out\">")
        .context("no #out in the page")?;
    let rest = &dom[start + "<pre id=\"out\">".len()..];
    Ok(&rest[..rest.find("</pre>").context("unterminated #out")?])
}

/// M3 in a real browser: a provider's page whose script attacks the consumer's API (add a
/// service exposing port 22, store a blob, read the node) changes nothing and reads nothing,
/// whether opened through the path forward (sandboxed: no script runs) or the forward listener
/// (script runs on the service's own origin; the API refuses it). Nor can it read another
/// service through the forward listener. The consumer even allows every CORS origin
/// (`--enable-cors '*'`): forwarded origins stay excluded.
#[tokio::test(flavor = "multi_thread")]
async fn chromium_forwarded_page_cannot_use_the_api() -> Result<()> {
    let Some(browser) = chromium() else {
        if std::env::var("MCC_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            bail!("chromium is not installed but MCC_REQUIRE_CHROMIUM=1");
        }
        eprintln!("skipping: chromium is not installed (apt-get install chromium)");
        return Ok(());
    };
    let (_a, c) = mesh(&["--enable-cors", "*"]).await?;
    let base = c.api.base_url().to_string();
    let fwd = forward_url(&c).await?;
    let services_before = c.api.services().await?.len();
    let tmp = tempfile::tempdir()?;

    let path_dir = tmp.path().join("path");
    std::fs::create_dir_all(&path_dir)?;
    let url = format!("{base}/api/v1/forward/web/page");
    let dom = tokio::task::spawn_blocking({
        let path_dir = path_dir.clone();
        move || dump_dom(browser, &url, &path_dir)
    })
    .await??;
    let out = out_text(&dom)?;
    assert_eq!(out, "script did not run", "a script ran on the API origin");

    let fwd_dir = tmp.path().join("fwd");
    std::fs::create_dir_all(&fwd_dir)?;
    let url = format!("{fwd}/web/page");
    let dom = tokio::task::spawn_blocking({
        let fwd_dir = fwd_dir.clone();
        move || dump_dom(browser, &url, &fwd_dir)
    })
    .await??;
    // The browser was sent to the service's own origin; the script ran to the end there, and
    // every attempt on the API and on the other service failed, while its own origin works.
    let out = out_text(&dom)?;
    eprintln!("forward listener page:\n{out}");
    let fwd_port = fwd.rsplit(':').next().context("port")?;
    let origin = format!("http://web.localhost:{fwd_port}");
    assert!(out.starts_with(&format!("ran at {origin}\n")), "{out}");
    assert!(out.ends_with("\nown origin: own-ok\ndone"), "{out}");
    assert!(
        !out.contains("READ-THE-API"),
        "the page read the API: {out}"
    );
    assert!(!out.contains("status 2"), "{out}");
    assert!(
        !out.contains("READ-ANOTHER-SERVICE"),
        "the page read another service: {out}"
    );

    // Swagger UI still works in the browser (same-origin requests pass the checks): its script
    // fetched the OpenAPI document and rendered the operations.
    let docs_dir = tmp.path().join("docs");
    std::fs::create_dir_all(&docs_dir)?;
    let url = format!("{base}/docs/");
    let dom = tokio::task::spawn_blocking(move || dump_dom(browser, &url, &docs_dir)).await??;
    assert!(
        dom.contains("/api/v1/services") && dom.contains("opblock"),
        "Swagger UI did not render the API: {}",
        &dom[..dom.len().min(2000)]
    );

    assert_eq!(
        c.api.services().await?.len(),
        services_before,
        "a forwarded page added a service"
    );
    assert!(
        c.api.blobs().await?.is_empty(),
        "a forwarded page stored a blob"
    );
    Ok(())
}

/// `--api-token auto`: a token in the data folder (0600) that every API request must carry
/// (401 JSON otherwise), with `/healthz`, the OpenAPI document and Swagger UI open; the CLI
/// finds the token in the data folder or takes `--api-token FILE`. An API bound beyond
/// loopback without a token refuses to start.
#[tokio::test(flavor = "multi_thread")]
async fn api_token_is_required_when_set() -> Result<()> {
    let node = Daemon::start(&["--rendezvous", "off", "--api-token", "auto"]).await?;
    let token_file = node.dir.join("api-token");
    let token = std::fs::read_to_string(&token_file)?;
    ensure!(
        token.len() == 64 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "{token:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    ensure!(std::fs::metadata(&token_file)?.permissions().mode() & 0o777 == 0o600);

    let url = node.api.base_url().to_string();
    let http = reqwest::Client::new();
    let r = http.get(format!("{url}/api/v1/node")).send().await?;
    ensure!(r.status() == 401, "{}", r.status());
    ensure!(
        r.headers()
            .get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("Bearer")),
        "no WWW-Authenticate"
    );
    let body: serde_json::Value = r.json().await?;
    ensure!(
        body["error"].as_str().unwrap_or("").contains("API token"),
        "{body}"
    );
    let wrong = http
        .post(format!("{url}/api/v1/blobs"))
        .bearer_auth("0".repeat(64))
        .body("x")
        .send()
        .await?;
    ensure!(wrong.status() == 401, "{}", wrong.status());
    for open in ["/healthz", "/api/v1/openapi.json", "/docs/"] {
        let r = http.get(format!("{url}{open}")).send().await?;
        ensure!(r.status().is_success(), "{open}: {}", r.status());
    }
    let authed = mcc::client::Client::new(url.clone()).with_token(&token);
    let info = authed.node().await?;
    ensure!(!info.peer_id.to_string().is_empty());

    // The CLI reads the data folder's token by itself...
    let dir = node.dir.to_string_lossy().into_owned();
    let (ok, out, err) = common::cli(&["node", "--json", "--data-folder", &dir])?;
    ensure!(ok, "{err}");
    ensure!(out.contains("peer_id"), "{out}");
    // ...takes --api-token FILE...
    let elsewhere = tempfile::tempdir()?;
    let copy = elsewhere.path().join("token");
    std::fs::write(&copy, &token)?;
    let copy_s = copy.to_string_lossy().into_owned();
    let empty = elsewhere.path().to_string_lossy().into_owned();
    let (ok, _, err) = common::cli(&[
        "node",
        "--api",
        &url,
        "--data-folder",
        &empty,
        "--api-token",
        &copy_s,
    ])?;
    ensure!(ok, "{err}");
    // ...and without it gets a clear error and a non-zero exit.
    let (ok, _, err) = common::cli(&["node", "--api", &url, "--data-folder", &empty])?;
    ensure!(!ok && err.contains("API token"), "{err}");

    // No token, API beyond loopback: refused before anything starts (nothing is bound).
    let dir = tempfile::tempdir()?;
    let out = Command::new(common::BIN)
        .args(["--data-folder", &dir.path().to_string_lossy()])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--http",
            "0.0.0.0:0",
            "--rendezvous",
            "off",
        ])
        .env_remove("MCC_API_TOKEN")
        .stdin(Stdio::null())
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "started without a token:\n{err}");
    ensure!(
        err.contains("without a token") && err.contains("--api-token auto"),
        "{err}"
    );
    Ok(())
}
