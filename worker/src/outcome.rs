//! Recording how a task ended: its completion (with its pages folded into the merge), its
//! failure, or its release, written to the database with retries.
//!
//! A task whose run has ended holds work that must not be lost to a database blip: a restart
//! or a terminated connection just before the write would otherwise leave the task RUNNING
//! until its lease expires, and then run it again from scratch. So a write that fails with a
//! transient error ([`db::DbError::is_transient`]: the server unreachable, the connection
//! dropped, a serialization failure) is tried again on a fresh connection, with backoff, until
//! the lease would expire ([`LeaseExpiry`]). Meanwhile the task stays in the worker's running
//! set, so its lease keeps being renewed (and the expiry moves on) whenever the database
//! answers.

use crate::execute::{Outcome, Stop};
use crate::retry::{with_retries, LeaseExpiry};
use db::queue::{self, ClaimedTask, Lease};
use db::{DbError, Pool};
use tokio::sync::{mpsc, oneshot};

/// How many machine faults of one task hand it on without using an attempt (then each one
/// uses an attempt, so a task that fails on every worker still ends).
pub const FREE_RELEASES: i32 = 5;

/// Writes the outcomes of one worker's tasks: completions without pages in batches (through
/// [`completion_writer`]), the rest one by one.
#[derive(Clone)]
pub(crate) struct Recorder {
    /// The worker's pool.
    pub(crate) pool: Pool,
    /// Where result-less completions go to be written in batches.
    pub(crate) completions: mpsc::UnboundedSender<BatchedCompletion>,
    /// Where recorded outcomes are counted.
    pub(crate) metrics: crate::metrics::WorkerMetrics,
}

/// A completion waiting for the batch writer, and where to say whether it counted.
pub(crate) type BatchedCompletion = (queue::Completion, oneshot::Sender<DbResultOk>);
type DbResultOk = Result<(), DbError>;

/// Writes the task's outcome, retrying transient failures until the lease would expire.
pub(crate) async fn finish(
    recorder: &Recorder,
    task: &ClaimedTask,
    lease: &Lease,
    expiry: &LeaseExpiry,
    outcome: Outcome,
) {
    let stores_pages = matches!(&outcome, Outcome::Done { pages, .. } if !pages.is_empty());
    let started = std::time::Instant::now();
    let result = match &outcome {
        // Already CANCELED by whoever canceled it.
        Outcome::Stopped(Stop::Canceled) | Outcome::Stopped(Stop::No) => Ok(()),
        _ => {
            with_retries("recording the task's outcome", expiry, || {
                write(recorder, lease, &outcome)
            })
            .await
        }
    };
    match result {
        Ok(()) => {
            let merge = stores_pages.then(|| started.elapsed());
            recorder.metrics.recorded(&outcome, merge);
            tracing::info!(task = task.id, outcome = %outcome, "task ended")
        }
        // The database refused the task's pages; it has failed the task with the reason.
        Err(DbError::Invalid(why)) => {
            tracing::warn!(task = task.id, error = %why, "results refused: the task failed")
        }
        Err(e) if queue::is_lease_lost(&e) => {
            tracing::warn!(task = task.id, outcome = %outcome, "result discarded: the lease was lost")
        }
        Err(e) => tracing::error!(task = task.id, error = %e, "cannot record the outcome"),
    }
}

/// One try of writing `outcome`.
async fn write(recorder: &Recorder, lease: &Lease, outcome: &Outcome) -> DbResultOk {
    match outcome {
        // Result-less completions go through the batch writer: no connection per task.
        Outcome::Done {
            simulated_primaries,
            pages,
        } if pages.is_empty() => complete_batched(recorder, lease, *simulated_primaries).await,
        Outcome::Stopped(Stop::Canceled) | Outcome::Stopped(Stop::No) => Ok(()),
        _ => {
            let mut conn = recorder.pool.get().await.map_err(DbError::from)?;
            match outcome {
                Outcome::Done {
                    simulated_primaries,
                    pages,
                } => {
                    db::merge::complete_with_results(&mut conn, lease, *simulated_primaries, pages)
                        .await
                }
                Outcome::Failed { error, retry } => queue::fail(&mut conn, lease, error, *retry)
                    .await
                    .map(|_| ()),
                Outcome::Stopped(_) => queue::release(&mut conn, lease).await,
                // Machine faults (issue 10, item 2; added by the fault-classification
                // change): another worker gets the task, without using an attempt up to
                // the limit.
                Outcome::MachineFault { error, .. } => {
                    queue::release_machine_fault(&mut conn, lease, error, FREE_RELEASES)
                        .await
                        .map(|_| ())
                }
            }
        }
    }
}

/// Records a result-less completion through the batch writer (many tasks, one transaction).
async fn complete_batched(
    recorder: &Recorder,
    lease: &Lease,
    simulated_primaries: i64,
) -> DbResultOk {
    let (tx, rx) = oneshot::channel();
    let completion = queue::Completion {
        lease: lease.clone(),
        simulated_primaries,
    };
    let stopped = || DbError::WriterStopped("completion writer");
    if recorder.completions.send((completion, tx)).is_err() {
        return Err(stopped());
    }
    rx.await.unwrap_or_else(|_| Err(stopped()))
}

/// Writes queued completions in batches: whatever has arrived by the time the previous batch
/// is written goes into the next one. A batch that failed gives each of its tasks the shared
/// cause ([`DbError::Shared`], transient when the cause is), so that each tries again when
/// another try may help.
pub(crate) async fn completion_writer(
    pool: Pool,
    mut rx: mpsc::UnboundedReceiver<BatchedCompletion>,
) {
    const MAX_BATCH: usize = 1000;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let completions: Vec<queue::Completion> = batch.iter().map(|(c, _)| c.clone()).collect();
        tracing::debug!(tasks = completions.len(), "writing a batch of completions");
        let result = match pool.get().await {
            Ok(mut conn) => queue::complete_many(&mut conn, &completions).await,
            Err(e) => Err(DbError::from(e)),
        }
        .map_err(std::sync::Arc::new);
        for (c, reply) in batch {
            let r = match &result {
                Ok(lost) if lost.contains(&c.lease.task_id) => Err(queue::lease_lost(&c.lease)),
                Ok(_) => Ok(()),
                Err(cause) => Err(DbError::Shared(cause.clone())),
            };
            let _ = reply.send(r);
        }
    }
}
