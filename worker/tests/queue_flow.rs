//! Real `worker` processes against a real PostgreSQL: sharing a queue, surviving `kill -9`,
//! cancellation, and SIGTERM. The `sleep:MS` handler stands in for a simulator here; it
//! reports progress like one and honours stop requests.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::enums::{JobState, SimType, TaskState};
use db::testing::{self, TestDb};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{tasks, wait_state};

struct WorkerProc {
    proc: tests::Proc,
    id: String,
}

impl WorkerProc {
    fn start(db: &TestDb, id: &str, args: &[&str]) -> Self {
        let proc = tests::spawn_worker(
            support::worker_command(db.config().url_with_password())
                .args(["--worker-id", id, "--poll", "1"])
                .args(args),
        );
        Self {
            proc,
            id: id.into(),
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.proc.0.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Some(status) = self.proc.0.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

async fn submit(conn: &mut db::Conn, ntasks: i32) -> i64 {
    let owner = testing::user(conn, "u").await;
    let new = testing::new_simulation(owner, SimType::Builtin, ntasks, 100 * i64::from(ntasks));
    testing::submit(conn, new, None).await
}

async fn wait_for<F: AsyncFnMut() -> bool>(limit: Duration, what: &str, mut f: F) {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// Waits up to `secs` seconds for the first task of `sim` to run (`what`: for the message).
async fn first_task_runs(conn: &mut db::Conn, sim: i64, secs: u64, what: &str) {
    wait_for(Duration::from_secs(secs), what, async || {
        tasks(conn, sim).await[0].task_state == TaskState::Running
    })
    .await;
}

async fn state(conn: &mut db::Conn, sim: i64) -> JobState {
    db::simulations::get(conn, sim).await.unwrap().job_state
}

/// What `Cancel` does: `db::simulation_views::cancel`.
async fn cancel(conn: &mut db::Conn, sim: i64) {
    db::simulation_views::cancel(conn, sim).await.unwrap();
}

#[tokio::test]
async fn two_workers_share_one_queue_and_never_run_a_task_twice() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let a = WorkerProc::start(&db, "wa", &["--handler", "sleep:150", "--concurrency", "3"]);
    let b = WorkerProc::start(&db, "wb", &["--handler", "sleep:150", "--concurrency", "3"]);
    let sims = [submit(&mut conn, 10).await, submit(&mut conn, 10).await];
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "SELECT pg_notify('{}', '')",
            db::notify::TASKS_READY
        )),
        &mut conn,
    )
    .await
    .unwrap();
    for sim in sims {
        wait_state(&mut conn, sim, JobState::Completed, Duration::from_secs(30)).await;
    }
    let mut owners = std::collections::HashSet::new();
    for sim in sims {
        for t in tasks(&mut conn, sim).await {
            assert_eq!(t.task_state, TaskState::Completed);
            assert_eq!(t.attempts, 1, "task {} ran more than once", t.id);
            assert_eq!(t.simulated_primaries, t.requested_primaries);
            owners.insert(t.lease_owner.unwrap());
        }
    }
    assert_eq!(
        owners,
        [a.id.clone(), b.id.clone()].into_iter().collect(),
        "both workers took tasks"
    );
}

#[tokio::test]
async fn a_task_of_a_killed_worker_is_finished_by_another_exactly_once() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let sim = submit(&mut conn, 1).await;
    let mut a = WorkerProc::start(&db, "doomed", &["--handler", "sleep:60000", "--lease", "2"]);
    first_task_runs(&mut conn, sim, 10, "the task to run on the first worker").await;
    a.signal("-KILL");
    assert!(a.wait_exit(Duration::from_secs(5)).is_some());
    let _b = WorkerProc::start(&db, "rescuer", &["--handler", "sleep:200", "--lease", "2"]);
    let limit = Duration::from_secs(20);
    wait_state(&mut conn, sim, JobState::Completed, limit).await;
    let t = &tasks(&mut conn, sim).await[0];
    assert_eq!(t.attempts, 2);
    assert_eq!(t.lease_owner.as_deref(), Some("rescuer"));
    assert!(
        t.last_error.as_deref().unwrap_or("").contains("doomed"),
        "{:?}",
        t.last_error
    );
}

#[tokio::test]
async fn canceling_a_running_simulation_stops_its_task_within_a_second() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let first = submit(&mut conn, 1).await;
    let _w = WorkerProc::start(
        &db,
        "w",
        &["--handler", "sleep:60000", "--concurrency", "1"],
    );
    first_task_runs(&mut conn, first, 10, "the first task to run").await;
    let second = submit(&mut conn, 1).await;
    let t0 = Instant::now();
    cancel(&mut conn, first).await;
    // The only slot frees when the canceled run stops: the next task starts.
    first_task_runs(&mut conn, second, 3, "the next task to start").await;
    eprintln!("cancel to next start: {:?}", t0.elapsed());
    assert_eq!(state(&mut conn, first).await, JobState::Canceled);
    assert_eq!(
        tasks(&mut conn, first).await[0].task_state,
        TaskState::Canceled
    );
}

#[tokio::test]
async fn a_simulation_canceled_while_pending_never_runs() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let sim = submit(&mut conn, 3).await;
    cancel(&mut conn, sim).await;
    let _w = WorkerProc::start(&db, "w", &["--handler", "sleep:10"]);
    let other = submit(&mut conn, 1).await;
    let limit = Duration::from_secs(10);
    wait_state(&mut conn, other, JobState::Completed, limit).await;
    for t in tasks(&mut conn, sim).await {
        assert_eq!((t.task_state, t.attempts), (TaskState::Canceled, 0));
    }
    assert_eq!(state(&mut conn, sim).await, JobState::Canceled);
}

#[tokio::test]
async fn sigterm_hands_running_tasks_back_and_loses_nothing() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let sim = submit(&mut conn, 2).await;
    let mut w = WorkerProc::start(
        &db,
        "leaving",
        &[
            "--handler",
            "sleep:60000",
            "--grace",
            "0.3",
            "--concurrency",
            "2",
        ],
    );
    wait_for(Duration::from_secs(10), "both tasks to run", async || {
        tasks(&mut conn, sim)
            .await
            .iter()
            .all(|t| t.task_state == TaskState::Running)
    })
    .await;
    w.signal("-TERM");
    assert_eq!(
        w.wait_exit(Duration::from_secs(10)),
        Some(0),
        "clean exit after SIGTERM"
    );
    for t in tasks(&mut conn, sim).await {
        assert_eq!(t.task_state, TaskState::Pending, "handed back");
        assert_eq!(t.attempts, 0, "a handed-back run does not use an attempt");
    }
    let _next = WorkerProc::start(&db, "next", &["--handler", "sleep:50"]);
    let limit = Duration::from_secs(10);
    wait_state(&mut conn, sim, JobState::Completed, limit).await;
}
