//! Single-stream TCP throughput and connection-setup latency of a forwarded port: two mcc nodes
//! (local listener → tunnel → service) over TCP and over QUIC, side by side with direct loopback
//! TCP and `ssh -L`, all measured in the same run on 127.0.0.1.
//!
//! ```text
//! cargo bench --bench forward                  # full run: 1 GiB per transfer, 3 runs per row
//! cargo bench --bench forward -- --quick       # smoke run (or MCC_BENCH_QUICK=1)
//! cargo test  --bench forward -- --quick       # the same in a debug build (CI)
//! cargo bench --bench forward -- quic          # direct TCP plus the rows whose name has "quic"
//! cargo bench --bench forward -- --mib 256 --runs 5 --conns 500
//! ```
//!
//! One service runs in this process on `127.0.0.1:0` (tokio TCP). A connection starts with one
//! mode byte:
//! * `U` (upload): the service reads until EOF and answers the byte count (u64, big endian); the
//!   client writes N bytes, shuts its write side down and stops the clock at the count;
//! * `D` + N (u64): the service writes N bytes and closes; the client reads until EOF;
//! * `P` (ping): the service answers one byte at once; the client measures from the start of
//!   `TcpStream::connect` to that byte: the setup latency of a new forwarded connection.
//!
//! Rows (each one a TCP address the client connects to):
//! * `direct TCP`: the service itself (the baseline, always measured);
//! * `ssh -L chacha20`, `ssh -L aes128-gcm`: a private `sshd` on a free 127.0.0.1 port (temporary
//!   host and client keys, `sshd -D -e -f <temp config>`) and one `ssh -N -L` per cipher
//!   (`chacha20-poly1305@openssh.com`, `aes128-gcm@openssh.com`). Skipped with a note when `sshd`
//!   or `ssh` is not installed (the bench installs nothing); when run as root, sshd's privilege
//!   separation directory `/run/sshd` is created if missing. Both processes are killed at the end
//!   and on every error path (`kill_on_drop`);
//! * `mcc/TCP`, `mcc/QUIC`: two full `mcc::Node`s in this process, each listening only on
//!   `/ip4/127.0.0.1/tcp/0` (resp. `/ip4/127.0.0.1/udp/0/quic-v1`), B dialing A. A provides the
//!   service as `sink`; once `B.providers("sink")` lists A, B runs a listener for `sink` on a free
//!   127.0.0.1 port (no pinned peer: the listener finds the provider as users' listeners do).
//!
//! All rows are set up first and stay up together. Each row then does `--runs` uploads and
//! downloads of `--mib` MiB, round-robin across the rows (run 1 of every row, then run 2, ...: a
//! change in the machine's load hits all rows alike); the table shows the medians. No further
//! round starts when it would likely end past [`Plan::budget`]. Then, after two warm-up
//! connections per row, `--conns` sequential pings per row, again round-robin. Every transfer,
//! ping and setup step is capped; the load average at the start is printed, and a note warns
//! when the machine was already busy.
//! `MCC_BENCH_THREADS` sets the tokio worker threads (default: all CPUs; the ssh processes run
//! outside the runtime, on the same CPUs). `RUST_LOG` turns on the nodes' logs.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use common::{capped, median, positive, ratio};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use mcc::node::MdnsMode;
use mcc::{Config, Node};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Size of the copy buffers of the client and the service.
const CHUNK: usize = 256 * 1024;
/// Name of the service in the mcc rows.
const SERVICE: &str = "sink";
/// Issue's goal: mcc at least as fast as `ssh -L` with this cipher (the row `CIPHERS[1]`).
const GOAL_CIPHER: &str = "aes128-gcm@openssh.com";
/// Ciphers of the `ssh -L` rows: (row name, cipher).
const CIPHERS: [(&str, &str); 2] = [
    ("ssh -L chacha20", "chacha20-poly1305@openssh.com"),
    ("ssh -L aes128-gcm", GOAL_CIPHER),
];
/// Issue's goal: a new forwarded connection's setup p50 at most this many times ssh's.
const SETUP_GOAL: f64 = 1.5;
/// Pings before the measured ones (the first connection may wait for a provider lookup).
const WARMUP_PINGS: usize = 2;
/// Cap on one ping (connect → first byte).
const PING_CAP: Duration = Duration::from_secs(5);
/// Cap on each setup step: starting a node, dialing, finding the provider, starting ssh.
const SETUP_CAP: Duration = Duration::from_secs(15);
/// How long a node gets to stop.
const STOP_CAP: Duration = Duration::from_secs(10);

