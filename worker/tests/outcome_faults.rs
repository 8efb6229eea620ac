//! Faults around a task's end, through real worker processes: a database outage (no new
//! connections, every existing one terminated) just before two tasks end (both still complete on their first attempt,
//! with their logs), and a handler that panics (the task fails with the panic's message and
//! the worker's slot is freed for the next task).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::enums::{JobState, SimType, TaskState};
use db::inputs::SimulationInput;
use db::testing::{self, TestDb};
use diesel_async::RunQueryDsl;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{tasks, wait_state, Worker};

/// Terminates every connection to the test database but `conn`'s own.
async fn terminate_all_but_mine(conn: &mut db::Conn, db_name: &str) -> usize {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let rows: Vec<N> = diesel::sql_query(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS n FROM pg_stat_activity
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind::<diesel::sql_types::Text, _>(db_name)
    .load(conn)
    .await
    .unwrap();
    rows[0].n as usize
}

/// `ALTER DATABASE … ALLOW_CONNECTIONS`, run by `psql` from the server's `postgres` database
/// (a database cannot refuse connections to itself from its own session).
fn set_allow_connections(db: &TestDb, allow: bool) {
    let url = db.config().url_with_password().to_string();
    let server = &url[..url.rfind('/').unwrap()];
    let out = Command::new("psql")
        .arg(format!("{server}/postgres"))
        .args([
            "-qc",
            &format!(
                "ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS {allow}",
                db.name()
            ),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test]
async fn tasks_ending_after_their_connections_died_complete_on_the_first_attempt() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let w = Worker::start(&db, &[("--shieldhit", "shieldhit")]);
    // The captured run's 20 progress lines, 0.15 s apart: about 3 s per task.
    let input = support::captured_shieldhit(serde_json::json!({"delay": 0.15}));
    let sim = support::submit(
        &mut conn,
        SimType::Shieldhit,
        2,
        40,
        &SimulationInput::Files(input),
    )
    .await;
    wait_state(&mut conn, sim, JobState::Running, Duration::from_secs(20)).await;
    // Both tasks are running; about a second before they end, every connection of the worker
    // (pool, listener) dies.
    let t = Instant::now();
    while tasks(&mut conn, sim)
        .await
        .iter()
        .any(|t| t.task_state != TaskState::Running)
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the tasks never ran together"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The outage starts as the simulator saves its results (its last lines, then convertmc,
    // the logs and the outcome follow): no new connections for 4 s, and every existing one
    // (pool, listener) terminated. The tasks end during it.
    let saved = |i: i32| {
        std::fs::read_dir(w.work_root.join(format!("sim{sim}-task{i}-attempt1")))
            .map(|d| {
                d.flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "bdo"))
            })
            .unwrap_or(false)
    };
    while !saved(0) && !saved(1) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no task saved results"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    set_allow_connections(&db, false);
    let killed = terminate_all_but_mine(&mut conn, db.name()).await;
    assert!(killed >= 1, "the worker had connections to terminate");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = tasks(&mut conn, sim).await;
    set_allow_connections(&db, true);
    assert!(
        during.iter().all(|t| t.task_state == TaskState::Running),
        "nothing could be recorded during the outage"
    );

    wait_state(&mut conn, sim, JobState::Completed, Duration::from_secs(60)).await;
    for t in tasks(&mut conn, sim).await {
        assert_eq!(t.task_state, TaskState::Completed);
        assert_eq!(t.attempts, 1, "task {} ran again", t.task_index);
        assert_eq!(t.simulated_primaries, 20);
        let out = support::log_text(&mut conn, sim, Some(t.id), "stdout").await;
        assert!(out.contains("Primary particle no."), "{out}");
    }
    let pages = db::results::read_all(&mut conn, sim).await.unwrap();
    assert!(!pages.is_empty() && pages.iter().all(|p| !p.partial));
}

#[tokio::test]
async fn a_panicking_handler_fails_its_task_and_frees_its_slot() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = tests::spawn_worker(
        support::worker_command(db.config().url_with_password())
            .args(["--concurrency", "1", "--handler", "panic", "--poll", "0.5"])
            .stderr(Stdio::null()),
    );
    // Three one-task simulations on one slot: each can start only if the one before freed it.
    let owner = testing::user(&mut conn, "u").await;
    let mut sims = Vec::new();
    for _ in 0..3 {
        let new = testing::new_simulation(owner, SimType::Builtin, 1, 10);
        sims.push(testing::submit(&mut conn, new, None).await);
    }
    for sim in sims {
        wait_state(&mut conn, sim, JobState::Failed, Duration::from_secs(30)).await;
        let t = &tasks(&mut conn, sim).await[0];
        assert_eq!(t.task_state, TaskState::Failed);
        assert_eq!(t.attempts, 1, "a panic is not retried");
        let err = t.last_error.as_deref().unwrap_or_default();
        assert!(
            err.contains("panicked") && err.contains("as asked"),
            "{err}"
        );
    }
}
