//! Failed tasks: `list-tasks --state FAILED` shows the last error, and `retry-task` requeues
//! a failed task of an open simulation with a fresh attempt budget (db::queue::retry).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use db::enums::{AuthProvider, TaskState};
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(60);

/// Claims the next due task as `w1` and fails it for good with `error`; returns its
/// (simulation, index).
async fn claim_and_fail(db: &Db, error: &str) -> (i64, i32) {
    let mut conn = db.conn().await;
    let claimed = db::queue::claim(&mut conn, "w1", 1, LEASE, db::enums::SimType::ALL)
        .await
        .unwrap();
    let t = &claimed[0];
    let state = db::queue::fail(&mut conn, &t.lease("w1"), error, false)
        .await
        .unwrap();
    assert_eq!(state, TaskState::Failed);
    (t.simulation_id, t.task_index)
}

/// One user and one direct simulation of `ntasks` tasks; returns the database and its id.
async fn one_sim(ntasks: i32) -> (Db, i64) {
    let db = Db::new().await;
    let u = user(&db, "alice", AuthProvider::Local).await;
    let s = sim(&db, u, "retry me", ntasks).await.id;
    (db, s)
}

/// The state of simulation `sim`.
fn sim_state(db: &Db, sim: i64) -> Option<String> {
    scalar(
        db,
        &format!("select job_state from simulations where id = {sim}"),
    )
}

fn task_field(db: &Db, sim: i64, index: i32, column: &str) -> Option<String> {
    scalar(
        db,
        &format!(
            "select {column}::text from tasks where simulation_id = {sim} and task_index = {index}"
        ),
    )
}

