//! A small Chrome DevTools Protocol driver for the dashboard test: headless Chromium started
//! with `--remote-debugging-pipe` (commands on its fd 3, answers on its fd 4, each a JSON
//! message ending in NUL), so no WebSocket client and no chromedriver are needed.
//!
//! Every wait is bounded; the browser runs in its own process group, killed on drop.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// How long one DevTools command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The Chromium binary, or `None` (the test then skips unless MCC_REQUIRE_CHROMIUM=1).
pub fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

pub struct Browser {
    child: Child,
    to_browser: std::io::PipeWriter,
    from_browser: mpsc::Receiver<Value>,
    next_id: u64,
    /// Console messages and uncaught exceptions of the pages, for failure reports.
    pub console: Vec<String>,
    profile: PathBuf,
}

impl Browser {
    /// Starts headless `browser` with its profile (and log) in `profile`.
    pub fn launch(browser: &str, profile: &Path) -> Result<Self> {
        let (cmd_read, to_browser) = std::io::pipe()?;
        let (from_read, resp_write) = std::io::pipe()?;
        let (cmd_fd, resp_fd) = (cmd_read.as_raw_fd(), resp_write.as_raw_fd());
        let log = std::fs::File::create(profile.join("chromium.log"))?;
        let mut cmd = Command::new(browser);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-proxy-server",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.join("profile").display()
        ))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
        // SAFETY: between fork and exec only async-signal-safe calls (fcntl, dup2) on
        // descriptors that are open in the child: the pipe ends become its fds 3 and 4. They
        // are first copied above 10 so that neither dup2 overwrites the other's source.
        unsafe {
            cmd.pre_exec(move || {
                let c = libc::fcntl(cmd_fd, libc::F_DUPFD, 10);
                let r = libc::fcntl(resp_fd, libc::F_DUPFD, 10);
                if c < 0 || r < 0 || libc::dup2(c, 3) < 0 || libc::dup2(r, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().context("starting chromium")?;
        drop(cmd_read);
        drop(resp_write);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || read_messages(from_read, tx));
        Ok(Self {
            child,
            to_browser,
            from_browser: rx,
            next_id: 0,
            console: Vec::new(),
            profile: profile.to_path_buf(),
        })
    }

    /// Sends `method` (to page `session`, or to the browser) and waits for its result.
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg)?;
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .with_context(|| format!("sending {method} to chromium: {}", self.log()))?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = match self.from_browser.recv_timeout(left) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => bail!("{method}: no answer in 30 s"),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("{method}: chromium went away: {}", self.log())
                }
            };
            if m["id"].as_u64() == Some(id) {
                if let Some(e) = m.get("error") {
                    bail!("{method} failed: {e}");
                }
                return Ok(m["result"].clone());
            }
            self.note_event(&m);
        }
    }

    fn note_event(&mut self, m: &Value) {
        match m["method"].as_str() {
            Some("Runtime.consoleAPICalled") => {
                let args: Vec<String> = m["params"]["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| a["value"].to_string())
                    .collect();
                self.console.push(format!(
                    "console.{}: {}",
                    m["params"]["type"].as_str().unwrap_or("?"),
                    args.join(" ")
                ));
            }
            Some("Runtime.exceptionThrown") => self.console.push(format!(
                "exception: {}",
                m["params"]["exceptionDetails"]["exception"]["description"]
            )),
            Some("Log.entryAdded") => self.console.push(format!(
                "log: {}",
                m["params"]["entry"]["text"].as_str().unwrap_or("")
            )),
            _ => {}
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.profile.join("chromium.log")).unwrap_or_default()
    }

    /// Opens a new page of `width` × `height` CSS pixels; returns its session id.
    pub fn new_page(&mut self, width: u32, height: u32) -> Result<String> {
        let target = self.call(None, "Target.createTarget", json!({"url": "about:blank"}))?;
        let target_id = target["targetId"]
            .as_str()
            .context("no targetId")?
            .to_string();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        )?;
        let session = attached["sessionId"]
            .as_str()
            .context("no sessionId")?
            .to_string();
        let s = Some(session.as_str());
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            self.call(s, domain, json!({}))?;
        }
        self.call(
            s,
            "Emulation.setFocusEmulationEnabled",
            json!({"enabled": true}),
        )?;
        self.resize(&session, width, height)?;
        Ok(session)
    }

    /// Sets the page's viewport (a phone width makes the page's mobile layout apply).
    pub fn resize(&mut self, page: &str, width: u32, height: u32) -> Result<()> {
        self.call(
            Some(page),
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1,
                   "mobile": width < 600}),
        )?;
        Ok(())
    }

    /// Loads `url` in `page` and waits until the document is complete.
    pub fn goto(&mut self, page: &str, url: &str) -> Result<()> {
        self.call(Some(page), "Page.bringToFront", json!({}))?;
        self.call(Some(page), "Page.navigate", json!({"url": url}))?;
        self.wait_for(
            page,
            15,
            "the page loads",
            "document.readyState === 'complete'",
        )
    }

    /// Evaluates `expr` (promises awaited) and returns its value.
    pub fn eval(&mut self, page: &str, expr: &str) -> Result<Value> {
        let r = self.call(
            Some(page),
            "Runtime.evaluate",
            json!({"expression": expr, "awaitPromise": true, "returnByValue": true}),
        )?;
        if let Some(ex) = r.get("exceptionDetails") {
            bail!("{expr}: {}", ex["exception"]["description"]);
        }
        Ok(r["result"]["value"].clone())
    }

    /// Polls `cond` (a JS expression) every 200 ms until it is truthy or `secs` pass.
    pub fn wait_for(&mut self, page: &str, secs: u64, what: &str, cond: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.eval(page, &format!("!!({cond})"))?;
            if v == json!(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out waiting for {what} ({cond}); page console:\n{}",
                    self.console.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Clicks the middle of the element `selector` with the mouse, as a user would.
    pub fn click(&mut self, page: &str, selector: &str) -> Result<()> {
        let sel = serde_json::to_string(selector)?;
        let at = self.eval(
            page,
            &format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return null;
                  e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();
                  return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
            ),
        )?;
        let (x, y) = match (at[0].as_f64(), at[1].as_f64()) {
            (Some(x), Some(y)) => (x, y),
            _ => bail!("no element {selector} to click"),
        };
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                Some(page),
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )?;
        }
        Ok(())
    }

    /// Clicks into the input `selector`, clears it and types `text`.
    pub fn type_into(&mut self, page: &str, selector: &str, text: &str) -> Result<()> {
        self.click(page, selector)?;
        let sel = serde_json::to_string(selector)?;
        self.eval(page, &format!("document.querySelector({sel}).value = ''"))?;
        self.call(Some(page), "Input.insertText", json!({"text": text}))?;
        Ok(())
    }

    /// Chooses `file` in the file input `selector`.
    pub fn choose_file(&mut self, page: &str, selector: &str, file: &Path) -> Result<()> {
        let doc = self.call(Some(page), "DOM.getDocument", json!({"depth": 0}))?;
        let root = doc["root"]["nodeId"].clone();
        let node = self.call(
            Some(page),
            "DOM.querySelector",
            json!({"nodeId": root, "selector": selector}),
        )?;
        self.call(
            Some(page),
            "DOM.setFileInputFiles",
            json!({"nodeId": node["nodeId"], "files": [file.display().to_string()]}),
        )?;
        Ok(())
    }

    /// Saves a PNG of the whole page (beyond the viewport) to `path`.
    pub fn screenshot(&mut self, page: &str, path: &Path) -> Result<()> {
        // From the top, where the sticky header belongs.
        self.eval(page, "window.scrollTo(0, 0)")?;
        let m = self.call(Some(page), "Page.getLayoutMetrics", json!({}))?;
        let size = &m["cssContentSize"];
        let (w, h) = (
            size["width"].as_f64().unwrap_or(1280.0),
            size["height"].as_f64().unwrap_or(900.0),
        );
        let shot = self.call(
            Some(page),
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}}),
        )?;
        let data = shot["data"].as_str().context("no screenshot data")?;
        std::fs::write(path, base64_decode(data)?)?;
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The browser's helpers share its process group: end them all.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Splits the browser's output into NUL-terminated JSON messages until it closes the pipe.
fn read_messages(mut from: std::io::PipeReader, tx: mpsc::Sender<Value>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut chunk) {
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = buf.iter().position(|&b| b == 0) {
            let msg: Vec<u8> = buf.drain(..=end).collect();
            if let Ok(v) = serde_json::from_slice::<Value>(&msg[..end])
                && tx.send(v).is_err()
            {
                return;
            }
        }
    }
}

/// Standard base64 (the screenshot's encoding).
fn base64_decode(s: &str) -> Result<Vec<u8>> {
    let value = |c: u8| -> Result<u32> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("bad base64 byte {c}"),
        } as u32)
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=' && c != b'\n').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for group in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in group.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let n = group.len().saturating_sub(1);
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    Ok(out)
}
