//! DHT records and DID documents through the real binary: ten processes on 127.0.0.1.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::{Daemon, cli, wait_until};
use futures::StreamExt;
use libp2p::identity::ed25519;
use libp2p::kad::{self, Quorum, Record};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, noise, tcp, yamux};
use mcc_records::did::{SignedDocument, default_document, did_from_public};
use serde_json::json;

/// Starts `n` nodes joined through the first one and waits until their routing tables fill.
async fn network(n: usize, extra: &[&str]) -> Result<Vec<Daemon>> {
    let mut nodes = vec![Daemon::start(extra).await?];
    let boot = nodes[0].tcp_host_port().await?;
    for _ in 1..n {
        let mut args = vec!["--boot", boot.as_str()];
        args.extend_from_slice(extra);
        nodes.push(Daemon::start(&args).await?);
    }
    wait_for_tables(&nodes, n).await?;
    Ok(nodes)
}

async fn wait_for_tables(nodes: &[Daemon], n: usize) -> Result<()> {
    let want = (n - 1).min(4);
    wait_until(60, "routing tables", || async {
        for d in nodes {
            if d.api.node().await?.routing_table_size < want {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await
}

async fn get_from_all(nodes: &[Daemon], key: &str, want: &[u8]) -> Result<()> {
    for (i, d) in nodes.iter().enumerate() {
        let mut last = None;
        for _ in 0..20 {
            match d.api.get_record(key).await {
                Ok(v) if v == want => {
                    last = None;
                    break;
                }
                other => last = Some(format!("{other:?}")),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if let Some(l) = last {
            bail!("node {i} does not serve {key}: {l}");
        }
    }
    Ok(())
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1)
}

#[tokio::test(flavor = "multi_thread")]
async fn records_and_dids_across_ten_nodes_survive_restart() -> Result<()> {
    let mut nodes = network(10, &[]).await?;

    // A free record put on one node is read from every node.
    let out = nodes[3]
        .api
        .put_record("/mcc/greeting", b"hello mesh".to_vec(), None)
        .await?;
    assert!(out.stored_locally && out.replicated, "{out:?}");
    get_from_all(&nodes, "/mcc/greeting", b"hello mesh").await?;

    // Every node's own DID resolves from another node.
    let did9 = nodes[9].api.node().await?.did;
    assert!(did9.starts_with("did:key:z6Mk"), "{did9}");
    let doc = nodes[0].api.get_did(&did9).await?;
    assert_eq!(doc.document["id"], did9);

    // A user's DID made with the CLI, published on node 5, resolves everywhere.
    let tmp = tempfile::tempdir()?;
    let key = tmp.path().join("me.key");
    let key_s = key.to_string_lossy().into_owned();
    let api5 = nodes[5].api.base_url().to_string();
    let (ok, out, err) = cli(&["did", "keygen", "-o", &key_s, "--json"])?;
    assert!(ok, "{err}");
    let did = serde_json::from_str::<serde_json::Value>(&out)?["did"]
        .as_str()
        .context("no did")?
        .to_string();
    let doc_path = tmp.path().join("doc.json");
    std::fs::write(
        &doc_path,
        json!({"service": [{"id": format!("{did}#web"), "type": "LinkedDomains",
                            "serviceEndpoint": "https://example.invalid"}]})
        .to_string(),
    )?;
    let (ok, _, err) = cli(&[
        "did",
        "publish",
        "--key",
        &key_s,
        &doc_path.to_string_lossy(),
        "--api",
        &api5,
    ])?;
    assert!(ok, "{err}");
    for (i, d) in nodes.iter().enumerate() {
        let got = d
            .api
            .get_did(&did)
            .await
            .with_context(|| format!("node {i}"))?;
        assert_eq!(
            got.document["service"][0]["type"], "LinkedDomains",
            "node {i}"
        );
        assert_eq!(got.document["id"], did);
    }
    // `mcc did show` prints it.
    let (ok, out, err) = cli(&["did", "show", &did, "--api", nodes[1].api.base_url()])?;
    assert!(ok && out.contains("LinkedDomains"), "{out}{err}");
    // Publishing again bumps the sequence; everyone sees the new version.
    std::fs::write(
        &doc_path,
        json!({"alsoKnownAs": ["https://example.invalid/me"]}).to_string(),
    )?;
    let (ok, _, err) = cli(&[
        "did",
        "publish",
        "--key",
        &key_s,
        &doc_path.to_string_lossy(),
        "--api",
        nodes[2].api.base_url(),
    ])?;
    assert!(ok, "{err}");
    for d in &nodes {
        let got = d.api.get_did(&did).await?;
        assert!(
            got.document.get("alsoKnownAs").is_some(),
            "{:?}",
            got.document
        );
    }

    // kill -9 every node, then start them all again on the same data folders: the record
    // and the DID are still served, from every node.
    for d in nodes.iter_mut() {
        d.kill();
    }
    nodes[0].restart().await?;
    let boot = nodes[0].tcp_host_port().await?;
    for d in nodes.iter_mut().skip(1) {
        let pos = d
            .args
            .iter()
            .position(|a| a == "--boot")
            .context("no --boot")?;
        d.args[pos + 1] = boot.clone();
        d.restart().await?;
    }
    wait_for_tables(&nodes, 10).await?;
    get_from_all(&nodes, "/mcc/greeting", b"hello mesh").await?;
    for d in &nodes {
        assert!(
            d.api
                .get_did(&did)
                .await?
                .document
                .get("alsoKnownAs")
                .is_some()
        );
    }
    Ok(())
}

/// A libp2p peer that is not mcc: it talks kad directly and pushes records to the nodes,
/// bypassing every REST check.
struct Attacker {
    swarm: libp2p::Swarm<kad::Behaviour<kad::store::MemoryStore>>,
}

impl Attacker {
    fn new() -> Result<Self> {
        let swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(|key| {
                let id = key.public().to_peer_id();
                let mut k = kad::Behaviour::with_config(
                    id,
                    kad::store::MemoryStore::new(id),
                    kad::Config::new(kad::PROTOCOL_NAME),
                );
                k.set_mode(Some(kad::Mode::Server));
                k
            })?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        Ok(Self { swarm })
    }

    async fn connect(&mut self, addr: Multiaddr) -> Result<PeerId> {
        self.swarm.dial(addr)?;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.swarm.select_next_some())
                .await?
            {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => return Ok(peer_id),
                SwarmEvent::OutgoingConnectionError { error, .. } => bail!("dial: {error}"),
                _ => {}
            }
        }
    }

    /// Pushes `record` to `peers`; returns how many stored it.
    async fn push(&mut self, record: Record, peers: &[PeerId]) -> Result<usize> {
        let id =
            self.swarm
                .behaviour_mut()
                .put_record_to(record, peers.iter().copied(), Quorum::All);
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(20), self.swarm.select_next_some())
                .await?;
            if let SwarmEvent::Behaviour(kad::Event::OutboundQueryProgressed {
                id: qid,
                result: kad::QueryResult::PutRecord(r),
                ..
            }) = ev
                && qid == id
            {
                return Ok(match r {
                    Ok(_) => peers.len(),
                    Err(kad::PutRecordError::QuorumFailed { success, .. })
                    | Err(kad::PutRecordError::Timeout { success, .. }) => success.len(),
                });
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_replayed_did_updates_are_refused_by_every_node() -> Result<()> {
    let nodes = network(4, &["--rendezvous", "off"]).await?;
    let owner = ed25519::Keypair::generate();
    let did = did_from_public(&owner.public());
    let seq = unix_ms();
    let mut doc = default_document(&did);
    doc["alsoKnownAs"] = json!(["v-good"]);
    let good = SignedDocument::sign(&owner, doc.clone(), seq)?;
    let as_schema = |d: &SignedDocument| mcc::api::types::SignedDocumentSchema {
        document: d.document.clone(),
        seq: d.seq,
        signature: d.signature.clone(),
    };
    nodes[0].api.put_did(&as_schema(&good)).await?;
    for d in &nodes {
        assert_eq!(d.api.get_did(&did).await?.seq, seq);
    }

    // Through REST: a forgery is a 400, a replay a 409.
    let thief = ed25519::Keypair::generate();
    let mut forged_doc = doc.clone();
    forged_doc["alsoKnownAs"] = json!(["v-forged"]);
    // Signed by another key while claiming the owner's DID.
    let forged = {
        // Signed as the thief's own DID, then relabelled with the owner's.
        if let Some(o) = forged_doc.as_object_mut() {
            o.remove("id");
        }
        let mut f = SignedDocument::sign(&thief, forged_doc.clone(), seq + 10)?;
        f.document["id"] = json!(did);
        f
    };
    let err = nodes[1].api.put_did(&as_schema(&forged)).await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    let mut old = doc.clone();
    old["alsoKnownAs"] = json!(["v-old"]);
    let replay = SignedDocument::sign(&owner, old, seq - 1)?;
    let err = nodes[2].api.put_did(&as_schema(&replay)).await.unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");

    // Straight over kad from a foreign peer: every node refuses both.
    let mut attacker = Attacker::new()?;
    let mut peers = Vec::new();
    for d in &nodes {
        let addr: Multiaddr = format!(
            "/ip4/127.0.0.1/tcp/{}",
            d.tcp_host_port().await?.rsplit(':').next().unwrap_or("0")
        )
        .parse()?;
        peers.push(attacker.connect(addr).await?);
    }
    let key = mcc_records::did_key(&did);
    let stored = attacker
        .push(Record::new(key.clone(), forged.to_bytes()), &peers)
        .await?;
    ensure!(stored == 0, "{stored} nodes stored a forged DID document");
    let stored = attacker
        .push(Record::new(key.clone(), replay.to_bytes()), &peers)
        .await?;
    ensure!(stored == 0, "{stored} nodes stored a replayed DID document");
    let stored = attacker
        .push(
            Record::new(kad::RecordKey::new(&"/evil/x"), b"x".to_vec()),
            &peers,
        )
        .await?;
    ensure!(stored == 0, "{stored} nodes stored an unknown namespace");
    // ...while a valid newer version from the same foreign peer is accepted.
    let mut newer = doc.clone();
    newer["alsoKnownAs"] = json!(["v-newer"]);
    let newer = SignedDocument::sign(&owner, newer, seq + 1)?;
    let stored = attacker
        .push(Record::new(key, newer.to_bytes()), &peers)
        .await?;
    ensure!(
        stored == nodes.len(),
        "only {stored} nodes took a valid update"
    );

    for d in &nodes {
        let got = d.api.get_did(&did).await?;
        assert_eq!(got.seq, seq + 1);
        assert_eq!(got.document["alsoKnownAs"], json!(["v-newer"]));
    }

    // Stale holders are repaired: a newest version reaches only nodes 0 and 1; a lookup
    // from node 2 or 3 still returns it, and their own copies are updated.
    let mut newest = doc.clone();
    newest["alsoKnownAs"] = json!(["v-newest"]);
    let newest = SignedDocument::sign(&owner, newest, seq + 2)?;
    let key = mcc_records::did_key(&did);
    let stored = attacker
        .push(Record::new(key.clone(), newest.to_bytes()), &peers[..2])
        .await?;
    ensure!(stored == 2, "{stored}");
    let key_s = String::from_utf8(key.to_vec())?;
    let local_seq = |d: &Daemon| {
        let key_s = key_s.clone();
        let api = d.api.clone();
        async move {
            let bytes = api.get_local_record(&key_s).await?;
            anyhow::Ok(SignedDocument::from_bytes(&bytes)?.seq)
        }
    };
    assert_eq!(local_seq(&nodes[2]).await?, seq + 1, "node 2 starts stale");
    for i in [2, 3] {
        assert_eq!(
            nodes[i].api.get_did(&did).await?.seq,
            seq + 2,
            "lookup from node {i}"
        );
        wait_until(10, "local copy repaired", || async {
            Ok(local_seq(&nodes[i]).await? == seq + 2)
        })
        .await?;
    }
    Ok(())
}

async fn raw_status(req: reqwest::RequestBuilder) -> Result<(u16, serde_json::Value)> {
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?,
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_record_input_gets_clear_errors() -> Result<()> {
    let a = Daemon::start(&["--rendezvous", "off"]).await?;
    let base = a.api.base_url().to_string();
    // No connection reuse: the server closes a connection after refusing an unread body.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let cases = [
        (
            http.put(format!("{base}/api/v1/records/mcc/big"))
                .body(vec![b'x'; 70 * 1024]),
            413,
        ),
        (
            http.put(format!("{base}/api/v1/records/mcc/huge"))
                .body(vec![b'x'; 3 << 20]),
            413,
        ),
        (
            http.put(format!("{base}/api/v1/records/unknown/x"))
                .body("v"),
            400,
        ),
        (
            http.put(format!("{base}/api/v1/records/nonamespace"))
                .body("v"),
            400,
        ),
        (
            http.put(format!("{base}/api/v1/records/mcc/x?ttl=soon"))
                .body("v"),
            400,
        ),
        (http.get(format!("{base}/api/v1/records/unknown/x")), 400),
        (
            http.get(format!("{base}/api/v1/records/mcc/nobody-has-this")),
            404,
        ),
        (http.get(format!("{base}/api/v1/dids/not-a-did")), 400),
        (
            http.get(format!("{base}/api/v1/dids/did:key:zNotBase58!")),
            400,
        ),
        (
            http.put(format!(
                "{base}/api/v1/dids/did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
            ))
            .header("content-type", "application/json")
            .body("{\"document\":{}}"),
            422,
        ),
        (
            http.put(format!(
                "{base}/api/v1/records/did/did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
            ))
            .body("{}"),
            400,
        ),
    ];
    for (req, want) in cases {
        let (status, body) = raw_status(req).await?;
        assert_eq!(status, want, "{body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    // The limit is configurable.
    let small = Daemon::start(&["--rendezvous", "off", "--max-record-size", "100"]).await?;
    let err = small
        .api
        .put_record("/mcc/k", vec![b'x'; 101], None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(413), "{err}");
    small
        .api
        .put_record("/mcc/k", vec![b'x'; 100], None)
        .await?;
    assert_eq!(small.api.get_record("/mcc/k").await?.len(), 100);

    // The CLI: a bare key means /mcc/<key>; errors exit non-zero with the message.
    let dir = a.dir.to_string_lossy().into_owned();
    let (ok, _, err) = cli(&["dht", "put", "color", "blue", "--data-folder", &dir])?;
    assert!(ok, "{err}");
    let (ok, out, err) = cli(&["dht", "get", "color", "--data-folder", &dir])?;
    assert!(ok && out == "blue", "{out}{err}");
    let (ok, _, err) = cli(&["dht", "get", "/nope/x", "--data-folder", &dir])?;
    assert!(!ok && err.contains("namespace"), "{err}");
    Ok(())
}

/// M6: a remote writer cannot fill a node's record store: with a small `--max-records`, a
/// peer pushing many junk records gets only its share, the node's own writes still succeed,
/// and when the node's store is truly full its API answers 507 with a JSON error.
#[tokio::test(flavor = "multi_thread")]
async fn junk_from_a_peer_leaves_room_for_own_records() -> Result<()> {
    let victim = Daemon::start(&["--rendezvous", "off", "--max-records", "12"]).await?;
    let boot = victim.tcp_host_port().await?;
    let attacker = Daemon::start(&["--rendezvous", "off", "--boot", &boot]).await?;
    let nodes = [victim, attacker];
    wait_for_tables(&nodes, 2).await?;
    let [victim, attacker] = nodes;

    // The attacker puts 15 junk records (in parallel: refused pushes take a stream timeout).
    let puts = (0..15).map(|i| {
        let api = attacker.api.clone();
        async move {
            let _ = api
                .put_record(&format!("/mcc/junk{i}"), b"junk".to_vec(), None)
                .await;
        }
    });
    futures::future::join_all(puts).await;
    let mut held = 0;
    for i in 0..15 {
        if victim
            .api
            .get_local_record(&format!("/mcc/junk{i}"))
            .await
            .is_ok()
        {
            held += 1;
        }
    }
    // 12 / 16 rounds to a share of one record per peer (its DID document may take it).
    ensure!(held <= 1, "the victim holds {held} junk records");

    // The victim's own write succeeds.
    victim
        .api
        .put_record("/mcc/mine", b"hello".to_vec(), None)
        .await
        .context("own write after the junk flood")?;
    ensure!(victim.api.get_local_record("/mcc/mine").await? == b"hello");

    // Filling the store with its own records ends in 507 with a JSON error.
    let base = victim.api.base_url().to_string();
    let http = reqwest::Client::new();
    let mut full = None;
    for i in 0..20 {
        let (status, body) = raw_status(
            http.put(format!("{base}/api/v1/records/mcc/own{i}"))
                .header("content-type", "application/octet-stream")
                .body("v"),
        )
        .await?;
        if status != 200 {
            full = Some((status, body));
            break;
        }
    }
    let (status, body) = full.context("the store never filled up")?;
    ensure!(status == 507, "status {status}: {body}");
    ensure!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("record store is full")),
        "{body}"
    );
    Ok(())
}

/// M6: replication runs from the event loop in batches (kad's own job is off): a record A
/// holds for another publisher reaches a node that joins later, through the job alone.
#[tokio::test(flavor = "multi_thread")]
async fn batched_replication_reaches_a_new_node() -> Result<()> {
    let a_dir = tempfile::tempdir()?;
    let mut args = common::base_args();
    args.extend(["--rendezvous", "off"].map(String::from));
    let a = Daemon::spawn_in_env(
        a_dir.path(),
        args,
        &[("MCC_RECORD_REPLICATION_INTERVAL", "1")],
    )
    .await?;
    let boot = a.tcp_host_port().await?;

    // C publishes a record to A, then goes away: A holds it for C.
    let mut c = Daemon::start(&["--rendezvous", "off", "--boot", &boot]).await?;
    wait_until(20, "C in A's routing table", || async {
        Ok(a.api.node().await?.routing_table_size >= 1)
    })
    .await?;
    c.api
        .put_record("/mcc/replicated", b"from C".to_vec(), None)
        .await?;
    wait_until(10, "A holds C's record", || async {
        Ok(a.api.get_local_record("/mcc/replicated").await.ok() == Some(b"from C".to_vec()))
    })
    .await?;
    c.stop()?;

    // B joins A later; nothing but A's replication job puts the record there.
    let b = Daemon::start(&["--rendezvous", "off", "--boot", &boot]).await?;
    wait_until(30, "B holds the record through replication", || async {
        Ok(b.api.get_local_record("/mcc/replicated").await.ok() == Some(b"from C".to_vec()))
    })
    .await?;
    Ok(())
}
