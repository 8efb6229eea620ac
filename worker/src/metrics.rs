//! The worker's own metrics, registered beside the shared ones of `telemetry` when
//! `--metrics-listen` is set (and counted either way: a few atomic additions per task).
//!
//! - `sim_worker_claims_total`: tasks claimed;
//! - `sim_worker_tasks_total{outcome}`: task outcomes recorded, by `completed`, `failed`,
//!   `machine_fault` (handed to another worker), `released` (handed back at shutdown) and
//!   `canceled`;
//! - `sim_worker_task_seconds`: how long handlers ran (histogram);
//! - `sim_worker_merge_seconds`: how long storing a completed task's pages took, its fold
//!   into the simulation's running sums and the final merge when it was the last (histogram);
//! - `sim_worker_primaries_total`: primaries of completed tasks; `rate()` of it is the
//!   primaries simulated per second.

use crate::execute::{Outcome, Stop};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// The label of `sim_worker_tasks_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `completed`, `failed`, `machine_fault`, `released` or `canceled`.
    pub outcome: &'static str,
}

/// One worker's counters and histograms.
#[derive(Debug, Clone)]
pub struct WorkerMetrics {
    claims: Counter,
    outcomes: Family<OutcomeLabel, Counter>,
    task_seconds: Histogram,
    merge_seconds: Histogram,
    primaries: Counter,
}

/// Every outcome label, created at 0 so that a fresh worker reports each one.
const OUTCOMES: [&str; 5] = [
    "completed",
    "failed",
    "machine_fault",
    "released",
    "canceled",
];

impl Default for WorkerMetrics {
    fn default() -> Self {
        // 10 ms to ~5.8 h in factors of 4 (a noop task to a long simulation).
        let task = || Histogram::new(exponential_buckets(0.01, 4.0, 12));
        // 1 ms to ~65 s in factors of 4.
        let merge = || Histogram::new(exponential_buckets(0.001, 4.0, 9));
        let outcomes = Family::<OutcomeLabel, Counter>::default();
        for outcome in OUTCOMES {
            let _ = outcomes.get_or_create(&OutcomeLabel { outcome });
        }
        Self {
            claims: Counter::default(),
            outcomes,
            task_seconds: task(),
            merge_seconds: merge(),
            primaries: Counter::default(),
        }
    }
}

impl WorkerMetrics {
    /// Adds every metric to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("sim_worker_claims", "Tasks claimed", self.claims.clone());
        registry.register(
            "sim_worker_tasks",
            "Task outcomes recorded, by outcome",
            self.outcomes.clone(),
        );
        registry.register(
            "sim_worker_task_seconds",
            "How long task handlers ran",
            self.task_seconds.clone(),
        );
        registry.register(
            "sim_worker_merge_seconds",
            "How long storing and merging a completed task's result pages took",
            self.merge_seconds.clone(),
        );
        registry.register(
            "sim_worker_primaries",
            "Primaries simulated by completed tasks",
            self.primaries.clone(),
        );
    }

    /// `n` tasks were claimed.
    pub fn claimed(&self, n: usize) {
        self.claims.inc_by(n as u64);
    }

    /// A handler ran for `took`.
    pub fn ran(&self, took: Duration) {
        self.task_seconds.observe(took.as_secs_f64());
    }

    /// `outcome` was recorded; `merge` is how long writing it took when it stored pages.
    pub fn recorded(&self, outcome: &Outcome, merge: Option<Duration>) {
        let label = match outcome {
            Outcome::Done {
                simulated_primaries,
                ..
            } => {
                self.primaries
                    .inc_by(u64::try_from(*simulated_primaries).unwrap_or(0));
                "completed"
            }
            Outcome::Failed { .. } => "failed",
            Outcome::MachineFault { .. } => "machine_fault",
            Outcome::Stopped(Stop::Canceled) | Outcome::Stopped(Stop::No) => "canceled",
            Outcome::Stopped(_) => "released",
        };
        self.outcomes
            .get_or_create(&OutcomeLabel { outcome: label })
            .inc();
        if let Some(took) = merge {
            self.merge_seconds.observe(took.as_secs_f64());
        }
    }
}
