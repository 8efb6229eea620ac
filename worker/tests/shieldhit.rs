//! SHIELD-HIT12A tasks through the real worker, with stand-in executables that speak the real
//! programs' protocol (tests/standins): success and merge, a crash, a hang that cancellation
//! kills, malformed output, a worker without the program, and hostile input file names.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use db::enums::{JobState, SimType, TaskState};
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
    fn start(db: &TestDb, with_shieldhit: bool) -> Self {
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
            "2",
        ])
        .arg("--convertmc")
        .arg(standin("convertmc"))
        .arg("--work-root")
        .arg(&work_root)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped());
        if with_shieldhit {
            cmd.arg("--shieldhit").arg(standin("shieldhit"));
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

fn files(mode: &str, delay: f64) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    f.insert(
        "beam.dat".into(),
        "RNDSEED 89736501\nJPART0 2\nTMAX0 150.0 1.5\nNSTAT 10000 0 ! NSTAT, Step of saving\n"
            .into(),
    );
    f.insert(
        "geo.dat".into(),
        "  RCC    1  0.0 0.0 0.0  0.0 0.0 20.0\n  5.0\n  END\n".into(),
    );
    f.insert("mat.dat".into(), "MEDIUM 1\nICRU 276\nEND\n".into());
    f.insert(
        "detect.dat".into(),
        "Geometry Cyl\n    Name CylZ_Mesh\n    R 0 5 1\n    Z 0 20 40\n".into(),
    );
    f.insert(
        "standin.json".into(),
        format!("{{\"mode\": \"{mode}\", \"delay\": {delay}}}"),
    );
    f
}

async fn submit(
    conn: &mut db::Conn,
    ntasks: i32,
    primaries: i64,
    input: &BTreeMap<String, String>,
) -> i64 {
    let owner = testing::user(conn, "physicist").await;
    let new = testing::new_simulation(owner, SimType::Shieldhit, ntasks, primaries);
    testing::submit(conn, new, Some(&SimulationInput::Files(input.clone()))).await
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

#[tokio::test]
async fn a_four_task_run_merges_to_the_primaries_weighted_mean() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = Worker::start(&db, true);
    let sim = submit(&mut conn, 4, 10_001, &files("ok", 0.01)).await;
    wait_state(&mut conn, sim, JobState::Completed, Duration::from_secs(60)).await;

    let ts = tasks(&mut conn, sim).await;
    let requested: Vec<i64> = ts.iter().map(|t| t.requested_primaries).collect();
    assert_eq!(
        requested,
        vec![2501, 2500, 2500, 2500],
        "the remainder is spread, not dropped"
    );
    assert!(ts
        .iter()
        .all(|t| t.task_state == TaskState::Completed
            && t.simulated_primaries == t.requested_primaries));

    // Each task's seed is in its stored stdout; the stand-in's values follow from it.
    let logs = db::logs::list(&mut conn, sim).await.unwrap();
    let mut seeds = Vec::new();
    for t in &ts {
        let out = logs
            .iter()
            .find(|l| l.task_id == Some(t.id) && l.name == "stdout")
            .expect("stdout stored");
        let text = String::from_utf8_lossy(&out.content);
        assert!(text.contains("Primary particle no."), "{text}");
        let seed: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("SHIELD-HIT12A stand-in, seed "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        seeds.push(seed);
    }
    let unique: std::collections::HashSet<_> = seeds.iter().collect();
    assert_eq!(unique.len(), 4, "each task gets its own seed");

    let pages = db::results::read_all(&mut conn, sim).await.unwrap();
    let dose = pages.iter().find(|p| p.estimator == "z_profile_").unwrap();
    assert!(!dose.partial);
    assert_eq!(dose.values.len(), 40);
    assert_eq!(dose.meta.value_unit, "MeV/g");
    let n: f64 = requested.iter().sum::<i64>() as f64;
    for (b, got) in dose.values.iter().enumerate() {
        let want = seeds
            .iter()
            .zip(&requested)
            .map(|(s, &ni)| ni as f64 * 1e-3 * (1 + b) as f64 * (1 + s % 97) as f64 / 97.0)
            .sum::<f64>()
            / n;
        assert!(
            ((got - want) / want).abs() <= 1e-12,
            "bin {b}: {got} vs {want}"
        );
    }
    assert!(dose.errors.is_some(), "four tasks give a standard error");
    assert_eq!(dose.meta.estimator_metadata["geo_name"], "CylZ_Mesh");
}

#[tokio::test]
async fn a_crash_fails_the_task_and_keeps_its_logs() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = Worker::start(&db, true);
    let sim = submit(&mut conn, 1, 100, &files("crash", 0.01)).await;
    wait_state(&mut conn, sim, JobState::Failed, Duration::from_secs(30)).await;
    let t = &tasks(&mut conn, sim).await[0];
    assert_eq!(t.task_state, TaskState::Failed);
    assert_eq!(t.attempts, 1, "a simulator crash is not retried");
    let err = t.last_error.clone().unwrap();
    assert!(
        err.contains("exited with code 3") && err.contains("particle lost in geometry"),
        "{err}"
    );
    let logs = db::logs::list(&mut conn, sim).await.unwrap();
    let stderr = logs
        .iter()
        .find(|l| l.name == "stderr")
        .expect("stderr stored");
    assert!(String::from_utf8_lossy(&stderr.content).contains("Fatal error in module BEAM"));
    assert!(logs.iter().any(|l| l.name == "stdout"));
}

#[tokio::test]
async fn canceling_kills_a_hanging_simulator() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let w = Worker::start(&db, true);
    let sim = submit(&mut conn, 1, 100, &files("hang", 0.01)).await;
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
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    db::api::cancel(&mut conn, sim).await.unwrap().unwrap();
    let t1 = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        // A zombie is dead too: check its state.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.contains(") Z ") {
            break;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(3),
            "the simulator still runs {:?} after cancel",
            t1.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("killed {:?} after cancel", t1.elapsed());
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
    let sim = submit(&mut conn, 1, 100, &files("malformed", 0.01)).await;
    wait_state(&mut conn, sim, JobState::Failed, Duration::from_secs(30)).await;
    let err = tasks(&mut conn, sim).await[0].last_error.clone().unwrap();
    assert!(
        err.contains("malformed result file z_profile_.json") && err.contains("39 values"),
        "{err}"
    );
}

#[tokio::test]
async fn a_worker_without_shieldhit_says_so() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = Worker::start(&db, false);
    let sim = submit(&mut conn, 1, 100, &files("ok", 0.01)).await;
    wait_state(&mut conn, sim, JobState::Failed, Duration::from_secs(30)).await;
    let err = tasks(&mut conn, sim).await[0].last_error.clone().unwrap();
    assert!(err.contains("SHIELD-HIT12A is not configured"), "{err}");
}

#[tokio::test]
async fn hostile_input_file_names_are_refused_in_the_work_directory() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let w = Worker::start(&db, true);
    let mut input = files("ok", 0.01);
    input.insert("../escaped.dat".into(), "x".into());
    let sim = submit(&mut conn, 1, 100, &input).await;
    wait_state(&mut conn, sim, JobState::Failed, Duration::from_secs(30)).await;
    let err = tasks(&mut conn, sim).await[0].last_error.clone().unwrap();
    assert!(err.contains("not a plain file name"), "{err}");
    assert!(!w.work_root.join("escaped.dat").exists());
}
