//! What the simulator tests share: the stand-in programs, a real worker process configured
//! with them, submitting, waiting, and the checks every external simulator gets.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod reference;

use db::enums::{InputType, JobState, SimType, TaskState};
use db::inputs::SimulationInput;
use db::testing::{self, TestDb};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A stand-in program from `tests/standins`.
pub fn standin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/standins")
        .join(name)
}

/// The real pymchelper `convertmc` (pinned; `scripts/test` installs it and sets `CONVERTMC`).
/// Panics with a hint when it is not there: these tests never run on a stand-in converter.
pub fn convertmc() -> PathBuf {
    let path = std::env::var_os("CONVERTMC")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pymchelper-2.9.6/bin/convertmc")
        });
    assert!(
        path.is_file(),
        "pymchelper's convertmc is not at {} (run scripts/test, which installs it, or set \
         CONVERTMC)",
        path.display()
    );
    path
}

/// `<rel>` under the real simulator files (`sim_inputs::testdata`).
pub fn shared_data(rel: &str) -> PathBuf {
    sim_inputs::testdata::pymchelper_data(rel)
}

/// A real `worker` process (concurrency 3, the real convertmc, its own work root),
/// killed when dropped.
pub struct Worker {
    child: Child,
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
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_worker"));
        cmd.args([
            "--database-url",
            db.config().url_with_password(),
            "--poll-secs",
            "0.5",
            "--concurrency",
            "3",
        ])
        .arg("--convertmc")
        .arg(convertmc())
        .arg("--work-root")
        .arg(&work_root)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped());
        for (flag, program) in programs {
            cmd.arg(flag).arg(standin(program));
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("ready"), "{line:?}");
        Self { child, work_root }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.work_root);
    }
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

/// Waits until the simulation is in state `want`.
pub async fn wait_state(conn: &mut db::Conn, sim: i64, want: JobState, limit: Duration) {
    let t = Instant::now();
    loop {
        let s = db::simulations::get(conn, sim).await.unwrap().job_state;
        if s == want {
            return;
        }
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
    db::api::cancel(conn, sim).await.unwrap().unwrap();
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
