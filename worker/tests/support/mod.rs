//! What the simulator tests share: the stand-in programs, a real worker process configured
//! with them, submitting, waiting, and the checks every external simulator gets.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod reference;

use db::enums::{InputType, JobState, SimType, TaskState};
use db::inputs::SimulationInput;
use db::testing::{self, TestDb};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A stand-in program from `tests/standins`.
pub fn standin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/standins")
        .join(name)
}

/// The real pymchelper `convertmc` (pinned; `scripts/test` installs it and sets `CONVERTMC`).
pub use tests::convertmc;

/// `<rel>` under the real simulator files (`sim_inputs::testdata`).
pub fn shared_data(rel: &str) -> PathBuf {
    sim_inputs::testdata::pymchelper_data(rel)
}

/// SHIELD-HIT12A input files: `beam.dat`, `detect.dat`, `geo.dat` and `mat.dat` from `dir`,
/// and the stand-in's `standin.json`.
pub fn shieldhit_files(dir: &Path, standin: serde_json::Value) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    for name in ["beam.dat", "detect.dat", "geo.dat", "mat.dat"] {
        f.insert(
            name.to_string(),
            std::fs::read_to_string(dir.join(name)).unwrap(),
        );
    }
    f.insert("standin.json".into(), standin.to_string());
    f
}

/// The captured SHIELD-HIT12A v1.0.0 run's input (a 2-D mesh of dose and one of fluence),
/// with `standin` for the stand-in.
pub fn captured_shieldhit(standin: serde_json::Value) -> BTreeMap<String, String> {
    shieldhit_files(&shared_data("captured/shieldhit/input"), standin)
}

/// A command for the `worker` binary this test run built, against the database at `url`,
/// logging at `info` to the test's stderr; start it with [`tests::spawn_worker`].
pub fn worker_command(url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_worker"));
    cmd.args(["--database-url", url]).env("RUST_LOG", "info");
    cmd
}

/// A real `worker` process (concurrency 3, the real convertmc, its own work root),
/// killed when dropped.
pub struct Worker {
    proc: tests::Proc,
    /// Where its per-task work directories are.
    pub work_root: PathBuf,
}

impl Worker {
    /// Starts a worker with `programs`: (flag, stand-in) pairs such as
    /// `("--fluka", "rfluka")`.
    pub fn start(db: &TestDb, programs: &[(&str, &str)]) -> Self {
        let work_root = std::env::temp_dir().join(format!(
            "sim-worker-test-{}-{}",
            std::process::id(),
            db.name()
        ));
        let mut cmd = worker_command(db.config().url_with_password());
        Self::spawn(&mut cmd, work_root, programs)
    }

    /// [`Worker::start`], the worker called `name` in task leases (and with its own work
    /// root), to run beside another.
    pub fn start_named(db: &TestDb, name: &str, programs: &[(&str, &str)]) -> Self {
        let work_root = std::env::temp_dir().join(format!(
            "sim-worker-test-{}-{}-{name}",
            std::process::id(),
            db.name()
        ));
        let mut cmd = worker_command(db.config().url_with_password());
        cmd.args(["--worker-id", name]);
        Self::spawn(&mut cmd, work_root, programs)
    }

    fn spawn(cmd: &mut Command, work_root: PathBuf, programs: &[(&str, &str)]) -> Self {
        cmd.args(["--poll", "0.5", "--concurrency", "3"])
            .arg("--convertmc")
            .arg(convertmc())
            .arg("--work-root")
            .arg(&work_root);
        for (flag, program) in programs {
            cmd.arg(flag).arg(standin(program));
        }
        let proc = tests::spawn_worker(cmd);
        Self { proc, work_root }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.proc.0.kill();
        let _ = self.proc.0.wait();
        let _ = std::fs::remove_dir_all(&self.work_root);
    }
}

/// One external simulator's test: a fresh test database, a connection to it, and a real
/// worker that has the simulator's stand-in (or, to test its absence, not).
pub struct SimTest {
    /// The worker (killed when dropped, before the database goes).
    pub worker: Worker,
    /// A connection to the test database.
    pub conn: db::Conn,
    sim_type: SimType,
    program: (&'static str, &'static str),
    db: TestDb,
}

impl SimTest {
    /// Starts the worker with `program`, the flag and the stand-in such as
    /// `("--fluka", "rfluka")`, or without it when `with_program` is false.
    pub async fn start(
        sim_type: SimType,
        program: (&'static str, &'static str),
        with_program: bool,
    ) -> Self {
        let db = TestDb::new().await;
        let conn = db.conn().await;
        let worker = Worker::start(&db, &[program][..usize::from(with_program)]);
        Self {
            worker,
            conn,
            sim_type,
            program,
            db,
        }
    }

