//! The runner in this process, against a real PostgreSQL test database, with a test
//! [`TaskHandler`] whose timing the tests drive (barriers, semaphores, notifications): claim
//! and completion with results, the concurrency limit, cancellation, the panic guard, and
//! shutdown with its grace period. (The process-level tests, `queue_flow` and `db_restart`,
//! keep signals and restarts.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::aggregation::Aggregation;
use db::enums::{JobState, SimType, TaskState};
use db::queue::ClaimedTask;
use db::results::{PageMeta, TaskPage};
use db::testing::{self, TestDb};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Barrier, Notify, Semaphore};
use worker::{Outcome, Runner, Settings, Stop, TaskContext, TaskHandler};

/// How long a test waits for a state it expects (a bound for failures, not a measurement).
const LIMIT: Duration = Duration::from_secs(30);

/// What the test handler does with a task.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Completes with one page holding the task's index.
    Complete,
    /// Waits for a permit of `gate` (and first, for the first `concurrency` tasks, the
    /// barrier), then completes.
    Gated,
    /// Waits until told to stop, and says why.
    UntilStopped,
    /// Panics on task index 0, completes the others.
    PanicOnFirst,
}

/// A handler driven by the test.
struct TestHandler {
    mode: Mode,
    /// Runs started so far.
    started: AtomicUsize,
    /// Runs executing now, and the most at once.
    running: AtomicUsize,
    most: AtomicUsize,
    /// Notified when a run starts.
    start: Notify,
    /// The first runs (up to `barrier_parties - 1`) meet the test here.
    barrier: Barrier,
    barrier_parties: usize,
    /// Gated runs each take a permit before they complete.
    gate: Semaphore,
    /// Why runs stopped.
    stops: Mutex<Vec<Stop>>,
}

impl TestHandler {
    fn new(mode: Mode, concurrency: usize) -> Arc<Self> {
        Arc::new(Self {
            mode,
            started: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            start: Notify::new(),
            barrier: Barrier::new(concurrency + 1),
            barrier_parties: concurrency,
            gate: Semaphore::new(0),
            stops: Mutex::new(Vec::new()),
        })
    }

    async fn handle(&self, task: &ClaimedTask, mut ctx: TaskContext) -> Outcome {
        let order = self.started.fetch_add(1, Ordering::SeqCst);
        self.start.notify_one();
        match self.mode {
            Mode::Complete => {}
            Mode::Gated => {
                if order < self.barrier_parties {
                    self.barrier.wait().await;
                }
                self.gate.acquire().await.unwrap().forget();
            }
            Mode::UntilStopped => {
                let why = ctx.stopped().await;
                self.stops.lock().unwrap().push(why);
                return Outcome::Stopped(why);
            }
            Mode::PanicOnFirst if task.task_index == 0 => panic!("boom in task 0"),
            Mode::PanicOnFirst => {}
        }
        assert!(ctx.report(task.requested_primaries / 2, Some(1)).await);
        Outcome::Done {
            simulated_primaries: task.requested_primaries,
            pages: vec![page(task.task_index)],
        }
    }
}

/// The tests share one handler between the runner and themselves.
struct Shared(Arc<TestHandler>);

impl TaskHandler for Shared {
    async fn run(&self, task: &ClaimedTask, ctx: TaskContext) -> Outcome {
        let h = &self.0;
        let now = h.running.fetch_add(1, Ordering::SeqCst) + 1;
        h.most.fetch_max(now, Ordering::SeqCst);
        let outcome = h.handle(task, ctx).await;
        h.running.fetch_sub(1, Ordering::SeqCst);
        outcome
    }
}

/// One 1-D page of two bins, `[index, 1]`, averaged over tasks.
fn page(index: i32) -> TaskPage {
    TaskPage {
        estimator: "profile".into(),
        page_number: 0,
        meta: PageMeta {
            name: "DOSE".into(),
            dimension: 1,
            axes: serde_json::json!([{"name": "z", "bins": 2}]),
            value_name: "dose".into(),
            value_unit: "Gy".into(),
            ..PageMeta::default()
        },
        aggregation: Aggregation::Mean,
        values: vec![f64::from(index), 1.0],
    }
}

