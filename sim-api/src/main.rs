//! `sim-api`: parses flags, applies pending migrations (under the advisory lock; a database
//! newer than this binary is refused), binds, prints `listening on ADDR`, and serves until
//! SIGTERM or SIGINT.

use anyhow::Context as _;
use clap::Parser as _;
use sim_api::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    // Logs go to stderr; stdout carries only the `listening on ADDR` line.
    db::config::logging::init(config.log.log_format, "info");
    let db_config = config.db_config().context("database settings")?;
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
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr().context("bound address")?;
    println!("listening on {addr}");
    tracing::info!(%addr, database = %db_config, "sim-api started");
    sim_api::serve_with_oidc(pool, config.limits(), oidc, listener, shutdown_signal()).await?;
    tracing::info!("sim-api stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight calls");
}