    /// A worker without the simulator's program leaves its tasks `PENDING`, unclaimed, while
    /// it runs a builtin task submitted after them; a second worker, `capable`, with the
    /// program, then completes them on their first attempt. (`self` must have been started
    /// without the program.)
    pub async fn waits_for_a_worker_with_the_program(&mut self, input: SimulationInput) {
        let sim = self.submit(2, 200, input).await;
        // Newer than the simulator's tasks: once it has completed, the worker has claimed
        // past them.
        let builtin = submit(&mut self.conn, SimType::Builtin, 1, 100, &builtin_input()).await;
        wait_state(
            &mut self.conn,
            builtin,
            JobState::Completed,
            Duration::from_secs(60),
        )
        .await;
        for t in self.tasks(sim).await {
            assert_eq!(
                (t.task_state, t.attempts, t.last_error.as_deref()),
                (TaskState::Pending, 0, None),
                "{:?} task {}",
                self.sim_type,
                t.task_index
            );
        }
        let state = db::simulations::get(&mut self.conn, sim).await.unwrap();
        assert_eq!(state.job_state, JobState::Pending);

        let _capable = Worker::start_named(&self.db, "capable", &[self.program]);
        self.wait(sim, JobState::Completed, 90).await;
        for t in self.tasks(sim).await {
            assert_eq!(
                (t.task_state, t.attempts, t.lease_owner.as_deref()),
                (TaskState::Completed, 1, Some("capable")),
                "{:?} task {}",
                self.sim_type,
                t.task_index
            );
        }
    }

    /// [`submit`] of this simulator.
    pub async fn submit(&mut self, ntasks: i32, primaries: i64, input: SimulationInput) -> i64 {
        submit(&mut self.conn, self.sim_type, ntasks, primaries, &input).await
    }

    /// [`failure_of`] of this simulator.
    pub async fn failure(&mut self, input: SimulationInput) -> (i64, String) {
        failure_of(&mut self.conn, self.sim_type, &input).await
    }

    /// Submits `input`, which must fail without retries with an error containing `part`.
    pub async fn fails_with(&mut self, input: SimulationInput, part: &str) {
        let err = self.failure(input).await.1;
        assert!(err.contains(part), "{err}");
    }

    /// [`SimTest::fails_with`] of each `(input, part)`, one after the other.
    pub async fn fails_with_each<const N: usize>(&mut self, cases: [(SimulationInput, &str); N]) {
        for (input, part) in cases {
            self.fails_with(input, part).await;
        }
    }

    /// Submits `input`, which must fail without retries with an error containing every one
    /// of `error`, and checks that its stored log `log` ("stdout" or "stderr") contains
    /// `logged`; returns the simulation's id.
    pub async fn fails_keeping_log(
        &mut self,
        input: SimulationInput,
        error: &[&str],
        (log, logged): (&str, &str),
    ) -> i64 {
        let (sim, err) = self.failure(input).await;
        assert!(error.iter().all(|e| err.contains(e)), "{err}");
        let text = self.log(sim, None, log).await;
        assert!(text.contains(logged), "{log}: {text}");
        sim
    }

    /// [`wait_state`], for at most `secs` seconds.
    pub async fn wait(&mut self, sim: i64, want: JobState, secs: u64) {
        wait_state(&mut self.conn, sim, want, Duration::from_secs(secs)).await;
    }

    /// [`tasks`] of `sim`.
    pub async fn tasks(&mut self, sim: i64) -> Vec<db::models::Task> {
        tasks(&mut self.conn, sim).await
    }

    /// [`log_text`] of `sim`.
    pub async fn log(&mut self, sim: i64, task: Option<i64>, name: &str) -> String {
        log_text(&mut self.conn, sim, task, name).await
    }

    /// [`cancel_kills_a_hanging_program`] of this simulator.
    pub async fn cancel_kills_a_hanging_program(&mut self, input: SimulationInput) {
        let (conn, worker) = (&mut self.conn, &self.worker);
        cancel_kills_a_hanging_program(conn, worker, self.sim_type, &input).await;
    }
}

/// The tests every external simulator gets, written once: a hanging run that cancellation
/// kills, and a worker without the program that leaves its tasks to one with it. `start` is
/// the test file's `async fn start(with_program: bool) -> SimTest`; `hang` and `ok` are
/// input files with which its stand-in hangs and succeeds.
#[macro_export]
macro_rules! external_simulator_tests {
    (start: $start:ident, hang: $hang:expr, ok: $ok:expr) => {
        #[tokio::test]
        async fn canceling_kills_a_hanging_program() {
            let input = db::inputs::SimulationInput::Files($hang);
            $start(true)
                .await
                .cancel_kills_a_hanging_program(input)
                .await;
        }

        /// A worker without the program does not claim its tasks (it would fail them,
        /// saying the program is not configured); a worker with it runs them.
        #[tokio::test]
        async fn a_worker_without_the_program_leaves_its_tasks_to_one_with_it() {
            let input = db::inputs::SimulationInput::Files($ok);
            $start(false)
                .await
                .waits_for_a_worker_with_the_program(input)
                .await;
        }
    };
}

/// A small builtin run's input (editor JSON).
pub fn builtin_input() -> SimulationInput {
    SimulationInput::Editor(serde_json::json!({
        "beam": {"energy_mev": 150.0, "sigma_cm": 0.3},
        "scoring": {"z_bins": 20, "r_bins": 2},
        "seed": 7
    }))
}

