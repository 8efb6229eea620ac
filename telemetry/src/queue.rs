//! The queue's depth, read from the database at each scrape ([`db::queue::stats::depth`]).

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// The label of `sim_queue_tasks`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct StateLabel {
    /// `pending` (all of them), `due` (pending, and due now) or `running`.
    pub state: &'static str,
}

/// The gauges of the queue:
///
/// - `sim_queue_tasks{state}`: open tasks; `state` is `pending` (every pending task),
///   `due` (pending tasks a worker would claim now) or `running`;
/// - `sim_queue_oldest_due_seconds`: how long the oldest due task has waited (0 when none);
/// - `sim_queue_up`: 1 when the last read of the queue succeeded, else 0.
#[derive(Debug, Clone, Default)]
pub struct QueueGauges {
    tasks: Family<StateLabel, Gauge>,
    oldest_due: Gauge<f64, AtomicU64>,
    up: Gauge,
}

impl QueueGauges {
    /// Adds the gauges to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("sim_queue_tasks", "Open tasks by state", self.tasks.clone());
        registry.register(
            "sim_queue_oldest_due_seconds",
            "How long the oldest due task has waited to be claimed",
            self.oldest_due.clone(),
        );
        registry.register(
            "sim_queue_up",
            "1 when the last read of the queue's depth succeeded",
            self.up.clone(),
        );
    }

    /// Reads the queue's depth from the database of `pool`; on failure the figures stay as
    /// they were and `sim_queue_up` is 0.
    pub async fn refresh(&self, pool: &db::Pool) {
        let depth = match pool.get().await {
            Ok(mut conn) => db::queue::stats::depth(&mut conn).await,
            Err(e) => Err(db::DbError::from(e)),
        };
        match depth {
            Ok(d) => {
                self.set("pending", d.pending);
                self.set("due", d.due);
                self.set("running", d.running);
                self.oldest_due
                    .set(d.oldest_due_secs.unwrap_or(0.0).max(0.0));
                self.up.set(1);
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot read the queue's depth");
                self.up.set(0);
            }
        }
    }

    fn set(&self, state: &'static str, n: i64) {
        self.tasks.get_or_create(&StateLabel { state }).set(n);
    }
}