/// How much to measure.
#[derive(Debug, Clone)]
struct Plan {
    quick: bool,
    /// Substrings selecting the rows to run besides direct TCP (all when empty).
    filters: Vec<String>,
    threads: usize,
    /// Bytes per transfer.
    bytes: u64,
    /// Uploads and downloads per row.
    runs: usize,
    /// Measured pings per row.
    conns: usize,
    /// Cap on one transfer.
    transfer_cap: Duration,
    /// No further round of transfers starts if it would likely end after this long.
    budget: Duration,
    /// Cap on the pings of all rows.
    ping_phase_cap: Duration,
}

impl Plan {
    fn from_args() -> Result<Self> {
        let mut quick = common::quick_from_env();
        let (mut mib, mut runs, mut conns) = (None, None, None);
        let mut filters = Vec::new();
        common::for_each_arg(|flag, value| {
            match flag {
                "--quick" => quick = true,
                "--mib" => mib = Some(positive(flag, &value()?)?),
                "--runs" => runs = Some(positive(flag, &value()?)?),
                "--conns" => conns = Some(positive(flag, &value()?)?),
                other if other.starts_with('-') => bail!(
                    "unknown argument {other:?} (known: --quick, --mib N, --runs N, --conns N, \
                     and words selecting rows: ssh, chacha, aes, mcc, tcp, quic)"
                ),
                _ => filters.push(flag.to_lowercase()),
            }
            Ok(())
        })?;
        let threads = common::threads(common::cores())?;
        let mib = mib.unwrap_or(if quick { 16 } else { 1024 });
        Ok(Self {
            quick,
            filters,
            threads,
            bytes: u64::try_from(mib)? << 20,
            runs: runs.unwrap_or(if quick { 1 } else { 3 }),
            conns: conns.unwrap_or(if quick { 20 } else { 200 }),
            transfer_cap: if quick {
                Duration::from_secs(30)
            } else {
                Duration::from_secs(60)
            },
            budget: if quick {
                Duration::from_secs(10)
            } else {
                Duration::from_secs(110)
            },
            ping_phase_cap: if quick {
                Duration::from_secs(5)
            } else {
                Duration::from_secs(20)
            },
        })
    }

    /// Whether the row runs: no filter, or a filter matching its name.
    fn selects(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }
}

/// A free TCP port on 127.0.0.1 (free when this returns; someone else could take it after).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

// ---------------------------------------------------------------------------------------------
// The service and its clients

/// Deterministic pseudo-random bytes (xorshift64*), so that nothing on the way can compress them.
fn pattern(len: usize) -> Arc<[u8]> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out.into()
}

/// Starts the service on 127.0.0.1:0; it runs until the runtime stops.
async fn start_service(payload: Arc<[u8]>) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let payload = payload.clone();
            tokio::spawn(async move {
                if let Err(e) = serve(socket, &payload).await {
                    tracing::debug!("service connection: {e}");
                }
            });
        }
    });
    Ok(addr)
}

