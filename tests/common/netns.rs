//! Network namespaces for tests: creating and deleting them, running commands inside, and
//! reaching TCP sockets inside them from the test process.
//!
//! Every namespace is named `mcc-<tag><pid>-<rest>`, so [`sweep_stale`] can delete the ones
//! a killed test process left behind, and parallel test processes never collide. Nothing here
//! ever creates an interface in the host's namespace: veth pairs are made directly inside the
//! namespaces (`ip -n NS link add ... netns OTHER`).
//!
//! The test process itself stays in the host's namespace; [`connect`] and [`bind`] make a
//! socket inside a namespace on a short-lived thread that entered it (`setns`), and
//! [`Forward`] offers such a socket on the host's loopback, so an `mcc` API listening on
//! 127.0.0.1 inside a namespace is reached with the ordinary [`mcc::client::Client`].

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail, ensure};

/// First part of every namespace name made here.
const PREFIX: &str = "mcc-";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// `MCC_REQUIRE_NETNS=1` turns a skip into a failure (CI sets it).
pub fn required() -> bool {
    std::env::var_os("MCC_REQUIRE_NETNS").is_some_and(|v| v == "1")
}

/// `Ok(false)` after printing why `what` is skipped, or an error when namespaces are required.
pub fn skip(what: &str, why: &str) -> Result<bool> {
    if required() {
        bail!("{what} needs network namespaces: {why}");
    }
    eprintln!("skipping: {what} needs network namespaces: {why}");
    Ok(false)
}

/// Whether this process can make namespaces and has the `tools` (besides `ip`) it needs;
/// says why not as [`skip`] does. Also deletes stale namespaces of dead test processes.
pub fn usable(what: &str, tools: &[&str]) -> Result<bool> {
    match effective_uid() {
        Some(0) => {}
        Some(uid) => return skip(what, &format!("not root (uid {uid})")),
        None => return skip(what, "cannot read the uid from /proc/self/status"),
    }
    for tool in std::iter::once(&"ip").chain(tools) {
        let found = Command::new(tool)
            .arg("-V")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return skip(what, &format!("`{tool}` is not installed"));
        }
    }
    sweep_stale();
    Ok(true)
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// A fresh name stem `mcc-<tag><pid>-<n>` for one group of namespaces (one per test).
pub fn unique_stem(tag: &str) -> String {
    assert!(tag.chars().all(|c| c.is_ascii_lowercase()), "tag {tag:?}");
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{tag}{}-{n}", std::process::id())
}

/// Runs `program args...`; an error carries its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running `{program} {}`", args.join(" ")))?;
    ensure!(
        out.status.success(),
        "`{program} {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Runs `ip args...`.
pub fn ip(args: &[&str]) -> Result<()> {
    run("ip", args)
}

/// `ip netns exec <ns> <program>`: the child execs `program`, so its pid is the program's.
pub fn command(ns: &str, program: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, program]);
    cmd
}

/// Runs `program args...` inside `ns`; an error carries its stderr.
pub fn run_in(ns: &str, program: &str, args: &[&str]) -> Result<()> {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// Stdout of `program args...` run inside `ns` (empty when it fails), for diagnostics.
pub fn output_in(ns: &str, program: &str, args: &[&str]) -> String {
    command(ns, program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// One network namespace with `lo` up; deleted (after killing what runs in it) on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn create(name: &str) -> Result<Self> {
        ip(&["netns", "add", name])?;
        let ns = Self {
            name: name.to_string(),
        };
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        destroy(&self.name);
    }
}

/// Kills what is left in a namespace (only ever one of ours) and deletes it; deleting it also
/// removes its ends of veth pairs, and with them the other ends.
fn destroy(ns: &str) {
    if let Ok(out) = Command::new("ip")
        .args(["netns", "pids", ns])
        .stderr(Stdio::null())
        .output()
    {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if pid.parse::<u32>().is_ok() {
                let _ = Command::new("kill")
                    .args(["-KILL", pid])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The pid in a name `mcc-<letters><pid>-...`.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_lowercase());
    rest.split('-').next()?.parse().ok()
}

/// Deletes namespaces left by test processes that are gone (e.g. killed with SIGKILL before
/// `Drop` ran). Only names of the form `mcc-<letters><pid>-...` are touched.
pub fn sweep_stale() {
    let Ok(out) = Command::new("ip")
        .args(["netns", "list"])
        .stderr(Stdio::null())
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = owner_pid(name) else {
            continue;
        };
        if pid != std::process::id() && !PathBuf::from(format!("/proc/{pid}")).exists() {
            destroy(name);
        }
    }
}

/// Runs `f` on a new thread that entered namespace `ns`; sockets it makes stay in `ns`.
async fn inside<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    let path = format!("/run/netns/{ns}");
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = std::fs::File::open(&path).and_then(|file| {
            // SAFETY: setns only changes this thread's network namespace; the thread ends
            // right after `f`, and the file descriptor is valid while `file` lives.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
            f()
        });
        let _ = tx.send(result);
    });
    let result = rx.await.context("namespace thread ended")?;
    result.with_context(|| format!("in namespace {ns}"))
}

/// A TCP connection to `addr` made inside namespace `ns`.
pub async fn connect(ns: &str, addr: SocketAddr) -> Result<tokio::net::TcpStream> {
    let std = inside(ns, move || {
        let s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))?;
        s.set_nonblocking(true)?;
        Ok(s)
    })
    .await
    .with_context(|| format!("connecting to {addr}"))?;
    Ok(tokio::net::TcpStream::from_std(std)?)
}

/// A TCP listener on `addr` inside namespace `ns`.
pub async fn bind(ns: &str, addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    let std = inside(ns, move || {
        let l = std::net::TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        Ok(l)
    })
    .await
    .with_context(|| format!("binding {addr}"))?;
    Ok(tokio::net::TcpListener::from_std(std)?)
}

/// A port on the host's 127.0.0.1 whose every connection is relayed to `target` inside a
/// namespace. Stops when dropped.
pub struct Forward {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Forward {
    pub async fn start(ns: &str, target: SocketAddr) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let ns = ns.to_string();
        let task = tokio::spawn(async move {
            while let Ok((mut outer, _)) = listener.accept().await {
                let ns = ns.clone();
                tokio::spawn(async move {
                    if let Ok(mut inner) = connect(&ns, target).await {
                        let _ = tokio::io::copy_bidirectional(&mut outer, &mut inner).await;
                    }
                });
            }
        });
        Ok(Self { addr, task })
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}
