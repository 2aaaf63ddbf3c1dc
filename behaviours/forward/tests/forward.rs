//! End-to-end tests: two swarms with `mcc_streams::Behaviour`, a provider running
//! `mcc_forward::serve` in front of local TCP services, and an opener using `mcc_forward::open`.

use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use libp2p::{PeerId, Swarm, swarm::SwarmEvent};
use libp2p_swarm_test::SwarmExt as _;
use mcc_forward::{
    MAX_SERVICE_NAME_LEN, OpenError, PROTOCOL_NAME, Refusal, ServeError, ServerConfig, Stats,
    Tunnel,
};
use mcc_streams::Control;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_util::compat::FuturesAsyncReadCompatExt as _;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Fails the test if `future` takes longer than `secs` seconds.
async fn within<F: Future>(secs: u64, future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), future)
        .await
        .expect("test step timed out")
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Two connected swarms, driven in background tasks.
struct Net {
    /// Control of the opening side.
    client: Control,
    /// Control of the providing side.
    server: Control,
    server_peer: PeerId,
}

/// Logs to the test output when `RUST_LOG` is set.
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn net() -> Net {
    init_logging();
    let mut client = Swarm::new_ephemeral_tokio(|_| mcc_streams::Behaviour::default());
    let mut server = Swarm::new_ephemeral_tokio(|_| mcc_streams::Behaviour::default());
    server.listen().with_memory_addr_external().await;
    client.connect(&mut server).await;
    let net = Net {
        client: client.behaviour().control(),
        server: server.behaviour().control(),
        server_peer: *server.local_peer_id(),
    };
    tokio::spawn(client.loop_on_next());
    tokio::spawn(server.loop_on_next());
    net
}

/// A resolver over a fixed table; names starting with "secret" are forbidden.
fn table(entries: &[(&str, String)]) -> Arc<dyn mcc_forward::Resolver> {
    let map: HashMap<String, String> = entries
        .iter()
        .map(|(name, addr)| (name.to_string(), addr.clone()))
        .collect();
    Arc::new(
        move |_peer: &PeerId, service: &str| match map.get(service) {
            Some(_) if service.starts_with("secret") => Err(Refusal::Forbidden),
            Some(addr) => Ok(addr.clone()),
            None => Err(Refusal::UnknownService),
        },
    )
}

fn start(net: &Net, resolver: Arc<dyn mcc_forward::Resolver>, config: ServerConfig) -> Stats {
    let stats = Stats::default();
    tokio::spawn(mcc_forward::serve(
        net.server.clone(),
        resolver,
        config,
        stats.clone(),
    ));
    stats
}

/// A TCP echo server; each connection echoes until EOF, then shuts down its write side.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut reader, mut writer) = socket.into_split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
                let _ = writer.shutdown().await;
            });
        }
    });
    addr
}

/// A TCP server that greets, closes its write side, then counts what it receives until EOF and
/// reports the count.
async fn greeter_server() -> (SocketAddr, mpsc::UnboundedReceiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (report, reports) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let report = report.clone();
            tokio::spawn(async move {
                socket.write_all(b"hello\n").await.unwrap();
                socket.shutdown().await.unwrap();
                let mut received = Vec::new();
                socket.read_to_end(&mut received).await.unwrap();
                let _ = report.send(received.len());
            });
        }
    });
    (addr, reports)
}

/// An address where nothing listens.
async fn dead_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Sends `payload` through the tunnel while reading what comes back, closing the write side
/// after the payload; returns everything read until EOF.
async fn round_trip(tunnel: Tunnel, payload: Vec<u8>) -> Vec<u8> {
    let (mut reader, mut writer) = tokio::io::split(tunnel);
    let send = tokio::spawn(async move {
        writer.write_all(&payload).await.unwrap();
        writer.shutdown().await.unwrap();
    });
    let mut received = Vec::new();
    reader.read_to_end(&mut received).await.unwrap();
    send.await.unwrap();
    received
}

