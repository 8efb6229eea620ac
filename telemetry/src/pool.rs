//! The database pool's figures, read from bb8's counters at each scrape.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Reports a pool's size, use and waits:
///
/// - `sim_db_pool_connections`: connections open (idle or in use);
/// - `sim_db_pool_connections_in_use`: connections handed out now;
/// - `sim_db_pool_gets_pending`: callers waiting for a connection now;
/// - `sim_db_pool_waits_total`: gets that had to wait for a connection;
/// - `sim_db_pool_wait_seconds_total`: the time spent waiting, in all;
/// - `sim_db_pool_timeouts_total`: gets that gave up waiting;
/// - `sim_db_pool_broken_total`: connections closed because they were broken.
#[derive(Debug)]
pub struct PoolCollector {
    pool: db::Pool,
}

impl PoolCollector {
    /// A collector of `pool`'s figures.
    pub fn new(pool: db::Pool) -> Self {
        Self { pool }
    }
}

fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counter<N>(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: N) -> std::fmt::Result
where
    N: prometheus_client::encoding::EncodeCounterValue,
{
    let c = ConstCounter::new(v);
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

impl Collector for PoolCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> std::fmt::Result {
        let state = self.pool.state();
        let stats = &state.statistics;
        let open = i64::from(state.connections);
        let in_use = open - i64::from(state.idle_connections);
        gauge(
            &mut e,
            "sim_db_pool_connections",
            "Database connections open",
            open,
        )?;
        gauge(
            &mut e,
            "sim_db_pool_connections_in_use",
            "Database connections handed out",
            in_use,
        )?;
        let pending = i64::try_from(stats.pending_gets()).unwrap_or(i64::MAX);
        gauge(
            &mut e,
            "sim_db_pool_gets_pending",
            "Callers waiting for a database connection",
            pending,
        )?;
        counter(
            &mut e,
            "sim_db_pool_waits",
            "Gets of a database connection that had to wait",
            stats.get_waited,
        )?;
        counter(
            &mut e,
            "sim_db_pool_wait_seconds",
            "Time spent waiting for a database connection",
            stats.get_wait_time.as_secs_f64(),
        )?;
        counter(
            &mut e,
            "sim_db_pool_timeouts",
            "Gets of a database connection that timed out",
            stats.get_timed_out,
        )?;
        counter(
            &mut e,
            "sim_db_pool_broken",
            "Database connections closed because they were broken",
            stats.connections_closed_broken,
        )
    }
}
