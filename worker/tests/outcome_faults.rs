//! Faults around a task's end, through real worker processes: a database outage (no new
//! connections, every existing one terminated) as two tasks end, and PostgreSQL down for 12 s
//! from about a second before they end (both still complete on their first attempt, with
//! their logs), and a handler that panics (the task fails with the panic's message and
//! the worker's slot is freed for the next task).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::enums::{JobState, SimType, TaskState};
use db::inputs::SimulationInput;
use db::private_pg::PrivatePg;
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

/// Submits a SHIELD-HIT12A simulation of two tasks replaying the captured run (20 progress
/// lines, 0.15 s apart: about 3 s per task), and waits until both run.
async fn two_running_tasks(conn: &mut db::Conn) -> i64 {
    let input = support::captured_shieldhit(serde_json::json!({"delay": 0.15}));
    let sim = support::submit(
        conn,
        SimType::Shieldhit,
        2,
        40,
        &SimulationInput::Files(input),
    )
    .await;
    let t = Instant::now();
    while tasks(conn, sim)
        .await
        .iter()
        .any(|t| t.task_state != TaskState::Running)
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the tasks never ran together"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim
}

/// Both tasks completed on their first attempt, with their logs and every primary, and the
/// simulation's final pages are readable.
async fn both_completed_on_the_first_attempt(conn: &mut db::Conn, sim: i64) {
    wait_state(conn, sim, JobState::Completed, Duration::from_secs(90)).await;
    for t in tasks(conn, sim).await {
        assert_eq!(t.task_state, TaskState::Completed);
        assert_eq!(t.attempts, 1, "task {} ran again", t.task_index);
        assert_eq!(t.simulated_primaries, 20);
        let out = support::log_text(conn, sim, Some(t.id), "stdout").await;
        assert!(out.contains("Primary particle no."), "{out}");
    }
    let pages = db::results::read_all(conn, sim).await.unwrap();
    assert!(!pages.is_empty() && pages.iter().all(|p| !p.partial));
}

#[tokio::test]
async fn tasks_ending_after_their_connections_died_complete_on_the_first_attempt() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let w = Worker::start(&db, &[("--shieldhit", "shieldhit")]);
    let sim = two_running_tasks(&mut conn).await;
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
    let t = Instant::now();
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
    both_completed_on_the_first_attempt(&mut conn, sim).await;
}

#[tokio::test]
async fn tasks_ending_while_the_database_is_down_complete_on_the_first_attempt() {
    // A private server: the shared one cannot be restarted under other tests.
    let pg = PrivatePg::start();
    let config = pg.config();
    db::migrate::run_pending(&config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("worker.log");
    let _w = tests::spawn_worker(
        support::worker_command(config.url_with_password())
            .args(["--poll", "0.5", "--concurrency", "3", "--shieldhit"])
            .arg(support::standin("shieldhit"))
            .arg("--convertmc")
            .arg(tests::convertmc())
            .arg("--work-root")
            .arg(dir.path().join("work"))
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    let mut conn = db::connect(&config).await.unwrap();
    let sim = two_running_tasks(&mut conn).await;
    // About a second before the tasks end (12 of their 20 primaries done, reported at most
    // once a second), PostgreSQL goes down (fast shutdown: every connection dies) and stays
    // down for 12 s: longer than the pool waits for a connection (10 s), so the logs' and
    // outcomes' writes fail and are tried again, within the 30 s lease.
    let t = Instant::now();
    while tasks(&mut conn, sim)
        .await
        .iter()
        .any(|t| t.simulated_primaries < 12)
    {
        assert!(t.elapsed() < Duration::from_secs(30), "no progress seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(conn);
    pg.ctl("stop");
    tokio::time::sleep(Duration::from_secs(12)).await;
    pg.ctl("start");
    let mut conn = db::connect(&config).await.unwrap();
    both_completed_on_the_first_attempt(&mut conn, sim).await;
    let text = std::fs::read_to_string(&log).unwrap();
    let retried = text.lines().filter(|l| l.contains("trying again")).count();
    eprintln!("writes tried again while the server was down: {retried}");
    assert!(
        retried > 0,
        "the writes met the outage and were retried:\n{text}"
    );
    assert!(!text.contains("cannot record the outcome"), "{text}");
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
