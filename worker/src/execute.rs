//! What running one claimed task means: the [`TaskHandler`] trait that the simulators (and
//! tests) implement, the [`TaskContext`] a run gets (progress reports, at most one write a
//! second; stop requests on cancellation or shutdown), and the [`Outcome`] it ends with.
//!
//! This module is the bottom layer of the worker: it depends on `db` (and `slurm`'s
//! progress line) only.

use crate::retry::LeaseExpiry;
use db::enums::SimType;
use db::queue::{self, ClaimedTask, Lease};
use db::Pool;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Runs claimed tasks. The runner calls [`TaskHandler::run`] once per claimed task, each
/// call in a tokio task of its own (a panic fails only that task), at most `concurrency` at
/// once.
///
/// A handler should watch [`TaskContext::stopped`] and return [`Outcome::Stopped`] soon after
/// it resolves; it may report progress with [`TaskContext::report`]. Implementations may
/// write `async fn run(&self, task: &ClaimedTask, ctx: TaskContext) -> Outcome`.
pub trait TaskHandler: Send + Sync + 'static {
    /// Runs `task` to its end and says how it ended.
    fn run(&self, task: &ClaimedTask, ctx: TaskContext) -> impl Future<Output = Outcome> + Send;

    /// The simulators (`sim_type`) whose tasks this handler runs. The runner claims only
    /// tasks of these; the others stay `PENDING` for a worker that runs them. Every one by
    /// default, for handlers that do not look at `sim_type` (the queue's stand-ins, tests).
    fn sim_types(&self) -> Vec<SimType> {
        SimType::ALL.to_vec()
    }
}

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

/// A fault of this worker's machine rather than of the task: another worker may well run the
/// task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MachineFault {
    /// The work root's filesystem is full, or over quota (`ENOSPC`, `EDQUOT`).
    #[error("disk full")]
    DiskFull,
    /// Reading or writing files under the work root failed otherwise (`EIO`, a read-only
    /// filesystem, …).
    #[error("storage failure")]
    Storage,
    /// A program this worker is configured with does not exist here, cannot be executed, or
    /// could not be started (also a wrapper that exits 126 or 127: its program or interpreter
    /// is missing).
    #[error("program cannot run on this worker")]
    Program,
    /// A program was killed by the machine: SIGBUS (storage failing under a mapped file) or
    /// SIGXFSZ (a file size limit).
    #[error("program killed by the system")]
    Killed,
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
    /// `FREE_RELEASES` times (see the `outcome` module), and the worker's health counts it.
    MachineFault {
        /// What went wrong, for `last_error`.
        error: String,
        /// Which fault.
        fault: MachineFault,
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

/// What one run of a task gets: where its progress goes (the queue, under its lease, or a
/// file for an offline SLURM array element), and stop requests.
pub struct TaskContext {
    progress: ProgressSink,
    stop: watch::Receiver<Stop>,
}

/// Where a run's progress goes.
enum ProgressSink {
    /// The task's row, under the run's lease.
    Queue(ProgressReporter),
    /// A batch element's progress file ([`slurm::job_dir::Progress`] lines), which the batch
    /// component reads on the cluster.
    File(FileProgress),
}

impl TaskContext {
    /// The context of a run holding `lease` (which expires as `expiry` says), told to stop
    /// through `stop`.
    pub(crate) fn new(
        pool: Pool,
        lease: Lease,
        expiry: LeaseExpiry,
        stop: watch::Receiver<Stop>,
    ) -> Self {
        Self {
            progress: ProgressSink::Queue(ProgressReporter::new(pool, lease, expiry)),
            stop,
        }
    }

    /// The context of an offline run (`worker element` on a cluster node): no database;
    /// progress is written to `progress_file` (replaced atomically, at most once a second).
    pub fn offline(progress_file: PathBuf, stop: watch::Receiver<Stop>) -> Self {
        Self {
            progress: ProgressSink::File(FileProgress {
                path: progress_file,
                last: None,
            }),
            stop,
        }
    }

    /// The worker's database pool; `None` for an offline run.
    pub fn pool(&self) -> Option<&Pool> {
        match &self.progress {
            ProgressSink::Queue(r) => Some(&r.pool),
            ProgressSink::File(_) => None,
        }
    }

    /// The lease this run holds on its task; `None` for an offline run.
    pub fn lease(&self) -> Option<&Lease> {
        match &self.progress {
            ProgressSink::Queue(r) => Some(&r.lease),
            ProgressSink::File(_) => None,
        }
    }

    /// When this run's lease expires, as far as the worker knows; `None` for an offline run.
    /// Writes of the run's logs keep trying through database outages until then.
    pub fn lease_expiry(&self) -> Option<&LeaseExpiry> {
        match &self.progress {
            ProgressSink::Queue(r) => Some(&r.expiry),
            ProgressSink::File(_) => None,
        }
    }

    /// Records progress (primaries done, seconds left) unless the last write was under a
    /// second ago. Returns false when the lease is gone and the run should stop.
    pub async fn report(&mut self, done: i64, eta_s: Option<i32>) -> bool {
        match &mut self.progress {
            ProgressSink::Queue(r) => r.report(done, eta_s).await,
            ProgressSink::File(f) => {
                f.report(done, eta_s);
                true
            }
        }
    }

    /// Whether the run has been asked to stop, and why ([`Stop::No`]: keep running).
    pub fn stop_requested(&self) -> Stop {
        *self.stop.borrow()
    }

    /// Resolves when the run is told to stop, with the reason (cancel-safe: may be used in
    /// `tokio::select!` again and again).
    pub async fn stopped(&mut self) -> Stop {
        loop {
            let why = *self.stop.borrow_and_update();
            if why != Stop::No {
                return why;
            }
            if self.stop.changed().await.is_err() {
                return Stop::Canceled;
            }
        }
    }
}

/// Writes an offline run's progress file at most once a second: a temporary file renamed
/// over the old one, so that a reader never sees half a line. A failed write is logged and
/// the run goes on (progress is informative only).
struct FileProgress {
    path: PathBuf,
    last: Option<Instant>,
}

impl FileProgress {
    fn report(&mut self, done: i64, eta_s: Option<i32>) {
        if self.last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        let line = slurm::job_dir::Progress {
            primaries_done: done,
            seconds_left: eta_s.map(i64::from),
        }
        .to_line();
        let tmp = self.path.with_extension("tmp");
        let written = std::fs::write(&tmp, line).and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            tracing::warn!(path = %self.path.display(), error = %e, "progress not written");
        }
    }
}

