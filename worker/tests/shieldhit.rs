//! SHIELD-HIT12A tasks through the real worker and the real pymchelper `convertmc`, with a
//! stand-in `shieldhit` that replays real output (`../shared/data/pymchelper`): the captured
//! run, pymchelper's merge of the 7 seed-offset files of every aggregation kind, every page
//! shape, and the failures (a crash, a hang, truncated output, no outputs, no program,
//! hostile names).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::aggregation::Aggregation;
use db::enums::{JobState, SimType, TaskState};
use db::inputs::SimulationInput;
use std::collections::BTreeMap;
use support::reference::{convertmc_pages, RefPage};
use support::{shared_data, SimTest};

/// The captured SHIELD-HIT12A v1.0.0 run: a 2-D mesh of dose and one of fluence.
fn captured(mode: &str) -> BTreeMap<String, String> {
    support::captured_shieldhit(serde_json::json!({"mode": mode}))
}

async fn start(with_program: bool) -> SimTest {
    SimTest::start(
        SimType::Shieldhit,
        ("--shieldhit", "shieldhit"),
        with_program,
    )
    .await
}

fn files(input: BTreeMap<String, String>) -> SimulationInput {
    SimulationInput::Files(input)
}

/// Compares merged pages with pymchelper's own merge of the same files: `tol` relative for
/// means and sums (0 means bit for bit), exact for copies and concatenations.
fn assert_same_pages(got: &[db::results::ResultPage], want: &[RefPage], tol: f64) {
    assert_eq!(
        got.iter()
            .map(|p| (p.estimator.as_str(), p.page_number))
            .collect::<Vec<_>>(),
        want.iter()
            .map(|p| (p.estimator.as_str(), p.page_number))
            .collect::<Vec<_>>()
    );
    for (g, w) in got.iter().zip(want) {
        let what = format!("{} page {}", g.estimator, g.page_number);
        assert_eq!(g.aggregation, w.aggregation, "{what}");
        assert_eq!(g.meta.dimension, w.dimension, "{what}");
        assert_eq!(g.values.len(), w.values.len(), "{what}");
        assert_eq!(g.meta.axes, w.axes, "{what}: axes");
        for (i, (a, b)) in g.values.iter().zip(&w.values).enumerate() {
            let exact = matches!(w.aggregation, Aggregation::Copy | Aggregation::Concat);
            let ok = if exact || tol == 0.0 {
                a.to_bits() == b.to_bits()
            } else {
                a == b || ((a - b) / b).abs() <= tol
            };
            assert!(ok, "{what} value {i}: {a:e} vs pymchelper {b:e}");
        }
        for key in ["user", "host"] {
            assert!(
                g.meta.estimator_metadata.get(key).is_none(),
                "{what}: {key}"
            );
        }
    }
}

#[tokio::test]
async fn the_captured_run_completes_through_the_real_converter() {
    let mut h = start(true).await;
    let sim = h.submit(2, 40, files(captured("ok"))).await;
    h.wait(sim, JobState::Completed, 90).await;

    let ts = h.tasks(sim).await;
    for t in &ts {
        assert_eq!(t.task_state, TaskState::Completed);
        // The weight is what the .bdo says was simulated: the captured run's 20.
        assert_eq!((t.requested_primaries, t.simulated_primaries), (20, 20));
        let out = h.log(sim, Some(t.id), "stdout").await;
        let offset = t.task_index + 1;
        assert!(
            out.contains(&format!(
                "Random number seed offset                : {offset}"
            )),
            "{out}"
        );
        assert!(out.contains(&format!("mesh_{offset:04}.bdo")), "{out}");
    }
    let rnd = |out: &str| {
        out.lines()
            .find(|l| l.contains("Random number seed RNDSEED"))
            .map(str::to_string)
    };
    let first = h.log(sim, Some(ts[0].id), "stdout").await;
    assert_ne!(
        rnd(&first),
        Some("  Random number seed RNDSEED               : 89736501".into()),
        "each simulation gets its own RNDSEED"
    );

    let got = db::results::read_all(&mut h.conn, sim).await.unwrap();
    let out = shared_data("captured/shieldhit/output");
    let want = convertmc_pages(&[
        (out.join("fluence.bdo"), "fluence_0001.bdo".to_string()),
        (out.join("fluence.bdo"), "fluence_0002.bdo".to_string()),
        (out.join("mesh.bdo"), "mesh_0001.bdo".to_string()),
        (out.join("mesh.bdo"), "mesh_0002.bdo".to_string()),
    ]);
    assert_same_pages(&got, &want, 1e-12);
    assert!(got.iter().all(|p| !p.partial && p.meta.dimension == 2));
}

