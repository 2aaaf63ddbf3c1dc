//! Certificates and admission through the real binary: a CA, nodes with signed certificates
//! in a closed network (`--trust-ca`), and nodes that must stay out.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::{Daemon, base_args, cli, wait_until};
use serde_json::Value;

/// `mcc ca init` in `root/ca`.
fn ca_init(root: &Path, name: &str) -> Result<PathBuf> {
    let dir = root.join(name);
    let (ok, out, err) = cli(&["ca", "init", "--dir", s(&dir), "--json"])?;
    ensure!(ok, "ca init failed: {err}");
    let v: Value = serde_json::from_str(&out)?;
    ensure!(v["cert"].is_string() && v["key"].is_string(), "{out}");
    Ok(dir)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// A node folder with a key and a certificate signed by `ca` (`--newcert`, then `ca sign`).
fn signed_node(
    root: &Path,
    label: &str,
    ca: &Path,
    permissions: &str,
    days: &str,
) -> Result<PathBuf> {
    let dir = root.join(label);
    let (ok, out, err) = cli(&[
        "--data-folder",
        s(&dir),
        "--newcert",
        "--label",
        label,
        "--json",
    ])?;
    ensure!(ok, "newcert failed: {err}");
    let v: Value = serde_json::from_str(&out)?;
    let request = v["request"]
        .as_str()
        .context("no request path")?
        .to_string();
    let (ok, out, err) = cli(&[
        "ca",
        "sign",
        &request,
        "--ca-dir",
        s(ca),
        "--permissions",
        permissions,
        "--days",
        days,
        "--json",
    ])?;
    ensure!(ok, "ca sign failed: {err}");
    let v: Value = serde_json::from_str(&out)?;
    ensure!(
        Path::new(v["cert"].as_str().unwrap_or_default()) == dir.join("node.crt"),
        "{out}"
    );
    Ok(dir)
}

/// Flags of a node in `dir` using its certificate and trusting `ca`.
fn closed_args(dir: &Path, ca: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = base_args();
    for a in [
        "--cert",
        s(&dir.join("node.crt")),
        "--privkey",
        s(&dir.join("node.key")),
        "--trust-ca",
        s(&ca.join("ca.crt")),
    ] {
        args.push(a.to_string());
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

async fn start_closed(dir: &Path, ca: &Path, extra: &[&str]) -> Result<Daemon> {
    Daemon::spawn_in(dir, closed_args(dir, ca, extra)).await
}

async fn admitted(d: &Daemon, peer: &str) -> Result<bool> {
    Ok(d.peers()
        .await?
        .iter()
        .any(|p| p.peer_id.to_string() == peer && p.admitted && p.in_routing_table))
}

async fn connected(d: &Daemon, peer: &str) -> Result<bool> {
    Ok(d.peers()
        .await?
        .iter()
        .any(|p| p.peer_id.to_string() == peer))
}

/// An HTTP service answering `ok` to any request.
async fn http_service() -> Result<u16> {
    let app = axum::Router::new().fallback(|| async { "ok from the service" });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Ok(port)
}

async fn forward_get(d: &Daemon, service: &str) -> Result<(u16, String)> {
    let url = format!("{}/api/v1/forward/{service}/", d.api.base_url());
    let resp = reqwest::get(&url).await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

/// Two nodes with certificates from the CA join, exchange records and echo, and forward; a
/// node with a self-signed certificate and one from another CA get nothing from them.
#[tokio::test(flavor = "multi_thread")]
async fn closed_network_admits_only_its_ca() -> Result<()> {
    let root = tempfile::tempdir()?;
    let ca = ca_init(root.path(), "ca")?;
    let a_dir = signed_node(root.path(), "alpha", &ca, "all", "30")?;
    let b_dir = signed_node(root.path(), "beta", &ca, "all", "30")?;

    let a = start_closed(&a_dir, &ca, &["--enable-monitoring"]).await?;
    let boot = a.tcp_host_port().await?;
    let b = start_closed(&b_dir, &ca, &["--boot", &boot]).await?;
    let (a_id, b_id) = (a.peer_id().await?, b.peer_id().await?);

    wait_until(20, "A and B admit each other", || async {
        Ok(admitted(&a, &b_id).await? && admitted(&b, &a_id).await?)
    })
    .await?;
    let info = a.api.node().await?;
    assert_eq!(info.label, "alpha");
    assert_eq!(info.certificate.label, "alpha");
    assert!(!info.certificate.self_signed);
    assert_eq!(info.admission.mode, "closed");
    assert!(info.certificate.expires_in_secs > 29 * 86_400);
    let peer_b = a
        .peers()
        .await?
        .into_iter()
        .find(|p| p.peer_id.to_string() == b_id);
    let cert_b = peer_b
        .and_then(|p| p.certificate)
        .context("B's certificate")?;
    assert_eq!(cert_b.label, "beta");
    assert_eq!(cert_b.permissions, vec!["all".to_string()]);

    // Records and echo between the two.
    b.api
        .put_record("/mcc/closed", b"members only".to_vec(), None)
        .await?;
    assert_eq!(a.api.get_record("/mcc/closed").await?, b"members only");
    let echo = a.api.echo("hi", None).await?;
    let ok: Vec<String> = echo
        .replies
        .iter()
        .filter(|r| r.error.is_none())
        .map(|r| r.peer_id.clone())
        .collect();
    assert!(ok.contains(&b_id) && ok.contains(&a_id), "{echo:?}");

    // A offers a service; B reaches it through the tunnel.
    let port = http_service().await?;
    a.api
        .add_service("web", &format!("http://127.0.0.1:{port}"))
        .await?;
    let (status, body) = forward_get(&b, "web").await?;
    assert_eq!((status, body.as_str()), (200, "ok from the service"));

    // C: self-signed certificate (open mode), boots through A.
    let c = Daemon::start(&["--boot", &boot]).await?;
    let c_id = c.peer_id().await?;
    // D: certificate from another CA, trusting that CA.
    let other_ca = ca_init(root.path(), "other-ca")?;
    let d_dir = signed_node(root.path(), "delta", &other_ca, "all", "30")?;
    let d = start_closed(&d_dir, &other_ca, &["--boot", &boot]).await?;
    let d_id = d.peer_id().await?;

    wait_until(20, "A refuses C and D", || async {
        let log = a.log();
        Ok(log.contains(&c_id) && log.contains(&d_id) && log.contains("self-signed"))
    })
    .await?;
    wait_until(20, "C and D learn why", || async {
        Ok(c.log()
            .contains("self-signed, not issued by the trusted CA")
            && d.log().contains("issued by a different CA"))
    })
    .await
    .with_context(|| {
        format!(
            "C's log:\n{}\nD's log:\n{}\nA's log:\n{}",
            c.log(),
            d.log(),
            a.log()
        )
    })?;
    // Give them time to try again (boot retries every 5 s): they stay out.
    tokio::time::sleep(Duration::from_secs(6)).await;
    for (n, name) in [(&a, "A"), (&b, "B")] {
        for (id, who) in [(&c_id, "C"), (&d_id, "D")] {
            ensure!(!connected(n, id).await?, "{who} is connected to {name}");
        }
        ensure!(
            n.api.node().await?.routing_table_size == 1,
            "{name}'s routing table holds more than its one member peer"
        );
        let banned = n.api.node().await?.admission.banned;
        if name == "A" {
            ensure!(
                banned.contains(&c_id) && banned.contains(&d_id),
                "A bans {banned:?}"
            );
        }
    }

    // Metrics: the refusals, and A's 30-day certificate is within the expiry warning (also
    // in its log).
    let metrics = reqwest::get(format!("{}/metrics", a.api.base_url()))
        .await?
        .text()
        .await?;
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    };
    assert_eq!(value("mcc_certificate_expiring_soon "), 1.0, "{metrics}");
    assert!(value("mcc_certificate_expiry_seconds ") > 29.0 * 86_400.0);
    assert!(
        value("mcc_admission_total{outcome=\"refused\"}") >= 2.0,
        "{metrics}"
    );
    assert!(
        value("mcc_admission_total{outcome=\"admitted\"}") >= 1.0,
        "{metrics}"
    );
    assert!(a.log().contains("this node's certificate expires in"));

    // C cannot store records on them, echo them, or forward through them.
    // C's boot retries connect it to A for a moment now and then: a put that meets A then is
    // refused (409); one that meets nobody is stored only locally. Either way no member has it.
    match c.api.put_record("/mcc/intruder", b"x".to_vec(), None).await {
        Ok(put) => ensure!(!put.replicated, "a member stored C's record"),
        Err(e) if e.status() == Some(409) => {}
        Err(e) => return Err(e.into()),
    }
    ensure!(a.api.get_record("/mcc/intruder").await.is_err());
    ensure!(b.api.get_local_record("/mcc/intruder").await.is_err());
    let echo = c.api.echo("hi", None).await?;
    ensure!(
        echo.replies
            .iter()
            .all(|r| r.peer_id == c_id || r.error.is_some()),
        "C reached someone: {echo:?}"
    );
    let (status, _) = forward_get(&c, "web").await?;
    ensure!(status != 200, "C forwarded to A's service");
    let (status, _) = forward_get(&d, "web").await?;
    ensure!(status != 200, "D forwarded to A's service");
    Ok(())
}

/// Permissions: a node without `services:consume` cannot open a forward (locally refused with
/// 403, and refused on the wire by the provider); one without `rpc:call` gets `forbidden`; one
/// without `records:write` cannot write records (403 locally; members refuse its puts).
#[tokio::test(flavor = "multi_thread")]
async fn permissions_are_enforced() -> Result<()> {
    let root = tempfile::tempdir()?;
    let ca = ca_init(root.path(), "ca")?;
    let a_dir = signed_node(root.path(), "alpha", &ca, "all", "30")?;
    let r_dir = signed_node(root.path(), "reader", &ca, "rpc:call", "30")?;
    let a = start_closed(&a_dir, &ca, &[]).await?;
    let boot = a.tcp_host_port().await?;
    let port = http_service().await?;
    a.api
        .add_service("web", &format!("http://127.0.0.1:{port}"))
        .await?;
    let mut r = start_closed(&r_dir, &ca, &["--boot", &boot]).await?;
    let (a_id, r_id) = (a.peer_id().await?, r.peer_id().await?);
    wait_until(20, "A and R admit each other", || async {
        Ok(admitted(&a, &r_id).await? && admitted(&r, &a_id).await?)
    })
    .await?;

    // REST and CLI refuse what R's certificate does not allow.
    let (status, body) = forward_get(&r, "web").await?;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("services:consume"), "{body}");
    let (ok, _, err) = cli(&[
        "--api",
        r.api.base_url(),
        "listen",
        "add",
        "web",
        "tcp://127.0.0.1:0",
    ])?;
    assert!(!ok && err.contains("services:consume"), "{err}");
    let (ok, _, err) = cli(&["--api", r.api.base_url(), "dht", "put", "k", "v"])?;
    assert!(
        !ok && err.contains("records:write") && err.contains("403"),
        "{err}"
    );
    let (ok, _, err) = cli(&[
        "--api",
        r.api.base_url(),
        "service",
        "add",
        "x",
        "tcp://127.0.0.1:1",
    ])?;
    assert!(!ok && err.contains("services:provide"), "{err}");
    // R may call: echo works both ways.
    let echo = r.api.echo("hi", Some(&a_id)).await?;
    assert!(echo.replies.iter().all(|x| x.error.is_none()), "{echo:?}");

    // On the wire: an embedded node with R's certificate (same key) bypasses the local
    // checks; A still refuses its tunnel and its record.
    r.kill();
    let config = mcc::node::Config {
        listen: mcc::node::addr::parse_listen("127.0.0.1:0")?,
        boot: vec![mcc::node::addr::parse_dial(&boot)?],
        data_dir: None,
        admission: mcc::node::AdmissionConfig {
            certificate: Some(mcc::certs::load_certificate(&r_dir.join("node.crt"))?),
            trusted_ca: Some(mcc::certs::load_certificate(&ca.join("ca.crt"))?),
            ..Default::default()
        },
        ..Default::default()
    };
    let key = mcc::certs::load_private_key(&r_dir.join("node.key"))?;
    let (node, _task) = mcc::Node::builder(config)
        .keypair(key)
        .spawn(std::future::pending())
        .await?;
    let a_peer: libp2p::PeerId = a_id.parse()?;
    wait_until(20, "the embedded node joins A", || async {
        Ok(node
            .peers()
            .await?
            .iter()
            .any(|p| p.peer_id == a_peer && p.admitted))
    })
    .await?;
    let err = match node.services().open_tunnel("web", Some(a_peer)).await {
        Ok(_) => bail!("A opened a tunnel for a node without services:consume"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("services:consume"), "{err}");
    let put = node
        .put_record(b"/mcc/sneaky".to_vec(), b"v".to_vec(), None)
        .await;
    ensure!(
        !matches!(&put, Ok(o) if o.replicated),
        "A took a record from a node without records:write: {put:?}"
    );
    ensure!(a.api.get_local_record("/mcc/sneaky").await.is_err());
    Ok(())
}

/// An expiring certificate is cut off when it expires and refused at the next start; a revoked
/// one is cut off at once by the node it is published to and by the others through the DHT; a
/// node started with the list refuses it from the start.
#[tokio::test(flavor = "multi_thread")]
async fn expired_and_revoked_certificates_are_refused() -> Result<()> {
    let root = tempfile::tempdir()?;
    let ca = ca_init(root.path(), "ca")?;
    let a_dir = signed_node(root.path(), "alpha", &ca, "all", "30")?;
    let b_dir = signed_node(root.path(), "beta", &ca, "all", "30")?;
    let r_dir = signed_node(root.path(), "revoked", &ca, "all", "30")?;
    // About 8 seconds of validity.
    let e_dir = signed_node(root.path(), "shortlived", &ca, "all", "0.0001")?;

    let a = start_closed(&a_dir, &ca, &[]).await?;
    let boot = a.tcp_host_port().await?;
    let b = start_closed(&b_dir, &ca, &["--boot", &boot, "--revocation-refresh", "1"]).await?;
    let mut e = start_closed(&e_dir, &ca, &["--boot", &boot]).await?;
    let r = start_closed(&r_dir, &ca, &["--boot", &boot]).await?;
    let (a_id, b_id, e_id, r_id) = (
        a.peer_id().await?,
        b.peer_id().await?,
        e.peer_id().await?,
        r.peer_id().await?,
    );
    wait_until(20, "everyone admitted", || async {
        Ok(admitted(&a, &b_id).await?
            && admitted(&a, &e_id).await?
            && admitted(&a, &r_id).await?
            && admitted(&b, &a_id).await?)
    })
    .await?;

    // Revoke R's certificate and publish the list through A.
    let (ok, out, err) = cli(&[
        "--api",
        a.api.base_url(),
        "ca",
        "revoke",
        s(&r_dir.join("node.crt")),
        "--ca-dir",
        s(&ca),
        "--publish",
        "--json",
    ])?;
    ensure!(ok, "ca revoke failed: {err}");
    let v: Value = serde_json::from_str(&out)?;
    assert_eq!(v["sequence"], 1);
    assert_eq!(v["published"], true);
    wait_until(10, "A cuts R off", || async {
        Ok(!connected(&a, &r_id).await?)
    })
    .await?;
    ensure!(a.log().contains("has been revoked"), "A's log: {}", a.log());
    // B learns the list from the DHT and cuts R off too.
    wait_until(20, "B applies the list from the DHT", || async {
        Ok(
            b.api.node().await?.admission.revocations_sequence == Some(1)
                && !connected(&b, &r_id).await?,
        )
    })
    .await?;
    // A node started with the list file refuses R from the start.
    let f_dir = signed_node(root.path(), "fresh", &ca, "all", "30")?;
    let crl = ca.join("revocations.crl");
    let f = start_closed(&f_dir, &ca, &["--revocations", s(&crl)]).await?;
    let f_boot = f.tcp_host_port().await?;
    let (ok, _, err) = cli(&["--api", r.api.base_url(), "dial", &f_boot])?;
    let _ = (ok, err);
    wait_until(10, "F refuses R", || async {
        Ok(f.log().contains("has been revoked") && !connected(&f, &r_id).await?)
    })
    .await?;

    // E's certificate expires: A cuts it off and says why.
    wait_until(30, "A cuts E off at expiry", || async {
        Ok(!connected(&a, &e_id).await? && a.log().contains("expired"))
    })
    .await?;
    // Restarting E with the expired certificate fails with a message that says so.
    e.kill();
    match Daemon::spawn_in(&e.dir.clone(), e.args.clone()).await {
        Ok(_) => bail!("a node started with an expired certificate"),
        Err(err) => {
            let text = format!("{err:#}");
            ensure!(text.contains("expired"), "{text}");
        }
    }
    Ok(())
}

/// `--newcert` output starts a node as is (`--cert` + `--privkey`): same peer id and label; a
/// certificate without its key is refused with a message that says what to do.
#[tokio::test(flavor = "multi_thread")]
async fn newcert_round_trips_through_cert_and_privkey() -> Result<()> {
    let root = tempfile::tempdir()?;
    let keys = root.path().join("keys");
    let (cert, key) = (keys.join("kitchen.crt"), keys.join("kitchen.key"));
    let (ok, out, err) = cli(&[
        "--newcert",
        "--label",
        "Kitchen Pi!",
        "--cert",
        s(&cert),
        "--privkey",
        s(&key),
        "--json",
    ])?;
    ensure!(ok, "newcert failed: {err}");
    let written: Value = serde_json::from_str(&out)?;
    assert_eq!(written["cert"].as_str(), Some(s(&cert)));
    assert_eq!(written["key"].as_str(), Some(s(&key)));
    assert!(Path::new(written["request"].as_str().unwrap_or_default()).exists());
    let (ok, out, _) = cli(&["cert", "show", s(&cert), "--json"])?;
    ensure!(ok);
    let shown: Value = serde_json::from_str(&out)?;

    let mut args = base_args();
    args.extend(["--cert", s(&cert), "--privkey", s(&key)].map(String::from));
    let node = Daemon::spawn_in(&root.path().join("node"), args).await?;
    let info = node.api.node().await?;
    assert_eq!(
        Some(info.peer_id.to_string().as_str()),
        shown["peer_id"].as_str()
    );
    assert_eq!(info.label, "kitchenpi");
    assert!(info.certificate.self_signed);
    assert_eq!(info.certificate.permissions, vec!["all".to_string()]);
    assert_eq!(info.admission.mode, "open");

    // The certificate with another key (the data folder's identity) is refused.
    let mut args = base_args();
    args.extend(["--cert", s(&cert)].map(String::from));
    match Daemon::spawn_in(&root.path().join("other"), args).await {
        Ok(_) => bail!("a node started with somebody else's certificate"),
        Err(e) => {
            let text = format!("{e:#}");
            ensure!(text.contains("--privkey"), "{text}");
        }
    }
    Ok(())
}

/// M4 (review demo): a peer without `records:write` cannot get its value written by others
/// through read-repair. U stored `/mcc/config` while its certificate had `all`, then runs with
/// `rpc:call` only; P's lookup must neither take U's value nor write it to P or Q.
#[tokio::test(flavor = "multi_thread")]
async fn read_repair_ignores_values_from_peers_without_records_write() -> Result<()> {
    const KEY: &str = "/mcc/config";
    const VALUE: &[u8] = b"value-injected-by-U";
    let root = tempfile::tempdir()?;
    let ca = ca_init(root.path(), "ca")?;
    let p_dir = signed_node(root.path(), "pnode", &ca, "all", "30")?;
    let q_dir = signed_node(root.path(), "qnode", &ca, "all", "30")?;
    let u_dir = signed_node(root.path(), "unode", &ca, "all", "30")?;

    // U stores the value alone, while it may still write.
    {
        let mut u = start_closed(&u_dir, &ca, &["--rendezvous", "off"]).await?;
        u.api.put_record(KEY, VALUE.to_vec(), None).await?;
        u.stop()?;
    }
    // U's certificate is replaced by one with rpc:call only.
    let limited = u_dir.join("limited.crt");
    let (ok, _, err) = cli(&[
        "ca",
        "sign",
        s(&u_dir.join("node.csr")),
        "--ca-dir",
        s(&ca),
        "--permissions",
        "rpc:call",
        "--days",
        "30",
        "--output",
        s(&limited),
    ])?;
    ensure!(ok, "ca sign failed: {err}");
    std::fs::copy(&limited, u_dir.join("node.crt"))?;

    let p = start_closed(&p_dir, &ca, &[]).await?;
    let boot = p.tcp_host_port().await?;
    let q = start_closed(&q_dir, &ca, &["--boot", &boot]).await?;
    let u = start_closed(&u_dir, &ca, &["--boot", &boot]).await?;
    let (p_id, q_id, u_id) = (p.peer_id().await?, q.peer_id().await?, u.peer_id().await?);
    wait_until(30, "P, Q and U admitted", || async {
        Ok(admitted(&p, &q_id).await?
            && admitted(&p, &u_id).await?
            && admitted(&q, &p_id).await?
            && admitted(&u, &p_id).await?)
    })
    .await?;
    // U still holds the value and would answer with it; its API refuses writes now.
    ensure!(u.api.get_local_record(KEY).await? == VALUE);
    let refused = u.api.put_record(KEY, b"x".to_vec(), None).await;
    ensure!(
        matches!(&refused, Err(e) if e.status() == Some(403)),
        "{refused:?}"
    );
    ensure!(q.api.get_local_record(KEY).await.is_err());

    // P's lookup: U's version does not count.
    let found = p.api.get_record(KEY).await;
    ensure!(
        matches!(&found, Err(e) if e.status() == Some(404)),
        "P accepted a value from a peer without records:write: {found:?}"
    );
    // Nothing was written back, locally or to Q (give a push time to arrive).
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (name, d) in [("P", &p), ("Q", &q)] {
        let local = d.api.get_local_record(KEY).await;
        ensure!(
            matches!(&local, Err(e) if e.status() == Some(404)),
            "{name} holds U's value after P's lookup: {local:?}"
        );
    }
    Ok(())
}

/// L8: a revocation list travels as one DHT record, so a list over `--max-record-size` is
/// refused by `mcc ca revoke` (nothing written) and by `PUT /api/v1/admission/revocations`
/// (413, before the node applies or saves it).
#[tokio::test(flavor = "multi_thread")]
async fn revocation_lists_larger_than_a_record_are_refused() -> Result<()> {
    let root = tempfile::tempdir()?;
    let ca = ca_init(root.path(), "ca")?;
    let serials: Vec<String> = (0..5000u32).map(|i| format!("{i:032x}")).collect();
    let ca_dir = s(&ca).to_string();
    let mut args: Vec<&str> = vec!["ca", "revoke", "--ca-dir", &ca_dir];
    args.extend(serials.iter().map(String::as_str));
    let (ok, _, err) = cli(&args)?;
    ensure!(!ok, "a 5000-serial list was accepted");
    ensure!(err.contains("--max-record-size"), "{err}");
    ensure!(!ca.join("revocations.crl").exists());

    // A CA that made a big list anyway (larger limit): the node refuses to take it.
    args.extend(["--max-record-size", "1048576"]);
    let (ok, _, err) = cli(&args)?;
    ensure!(ok, "{err}");
    let list = std::fs::read_to_string(ca.join("revocations.crl"))?;
    // A node of that CA: without the check it would apply and save the list before its DHT
    // put failed.
    let dir = signed_node(root.path(), "node", &ca, "all", "30")?;
    let node = start_closed(&dir, &ca, &["--rendezvous", "off"]).await?;
    let resp = reqwest::Client::new()
        .put(format!(
            "{}/api/v1/admission/revocations",
            node.api.base_url()
        ))
        .header("content-type", "text/plain")
        .body(list)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let body: Value = serde_json::from_str(&resp.text().await?)?;
    ensure!(status == 413, "status {status}: {body}");
    ensure!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("over the limit")),
        "{body}"
    );
    ensure!(!node.dir.join("revocations.crl").exists());
    let info: Value = reqwest::get(format!("{}/api/v1/admission", node.api.base_url()))
        .await?
        .json()
        .await?;
    ensure!(info["revocations_sequence"].is_null(), "{info}");
    Ok(())
}
