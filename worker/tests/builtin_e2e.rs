//! The builtin engine end to end through the real worker: a 150 MeV run in 4 tasks with
//! unequal primaries merges to exactly the primaries-weighted mean of the task pages, which
//! this test recomputes with the same engine and seeds.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::enums::{JobState, SimType, TaskState};
use db::inputs::SimulationInput;
use db::testing::TestDb;
use std::time::Duration;

#[tokio::test]
async fn a_four_task_builtin_run_merges_exactly() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let worker = tests::spawn_worker(
        support::worker_command(db.config().url_with_password()).args([
            "--concurrency",
            "2",
            "--poll",
            "0.5",
        ]),
    );

    let editor = serde_json::json!({
        "beam": {"energy_mev": 150.0, "sigma_cm": 0.3},
        "scoring": {"z_bins": 200, "r_bins": 10},
        "seed": 42
    });
    let input = SimulationInput::Editor(editor.clone());
    let sim = support::submit(&mut conn, SimType::Builtin, 4, 1203, &input).await;
    let limit = Duration::from_secs(120);
    support::wait_state(&mut conn, sim, JobState::Completed, limit).await;
    drop(worker);

    let tasks = support::tasks(&mut conn, sim).await;
    let primaries: Vec<u64> = tasks.iter().map(|t| t.requested_primaries as u64).collect();
    assert_eq!(primaries, vec![301, 301, 301, 300]);
    assert!(tasks
        .iter()
        .all(|t| t.task_state == TaskState::Completed
            && t.simulated_primaries == t.requested_primaries));

    // Recompute every task's pages with the same engine and seeds.
    let input = engine::input::BuiltinInput::from_json(&editor.to_string()).unwrap();
    let runs: Vec<Vec<engine::Estimator>> = primaries
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            engine::run(&input, n, engine::task_seed(42, i as u32), &mut |_| {
                engine::Control::Continue
            })
            .unwrap()
        })
        .collect();
    let merged = db::results::read_all(&mut conn, sim).await.unwrap();
    assert_eq!(
        merged.len(),
        4,
        "depth_dose, dose_rz, fluence, secondary_fluence"
    );
    let total: f64 = primaries.iter().sum::<u64>() as f64;
    for page in &merged {
        assert!(!page.partial);
        let e = runs[0]
            .iter()
            .position(|e| e.name == page.estimator)
            .unwrap();
        assert_eq!(page.meta.value_unit, runs[0][e].pages[0].value_unit);
        for (b, got) in page.values.iter().enumerate() {
            let want: f64 = runs
                .iter()
                .zip(&primaries)
                .map(|(r, &n)| n as f64 * r[e].pages[0].values[b])
                .sum::<f64>()
                / total;
            let tol = 1e-12 * want.abs().max(f64::MIN_POSITIVE);
            assert!(
                (got - want).abs() <= tol,
                "{} bin {b}: {got} vs {want}",
                page.estimator
            );
        }
    }
    // The Bragg peak is where it should be: the depth-dose maximum lies near 15.8 cm.
    let dd = merged.iter().find(|p| p.estimator == "depth_dose").unwrap();
    let (imax, _) = dd
        .values
        .iter()
        .enumerate()
        .fold((0, f64::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m });
    let depth = (imax as f64 + 0.5) * 40.0 / 200.0;
    assert!((14.5..16.5).contains(&depth), "Bragg peak at {depth} cm");
}
