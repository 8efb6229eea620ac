//! Batch simulations and the direct queue: a direct worker never claims a batch
//! simulation's tasks, and the reaper leaves their leases to the batch component.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use db::testing::TestDb;
use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use std::time::Duration;

const SETUP: &str = "
    INSERT INTO users (id, username, password_hash, role) VALUES (1, 'u1', NULL, 'user');
    INSERT INTO clusters (id, name, work_dir) VALUES (1, 'c1', '/w');
    INSERT INTO simulations (id, user_id, platform, input_type, sim_type, ntasks, primaries, cluster_id)
      VALUES (1, 1, 'batch', 'editor', 'builtin', 2, 200, 1),
             (2, 1, 'direct', 'editor', 'builtin', 2, 200, NULL);
    INSERT INTO tasks (simulation_id, task_index, requested_primaries)
      VALUES (1, 0, 100), (1, 1, 100), (2, 0, 100), (2, 1, 100);";

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

#[tokio::test]
async fn a_direct_worker_claims_only_direct_tasks() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    conn.batch_execute(SETUP).await.unwrap();
    let claimed = db::queue::claim(&mut conn, "w1", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|t| t.simulation_id == 2), "{claimed:?}");
    assert_eq!(
        states(&mut conn).await,
        [
            (1, "PENDING".to_owned()),
            (1, "PENDING".to_owned()),
            (2, "RUNNING".to_owned()),
            (2, "RUNNING".to_owned()),
        ]
    );
    // Nothing else is due for a direct worker.
    let more = db::queue::claim(&mut conn, "w2", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(more.is_empty(), "{more:?}");
}

#[tokio::test]
async fn the_reaper_leaves_batch_leases_to_the_batch_component() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    conn.batch_execute(SETUP).await.unwrap();
    conn.batch_execute(
        "UPDATE tasks SET task_state = 'RUNNING', attempts = 1, lease_owner = 'gone',
                lease_expires_at = now() - interval '1 minute'",
    )
    .await
    .unwrap();
    let (requeued, failed) = db::queue::requeue_expired(&mut conn).await.unwrap();
    assert_eq!((requeued, failed), (2, 0));
    assert_eq!(
        states(&mut conn).await,
        [
            (1, "RUNNING".to_owned()),
            (1, "RUNNING".to_owned()),
            (2, "PENDING".to_owned()),
            (2, "PENDING".to_owned()),
        ]
    );
}
