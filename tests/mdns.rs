//! mDNS discovery between two `mcc` processes, each in its own network namespace joined by a
//! veth pair. mDNS multicasts on every non-loopback interface, so these tests never run a node
//! in the host's network namespace: everything happens inside namespaces this file creates and
//! deletes again. Without root (or without the capability to create namespaces) the tests print
//! a "skipping" line and pass; set `MCC_REQUIRE_NETNS=1` to make that a failure instead.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::{BIN, wait_until};
use serde_json::Value;

/// Prefix of every namespace this file creates: `mcc-t<pid>-<n>a` and `...b`.
const NS_PREFIX: &str = "mcc-t";
/// The veth end's name inside each namespace (never visible on the host).
const IFACE: &str = "veth0";
/// Port each node listens on (TCP and QUIC), on its namespace's veth address.
const P2P_PORT: u16 = 9376;
/// Each namespace has its own loopback, so both nodes can serve their API here.
const API: &str = "http://127.0.0.1:8080";
const HTTP: &str = "127.0.0.1:8080";

static NEXT_LAN: AtomicU32 = AtomicU32::new(0);

/// Runs `ip args...`; an error carries its stderr.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running `ip {}`", args.join(" ")))?;
    ensure!(
        out.status.success(),
        "`ip {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Best effort: `ip args...` with all output discarded.
fn ip_quiet(args: &[&str]) {
    let _ = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Kills what is left in a namespace (only ever one of ours) and deletes it; deleting it also
/// removes its end of the veth pair, and with it the other end.
fn destroy_netns(ns: &str) {
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
    ip_quiet(&["netns", "del", ns]);
}

/// Removes namespaces left by earlier runs of these tests whose process is gone (e.g. killed
/// with SIGKILL before `Drop` could run). Only names of the form `mcc-t<pid>-...` are touched.
fn sweep_stale_namespaces() {
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
        let Some(pid) = name
            .strip_prefix(NS_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !PathBuf::from(format!("/proc/{pid}")).exists() {
            destroy_netns(name);
        }
    }
}

/// Two network namespaces joined by a veth pair (10.231.x.1/24 and 10.231.x.2/24), with one
/// `mcc` node per namespace. Dropping it kills the nodes and deletes the namespaces.
struct Lan {
    ns: [String; 2],
    ips: [String; 2],
    nodes: [Option<Child>; 2],
    tmp: tempfile::TempDir,
}

impl Lan {
    /// Sets up the namespaces, or returns `None` (after saying why on stderr) when this machine
    /// cannot create them.
    fn create() -> Result<Option<Self>> {
        let skip = |why: String| -> Result<Option<Self>> {
            if std::env::var_os("MCC_REQUIRE_NETNS").is_some_and(|v| v == "1") {
                bail!("cannot create network namespaces: {why}");
            }
            eprintln!("skipping: mDNS test needs network namespaces: {why}");
            Ok(None)
        };
        match effective_uid() {
            Some(0) => {}
            Some(uid) => return skip(format!("not root (uid {uid})")),
            None => return skip("cannot read the uid from /proc/self/status".into()),
        }
        sweep_stale_namespaces();

        let pid = std::process::id();
        let n = NEXT_LAN.fetch_add(1, Ordering::Relaxed);
        // The subnet only exists inside the two namespaces; deriving it from the pid merely
        // keeps parallel runs visibly apart.
        let x = (pid % 50) * 5 + n % 5 + 1;
        let mut lan = Self {
            ns: [
                format!("{NS_PREFIX}{pid}-{n}a"),
                format!("{NS_PREFIX}{pid}-{n}b"),
            ],
            ips: [format!("10.231.{x}.1"), format!("10.231.{x}.2")],
            nodes: [None, None],
            tmp: tempfile::tempdir()?,
        };

        // From here on, dropping `lan` removes whatever was created.
        for i in 0..2 {
            if let Err(e) = ip(&["netns", "add", &lan.ns[i]]) {
                // Only our own namespaces may be deleted on drop: forget one never created.
                for name in &mut lan.ns[i..] {
                    name.clear();
                }
                return skip(format!("{e:#}"));
            }
        }
        let [a, b] = &lan.ns;
        // Created directly inside the namespaces, so no interface ever appears on the host.
        if let Err(e) = ip(&[
            "-n", a, "link", "add", IFACE, "type", "veth", "peer", "name", IFACE, "netns", b,
        ]) {
            return skip(format!("{e:#}"));
        }
        for i in 0..2 {
            let ns = &lan.ns[i];
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", lan.ips[i]),
                "dev",
                IFACE,
            ])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", IFACE, "up"])?;
        }
        Ok(Some(lan))
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.tmp.path().join(format!("node{i}.log"))
    }

    /// Both node logs, for failure messages.
    fn logs(&self) -> String {
        (0..2)
            .map(|i| {
                let log = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
                format!("--- node {i} ({}) log ---\n{log}", self.ns[i])
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `ip netns exec <ns> mcc`, without any `MCC_*` settings from the environment.
    fn mcc(&self, i: usize) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns[i], BIN]);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("MCC_") {
                cmd.env_remove(k);
            }
        }
        cmd.env_remove("RUST_LOG").stdin(Stdio::null());
        cmd
    }

    /// Starts node `i` in its namespace, listening on its veth address, and waits for its API.
    async fn start(&mut self, i: usize, extra: &[&str]) -> Result<()> {
        let dir = self.tmp.path().join(format!("node{i}"));
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(self.log_path(i))?;
        let listen = format!("{}:{P2P_PORT}", self.ips[i]);
        let mut cmd = self.mcc(i);
        cmd.arg("--data-folder")
            .arg(&dir)
            .args(["--listen", &listen, "--http", HTTP])
            .args(["--rendezvous", "off", "--loglevel", "4"])
            .args(extra)
            .stdout(log.try_clone()?)
            .stderr(log);
        // `ip netns exec` execs the command, so this child is the node itself.
        self.nodes[i] = Some(cmd.spawn().context("spawning mcc in its namespace")?);

        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.nodes[i]
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("node {i} exited early with {status}\n{}", self.logs());
            }
            if self.cli(i, &["node"]).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("node {i}'s API did not come up\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `mcc <args> --json --api ...` inside namespace `i` (at most 10 s) and parses stdout.
    async fn cli(&self, i: usize, args: &[&str]) -> Result<Value> {
        let mut cmd = tokio::process::Command::from(self.mcc(i));
        cmd.args(args)
            .args(["--json", "--api", API])
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(10), cmd.output())
            .await
            .with_context(|| format!("`mcc {}` in {} timed out", args.join(" "), self.ns[i]))??;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "`mcc {}` in {} failed ({}): {}",
            args.join(" "),
            self.ns[i],
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        serde_json::from_str(&stdout).with_context(|| format!("not JSON: {stdout}"))
    }

    async fn node_info(&self, i: usize) -> Result<Value> {
        self.cli(i, &["node"]).await
    }

    async fn peer_id(&self, i: usize) -> Result<String> {
        let info = self.node_info(i).await?;
        info["peer_id"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no peer_id in {info}"))
    }

    /// Peer ids node `i` lists as connected.
    async fn peer_ids(&self, i: usize) -> Result<Vec<String>> {
        let peers = self.cli(i, &["peers"]).await?;
        let list = peers
            .as_array()
            .with_context(|| format!("peers is not a list: {peers}"))?;
        Ok(list
            .iter()
            .filter_map(|p| p["peer_id"].as_str().map(str::to_string))
            .collect())
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for mut child in self.nodes.iter_mut().filter_map(Option::take) {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.ns {
            if !ns.is_empty() {
                destroy_netns(ns);
            }
        }
    }
}

/// Starts both nodes with `extra` flags; returns their peer ids.
async fn start_both(lan: &mut Lan, extra: &[&str]) -> Result<[String; 2]> {
    lan.start(0, extra).await?;
    lan.start(1, extra).await?;
    Ok([lan.peer_id(0).await?, lan.peer_id(1).await?])
}

/// With the default `--mdns auto` and a non-loopback listen address, two nodes on the same
/// link find and connect to each other without any `--boot`.
#[tokio::test(flavor = "multi_thread")]
async fn mdns_auto_discovers_peer_on_the_lan() -> Result<()> {
    let Some(mut lan) = Lan::create()? else {
        return Ok(());
    };
    let ids = start_both(&mut lan, &[]).await?;
    ensure!(ids[0] != ids[1], "both nodes have the same peer id");
    for i in 0..2 {
        let info = lan.node_info(i).await?;
        ensure!(
            info["mdns"] == Value::Bool(true),
            "auto should turn mDNS on when listening on {}: {info}",
            lan.ips[i]
        );
    }

    wait_until(20, "both nodes listing each other", || async {
        Ok(lan.peer_ids(0).await?.contains(&ids[1]) && lan.peer_ids(1).await?.contains(&ids[0]))
    })
    .await
    .with_context(|| format!("mDNS discovery failed\n{}", lan.logs()))?;
    Ok(())
}

/// With `--mdns off` the same two nodes never find each other.
#[tokio::test(flavor = "multi_thread")]
async fn mdns_off_does_not_discover() -> Result<()> {
    let Some(mut lan) = Lan::create()? else {
        return Ok(());
    };
    let ids = start_both(&mut lan, &["--mdns", "off"]).await?;
    for i in 0..2 {
        let info = lan.node_info(i).await?;
        ensure!(
            info["mdns"] == Value::Bool(false),
            "--mdns off not reported: {info}"
        );
    }

    // mDNS normally finds a peer well under a second; watch for 5 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        for (i, other) in [(0, &ids[1]), (1, &ids[0])] {
            let peers = lan.peer_ids(i).await?;
            ensure!(
                !peers.contains(other),
                "node {i} found its neighbour with mDNS off: {peers:?}\n{}",
                lan.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}
