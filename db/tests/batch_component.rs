//! A batch component's hold on its cluster's simulations (`db::queue::batch`): one owner at a
//! time, take-over after the lease expires (running tasks keep their attempt), tasks started
//! and completed under the component's lease through the same merge as direct runs, release
//! only once ended, and the leftovers of deleted simulations.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::enums::{JobState, TaskState};
use db::queue::batch;
use db::testing::TestDb;
use diesel_async::SimpleAsyncConnection;
use std::time::Duration;
use support::{sim_state, task_states};

const LEASE: Duration = Duration::from_secs(60);

const SETUP: &str = "
    INSERT INTO users (id, username, password_hash, role) VALUES (1, 'u1', NULL, 'user');
    INSERT INTO clusters (id, name, work_dir) VALUES (1, 'c1', '/w'), (2, 'c2', '/w');
    INSERT INTO simulations (id, user_id, platform, input_type, sim_type, ntasks, primaries,
                             cluster_id, sbatch_options)
      VALUES (1, 1, 'batch', 'editor', 'builtin', 2, 200, 1, '{--time=10}'),
             (2, 1, 'batch', 'editor', 'builtin', 1, 100, 2, '{}'),
             (3, 1, 'direct', 'editor', 'builtin', 1, 100, NULL, '{}');
    INSERT INTO tasks (simulation_id, task_index, requested_primaries)
      VALUES (1, 0, 100), (1, 1, 100), (2, 0, 100), (3, 0, 100);";

async fn setup() -> (TestDb, db::Conn) {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    conn.batch_execute(SETUP).await.unwrap();
    (db, conn)
}

/// Simulation 1 held by b1, its job directory and jobs recorded.
async fn staged(conn: &mut db::Conn) {
    batch::hold(conn, 1, "b1", LEASE, 10).await.unwrap();
    batch::record(conn, 1, "b1", "/w/sim-1", None)
        .await
        .unwrap();
    batch::record(conn, 1, "b1", "/w/sim-1", Some((41, 42)))
        .await
        .unwrap();
}

#[tokio::test]
async fn one_component_holds_a_simulation_until_its_lease_expires() {
    let (_db, mut conn) = setup().await;
    let held = batch::hold(&mut conn, 1, "b1", LEASE, 10).await.unwrap();
    assert_eq!(held.len(), 1, "only cluster 1's batch simulation: {held:?}");
    assert_eq!(held[0].id, 1);
    assert_eq!(held[0].job_state, JobState::Pending);
    assert_eq!(held[0].sbatch_options, [Some("--time=10".to_owned())]);
    assert_eq!((held[0].job_dir.clone(), held[0].array_id), (None, None));
    // Another component of the same cluster gets nothing while b1's lease is live…
    assert!(batch::hold(&mut conn, 1, "b2", LEASE, 10)
        .await
        .unwrap()
        .is_empty());
    // …and b1 keeps it (a renewal).
    assert_eq!(
        batch::hold(&mut conn, 1, "b1", LEASE, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // Elements 0 and 1 started on SLURM.
    let leases = batch::start_tasks(&mut conn, 1, "b1", &[0, 1], LEASE)
        .await
        .unwrap();
    assert_eq!(leases.len(), 2);
    assert!(leases
        .iter()
        .all(|(_, l)| l.attempt == 1 && l.owner == "b1"));
    assert_eq!(sim_state(&mut conn, 1).await, JobState::Running);
    // Starting them again changes nothing.
    assert!(batch::start_tasks(&mut conn, 1, "b1", &[0, 1], LEASE)
        .await
        .unwrap()
        .is_empty());
    // b2 cannot act on it.
    let err = batch::record(&mut conn, 1, "b2", "/w/x", None)
        .await
        .unwrap_err();
    assert!(matches!(err, db::DbError::Conflict(_)), "{err}");
    // b1 dies: once its lease has expired, b2 takes over, with the running tasks' leases.
    conn.batch_execute(
        "UPDATE simulations SET batch_lease_expires_at = now() - interval '1 s' WHERE id = 1",
    )
    .await
    .unwrap();
    let held = batch::hold(&mut conn, 1, "b2", LEASE, 10).await.unwrap();
    assert_eq!(held.len(), 1);
    let taken = batch::running_leases(&mut conn, 1, "b2").await.unwrap();
    assert_eq!(
        taken
            .iter()
            .map(|(i, l)| (*i, l.attempt, l.owner.as_str()))
            .collect::<Vec<_>>(),
        [(0, 1, "b2"), (1, 1, "b2")],
        "the same attempts, now b2's"
    );
    assert!(batch::running_leases(&mut conn, 1, "b1")
        .await
        .unwrap()
        .is_empty());
    // b1's old lease can no longer complete a task.
    let stale = &leases[0].1;
    let err = db::merge::complete_with_results(&mut conn, stale, 100, &[])
        .await
        .unwrap_err();
    assert!(db::queue::is_lease_lost(&err), "{err}");
}

#[tokio::test]
async fn completion_under_the_components_lease_ends_the_simulation_then_release() {
    let (_db, mut conn) = setup().await;
    staged(&mut conn).await;
    let leases = batch::start_tasks(&mut conn, 1, "b1", &[0, 1], LEASE)
        .await
        .unwrap();
    // Still open: release refuses.
    assert!(!batch::release(&mut conn, 1, "b1").await.unwrap());
    db::merge::complete_with_results(&mut conn, &leases[0].1, 100, &[])
        .await
        .unwrap();
    db::queue::fail(&mut conn, &leases[1].1, "SLURM: TIMEOUT", false)
        .await
        .unwrap();
    assert_eq!(
        task_states(&mut conn, 1).await,
        [TaskState::Completed, TaskState::Failed]
    );
    assert_eq!(
        sim_state(&mut conn, 1).await,
        JobState::Completed,
        "one task completed: the simulation completes from it"
    );
    // Ended but held: the component still sees it (jobs to cancel, a directory to clean).
    let held = batch::hold(&mut conn, 1, "b1", LEASE, 10).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        (
            held[0].job_dir.as_deref(),
            held[0].array_id,
            held[0].collect_id
        ),
        (Some("/w/sim-1"), Some(41), Some(42))
    );
    assert!(!batch::release(&mut conn, 1, "b2").await.unwrap());
    assert!(batch::release(&mut conn, 1, "b1").await.unwrap());
    assert!(batch::hold(&mut conn, 1, "b1", LEASE, 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_deleted_simulation_leaves_its_job_dir_to_the_component() {
    let (_db, mut conn) = setup().await;
    staged(&mut conn).await;
    conn.batch_execute("DELETE FROM simulations WHERE id = 1")
        .await
        .unwrap();
    assert!(batch::cleanups(&mut conn, 2, 10).await.unwrap().is_empty());
    let left = batch::cleanups(&mut conn, 1, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        (
            left[0].job_dir.as_str(),
            left[0].array_id,
            left[0].collect_id
        ),
        ("/w/sim-1", Some(41), Some(42))
    );
    batch::cleaned(&mut conn, left[0].id).await.unwrap();
    assert!(batch::cleanups(&mut conn, 1, 10).await.unwrap().is_empty());
}
