use std::process::ExitCode;

use clap::Parser;
use mcc::cli::{Cli, log_filter};

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
    mcc::daemon::run(resolved.daemon, shutdown_signal()).await?;
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
