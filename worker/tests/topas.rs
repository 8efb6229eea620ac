//! TOPAS tasks through the real worker on real output: the stand-in (tests/standins/topas)
//! replays the captured TOPAS 3.9 run of `../shared/data/pymchelper/captured/topas/`, and the
//! worker reads the real scorer files. A three-task merge against the files' own `Mean`
//! columns, the parameter rules of issue 9 item 7 end to end, a crash, a hang that
//! cancellation kills, a truncated scorer file, and inputs the worker refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::aggregation::Aggregation;
use db::enums::{JobState, SimType};
use db::inputs::SimulationInput;
use std::collections::BTreeMap;
use support::{shared_data, SimTest};

/// The parameter file of the captured run (20 histories of 60 MeV protons, two fluence
/// scorers of 4 × 4 × 1 bins).
fn captured_input() -> String {
    std::fs::read_to_string(shared_data("captured/topas/input/minimal.txt")).unwrap()
}

fn files(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    f.insert("minimal.txt".to_string(), captured_input());
    for (name, text) in extra {
        f.insert(name.to_string(), text.to_string());
    }
    f
}

fn mode(m: &str) -> BTreeMap<String, String> {
    files(&[("standin.json", &format!("{{\"mode\": \"{m}\"}}"))])
}

/// The `Mean` column of a captured scorer file, read here independently of the worker's
/// reader: the fourth field of every data row (three bin indices, then Mean).
fn captured_mean(file: &str) -> Vec<f64> {
    let text =
        std::fs::read_to_string(shared_data(&format!("captured/topas/output/{file}"))).unwrap();
    assert!(text.contains(": Mean   Standard_Deviation"));
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(',').nth(3).unwrap().trim().parse().unwrap())
        .collect()
}

async fn start(with_program: bool) -> SimTest {
    SimTest::start(SimType::Topas, ("--topas", "topas"), with_program).await
}

/// The seed the worker logged for each task ("TOPAS task: …, Ts/Seed S").
async fn seeds(conn: &mut db::Conn, sim: i64, ts: &[db::models::Task]) -> Vec<u64> {
    let mut out = Vec::new();
    for t in ts {
        let text = support::log_text(conn, sim, Some(t.id), "stdout").await;
        let line = text
            .lines()
            .find(|l| l.starts_with("TOPAS task: "))
            .unwrap();
        out.push(line.rsplit_once("Ts/Seed ").unwrap().1.parse().unwrap());
    }
    out
}

#[tokio::test]
async fn the_captured_run_in_three_tasks_merges_to_the_history_weighted_mean() {
    let mut h = start(true).await;
    let sim = h
        .submit(3, 10_000, SimulationInput::Files(files(&[])))
        .await;
    h.wait(sim, JobState::Completed, 60).await;

    let ts = h.tasks(sim).await;
    let requested: Vec<i64> = ts.iter().map(|t| t.requested_primaries).collect();
    assert_eq!(requested, vec![3334, 3333, 3333]);
    for t in &ts {
        // The primaries shown are the histories TOPAS reported for the count it was given.
        assert_eq!(t.simulated_primaries, t.requested_primaries);
        let log = h.log(sim, Some(t.id), "stdout").await;
        let line = format!(
            "Particle source Demo: Total number of histories: {}",
            t.requested_primaries
        );
        assert!(log.contains(&line), "{line}");
    }
    let s = seeds(&mut h.conn, sim, &ts).await;
    let unique: std::collections::HashSet<_> = s.iter().collect();
    assert_eq!(unique.len(), 3, "each task gets its own seed: {s:?}");

    let pages = db::results::read_all(&mut h.conn, sim).await.unwrap();
    let names: Vec<&str> = pages.iter().map(|p| p.estimator.as_str()).collect();
    assert_eq!(names, ["FluenceBPprotonsXY", "FluenceBPprotonsXY2"]);
    let n: f64 = requested.iter().sum::<i64>() as f64;
    for (page, file) in pages
        .iter()
        .zip(["fluence_bp_protons_xy.csv", "fluence_bp_protons_xy2.csv"])
    {
        assert_eq!(page.aggregation, Aggregation::Mean);
        assert!(!page.partial);
        // Identical tasks: a standard error, and it is 0 up to rounding (the square root of
        // the rounding of ΣN·x² − (ΣN·x)²/ΣN, hence 1e-6).
        let errors = page.errors.as_ref().unwrap();
        for (e, v) in errors.iter().zip(&page.values) {
            assert!(e.abs() <= 1e-6 * v.abs(), "error {e} of {v}");
        }
        assert_eq!(page.meta.name, page.estimator);
        assert_eq!(
            (page.meta.value_name.as_str(), page.meta.value_unit.as_str()),
            ("Fluence", "/mm2")
        );
        // Every task replayed the same real file, weighted by the histories it reported.
        let mean = captured_mean(file);
        assert_eq!(page.values.len(), mean.len());
        for (b, (got, x)) in page.values.iter().zip(&mean).enumerate() {
            let want = requested.iter().map(|&ni| ni as f64 * x).sum::<f64>() / n;
            assert!(
                (got - want).abs() <= 1e-12 * want.abs(),
                "{file} bin {b}: {got} vs {want}"
            );
        }
        // 4 × 4 × 1 bins: two axes (Z has one bin), bin centres in cm.
        assert_eq!(page.meta.dimension, 2);
        let centres = [0.375, 1.125, 1.875, 2.625];
        assert_eq!(
            page.meta.axes,
            serde_json::json!([
                {"name": "X", "unit": "cm", "values": centres},
                {"name": "Y", "unit": "cm", "values": centres}
            ])
        );
    }
}

