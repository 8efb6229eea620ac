//! The builtin engine end to end through the real worker: a 150 MeV run in 4 tasks with
//! unequal primaries merges to exactly the primaries-weighted mean of the task pages, which
//! this test recomputes with the same engine and seeds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    dead_code,
    unused_imports
)]

use db::enums::{AuthProvider, InputType, JobState, Platform, Role, SimType, TaskState};
use db::inputs::SimulationInput;
use db::testing::TestDb;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_four_task_builtin_run_merges_exactly() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let mut worker = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args([
            "--database-url",
            db.config().url_with_password(),
            "--concurrency",
            "2",
            "--poll-secs",
            "0.5",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(worker.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("ready"));

    let editor = serde_json::json!({
        "beam": {"energy_mev": 150.0, "sigma_cm": 0.3},
        "scoring": {"z_bins": 200, "r_bins": 10},
        "seed": 42
    });
    let user = db::users::create(
        &mut conn,
        &db::models::NewUser {
            username: "u",
            auth_provider: AuthProvider::Local,
            password_hash: None,
            role: Role::User,
        },
    )
    .await
    .unwrap();
    let (data, size) = SimulationInput::Editor(editor.clone()).encode().unwrap();
    let sim = db::simulations::create_with_tasks(
        &mut conn,
        &db::simulations::NewSimulation {
            user_id: user.id,
            title: "150 MeV".into(),
            platform: Platform::Direct,
            input_type: InputType::Editor,
            sim_type: SimType::Builtin,
            ntasks: 4,
            primaries: 1203,
            cluster_id: None,
            sbatch_options: vec![],
            max_attempts: 3,
        },
        Some((&data, size)),
    )
    .await
    .unwrap();
    let t = Instant::now();
    loop {
        let s = db::simulations::get(&mut conn, sim.id).await.unwrap();
        if s.job_state == JobState::Completed {
            break;
        }
        assert!(
            !s.job_state.is_terminal(),
            "simulation ended {}",
            s.job_state
        );
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "not done in 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = worker.kill();
    let _ = worker.wait();

    let tasks = db::tasks::list(
        &mut conn,
        &db::tasks::TaskFilter {
            simulation_id: Some(sim.id),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let primaries: Vec<u64> = tasks
        .iter()
        .map(|r| r.task.requested_primaries as u64)
        .collect();
    assert_eq!(primaries, vec![301, 301, 301, 300]);
    assert!(tasks
        .iter()
        .all(|r| r.task.task_state == TaskState::Completed
            && r.task.simulated_primaries == r.task.requested_primaries));

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
    let merged = db::results::read_all(&mut conn, sim.id).await.unwrap();
    assert_eq!(merged.len(), 3, "depth_dose, dose_rz, fluence");
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