#[tokio::test]
async fn list_tasks_state_failed_shows_the_last_error_escaped() {
    let (db, s) = one_sim(3).await;
    let (_, index) = claim_and_fail(&db, "simulator exited 139\n\u{1b}[2Jsegfault").await;
    let out = run(&db, &["list-tasks", "--state", "FAILED"]);
    let t = table_with_header(
        &out,
        "SIMULATION INDEX STATE USER PRIMARIES DONE ATTEMPTS STARTED ENDED LAST_ERROR",
    );
    assert_eq!(t.len(), 2, "{}", out.stdout);
    assert_eq!(t[1][0], s.to_string());
    assert_eq!(t[1][1], index.to_string());
    assert_eq!(t[1][2], "FAILED");
    assert!(
        out.stdout
            .contains("simulator exited 139\\n\\u{1b}[2Jsegfault"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains('\u{1b}'));
    // JSON keeps the error as it is.
    let v = list_json(&db, "list-tasks", &["--state", "failed"]);
    assert_eq!(v.len(), 1);
    assert_eq!(
        v[0]["last_error"],
        "simulator exited 139\n\u{1b}[2Jsegfault"
    );
}

#[tokio::test]
async fn retry_task_requeues_a_failed_task_with_a_fresh_budget() {
    let (db, s) = one_sim(3).await;
    let (_, index) = claim_and_fail(&db, "boom").await;
    // The other tasks are pending: the simulation is still running.
    assert_eq!(sim_state(&db, s).as_deref(), Some("RUNNING"));
    let out = stdout_of(&db, &["retry-task", &s.to_string(), &index.to_string()]);
    assert!(
        out.starts_with(&format!("requeued task {index} of simulation {s} (")),
        "{out}"
    );
    assert!(out.contains("0 of 3 attempts used"), "{out}");
    assert_eq!(
        task_field(&db, s, index, "task_state").as_deref(),
        Some("PENDING")
    );
    assert_eq!(task_field(&db, s, index, "attempts").as_deref(), Some("0"));
    assert_eq!(task_field(&db, s, index, "end_time"), None);
    assert_eq!(task_field(&db, s, index, "lease_owner"), None);
    assert!(list_json(&db, "list-tasks", &["--state", "FAILED"]).is_empty());
    // A worker claims it again at once, as its first attempt.
    let mut conn = db.conn().await;
    let again = db::queue::claim(&mut conn, "w2", 10, LEASE, db::enums::SimType::ALL)
        .await
        .unwrap();
    let t = again.iter().find(|t| t.task_index == index).unwrap();
    assert_eq!(t.attempt, 1);
}

#[tokio::test]
async fn retry_task_by_job_id_in_json() {
    let (db, s) = one_sim(2).await;
    let (_, index) = claim_and_fail(&db, "boom").await;
    let job_id = scalar(
        &db,
        &format!("select job_id::text from simulations where id = {s}"),
    )
    .unwrap();
    let out = run(&db, &["--json", "retry-task", &job_id, &index.to_string()]);
    out.ok();
    let v = out.json();
    assert_eq!(v["simulation_id"], s);
    assert_eq!(v["task_index"], index);
    assert_eq!(v["task_state"], "PENDING");
    assert_eq!(v["attempts"], 0);
}

#[tokio::test]
async fn retry_task_refuses_a_task_that_has_not_failed() {
    let (db, s) = one_sim(2).await;
    fails_cleanly(
        &db,
        &["retry-task", &s.to_string(), "1"],
        &format!("task 1 of simulation {s} is PENDING, not FAILED"),
    );
    assert_eq!(
        task_field(&db, s, 1, "task_state").as_deref(),
        Some("PENDING")
    );
}

#[tokio::test]
async fn retry_task_refuses_a_simulation_that_has_ended() {
    // One task: failing it for good ends the simulation FAILED.
    let (db, s) = one_sim(1).await;
    let (_, index) = claim_and_fail(&db, "boom").await;
    assert_eq!(sim_state(&db, s).as_deref(), Some("FAILED"));
    fails_cleanly(
        &db,
        &["retry-task", &s.to_string(), &index.to_string()],
        &format!("simulation {s} is FAILED: it has ended, so its tasks are not retried"),
    );
    assert_eq!(
        task_field(&db, s, index, "task_state").as_deref(),
        Some("FAILED")
    );
    assert_eq!(task_field(&db, s, index, "attempts").as_deref(), Some("1"));
    // A canceled one likewise.
    exec(
        &db,
        &format!("update simulations set job_state = 'CANCELED' where id = {s}"),
    );
    fails_cleanly(
        &db,
        &["retry-task", &s.to_string(), &index.to_string()],
        "is CANCELED: it has ended",
    );
}

#[tokio::test]
async fn retry_task_not_found() {
    let (db, s) = one_sim(2).await;
    fails_cleanly(
        &db,
        &["retry-task", "999999", "0"],
        "simulation 999999 not found",
    );
    fails_cleanly(
        &db,
        &["retry-task", "00000000-0000-4000-8000-000000000000", "0"],
        "simulation 00000000-0000-4000-8000-000000000000 not found",
    );
    fails_cleanly(
        &db,
        &["retry-task", &s.to_string(), "7"],
        &format!("task 7 of simulation {s} not found"),
    );
}

#[tokio::test]
async fn retry_task_bad_arguments_are_bad_usage() {
    let (db, s) = one_sim(2).await;
    let s = s.to_string();
    run(&db, &["retry-task", &s, "x"]).expect_code(2);
    run(&db, &["retry-task", &s, "1.5"]).expect_code(2);
    run(&db, &["retry-task", &s, "99999999999"]).expect_code(2);
    run(&db, &["retry-task", &s]).expect_code(2);
    run(&db, &["retry-task"]).expect_code(2);
    for bad in [
        "1; UPDATE tasks SET task_state = 'PENDING'",
        "\u{1b}[31m",
        "a\u{7}",
    ] {
        let out = run(&db, &["retry-task", "--", bad, "0"]);
        out.usage_error_with("invalid value for <SIMULATION>");
        assert!(!out.stderr.contains('\u{1b}') && !out.stderr.contains('\u{7}'));
    }
    assert_eq!(
        count(
            &db,
            "select count(*) from tasks where task_state = 'PENDING'"
        ),
        2
    );
}