/// Item 7 end to end: a main file that includes the captured one, overrides its history
/// count in lower case without a type, renames a scorer's output, and adds a source with 0
/// histories, which stays off (it would double the histories TOPAS reports if set).
#[tokio::test]
async fn an_including_file_overrides_what_it_includes() {
    let mut h = start(true).await;
    let main = "includeFile = minimal.txt\n\
                so/demo/numberofhistoriesinrun = 5\n\
                s:sc/fluencebpprotonsxy2/outputfile = \"second\"\n\
                s:So/Off/Type = \"Beam\"\n\
                s:So/Off/Component = \"BeamPosition\"\n\
                i:So/Off/NumberOfHistoriesInRun = 0\n";
    let input = files(&[("topas_config.txt", main)]);
    let sim = h.submit(2, 3000, SimulationInput::Files(input)).await;
    h.wait(sim, JobState::Completed, 60).await;
    let ts = h.tasks(sim).await;
    for t in &ts {
        assert_eq!(t.simulated_primaries, 1500);
        let log = h.log(sim, Some(t.id), "stdout").await;
        assert!(log.contains("TOPAS task: topas_config.txt, so/demo/numberofhistoriesinrun = 1500"));
        assert!(log.contains("Particle source Off: Total number of histories: 0"));
        assert!(log.contains("Results have been written to file: second.csv"));
    }
    let pages = db::results::read_all(&mut h.conn, sim).await.unwrap();
    let names: Vec<&str> = pages.iter().map(|p| p.estimator.as_str()).collect();
    assert_eq!(names, ["FluenceBPprotonsXY", "FluenceBPprotonsXY2"]);
    let want = captured_mean("fluence_bp_protons_xy2.csv");
    for (got, want) in pages[1].values.iter().zip(&want) {
        assert!((got - want).abs() <= 1e-12 * want.abs(), "{got} vs {want}");
    }
}

#[tokio::test]
async fn a_crash_fails_the_task_and_keeps_its_logs() {
    let mut h = start(true).await;
    let input = SimulationInput::Files(mode("crash"));
    let error = ["TOPAS exited with code 1", "G4Exception-END"];
    let logged = ("stderr", "Track stuck or not moving");
    h.fails_keeping_log(input, &error, logged).await;
}

#[tokio::test]
async fn a_truncated_scorer_file_is_a_clear_failure() {
    let mut h = start(true).await;
    let err = h.failure(SimulationInput::Files(mode("truncated"))).await.1;
    assert!(
        err.starts_with(
            "scorer FluenceBPprotonsXY: malformed scorer file fluence_bp_protons_xy.csv: "
        ),
        "{err}"
    );
}

#[tokio::test]
async fn inputs_the_worker_cannot_run_are_refused_clearly() {
    let two = files(&[(
        "topas_config.txt",
        "includeFile = minimal.txt\ni:So/Second/NumberOfHistoriesInRun = 10\n",
    )]);
    let mut no_scorer = BTreeMap::new();
    no_scorer.insert(
        "topas_config.txt".to_string(),
        "i:So/Demo/NumberOfHistoriesInRun = 10\n".to_string(),
    );
    let mut none = files(&[]);
    none.remove("minimal.txt");
    let editor = SimulationInput::Editor("{}".into());
    start(true)
        .await
        .fails_with_each([
            (SimulationInput::Files(two), "2 sources with histories"),
            (SimulationInput::Files(no_scorer), "defines no scorer"),
            (SimulationInput::Files(none), "no parameter file"),
            (editor, "TOPAS needs parameter files"),
        ])
        .await;
}

external_simulator_tests! { start: start, hang: mode("hang"), ok: files(&[]) }