async fn serve(mut socket: TcpStream, payload: &[u8]) -> Result<()> {
    socket.set_nodelay(true)?;
    let mut mode = [0u8; 1];
    if socket.read(&mut mode).await? == 0 {
        // A readiness probe.
        return Ok(());
    }
    match mode[0] {
        b'U' => {
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0u64;
            loop {
                let n = socket.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            socket.write_all(&total.to_be_bytes()).await?;
            socket.shutdown().await?;
        }
        b'D' => {
            let mut left = socket.read_u64().await?;
            while left > 0 {
                let n = payload
                    .len()
                    .min(usize::try_from(left).unwrap_or(usize::MAX));
                socket.write_all(&payload[..n]).await?;
                left -= n as u64;
            }
            socket.shutdown().await?;
        }
        b'P' => {
            socket.write_all(b"!").await?;
            let mut rest = Vec::new();
            socket.read_to_end(&mut rest).await?;
        }
        other => bail!("unknown mode byte {other}"),
    }
    Ok(())
}

/// Connects with `TCP_NODELAY`, as the listeners and the forwarding server do.
async fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends `bytes` to the service; the time from connect until the service confirmed the count.
async fn upload(addr: SocketAddr, bytes: u64, payload: &[u8]) -> Result<Duration> {
    let start = Instant::now();
    let mut s = connect(addr).await?;
    s.write_all(b"U").await?;
    let mut left = bytes;
    while left > 0 {
        let n = payload
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        s.write_all(&payload[..n]).await?;
        left -= n as u64;
    }
    s.shutdown().await?;
    let got = s.read_u64().await.context("reading the byte count")?;
    let elapsed = start.elapsed();
    ensure!(
        got == bytes,
        "the service received {got} bytes, not {bytes}"
    );
    Ok(elapsed)
}

/// Receives `bytes` from the service; the time from connect until EOF.
async fn download(addr: SocketAddr, bytes: u64) -> Result<Duration> {
    let start = Instant::now();
    let mut s = connect(addr).await?;
    let mut request = [0u8; 9];
    request[0] = b'D';
    request[1..].copy_from_slice(&bytes.to_be_bytes());
    s.write_all(&request).await?;
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    let elapsed = start.elapsed();
    ensure!(got == bytes, "received {got} bytes, not {bytes}");
    Ok(elapsed)
}

/// A new connection: time from the start of `connect` to the service's first byte.
async fn ping(addr: SocketAddr) -> Result<Duration> {
    let start = Instant::now();
    let mut s = connect(addr).await?;
    s.write_all(b"P").await?;
    let mut answer = [0u8; 1];
    s.read_exact(&mut answer)
        .await
        .context("waiting for the first byte")?;
    let elapsed = start.elapsed();
    ensure!(answer == *b"!", "unexpected answer {answer:?}");
    Ok(elapsed)
}

// ---------------------------------------------------------------------------------------------
// Measuring

/// What one row shows.
struct Row {
    name: &'static str,
    /// Gbit/s of each upload run.
    up: Vec<f64>,
    /// Gbit/s of each download run.
    down: Vec<f64>,
    /// Sorted ping durations.
    pings: Vec<Duration>,
    notes: Vec<String>,
}

impl Row {
    fn up(&self) -> f64 {
        median(&self.up)
    }

    fn down(&self) -> f64 {
        median(&self.down)
    }
}

fn gbits(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e9
}

/// Nearest-rank percentile of sorted, non-empty samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A TCP address to measure through.
struct Target {
    name: &'static str,
    addr: SocketAddr,
}

/// Transfers and pings through every target, round-robin: run `k` of every target before run
/// `k + 1` of any, so that a change in the machine's load hits all rows alike.
async fn measure_all(targets: &[Target], plan: &Plan, payload: &[u8]) -> Result<Vec<Row>> {
    let mut rows: Vec<Row> = targets
        .iter()
        .map(|t| Row {
            name: t.name,
            up: Vec::new(),
            down: Vec::new(),
            pings: Vec::new(),
            notes: Vec::new(),
        })
        .collect();
    let mut notes = Vec::new();
    let start = Instant::now();
    let mut last_round = Duration::ZERO;
    for run in 1..=plan.runs {
        if run > 1 && start.elapsed() + last_round > plan.budget {
            notes.push(format!(
                "throughput: {} of {} runs (the next would end past the {:?} budget)",
                run - 1,
                plan.runs,
                plan.budget
            ));
            break;
        }
        let round = Instant::now();
        for (t, row) in targets.iter().zip(&mut rows) {
            let elapsed = capped(
                plan.transfer_cap,
                "upload",
                upload(t.addr, plan.bytes, payload),
            )
            .await
            .with_context(|| format!("{}: upload {run}", t.name))?;
            row.up.push(gbits(plan.bytes, elapsed));
            let elapsed = capped(plan.transfer_cap, "download", download(t.addr, plan.bytes))
                .await
                .with_context(|| format!("{}: download {run}", t.name))?;
            row.down.push(gbits(plan.bytes, elapsed));
        }
        last_round = round.elapsed();
    }

    for t in targets {
        for i in 1..=WARMUP_PINGS {
            capped(PING_CAP, "ping", ping(t.addr))
                .await
                .with_context(|| format!("{}: warm-up connection {i}", t.name))?;
        }
    }
    let deadline = Instant::now() + plan.ping_phase_cap;
    let mut done = 0;
    while done < plan.conns && Instant::now() < deadline {
        done += 1;
        for (t, row) in targets.iter().zip(&mut rows) {
            let elapsed = capped(PING_CAP, "ping", ping(t.addr))
                .await
                .with_context(|| format!("{}: connection {done}", t.name))?;
            row.pings.push(elapsed);
        }
    }
    if done < plan.conns {
        notes.push(format!(
            "connection setup: {done} of {} connections per row (time cap {:?})",
            plan.conns, plan.ping_phase_cap
        ));
    }
    for row in &mut rows {
        row.pings.sort_unstable();
    }
    if let Some(first) = rows.first_mut() {
        first.notes.extend(notes);
    }
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// ssh -L

/// An executable in `PATH` or in the usual sbin folders, by absolute path (sshd insists).
fn find_program(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    dirs.into_iter()
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The last lines of a log file, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    if tail.is_empty() {
        "no output".to_string()
    } else {
        tail
    }
}

/// Waits until `port` on 127.0.0.1 accepts a connection, failing early if `child` exits.
async fn wait_accepting(child: &mut Child, port: u16, log: &Path, what: &str) -> Result<()> {
    let deadline = Instant::now() + SETUP_CAP;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited ({status}): {}", log_tail(log));
        }
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{what} did not accept on 127.0.0.1:{port} within {SETUP_CAP:?}: {}",
            log_tail(log)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a short helper program to its end, capped.
async fn run_program(program: &Path, args: &[&str]) -> Result<String> {
    let output = capped(SETUP_CAP, &program.display().to_string(), async {
        Ok(Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await?)
    })
    .await?;
    ensure!(
        output.status.success(),
        "{} {}: {} {}",
        program.display(),
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// A private sshd on 127.0.0.1; killed when dropped.
struct SshServer {
    sshd: Child,
    port: u16,
    user: String,
    ssh: PathBuf,
    dir: tempfile::TempDir,
}

impl SshServer {
    /// `Ok(None)` when ssh or sshd is not installed.
    async fn start() -> Result<Option<Self>> {
        let (Some(sshd), Some(ssh), Some(keygen)) = (
            find_program("sshd"),
            find_program("ssh"),
            find_program("ssh-keygen"),
        ) else {
            return Ok(None);
        };
        let dir = tempfile::tempdir()?;
        let path = |name: &str| dir.path().join(name);
        for key in ["host_key", "client_key"] {
            let file = path(key);
            let file = file.to_str().context("temp path is not UTF-8")?;
            run_program(&keygen, &["-q", "-t", "ed25519", "-N", "", "-f", file]).await?;
        }
        std::fs::copy(path("client_key.pub"), path("authorized_keys"))?;
        let user = match std::env::var("USER") {
            Ok(u) if !u.is_empty() => u,
            _ => run_program(Path::new("id"), &["-un"]).await?,
        };
        if user == "root" {
            // sshd running as root chroots its unprivileged child here; the package creates it
            // only when the system service starts.
            let privsep = Path::new("/run/sshd");
            if !privsep.exists() {
                std::fs::create_dir_all(privsep).context("creating /run/sshd")?;
                println!("note: created /run/sshd (sshd's privilege separation directory)");
            }
        }
        let port = free_port()?;
        let config = format!(
            "Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {host_key}\n\
             PidFile none\n\
             UsePAM no\n\
             StrictModes no\n\
             AuthorizedKeysFile {authorized}\n\
             PermitRootLogin yes\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             AllowTcpForwarding yes\n\
             X11Forwarding no\n\
             PrintMotd no\n\
             UseDNS no\n\
             LogLevel ERROR\n",
            host_key = path("host_key").display(),
            authorized = path("authorized_keys").display(),
        );
        std::fs::write(path("sshd_config"), config)?;
        let log = path("sshd.log");
        let mut child = Command::new(&sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(path("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", sshd.display()))?;
        wait_accepting(&mut child, port, &log, "sshd").await?;
        Ok(Some(Self {
            sshd: child,
            port,
            user,
            ssh,
            dir,
        }))
    }

    /// `ssh -N -L <free port>:<service>` with `cipher`, once its local port accepts.
    async fn tunnel(&self, cipher: &str, service: SocketAddr) -> Result<SshTunnel> {
        let port = free_port()?;
        let log = self.dir.path().join(format!("ssh-{cipher}.log"));
        let key = self.dir.path().join("client_key");
        let mut child = Command::new(&self.ssh)
            .args(["-N", "-F", "/dev/null", "-c", cipher, "-i"])
            .arg(&key)
            .arg("-L")
            .arg(format!("127.0.0.1:{port}:{service}"))
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "ExitOnForwardFailure=yes",
                "-o",
                "Compression=no",
                "-o",
                "LogLevel=ERROR",
                "-p",
            ])
            .arg(self.port.to_string())
            .arg(format!("{}@127.0.0.1", self.user))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.ssh.display()))?;
        wait_accepting(&mut child, port, &log, "ssh -L").await?;
        Ok(SshTunnel {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    async fn stop(mut self) {
        let _ = self.sshd.kill().await;
    }
}

/// A running `ssh -L`; killed when dropped.
struct SshTunnel {
    child: Child,
    addr: SocketAddr,
}

impl SshTunnel {
    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The sshd and the `ssh -L` processes of the ssh rows.
#[derive(Default)]
struct SshRows {
    server: Option<SshServer>,
    tunnels: Vec<SshTunnel>,
}

impl SshRows {
    /// Starts sshd and one tunnel per selected cipher, adding their targets; what cannot start
    /// is reported in `notes` instead.
    async fn start(
        service: SocketAddr,
        plan: &Plan,
        targets: &mut Vec<Target>,
        notes: &mut Vec<String>,
    ) -> Self {
        let mut rows = Self::default();
        if !CIPHERS.iter().any(|(name, _)| plan.selects(name)) {
            return rows;
        }
        let server = match SshServer::start().await {
            Ok(Some(s)) => rows.server.insert(s),
            Ok(None) => {
                notes.push("ssh -L: skipped (install openssh-server openssh-client)".to_string());
                return rows;
            }
            Err(e) => {
                notes.push(format!("ssh -L: skipped (sshd did not start: {e:#})"));
                return rows;
            }
        };
        for (name, cipher) in CIPHERS {
            if !plan.selects(name) {
                continue;
            }
            match server.tunnel(cipher, service).await {
                Ok(t) => {
                    targets.push(Target { name, addr: t.addr });
                    rows.tunnels.push(t);
                }
                Err(e) => notes.push(format!("{name}: skipped ({e:#})")),
            }
        }
        rows
    }

    async fn stop(self) {
        for t in self.tunnels {
            t.stop().await;
        }
        if let Some(s) = self.server {
            // The session processes end with their client; let sshd reap them (bounded) so that
            // no zombie is left to an init that may not reap.
            if let Some(pid) = s.sshd.id() {
                let children = format!("/proc/{pid}/task/{pid}/children");
                let deadline = Instant::now() + Duration::from_secs(2);
                while Instant::now() < deadline
                    && std::fs::read_to_string(&children).is_ok_and(|c| !c.trim().is_empty())
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            s.stop().await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// mcc nodes

/// A running node and what it takes to stop it.
struct Running {
    node: Node,
    task: JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl Running {
    async fn start(listen: Multiaddr) -> Result<Self> {
        let (stop, stopped) = oneshot::channel::<()>();
        let config = Config {
            listen: vec![listen],
            rendezvous: None,
            mdns: MdnsMode::Off,
            data_dir: None,
            ..Config::default()
        };
        let (node, task) = capped(SETUP_CAP, "starting a node", async {
            Ok(Node::builder(config)
                .spawn(async move {
                    let _ = stopped.await;
                })
                .await?)
        })
        .await?;
        Ok(Self { node, task, stop })
    }

    async fn shutdown(self) -> Result<()> {
        let Self { node, task, stop } = self;
        drop(node);
        let _ = stop.send(());
        tokio::time::timeout(STOP_CAP, task)
            .await
            .context("node did not stop")??;
        Ok(())
    }

    /// The node's listen address, once it reports one.
    async fn listen_addr(&self) -> Result<Multiaddr> {
        let deadline = Instant::now() + SETUP_CAP;
        loop {
            if let Some(addr) = self.node.info().await?.listen_addrs.into_iter().next() {
                return Ok(addr);
            }
            ensure!(Instant::now() < deadline, "no listen address reported");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Dials A from B, waits until B finds A as provider of the service, starts B's listener.
async fn connect_nodes(a: &Running, b: &Running, quic: bool) -> Result<(SocketAddr, String)> {
    let addr = a.listen_addr().await?;
    let peer = b.node.dial(addr.clone()).await?;
    let a_id = a.node.peer_id();
    ensure!(peer == a_id, "dialed {addr} and reached another peer");

    let deadline = Instant::now() + SETUP_CAP;
    loop {
        let providers = capped(SETUP_CAP, "provider lookup", async {
            Ok(b.node.services().providers(SERVICE).await?)
        })
        .await?;
        if providers.iter().any(|p| p.peer_id == a_id) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "B did not find A as provider of {SERVICE:?} within {SETUP_CAP:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let port = free_port()?;
    b.node
        .services()
        .add_listener(SERVICE, &format!("tcp://127.0.0.1:{port}"), None)
        .await?;

    // The connection the tunnels will use: one, on the wanted transport.
    let peers = b.node.peers().await?;
    let info = peers
        .iter()
        .find(|p| p.peer_id == a_id)
        .context("A is not connected to B")?;
    let on_quic = info
        .addrs
        .first()
        .is_some_and(|a| a.iter().any(|p| matches!(p, Protocol::QuicV1)));
    ensure!(
        on_quic == quic,
        "B reaches A over {:?}, not the wanted transport",
        info.addrs.first()
    );
    let connections = format!(
        "{} connection{} via {}",
        info.connections,
        if info.connections == 1 { "" } else { "s" },
        info.addrs
            .first()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    Ok((SocketAddr::from(([127, 0, 0, 1], port)), connections))
}

/// Two nodes, A providing the service and B running a listener for it.
struct McPair {
    a: Running,
    b: Running,
    /// B's listener.
    addr: SocketAddr,
}

impl McPair {
    async fn start(name: &str, quic: bool, service: SocketAddr) -> Result<Self> {
        let listen: Multiaddr = if quic {
            "/ip4/127.0.0.1/udp/0/quic-v1"
        } else {
            "/ip4/127.0.0.1/tcp/0"
        }
        .parse()?;
        let a = Running::start(listen.clone()).await?;
        let b = match Running::start(listen).await {
            Ok(b) => b,
            Err(e) => {
                let _ = a.shutdown().await;
                return Err(e);
            }
        };
        let setup = async {
            a.node
                .services()
                .add(SERVICE, &format!("tcp://{service}"))
                .await?;
            connect_nodes(&a, &b, quic).await
        };
        match setup.await {
            Ok((addr, connections)) => {
                println!("{name}: B → A over {connections}");
                Ok(Self { a, b, addr })
            }
            Err(e) => {
                let _ = a.shutdown().await;
                let _ = b.shutdown().await;
                Err(e.context(format!("{name}: setup")))
            }
        }
    }

    async fn shutdown(self) -> Result<()> {
        let stopped = (self.a.shutdown().await, self.b.shutdown().await);
        stopped.0.context("stopping node A")?;
        stopped.1.context("stopping node B")
    }
}

// ---------------------------------------------------------------------------------------------
// Report

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The larger relative spread (max - min over median) of the up and the down runs.
fn spread(up: &[f64], down: &[f64]) -> String {
    let one = |values: &[f64]| {
        let (min, max) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        (max - min) / median(values)
    };
    if up.len() < 2 || down.len() < 2 {
        "-".to_string()
    } else {
        format!("{:.0}%", one(up).max(one(down)) * 100.0)
    }
}

fn print_report(rows: &[Row], notes: &[String], plan: &Plan) {
    let direct = rows.iter().find(|r| r.name == "direct TCP");
    let goal = rows.iter().find(|r| r.name == CIPHERS[1].0);
    println!();
    println!(
        "throughput: one TCP stream, {} MiB per transfer, median of up to {} runs (up: client → \
         service, down: service → client), Gbit/s",
        plan.bytes >> 20,
        plan.runs
    );
    println!(
        "{:<18} {:>7} {:>7} {:>5} {:>7}   {:>8} {:>8}   {:>9} {:>9}",
        "path", "up", "down", "runs", "spread", "up×tcp", "down×tcp", "up×aes", "down×aes"
    );
    for r in rows {
        println!(
            "{:<18} {:>7.2} {:>7.2} {:>5} {:>7}   {:>8} {:>8}   {:>9} {:>9}",
            r.name,
            r.up(),
            r.down(),
            r.up.len(),
            spread(&r.up, &r.down),
            ratio(r.up(), direct.map(Row::up)),
            ratio(r.down(), direct.map(Row::down)),
            ratio(r.up(), goal.map(Row::up)),
            ratio(r.down(), goal.map(Row::down)),
        );
    }
    println!();
    println!(
        "connection setup: sequential new connections, start of connect → first byte from the \
         service, ms"
    );
    println!(
        "{:<18} {:>8} {:>8} {:>8} {:>8} {:>6}   {:>8}",
        "path", "min", "p50", "p95", "max", "n", "p50×tcp"
    );
    for r in rows.iter().filter(|r| !r.pings.is_empty()) {
        let p50 = ms(percentile(&r.pings, 50.0));
        println!(
            "{:<18} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>6}   {:>8}",
            r.name,
            ms(r.pings[0]),
            p50,
            ms(percentile(&r.pings, 95.0)),
            ms(r.pings[r.pings.len() - 1]),
            r.pings.len(),
            ratio(
                p50,
                direct
                    .filter(|d| !d.pings.is_empty())
                    .map(|d| ms(percentile(&d.pings, 50.0)))
            ),
        );
    }
    println!();
    for note in notes.iter().chain(rows.iter().flat_map(|r| &r.notes)) {
        println!("note: {note}");
    }
    let caveat = if plan.quick || cfg!(debug_assertions) {
        " [smoke run: not a measurement]"
    } else {
        ""
    };
    print_goals(rows, goal, caveat);
}

/// MET/MISSED per goal of the issue: mcc ≥ `ssh -L` aes128-gcm both ways, mcc/QUIC ≥ mcc/TCP,
/// setup p50 ≤ [`SETUP_GOAL`] × ssh's.
fn print_goals(rows: &[Row], goal: Option<&Row>, caveat: &str) {
    let verdict = |met: bool| if met { "MET" } else { "MISSED" };
    let tcp = rows.iter().find(|r| r.name == "mcc/TCP");
    let quic = rows.iter().find(|r| r.name == "mcc/QUIC");
    for mcc in [tcp, quic].into_iter().flatten() {
        let name = &mcc.name;
        match goal {
            Some(ssh) => println!(
                "goal {name} ≥ 1.0 × ssh -L aes128-gcm: {} (up {:.2} vs {:.2} = {:.2}×, down \
                 {:.2} vs {:.2} = {:.2}×){caveat}",
                verdict(mcc.up() >= ssh.up() && mcc.down() >= ssh.down()),
                mcc.up(),
                ssh.up(),
                mcc.up() / ssh.up(),
                mcc.down(),
                ssh.down(),
                mcc.down() / ssh.down(),
            ),
            None => println!("goal {name} ≥ ssh -L aes128-gcm: not judged (no ssh row){caveat}"),
        }
    }
    if let (Some(t), Some(q)) = (tcp, quic) {
        println!(
            "goal mcc/QUIC ≥ mcc/TCP: {} (up {:.2}×, down {:.2}×){caveat}",
            verdict(q.up() >= t.up() && q.down() >= t.down()),
            q.up() / t.up(),
            q.down() / t.down(),
        );
    }
    let p50 = |r: &Row| ms(percentile(&r.pings, 50.0));
    let ssh = goal.filter(|r| !r.pings.is_empty());
    for mcc in [tcp, quic]
        .into_iter()
        .flatten()
        .filter(|r| !r.pings.is_empty())
    {
        match ssh {
            Some(ssh) => println!(
                "goal {} setup p50 ≤ {SETUP_GOAL} × ssh: {} ({:.3} vs {:.3} ms = {:.2}×){caveat}",
                mcc.name,
                verdict(p50(mcc) <= SETUP_GOAL * p50(ssh)),
                p50(mcc),
                p50(ssh),
                p50(mcc) / p50(ssh),
            ),
            None => println!(
                "goal {} setup ≤ {SETUP_GOAL} × ssh: not judged (no ssh row)",
                mcc.name
            ),
        }
    }
}

/// The 1-minute load average, where the system tells it.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

async fn run(plan: Plan) -> Result<()> {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = load_average();
    println!(
        "forwarded-port throughput and setup on 127.0.0.1: {} tokio worker threads, {cpus} CPUs, \
         load average {}, {} build{}",
        plan.threads,
        load.map_or("?".to_string(), |l| format!("{l:.2}")),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "optimized"
        },
        if plan.quick { ", QUICK smoke run" } else { "" },
    );
    let mut notes = Vec::new();
    if let Some(l) = load
        && l > cpus as f64 * 0.5
    {
        notes.push(format!(
            "the machine was busy before the start (load average {l:.2} on {cpus} CPUs): \
             expect noisy numbers"
        ));
    }
    let payload = pattern(CHUNK);
    let service = start_service(payload.clone()).await?;
    let mut targets = vec![Target {
        name: "direct TCP",
        addr: service,
    }];
    let ssh = SshRows::start(service, &plan, &mut targets, &mut notes).await;
    let mut pairs = Vec::new();
    let outcome = async {
        for (name, quic) in [("mcc/TCP", false), ("mcc/QUIC", true)] {
            if plan.selects(name) {
                let pair = McPair::start(name, quic, service).await?;
                targets.push(Target {
                    name,
                    addr: pair.addr,
                });
                pairs.push(pair);
            }
        }
        measure_all(&targets, &plan, &payload).await
    }
    .await;
    ssh.stop().await;
    let mut stopped = Ok(());
    for pair in pairs {
        let r = pair.shutdown().await;
        if stopped.is_ok() {
            stopped = r;
        }
    }
    let rows = outcome?;
    stopped?;
    print_report(&rows, &notes, &plan);
    Ok(())
}

fn main() -> Result<()> {
    common::init_logs();
    let plan = Plan::from_args()?;
    // Ctrl-C drops `run`, and with it the ssh processes (`kill_on_drop`).
    common::run_benchmark(plan.threads, common::CtrlC::Stop, run(plan))
}
