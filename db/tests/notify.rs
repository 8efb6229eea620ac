//! Announcing notifications are sent after their transaction commits: a listener that hears
//! one and looks at once (a new statement on another connection) already sees the change.
//! Each change runs on a connection of its own while the test listens.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::enums::{JobState, TaskState};
use db::notify::{CANCELLATIONS, SIMULATION_EVENTS, TASKS_READY};
use db::queue;
use db::testing::TestDb;
use diesel_async::SimpleAsyncConnection;
use futures_util::StreamExt;
use std::future::Future;
use std::time::Duration;
use support::{claim, fresh, pages, sim_state, submit, submit_with, task_states};

/// A connection listening on `channel`.
async fn listen(db: &TestDb, channel: &str) -> db::Conn {
    let mut listener = db.conn().await;
    listener
        .batch_execute(&format!("LISTEN {channel}"))
        .await
        .unwrap();
    listener
}

/// The next notification's payload (waits up to a minute: it must come).
async fn next(listener: &mut db::Conn, channel: &str) -> String {
    let mut stream = std::pin::pin!(listener.notifications_stream());
    let n = tokio::time::timeout(Duration::from_secs(60), stream.next())
        .await
        .expect("a notification arrives")
        .expect("the listening connection stays open")
        .unwrap();
    assert_eq!(n.channel, channel);
    n.payload
}

/// Runs `change` on a connection of its own, in the background.
fn spawn<F, Fut>(db: &TestDb, change: F) -> tokio::task::JoinHandle<Fut::Output>
where
    F: FnOnce(db::Conn) -> Fut + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let config = db.config().clone();
    tokio::spawn(async move { change(db::connect(&config).await.unwrap()).await })
}

/// A fresh database, a connection to look with, a simulation of one task (1000 primaries,
/// `max_attempts` attempts), the lease of its task claimed by "w", and a connection
/// listening on `channel`.
async fn one_claimed(
    max_attempts: i32,
    channel: &str,
) -> (TestDb, db::Conn, i64, queue::Lease, db::Conn) {
    let (db, mut looker) = fresh().await;
    let sim = submit_with(&mut looker, 1, 1000, max_attempts).await;
    let lease = claim(&mut looker, 1).await.remove(0).lease("w");
    let listener = listen(&db, channel).await;
    (db, looker, sim, lease, listener)
}

#[tokio::test]
async fn submit_wakes_workers_after_its_tasks_are_stored() {
    let (db, mut looker) = fresh().await;
    let mut listener = listen(&db, TASKS_READY).await;
    let submitted = spawn(&db, |mut c| async move { submit(&mut c, 3, 3000).await });
    next(&mut listener, TASKS_READY).await;
    let tasks = db::tasks::list(&mut looker, &Default::default())
        .await
        .unwrap();
    assert_eq!(tasks.len(), 3, "the tasks are visible when workers wake");
    submitted.await.unwrap();
}

#[tokio::test]
async fn a_failure_that_ends_the_simulation_is_announced_after_commit() {
    let (db, mut looker, sim, lease, mut listener) = one_claimed(1, SIMULATION_EVENTS).await;
    let failed = spawn(&db, move |mut c| async move {
        queue::fail(&mut c, &lease, "boom", false).await.unwrap()
    });
    assert_eq!(
        next(&mut listener, SIMULATION_EVENTS).await,
        sim.to_string()
    );
    assert_eq!(sim_state(&mut looker, sim).await, JobState::Failed);
    assert_eq!(failed.await.unwrap(), TaskState::Failed);
}

#[tokio::test]
async fn a_retry_wakes_workers_after_the_task_is_pending_again() {
    let (db, mut looker, sim, lease, mut listener) = one_claimed(3, TASKS_READY).await;
    let failed = spawn(&db, move |mut c| async move {
        queue::fail(&mut c, &lease, "boom", true).await.unwrap()
    });
    next(&mut listener, TASKS_READY).await;
    assert_eq!(task_states(&mut looker, sim).await, [TaskState::Pending]);
    assert_eq!(failed.await.unwrap(), TaskState::Pending);
}

#[tokio::test]
async fn a_cancel_stops_workers_after_it_committed() {
    let (db, mut looker) = fresh().await;
    let sim = submit(&mut looker, 2, 2000).await;
    claim(&mut looker, 1).await;
    let mut listener = listen(&db, CANCELLATIONS).await;
    let canceled = spawn(&db, move |mut c| async move {
        queue::cancel(&mut c, sim).await.unwrap()
    });
    assert_eq!(next(&mut listener, CANCELLATIONS).await, sim.to_string());
    assert_eq!(sim_state(&mut looker, sim).await, JobState::Canceled);
    assert_eq!(
        task_states(&mut looker, sim).await,
        [TaskState::Canceled, TaskState::Canceled]
    );
    assert_eq!(canceled.await.unwrap(), queue::Canceled::Now { tasks: 2 });
}

#[tokio::test]
async fn the_last_completion_and_the_final_merge_are_announced_after_commit() {
    let (db, mut looker, sim, lease, mut listener) = one_claimed(3, SIMULATION_EVENTS).await;
    let completed = spawn(&db, move |mut c| async move {
        db::merge::complete_with_results(&mut c, &lease, 1000, &pages(0)).await
    });
    // The completion's notification: the task is completed; the simulation is merging, or
    // already completed when the final merge committed in between.
    assert_eq!(
        next(&mut listener, SIMULATION_EVENTS).await,
        sim.to_string()
    );
    assert_eq!(task_states(&mut looker, sim).await, [TaskState::Completed]);
    let state = sim_state(&mut looker, sim).await;
    assert!(
        matches!(state, JobState::Merging | JobState::Completed),
        "{state:?}"
    );
    // The final merge's notification: completed, with its final pages.
    assert_eq!(
        next(&mut listener, SIMULATION_EVENTS).await,
        sim.to_string()
    );
    assert_eq!(sim_state(&mut looker, sim).await, JobState::Completed);
    let got = db::results::read_all(&mut looker, sim).await.unwrap();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|p| !p.partial));
    completed.await.unwrap().unwrap();
}
