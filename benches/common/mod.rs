//! What the benches share: their command line and environment, their runtime, and (in
//! [`node`]) a node run in the bench's process.
#![allow(dead_code)]

pub mod network;
pub mod node;

use std::time::Duration;

use anyhow::{Result, anyhow, bail};

/// `MCC_BENCH_QUICK=1` asks for the quick (smoke) run, like `--quick`.
pub fn quick_from_env() -> bool {
    std::env::var("MCC_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The cores of this machine (2 when unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// CPU seconds used so far by this process (all threads), from `/proc/self/stat` (Linux).
pub fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which may hold spaces, in parentheses: the state
    // is index 0, utime and stime (fields 14 and 15 of the line) indices 11 and 12.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ, which Linux fixes at 100 for this file.
    Some((user + system) / 100.0)
}

/// Tokio worker threads: `MCC_BENCH_THREADS`, else `default`.
pub fn threads(default: usize) -> Result<usize> {
    match std::env::var("MCC_BENCH_THREADS") {
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow!("MCC_BENCH_THREADS must be a positive integer, not {v:?}")),
        Err(_) => Ok(default),
    }
}

/// Walks the command line: `on_arg(arg, value)` for each argument, where `value()` takes the
/// argument's value (`--flag=v` or the next argument). The flags `cargo bench` and
/// `cargo test` pass (`--bench`, `--test`, `--nocapture`) are skipped.
pub fn for_each_arg(
    mut on_arg: impl FnMut(&str, &mut dyn FnMut() -> Result<String>) -> Result<()>,
) -> Result<()> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        if matches!(flag.as_str(), "--bench" | "--test" | "--nocapture") {
            continue;
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| anyhow!("{flag} needs a value"))
        };
        on_arg(&flag, &mut value)?;
    }
    Ok(())
}

/// With `RUST_LOG` set, logs what it selects (the nodes' logs among others) to stdout, as
/// `tracing_subscriber::fmt` does by default.
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
}

/// What Ctrl-C does while a bench runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtrlC {
    /// Nothing special: the process ends at once.
    Kill,
    /// The bench's future is dropped (and with it what it owns, such as child processes
    /// spawned with `kill_on_drop`) and an "interrupted" error is returned.
    Stop,
}

/// Runs `bench` to completion on a multi-thread tokio runtime with `threads` worker threads.
pub fn run_benchmark<T>(
    threads: usize,
    ctrl_c: CtrlC,
    bench: impl Future<Output = Result<T>>,
) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    match ctrl_c {
        CtrlC::Kill => runtime.block_on(bench),
        CtrlC::Stop => runtime.block_on(async {
            tokio::select! {
                r = bench => r,
                _ = tokio::signal::ctrl_c() => bail!("interrupted"),
            }
        }),
    }
}

/// A flag's value that must be a positive integer.
pub fn positive(flag: &str, v: &str) -> Result<usize> {
    v.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| anyhow!("{flag} takes a positive integer, not {v:?}"))
}

/// Runs `fut` under `cap`.
pub async fn capped<T>(
    cap: Duration,
    what: &str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(cap, fut)
        .await
        .map_err(|_| anyhow!("{what}: no result within {cap:?}"))?
}

/// The median (NaN when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `value / base`, or a dash when there is no base.
pub fn ratio(value: f64, base: Option<f64>) -> String {
    match base {
        Some(b) if b > 0.0 && value.is_finite() => format!("{:.2}", value / b),
        _ => "-".to_string(),
    }
}

/// "debug" or "optimized": what the numbers of this build are worth.
pub fn build_kind() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "optimized"
    }
}
