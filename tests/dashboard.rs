//! The dashboard at `/` of the API, clicked through in headless Chromium against two real
//! nodes: A (no token) and B (`--api-token auto`, its page opened with `#token=...`). The
//! page sees the peer, adds a service, uploads a file on A that B's page fetches by CID
//! (size and SHA-256 checked), and follows a route on B that A's page publishes to.
//! Screenshots go to `<target dir>/dashboard-screenshots/`.

#[path = "dashboard/cdp.rs"]
mod cdp;
mod common;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use cdp::Browser;
use common::{Daemon, wait_until};
use sha2::Digest;

/// `<target dir>/dashboard-screenshots`, found from this test binary's path
/// (`<target dir>/debug/deps/dashboard-...`).
fn screenshot_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let target = exe
        .ancestors()
        .nth(3)
        .context("test binary outside a target dir")?;
    let dir = target.join("dashboard-screenshots");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A JS string literal of `s`.
fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_drives_two_nodes_in_chromium() -> Result<()> {
    let Some(chromium) = cdp::chromium() else {
        if std::env::var("MCC_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            bail!("chromium is not installed but MCC_REQUIRE_CHROMIUM=1");
        }
        eprintln!("skipping: chromium is not installed (apt-get install chromium)");
        return Ok(());
    };
    let a = Daemon::start(&["--label", "alpha"]).await?;
    let boot = a.tcp_host_port().await?;
    let b = Daemon::start(&["--label", "beta", "--boot", &boot, "--api-token", "auto"]).await?;
    // C: dialled from A's page, then killed, so that A's mesh shows a known, unconnected peer.
    let c = Daemon::start(&["--label", "gamma", "--rendezvous", "off"]).await?;
    let token = std::fs::read_to_string(b.dir.join("api-token"))?
        .trim()
        .to_string();
    let b_api = b.api.clone().with_token(&token);
    let b_id = b_api.node().await?.peer_id.to_string();
    wait_until(20, "A and B connect", || async {
        Ok(a.peers()
            .await?
            .iter()
            .any(|p| p.peer_id.to_string() == b_id))
    })
    .await?;
    let mut nodes = Nodes {
        a_id: a.peer_id().await?,
        b_id,
        c_id: c.peer_id().await?,
        c_addr: c.tcp_host_port().await?,
        token,
        a,
        b,
        c,
    };

    let tmp = tempfile::tempdir()?;
    let shots = screenshot_dir()?;
    let mut browser = Browser::launch(chromium, tmp.path())?;
    let result = click_through(&mut browser, &mut nodes, &shots, tmp.path());
    let (a, b) = (&nodes.a, &nodes.b);
    if result.is_err() {
        eprintln!("page console:\n{}", browser.console.join("\n"));
        eprintln!("node A log:\n{}\nnode B log:\n{}", a.log(), b.log());
    }
    result?;
    // What the pages did is what the nodes say.
    let services = a.api.services().await?;
    ensure!(services.iter().any(|s| s.name == "web"), "{services:?}");
    Ok(())
}

