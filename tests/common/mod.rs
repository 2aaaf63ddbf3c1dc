//! Runs the real `mcc` binary as separate processes on 127.0.0.1 for integration tests.
#![allow(dead_code)]

pub mod abuser;
pub mod natlab;
pub mod natnodes;
pub mod netns;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mcc::client::Client;
use mcc::node::PeerInfo;

pub const BIN: &str = env!("CARGO_BIN_EXE_mcc");

/// One `mcc` daemon process with its own data folder; killed on drop.
pub struct Daemon {
    pub child: Option<Child>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub api: Client,
    pub args: Vec<String>,
    /// The network namespace it runs in (none: the host's), and the host-side port that
    /// reaches its API there.
    pub netns: Option<String>,
    api_forward: Option<netns::Forward>,
}

/// Flags every test node gets: ephemeral ports, fast rendezvous, quiet logs.
pub fn base_args() -> Vec<String> {
    [
        "--listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--rendezvous-interval",
        "1",
        "--loglevel",
        "4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// [`base_args`] listening on `listen` instead (for nodes in network namespaces).
pub fn base_args_listening(listen: &str) -> Vec<String> {
    let mut args = base_args();
    if let Some(i) = args.iter().position(|a| a == "--listen") {
        args[i + 1] = listen.to_string();
    }
    args
}

impl Daemon {
    /// Starts a node in a fresh temp data folder with `base_args()` plus `extra`.
    pub async fn start(extra: &[&str]) -> Result<Self> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().to_path_buf();
        let mut args = base_args();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut d = Self::spawn_in(&dir, args).await?;
        d._tmp = Some(tmp);
        Ok(d)
    }

    /// Starts a node in a fresh temp data folder with exactly `args`.
    pub async fn start_with_args(args: Vec<String>) -> Result<Self> {
        let tmp = tempfile::tempdir()?;
        let mut d = Self::spawn_in(tmp.path(), args).await?;
        d._tmp = Some(tmp);
        Ok(d)
    }

    /// Starts a node in `dir` with exactly `args` (plus `--data-folder dir`).
    pub async fn spawn_in(dir: &Path, args: Vec<String>) -> Result<Self> {
        Self::spawn_in_env(dir, args, &[]).await
    }

    /// [`spawn_in`](Self::spawn_in) with extra environment variables for the process.
    pub async fn spawn_in_env(dir: &Path, args: Vec<String>, env: &[(&str, &str)]) -> Result<Self> {
        Self::spawn_with(dir, args, env, None).await
    }

    /// Starts a node inside network namespace `ns` (`ip netns exec`) with exactly `args`;
    /// its API (on 127.0.0.1 inside `ns`) is reached through a port on the host's loopback.
    pub async fn spawn_in_netns(ns: &str, dir: &Path, args: Vec<String>) -> Result<Self> {
        Self::spawn_with(dir, args, &[], Some(ns)).await
    }

    async fn spawn_with(
        dir: &Path,
        args: Vec<String>,
        env: &[(&str, &str)],
        ns: Option<&str>,
    ) -> Result<Self> {
        let api_file = dir.join("api");
        let _ = std::fs::remove_file(&api_file);
        std::fs::create_dir_all(dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("node.log"))?;
        let mut cmd = match ns {
            Some(ns) => netns::command(ns, BIN),
            None => Command::new(BIN),
        };
        if ns.is_some() {
            // The test's own settings (`MCC_REQUIRE_NETNS`...) are not the node's.
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("MCC_") {
                    cmd.env_remove(k);
                }
            }
        }
        cmd.env_remove("RUST_LOG");
        cmd.envs(env.iter().copied());
        // MCC_TEST_LOG=<filter> turns on detailed daemon logs when debugging a test.
        if let Ok(filter) = std::env::var("MCC_TEST_LOG") {
            cmd.env("RUST_LOG", filter);
        }
        let child = cmd
            .arg("--data-folder")
            .arg(dir)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning mcc")?;
        let mut d = Self {
            child: Some(child),
            dir: dir.to_path_buf(),
            _tmp: None,
            api: Client::new("http://127.0.0.1:1"),
            args,
            netns: ns.map(str::to_string),
            api_forward: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("mcc exited early with {status}:\n{}", d.log());
            }
            if let Ok(url) = std::fs::read_to_string(&api_file) {
                let url = d.reachable_api(url.trim()).await?;
                let c = Client::new(url);
                if c.health().await.is_ok() {
                    d.api = c;
                    return Ok(d);
                }
            }
            if Instant::now() > deadline {
                bail!("mcc did not come up:\n{}", d.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The API URL the node wrote, or inside a namespace the host-side port forwarded to it.
    async fn reachable_api(&mut self, url: &str) -> Result<String> {
        let Some(ns) = &self.netns else {
            return Ok(url.to_string());
        };
        let target: std::net::SocketAddr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .with_context(|| format!("API address {url:?} is not ip:port"))?;
        let forward = netns::Forward::start(ns, target).await?;
        let url = format!("http://{}", forward.addr);
        self.api_forward = Some(forward);
        Ok(url)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    /// `host:port` of the node's TCP listener, the MCC `--boot` form.
    pub async fn tcp_host_port(&self) -> Result<String> {
        let info = self.api.node().await?;
        info.listen_addrs
            .iter()
            .find_map(mcc::node::addr::host_port)
            .map(|s| s.to_string())
            .context("no TCP listen address")
    }

    pub async fn peer_id(&self) -> Result<String> {
        Ok(self.api.node().await?.peer_id.to_string())
    }

    pub async fn peers(&self) -> Result<Vec<PeerInfo>> {
        Ok(self.api.peers().await?)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            let pid = c.id().to_string();
            Command::new("kill").args(["-TERM", &pid]).status()?;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = c.try_wait()? {
                    if !status.success() {
                        bail!("mcc exited with {status}:\n{}", self.log());
                    }
                    return Ok(());
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    bail!("mcc did not stop on SIGTERM:\n{}", self.log());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the same node again (same data folder and flags).
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        let mut fresh =
            Self::spawn_with(&self.dir, self.args.clone(), &[], self.netns.as_deref()).await?;
        self.child = fresh.child.take();
        self.api = fresh.api.clone();
        self.api_forward = fresh.api_forward.take();
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 200 ms until it is true or `secs` pass.
pub async fn wait_until<F, Fut>(secs: u64, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last_err = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what} (last error: {last_err:?})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the CLI; returns (success, stdout, stderr).
pub fn cli(args: &[&str]) -> Result<(bool, String, String)> {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("MCC_API")
        .env_remove("MCC_DATA_FOLDER")
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}
