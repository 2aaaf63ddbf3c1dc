//! Profiling, as MCC's daemon flags do it: every N seconds (and at exit) write a profile into
//! the profile folder, named by kind and UTC time and never overwriting an older file.
//!
//! - `cpu`: a sampling CPU profiler (the `pprof` crate: `SIGPROF` at [`cpu::FREQUENCY`] Hz,
//!   stacks unwound in the handler) over the last interval, written as a gzipped pprof
//!   protobuf (`cpu-T.pb.gz`) and a flamegraph (`cpu-T.svg`); also `GET /debug/pprof/profile`.
//! - `heap`: jemalloc's sampling heap profiler (live allocations, one sample every 512 KiB
//!   allocated on average), converted to pprof (`heap-T.pb.gz`); also `GET /debug/pprof/heap`.
//!   Only a binary whose allocator is jemalloc with profiling compiled in (the `mcc` binary) has
//!   it; elsewhere it reports [`Error::HeapUnavailable`].
//! - `threads`: MCC's "goroutine" profile in Rust terms (`goroutine-T.txt` and
//!   `goroutine-T.pb.gz`): every OS thread of the process with its name, state, CPU time and
//!   kernel wait channel, plus the tokio runtime's counters. Not the stacks of async tasks:
//!   tokio's task dump needs the unstable `--cfg tokio_unstable` build.
//! - `http`: the `/debug/pprof/...` routes, mounted on the API (same guard and token).
//!
//! [`start`] spawns one task per enabled kind; [`Profiler::finish`] writes the last profiles.

pub mod cpu;
pub mod heap;
pub mod http;
mod output;
pub mod threads;

use std::path::PathBuf;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use output::{timestamp, write_new};

/// Default profile folder, relative to the working directory (as MCC's `traces`).
pub const DEFAULT_DIR: &str = "traces";

/// What to profile and where (`--cpu-profile`, `--heap-profile`, `--goroutine-profile`,
/// `--profile-dir`). `None` is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub cpu: Option<Duration>,
    pub heap: Option<Duration>,
    pub goroutine: Option<Duration>,
    pub dir: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cpu: None,
            heap: None,
            goroutine: None,
            dir: PathBuf::from(DEFAULT_DIR),
        }
    }
}

impl Config {
    /// Whether any profile is written.
    pub fn enabled(&self) -> bool {
        self.cpu.is_some() || self.heap.is_some() || self.goroutine.is_some()
    }
}

/// Profiling errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("profile folder {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write profile {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the CPU profiler is busy (another profile is being taken, e.g. --cpu-profile)")]
    CpuBusy,
    #[error("CPU profiler: {0}")]
    Cpu(String),
    #[error(
        "heap profiling is not available in this process (it needs the mcc binary's jemalloc \
         allocator with profiling)"
    )]
    HeapUnavailable,
    #[error("heap profiler: {0}")]
    Heap(String),
}

/// The running profile writers.
pub struct Profiler {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// Creates the profile folder and starts one writer task per enabled kind. Must be called
/// inside a tokio runtime.
pub fn start(config: Config) -> Result<Profiler, Error> {
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    if !config.enabled() {
        return Ok(Profiler { stop, tasks });
    }
    std::fs::create_dir_all(&config.dir).map_err(|source| Error::Dir {
        path: config.dir.clone(),
        source,
    })?;
    if let Some(every) = config.heap {
        // Before the others: allocations are sampled only from now on.
        heap::activate()?;
        tasks.push(tokio::spawn(heap::run(
            config.dir.clone(),
            every,
            stop.clone(),
        )));
    }
    if let Some(every) = config.cpu {
        tasks.push(tokio::spawn(cpu::run(
            config.dir.clone(),
            every,
            stop.clone(),
        )));
    }
    if let Some(every) = config.goroutine {
        tasks.push(tokio::spawn(threads::run(
            config.dir.clone(),
            every,
            stop.clone(),
        )));
    }
    tracing::info!(
        dir = %config.dir.display(),
        cpu = ?config.cpu,
        heap = ?config.heap,
        goroutine = ?config.goroutine,
        "profiling"
    );
    Ok(Profiler { stop, tasks })
}

impl Profiler {
    /// Stops the writers; each writes its last profile (the interval since its previous one).
    pub async fn finish(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Waits `every` or until `stop`; true when stopped.
async fn tick(every: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(every) => false,
        _ = stop.cancelled() => true,
    }
}
