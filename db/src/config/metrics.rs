//! Metrics: `--metrics-listen ADDR` ([`MetricsArgs`], env `METRICS_LISTEN`), the one flag
//! with which `sim-api` and `worker` serve Prometheus metrics. Off by default.

use std::net::SocketAddr;

/// The metrics flag: flatten this into a service's flags (`#[command(flatten)]`).
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics (`GET /metrics`) and a liveness check (`GET /healthz`) over
    /// plain HTTP on this address, e.g. 127.0.0.1:9464; port 0 picks a free port (printed
    /// as `metrics on ADDR`). Off when unset. The endpoint has no authentication: bind it
    /// to an address only the scraper reaches.
    #[arg(long, env = "METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}
