//! CPU profiles: the `pprof` crate's sampling profiler (a `SIGPROF` timer; the handler records
//! the interrupted thread's stack), one session at a time in the whole process.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::output::{gzip, write_new};
use super::{Error, tick};

/// Samples per second of CPU time.
pub const FREQUENCY: i32 = 99;

/// Libraries whose frames are not unwound in the signal handler (unwinding through them can
/// deadlock or crash).
const BLOCKLIST: &[&str] = &["libc", "libgcc", "pthread", "vdso"];

/// A running CPU profile.
pub struct Session {
    guard: pprof::ProfilerGuard<'static>,
    started: Instant,
}

/// One CPU profile: gzipped pprof protobuf and a flamegraph.
pub struct CpuProfile {
    pub pprof_gz: Vec<u8>,
    pub svg: Vec<u8>,
    pub duration: Duration,
}

/// Starts sampling; [`Error::CpuBusy`] while another session runs.
pub fn begin() -> Result<Session, Error> {
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        .blocklist(BLOCKLIST)
        .build()
        .map_err(|e| match e {
            pprof::Error::Running => Error::CpuBusy,
            e => Error::Cpu(e.to_string()),
        })?;
    Ok(Session {
        guard,
        started: Instant::now(),
    })
}

impl Session {
    /// Stops sampling and renders the profile (symbolizes: blocking, run it off the runtime).
    pub fn end(self) -> Result<CpuProfile, Error> {
        use pprof::protos::Message;
        let duration = self.started.elapsed();
        let report = self
            .guard
            .report()
            .frames_post_processor(drop_sampler_frames)
            .build()
            .map_err(|e| Error::Cpu(e.to_string()))?;
        drop(self.guard);
        let profile = report.pprof().map_err(|e| Error::Cpu(e.to_string()))?;
        let mut svg = Vec::new();
        if let Err(e) = report.flamegraph(&mut svg) {
            // An empty interval (no samples) has no flamegraph.
            tracing::debug!("no flamegraph: {e}");
            svg.clear();
        }
        Ok(CpuProfile {
            pprof_gz: gzip(&profile.encode_to_vec()),
            svg,
            duration,
        })
    }
}

/// [`begin`] off the runtime: the first session loads the binary's symbols.
pub async fn begin_async() -> Result<Session, Error> {
    tokio::task::spawn_blocking(begin)
        .await
        .map_err(|e| Error::Cpu(e.to_string()))?
}

/// Drops the sampler's own frames (the unwinder in the signal handler) from the leaf end of a
/// stack, so that the interrupted function is the leaf.
fn drop_sampler_frames(f: &mut pprof::Frames) {
    let own = f
        .frames
        .iter()
        .take_while(|frame| {
            frame.iter().any(|s| {
                let n = s.name();
                n.starts_with("backtrace::") || n.contains("pprof::")
            })
        })
        .count();
    if own < f.frames.len() {
        f.frames.drain(..own);
    }
}

/// Profiles for `seconds`, then renders the profile (`GET /debug/pprof/profile`).
pub async fn profile_for(seconds: Duration) -> Result<CpuProfile, Error> {
    let session = begin_async().await?;
    tokio::time::sleep(seconds).await;
    finish(session).await
}

async fn finish(session: Session) -> Result<CpuProfile, Error> {
    tokio::task::spawn_blocking(move || session.end())
        .await
        .map_err(|e| Error::Cpu(e.to_string()))?
}

/// Writes `cpu-T.pb.gz` and `cpu-T.svg` (when the interval had samples).
fn write(dir: &Path, p: &CpuProfile) -> Result<Vec<PathBuf>, Error> {
    let mut files: Vec<(&str, &[u8])> = vec![("pb.gz", &p.pprof_gz)];
    if !p.svg.is_empty() {
        files.push(("svg", &p.svg));
    }
    write_new(dir, "cpu", &files)
}

/// The `--cpu-profile` writer: one profile per interval, and the unfinished one at stop.
pub(super) async fn run(dir: PathBuf, every: Duration, stop: CancellationToken) {
    loop {
        let session = match begin_async().await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("CPU profile skipped this interval: {e}");
                None
            }
        };
        let stopped = tick(every, &stop).await;
        if let Some(session) = session {
            match finish(session).await.and_then(|p| write(&dir, &p)) {
                Ok(paths) => tracing::debug!(?paths, "wrote a CPU profile"),
                Err(e) => tracing::warn!("CPU profile: {e}"),
            }
        }
        if stopped {
            break;
        }
    }
}
