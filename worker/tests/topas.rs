//! TOPAS tasks through the real worker, with stand-ins (tests/standins/topas and convertmc):
//! success and a primaries-weighted merge, a crash, a hang that cancellation kills, malformed
//! output, and inputs the worker refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::enums::{JobState, SimType};
use db::inputs::SimulationInput;
use db::testing::TestDb;
use std::collections::BTreeMap;
use std::time::Duration;
use support::{tasks, wait_state, Worker};

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

fn start(db: &TestDb, with_program: bool) -> Worker {
    Worker::start(db, &[("--topas", "topas")][..usize::from(with_program)])
}

async fn submit(conn: &mut db::Conn, ntasks: i32, primaries: i64, input: SimulationInput) -> i64 {
    support::submit(conn, SimType::Topas, ntasks, primaries, &input).await
}

/// Submits a one-task simulation that must fail; returns its id and the task's error.
async fn failure_of(conn: &mut db::Conn, input: SimulationInput) -> (i64, String) {
    support::failure_of(conn, SimType::Topas, &input).await
}

#[tokio::test]
async fn a_three_task_run_merges_to_the_primaries_weighted_mean() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = start(&db, true);
    let sim = submit(&mut conn, 3, 10_000, SimulationInput::Files(files("ok"))).await;
    wait_state(&mut conn, sim, JobState::Completed, Duration::from_secs(60)).await;

    let ts = tasks(&mut conn, sim).await;
    let requested: Vec<i64> = ts.iter().map(|t| t.requested_primaries).collect();
    assert_eq!(requested, vec![3334, 3333, 3333]);
    let mut seeds = Vec::new();
    for t in &ts {
        assert_eq!(t.simulated_primaries, t.requested_primaries);
        let text = support::log_text(&mut conn, sim, Some(t.id), "stdout").await;
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
    support::assert_weighted_merge(&pages, "Dose", 20, 1e-9, &seeds, &requested);
}

#[tokio::test]
async fn a_crash_fails_the_task_and_keeps_its_logs() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = start(&db, true);
    let (sim, err) = failure_of(&mut conn, SimulationInput::Files(files("crash"))).await;
    assert!(
        err.contains("TOPAS exited with code 1") && err.contains("Geometry overlap"),
        "{err}"
    );
    let stderr = support::log_text(&mut conn, sim, None, "stderr").await;
    assert!(stderr.contains("G4Exception"));
}

#[tokio::test]
async fn canceling_kills_a_hanging_topas() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let w = start(&db, true);
    let input = SimulationInput::Files(files("hang"));
    support::cancel_kills_a_hanging_program(&mut conn, &w, SimType::Topas, &input).await;
}

#[tokio::test]
async fn malformed_output_is_a_clear_failure() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = start(&db, true);
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
    let _w = start(&db, true);
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
    let _w = start(&db, false);
    let err = failure_of(&mut conn, SimulationInput::Files(files("ok")))
        .await
        .1;
    assert!(err.contains("TOPAS is not configured"), "{err}");
}
