#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

fn settings() -> Settings {
    Settings::new(std::env::temp_dir().join("sim-worker-unit"))
}

#[test]
fn a_worker_runs_the_builtin_engine_and_the_programs_it_has() {
    let mut s = settings();
    assert_eq!(s.runnable(), vec![SimType::Builtin]);
    s.shieldhit = Some("/opt/shieldhit".into());
    assert_eq!(s.runnable(), vec![SimType::Builtin, SimType::Shieldhit]);
    s.fluka = Some("/opt/rfluka".into());
    s.topas = Some("/opt/topas".into());
    assert_eq!(
        s.runnable(),
        vec![
            SimType::Builtin,
            SimType::Shieldhit,
            SimType::Fluka,
            SimType::Topas
        ]
    );
    // SHIELD-HIT12A's and FLUKA's results need convertmc; TOPAS's do not.
    s.convertmc = None;
    assert_eq!(s.runnable(), vec![SimType::Builtin, SimType::Topas]);
}

/// Should a worker run a task of a simulator it lacks (its configuration changed between
/// the claim and the run), the task fails at once, saying so.
#[tokio::test]
async fn a_task_of_an_unconfigured_simulator_still_fails_saying_so() {
    let task = ClaimedTask {
        id: 1,
        simulation_id: 1,
        task_index: 0,
        attempt: 1,
        max_attempts: 3,
        requested_primaries: 10,
        sim_type: SimType::Shieldhit,
        input_type: db::enums::InputType::Files,
        lease_expires_at: chrono::Utc::now(),
        started_simulation: false,
    };
    let input = SimulationInput::Files(
        [("beam.dat".to_string(), String::new())]
            .into_iter()
            .collect(),
    );
    let dir = tempfile::tempdir().unwrap();
    let (_stop_tx, stop) = tokio::sync::watch::channel(Stop::No);
    let ctx = TaskContext::offline(dir.path().join("progress"), stop);
    let (result, _) = run_input(&settings(), &task, &input, ctx).await;
    let err = result.err().unwrap().to_string();
    assert!(
        err.contains("SHIELD-HIT12A is not configured on this worker (set --shieldhit PATH)"),
        "{err}"
    );
}
