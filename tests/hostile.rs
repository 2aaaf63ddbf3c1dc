//! Hostile peers against a real daemon (issue #13, part 4): a peer opening 1,000 connections,
//! a peer opening 10,000 streams, oversized and endless frames on every protocol and on raw
//! TCP, and stalls mid-message (slowloris).
//!
//! In each case the victim must stay responsive, its memory bounded and the abuser cut off:
//! - responsive: the victim's echo RPC to a good peer (through the victim's REST API, so the
//!   API, the event loop and the connection all count) has a p99 during the attack within
//!   3 × the idle p99, with a 50 ms floor: this 2-core machine is shared, and an idle p99 of
//!   a few ms would otherwise fail on scheduler noise. For the same reason an attack whose p99
//!   misses is run once more (fresh abuser) before it counts; every other check holds on each
//!   run. The abuser runs at the lowest CPU priority: its own handshakes are not the victim's;
//! - memory: the victim's VmRSS (from /proc) stays under [`RSS_CAP_KIB`];
//! - cut off: connections over the per-peer cap are closed, the stream flood ends with the
//!   connection closed, floods end with the stream closed or stalled after a bounded number of
//!   bytes, stalled streams and raw sockets are closed by the victim's timeouts.
//!
//! The numbers are printed (`cargo test --test hostile -- --nocapture`; `HOSTILE_LOG=1` also
//! prints the victim's log).

mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use common::Daemon;
use common::abuser::{self, Abuser, Conn};
use futures::AsyncWriteExt as _;
use libp2p::Multiaddr;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Memory the victim may reach during any attack.
const RSS_CAP_KIB: u64 = 512 * 1024;
/// The floor of the latency budget.
const P99_FLOOR: Duration = Duration::from_millis(50);
/// The victim's per-peer connection cap, set explicitly so the test does not depend on the
/// default.
const PER_PEER: usize = 4;
/// Bytes a flood may push into a protocol before it is cut off or stalls: the largest frame
/// any mcc protocol accepts (a blob block, 1 MiB + 64 KiB) plus yamux's 256 KiB window.
const FLOOD_CAP: u64 = 2 * 1024 * 1024;

/// Every protocol a peer can reach on an mcc node (the stream one needs a listener).
const PROTOCOLS: &[&str] = &[
    "/mcc/rpc/1.0.0",
    "/mcc/forward/1.0.0",
    "/mcc/blobs/1.0.0",
    "/mcc/cert/1.0.0",
    "/mcc/pex/1.0.0",
    "/mcc/routes/1.0.0",
    "/ipfs/kad/1.0.0",
    "/mcc/stream/1.0.0/chat",
];

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let i = (samples.len() * 99).div_ceil(100).saturating_sub(1);
    samples.get(i).copied().unwrap_or_default()
}

struct Victim {
    node: Daemon,
    good: Daemon,
    good_id: String,
    pid: u32,
    addr: Multiaddr,
}

/// What one attack did to the victim.
struct Outcome {
    p99: Duration,
    samples: usize,
    rss_max_kib: u64,
    report: String,
}

impl Victim {
    async fn echo(&self) -> Result<Duration> {
        let t = Instant::now();
        self.node.api.echo("ping", Some(&self.good_id)).await?;
        Ok(t.elapsed())
    }

    /// Runs `attack` while echoing to the good peer back to back (at least 50 samples). The
    /// echoes run on a thread and runtime of their own, so the abuser's tasks in this process
    /// do not delay them; the abuser runs as an outsider (see [`run_as_outsider`]).
    async fn during<F>(&self, attack: F) -> Result<Outcome>
    where
        F: Future<Output = Result<String>> + Send,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (api, good, pid, stop) = (
                self.node.api.clone(),
                self.good_id.clone(),
                self.pid,
                stop.clone(),
            );
            std::thread::spawn(move || -> Result<(Vec<Duration>, u64)> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    let (mut samples, mut rss_max) = (Vec::new(), rss_kib(pid));
                    while !stop.load(Ordering::SeqCst) || samples.len() < 50 {
                        let t = Instant::now();
                        api.echo("ping", Some(&good)).await?;
                        samples.push(t.elapsed());
                        rss_max = rss_max.max(rss_kib(pid));
                    }
                    Ok((samples, rss_max))
                })
            })
        };
        let report = tokio::task::block_in_place(|| run_as_outsider(attack));
        stop.store(true, Ordering::SeqCst);
        let report = report?;
        let (samples, rss_max_kib) = tokio::task::spawn_blocking(move || sampler.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the echo thread panicked"))??;
        Ok(Outcome {
            samples: samples.len(),
            p99: p99(samples),
            rss_max_kib,
            report: report?,
        })
    }
}

