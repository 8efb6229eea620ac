//! SHIELD-HIT12A tasks through the real worker, with stand-in executables that speak the real
//! programs' protocol (tests/standins): success and merge, a crash, a hang that cancellation
//! kills, malformed output, a worker without the program, and hostile input file names.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::enums::{JobState, SimType, TaskState};
use db::inputs::SimulationInput;
use db::testing::TestDb;
use std::collections::BTreeMap;
use std::time::Duration;
use support::{failure_of, tasks, wait_state, Worker};

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

fn start(db: &TestDb, with_program: bool) -> Worker {
    Worker::start(
        db,
        &[("--shieldhit", "shieldhit")][..usize::from(with_program)],
    )
}

async fn submit(
    conn: &mut db::Conn,
    ntasks: i32,
    primaries: i64,
    input: &BTreeMap<String, String>,
) -> i64 {
    let input = SimulationInput::Files(input.clone());
    support::submit(conn, SimType::Shieldhit, ntasks, primaries, &input).await
}

async fn failure(input: &BTreeMap<String, String>, conn: &mut db::Conn) -> (i64, String) {
    failure_of(
        conn,
        SimType::Shieldhit,
        &SimulationInput::Files(input.clone()),
    )
    .await
}

#[tokio::test]
async fn a_four_task_run_merges_to_the_primaries_weighted_mean() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = start(&db, true);
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
    let mut seeds = Vec::new();
    for t in &ts {
        let text = support::log_text(&mut conn, sim, Some(t.id), "stdout").await;
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
    assert_eq!(dose.meta.value_unit, "MeV/g");
    support::assert_weighted_merge(&pages, "z_profile_", 40, 1e-3, &seeds, &requested);
    assert!(dose.errors.is_some(), "four tasks give a standard error");
    assert_eq!(dose.meta.estimator_metadata["geo_name"], "CylZ_Mesh");
}

#[tokio::test]
async fn a_crash_fails_the_task_and_keeps_its_logs() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = start(&db, true);
    let (sim, err) = failure(&files("crash", 0.01), &mut conn).await;
    assert!(
        err.contains("exited with code 3") && err.contains("particle lost in geometry"),
        "{err}"
    );
    let stderr = support::log_text(&mut conn, sim, None, "stderr").await;
    assert!(stderr.contains("Fatal error in module BEAM"));
    support::log_text(&mut conn, sim, None, "stdout").await;
}

#[tokio::test]
async fn canceling_kills_a_hanging_simulator() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let w = start(&db, true);
    let input = SimulationInput::Files(files("hang", 0.01));
    support::cancel_kills_a_hanging_program(&mut conn, &w, SimType::Shieldhit, &input).await;
}

#[tokio::test]
async fn malformed_output_is_a_clear_failure() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = start(&db, true);
    let (_, err) = failure(&files("malformed", 0.01), &mut conn).await;
    assert!(
        err.contains("malformed result file z_profile_.json") && err.contains("39 values"),
        "{err}"
    );
}

#[tokio::test]
async fn a_worker_without_shieldhit_says_so() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = start(&db, false);
    let (_, err) = failure(&files("ok", 0.01), &mut conn).await;
    assert!(err.contains("SHIELD-HIT12A is not configured"), "{err}");
}

#[tokio::test]
async fn hostile_input_file_names_are_refused_in_the_work_directory() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let w = start(&db, true);
    let mut input = files("ok", 0.01);
    input.insert("../escaped.dat".into(), "x".into());
    let (_, err) = failure(&input, &mut conn).await;
    assert!(err.contains("not a plain file name"), "{err}");
    assert!(!w.work_root.join("escaped.dat").exists());
}
