//! `worker`: claims tasks from the PostgreSQL queue, runs simulators, stores results. The
//! command line ([`config::Config`]) becomes plain [`worker::Settings`], and a
//! [`worker::Runner`] with the chosen handler runs until SIGTERM or SIGINT.

mod config;

use clap::Parser;
use std::process::ExitCode;
use worker::handlers::Standard;
use worker::Runner;

fn main() -> ExitCode {
    let cfg = config::Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cfg: config::Config) -> anyhow::Result<()> {
    let db_config = cfg.db_config()?;
    let settings = cfg.settings();
    tracing::info!(handler = ?settings.handler, "handler");
    let handler = Standard::new(&settings.handler, settings.simulators.clone());
    let runner = Runner::connect(settings, &db_config, handler).await?;
    println!("worker {} ready", runner.worker_id());
    runner.run(shutdown_signal()).await;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, run until killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
}