/// Runs `attack` on threads and a runtime of its own at the lowest CPU priority (nice 19).
/// A real abuser brings its own machine; here it shares two cores with the victim, and the
/// CPU of its own 1,000 handshakes would otherwise be measured as the victim's latency (a CI
/// run missed the budget by 15 ms that way). The victim still does all of its own work.
fn run_as_outsider<T: Send>(attack: impl Future<Output = T> + Send) -> Result<T> {
    fn lowest_priority() {
        // On Linux, PRIO_PROCESS with 0 is the calling thread only.
        // SAFETY: setpriority reads no memory of ours; a failure leaves the priority as is.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, 0, 19);
        }
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            lowest_priority();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .on_thread_start(lowest_priority)
                .build()?;
            Ok(rt.block_on(attack))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the abuser's thread panicked"))?
    })
}

async fn victim() -> Result<Victim> {
    let per_peer = PER_PEER.to_string();
    let node = Daemon::start(&["--max-connections-per-peer", &per_peer]).await?;
    let hp = node.tcp_host_port().await?;
    let good = Daemon::start(&["--boot", &hp]).await?;
    let good_id = good.peer_id().await?;
    let pid = node.child.as_ref().context("victim not running")?.id();
    let addr: Multiaddr = mcc::node::addr::parse_dial(&hp)?;
    let v = Victim {
        node,
        good,
        good_id,
        pid,
        addr,
    };
    common::wait_until(20, "the good peer connected", || async {
        Ok(v.echo().await.is_ok())
    })
    .await?;
    Ok(v)
}

/// 1,000 connections from one identity at once: at most `PER_PEER` stay open.
async fn connection_flood(addr: &Multiaddr) -> Result<String> {
    let mut abuser = Abuser::new()?;
    let dials = (0..1000)
        .map(|_| abuser.dial(addr))
        .collect::<Result<Vec<_>>>()?;
    let conns: Vec<Conn> = futures::future::join_all(dials)
        .await
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    let handshakes = conns.len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let open = conns.iter().filter(|c| !c.is_closed()).count();
    ensure!(
        open <= PER_PEER,
        "{open} of 1000 connections of one peer stayed open (cap {PER_PEER})"
    );
    Ok(format!(
        "1000 dials: {handshakes} finished the handshake, {open} stayed open"
    ))
}

/// 10,000 streams on one connection, each proposing rpc and then silent: the victim closes
/// the connection (yamux's stream cap) or drops the streams.
async fn stream_flood(addr: &Multiaddr) -> Result<String> {
    let conn = Abuser::new()?.connect(addr).await?;
    let mut streams = Vec::new();
    let mut refused = 0;
    for _ in 0..10_000 {
        if conn.is_closed() {
            break;
        }
        let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(2), conn.stream()).await
        else {
            refused += 1;
            break;
        };
        if abuser::propose(&mut s, "/mcc/rpc/1.0.0").await.is_err() {
            refused += 1;
        }
        streams.push(s);
    }
    let opened = streams.len();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !conn.is_closed() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(
        conn.is_closed(),
        "the victim kept a connection with {opened} streams open"
    );
    Ok(format!(
        "{opened} streams opened ({refused} refused) before the victim closed the connection"
    ))
}

/// 0xff bytes (a huge length, then an endless frame) on every protocol, one connection each.
async fn frame_floods(addr: &Multiaddr) -> Result<String> {
    let floods = PROTOCOLS.iter().map(|p| async move {
        let conn = Abuser::new()?.connect(addr).await?;
        let mut s = abuser::open_protocol(&conn, p).await?;
        let mut f = abuser::flood(&mut s, Duration::from_secs(3)).await;
        // A victim that stopped reading may also have closed its side: it ignores the rest.
        if !f.cut_off {
            f.cut_off = abuser::closed_within(&mut s, Duration::from_millis(500)).await;
        }
        anyhow::Ok((*p, f, conn.is_closed()))
    });
    let mut lines = Vec::new();
    for r in futures::future::join_all(floods).await {
        let (p, f, conn_closed) = r?;
        // A user stream is the application's pipe: its bytes are data, read at the
        // listener's pace; only memory and latency count there.
        if !p.starts_with("/mcc/stream/") {
            ensure!(
                f.cut_off || f.written <= FLOOD_CAP,
                "{p}: the victim read {} bytes of an endless frame",
                f.written
            );
        }
        lines.push(format!(
            "  {p}: {} KiB in, {}{}",
            f.written / 1024,
            if f.cut_off {
                "stream closed"
            } else {
                "stalled"
            },
            if conn_closed {
                ", connection closed"
            } else {
                ""
            }
        ));
    }
    Ok(format!("floods:\n{}", lines.join("\n")))
}

