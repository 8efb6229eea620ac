//! TOPAS tasks through the real worker, with stand-ins (tests/standins/topas and convertmc):
//! success and a primaries-weighted merge, a crash, a hang that cancellation kills, malformed
//! output, and inputs the worker refuses.
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
    fn start(db: &TestDb, with_topas: bool) -> Self {
        let work_root = std::env::temp_dir().join(format!(
            "sim-worker-topas-{}-{}",
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
        if with_topas {
            cmd.arg("--topas").arg(standin("topas"));
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

/// A parameter file as yaptide's converter writes it (5000 histories for all tasks; the
/// worker sets each task's own).
const CONFIG: &str = "\
s:So/Demo/Type = \"Beam\"
s:So/Demo/Component = \"BeamPosition\"
s:So/Demo/BeamParticle = \"proton\"
d:So/Demo/BeamEnergy = 150 MeV
i:So/Demo/NumberOfHistoriesInRun = 5000
s:Sc/Dose/Quantity = \"DoseToMedium\"
s:Sc/Dose/Component = \"Phantom\"
s:Sc/Dose/OutputType = \"csv\"
";

fn files(mode: &str) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    f.insert("topas_config.txt".into(), CONFIG.into());
    f.insert("standin.json".into(), format!("{{\"mode\": \"{mode}\"}}"));
    f
}

async fn submit(conn: &mut db::Conn, ntasks: i32, primaries: i64, input: SimulationInput) -> i64 {
    let owner = testing::user(conn, "physicist").await;
    let mut new = testing::new_simulation(owner, SimType::Topas, ntasks, primaries);
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
    let sim = submit(&mut conn, 3, 10_000, SimulationInput::Files(files("ok"))).await;
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
        // The stand-in read the task's own history count and seed from the parameter file.
        let line = text
            .lines()
            .find(|l| l.starts_with("TOPAS stand-in, seed "))
            .unwrap();
        assert!(
            line.ends_with(&format!(", {} histories", t.requested_primaries)),
            "{line}"
        );
        let seed: u64 = line["TOPAS stand-in, seed ".len()..]
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(text.contains(&format!("Ts/Seed {seed}")), "{text}");
        seeds.push(seed);
    }
    let unique: std::collections::HashSet<_> = seeds.iter().collect();
    assert_eq!(unique.len(), 3, "each task gets its own seed");

    let pages = db::results::read_all(&mut conn, sim).await.unwrap();
    let dose = pages.iter().find(|p| p.estimator == "Dose").unwrap();
    assert_eq!(dose.values.len(), 20);
    assert_eq!(dose.meta.value_unit, "Gy");
    let n: f64 = requested.iter().sum::<i64>() as f64;
    for (b, got) in dose.values.iter().enumerate() {
        let want = seeds
            .iter()
            .zip(&requested)
            .map(|(s, &ni)| ni as f64 * 1e-9 * (1 + b) as f64 * (1 + s % 97) as f64 / 97.0)
            .sum::<f64>()
            / n;
        assert!(
            ((got - want) / want).abs() <= 1e-12,
            "bin {b}: {got} vs {want}"
        );
    }
}

#[tokio::test]
async fn a_crash_fails_the_task_and_keeps_its_logs() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = Worker::start(&db, true);
    let (sim, err) = failure_of(&mut conn, SimulationInput::Files(files("crash"))).await;
    assert!(
        err.contains("TOPAS exited with code 1") && err.contains("Geometry overlap"),
        "{err}"
    );
    let logs = db::logs::list(&mut conn, sim).await.unwrap();
    let stderr = logs
        .iter()
        .find(|l| l.name == "stderr")
        .expect("stderr stored");
    assert!(String::from_utf8_lossy(&stderr.content).contains("G4Exception"));
}

#[tokio::test]
async fn canceling_kills_a_hanging_topas() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let w = Worker::start(&db, true);
    let sim = submit(&mut conn, 1, 100, SimulationInput::Files(files("hang"))).await;
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
            "topas still runs {:?} after cancel",
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
    let err = failure_of(&mut conn, SimulationInput::Files(files("malformed")))
        .await
        .1;
    assert!(
        err.contains("malformed result file Dose.json") && err.contains("19 values"),
        "{err}"
    );
}

#[tokio::test]
async fn inputs_the_worker_cannot_run_are_refused_clearly() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = Worker::start(&db, true);
    let mut two = files("ok");
    two.insert(
        "topas_config.txt".into(),
        format!("{CONFIG}i:So/Second/NumberOfHistoriesInRun = 10\n"),
    );
    let err = failure_of(&mut conn, SimulationInput::Files(two)).await.1;
    assert!(err.contains("2 sources with histories"), "{err}");

    let mut none = files("ok");
    none.remove("topas_config.txt");
    let err = failure_of(&mut conn, SimulationInput::Files(none)).await.1;
    assert!(err.contains("no parameter file"), "{err}");

    let err = failure_of(&mut conn, SimulationInput::Editor("{}".into()))
        .await
        .1;
    assert!(err.contains("TOPAS needs parameter files"), "{err}");
}

#[tokio::test]
async fn a_worker_without_topas_says_so() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = Worker::start(&db, false);
    let err = failure_of(&mut conn, SimulationInput::Files(files("ok")))
        .await
        .1;
    assert!(err.contains("TOPAS is not configured"), "{err}");
}
