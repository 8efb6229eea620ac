//! Set-up shared by the `db` integration tests: submitting, claiming, reading states, and
//! deterministic result pages. (Each test binary uses a part of it.)
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use db::aggregation::Aggregation;
use db::enums::{JobState, SimType, TaskState};
use db::queue::{self, ClaimedTask};
use db::results::{PageMeta, TaskPage};
use db::testing::{self, TestDb};
use std::time::Duration;

/// The lease the tests claim with.
pub const LEASE: Duration = Duration::from_secs(60);

/// A fresh test database and a connection to it (keep the database alive while the
/// connection is used).
pub async fn fresh() -> (TestDb, db::Conn) {
    let db = TestDb::new().await;
    let conn = db.conn().await;
    (db, conn)
}

/// A fresh test database, a connection, a submitted simulation of `ntasks` tasks and
/// `primaries` primaries ([`submit`]), and all its tasks claimed by "w" ([`claim`]).
pub async fn running(ntasks: i32, primaries: i64) -> (TestDb, db::Conn, i64, Vec<ClaimedTask>) {
    let (db, mut conn) = fresh().await;
    let sim = submit(&mut conn, ntasks, primaries).await;
    let tasks = claim(&mut conn, ntasks.into()).await;
    (db, conn, sim, tasks)
}

/// Submits a builtin simulation of `ntasks` tasks and `primaries` primaries for the user
/// "owner", with `max_attempts` attempts per task.
pub async fn submit_with(
    conn: &mut db::Conn,
    ntasks: i32,
    primaries: i64,
    max_attempts: i32,
) -> i64 {
    let owner = testing::user(conn, "owner").await;
    let new = testing::new_simulation(owner, SimType::Builtin, ntasks, primaries);
    testing::submit(
        conn,
        db::simulations::NewSimulation {
            max_attempts,
            ..new
        },
        None,
    )
    .await
}

/// Submits a builtin simulation of `ntasks` tasks and `primaries` primaries (3 attempts).
pub async fn submit(conn: &mut db::Conn, ntasks: i32, primaries: i64) -> i64 {
    submit_with(conn, ntasks, primaries, 3).await
}

/// Claims up to `n` tasks for the worker "w".
pub async fn claim(conn: &mut db::Conn, n: i64) -> Vec<ClaimedTask> {
    queue::claim(conn, "w", n, LEASE, db::enums::SimType::ALL)
        .await
        .unwrap()
}

/// Claims one task for `worker` (there must be one).
pub async fn claim_one(conn: &mut db::Conn, worker: &str) -> ClaimedTask {
    queue::claim(conn, worker, 1, LEASE, db::enums::SimType::ALL)
        .await
        .unwrap()
        .remove(0)
}

/// Completes the task claimed by "w" with `primaries` and `pages` (which must succeed).
pub async fn complete(conn: &mut db::Conn, task: &ClaimedTask, primaries: i64, pages: &[TaskPage]) {
    db::merge::complete_with_results(conn, &task.lease("w"), primaries, pages)
        .await
        .unwrap();
}

/// A simulation's state.
pub async fn sim_state(conn: &mut db::Conn, id: i64) -> JobState {
    db::simulations::get(conn, id).await.unwrap().job_state
}

/// A simulation's tasks, by index.
pub async fn tasks_of(conn: &mut db::Conn, sim: i64) -> Vec<db::models::Task> {
    let filter = db::tasks::TaskFilter {
        simulation_id: Some(sim),
        ..Default::default()
    };
    let rows = db::tasks::list(conn, &filter).await.unwrap();
    rows.into_iter().map(|r| r.task).collect()
}

/// The states of a simulation's tasks, by index.
pub async fn task_states(conn: &mut db::Conn, sim: i64) -> Vec<TaskState> {
    tasks_of(conn, sim)
        .await
        .into_iter()
        .map(|t| t.task_state)
        .collect()
}

/// Page 0 of estimator `name`: one dimension, nothing else described.
pub fn page(name: &str, aggregation: Aggregation, values: Vec<f64>) -> TaskPage {
    TaskPage {
        estimator: name.into(),
        page_number: 0,
        meta: PageMeta {
            dimension: 1,
            ..Default::default()
        },
        aggregation,
        values,
    }
}

/// A deterministic pseudo-random page of `n` values for task `t` (every third value zero
/// when `zeros`).
pub fn values(t: u64, n: usize, zeros: bool) -> Vec<f64> {
    let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if zeros && i % 3 == 0 {
                0.0
            } else {
                (x >> 11) as f64 / (1u64 << 53) as f64 * 1e-3 + 1e-4
            }
        })
        .collect()
}

/// A page's description: `name`, `dim` dimensions, 50 bins along z.
pub fn meta(name: &str, dim: i16) -> PageMeta {
    PageMeta {
        name: name.into(),
        dimension: dim,
        axes: serde_json::json!([{"name": "z", "unit": "cm", "bins": 50, "min": 0.0, "max": 20.0}]),
        value_name: name.to_lowercase(),
        value_unit: "Gy/primary".into(),
        metadata: serde_json::json!({}),
        estimator_metadata: serde_json::json!({"geometry": "cylinder"}),
    }
}

/// Task `t`'s three pages: a mean and a sum of 50 values, and a mean of 600 with zeros.
pub fn pages(t: u64) -> Vec<TaskPage> {
    vec![
        TaskPage {
            estimator: "z_profile".into(),
            page_number: 0,
            meta: meta("DOSE", 1),
            aggregation: Aggregation::Mean,
            values: values(t, 50, false),
        },
        TaskPage {
            estimator: "z_profile".into(),
            page_number: 1,
            meta: meta("COUNT", 1),
            aggregation: Aggregation::Sum,
            values: values(t + 100, 50, false),
        },
        TaskPage {
            estimator: "rz_map".into(),
            page_number: 0,
            meta: meta("DOSE", 2),
            aggregation: Aggregation::Mean,
            values: values(t + 200, 600, true),
        },
    ]
}