/// The most often progress is written.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// The longest a run waits for its progress to be written: a report the database does not
/// take in this time is dropped (the next one carries the count on).
const PROGRESS_WAIT: Duration = Duration::from_millis(500);

/// Writes progress at most once a second; says when the lease is gone.
struct ProgressReporter {
    pool: Pool,
    lease: Lease,
    expiry: LeaseExpiry,
    last: Option<Instant>,
    every: Duration,
}

impl ProgressReporter {
    fn new(pool: Pool, lease: Lease, expiry: LeaseExpiry) -> Self {
        Self {
            pool,
            lease,
            expiry,
            last: None,
            every: PROGRESS_EVERY,
        }
    }

    async fn report(&mut self, simulated: i64, eta_s: Option<i32>) -> bool {
        if self.last.is_some_and(|t| t.elapsed() < self.every) {
            return true;
        }
        self.last = Some(Instant::now());
        // Progress is best effort: during a database outage the run goes on at full speed,
        // rather than wait for a connection at every report.
        let write = async {
            let mut conn = self.pool.get().await.map_err(db::DbError::from)?;
            queue::report_progress(&mut conn, &self.lease, simulated, eta_s).await
        };
        match tokio::time::timeout(PROGRESS_WAIT, write).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) if queue::is_lease_lost(&e) => false,
            Ok(Err(e)) => {
                tracing::warn!(task = self.lease.task_id, error = %e, "progress not recorded");
                true
            }
            Err(_) => {
                tracing::warn!(
                    task = self.lease.task_id,
                    "progress not recorded: no database answer within {PROGRESS_WAIT:?}"
                );
                true
            }
        }
    }
}