/// The 7 real seed-offset runs of `shieldhit/averaging`, one task each, merge to exactly what
/// `convertmc json --many` gives for the same files: copy (material, density), sum (count),
/// primaries-weighted mean (LET, dose, fluence) and concatenation (MCPL).
#[tokio::test]
async fn every_aggregation_kind_merges_like_pymchelper() {
    const OFFSETS: [u32; 7] = [1, 2, 3, 11, 12, 13, 14];
    let mut h = start(true).await;
    let dir = shared_data("shieldhit/averaging");
    let input =
        support::shieldhit_files(&dir, serde_json::json!({"replay": dir, "offsets": OFFSETS}));
    let sim = h.submit(7, 7000, files(input)).await;
    h.wait(sim, JobState::Completed, 120).await;

    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".bdo") {
            // The task with offset k replayed the file of offset OFFSETS[k - 1].
            let (core, src) = stem.rsplit_once('_').unwrap();
            let src: u32 = src.parse().unwrap();
            let k = OFFSETS.iter().position(|&o| o == src).unwrap() + 1;
            files.push((entry.path(), format!("{core}_{k:04}.bdo")));
        }
    }
    let want = convertmc_pages(&files);
    let got = db::results::read_all(&mut h.conn, sim).await.unwrap();
    assert_same_pages(&got, &want, 1e-12);
    let kinds: std::collections::HashSet<_> = got.iter().map(|p| p.aggregation).collect();
    assert_eq!(kinds.len(), 4, "copy, sum, mean and concat: {kinds:?}");

    // Each task is weighted by what its run really simulated (its files say fewer than the
    // 1000 requested: the runs stopped early), and shows that count.
    // The last four files say 10: those runs stopped after 10 of their 1000.
    let ts = h.tasks(sim).await;
    let simulated: Vec<i64> = ts.iter().map(|t| t.simulated_primaries).collect();
    assert_eq!(simulated, [1000, 1000, 1000, 10, 10, 10, 10]);
    assert!(ts.iter().all(|t| t.requested_primaries == 1000));
    assert_eq!(
        simulated.iter().sum::<i64>(),
        want[0].primaries,
        "pymchelper's number_of_primaries of the merge"
    );
    let count = got.iter().find(|p| p.meta.name == "COUNT").unwrap();
    assert!(
        count.values[0] > 6059.0,
        "counts add up: {:?}",
        count.values
    );
}

#[tokio::test]
async fn a_crash_fails_the_task_and_keeps_its_logs() {
    let mut h = start(true).await;
    let error = ["exited with code 3", "particle lost in geometry"];
    let input = files(captured("crash"));
    let sim = h
        .fails_keeping_log(input, &error, ("stderr", "particle lost"))
        .await;
    let stdout = h.log(sim, None, "stdout").await;
    assert!(stdout.contains("SHIELD-HIT12A"));
}

#[tokio::test]
async fn truncated_output_is_a_clear_failure() {
    let mut h = start(true).await;
    let (_, err) = h.failure(files(captured("truncate"))).await;
    assert!(
        err.contains("could not convert") || err.contains("could not read the output of"),
        "{err}"
    );
    assert!(err.contains("No pages in the output file"), "{err}");
    assert!(!err.contains("Traceback"), "{err}");
}

#[tokio::test]
async fn a_run_that_saves_nothing_names_the_cause() {
    let mut h = start(true).await;
    let (_, err) = h.failure(files(captured("empty"))).await;
    assert!(err.contains("wrote no .bdo result files"), "{err}");
}

external_simulator_tests! { start: start, hang: captured("hang"), ok: captured("ok") }

#[tokio::test]
async fn hostile_input_file_names_are_refused_in_the_work_directory() {
    let mut h = start(true).await;
    let mut input = captured("ok");
    input.insert("../escaped.dat".into(), "x".into());
    let (_, err) = h.failure(files(input)).await;
    assert!(
        err.contains("input file name \"../escaped.dat\" contains a path separator"),
        "{err}"
    );
    assert!(!h.worker.work_root.join("escaped.dat").exists());
}