/// Garbage on a raw TCP connection, and 300 silent raw sockets (over the pending-incoming
/// cap): all closed, the silent ones by the 10 s handshake timeout.
async fn raw_tcp(addr: std::net::SocketAddr) -> Result<String> {
    let mut garbage = tokio::net::TcpStream::connect(addr).await?;
    let junk = vec![0xffu8; 64 * 1024];
    let mut sent = 0usize;
    let mut cut = false;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), garbage.write_all(&junk)).await {
            Ok(Ok(())) => sent += junk.len(),
            Ok(Err(_)) => {
                cut = true;
                break;
            }
            Err(_) => {}
        }
    }
    if !cut {
        let mut buf = [0u8; 1024];
        cut = matches!(
            tokio::time::timeout(Duration::from_secs(2), garbage.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        );
    }
    ensure!(cut, "a raw TCP connection sending garbage was not closed");

    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(tokio::net::TcpStream::connect(addr).await?);
    }
    let started = Instant::now();
    let mut open = silent.len();
    let mut closed_early = 0;
    let mut buf = [0u8; 1024];
    while open > 0 && started.elapsed() < Duration::from_secs(15) {
        open = 0;
        for s in &silent {
            match s.try_read(&mut buf) {
                Ok(0) => {}
                Ok(_) => open += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
                Err(_) => {}
            }
        }
        if started.elapsed() < Duration::from_secs(2) {
            closed_early = silent.len() - open;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ensure!(open == 0, "{open} silent raw sockets still open after 15 s");
    Ok(format!(
        "raw TCP: garbage cut after {} KiB; 300 silent sockets: {closed_early} closed within 2 s, \
         all within {:.1} s",
        sent / 1024,
        started.elapsed().as_secs_f64()
    ))
}

/// The first bytes of a request on each protocol, never completed: (protocol, bytes, whether
/// the victim must close the stream within 15 s). Streams without a request timeout are
/// bounded by their protocol's streams per connection instead: routes 2 (long-lived by
/// design), kad 32, blobs 8 per peer (closed after 120 s of silence).
const STALLS: &[(&str, &[u8], bool)] = &[
    ("/mcc/rpc/1.0.0", b"{\"method\":", true),
    ("/mcc/forward/1.0.0", &[1, 10, b'a', b'b'], true),
    ("/mcc/blobs/1.0.0", &[1, 0], false),
    ("/mcc/cert/1.0.0", &[0, 0], true),
    ("/mcc/pex/1.0.0", &[0, 0], true),
    ("/mcc/routes/1.0.0", &[0x80], false),
    ("/ipfs/kad/1.0.0", &[0x80], false),
];

/// A partial request, then silence, on every protocol (a user stream is the application's
/// pipe: what it waits for is its business).
async fn stalls(addr: &Multiaddr) -> Result<String> {
    let stalls = STALLS.iter().map(|(p, bytes, _)| async move {
        let conn = Abuser::new()?.connect(addr).await?;
        let mut s = abuser::open_protocol(&conn, p).await?;
        s.write_all(bytes).await?;
        s.flush().await?;
        let t = Instant::now();
        let closed = abuser::closed_within(&mut s, Duration::from_secs(15)).await;
        anyhow::Ok(closed.then(|| t.elapsed()))
    });
    let mut lines = Vec::new();
    for (r, (p, _, must_close)) in futures::future::join_all(stalls)
        .await
        .into_iter()
        .zip(STALLS)
    {
        let closed = r?;
        ensure!(
            closed.is_some() || !must_close,
            "{p}: a stalled request was not closed within 15 s"
        );
        lines.push(match closed {
            Some(d) => format!("  {p}: closed after {:.1} s", d.as_secs_f64()),
            None => format!("  {p}: still open after 15 s"),
        });
    }
    Ok(format!("stalls:\n{}", lines.join("\n")))
}

type AttackFn = for<'a> fn(
    &'a Multiaddr,
    std::net::SocketAddr,
) -> std::pin::Pin<Box<dyn Future<Output = Result<String>> + Send + 'a>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_are_cut_off_and_the_node_stays_responsive() -> Result<()> {
    let v = victim().await?;
    // A listener for the user stream protocol, so floods reach it too.
    let _listener = tokio::process::Command::new(common::BIN)
        .arg("--data-folder")
        .arg(&v.node.dir)
        .args(["stream", "listen", "chat"])
        .env_remove("MCC_API")
        .env_remove("MCC_DATA_FOLDER")
        .env_remove("MCC_API_TOKEN")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let sock = mcc::node::addr::host_port(&v.addr).context("victim address")?;

    // The idle baseline, measured as the attacks are: 3 s of back-to-back echoes.
    let idle = v
        .during(async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(String::new())
        })
        .await?;
    let idle_p99 = idle.p99;
    let budget = (idle_p99 * 3).max(P99_FLOOR);
    println!(
        "idle: echo p99 {:.1} ms over {} calls (budget {:.1} ms), RSS {} MiB",
        idle_p99.as_secs_f64() * 1e3,
        idle.samples,
        budget.as_secs_f64() * 1e3,
        idle.rss_max_kib / 1024
    );

    let mut failures = Vec::new();
    let attacks: [(&str, AttackFn); 5] = [
        ("1,000 connections", |a, _| Box::pin(connection_flood(a))),
        ("10,000 streams", |a, _| Box::pin(stream_flood(a))),
        ("endless frames", |a, _| Box::pin(frame_floods(a))),
        ("raw TCP", |_, s| Box::pin(raw_tcp(s))),
        ("stalled frames", |a, _| Box::pin(stalls(a))),
    ];
    for (name, attack) in attacks {
        // The machine is shared: a latency miss is measured once more with a fresh abuser
        // before it counts. Every other check must hold on each run.
        for attempt in 1..=2 {
            let o = match v.during(attack(&v.addr, sock)).await {
                Ok(o) => o,
                Err(e) => {
                    failures.push(format!("{name}: {e:#}"));
                    break;
                }
            };
            println!(
                "{name} (run {attempt}): echo p99 {:.1} ms over {} calls, RSS max {} MiB\n  {}",
                o.p99.as_secs_f64() * 1e3,
                o.samples,
                o.rss_max_kib / 1024,
                o.report
            );
            if o.rss_max_kib > RSS_CAP_KIB {
                failures.push(format!("{name}: RSS {} KiB", o.rss_max_kib));
            }
            if o.p99 <= budget {
                break;
            }
            if attempt == 2 {
                failures.push(format!(
                    "{name}: echo p99 {:?} over the budget {budget:?} twice",
                    o.p99
                ));
            }
        }
    }
    if std::env::var("HOSTILE_LOG").is_ok() {
        for l in v
            .node
            .log()
            .lines()
            .filter(|l| !l.contains("DEBUG"))
            .take(200)
        {
            println!("LOG {l}");
        }
    }
    // Still serving after it all.
    v.echo().await?;
    ensure!(v.good.api.node().await.is_ok(), "the good peer is gone");
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// A node at its connection cap (`--max-connections 1`, taken by a stranger) still connects to
/// a peer pinned as persistent: persistent peers bypass the caps.
#[tokio::test(flavor = "multi_thread")]
async fn persistent_peers_bypass_the_connection_cap() -> Result<()> {
    let victim = Daemon::start(&["--max-connections", "1", "--max-peers", "1"]).await?;
    let hp = victim.tcp_host_port().await?;
    let stranger = Daemon::start(&["--boot", &hp]).await?;
    let stranger_id = stranger.peer_id().await?;
    let connected = |d: &Daemon, id: String| {
        let api = d.api.clone();
        async move {
            Ok(api
                .peers()
                .await?
                .iter()
                .any(|p| p.peer_id.to_string() == id))
        }
    };
    common::wait_until(20, "the stranger connected", || {
        connected(&victim, stranger_id.clone())
    })
    .await?;

    let friend = Daemon::start(&[]).await?;
    let friend_addr = format!(
        "/ip4/127.0.0.1/tcp/{}/p2p/{}",
        mcc::node::addr::host_port(&mcc::node::addr::parse_dial(
            &friend.tcp_host_port().await?
        )?)
        .context("friend address")?
        .port(),
        friend.peer_id().await?
    );
    let friend_id = friend.peer_id().await?;
    // A plain dial is refused: the cap is full.
    ensure!(
        victim.api.dial(&friend_addr).await.is_err()
            || !connected(&victim, friend_id.clone()).await?,
        "a dial past --max-connections 1 succeeded"
    );
    victim.api.pin(&friend_addr, true).await?;
    common::wait_until(20, "the pinned peer connected past the cap", || {
        connected(&victim, friend_id.clone())
    })
    .await?;
    Ok(())
}
