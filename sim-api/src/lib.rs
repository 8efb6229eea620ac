//! The gRPC simulation API server: AuthService, SimulationService and ClusterService, plus
//! gRPC health, server reflection and grpc-web, all on one port.
//!
//! [`serve`] runs the server on a listener the caller bound, so tests can start it
//! in-process on port 0; `main.rs` only parses flags, migrates and binds.

pub mod auth;
mod cache_core;
pub mod clusters;
pub mod config;
pub mod cors;
pub mod error;
pub mod input_check;
pub mod listing;
pub mod metrics;
pub mod oidc;
pub mod oversize;
pub mod results;
pub mod simulations;
pub mod status;
pub mod status_cache;
pub mod submission;
pub mod submit_fields;
pub mod text;
pub mod token_cache;
pub mod watch;

pub use config::{Config, Limits};

use proto::v1::auth_service_server::AuthServiceServer;
use proto::v1::cluster_service_server::ClusterServiceServer;
use proto::v1::simulation_service_server::SimulationServiceServer;
use std::future::Future;
use std::sync::Arc;
use tonic::codec::CompressionEncoding;

/// How long in-flight calls may run after the shutdown signal (under Docker's and
/// systemd's default 10 s between SIGTERM and SIGKILL).
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(8);

/// What every service shares: the pool, the limits and the login backoff.
#[derive(Clone)]
pub struct AppState {
    /// The database pool.
    pub pool: db::Pool,
    /// Limits and token lifetimes.
    pub limits: Arc<Limits>,
    /// Per-username backoff after failed logins.
    pub backoff: Arc<auth::LoginBackoff>,
    /// The ID-token verifier of LoginOidc; `None` when OIDC is not configured.
    pub oidc: Option<Arc<oidc::OidcVerifier>>,
    /// Simulation events for `Watch` streams.
    pub events: Arc<watch::Events>,
    /// Recent access-token lookups.
    pub tokens: Arc<token_cache::TokenCache>,
    /// Recent `Get` answers.
    pub statuses: Arc<status_cache::StatusCache>,
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The reflection service could not be built from the descriptor set.
    #[error("cannot build the reflection service: {0}")]
    Reflection(String),
    /// The transport failed.
    #[error("server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves every service on `listener` until `shutdown` resolves, then stops accepting and
/// lets in-flight calls finish. OIDC login is not configured; see [`serve_with_oidc`].
pub async fn serve(
    pool: db::Pool,
    limits: Limits,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    serve_with(pool, limits, Extras::default(), listener, shutdown).await
}

/// [`serve`], with the verifier LoginOidc uses (`None`: LoginOidc is FAILED_PRECONDITION).
pub async fn serve_with_oidc(
    pool: db::Pool,
    limits: Limits,
    oidc: Option<Arc<oidc::OidcVerifier>>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let extras = Extras {
        oidc,
        ..Extras::default()
    };
    serve_with(pool, limits, extras, listener, shutdown).await
}

/// What a server may have besides its pool and limits.
#[derive(Default)]
pub struct Extras {
    /// The ID-token verifier of LoginOidc; `None`: LoginOidc is FAILED_PRECONDITION.
    pub oidc: Option<Arc<oidc::OidcVerifier>>,
    /// Where RPC latencies are counted (served by `--metrics-listen`); `None`: counted in
    /// a histogram nobody reads.
    pub rpc_metrics: Option<Arc<metrics::RpcMetrics>>,
    /// Other origins whose browser pages may call the API over grpc-web
    /// ([`cors::parse_origin`]); empty: none.
    pub cors_origins: Vec<String>,
}

/// [`serve`], with [`Extras`].
pub async fn serve_with(
    pool: db::Pool,
    limits: Limits,
    extras: Extras,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let Extras {
        oidc,
        rpc_metrics,
        cors_origins,
    } = extras;
    let rpc_metrics = rpc_metrics.unwrap_or_default();
    let max_request = limits.max_request_bytes;
    let tokens = Arc::new(token_cache::TokenCache::new(limits.token_cache_ttl));
    tokens.start(&pool);
    let events = Arc::new(watch::Events::default());
    let statuses = Arc::new(status_cache::StatusCache::new(limits.status_cache_ttl));
    statuses.start(&events, &pool);
    let state = AppState {
        tokens,
        statuses,
        pool,
        limits: Arc::new(limits),
        backoff: Arc::new(auth::LoginBackoff::default()),
        oidc,
        events,
    };
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<AuthServiceServer<auth::AuthSvc>>()
        .await;
    health_reporter
        .set_serving::<SimulationServiceServer<simulations::SimulationSvc>>()
        .await;
    health_reporter
        .set_serving::<ClusterServiceServer<clusters::ClusterSvc>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;

    let auth = AuthServiceServer::new(auth::AuthSvc::new(state.clone()))
        .max_decoding_message_size(max_request)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    let sims = SimulationServiceServer::new(simulations::SimulationSvc::new(state.clone()))
        .max_decoding_message_size(max_request)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    let clusters = ClusterServiceServer::new(clusters::ClusterSvc::new(state.clone()))
        .max_decoding_message_size(max_request)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);

    // Without TCP_NODELAY a response written in two pieces waits for the client's delayed
    // ACK (40 ms on Linux): `Get`'s p50 was that delay.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    // The LISTEN tasks hold the pool: stop them with the server, also when it fails.
    let listeners = (
        state.tokens.clone(),
        state.events.clone(),
        state.statuses.clone(),
    );
    // On the shutdown signal: Watch streams end, and in-flight calls get SHUTDOWN_GRACE.
    let (fired_tx, mut fired) = tokio::sync::watch::channel(false);
    let shutdown = {
        let events = state.events.clone();
        async move {
            shutdown.await;
            events.shut_down();
            fired_tx.send_replace(true);
        }
    };
    let deadline = async move {
        if fired.wait_for(|f| *f).await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let serving = tonic::transport::Server::builder()
        .trace_fn(rpc_span)
        .accept_http1(true)
        // Outside grpc-web: a browser's preflight (OPTIONS) is answered before it.
        .layer(tower::util::option_layer(cors::layer(&cors_origins)))
        .layer(tonic_web::GrpcWebLayer::new())
        // Inside grpc-web (which moves the status into the body), outside the remap of
        // oversized requests (so that they count as RESOURCE_EXHAUSTED).
        .layer(metrics::RpcMetricsLayer(rpc_metrics))
        .layer(tower::util::MapResponseLayer::new(oversize::remap))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(auth)
        .add_service(sims)
        .add_service(clusters)
        .serve_with_incoming_shutdown(incoming, shutdown);
    let served = tokio::select! {
        served = serving => served,
        () = deadline => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "calls still running after the grace period: stopping");
            Ok(())
        }
    };
    listeners.0.stop();
    listeners.1.stop();
    listeners.2.stop();
    served?;
    Ok(())
}

/// The span of one RPC: its method (the gRPC path, e.g. `/sim.v1.SimulationService/Submit`),
/// once [`auth`] has checked the token the caller's user id, and for `Submit` the new
/// simulation's id (the `simulation` of the worker's task spans). Every line logged while the
/// call runs carries them; headers (and so tokens) are never recorded.
fn rpc_span(req: &http::Request<()>) -> tracing::Span {
    tracing::info_span!(
        "rpc",
        method = %req.uri().path(),
        caller = tracing::field::Empty,
        simulation = tracing::field::Empty,
    )
}