/// The page and its files are served without the token (they hold no data) with a strict
/// CSP, content types and revalidation; the data they show still needs the token.
#[tokio::test(flavor = "multi_thread")]
async fn dashboard_files_are_open_and_locked_down() -> Result<()> {
    let node = Daemon::start(&["--rendezvous", "off", "--api-token", "auto"]).await?;
    let base = node.api.base_url().to_string();
    let http = reqwest::Client::new();
    for (path, kind) in [
        ("/", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/util.js", "text/javascript"),
        ("/dashboard/style.css", "text/css"),
        ("/dashboard/icon.svg", "image/svg+xml"),
    ] {
        let r = http.get(format!("{base}{path}")).send().await?;
        ensure!(r.status() == 200, "{path}: {}", r.status());
        let h = r.headers().clone();
        let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
        ensure!(header("content-type").starts_with(kind), "{path}: {h:?}");
        let csp = header("content-security-policy");
        ensure!(
            csp.contains("default-src 'none'")
                && csp.contains("script-src 'self';")
                && csp.contains("connect-src 'self'")
                && csp.contains("frame-ancestors 'none'")
                && !csp.contains("unsafe"),
            "{path}: {csp}"
        );
        ensure!(header("x-content-type-options") == "nosniff", "{path}");
        ensure!(header("x-frame-options") == "DENY", "{path}");
        ensure!(header("cache-control") == "no-cache", "{path}");
        let etag = header("etag").to_string();
        ensure!(etag.starts_with('"'), "{path}: no ETag");
        let again = http
            .get(format!("{base}{path}"))
            .header("if-none-match", &etag)
            .send()
            .await?;
        ensure!(again.status() == 304, "{path}: {}", again.status());
    }
    let page = http.get(format!("{base}/")).send().await?.text().await?;
    ensure!(page.contains("/dashboard/app.js") && !page.contains("<script>"));
    let r = http.get(format!("{base}/api/v1/node")).send().await?;
    ensure!(
        r.status() == 401,
        "the data needs the token: {}",
        r.status()
    );
    let r = http.get(format!("{base}/dashboard/nope.js")).send().await?;
    ensure!(r.status() == 404, "{}", r.status());
    Ok(())
}

/// The test's nodes: A (open), B (with a token), C (dialled from A's page, then killed).
struct Nodes {
    a: Daemon,
    b: Daemon,
    c: Daemon,
    token: String,
    a_id: String,
    b_id: String,
    c_id: String,
    c_addr: String,
}

fn click_through(
    br: &mut Browser,
    nodes: &mut Nodes,
    shots: &std::path::Path,
    tmp: &std::path::Path,
) -> Result<()> {
    let (a, b, token) = (&nodes.a, &nodes.b, nodes.token.as_str());
    let (a_id, b_id) = (nodes.a_id.as_str(), nodes.b_id.as_str());
    let a_url = format!("{}/", a.api.base_url());
    let b_url = format!("{}/", b.api.base_url());
    let mut saved = Vec::new();
    let mut shot = |br: &mut Browser, page: &str, name: &str| -> Result<()> {
        let path = shots.join(name);
        br.screenshot(page, &path)?;
        println!("screenshot: {}", path.display());
        saved.push(path);
        Ok(())
    };

    // B without its token: the page loads (it holds no data) and shows the API's 401 message.
    let pb = br.new_page(1280, 900)?;
    br.goto(&pb, &b_url)?;
    br.wait_for(
        &pb,
        10,
        "the token error",
        "document.getElementById('banner').textContent.includes('API token') \
         && !document.getElementById('token-box').hidden",
    )?;
    shot(br, &pb, "b-without-token.png")?;
    // Pasting the token makes the page work; forgetting it stops it again.
    br.type_into(&pb, "#token-input", token)?;
    br.click(&pb, "#token-form button[type=submit]")?;
    br.wait_for(
        &pb,
        10,
        "B's page working with the pasted token",
        "document.querySelector('#live.ok') && document.getElementById('token-box').hidden \
         && document.getElementById('node-peer-id')",
    )?;
    br.click(&pb, "#token-toggle")?;
    br.click(&pb, "#token-forget")?;
    br.wait_for(
        &pb,
        10,
        "B's page refused again",
        "document.querySelector('#live.off')",
    )?;

    // A: this node, and B among its peers (a direct connection) and in the mesh graph.
    let pa = br.new_page(1280, 900)?;
    br.goto(&pa, &a_url)?;
    let peer_row = format!("#peers-body tr[data-peer={}]", js(b_id));
    br.wait_for(
        &pa,
        15,
        "B in A's peers",
        &format!("document.querySelector({})", js(&peer_row)),
    )?;
    let row = br.eval(
        &pa,
        &format!("document.querySelector({}).textContent", js(&peer_row)),
    )?;
    let row = row.as_str().unwrap_or("");
    ensure!(
        row.contains("beta") && row.contains("direct"),
        "peer row: {row}"
    );
    let node_id = br.eval(&pa, "document.getElementById('node-peer-id').textContent")?;
    ensure!(node_id == a_id, "node card shows {node_id}");
    br.wait_for(
        &pa,
        5,
        "B in the mesh graph",
        &format!(
            "[...document.querySelectorAll('#mesh g.peer title')].some(t => t.textContent === {})",
            js(b_id)
        ),
    )?;

    // A dials C from its page; once C is gone, C stays in the mesh as a known peer.
    br.type_into(&pa, "#dial-addr", &nodes.c_addr)?;
    br.click(&pa, "#dial-form button")?;
    br.wait_for(
        &pa,
        15,
        "A connected to C",
        &format!(
            "document.getElementById('dial-out').textContent.includes({})",
            js(&nodes.c_id)
        ),
    )?;
    nodes.c.kill();
    br.wait_for(
        &pa,
        15,
        "C known but not connected in A's mesh",
        &format!(
            "[...document.querySelectorAll('#mesh g.peer')].some(g => g.querySelector('circle.known') \
             && g.querySelector('title').textContent.startsWith({}))",
            js(&nodes.c_id)
        ),
    )?;

    // A adds a service.
    br.type_into(&pa, "#svc-name", "web")?;
    br.type_into(&pa, "#svc-addr", "http://127.0.0.1:8000")?;
    br.click(&pa, "#svc-add")?;
    br.wait_for(
        &pa,
        10,
        "the service listed",
        "document.querySelector('#svc-list li[data-service=\"web\"]')",
    )?;

    // A uploads a file (3 MiB, several blocks) with a progress bar.
    let file = tmp.join("upload.bin");
    let content: Vec<u8> = (0u32..3 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &content)?;
    br.choose_file(&pa, "#blob-file", &file)?;
    br.click(&pa, "#blob-upload")?;
    br.wait_for(
        &pa,
        20,
        "the upload's CID",
        "document.getElementById('uploaded-cid')",
    )?;
    let cid = br.eval(&pa, "document.getElementById('uploaded-cid').textContent")?;
    let cid = cid.as_str().context("no CID")?.to_string();
    ensure!(
        br.eval(&pa, "document.getElementById('upload-progress').value")?
            .as_f64()
            == Some(1.0),
        "upload progress not full"
    );
    br.wait_for(
        &pa,
        10,
        "the blob listed",
        &format!(
            "document.querySelector('#blob-list tr[data-cid={}]')",
            js(&cid)
        ),
    )?;
    // A has no token: its download link is a plain same-origin link to the blob.
    let linked = br.eval(
        &pa,
        &format!(
            "(async () => {{ const a = document.querySelector('#blob-list tr[data-cid={}] a[download]');
               return (await (await fetch(a.href)).arrayBuffer()).byteLength; }})()",
            js(&cid)
        ),
    )?;
    ensure!(
        linked.as_u64() == Some(content.len() as u64),
        "download link gave {linked}"
    );
    shot(br, &pa, "a-desktop.png")?;

    // B, with its token in the fragment: A among its peers, A's service found, the blob
    // fetched by CID.
    br.goto(&pb, &format!("{b_url}#token={}", token.trim()))?;
    br.wait_for(&pb, 5, "the token out of the URL", "location.hash === ''")?;
    br.wait_for(
        &pb,
        15,
        "A in B's peers",
        &format!(
            "document.querySelector('#peers-body tr[data-peer={}]')",
            js(a_id)
        ),
    )?;
    br.type_into(&pb, "#prov-name", "web")?;
    br.click(&pb, "#prov-find")?;
    br.wait_for(
        &pb,
        20,
        "A as provider of web",
        &format!(
            "document.querySelector('#prov-list li[data-peer={}]')",
            js(a_id)
        ),
    )?;
    br.type_into(&pb, "#fetch-cid", &cid)?;
    br.click(&pb, "#fetch-go")?;
    br.wait_for(
        &pb,
        30,
        "the fetched blob",
        &format!("document.querySelector('#fetched[data-cid={}]')", js(&cid)),
    )?;
    let size = br.eval(&pb, "document.getElementById('fetched').dataset.size")?;
    let digest = br.eval(&pb, "document.getElementById('fetched').dataset.sha256")?;
    let want: String = sha2::Sha256::digest(&content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    ensure!(
        size.as_str().and_then(|s| s.parse::<usize>().ok()) == Some(content.len()),
        "B's page shows {size} bytes"
    );
    ensure!(digest == want.as_str(), "B's page shows sha-256 {digest}");

    // B follows a route; A's page publishes on it until B's interest reached A.
    br.type_into(&pb, "#sub-route", "dash/chat")?;
    br.click(&pb, "#sub-go")?;
    br.wait_for(
        &pb,
        10,
        "the subscription live",
        "document.querySelector('.sub[data-route=\"dash/chat\"] .badge.ok')",
    )?;
    br.call(Some(&pa), "Page.bringToFront", serde_json::json!({}))?;
    br.type_into(&pa, "#pub-route", "dash/chat")?;
    br.type_into(&pa, "#pub-msg", "hello from A")?;
    let mut delivered = false;
    for _ in 0..40 {
        br.eval(&pa, "document.getElementById('pub-out').textContent = ''")?;
        br.click(&pa, "#pub-go")?;
        br.wait_for(
            &pa,
            10,
            "the publish answer",
            "document.getElementById('pub-out').textContent",
        )?;
        let out = br.eval(&pa, "document.getElementById('pub-out').textContent")?;
        if out.as_str().unwrap_or("").contains("to 1 peer") {
            delivered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    ensure!(delivered, "A never saw B's interest in dash/chat");
    br.call(Some(&pb), "Page.bringToFront", serde_json::json!({}))?;
    br.wait_for(
        &pb,
        10,
        "the message on B's page",
        "[...document.querySelectorAll('.sub[data-route=\"dash/chat\"] li.msg')]\
         .some(li => li.textContent.includes('hello from A'))",
    )?;
    shot(br, &pb, "b-desktop.png")?;

    // The same page at phone width: one column, nothing wider than the screen.
    br.resize(&pb, 390, 844)?;
    br.wait_for(
        &pb,
        5,
        "the phone layout",
        "document.documentElement.scrollWidth <= 390",
    )?;
    shot(br, &pb, "b-phone.png")?;
    ensure!(saved.len() == 4);
    let thrown: Vec<&String> = br
        .console
        .iter()
        .filter(|l| l.starts_with("exception"))
        .collect();
    ensure!(thrown.is_empty(), "the pages threw: {thrown:?}");
    Ok(())
}