/// One test's world: a database with a simulation of `ntasks` tasks (100 primaries each, no
/// input: the test handler needs none), and a runner (its id `inproc`, `concurrency` slots,
/// polling every 50 ms, `grace` at shutdown) running the test handler in this process.
struct Harness {
    _db: TestDb,
    conn: db::Conn,
    sim: i64,
    handler: Arc<TestHandler>,
    stop: oneshot::Sender<()>,
    run: tokio::task::JoinHandle<()>,
}

impl Harness {
    async fn start(mode: Mode, ntasks: i32, concurrency: usize, grace: Duration) -> Self {
        let db = TestDb::new().await;
        let mut conn = db.conn().await;
        let owner = testing::user(&mut conn, "physicist").await;
        let primaries = 100 * i64::from(ntasks);
        let new = testing::new_simulation(owner, SimType::Builtin, ntasks, primaries);
        let sim = testing::submit(&mut conn, new, None).await;
        let handler = TestHandler::new(mode, concurrency);
        let mut settings = Settings::new("inproc");
        settings.concurrency = concurrency;
        settings.poll = Duration::from_millis(50);
        settings.grace = grace;
        let runner = Runner::new(settings, db.pool().await, Shared(handler.clone()));
        let (stop, rx) = oneshot::channel::<()>();
        let run = tokio::spawn(runner.run(async move {
            let _ = rx.await;
        }));
        Self {
            _db: db,
            conn,
            sim,
            handler,
            stop,
            run,
        }
    }

    /// Tells the runner to shut down, and waits until it has; the database stays until the
    /// returned values are dropped.
    async fn shutdown(self) -> (db::Conn, TestDb) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(LIMIT, self.run)
            .await
            .expect("the runner did not stop")
            .unwrap();
        (self.conn, self._db)
    }
}

/// Waits until `n` runs have started.
async fn started(handler: &TestHandler, n: usize) {
    tokio::time::timeout(LIMIT, async {
        while handler.started.load(Ordering::SeqCst) < n {
            handler.start.notified().await;
        }
    })
    .await
    .expect("runs did not start");
}

