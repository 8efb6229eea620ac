//! FLUKA tasks through the real worker, with stand-ins that speak the programs' protocol
//! (tests/standins/rfluka and convertmc): success and a primaries-weighted merge, progress
//! read from the run's `.out` file, an aborted run, a failing rfluka, a hang that
//! cancellation kills, malformed output, and inputs the worker refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use db::enums::{InputType, JobState, SimType, TaskState};
use db::inputs::SimulationInput;
use db::testing::{self, TestDb};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn standin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/standins")
        .join(name)
}

struct Worker {
    child: Child,
    work_root: PathBuf,
}

impl Worker {
    fn start(db: &TestDb, with_fluka: bool) -> Self {
        let work_root = std::env::temp_dir().join(format!(
            "sim-worker-fluka-{}-{}",
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
        .arg(standin("convertmc"))
        .arg("--work-root")
        .arg(&work_root)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped());
        if with_fluka {
            cmd.arg("--fluka").arg(standin("rfluka"));
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

/// A fixed-format input as flair writes it (START asks for 5000; the worker sets its own).
const INPUT: &str = "\
TITLE
Proton beam on a water phantom
BEAM          -0.150                                                  PROTON
GEOBEGIN                                                              COMBNAME
    0    0          water phantom
RPP body1      -10.0 10.0 -10.0 10.0 0.0 30.0
END
GEOEND
START          5000.
STOP
";

fn files(mode: &str, delay: f64) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    f.insert("fl_sim.inp".into(), INPUT.into());
    f.insert(
        "standin.json".into(),
        format!("{{\"mode\": \"{mode}\", \"delay\": {delay}}}"),
    );
    f
}

async fn submit(conn: &mut db::Conn, ntasks: i32, primaries: i64, input: SimulationInput) -> i64 {
    let owner = testing::user(conn, "physicist").await;
    let mut new = testing::new_simulation(owner, SimType::Fluka, ntasks, primaries);
    new.input_type = match input {
        SimulationInput::Files(_) => InputType::Files,
        SimulationInput::Editor(_) => InputType::Editor,
    };
    testing::submit(conn, new, Some(&input)).await
}

async fn wait_state(conn: &mut db::Conn, sim: i64, want: JobState, limit: Duration) {
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

async fn tasks(conn: &mut db::Conn, sim: i64) -> Vec<db::models::Task> {
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

/// Submits a one-task simulation that must fail; returns its id and the task's error.
async fn failure_of(conn: &mut db::Conn, input: SimulationInput) -> (i64, String) {
    let sim = submit(conn, 1, 100, input).await;
    wait_state(conn, sim, JobState::Failed, Duration::from_secs(30)).await;
    let t = &tasks(conn, sim).await[0];
    assert_eq!(t.task_state, TaskState::Failed);
    assert_eq!(
        t.attempts, 1,
        "not retried: another attempt would fail the same way"
    );
    (sim, t.last_error.clone().unwrap())
}

#[tokio::test]
async fn a_three_task_run_merges_to_the_primaries_weighted_mean() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = Worker::start(&db, true);
    let sim = submit(
        &mut conn,
        3,
        10_000,
        SimulationInput::Files(files("ok", 0.01)),
    )
    .await;
    wait_state(&mut conn, sim, JobState::Completed, Duration::from_secs(60)).await;

    let ts = tasks(&mut conn, sim).await;
    let requested: Vec<i64> = ts.iter().map(|t| t.requested_primaries).collect();
    assert_eq!(requested, vec![3334, 3333, 3333]);
    let logs = db::logs::list(&mut conn, sim).await.unwrap();
    let mut seeds = Vec::new();
    for t in &ts {
        assert_eq!(t.simulated_primaries, t.requested_primaries);
        let out = logs
            .iter()
            .find(|l| l.task_id == Some(t.id) && l.name == "stdout")
            .expect("stdout stored");
        let text = String::from_utf8_lossy(&out.content);
        assert!(text.contains("Running FLUKA for cycle # 1"), "{text}");
        let seed: u64 = text
            .lines()
            .find_map(|l| l.split_once("RANDOMIZ seed ").map(|(_, s)| s))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        seeds.push(seed);
    }
    let unique: std::collections::HashSet<_> = seeds.iter().collect();
    assert_eq!(unique.len(), 3, "each task gets its own seed");

    let pages = db::results::read_all(&mut conn, sim).await.unwrap();
    let dose = pages.iter().find(|p| p.estimator == "dose_z").unwrap();
    assert_eq!(dose.values.len(), 30);
    assert_eq!(dose.meta.value_unit, "GeV/g");
    let n: f64 = requested.iter().sum::<i64>() as f64;
    for (b, got) in dose.values.iter().enumerate() {
        let want = seeds
            .iter()
            .zip(&requested)
            .map(|(s, &ni)| ni as f64 * 1e-5 * (1 + b) as f64 * (1 + s % 97) as f64 / 97.0)
            .sum::<f64>()
            / n;
        assert!(
            ((got - want) / want).abs() <= 1e-12,
            "bin {b}: {got} vs {want}"
        );
    }
}

#[tokio::test]
async fn progress_is_read_from_the_runs_out_file() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = Worker::start(&db, true);
    // Five progress blocks, 0.6 s apart.
    let sim = submit(
        &mut conn,
        1,
        10_000,
        SimulationInput::Files(files("ok", 0.6)),
    )
    .await;
    let t0 = Instant::now();
    let mut seen = Vec::new();
    loop {
        let t = &tasks(&mut conn, sim).await[0];
        if t.task_state == TaskState::Running && t.simulated_primaries > 0 {
            seen.push((t.simulated_primaries, t.estimated_time_s));
        }
        if t.task_state == TaskState::Completed {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "never completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let partial: Vec<_> = seen.iter().filter(|(done, _)| *done < 10_000).collect();
    assert!(
        !partial.is_empty(),
        "no progress below the total was recorded: {seen:?}"
    );
    assert!(
        partial
            .iter()
            .all(|(done, eta)| done % 2000 == 0 && eta.is_some()),
        "{seen:?}"
    );
}

#[tokio::test]
async fn an_aborted_run_fails_with_the_reason_from_its_err_file() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = Worker::start(&db, true);
    let (sim, err) = failure_of(&mut conn, SimulationInput::Files(files("abort", 0.01))).await;
    assert!(
        err.contains("FLUKA did not finish its run")
            && err.contains("fl_sim001.out")
            && err.contains("particle lost in region 3"),
        "{err}"
    );
    let logs = db::logs::list(&mut conn, sim).await.unwrap();
    let stdout = logs
        .iter()
        .find(|l| l.name == "stdout")
        .expect("stdout stored");
    assert!(String::from_utf8_lossy(&stdout.content).contains("Running fluka in"));
}

#[tokio::test]
async fn a_failing_rfluka_fails_the_task_and_keeps_its_logs() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = Worker::start(&db, true);
    let sim = submit(
        &mut conn,
        1,
        100,
        SimulationInput::Files(files("exit", 0.01)),
    )
    .await;
    wait_state(&mut conn, sim, JobState::Failed, Duration::from_secs(30)).await;
    let err = tasks(&mut conn, sim).await[0].last_error.clone().unwrap();
    assert!(
        err.contains("exited with code 4") && err.contains("no FLUKA executable"),
        "{err}"
    );
    let logs = db::logs::list(&mut conn, sim).await.unwrap();
    let stderr = logs
        .iter()
        .find(|l| l.name == "stderr")
        .expect("stderr stored");
    assert!(String::from_utf8_lossy(&stderr.content).contains("cannot run fl_sim"));
}

#[tokio::test]
async fn canceling_kills_a_hanging_fluka() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let w = Worker::start(&db, true);
    let sim = submit(
        &mut conn,
        1,
        100,
        SimulationInput::Files(files("hang", 0.01)),
    )
    .await;
    let pid_file = w.work_root.join(format!("sim{sim}-task0-attempt1/pid"));
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
    db::api::cancel(&mut conn, sim).await.unwrap().unwrap();
    let t1 = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.contains(") Z ") {
            break;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(3),
            "rfluka still runs {:?} after cancel",
            t1.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        tasks(&mut conn, sim).await[0].task_state,
        TaskState::Canceled
    );
}

#[tokio::test]
async fn malformed_output_is_a_clear_failure() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = Worker::start(&db, true);
    let err = failure_of(&mut conn, SimulationInput::Files(files("malformed", 0.01)))
        .await
        .1;
    assert!(
        err.contains("malformed result file dose_z.json") && err.contains("29 values"),
        "{err}"
    );
}

#[tokio::test]
async fn inputs_the_worker_cannot_run_are_refused_clearly() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = Worker::start(&db, true);
    let mut free = files("ok", 0.01);
    free.insert("fl_sim.inp".into(), "FREE\nSTART, 100.\nSTOP\n".into());
    let err = failure_of(&mut conn, SimulationInput::Files(free)).await.1;
    assert!(err.contains("free-format FLUKA input"), "{err}");

    let mut none = files("ok", 0.01);
    none.remove("fl_sim.inp");
    let err = failure_of(&mut conn, SimulationInput::Files(none)).await.1;
    assert!(err.contains("no .inp file"), "{err}");

    let err = failure_of(&mut conn, SimulationInput::Editor("{}".into()))
        .await
        .1;
    assert!(err.contains("FLUKA needs input files"), "{err}");
}

#[tokio::test]
async fn a_worker_without_fluka_says_so() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = Worker::start(&db, false);
    let err = failure_of(&mut conn, SimulationInput::Files(files("ok", 0.01)))
        .await
        .1;
    assert!(err.contains("FLUKA is not configured"), "{err}");
}
