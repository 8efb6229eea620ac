//! FLUKA tasks through the real worker, with stand-ins that speak the programs' protocol
//! (tests/standins/rfluka and convertmc): success and a primaries-weighted merge, progress
//! read from the run's `.out` file, an aborted run, a failing rfluka, a hang that
//! cancellation kills, malformed output, and inputs the worker refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::enums::{JobState, SimType, TaskState};
use db::inputs::SimulationInput;
use db::testing::TestDb;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{tasks, wait_state, Worker};

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

fn start(db: &TestDb, with_program: bool) -> Worker {
    Worker::start(db, &[("--fluka", "rfluka")][..usize::from(with_program)])
}

async fn submit(conn: &mut db::Conn, ntasks: i32, primaries: i64, input: SimulationInput) -> i64 {
    support::submit(conn, SimType::Fluka, ntasks, primaries, &input).await
}

/// Submits a one-task simulation that must fail; returns its id and the task's error.
async fn failure_of(conn: &mut db::Conn, input: SimulationInput) -> (i64, String) {
    support::failure_of(conn, SimType::Fluka, &input).await
}

#[tokio::test]
async fn a_three_task_run_merges_to_the_primaries_weighted_mean() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = start(&db, true);
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
    let mut seeds = Vec::new();
    for t in &ts {
        assert_eq!(t.simulated_primaries, t.requested_primaries);
        let text = support::log_text(&mut conn, sim, Some(t.id), "stdout").await;
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
    support::assert_weighted_merge(&pages, "dose_z", 30, 1e-5, &seeds, &requested);
}

#[tokio::test]
async fn progress_is_read_from_the_runs_out_file() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = start(&db, true);
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
    let _w = start(&db, true);
    let (sim, err) = failure_of(&mut conn, SimulationInput::Files(files("abort", 0.01))).await;
    assert!(
        err.contains("FLUKA did not finish its run")
            && err.contains("fl_sim001.out")
            && err.contains("particle lost in region 3"),
        "{err}"
    );
    let stdout = support::log_text(&mut conn, sim, None, "stdout").await;
    assert!(stdout.contains("Running fluka in"));
}

#[tokio::test]
async fn a_failing_rfluka_fails_the_task_and_keeps_its_logs() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = start(&db, true);
    let (sim, err) = failure_of(&mut conn, SimulationInput::Files(files("exit", 0.01))).await;
    assert!(
        err.contains("exited with code 4") && err.contains("no FLUKA executable"),
        "{err}"
    );
    let stderr = support::log_text(&mut conn, sim, None, "stderr").await;
    assert!(stderr.contains("cannot run fl_sim"));
}

#[tokio::test]
async fn canceling_kills_a_hanging_fluka() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let w = start(&db, true);
    let input = SimulationInput::Files(files("hang", 0.01));
    support::cancel_kills_a_hanging_program(&mut conn, &w, SimType::Fluka, &input).await;
}

#[tokio::test]
async fn malformed_output_is_a_clear_failure() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let _w = start(&db, true);
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
    let _w = start(&db, true);
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
    let _w = start(&db, false);
    let err = failure_of(&mut conn, SimulationInput::Files(files("ok", 0.01)))
        .await
        .1;
    assert!(err.contains("FLUKA is not configured"), "{err}");
}
