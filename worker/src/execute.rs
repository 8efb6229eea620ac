//! Running one claimed task: the handler, progress reports (at most one write a second), and
//! stopping on cancellation or shutdown.

use crate::config::Handler;
use db::queue::{self, ClaimedTask, Lease};
use db::Pool;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Why a run was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Keep running.
    No,
    /// The simulation was canceled, or the lease was lost.
    Canceled,
    /// The worker is shutting down: hand the task back.
    Shutdown,
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// Finished, having simulated this many primaries.
    Done {
        /// Primaries simulated.
        simulated_primaries: i64,
        /// Result pages to merge (none for the queue-test handlers).
        pages: Vec<db::results::TaskPage>,
    },
    /// Failed; `retry` says whether another attempt may help (`false` for an input fault).
    Failed {
        /// What went wrong, for `last_error`.
        error: String,
        /// Whether to retry (if attempts remain).
        retry: bool,
    },
    /// This machine failed the run (a full disk, an I/O error, a simulator program missing
    /// here): the task goes to another worker without using an attempt, up to
    /// [`crate::runner::health::FREE_RELEASES`] times, and the worker's health counts it.
    MachineFault {
        /// What went wrong, for `last_error`.
        error: String,
        /// Which fault.
        fault: crate::simulators::MachineFault,
    },
    /// Stopped before the end.
    Stopped(Stop),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Done {
                simulated_primaries,
                pages,
            } => write!(
                f,
                "completed ({simulated_primaries} primaries, {} pages)",
                pages.len()
            ),
            Outcome::Failed { error, retry } => write!(f, "failed (retry: {retry}): {error}"),
            Outcome::MachineFault { error, .. } => {
                write!(f, "machine fault: {error}")
            }
            Outcome::Stopped(Stop::Shutdown) => f.write_str("handed back at shutdown"),
            Outcome::Stopped(_) => f.write_str("canceled"),
        }
    }
}

/// Writes progress at most once a second; says when the lease is gone.
pub struct ProgressReporter {
    pool: Pool,
    lease: Lease,
    last: Option<Instant>,
    every: Duration,
}

impl ProgressReporter {
    /// A reporter for one run.
    pub fn new(pool: Pool, lease: Lease) -> Self {
        Self {
            pool,
            lease,
            last: None,
            every: Duration::from_secs(1),
        }
    }

    /// Records progress unless the last write was under a second ago. Returns false when the
    /// lease is gone and the run should stop.
    pub async fn report(&mut self, simulated: i64, eta_s: Option<i32>, force: bool) -> bool {
        if !force && self.last.is_some_and(|t| t.elapsed() < self.every) {
            return true;
        }
        self.last = Some(Instant::now());
        let Ok(mut conn) = self.pool.get().await else {
            return true;
        };
        match queue::report_progress(&mut conn, &self.lease, simulated, eta_s).await {
            Ok(()) => true,
            Err(e) if queue::is_lease_lost(&e) => false,
            Err(e) => {
                tracing::warn!(task = self.lease.task_id, error = %e, "progress not recorded");
                true
            }
        }
    }
}

/// Runs a claimed task with the configured handler, and records how it ended in this
/// worker's health ([`crate::runner::health`]).
pub async fn run(
    handler: &Handler,
    pool: &Pool,
    task: &ClaimedTask,
    lease: &Lease,
    stop: watch::Receiver<Stop>,
) -> Outcome {
    let outcome = handle(handler, pool, task, lease, stop).await;
    crate::runner::health::this_worker().record(&outcome);
    outcome
}

async fn handle(
    handler: &Handler,
    pool: &Pool,
    task: &ClaimedTask,
    lease: &Lease,
    stop: watch::Receiver<Stop>,
) -> Outcome {
    match handler {
        Handler::Noop => Outcome::Done {
            simulated_primaries: task.requested_primaries,
            pages: Vec::new(),
        },
        Handler::Sleep(d) => sleep(pool, task, lease, *d, stop).await,
        Handler::Panic => panic!("task {}: the panic handler panics, as asked", task.id),
        Handler::Simulators(settings) => {
            crate::simulators::run(pool, settings, task, lease, stop).await
        }
    }
}

/// Pretends to simulate for `total`, reporting progress; stops when told to.
async fn sleep(
    pool: &Pool,
    task: &ClaimedTask,
    lease: &Lease,
    total: Duration,
    mut stop: watch::Receiver<Stop>,
) -> Outcome {
    let mut reporter = ProgressReporter::new(pool.clone(), lease.clone());
    let start = Instant::now();
    let tick = Duration::from_millis(50);
    loop {
        let elapsed = start.elapsed();
        if elapsed >= total {
            return Outcome::Done {
                simulated_primaries: task.requested_primaries,
                pages: Vec::new(),
            };
        }
        let frac = elapsed.as_secs_f64() / total.as_secs_f64().max(1e-9);
        let done = (task.requested_primaries as f64 * frac) as i64;
        let eta = (total - elapsed).as_secs() as i32;
        if !reporter.report(done, Some(eta), false).await {
            return Outcome::Stopped(Stop::Canceled);
        }
        tokio::select! {
            _ = tokio::time::sleep(tick.min(total - elapsed)) => {}
            changed = stop.changed() => {
                let why = *stop.borrow();
                if changed.is_err() || why != Stop::No {
                    return Outcome::Stopped(if why == Stop::No { Stop::Canceled } else { why });
                }
            }
        }
    }
}