/// Cancel keeps what was computed: 8 tasks on a worker of 2 slots, each replaying one of the
/// real seed-offset files of `shieldhit/averaging`, canceled once at least 3 have completed.
/// The simulation ends CANCELED with exactly pymchelper's merge of the completed tasks' files
/// (every aggregation kind), marked partial; the 2 running are stopped, and none of the
/// pending ones ever starts.
#[tokio::test]
async fn cancel_after_k_of_8_tasks_on_2_slots_keeps_exactly_their_merge() {
    const OFFSETS: [u32; 8] = [1, 2, 3, 11, 12, 13, 14, 1];
    let db = db::testing::TestDb::new().await;
    let mut conn = db.conn().await;
    let work = tempfile::tempdir().unwrap();
    let _worker = tests::spawn_worker(
        support::worker_command(db.config().url_with_password())
            .args(["--concurrency", "2", "--poll", "0.5", "--shieldhit"])
            .arg(support::standin("shieldhit"))
            .arg("--convertmc")
            .arg(tests::convertmc())
            .arg("--work-root")
            .arg(work.path()),
    );
    let dir = shared_data("shieldhit/averaging");
    // About 2 s per task: the captured run's 20 progress lines, 0.1 s apart.
    let standin = serde_json::json!({"replay": dir, "offsets": OFFSETS, "delay": 0.1});
    let input = files(support::shieldhit_files(&dir, standin));
    let sim = support::submit(&mut conn, SimType::Shieldhit, 8, 8000, &input).await;
    let completed = |ts: &[db::models::Task]| {
        ts.iter()
            .filter(|t| t.task_state == TaskState::Completed)
            .count()
    };
    let t0 = std::time::Instant::now();
    while completed(&support::tasks(&mut conn, sim).await) < 3 {
        assert!(t0.elapsed().as_secs() < 120, "3 tasks never completed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    db::simulation_views::cancel(&mut conn, sim)
        .await
        .unwrap()
        .unwrap();
    support::wait_state(
        &mut conn,
        sim,
        JobState::Canceled,
        std::time::Duration::from_secs(30),
    )
    .await;

    let ts = support::tasks(&mut conn, sim).await;
    let done: Vec<i32> = ts
        .iter()
        .filter(|t| t.task_state == TaskState::Completed)
        .map(|t| t.task_index)
        .collect();
    assert!(done.len() >= 3 && done.len() < 8, "{done:?}");
    // A slot holds one task: at most 2 ran besides those that completed; they were stopped,
    // and the rest never started.
    let started = ts.iter().filter(|t| t.attempts > 0).count();
    assert!(
        started <= done.len() + 2,
        "{started} started, {done:?} completed"
    );
    for t in ts.iter().filter(|t| t.task_state != TaskState::Completed) {
        assert_eq!(t.task_state, TaskState::Canceled, "task {}", t.task_index);
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let later = support::tasks(&mut conn, sim).await;
    let started_later = later.iter().filter(|t| t.attempts > 0).count();
    assert_eq!(
        started_later, started,
        "a pending task started after the cancel"
    );

    // The kept results are pymchelper's merge of exactly the completed tasks' files.
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".bdo") else {
            continue;
        };
        let (core, src) = stem.rsplit_once('_').unwrap();
        let src: u32 = src.parse().unwrap();
        // Task index i (seed offset i + 1) replayed the file of offset OFFSETS[i].
        for &i in &done {
            if OFFSETS[i as usize] == src {
                files.push((entry.path(), format!("{core}_{:04}.bdo", i + 1)));
            }
        }
    }
    let want = convertmc_pages(&files);
    let got = db::results::read_all(&mut conn, sim).await.unwrap();
    assert!(
        got.iter().all(|p| p.partial),
        "kept results are marked partial"
    );
    assert_same_pages(&got, &want, 1e-12);
    let merged = db::page_info::merged(&mut conn, sim).await.unwrap();
    assert_eq!(merged.tasks, done);
    assert_eq!(
        got.iter().map(|p| p.tasks_merged).max().flatten(),
        Some(done.len() as i32)
    );
}
