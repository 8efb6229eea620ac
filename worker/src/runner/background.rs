//! The runner's background loops: stopping canceled runs, renewing leases, and requeueing the
//! tasks of lost workers.

use super::Shared;
use crate::execute::Stop;
use db::queue::{self, Lease};
use db::DbError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Stops runs whose simulation was canceled, as soon as its notification arrives.
pub(super) async fn watch_cancellations(
    shared: Arc<Shared>,
    mut events: mpsc::UnboundedReceiver<i64>,
) {
    while let Some(first) = events.recv().await {
        // Cancellations may come in bursts: take all that are queued and check them with one
        // query (a notification is a hint; the lease in the database decides).
        let mut sims = std::collections::HashSet::from([first]);
        while let Ok(s) = events.try_recv() {
            sims.insert(s);
        }
        let leases: Vec<Lease> = shared.leases(|t| sims.contains(&t.simulation_id));
        if leases.is_empty() {
            continue;
        }
        let Ok(mut conn) = shared.recorder.pool.get().await else {
            continue;
        };
        let lost = queue::lost_leases(&mut conn, &leases).await;
        stop_lost(&shared, lost, Check::Cancellations);
    }
}

/// Which check found leases gone.
#[derive(Clone, Copy, PartialEq)]
enum Check {
    /// The simulation was canceled.
    Cancellations,
    /// A heartbeat found the lease lost.
    Heartbeat,
}

/// Stops (as canceled) the runs whose leases `check` found gone.
fn stop_lost(shared: &Shared, lost: Result<Vec<i64>, DbError>, check: Check) {
    match lost {
        Ok(lost) => {
            for id in lost {
                match check {
                    Check::Cancellations => tracing::info!(task = id, "task canceled: stopping it"),
                    Check::Heartbeat => tracing::warn!(task = id, "lease lost: stopping the task"),
                }
                shared.stop_task(id, Stop::Canceled);
            }
        }
        Err(e) if check == Check::Cancellations => {
            tracing::warn!(error = %e, "cannot check for canceled tasks")
        }
        Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
    }
}

/// Renews the leases of running tasks every third of a lease; stops those whose lease is
/// gone.
pub(super) async fn heartbeats(shared: Arc<Shared>) {
    let lease = shared.settings.lease;
    loop {
        tokio::time::sleep(lease / 3).await;
        let leases = shared.leases(|_| true);
        if leases.is_empty() {
            continue;
        }
        let Ok(mut conn) = shared.recorder.pool.get().await else {
            continue;
        };
        let sent = tokio::time::Instant::now();
        let lost = queue::heartbeat(&mut conn, &leases, lease).await;
        if lost.is_ok() {
            shared.renewals.renewed(sent);
        }
        stop_lost(&shared, lost, Check::Heartbeat);
    }
}

/// Returns tasks of lost workers to the queue, and finishes the merges they left. Every
/// worker does this; SKIP LOCKED keeps them from stepping on each other.
pub(super) async fn reaper(shared: Arc<Shared>) {
    let lease = shared.settings.lease;
    loop {
        tokio::time::sleep((lease / 2).max(Duration::from_secs(1))).await;
        let Ok(mut conn) = shared.recorder.pool.get().await else {
            continue;
        };
        match queue::requeue_expired(&mut conn).await {
            Ok((0, 0)) => {}
            Ok((requeued, failed)) => {
                tracing::info!(requeued, failed, "requeued tasks of lost workers")
            }
            Err(e) => tracing::warn!(error = %e, "requeue of expired leases failed"),
        }
        // A worker that died between a simulation's last completion and its final merge
        // leaves it MERGING; finish that merge here.
        match db::merge::finalize_stale(&mut conn, lease.as_secs_f64()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(simulations = n, "finished merges left by lost workers"),
            Err(e) => tracing::warn!(error = %e, "finishing stale merges failed"),
        }
    }
}
