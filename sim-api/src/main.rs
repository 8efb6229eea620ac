//! `sim-api`: parses flags, applies pending migrations (under the advisory lock; a database
//! newer than this binary is refused), binds, prints `listening on ADDR`, and serves until
//! SIGTERM or SIGINT.

use anyhow::Context as _;
use clap::Parser as _;
use sim_api::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Config::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes.
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    // Logs go to stderr; stdout carries only the `listening on ADDR` line.
    db::config::logging::init(config.log.log_format, "info");
    if let Some(sim_api::config::Command::Probe(args)) = &config.command {
        return probe(args).await;
    }
    let db_config = config
        .db_config()
        .context("database settings")?
        .with_application_name("sim-api");
    let oidc = match config.oidc()? {
        Some(settings) => Some(std::sync::Arc::new(
            sim_api::oidc::OidcVerifier::new(settings)
                .await
                .context("OIDC settings")?,
        )),
        None => None,
    };
    let applied = db::migrate::run_pending(&db_config)
        .await
        .context("applying migrations")?;
    if !applied.is_empty() {
        tracing::info!(migrations = ?applied, "applied migrations");
    }
    let pool = db::build_pool(
        &db_config,
        &db::PoolOptions {
            max_size: config.db_pool_size,
            ..db::PoolOptions::default()
        },
    )
    .await
    .context("connecting to the database")?;
    // The API's own port first: when it is taken, nothing else has started or printed.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let rpc_metrics = std::sync::Arc::new(sim_api::metrics::RpcMetrics::default());
    // Unhealthy from the shutdown signal on, so that a balancer stops sending calls.
    let stopping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let healthy = {
        let stopping = stopping.clone();
        move || !stopping.load(std::sync::atomic::Ordering::Acquire)
    };
    let metrics_server = match config.metrics.addr() {
        Some(addr) => {
            let own = rpc_metrics.clone();
            let metrics =
                telemetry::Metrics::new(pool.clone(), std::sync::Arc::new(healthy), |registry| {
                    own.register(registry)
                });
            Some(telemetry::server::start(addr, metrics).await?)
        }
        None => None,
    };
    let addr = listener.local_addr().context("bound address")?;
    let signal = shutdown_signal();
    println!("listening on {addr}");
    tracing::info!(%addr, database = %db_config, "sim-api started");
    let extras = sim_api::Extras {
        oidc,
        rpc_metrics: Some(rpc_metrics),
        cors_origins: config.cors_allow_origins.clone(),
    };
    let shutdown = async move {
        signal.await;
        stopping.store(true, std::sync::atomic::Ordering::Release);
    };
    sim_api::serve_with(pool, config.limits(), extras, listener, shutdown).await?;
    if let Some(server) = metrics_server {
        server.abort();
    }
    tracing::info!("sim-api stopped");
    Ok(())
}

/// `sim-api probe`: the gRPC health of the whole server (service ""); an error (exit code 1)
/// unless it is SERVING.
async fn probe(args: &sim_api::config::ProbeArgs) -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    anyhow::ensure!(
        args.url.starts_with("http://"),
        "not an http:// URL: {:?} (the probe speaks plaintext gRPC, as sim-api serves it)",
        args.url
    );
    let ask = async {
        // tonic's transport error repeats its cause in its own text: keep only the cause.
        let channel = tonic::transport::Endpoint::from_shared(args.url.clone())?
            .connect()
            .await
            .map_err(|e| {
                let mut cause: &dyn std::error::Error = &e;
                while let Some(next) = cause.source() {
                    cause = next;
                }
                anyhow::anyhow!("cannot connect: {cause}")
            })?;
        let answer = tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await?;
        anyhow::Ok(answer.into_inner().status())
    };
    let status = tokio::time::timeout(args.timeout, ask)
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {} within {:?}", args.url, args.timeout))?
        .with_context(|| format!("no health answer from {}", args.url))?;
    anyhow::ensure!(
        status == ServingStatus::Serving,
        "{} is {}",
        args.url,
        status.as_str_name()
    );
    println!("SERVING");
    Ok(())
}

/// Installs the SIGTERM and SIGINT handlers at once (so that a signal arriving before the
/// server first polls the future stops it rather than killing it), and returns a future
/// that resolves on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = [SignalKind::terminate(), SignalKind::interrupt()].map(signal);
    async move {
        let [Ok(mut term), Ok(mut int)] = handlers else {
            tracing::error!("cannot listen for SIGTERM and SIGINT: running until killed");
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutting down: finishing in-flight calls");
    }
}
