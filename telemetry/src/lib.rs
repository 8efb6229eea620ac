//! Prometheus metrics of `sim-api` and `worker`, served on a separate listen address
//! (`--metrics-listen`, [`db::config::MetricsArgs`]; off by default).
//!
//! - [`Metrics`]: the registry. Every service's registry holds the database pool's figures
//!   ([`pool`]), the queue's depth ([`queue`], read from the database at each scrape) and
//!   `sim_healthy`; each binary registers its own metrics beside them (`sim_api::metrics`,
//!   `worker::metrics`).
//! - [`server::serve`]: the HTTP endpoint: `GET /metrics` in the OpenMetrics text format,
//!   `GET /healthz` (200 when healthy, 503 when not).
//! - [`probe::probe`]: a `GET` of such an endpoint, for container health checks.
//!
//! The metrics are the Prometheus project's own Rust client (`prometheus-client`). Every
//! name starts with `sim_`; durations are in seconds (the Prometheus naming conventions,
//! <https://prometheus.io/docs/practices/naming/>).

pub mod pool;
pub mod probe;
pub mod queue;
pub mod server;

pub use prometheus_client;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// A health check: `true` while the service works.
pub type HealthCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// One service's metrics: its registry, and what is refreshed at each scrape.
pub struct Metrics {
    registry: Registry,
    queue: queue::QueueGauges,
    healthy: Gauge,
    health: HealthCheck,
    pool: db::Pool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry with the figures of `pool` and of the queue in its database, and
    /// `sim_healthy` (1 while `health` says so, else 0). `register` adds the service's own
    /// metrics.
    pub fn new(pool: db::Pool, health: HealthCheck, register: impl FnOnce(&mut Registry)) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(pool::PoolCollector::new(pool.clone())));
        let queue = queue::QueueGauges::default();
        queue.register(&mut registry);
        let healthy = Gauge::default();
        registry.register(
            "sim_healthy",
            "1 while this process works (a worker whose machine keeps failing tasks is 0)",
            healthy.clone(),
        );
        register(&mut registry);
        Self {
            registry,
            queue,
            healthy,
            health,
            pool,
        }
    }

    /// Whether the service is healthy now.
    pub fn healthy(&self) -> bool {
        (self.health)()
    }

    /// Every metric in the OpenMetrics text format, after reading the queue's depth (a
    /// failed read leaves the queue figures as they were and sets `sim_queue_up` to 0).
    pub async fn render(&self) -> String {
        self.queue.refresh(&self.pool).await;
        self.healthy.set(i64::from(self.healthy()));
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        text
    }
}
