//! Every feature over a relayed-only connection, in-process on loopback: two nodes that listen
//! nowhere (A and B) reach each other only through a relay server (see
//! `tests/common/relayed.rs`), and records, DIDs, services (TCP and HTTP forwarding) and blobs
//! work between them. Each test checks the connection is relayed before and after the feature
//! runs. The relay's circuit limits are mcc's, not libp2p's. Admission: `tests/relay_admission.rs`.

mod common {
    pub mod inproc;
    pub mod relayed;
}

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use common::inproc::eventually;
use common::relayed::{Echo, Relayed, Role, bytes, echo_service, echo_through, relayed_to};
use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};

/// What the service tests send through a tunnel: far above libp2p's default circuit limit
/// (128 KiB), far below mcc's (1 GiB).
const TUNNEL_BYTES: usize = 8 << 20;

/// A local HTTP service answering every request with its path and a 256 KiB body after it.
async fn http_service() -> Result<SocketAddr> {
    let app = axum::Router::new().fallback(|uri: axum::http::Uri| async move {
        let mut body = format!("A serves {uri}\n").into_bytes();
        body.extend(std::iter::repeat_n(b'x', 256 * 1024));
        body
    });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// Records and DIDs: a record A puts is read by B, and each resolves the other's DID document
/// (published at start, over the relayed connection and the relay).
#[tokio::test(flavor = "multi_thread")]
async fn records_and_dids_work_over_a_relayed_connection() -> Result<()> {
    let s = Relayed::start(|_, _| {}).await?;
    let key = b"/mcc/relayed-greeting".to_vec();
    let put =
        s.a.put_record(key.clone(), b"hello through the relay".to_vec(), None)
            .await?;
    assert!(put.stored_locally, "{put:?}");
    eventually(15, "B reads A's record", || async {
        Ok(s.b.get_record(key.clone()).await.is_ok())
    })
    .await?;
    let found = s.b.get_record(key.clone()).await?;
    assert_eq!(found.value, b"hello through the relay");
    assert_eq!(found.publisher, Some(s.a.peer_id()));

    for (from, to) in [(&s.b, &s.a), (&s.a, &s.b)] {
        eventually(15, "a DID resolves across the relay", || async {
            Ok(from.resolve_did(to.did()).await.is_ok())
        })
        .await?;
        let doc = from.resolve_did(to.did()).await?;
        assert_eq!(doc.did(), Some(to.did()));
        doc.verify()?;
    }
    s.assert_relayed().await
}

/// Services: B's local listener, pinned to A, carries 8 MiB to A's TCP echo service and back
/// intact; B's API forwards HTTP to A's web service, found in the DHT.
#[tokio::test(flavor = "multi_thread")]
async fn services_are_forwarded_over_a_relayed_connection() -> Result<()> {
    let s = Relayed::start(|_, _| {}).await?;
    let echo = echo_service().await?;
    s.a.services().add("echo", &format!("tcp://{echo}")).await?;

    // TCP: a listener on B pinned to A.
    let port = s.listener_to_a().await?;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let data = Arc::new(bytes(TUNNEL_BYTES, 1));
    match echo_through(tcp, data, 20).await {
        Echo::Intact => {}
        Echo::Cut(n, why) => bail!("the tunnel broke after {n} bytes: {why}"),
        Echo::Stuck(n) => bail!("the tunnel stalled after {n} bytes"),
    }
    s.assert_relayed().await?;

    // HTTP: B's API, path forward; the provider is looked up in the DHT.
    let web = http_service().await?;
    s.a.services().add("web", &format!("http://{web}")).await?;
    let api = TcpListener::bind("127.0.0.1:0").await?;
    let bound = api.local_addr()?;
    let app = mcc::api::router(
        s.b.node.clone(),
        &mcc::api::ApiConfig {
            bound: Some(bound),
            ..Default::default()
        },
    );
    tokio::spawn(mcc::api::serve(api, app, std::future::pending()));
    let url = format!("http://{bound}/api/v1/forward/web/some/page?q=1");
    eventually(15, "B's API forwards to A's web service", || async {
        let resp = reqwest::get(&url).await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        ensure!(
            status == 200,
            "{status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
        Ok(true)
    })
    .await?;
    let body = reqwest::get(&url).await?.bytes().await?;
    assert!(body.starts_with(b"A serves /some/page?q=1\n"));
    assert_eq!(body.len(), "A serves /some/page?q=1\n".len() + 256 * 1024);
    s.assert_relayed().await
}

/// Blobs: a 3 MiB blob added on A is fetched by B through the relay, bytes equal.
#[tokio::test(flavor = "multi_thread")]
async fn blobs_are_fetched_over_a_relayed_connection() -> Result<()> {
    let s = Relayed::start(|_, _| {}).await?;
    let data = bytes(3 << 20, 2);
    let added = s.a.blobs().add(&data[..]).await?;
    let cid = mcc::blobs::parse_cid(&added.cid)?;
    let fetched = std::sync::Mutex::new(None);
    eventually(15, "B fetches A's blob", || async {
        let summary = s.b.blobs().fetch(&cid, |_| {}).await?;
        if let Ok(mut f) = fetched.lock() {
            *f = Some(summary);
        }
        Ok(true)
    })
    .await?;
    let summary = fetched.into_inner().ok().flatten().context("no fetch")?;
    assert!(!summary.local, "{summary:?}");
    let a_id = s.a.peer_id().to_string();
    assert!(
        summary
            .seeders
            .iter()
            .any(|x| x.peer_id == a_id && x.bytes > 0),
        "{summary:?}"
    );
    let (size, stream) = s.b.blobs().read(&cid, None).await?;
    assert_eq!(size, data.len() as u64);
    let chunks: Vec<bytes::Bytes> = stream
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<std::io::Result<_>>()?;
    assert!(chunks.concat() == data, "the fetched blob differs");
    s.assert_relayed().await
}

/// A relay whose circuits may carry 64 KiB cuts a tunnel that tries to carry 8 MiB (the
/// default limits carry it, see `services_are_forwarded_over_a_relayed_connection`): the
/// limits in force are mcc's.
#[tokio::test(flavor = "multi_thread")]
async fn a_relay_cuts_circuits_at_its_byte_limit() -> Result<()> {
    let s = Relayed::start(|role, config| {
        if role == Role::Relay {
            config.nat.relay_limits.max_circuit_bytes = 64 * 1024;
        }
    })
    .await?;
    let echo = echo_service().await?;
    s.a.services().add("echo", &format!("tcp://{echo}")).await?;
    // Under the limit, the tunnel works.
    let port = s.listener_to_a().await?;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let small = echo_through(tcp, Arc::new(bytes(1024, 4)), 10).await;
    assert!(matches!(small, Echo::Intact), "{small:?}");
    s.assert_relayed().await?;
    // Past it, the relay closes the circuit: the tunnel ends or resets before the echo is back.
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let echoed = echo_through(tcp, Arc::new(bytes(TUNNEL_BYTES, 3)), 15).await;
    match echoed {
        Echo::Cut(n, why) => {
            eprintln!("the relay cut the tunnel after {n} bytes: {why}");
            assert!(n < TUNNEL_BYTES, "{n} bytes, {why}");
        }
        other => bail!("the relay did not cut the circuit: {other:?}"),
    }
    // Whatever connects A and B now (if anything) still goes through the relay.
    let path = relayed_to(&s.b, &s.a.peer_id()).await?;
    assert_ne!(path, Some(false), "A and B got a direct connection");
    Ok(())
}
