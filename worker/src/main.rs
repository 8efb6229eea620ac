//! `worker`: claims tasks from the PostgreSQL queue, runs simulators, stores results. The
//! command line ([`config::Config`]) becomes plain [`worker::Settings`], and a
//! [`worker::Runner`] with the chosen handler runs until SIGTERM or SIGINT.

mod config;

use clap::Parser;
use std::process::ExitCode;
use worker::handlers::Standard;
use worker::Runner;

#[tokio::main]
async fn main() -> ExitCode {
    let cfg = config::Config::parse();
    db::config::logging::init(cfg.log.log_format, "info");
    let result = match cfg.command.clone() {
        None => run(cfg).await,
        Some(config::Command::Batch(args)) => batch(args).await,
        Some(config::Command::Element(args)) => return element(args).await,
        Some(config::Command::Probe(args)) => probe(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cfg: config::Config) -> anyhow::Result<()> {
    let db_config = cfg.db_config()?.with_application_name("worker");
    let settings = cfg.settings();
    tracing::info!(handler = ?settings.handler, "handler");
    let handler = Standard::new(&settings.handler, settings.simulators.clone());
    let runner = Runner::connect(settings, &db_config, handler).await?;
    let metrics_server = match cfg.metrics.addr() {
        Some(addr) => {
            let own = runner.metrics().clone();
            let metrics = telemetry::Metrics::new(
                runner.pool().clone(),
                std::sync::Arc::new(runner.health_check()),
                |registry| own.register(registry),
            );
            Some(telemetry::server::start(addr, metrics).await?)
        }
        None => None,
    };
    let shutdown = shutdown_signal();
    println!("worker {} ready", runner.worker_id());
    runner.run(shutdown).await;
    if let Some(server) = metrics_server {
        server.abort();
    }
    Ok(())
}

/// `worker probe`: GET the URL; an error (exit code 1) unless it answers 2xx.
async fn probe(args: config::ProbeArgs) -> anyhow::Result<()> {
    telemetry::probe::probe(&args.url, args.timeout).await?;
    println!("healthy");
    Ok(())
}

/// `worker batch`: the batch component, until SIGTERM or SIGINT.
async fn batch(args: config::BatchArgs) -> anyhow::Result<()> {
    let db_config = args.db.config()?.with_application_name("worker-batch");
    let settings = args.settings();
    let applied = db::migrate::run_pending(&db_config).await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "applied migrations");
    }
    let pool = db::build_pool(&db_config, &db::PoolOptions::default()).await?;
    let metrics_server = match args.metrics.addr() {
        Some(addr) => {
            let metrics =
                telemetry::Metrics::new(pool.clone(), std::sync::Arc::new(|| true), |_| {});
            Some(telemetry::server::start(addr, metrics).await?)
        }
        None => None,
    };
    std::fs::create_dir_all(&settings.control_dir)?;
    let shutdown = shutdown_signal();
    println!(
        "batch component {} ready (poll every {})",
        settings.owner,
        db::config::format_duration(settings.poll)
    );
    worker::batch::driver::run(pool, settings, shutdown).await?;
    if let Some(server) = metrics_server {
        server.abort();
    }
    Ok(())
}

/// `worker element`: one array element; its exit code says how the task ended.
async fn element(args: config::ElementArgs) -> ExitCode {
    let settings = args.simulators.settings(args.job_dir.clone(), false);
    let (stop_tx, stop) = tokio::sync::watch::channel(worker::Stop::No);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(worker::Stop::Canceled);
        // Keep the sender alive until the element ends.
        std::future::pending::<()>().await;
    });
    let exit = worker::batch::element::run(&settings, &args.job_dir, args.index, stop).await;
    ExitCode::from(exit.code)
}

/// Installs the SIGTERM and SIGINT handlers at once, and returns a future that resolves on
/// either. (Installed only when first polled, a signal arriving before that, say just after
/// the first claims, killed the process instead of stopping it.)
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            // Without signal handlers, run until killed.
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
    }
}
