//! Batch runs end to end on a real single-node SLURM (`scripts/slurm-single-node start`):
//! `admin-cli add-cluster` registers it, `sim-api` takes a batch Submit, and `worker batch`
//! stages the job directory, submits one array job and a collect job, polls, and merges; each
//! element runs the real `worker element` on the node. Every scenario runs both ways: SLURM
//! on this host (`local`), and through a real sshd on loopback (`ssh`,
//! `scripts/sshd-loopback start`). scripts/test starts both when it runs as root.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::Duration;
use support::{Batch, Via};

/// The builtin input of every scenario: a seed fixes every element's stream, so that the
/// same input run directly gives the same tasks.
fn editor(seed: u64) -> serde_json::Value {
    serde_json::json!({
        "beam": {"energy_mev": 150.0},
        "scoring": {"z_bins": 60, "r_bins": 6},
        "seed": seed
    })
}

/// Four elements complete; the merge equals that of the same input run by a direct worker;
/// each task keeps its element's slurm.out; hostile sbatch options are refused at Submit.
async fn four_elements_merge_as_direct(via: Via) {
    let b = Batch::start(via, "four", &[]).await;
    let job = b.submit(editor(11), 4, 4000, &[]).await.unwrap();
    let direct = b.submit_direct(editor(11), 4, 4000).await;
    b.ends(&job, 240, "COMPLETED").await;
    b.ends(&direct, 240, "COMPLETED").await;
    b.assert_same_results(&job, &direct).await;
    let tasks = b.tasks(&job).await;
    assert_eq!(tasks.len(), 4);
    for t in &tasks {
        assert_eq!(
            (t.state.as_str(), t.attempts, t.simulated),
            ("COMPLETED", 1, 1000),
            "{t:?}"
        );
    }
    let logs = b.task_logs(&job).await;
    assert_eq!(logs.len(), 4, "one slurm.out per element: {logs:?}");
    assert!(
        logs.iter().all(|(_, text)| text.contains("builtin engine")),
        "{logs:?}"
    );
    let dir = b.job_dir(&job).await;
    assert!(b.eventually_collected(&dir).await);
    // Deleting the finished simulation removes its job directory from the cluster.
    b.delete(&job).await;
    b.wait_for(
        30,
        "the deleted simulation's job directory to go",
        || async { !b.exists(&dir).await },
    )
    .await;
    for bad in [
        "--wrap=reboot",
        "--output=/etc/passwd",
        "--comment=$(reboot)",
        "-A",
    ] {
        let e = b.submit(editor(1), 1, 10, &[bad]).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad}: {e:?}");
    }
}

/// One element exits 1: its task is FAILED with the element's words and its log; the
/// simulation completes from the other three.
async fn a_failing_element_fails_only_its_task(via: Via) {
    let b = Batch::start(via, "fail", &["2"]).await;
    let job = b.submit(editor(5), 4, 2000, &[]).await.unwrap();
    b.ends(&job, 240, "COMPLETED").await;
    let tasks = b.tasks(&job).await;
    let states: Vec<&str> = tasks.iter().map(|t| t.state.as_str()).collect();
    assert_eq!(states, ["COMPLETED", "COMPLETED", "FAILED", "COMPLETED"]);
    assert_eq!(tasks[2].task_index, 2);
    let error = tasks[2].last_error.clone().unwrap_or_default();
    assert!(
        error.contains("FAILED") || error.contains("exited with 1"),
        "{error}"
    );
    assert!(error.contains("node fault staged by the test"), "{error}");
    let logs = b.task_logs(&job).await;
    assert!(
        logs.iter()
            .any(|(i, text)| *i == 2 && text.contains("node fault staged by the test")),
        "{logs:?}"
    );
    assert_eq!(b.simulated(&job).await, 1500, "three elements of 500");
}

/// Cancel while the elements run: no job of the simulation is left in `squeue`, and the job
/// directory is gone.
async fn cancel_while_running(via: Via) {
    let b = Batch::start(via, "cancel", &[]).await;
    let job = b.submit(editor(3), 2, 400_000_000, &[]).await.unwrap();
    b.wait_running(&job, 120).await;
    // The elements' progress files reach the tasks.
    b.wait_for(60, "progress from the element's progress file", || async {
        b.tasks(&job)
            .await
            .iter()
            .any(|t| t.state == "RUNNING" && t.simulated > 0)
    })
    .await;
    let dir = b.job_dir(&job).await;
    assert!(b.exists(&dir).await);
    b.cancel(&job).await;
    b.ends(&job, 30, "CANCELED").await;
    b.wait_for(60, "no job left in squeue and no job directory", || async {
        b.squeue_jobs(&job).is_empty() && !b.exists(&dir).await
    })
    .await;
}

/// An element past its time limit (`--time=1`: one minute) is FAILED with TIMEOUT.
async fn an_element_past_its_time_limit_is_timeout(via: Via) {
    let b = Batch::start(via, "timeout", &[]).await;
    let job = b
        .submit(editor(4), 1, 400_000_000, &["--time=1"])
        .await
        .unwrap();
    b.ends(&job, 300, "FAILED").await;
    let error = b.tasks(&job).await[0]
        .last_error
        .clone()
        .unwrap_or_default();
    assert!(error.contains("TIMEOUT"), "{error}");
}

