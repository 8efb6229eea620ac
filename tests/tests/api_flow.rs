//! The main job across the real binaries: `admin-cli` adds a user, `sim-api` and a `worker`
//! run as processes, and a gRPC client logs in, submits a 4-task builtin run with unequal
//! primaries, watches it to COMPLETED, and reads results that are exactly the stored merge.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use futures_util::StreamExt;
use proto::v1 as pb;
use std::time::Duration;
use tests::authed;

#[tokio::test]
async fn submit_watch_and_read_results_through_the_real_binaries() {
    let (db, _api, _addr, mut sims, token) = tests::alice_on_api().await;
    let url = db.config().url_with_password();
    let _worker = tests::start_worker(url, &["--concurrency", "2", "--poll", "0.5"]);
    let editor = serde_json::json!({
        "beam": {"energy_mev": 150.0},
        "scoring": {"z_bins": 100, "r_bins": 10},
        "seed": 7
    });
    let request = pb::SubmitRequest {
        title: "e2e".into(),
        sim_type: pb::SimType::Builtin as i32,
        input: Some(pb::submit_request::Input::EditorJson(editor.to_string())),
        ntasks: 4,
        primaries: 1203,
        platform: None,
    };
    let job_id = tests::submit(&mut sims, &token, request).await.unwrap();

    // Watch: progress never goes backwards, and the stream ends at COMPLETED.
    let mut stream = tests::watch(&mut sims, &job_id, &token).await.unwrap();
    let (mut last_state, mut last_simulated, mut updates) = (pb::JobState::Unspecified, 0, 0);
    let mut last_tasks = Vec::new();
    while let Some(s) = tokio::time::timeout(Duration::from_secs(120), stream.next())
        .await
        .expect("Watch went quiet for 2 minutes")
    {
        let s = s.unwrap();
        let sim = s.simulation.unwrap();
        assert!(sim.simulated_primaries >= last_simulated);
        last_simulated = sim.simulated_primaries;
        last_state = pb::JobState::try_from(sim.job_state).unwrap();
        last_tasks = s.tasks;
        updates += 1;
    }
    assert_eq!(last_state, pb::JobState::Completed);
    assert_eq!(last_simulated, 1203);
    assert!(updates >= 2, "only {updates} Watch messages");
    let requested: Vec<i64> = last_tasks.iter().map(|t| t.requested_primaries).collect();
    assert_eq!(requested, [301, 301, 301, 300]);

    // The results over the wire are bit-for-bit the stored merge.
    let mut stream = tests::get_results(&mut sims, &job_id, &token)
        .await
        .unwrap();
    let mut got: Vec<(String, Vec<f64>, Vec<f64>)> = Vec::new();
    while let Some(c) = stream.next().await {
        let c = c.unwrap();
        assert!(!c.partial);
        if c.page.is_some() {
            got.push((c.estimator.clone(), vec![], vec![]));
        }
        let last = got.last_mut().unwrap();
        last.1.extend(c.values);
        last.2.extend(c.errors);
    }
    let stored = {
        let mut c = db.conn().await;
        let view = db::simulation_views::get_visible(&mut c, job_id.parse().unwrap(), None)
            .await
            .unwrap();
        db::results::read_all(&mut c, view.simulation.id)
            .await
            .unwrap()
    };
    assert_eq!(
        got.len(),
        4,
        "depth_dose, dose_rz, fluence, secondary_fluence"
    );
    for (page, (name, values, errors)) in stored.iter().zip(&got) {
        assert_eq!(&page.estimator, name);
        assert_eq!(&page.values, values);
        assert_eq!(page.errors.as_ref(), Some(errors), "4 tasks give errors");
    }

    // Every task left its logs.
    let logs = sims
        .get_logs(authed(pb::GetLogsRequest { job_id }, &token))
        .await
        .unwrap()
        .into_inner()
        .logs;
    let mut tasks: Vec<i32> = logs.iter().filter_map(|l| l.task_index).collect();
    tasks.sort_unstable();
    tasks.dedup();
    assert_eq!(tasks, [0, 1, 2, 3]);
}
