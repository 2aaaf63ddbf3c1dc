use std::process::ExitCode;

use clap::Parser;
use mcc::cli::{Cli, log_filter};

// jemalloc, with its heap profiler compiled in but inactive until `--heap-profile` turns it on
// (`mcc::profile::heap`): `prof:true` reserves the machinery, `prof_active:false` samples
// nothing, `lg_prof_sample:19` samples one allocation per 512 KiB on average once active.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(target_os = "linux")]
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"prof:true,prof_active:false,lg_prof_sample:19\0";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors can carry peers' words (refusal reasons, RPC errors).
            eprintln!("error: {}", mcc::term::escape_text(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(cmd) = cli.command {
        // A client command piped into `head` should end quietly, like other Unix tools.
        // (Never for the daemon: it must not die on a closed socket.)
        #[cfg(unix)]
        // SAFETY: setting a signal disposition before any other thread writes to stdout.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
        return Ok(mcc::cli::run_command(cmd, &cli.common).await?);
    }
    if cli.daemon.newcert {
        return Ok(mcc::cli::newcert(&cli.daemon, &cli.common)?);
    }
    // Everything the daemon creates (stores, key, service list) is for this user only.
    #[cfg(unix)]
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
    let resolved = cli
        .daemon
        .resolve(cli.common.data_folder, cli.common.api_token)?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_filter(resolved.loglevel)));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // The first Ctrl-C/SIGTERM stops the node gracefully; a second one, or SHUTDOWN_GRACE
    // without the node having stopped, ends the process at once. Stores are crash-safe (atomic
    // writes, redb commits), so an early exit loses no stored data.
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    let mut signals = Signals::new();
    tokio::spawn(async move {
        signals.recv().await;
        tracing::info!("shutting down (a second signal exits at once)");
        let _ = first_tx.send(());
        signals.recv().await;
        eprintln!("second signal: exiting now");
        std::process::exit(130);
    });
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = first_rx.await;
        let _ = signalled_tx.send(());
    };
    let grace = async move {
        if signalled_rx.await.is_err() {
            // The daemon ended on its own: nothing to wait for.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let profiler = mcc::profile::start(resolved.profile)?;
    let result = tokio::select! {
        r = mcc::daemon::run(resolved.daemon, shutdown) => r,
        _ = grace => {
            tracing::warn!(
                "in-flight work did not finish within {:.1} s of the signal: exiting",
                SHUTDOWN_GRACE.as_secs_f64()
            );
            finish_profiles(profiler).await;
            // Not through the runtime's drop, which would wait for blocking tasks.
            std::process::exit(0);
        }
    };
    finish_profiles(profiler).await;
    Ok(result?)
}

/// Writes the last profiles (`--cpu-profile` and the others), within a bound.
async fn finish_profiles(profiler: mcc::profile::Profiler) {
    if tokio::time::timeout(PROFILE_GRACE, profiler.finish())
        .await
        .is_err()
    {
        tracing::warn!("the last profiles were not written within {PROFILE_GRACE:?}");
    }
}

/// How long the last profiles may take to write at exit.
const PROFILE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a stopping daemon may take to finish in-flight requests and stop its tasks.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(4500);

/// Ctrl-C and SIGTERM, registered once so that no second signal is missed.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Completes on the next Ctrl-C or SIGTERM.
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = next(&mut self.term) => {},
                _ = next(&mut self.int) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