/// `kill -9` of the batch component mid-run, and another one started in its place: it takes
/// the simulation over when the lease expires, and the merge still equals the direct run's
/// (nothing lost, nothing counted twice).
async fn a_killed_component_is_taken_over(via: Via) {
    let mut b = Batch::start(via, "kill", &[]).await;
    let job = b.submit(editor(21), 4, 400_000, &[]).await.unwrap();
    let direct = b.submit_direct(editor(21), 4, 400_000).await;
    b.wait_running(&job, 120).await;
    b.kill_component();
    b.restart_component();
    b.ends(&job, 400, "COMPLETED").await;
    b.ends(&direct, 400, "COMPLETED").await;
    b.assert_same_results(&job, &direct).await;
    assert_eq!(b.simulated(&job).await, 400_000);
    b.wait_for(
        30,
        "the component to let go of the ended simulation",
        || async { b.owner(&job).await.is_none() },
    )
    .await;
    let second = b.component_log(2);
    assert!(
        second.contains("element completed"),
        "the second component merged nothing:\n{second}"
    );
}

/// Every connection of the services is terminated five times while the elements run (as a
/// PostgreSQL restart would): the same component reconnects and carries on, and the merge
/// still equals the direct run's (nothing lost, nothing counted twice).
#[tokio::test]
async fn database_outages_during_polls_lose_nothing() {
    let b = Batch::start(Via::Local, "dbdrop", &[]).await;
    let job = b.submit(editor(31), 4, 400_000, &[]).await.unwrap();
    let direct = b.submit_direct(editor(31), 4, 400_000).await;
    b.wait_running(&job, 120).await;
    for _ in 0..5 {
        assert!(b.terminate_backends().await >= 1, "no connection to end");
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    b.ends(&job, 400, "COMPLETED").await;
    b.ends(&direct, 400, "COMPLETED").await;
    b.assert_same_results(&job, &direct).await;
    assert_eq!(b.simulated(&job).await, 400_000);
    for t in b.tasks(&job).await {
        assert_eq!(t.state, "COMPLETED", "{t:?}");
    }
    let log = b.component_log(1);
    assert!(log.contains("element completed"), "{log}");
}

/// SHIELD-HIT12A elements (the stand-in that replays the captured run, and the real
/// pymchelper `convertmc` on the node) merge exactly as the same run by a direct worker:
/// the external simulators go through the same code in `worker element`.
#[tokio::test]
async fn shieldhit_elements_merge_as_direct() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let standin = root
        .join("worker/tests/standins/shieldhit")
        .display()
        .to_string();
    let convertmc = tests::convertmc().display().to_string();
    let env = [("SHIELDHIT_PATH", standin), ("CONVERTMC_PATH", convertmc)];
    let b = Batch::start_with(Via::Local, "shieldhit", &[], &env).await;
    let captured = sim_inputs::testdata::pymchelper_data("captured/shieldhit/input");
    let mut files: std::collections::HashMap<String, String> =
        ["beam.dat", "detect.dat", "geo.dat", "mat.dat"]
            .iter()
            .map(|f| {
                (
                    f.to_string(),
                    std::fs::read_to_string(captured.join(f)).unwrap(),
                )
            })
            .collect();
    files.insert(
        "standin.json".into(),
        serde_json::json!({"mode": "ok"}).to_string(),
    );
    let request = proto::v1::SubmitRequest {
        title: "shieldhit batch".into(),
        sim_type: proto::v1::SimType::Shieldhit as i32,
        input: Some(proto::v1::submit_request::Input::Files(
            proto::v1::InputFiles { files },
        )),
        ntasks: 2,
        primaries: 40,
        platform: None,
    };
    let job = b.submit_request(request.clone(), &[]).await.unwrap();
    let direct = b.submit_direct_request(request).await;
    b.ends(&job, 240, "COMPLETED").await;
    b.ends(&direct, 240, "COMPLETED").await;
    b.assert_same_results(&job, &direct).await;
    // The weight is what the .bdo says was simulated (the captured run's 20 per task).
    assert_eq!(b.simulated(&job).await, 40);
    let logs = b.task_logs(&job).await;
    assert!(
        logs.iter()
            .any(|(i, t)| *i == 1 && t.contains("mesh_0002.bdo")),
        "{logs:?}"
    );
}

/// Twenty polls of a running simulation over SSH hold one connection to the sshd.
#[tokio::test]
async fn twenty_polls_hold_one_ssh_connection() {
    let b = Batch::start(Via::Ssh, "polls", &[]).await;
    let job = b.submit(editor(8), 2, 400_000_000, &[]).await.unwrap();
    b.wait_running(&job, 120).await;
    let seen = b.ssh_connections_during(Duration::from_millis(250) * 20 + Duration::from_secs(1));
    assert_eq!(seen, [1], "connection counts seen during 20 polls");
    b.cancel(&job).await;
    b.ends(&job, 30, "CANCELED").await;
}

macro_rules! both_ways {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(#[tokio::test] async fn $name() { super::$name(super::Via::Local).await })*
        }
        mod ssh {
            $(#[tokio::test] async fn $name() { super::$name(super::Via::Ssh).await })*
        }
    };
}

both_ways!(
    four_elements_merge_as_direct,
    a_failing_element_fails_only_its_task,
    cancel_while_running,
    an_element_past_its_time_limit_is_timeout,
    a_killed_component_is_taken_over,
);
