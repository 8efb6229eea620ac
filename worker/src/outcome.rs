//! Recording how a task ended: its completion (with its pages folded into the merge), its
//! failure, or its release, written to the database with retries.
//!
//! A task whose run has ended holds work that must not be lost to a database blip: a restart
//! or a terminated connection just before the write would otherwise leave the task RUNNING
//! until its lease expires, and then run it again from scratch. So a write that fails with a
//! transient error ([`db::DbError::is_transient`]: the server unreachable, the connection
//! dropped, a serialization failure) is tried again on a fresh connection, with backoff, for
//! up to one lease length. Meanwhile the task stays in the worker's running set, so its lease
//! keeps being renewed whenever the database answers.

use crate::execute::{Outcome, Stop};
use crate::runner::Worker;
use db::queue::{self, ClaimedTask, Lease};
use db::{DbError, Pool};
use std::future::Future;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A completion waiting for the batch writer, and where to say whether it counted.
pub(crate) type BatchedCompletion = (queue::Completion, oneshot::Sender<DbResultOk>);
type DbResultOk = Result<(), DbError>;

/// The first pause between two tries of a write; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Runs `write` until it succeeds, fails with an error that is not transient, or `budget`
/// has passed since the first try (then the last error is returned). Each try should take a
/// fresh connection from the pool: a broken one is dropped when it is returned.
pub(crate) async fn with_retries<T, F, Fut>(
    what: &str,
    budget: Duration,
    mut write: F,
) -> Result<T, DbError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DbError>>,
{
    let deadline = tokio::time::Instant::now() + budget;
    let mut pause = FIRST_PAUSE;
    let mut tries = 0u32;
    loop {
        tries += 1;
        match write().await {
            Err(e) if e.is_transient() && tokio::time::Instant::now() + pause < deadline => {
                tracing::warn!(error = %e, tries, "{what} failed; trying again in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            Ok(v) => {
                if tries > 1 {
                    tracing::info!(tries, "{what} succeeded after a retry");
                }
                return Ok(v);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Writes the task's outcome, retrying transient failures for up to one lease length.
pub(crate) async fn finish(worker: &Worker, task: &ClaimedTask, lease: &Lease, outcome: Outcome) {
    let budget = worker.cfg.lease();
    let result = match &outcome {
        // Already CANCELED by whoever canceled it.
        Outcome::Stopped(Stop::Canceled) | Outcome::Stopped(Stop::No) => Ok(()),
        _ => {
            with_retries("recording the task's outcome", budget, || {
                write(worker, lease, &outcome)
            })
            .await
        }
    };
    match result {
        Ok(()) => tracing::info!(task = task.id, outcome = %outcome, "task ended"),
        Err(e) if queue::is_lease_lost(&e) => {
            tracing::warn!(task = task.id, outcome = %outcome, "result discarded: the lease was lost")
        }
        Err(e) => tracing::error!(task = task.id, error = %e, "cannot record the outcome"),
    }
}

/// One try of writing `outcome`.
async fn write(worker: &Worker, lease: &Lease, outcome: &Outcome) -> DbResultOk {
    match outcome {
        // Result-less completions go through the batch writer: no connection per task.
        Outcome::Done {
            simulated_primaries,
            pages,
        } if pages.is_empty() => complete_batched(worker, lease, *simulated_primaries).await,
        Outcome::Stopped(Stop::Canceled) | Outcome::Stopped(Stop::No) => Ok(()),
        _ => {
            let mut conn = worker.pool.get().await.map_err(DbError::from)?;
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
                Outcome::MachineFault { error, .. } => queue::release_machine_fault(
                    &mut conn,
                    lease,
                    error,
                    crate::runner::health::FREE_RELEASES,
                )
                .await
                .map(|_| ()),
            }
        }
    }
}

/// Records a result-less completion through the batch writer (many tasks, one transaction).
async fn complete_batched(worker: &Worker, lease: &Lease, simulated_primaries: i64) -> DbResultOk {
    let (tx, rx) = oneshot::channel();
    let completion = queue::Completion {
        lease: lease.clone(),
        simulated_primaries,
    };
    let stopped = || DbError::Batch("the completion writer has stopped".into());
    if worker.completions.send((completion, tx)).is_err() {
        return Err(stopped());
    }
    rx.await.unwrap_or_else(|_| Err(stopped()))
}

/// Writes queued completions in batches: whatever has arrived by the time the previous batch
/// is written goes into the next one. A batch that failed for a transient reason says so to
/// each of its tasks (as [`DbError::Pool`]), so that each tries again.
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
        };
        for (c, reply) in batch {
            let r = match &result {
                Ok(lost) if lost.contains(&c.lease.task_id) => Err(queue::lease_lost(&c.lease)),
                Ok(_) => Ok(()),
                Err(e) if e.is_transient() => {
                    Err(DbError::Pool(format!("batch completion failed: {e}")))
                }
                Err(e) => Err(DbError::Batch(format!("batch completion failed: {e}"))),
            };
            let _ = reply.send(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn transient_errors_are_retried_until_the_budget_and_others_are_not() {
        let tries = AtomicU32::new(0);
        let r: Result<(), DbError> = with_retries("x", Duration::from_secs(60), || async {
            if tries.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(DbError::Pool("timed out".into()))
            } else {
                Ok(())
            }
        })
        .await;
        assert!(r.is_ok());
        assert_eq!(tries.load(Ordering::SeqCst), 4);

        let tries = AtomicU32::new(0);
        let r: Result<(), DbError> = with_retries("x", Duration::from_secs(60), || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(DbError::Invalid("bad".into()))
        })
        .await;
        assert!(matches!(r, Err(DbError::Invalid(_))));
        assert_eq!(tries.load(Ordering::SeqCst), 1, "not transient: one try");

        let tries = AtomicU32::new(0);
        let r: Result<(), DbError> = with_retries("x", Duration::from_millis(1000), || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(DbError::Pool("down".into()))
        })
        .await;
        assert!(
            matches!(r, Err(DbError::Pool(_))),
            "the last error is returned"
        );
        // Pauses of 100, 200 and 400 ms fit in the budget; the next (800 ms) does not.
        assert_eq!(
            tries.load(Ordering::SeqCst),
            4,
            "stops when the budget is spent"
        );
    }
}
