//! Footprint of the `mcc` binary users get: its size, a fresh daemon's resident memory after
//! it sat idle, and how soon after exec its REST API answers.
//!
//! ```text
//! cargo bench --bench footprint                    # runs `cargo build --release`, measures that binary
//! cargo bench --bench footprint -- --bin PATH      # measures PATH instead
//! cargo bench --bench footprint -- --idle 30 --starts 20
//! cargo test  --bench footprint -- --quick         # smoke (CI): the binary cargo built for this bench
//! ```
//!
//! The targets (issue #14) are about the release binary, the one `cargo build --release` makes:
//! `cargo bench` itself builds `mcc` with the bench profile (no LTO, symbols kept), which is
//! neither the size nor the code users run, so the full run asks cargo for the release binary
//! (a fat-LTO link: minutes when it is not up to date) and measures the file cargo names.
//! `--quick` measures the binary cargo built for this bench (`CARGO_BIN_EXE_mcc`: the debug
//! build under `cargo test`), prints its numbers for information and each release target as
//! "not measured (quick)"; it still fails when the daemon does not start, answer or stop.
//!
//! - **binary size**: the file's length.
//! - **idle RSS**: a daemon with default flags (but a fresh data folder in a temp dir, the
//!   P2P and API ports picked free on 127.0.0.1, no `MCC_*` or `RUST_LOG` from this
//!   environment) that answered `/healthz`, after `--idle` seconds without requests: `VmRSS`
//!   of `/proc/PID/status` (with its anonymous and file-backed parts, and the thread count).
//! - **ready**: from just before exec to the first `200` on `GET /healthz`, polled every
//!   millisecond; the p50 over `--starts` restarts on the same data folder (the first, fresh
//!   start that creates the key and stores is printed apart). For scale, the time `mcc
//!   --version` takes from exec to exit is printed beside it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// Release binary size target (bytes, MB = 10^6 as `ls -l --si` and the issue count).
const SIZE_TARGET: u64 = 15_000_000;
/// Idle RSS target (bytes).
const RSS_TARGET: u64 = 16_000_000;
/// Ready time target.
const READY_TARGET: Duration = Duration::from_millis(100);
/// How long one start may take to answer before the bench gives up.
const START_CAP: Duration = Duration::from_secs(30);

struct Plan {
    quick: bool,
    bin: Option<PathBuf>,
    idle: Duration,
    starts: usize,
}

impl Plan {
    fn from_args() -> Result<Self> {
        let mut plan = Plan {
            quick: common::quick_from_env(),
            bin: None,
            idle: Duration::from_secs(10),
            starts: 10,
        };
        let (mut idle, mut starts) = (None, None);
        common::for_each_arg(|flag, value| {
            match flag {
                "--quick" => plan.quick = true,
                "--bin" => plan.bin = Some(PathBuf::from(value()?)),
                "--idle" => idle = Some(common::positive(flag, &value()?)?),
                "--starts" => starts = Some(common::positive(flag, &value()?)?),
                _ => {}
            }
            Ok(())
        })?;
        if plan.quick {
            plan.idle = Duration::from_secs(2);
            plan.starts = 3;
        }
        if let Some(s) = idle {
            plan.idle = Duration::from_secs(s as u64);
        }
        if let Some(n) = starts {
            plan.starts = n;
        }
        Ok(plan)
    }
}