/// The simulation's tasks once none is open any more.
async fn settled(conn: &mut db::Conn, sim: i64) -> Vec<db::models::Task> {
    tokio::time::timeout(LIMIT, async {
        loop {
            let tasks = support::tasks(conn, sim).await;
            if tasks
                .iter()
                .all(|t| !TaskState::OPEN.contains(&t.task_state))
            {
                return tasks;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("tasks still open")
}

/// The states of the simulation's tasks, by index.
async fn states(conn: &mut db::Conn, sim: i64) -> Vec<TaskState> {
    let tasks = support::tasks(conn, sim).await;
    tasks.iter().map(|t| t.task_state).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_runs_and_completes_tasks_with_their_results() {
    let mut h = Harness::start(Mode::Complete, 2, 2, Duration::from_secs(10)).await;
    let (conn, sim, handler) = (&mut h.conn, h.sim, h.handler.clone());

    support::wait_state(conn, sim, JobState::Completed, LIMIT).await;
    let tasks = support::tasks(conn, sim).await;
    assert!(tasks.iter().all(|t| t.task_state == TaskState::Completed));
    assert!(tasks.iter().all(|t| t.simulated_primaries == 100));
    assert!(tasks.iter().all(|t| t.attempts == 1));
    let pages = db::results::read_all(conn, sim).await.unwrap();
    assert_eq!(pages.len(), 1);
    assert_eq!(
        pages[0].values,
        vec![0.5, 1.0],
        "the mean of [0, 1] and [1, 1]"
    );
    assert!(
        pages[0].errors.is_some(),
        "two tasks merged: a standard error"
    );
    assert_eq!(handler.started.load(Ordering::SeqCst), 2);

    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_concurrency_tasks_run_at_once() {
    const SLOTS: usize = 2;
    let mut h = Harness::start(
        Mode::Gated,
        SLOTS as i32 + 1,
        SLOTS,
        Duration::from_secs(10),
    )
    .await;
    let (conn, sim, handler) = (&mut h.conn, h.sim, h.handler.clone());

    // The barrier opens only when SLOTS runs are inside the handler together.
    tokio::time::timeout(LIMIT, handler.barrier.wait())
        .await
        .expect("the slots did not fill");
    // Let the claim loop go round a few times (it polls every 50 ms): the last task must
    // stay unclaimed while every slot is busy.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(handler.started.load(Ordering::SeqCst), SLOTS);
    let waiting = states(conn, sim).await;
    assert_eq!(
        waiting.iter().filter(|s| **s == TaskState::Pending).count(),
        1,
        "{waiting:?}"
    );
    // One run ends; its slot goes to the last task.
    handler.gate.add_permits(1);
    started(&handler, SLOTS + 1).await;
    handler.gate.add_permits(SLOTS);
    support::wait_state(conn, sim, JobState::Completed, LIMIT).await;
    assert_eq!(handler.most.load(Ordering::SeqCst), SLOTS);

    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_handler() {
    let mut h = Harness::start(Mode::UntilStopped, 1, 1, Duration::from_secs(10)).await;
    let (conn, sim, handler) = (&mut h.conn, h.sim, h.handler.clone());

    started(&handler, 1).await;
    db::queue::cancel(conn, sim).await.unwrap();
    tokio::time::timeout(LIMIT, async {
        while handler.running.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the canceled run did not stop");
    assert_eq!(*handler.stops.lock().unwrap(), vec![Stop::Canceled]);
    assert_eq!(states(conn, sim).await, vec![TaskState::Canceled]);

    let (mut conn, _db) = h.shutdown().await;
    let sim_state = db::simulations::get(&mut conn, sim)
        .await
        .unwrap()
        .job_state;
    assert_eq!(sim_state, JobState::Canceled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_fails_only_its_task_and_frees_the_slot() {
    // One slot: the tasks after the panicking one run only if its slot was freed.
    let mut h = Harness::start(Mode::PanicOnFirst, 3, 1, Duration::from_secs(10)).await;
    let (conn, sim, handler) = (&mut h.conn, h.sim, h.handler.clone());

    let tasks = settled(conn, sim).await;
    let panicked = &tasks[0];
    assert_eq!(panicked.task_state, TaskState::Failed);
    assert_eq!(panicked.attempts, 1, "a panic is not retried");
    let error = panicked.last_error.as_deref().unwrap_or_default();
    assert!(error.contains("it panicked: boom in task 0"), "{error}");
    for t in &tasks[1..] {
        assert_eq!(t.task_state, TaskState::Completed, "task {}", t.task_index);
    }
    assert_eq!(handler.started.load(Ordering::SeqCst), 3);

    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_running_tasks_within_the_grace_period() {
    let h = Harness::start(Mode::Gated, 1, 1, Duration::from_secs(60)).await;
    let Harness {
        _db,
        mut conn,
        sim,
        handler,
        stop,
        run,
    } = h;

    tokio::time::timeout(LIMIT, handler.barrier.wait())
        .await
        .expect("the run did not start");
    stop.send(()).unwrap();
    // Shutting down, the runner waits for the run, which ends once the test lets it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!run.is_finished(), "the runner did not wait for its task");
    handler.gate.add_permits(1);
    tokio::time::timeout(LIMIT, run)
        .await
        .expect("the runner did not stop")
        .unwrap();
    // The outcome was written before the runner returned.
    assert_eq!(states(&mut conn, sim).await, vec![TaskState::Completed]);
    assert!(handler.stops.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hands_back_tasks_still_running_after_the_grace_period() {
    let h = Harness::start(Mode::UntilStopped, 1, 1, Duration::ZERO).await;
    let (sim, handler) = (h.sim, h.handler.clone());

    started(&handler, 1).await;
    let (mut conn, _db) = h.shutdown().await;
    assert_eq!(*handler.stops.lock().unwrap(), vec![Stop::Shutdown]);
    let tasks = support::tasks(&mut conn, sim).await;
    assert_eq!(tasks[0].task_state, TaskState::Pending, "handed back");
    assert_eq!(tasks[0].lease_owner, None);
}