/// Submits a simulation of `sim_type` with `input`; returns its id.
pub async fn submit(
    conn: &mut db::Conn,
    sim_type: SimType,
    ntasks: i32,
    primaries: i64,
    input: &SimulationInput,
) -> i64 {
    let owner = testing::user(conn, "physicist").await;
    let mut new = testing::new_simulation(owner, sim_type, ntasks, primaries);
    new.input_type = match input {
        SimulationInput::Files(_) => InputType::Files,
        SimulationInput::Editor(_) => InputType::Editor,
    };
    testing::submit(conn, new, Some(input)).await
}

/// Waits until the simulation is in state `want`; fails as soon as it ends in another
/// (final) state.
pub async fn wait_state(conn: &mut db::Conn, sim: i64, want: JobState, limit: Duration) {
    let t = Instant::now();
    loop {
        let s = db::simulations::get(conn, sim).await.unwrap().job_state;
        if s == want {
            return;
        }
        assert!(!s.is_terminal(), "simulation {sim} ended {s}, not {want}");
        assert!(
            t.elapsed() < limit,
            "simulation {sim} is {s}, not {want}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The simulation's tasks, by index.
pub async fn tasks(conn: &mut db::Conn, sim: i64) -> Vec<db::models::Task> {
    db::tasks::list(
        conn,
        &db::tasks::TaskFilter {
            simulation_id: Some(sim),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .into_iter()
    .map(|r| r.task)
    .collect()
}

/// Submits a one-task simulation that must fail, without retries (another attempt would
/// fail the same way); returns its id and the task's error.
pub async fn failure_of(
    conn: &mut db::Conn,
    sim_type: SimType,
    input: &SimulationInput,
) -> (i64, String) {
    let sim = submit(conn, sim_type, 1, 100, input).await;
    wait_state(conn, sim, JobState::Failed, Duration::from_secs(30)).await;
    let t = &tasks(conn, sim).await[0];
    assert_eq!(t.task_state, TaskState::Failed);
    assert_eq!(t.attempts, 1, "not retried");
    (sim, t.last_error.clone().unwrap())
}

/// A stored log of the simulation (`name`: "stdout" or "stderr"; of `task` if given), as text.
pub async fn log_text(conn: &mut db::Conn, sim: i64, task: Option<i64>, name: &str) -> String {
    let logs = db::logs::list(conn, sim).await.unwrap();
    let log = logs
        .iter()
        .find(|l| l.name == name && task.is_none_or(|t| l.task_id == Some(t)))
        .unwrap_or_else(|| panic!("no {name} stored"));
    String::from_utf8_lossy(&log.content).into_owned()
}

/// Submits a one-task simulation whose stand-in hangs (it writes its pid to `pid` in the
/// work directory), cancels it, and checks that the program is killed within 3 s and the
/// task is `CANCELED`.
pub async fn cancel_kills_a_hanging_program(
    conn: &mut db::Conn,
    worker: &Worker,
    sim_type: SimType,
    input: &SimulationInput,
) {
    let sim = submit(conn, sim_type, 1, 100, input).await;
    let pid_file = worker
        .work_root
        .join(format!("sim{sim}-task0-attempt1/pid"));
    let t0 = Instant::now();
    let pid = loop {
        if let Ok(p) = std::fs::read_to_string(&pid_file) {
            if !p.is_empty() {
                break p;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the stand-in never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    db::simulation_views::cancel(conn, sim)
        .await
        .unwrap()
        .unwrap();
    let t1 = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        // A zombie is dead too: check its state.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.contains(") Z ") {
            break;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(3),
            "the program still runs {:?} after cancel",
            t1.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("killed {:?} after cancel", t1.elapsed());
    assert_eq!(tasks(conn, sim).await[0].task_state, TaskState::Canceled);
}

/// Checks the merged page `estimator` of `sim` against the stand-ins' values
/// (`scale · (1 + bin) · (1 + seed % 97) / 97` per task), weighted by each task's primaries,
/// to 1e-12 relative.
pub fn assert_weighted_merge(
    pages: &[db::results::ResultPage],
    estimator: &str,
    bins: usize,
    scale: f64,
    seeds: &[u64],
    primaries: &[i64],
) {
    let page = pages
        .iter()
        .find(|p| p.estimator == estimator)
        .unwrap_or_else(|| panic!("no {estimator} page"));
    assert_eq!(page.values.len(), bins);
    let n: f64 = primaries.iter().sum::<i64>() as f64;
    for (b, got) in page.values.iter().enumerate() {
        let want = seeds
            .iter()
            .zip(primaries)
            .map(|(s, &ni)| ni as f64 * scale * (1 + b) as f64 * (1 + s % 97) as f64 / 97.0)
            .sum::<f64>()
            / n;
        assert!(
            ((got - want) / want).abs() <= 1e-12,
            "bin {b}: {got} vs {want}"
        );
    }
}
