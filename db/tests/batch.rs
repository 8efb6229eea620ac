//! Batch simulations and the direct queue: a direct worker never claims a batch
//! simulation's tasks, and the reaper leaves their leases to the batch component.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use std::time::Duration;
use support::fresh;

const SETUP: &str = "
    INSERT INTO users (id, username, password_hash, role) VALUES (1, 'u1', NULL, 'user');
    INSERT INTO clusters (id, name, work_dir) VALUES (1, 'c1', '/w');
    INSERT INTO simulations (id, user_id, platform, input_type, sim_type, ntasks, primaries, cluster_id)
      VALUES (1, 1, 'batch', 'editor', 'builtin', 2, 200, 1),
             (2, 1, 'direct', 'editor', 'builtin', 2, 200, NULL);
    INSERT INTO tasks (simulation_id, task_index, requested_primaries)
      VALUES (1, 0, 100), (1, 1, 100), (2, 0, 100), (2, 1, 100);
    -- As db::simulations::create_with_tasks makes a batch simulation's tasks.
    UPDATE tasks SET run_after = '9999-12-31 00:00:00+00' WHERE simulation_id = 1;";

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    simulation_id: i64,
    #[diesel(sql_type = Text)]
    task_state: String,
}

async fn states(conn: &mut db::Conn) -> Vec<(i64, String)> {
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT simulation_id, task_state FROM tasks ORDER BY simulation_id, task_index",
    )
    .load(conn)
    .await
    .unwrap();
    rows.into_iter()
        .map(|r| (r.simulation_id, r.task_state))
        .collect()
}

/// Asserts the `(simulation id, task state)` pairs of all tasks as [`states`] gives them,
/// written `"1 PENDING, 2 RUNNING"`.
async fn assert_states(conn: &mut db::Conn, expected: &str) {
    let got: Vec<String> = states(conn)
        .await
        .into_iter()
        .map(|(sim, state)| format!("{sim} {state}"))
        .collect();
    assert_eq!(got.join(", "), expected);
}

#[tokio::test]
async fn a_direct_worker_claims_only_direct_tasks() {
    let (_db, mut conn) = fresh().await;
    conn.batch_execute(SETUP).await.unwrap();
    let claimed = support::claim(&mut conn, 10).await;
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|t| t.simulation_id == 2), "{claimed:?}");
    assert_states(&mut conn, "1 PENDING, 1 PENDING, 2 RUNNING, 2 RUNNING").await;
    // Nothing else is due for a direct worker.
    let more = support::claim(&mut conn, 10).await;
    assert!(more.is_empty(), "{more:?}");
}

/// A batch simulation made by `create_with_tasks` has tasks that are never due
/// (`queue::batch::NEVER_DUE_SQL`): a direct claim takes none of them, and the batch
/// component still starts them by index.
#[tokio::test]
async fn create_with_tasks_makes_batch_tasks_never_due() {
    let (_db, mut conn) = fresh().await;
    conn.batch_execute(
        "INSERT INTO users (id, username, password_hash, role) VALUES (1, 'u1', NULL, 'user');
         INSERT INTO clusters (id, name, work_dir) VALUES (1, 'c1', '/w');",
    )
    .await
    .unwrap();
    let new = db::simulations::NewSimulation {
        user_id: 1,
        title: "batch".into(),
        platform: db::enums::Platform::Batch,
        input_type: db::enums::InputType::Editor,
        sim_type: db::enums::SimType::Builtin,
        ntasks: 3,
        primaries: 300,
        cluster_id: Some(1),
        sbatch_options: vec![],
        max_attempts: 3,
    };
    let sim = db::simulations::create_with_tasks(&mut conn, &new, None)
        .await
        .unwrap();
    let claimed = support::claim(&mut conn, 10).await;
    assert!(claimed.is_empty(), "{claimed:?}");
    let held = db::queue::batch::hold(&mut conn, 1, "b1", Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    let started =
        db::queue::batch::start_tasks(&mut conn, sim.id, "b1", &[0, 2], Duration::from_secs(30))
            .await
            .unwrap();
    let indices: Vec<i32> = started.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, [0, 2]);
}

#[tokio::test]
async fn the_reaper_leaves_batch_leases_to_the_batch_component() {
    let (_db, mut conn) = fresh().await;
    conn.batch_execute(SETUP).await.unwrap();
    conn.batch_execute(
        "UPDATE tasks SET task_state = 'RUNNING', attempts = 1, lease_owner = 'gone',
                lease_expires_at = now() - interval '1 minute'",
    )
    .await
    .unwrap();
    let (requeued, failed) = db::queue::requeue_expired(&mut conn).await.unwrap();
    assert_eq!((requeued, failed), (2, 0));
    assert_states(&mut conn, "1 RUNNING, 1 RUNNING, 2 PENDING, 2 PENDING").await;
}