fn main() -> Result<()> {
    let plan = Plan::from_args()?;
    // What the targets are about, and whether this run measures it.
    let (bin, what, release) = match (&plan.bin, plan.quick) {
        (Some(b), _) => (b.clone(), "given with --bin".to_string(), true),
        (None, true) => (
            PathBuf::from(env!("CARGO_BIN_EXE_mcc")),
            format!("built for this bench ({} build)", common::build_kind()),
            false,
        ),
        (None, false) => (release_binary()?, "`cargo build --release`".into(), true),
    };
    println!("footprint of {} ({what})", bin.display());
    println!("machine: {}", load());

    let size = std::fs::metadata(&bin)
        .with_context(|| format!("{}", bin.display()))?
        .len();
    let work = tempfile::tempdir()?;
    let data = work.path().join("data");

    // The fresh start: creates key and stores, then sits idle.
    let mut first = Daemon::start(&bin, work.path(), &data)?;
    let fresh_ready = first.ready;
    std::thread::sleep(plan.idle);
    let mem = Memory::of(first.child.id())?;
    first.stop()?;

    let mut readies = Vec::new();
    for _ in 0..plan.starts {
        let mut d = Daemon::start(&bin, work.path(), &data)?;
        readies.push(d.ready.as_secs_f64() * 1e3);
        d.stop()?;
    }
    let mut versions = Vec::new();
    for _ in 0..plan.starts.min(5) {
        let t = Instant::now();
        let out = Command::new(&bin).arg("--version").output()?;
        if !out.status.success() {
            bail!("{} --version failed", bin.display());
        }
        versions.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let ready_p50 = common::median(&readies);
    let (min, max) = readies
        .iter()
        .fold((f64::INFINITY, 0f64), |(a, b), v| (a.min(*v), b.max(*v)));

    println!();
    println!(
        "{:<28} {:>10}  {:>10}  result",
        "measure", "value", "target"
    );
    row(
        "binary size",
        &format!("{:.1} MB", mb(size)),
        &format!("<= {:.0} MB", mb(SIZE_TARGET)),
        release.then_some(size <= SIZE_TARGET),
    );
    row(
        &format!("idle RSS after {} s", plan.idle.as_secs()),
        &format!("{:.1} MB", mb(mem.rss)),
        &format!("<= {:.0} MB", mb(RSS_TARGET)),
        release.then_some(mem.rss <= RSS_TARGET),
    );
    row(
        &format!("ready p50 of {} starts", readies.len()),
        &format!("{ready_p50:.1} ms"),
        &format!("<= {} ms", READY_TARGET.as_millis()),
        release.then_some(ready_p50 <= READY_TARGET.as_secs_f64() * 1e3),
    );
    println!();
    println!(
        "idle RSS: {:.1} MB anonymous, {:.1} MB file-backed (the binary's pages and others), \
         {} threads",
        mb(mem.anon),
        mb(mem.file),
        mem.threads
    );
    println!(
        "ready: min {min:.1} ms, max {max:.1} ms; first start on a fresh data folder {:.1} ms; \
         `mcc --version` exec to exit p50 {:.1} ms",
        fresh_ready.as_secs_f64() * 1e3,
        common::median(&versions)
    );
    Ok(())
}

fn row(name: &str, value: &str, target: &str, met: Option<bool>) {
    let result = match met {
        Some(true) => "MET",
        Some(false) => "MISSED",
        None => "not measured (quick)",
    };
    println!("{name:<28} {value:>10}  {target:>10}  {result}");
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Builds the release binary as users do and returns the path cargo reports for it.
fn release_binary() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("building: cargo build --release --bin mcc (a fat-LTO link when not up to date)");
    let out = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--bin",
            "mcc",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo")?;
    if !out.status.success() {
        bail!("cargo build --release failed");
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact"
            && msg["target"]["name"] == "mcc"
            && let Some(exe) = msg["executable"].as_str()
        {
            return Ok(PathBuf::from(exe));
        }
    }
    bail!("cargo did not name the mcc executable")
}

/// The load average, for judging the timings of a shared machine.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| {
            let v: Vec<&str> = s.split_whitespace().take(3).collect();
            format!("load average {} ({} cores)", v.join(" "), common::cores())
        })
        .unwrap_or_else(|_| format!("{} cores", common::cores()))
}

/// A free TCP port on 127.0.0.1 (free when asked; the daemon binds it right after).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One daemon process with default flags but its own data folder and free ports.
struct Daemon {
    child: Child,
    ready: Duration,
}

impl Daemon {
    fn start(bin: &Path, cwd: &Path, data: &Path) -> Result<Self> {
        let api = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut cmd = Command::new(bin);
        cmd.arg("--data-folder")
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--http", &api.to_string()])
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .env_remove("RUST_LOG");
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("MCC_") {
                cmd.env_remove(k);
            }
        }
        let t = Instant::now();
        let child = cmd.spawn().with_context(|| format!("{}", bin.display()))?;
        let mut d = Daemon {
            child,
            ready: Duration::ZERO,
        };
        loop {
            if healthy(api) {
                d.ready = t.elapsed();
                return Ok(d);
            }
            if let Some(status) = d.child.try_wait()? {
                bail!("the daemon exited before answering: {status}");
            }
            if t.elapsed() > START_CAP {
                bail!("the daemon did not answer /healthz within {START_CAP:?}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// SIGTERM, then waits (bounded) for the exit.
    fn stop(&mut self) -> Result<()> {
        // SAFETY: signalling our own child by its pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("the daemon exited with {status} on SIGTERM");
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        bail!("the daemon did not stop within 10 s of SIGTERM")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One `GET /healthz`: true on a 200.
fn healthy(api: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&api, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// Resident memory of a process (`/proc/PID/status`).
struct Memory {
    rss: u64,
    anon: u64,
    file: u64,
    threads: u64,
}

impl Memory {
    fn of(pid: u32) -> Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .context("reading /proc/PID/status (Linux only)")?;
        let field = |name: &str| -> Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("no {name} in /proc/PID/status"))?;
            let n: u64 = line[name.len()..]
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("bad {line:?}"))?;
            Ok(if line.ends_with("kB") { n * 1024 } else { n })
        };
        Ok(Memory {
            rss: field("VmRSS:")?,
            anon: field("RssAnon:")?,
            file: field("RssFile:")? + field("RssShmem:")?,
            threads: field("Threads:")?,
        })
    }
}