fn expect_refusal(result: Result<Tunnel, OpenError>, expected: Refusal) {
    match result {
        Err(OpenError::Refused { code, message }) => {
            assert_eq!(code, expected, "message: {message}");
        }
        other => panic!("expected refusal {expected}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn echo_8_mib() {
    let mut net = net().await;
    let echo = echo_server().await;
    let stats = start(
        &net,
        table(&[("echo", echo.to_string())]),
        ServerConfig::default(),
    );

    let tunnel = mcc_forward::open(&mut net.client, net.server_peer, "echo", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(tunnel.peer(), net.server_peer);

    let payload = data(8 << 20, 1);
    let received = within(60, round_trip(tunnel, payload.clone())).await;
    assert_eq!(received.len(), payload.len());
    assert!(received == payload, "echoed bytes differ");

    // The provider's tunnel ends once both directions are closed.
    within(10, async {
        while stats.active() != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(stats.tunnels_opened(), 1);
    assert_eq!(stats.tunnels_refused(), 0);
    assert_eq!(stats.bytes_in(), 8 << 20);
    assert_eq!(stats.bytes_out(), 8 << 20);
}

#[tokio::test]
async fn half_close_from_the_opener() {
    let mut net = net().await;
    let echo = echo_server().await;
    start(
        &net,
        table(&[("echo", echo.to_string())]),
        ServerConfig::default(),
    );

    let mut tunnel = mcc_forward::open(&mut net.client, net.server_peer, "echo", TIMEOUT)
        .await
        .unwrap();
    // Write everything and shut down the write side before reading anything.
    tunnel.write_all(b"ping, then eof").await.unwrap();
    tunnel.shutdown().await.unwrap();
    let mut received = Vec::new();
    within(10, tunnel.read_to_end(&mut received)).await.unwrap();
    assert_eq!(received, b"ping, then eof");
}

#[tokio::test]
async fn half_close_from_the_service() {
    let mut net = net().await;
    let (greeter, mut reports) = greeter_server().await;
    start(
        &net,
        table(&[("greeter", greeter.to_string())]),
        ServerConfig::default(),
    );

    let mut tunnel = mcc_forward::open(&mut net.client, net.server_peer, "greeter", TIMEOUT)
        .await
        .unwrap();
    // The service closed its side: we get its greeting, then EOF...
    let mut greeting = Vec::new();
    within(10, tunnel.read_to_end(&mut greeting)).await.unwrap();
    assert_eq!(greeting, b"hello\n");
    // ...and can still send to it.
    let payload = data(1 << 20, 2);
    tunnel.write_all(&payload).await.unwrap();
    tunnel.shutdown().await.unwrap();
    assert_eq!(within(10, reports.recv()).await, Some(payload.len()));
}

#[tokio::test]
async fn unknown_service_is_refused() {
    let mut net = net().await;
    let stats = start(&net, table(&[]), ServerConfig::default());
    let result = mcc_forward::open(&mut net.client, net.server_peer, "nope", TIMEOUT).await;
    expect_refusal(result, Refusal::UnknownService);
    assert_eq!(stats.tunnels_refused(), 1);
    assert_eq!(stats.tunnels_opened(), 0);
}

#[tokio::test]
async fn closed_local_port_is_refused() {
    let mut net = net().await;
    let dead = dead_port().await;
    start(
        &net,
        table(&[("dead", dead.to_string())]),
        ServerConfig::default(),
    );
    let result = mcc_forward::open(&mut net.client, net.server_peer, "dead", TIMEOUT).await;
    expect_refusal(result, Refusal::Refused);
}

#[tokio::test]
async fn bad_local_address_is_unreachable() {
    let mut net = net().await;
    start(
        &net,
        table(&[("broken", "this is not an address".to_string())]),
        ServerConfig::default(),
    );
    let result = mcc_forward::open(&mut net.client, net.server_peer, "broken", TIMEOUT).await;
    expect_refusal(result, Refusal::Unreachable);
}

#[tokio::test]
async fn forbidden_passes_through() {
    let mut net = net().await;
    let echo = echo_server().await;
    start(
        &net,
        table(&[("secret-echo", echo.to_string())]),
        ServerConfig::default(),
    );
    let result = mcc_forward::open(&mut net.client, net.server_peer, "secret-echo", TIMEOUT).await;
    expect_refusal(result, Refusal::Forbidden);
}

#[tokio::test]
async fn resolver_sees_the_requesting_peer() {
    let mut net = net().await;
    let echo = echo_server().await.to_string();
    let allowed = PeerId::random();
    let resolver = move |peer: &PeerId, _service: &str| {
        if *peer == allowed {
            Ok(echo.clone())
        } else {
            Err(Refusal::Forbidden)
        }
    };
    start(&net, Arc::new(resolver), ServerConfig::default());
    let result = mcc_forward::open(&mut net.client, net.server_peer, "echo", TIMEOUT).await;
    expect_refusal(result, Refusal::Forbidden);
}

#[tokio::test]
async fn busy_when_max_concurrent_reached() {
    let mut net = net().await;
    let echo = echo_server().await;
    let config = ServerConfig::new().with_max_concurrent(1);
    let stats = start(&net, table(&[("echo", echo.to_string())]), config);

    let mut held = mcc_forward::open(&mut net.client, net.server_peer, "echo", TIMEOUT)
        .await
        .unwrap();
    let result = mcc_forward::open(&mut net.client, net.server_peer, "echo", TIMEOUT).await;
    expect_refusal(result, Refusal::Busy);

    // The held tunnel still works.
    held.write_all(b"still here").await.unwrap();
    let mut buf = [0u8; 10];
    within(10, held.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"still here");

    // Once it is closed, its place is free again.
    held.shutdown().await.unwrap();
    let mut rest = Vec::new();
    within(10, held.read_to_end(&mut rest)).await.unwrap();
    drop(held);
    within(10, async {
        while stats.active() != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let mut again = None;
    for _ in 0..100 {
        match mcc_forward::open(&mut net.client, net.server_peer, "echo", TIMEOUT).await {
            Ok(tunnel) => {
                again = Some(tunnel);
                break;
            }
            Err(OpenError::Refused {
                code: Refusal::Busy,
                ..
            }) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    let again = again.expect("the place of the closed tunnel was never freed");
    assert_eq!(within(10, round_trip(again, b"ok".to_vec())).await, b"ok");
}

/// Opens a raw stream on the protocol, writes `bytes` (optionally closing the write side) and
/// returns everything the provider sends until it closes the stream.
async fn raw_exchange(net: &mut Net, bytes: &[u8], close: bool) -> Vec<u8> {
    let stream = net
        .client
        .open_stream(net.server_peer, PROTOCOL_NAME)
        .await
        .unwrap();
    let mut stream = stream.compat();
    stream.write_all(bytes).await.unwrap();
    stream.flush().await.unwrap();
    if close {
        stream.shutdown().await.unwrap();
    }
    let mut answer = Vec::new();
    // A reset after the answer is fine too.
    let _ = within(10, stream.read_to_end(&mut answer)).await;
    answer
}

#[tokio::test]
async fn malformed_requests_are_rejected() {
    let mut net = net().await;
    let echo = echo_server().await;
    let config = ServerConfig::new().with_handshake_timeout(Duration::from_millis(500));
    start(&net, table(&[("echo", echo.to_string())]), config);

    let bad_request = Refusal::BadRequest.code();
    let mut over_long = vec![1u8, 200];
    over_long.extend(std::iter::repeat_n(b'a', 200));
    let mut garbage = vec![0xde, 0xad, 0xbe, 0xef];
    garbage.extend(data(4096, 3));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad version", b"\x02\x04echo".to_vec()),
        ("garbage", garbage),
        ("over-long name", over_long),
        ("empty name", vec![1, 0]),
        ("invalid utf-8", vec![1, 2, 0xff, 0xfe]),
        ("invalid name", b"\x01\x04ECHO".to_vec()),
    ];
    for (case, bytes) in cases {
        let answer = raw_exchange(&mut net, &bytes, false).await;
        assert!(answer.len() >= 3, "{case}: short answer {answer:?}");
        assert_eq!(answer[0], bad_request, "{case}");
        let len = usize::from(u16::from_be_bytes([answer[1], answer[2]]));
        assert_eq!(answer.len(), 3 + len, "{case}: answer then EOF");
        assert!(std::str::from_utf8(&answer[3..]).is_ok(), "{case}");
    }

    // Truncated requests and silent peers get no answer, the stream is just closed.
    assert_eq!(raw_exchange(&mut net, b"\x01\x10ec", true).await, b"");
    assert_eq!(raw_exchange(&mut net, b"", true).await, b"");
    let started = Instant::now();
    assert_eq!(raw_exchange(&mut net, b"\x01", false).await, b"");
    assert!(started.elapsed() < Duration::from_secs(5));

    // The provider is still fine.
    let tunnel = mcc_forward::open(&mut net.client, net.server_peer, "echo", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        within(10, round_trip(tunnel, b"alive".to_vec())).await,
        b"alive"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_tunnels() {
    let net = net().await;
    let echo = echo_server().await;
    let stats = start(
        &net,
        table(&[("echo", echo.to_string())]),
        ServerConfig::default(),
    );

    let tasks: Vec<_> = (0..50u64)
        .map(|i| {
            let mut control = net.client.clone();
            let peer = net.server_peer;
            tokio::spawn(async move {
                let tunnel = mcc_forward::open(&mut control, peer, "echo", TIMEOUT)
                    .await
                    .unwrap();
                let payload = data(256 * 1024 + i as usize, i + 100);
                let received = round_trip(tunnel, payload.clone()).await;
                assert!(received == payload, "tunnel {i} got different bytes");
            })
        })
        .collect();
    for task in tasks {
        within(60, task).await.unwrap();
    }
    assert_eq!(stats.tunnels_opened(), 50);
    assert_eq!(stats.tunnels_refused(), 0);
}

#[tokio::test]
async fn invalid_names_are_rejected_before_sending() {
    for bad in [
        String::new(),
        "Echo".into(),
        "-echo".into(),
        "ec ho".into(),
        "a".repeat(MAX_SERVICE_NAME_LEN + 1),
    ] {
        assert!(matches!(
            mcc_forward::validate_name(&bad),
            Err(OpenError::InvalidName(_))
        ));
        // A random peer cannot be dialed: getting InvalidName shows nothing was attempted.
        let swarm = Swarm::new_ephemeral_tokio(|_| mcc_streams::Behaviour::default());
        let mut control = swarm.behaviour().control();
        let result = mcc_forward::open(&mut control, PeerId::random(), &bad, TIMEOUT).await;
        assert!(
            matches!(result, Err(OpenError::InvalidName(_))),
            "{bad:?}: {result:?}"
        );
    }
    assert!(mcc_forward::validate_name(&"a".repeat(MAX_SERVICE_NAME_LEN)).is_ok());
}

#[tokio::test]
async fn peer_without_the_protocol() {
    let mut net = net().await;
    let result = mcc_forward::open(&mut net.client, net.server_peer, "echo", TIMEOUT).await;
    assert!(matches!(result, Err(OpenError::Stream(_))), "{result:?}");
}

#[tokio::test]
async fn undialable_peer() {
    let swarm = Swarm::new_ephemeral_tokio(|_| mcc_streams::Behaviour::default());
    let mut control = swarm.behaviour().control();
    tokio::spawn(swarm.loop_on_next());
    let result = mcc_forward::open(&mut control, PeerId::random(), "echo", TIMEOUT).await;
    assert!(matches!(result, Err(OpenError::Stream(_))), "{result:?}");
}

#[tokio::test]
async fn silent_provider_times_out() {
    let mut net = net().await;
    // Accept the protocol but never answer.
    let mut incoming = net.server.accept(PROTOCOL_NAME).unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((_, stream)) = incoming.next().await {
            held.push(stream);
        }
    });
    let started = Instant::now();
    let result = mcc_forward::open(
        &mut net.client,
        net.server_peer,
        "echo",
        Duration::from_millis(300),
    )
    .await;
    assert!(matches!(result, Err(OpenError::Timeout)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn serving_twice_fails() {
    let net = net().await;
    let first = tokio::spawn(mcc_forward::serve(
        net.server.clone(),
        table(&[]),
        ServerConfig::default(),
        Stats::default(),
    ));
    // Let the first one register.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = mcc_forward::serve(
        net.server.clone(),
        table(&[]),
        ServerConfig::default(),
        Stats::default(),
    )
    .await;
    assert!(matches!(second, Err(ServeError::AlreadyRegistered)));
    assert!(!first.is_finished());
    first.abort();
}

/// A realistic setup (TCP, noise, yamux), forwarding like `ssh -L`: local client -> local
/// listener -> tunnel -> provider -> local service. Prints the throughput; asserts only
/// correctness. Run with `cargo test --release -p mcc-forward throughput -- --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throughput_over_tcp() {
    // MCC_FORWARD_BENCH_MIB overrides the size (whole MiB).
    let default_mib = if cfg!(debug_assertions) { 8 } else { 64 };
    let size: usize = std::env::var("MCC_FORWARD_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(default_mib)
        .max(1)
        << 20;

    let build = || {
        libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default(),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|_| mcc_streams::Behaviour::default())
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
            .build()
    };
    let mut server = build();
    let mut client = build();
    server
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let server_addr = within(10, async {
        loop {
            if let Some(SwarmEvent::NewListenAddr { address, .. }) = server.next().await {
                break address;
            }
        }
    })
    .await;
    let server_peer = *server.local_peer_id();
    let server_control = server.behaviour().control();
    let mut client_control = client.behaviour().control();
    tokio::spawn(server.loop_on_next());
    client.dial(server_addr).unwrap();
    within(10, async {
        loop {
            if let Some(SwarmEvent::ConnectionEstablished { .. }) = client.next().await {
                break;
            }
        }
    })
    .await;
    tokio::spawn(client.loop_on_next());

    // Local services: "sink" counts what it receives and answers the count; "source" sends
    // `size` bytes.
    let sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_addr = sink.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = sink.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                let mut total = 0u64;
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n as u64,
                    }
                }
                let _ = socket.write_all(&total.to_be_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    let source = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source_addr = source.local_addr().unwrap();
    let chunk = data(1 << 20, 4);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = source.accept().await {
            let chunk = chunk.clone();
            tokio::spawn(async move {
                for _ in 0..size / chunk.len() {
                    if socket.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    let stats = Stats::default();
    tokio::spawn(mcc_forward::serve(
        server_control,
        table(&[
            ("sink", sink_addr.to_string()),
            ("source", source_addr.to_string()),
        ]),
        ServerConfig::default(),
        stats.clone(),
    ));

    // Warm up the connection (dial, handshakes).
    let warm = mcc_forward::open(&mut client_control, server_peer, "sink", TIMEOUT)
        .await
        .unwrap();
    drop(warm);

    // The opener's local forwarder: each accepted connection goes to the service named by the
    // listener.
    let forwarder = |service: &'static str| {
        let mut control = client_control.clone();
        async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((local, _)) = listener.accept().await {
                    local.set_nodelay(true).unwrap();
                    let tunnel = mcc_forward::open(&mut control, server_peer, service, TIMEOUT)
                        .await
                        .unwrap();
                    tokio::spawn(mcc_forward::pipe(local, tunnel));
                }
            });
            addr
        }
    };
    let sink_local = forwarder("sink").await;
    let source_local = forwarder("source").await;

    // Upload.
    let started = Instant::now();
    let mut socket = TcpStream::connect(sink_local).await.unwrap();
    socket.set_nodelay(true).unwrap();
    let chunk = data(1 << 20, 5);
    for _ in 0..size / chunk.len() {
        socket.write_all(&chunk).await.unwrap();
    }
    socket.shutdown().await.unwrap();
    let mut count = [0u8; 8];
    within(120, socket.read_exact(&mut count)).await.unwrap();
    let upload = started.elapsed();
    assert_eq!(u64::from_be_bytes(count), size as u64);

    // Upload straight into a tunnel (no local hop on the opener's side).
    let started = Instant::now();
    let mut tunnel = mcc_forward::open(&mut client_control, server_peer, "sink", TIMEOUT)
        .await
        .unwrap();
    for _ in 0..size / chunk.len() {
        tunnel.write_all(&chunk).await.unwrap();
    }
    tunnel.shutdown().await.unwrap();
    let mut count = [0u8; 8];
    within(120, tunnel.read_exact(&mut count)).await.unwrap();
    let direct = started.elapsed();
    assert_eq!(u64::from_be_bytes(count), size as u64);

    // Download.
    let started = Instant::now();
    let mut socket = TcpStream::connect(source_local).await.unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0usize;
    within(120, async {
        loop {
            match socket.read(&mut buf).await.unwrap() {
                0 => break,
                n => total += n,
            }
        }
    })
    .await;
    let download = started.elapsed();
    assert_eq!(total, size);

    let mbps = |d: Duration| size as f64 / d.as_secs_f64() / 1e6;
    let gbits = |d: Duration| size as f64 * 8.0 / d.as_secs_f64() / 1e9;
    println!(
        "forward throughput ({} MiB, {}): upload {:.0} MB/s ({:.2} Gbit/s), download {:.0} MB/s \
         ({:.2} Gbit/s), upload without the opener's local hop {:.0} MB/s ({:.2} Gbit/s)",
        size >> 20,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        mbps(upload),
        gbits(upload),
        mbps(download),
        gbits(download),
        mbps(direct),
        gbits(direct),
    );
    println!("provider stats: {stats:?}");
}

#[test]
fn public_types_are_usable_across_tasks() {
    fn io<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static>() {}
    fn shared<T: Clone + Send + Sync + 'static>() {}
    io::<Tunnel>();
    shared::<Stats>();
    shared::<ServerConfig>();
    shared::<Refusal>();
    fn error<T: std::error::Error + Send + Sync + 'static>() {}
    error::<OpenError>();
    error::<ServeError>();
}

/// A provider that drops the first `drops` streams without answering (as mcc-streams does beyond
/// the acceptor's queue and holding room), then answers ok and echoes.
fn dropping_provider(net: &mut Net, drops: usize) {
    let mut incoming = net.server.accept(PROTOCOL_NAME).unwrap();
    tokio::spawn(async move {
        let mut seen = 0;
        while let Some((_, stream)) = incoming.next().await {
            seen += 1;
            if seen <= drops {
                drop(stream);
                continue;
            }
            tokio::spawn(async move {
                let mut stream = stream.compat();
                let mut request = [0u8; 2];
                stream.read_exact(&mut request).await.unwrap();
                let mut name = vec![0u8; usize::from(request[1])];
                stream.read_exact(&mut name).await.unwrap();
                stream.write_all(&[0, 0, 0]).await.unwrap();
                let (mut reader, mut writer) = tokio::io::split(stream);
                tokio::io::copy(&mut reader, &mut writer).await.unwrap();
                writer.shutdown().await.unwrap();
            });
        }
    });
}

#[tokio::test]
async fn dropped_streams_are_retried() {
    let mut net = net().await;
    dropping_provider(&mut net, 2);
    let tunnel = mcc_forward::open(&mut net.client, net.server_peer, "echo", TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        within(10, round_trip(tunnel, b"third time".to_vec())).await,
        b"third time"
    );
}

#[tokio::test]
async fn retries_are_bounded() {
    let mut net = net().await;
    dropping_provider(&mut net, usize::MAX);
    let result = mcc_forward::open(&mut net.client, net.server_peer, "echo", TIMEOUT).await;
    assert!(matches!(result, Err(OpenError::Handshake(_))), "{result:?}");
}

/// A provider and two openers (distinct peers), all connected to the provider.
struct Net3 {
    first: Control,
    second: Control,
    server: Control,
    server_peer: PeerId,
}

async fn net3() -> Net3 {
    init_logging();
    let mut first = Swarm::new_ephemeral_tokio(|_| mcc_streams::Behaviour::default());
    let mut second = Swarm::new_ephemeral_tokio(|_| mcc_streams::Behaviour::default());
    let mut server = Swarm::new_ephemeral_tokio(|_| mcc_streams::Behaviour::default());
    server.listen().with_memory_addr_external().await;
    first.connect(&mut server).await;
    second.connect(&mut server).await;
    let net = Net3 {
        first: first.behaviour().control(),
        second: second.behaviour().control(),
        server: server.behaviour().control(),
        server_peer: *server.local_peer_id(),
    };
    tokio::spawn(first.loop_on_next());
    tokio::spawn(second.loop_on_next());
    tokio::spawn(server.loop_on_next());
    net
}

fn busy_message(result: Result<Tunnel, OpenError>) -> String {
    match result {
        Err(OpenError::Refused {
            code: Refusal::Busy,
            message,
        }) => message,
        other => panic!("expected a busy refusal, got {other:?}"),
    }
}

/// Writes `bytes` and reads them back from an echoing tunnel.
async fn echo_once(tunnel: &mut Tunnel, bytes: &[u8]) {
    tunnel.write_all(bytes).await.unwrap();
    let mut back = vec![0u8; bytes.len()];
    within(10, tunnel.read_exact(&mut back)).await.unwrap();
    assert_eq!(back, bytes);
}

/// One peer holding its quota of idle tunnels is refused busy, with the limit in the message;
/// another peer still gets tunnels; the global limit still applies to all together.
#[tokio::test]
async fn per_peer_quota_leaves_room_for_others() {
    let mut net = net3().await;
    let echo = echo_server().await;
    let config = ServerConfig::default()
        .with_max_per_peer(3)
        .with_max_concurrent(5);
    let stats = {
        let stats = Stats::default();
        tokio::spawn(mcc_forward::serve(
            net.server.clone(),
            table(&[("echo", echo.to_string())]),
            config,
            stats.clone(),
        ));
        stats
    };

    // The first peer opens its quota of tunnels and keeps them idle.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            mcc_forward::open(&mut net.first, net.server_peer, "echo", TIMEOUT)
                .await
                .unwrap(),
        );
    }
    let message =
        busy_message(mcc_forward::open(&mut net.first, net.server_peer, "echo", TIMEOUT).await);
    assert!(
        message.contains("this peer already has 3 tunnels open") && message.contains("3 per peer"),
        "{message}"
    );

    // The second peer still gets through, twice (5 in all).
    let mut second = Vec::new();
    for i in 0..2u8 {
        let mut tunnel = mcc_forward::open(&mut net.second, net.server_peer, "echo", TIMEOUT)
            .await
            .unwrap();
        echo_once(&mut tunnel, &[b'b', i]).await;
        second.push(tunnel);
    }
    assert_eq!(stats.active(), 5);

    // Now the global limit is reached: the second peer is refused too, naming that limit.
    let message =
        busy_message(mcc_forward::open(&mut net.second, net.server_peer, "echo", TIMEOUT).await);
    assert!(message.contains("too many tunnels"), "{message}");
    assert!(message.contains("at most 5"), "{message}");

    // The first peer's held tunnels still work.
    for (i, tunnel) in held.iter_mut().enumerate() {
        echo_once(tunnel, &[b'a', i as u8]).await;
    }

    // A closed tunnel frees its place for its own peer.
    drop(held.pop());
    let mut again = None;
    for _ in 0..100 {
        match mcc_forward::open(&mut net.first, net.server_peer, "echo", TIMEOUT).await {
            Ok(tunnel) => {
                again = Some(tunnel);
                break;
            }
            Err(OpenError::Refused {
                code: Refusal::Busy,
                ..
            }) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    let mut again = again.expect("the place of the closed tunnel was never freed");
    echo_once(&mut again, b"again").await;
}

/// An echo server that reports each connection's end (EOF or error from the provider side).
async fn reporting_echo_server() -> (SocketAddr, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (report, reports) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let report = report.clone();
            tokio::spawn(async move {
                let (mut reader, mut writer) = socket.into_split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
                let _ = writer.shutdown().await;
                let _ = report.send(());
            });
        }
    });
    (addr, reports)
}

/// A tunnel through which nothing passes is closed at both ends after the idle timeout; a
/// tunnel in use stays open well past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_tunnels_are_closed() {
    let mut net = net().await;
    let (echo, mut ends) = reporting_echo_server().await;
    let idle = Duration::from_millis(600);
    let stats = start(
        &net,
        table(&[("echo", echo.to_string())]),
        ServerConfig::default().with_idle_timeout(Some(idle)),
    );

    let mut quiet = mcc_forward::open(&mut net.client, net.server_peer, "echo", TIMEOUT)
        .await
        .unwrap();
    let mut busy = mcc_forward::open(&mut net.client, net.server_peer, "echo", TIMEOUT)
        .await
        .unwrap();
    echo_once(&mut quiet, b"one exchange, then silence").await;
    let opened = Instant::now();

    // The busy tunnel exchanges a few bytes every 100 ms for four idle timeouts.
    let mut i = 0u32;
    while opened.elapsed() < idle * 4 {
        echo_once(&mut busy, &i.to_be_bytes()).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The quiet one was closed: the opener reads the end, the local service saw its
    // connection closed, and only one tunnel is active.
    let mut rest = Vec::new();
    let _ = within(5, quiet.read_to_end(&mut rest)).await;
    assert!(rest.is_empty(), "{rest:?}");
    within(5, ends.recv()).await.unwrap();
    assert_eq!(stats.active(), 1);

    // The busy one still works.
    echo_once(&mut busy, b"still open").await;
    assert!(
        ends.try_recv().is_err(),
        "the busy tunnel's service connection was closed"
    );
}
