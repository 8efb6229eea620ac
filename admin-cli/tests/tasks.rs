//! list-tasks, remove-task.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;

/// `list-tasks --json ARGS` as (simulation_id, task_index) pairs.
fn task_keys(db: &Db, args: &[&str]) -> Vec<(i64, i64)> {
    list_json(db, "list-tasks", args)
        .iter()
        .map(|t| {
            (
                t["simulation_id"].as_i64().unwrap(),
                t["task_index"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The task indices of simulation `sim`, in order.
fn indices_of(db: &Db, sim: i64) -> Vec<Option<String>> {
    query(
        db,
        &format!(
            "select task_index::text from tasks where simulation_id = {sim} order by task_index"
        ),
    )
    .into_iter()
    .map(|mut r| r.remove(0))
    .collect()
}

// ---------------------------------------------------------------- list-tasks

#[tokio::test]
async fn list_tasks_prints_every_task_by_simulation_and_index() {
    let (db, a, b, c) = seeded().await;
    let t = table_with_header(
        &run(&db, &["list-tasks"]),
        "SIMULATION INDEX STATE USER PRIMARIES DONE ATTEMPTS STARTED ENDED LAST_ERROR",
    );
    let keys: Vec<(String, String)> = t[1..]
        .iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let mut expected = Vec::new();
    for (sim, n) in [(a, 3), (b, 3), (c, 2)] {
        for i in 0..n {
            expected.push((sim.to_string(), i.to_string()));
        }
    }
    assert_eq!(keys, expected);
    // A fresh task: pending, alice's, 100 primaries, none done, 0 of 3 attempts, no times, no error.
    assert_eq!(
        t[1][2..],
        ["PENDING", "alice", "100", "0", "0/3", "-", "-", "-"]
    );
}

#[tokio::test]
async fn list_tasks_json_has_the_task_and_its_simulation() {
    let (db, a, _, _) = seeded().await;
    let v = json_of(
        &db,
        &["--json", "list-tasks", "--simulation", &a.to_string()],
    );
    let t = &v[0];
    assert_eq!(t["simulation_id"], a);
    assert_eq!(t["task_index"], 0);
    assert_eq!(t["task_state"], "PENDING");
    assert_eq!(t["requested_primaries"], 100);
    assert_eq!(t["username"], "alice");
    let job_id = scalar(
        &db,
        &format!("select job_id::text from simulations where id = {a}"),
    );
    assert_eq!(t["job_id"].as_str(), job_id.as_deref());
}

#[tokio::test]
async fn list_tasks_filters_by_simulation() {
    let (db, a, b, _) = seeded().await;
    assert_eq!(
        task_keys(&db, &["--simulation", &b.to_string()]),
        [(b, 0), (b, 1), (b, 2)]
    );
    assert_eq!(task_keys(&db, &["--simulation", &a.to_string()]).len(), 3);
    assert!(task_keys(&db, &["--simulation", "999999"]).is_empty());
}

#[tokio::test]
async fn list_tasks_filters_by_user_and_auth_provider() {
    let (db, a, b, c) = seeded().await;
    let alice: Vec<i64> = task_keys(&db, &["--user", "alice"])
        .iter()
        .map(|k| k.0)
        .collect();
    assert_eq!(alice, [a, a, a, b, b, b]);
    assert_eq!(task_keys(&db, &["--user", "kc"]), [(c, 0), (c, 1)]);
    assert_eq!(
        task_keys(&db, &["--auth-provider", "keycloak"]),
        [(c, 0), (c, 1)]
    );
    assert_eq!(task_keys(&db, &["--auth-provider", "local"]).len(), 6);
    // Both filters at once: kc is not a local user.
    assert!(task_keys(&db, &["--user", "kc", "--auth-provider", "local"]).is_empty());
    assert!(task_keys(&db, &["--user", "nobody"]).is_empty());
    // A name is not a pattern.
    assert!(task_keys(&db, &["--user", "%"]).is_empty());
}

#[tokio::test]
async fn list_tasks_filters_by_state() {
    let (db, a, b, _) = seeded().await;
    exec(
        &db,
        &format!(
            "update tasks set task_state = 'COMPLETED', simulated_primaries = requested_primaries, \
             start_time = now(), end_time = now() where simulation_id = {a} and task_index = 1; \
             update tasks set task_state = 'FAILED', last_error = 'boom', end_time = now() \
             where simulation_id = {b} and task_index = 2"
        ),
    );
    assert_eq!(task_keys(&db, &["--state", "COMPLETED"]), [(a, 1)]);
    assert_eq!(
        task_keys(&db, &["--state", "failed"]),
        [(b, 2)],
        "states ignore case"
    );
    assert_eq!(task_keys(&db, &["--state", "PENDING"]).len(), 6);
    assert!(task_keys(&db, &["--state", "RUNNING"]).is_empty());

    let out = run(&db, &["list-tasks", "--state", "failed"]);
    let t = table(&out.ok().stdout);
    assert_eq!(t[1].last().unwrap(), "boom");
}

#[tokio::test]
async fn list_tasks_limit() {
    let (db, a, _, _) = seeded().await;
    assert_eq!(task_keys(&db, &["--limit", "2"]), [(a, 0), (a, 1)]);
    let out = stdout_of(&db, &["list-tasks", "--limit", "1"]);
    assert_eq!(table(&out).len(), 2);
}

#[tokio::test]
async fn list_tasks_bad_arguments_are_bad_usage() {
    let (db, ..) = seeded().await;
    let out = run(&db, &["list-tasks", "--state", "DONE"]);
    out.usage_error_with("PENDING, RUNNING, COMPLETED, FAILED, CANCELED");
    run(&db, &["list-tasks", "--state", "MERGING"]).expect_code(2); // a job state, not a task state
    run(&db, &["list-tasks", "--limit", "0"]).expect_code(2);
    run(&db, &["list-tasks", "--limit", "-1"]).expect_code(2);
    run(&db, &["list-tasks", "--limit", "many"]).expect_code(2);
    run(&db, &["list-tasks", "--simulation", "one"]).expect_code(2);
    run(&db, &["list-tasks", "--auth-provider", "ldap"]).expect_code(2);
}

// ---------------------------------------------------------------- remove-task

/// yaptide removed task N of *every* simulation; this must remove it from one only.
#[tokio::test]
async fn remove_task_removes_only_that_task_of_that_simulation() {
    let (db, a, b, c) = seeded().await;
    let out = stdout_of(&db, &["remove-task", &a.to_string(), "1"]);
    assert_eq!(out.trim(), format!("removed task 1 of simulation {a}"));

    let s = |v: &[&str]| v.iter().map(|x| Some(x.to_string())).collect::<Vec<_>>();
    assert_eq!(indices_of(&db, a), s(&["0", "2"]));
    assert_eq!(indices_of(&db, b), s(&["0", "1", "2"]));
    assert_eq!(indices_of(&db, c), s(&["0", "1"]));
    assert_eq!(count(&db, "select count(*) from tasks"), 7);
    // The simulation itself stays.
    assert_eq!(
        count(
            &db,
            &format!("select count(*) from simulations where id = {a}")
        ),
        1
    );
}

#[tokio::test]
async fn remove_task_json_returns_the_removed_task() {
    let (db, _, b, _) = seeded().await;
    let v = json_of(&db, &["--json", "remove-task", &b.to_string(), "2"]);
    assert_eq!(v["simulation_id"], b);
    assert_eq!(v["task_index"], 2);
    assert_eq!(
        task_keys(&db, &["--simulation", &b.to_string()]),
        [(b, 0), (b, 1)]
    );
}

#[tokio::test]
async fn remove_task_twice_is_not_found_the_second_time() {
    let (db, a, _, _) = seeded().await;
    run(&db, &["remove-task", &a.to_string(), "0"]).ok();
    let out = run(&db, &["remove-task", &a.to_string(), "0"]);
    out.fails_with(&format!("task 0 of simulation {a} not found"));
}

#[tokio::test]
async fn remove_task_on_a_missing_simulation_is_not_found() {
    let (db, ..) = seeded().await;
    fails_cleanly(
        &db,
        &["remove-task", "999999", "1"],
        "simulation 999999 not found",
    );
    assert_eq!(count(&db, "select count(*) from tasks"), 8);
}

#[tokio::test]
async fn remove_task_with_a_missing_index_is_not_found() {
    let (db, a, _, _) = seeded().await;
    let out = run(&db, &["remove-task", &a.to_string(), "7"]);
    out.expect_code(1).assert_clean_error();
    assert_eq!(
        out.stderr.trim_end(),
        format!("error: task 7 of simulation {a} not found")
    );
    assert_eq!(count(&db, "select count(*) from tasks"), 8);
}

#[tokio::test]
async fn remove_task_with_bad_arguments_is_bad_usage() {
    let (db, a, _, _) = seeded().await;
    let a = a.to_string();
    run(&db, &["remove-task", "abc", "1"]).expect_code(2);
    run(&db, &["remove-task", &a, "x"]).expect_code(2);
    run(&db, &["remove-task", &a, "1.5"]).expect_code(2);
    run(&db, &["remove-task", &a]).expect_code(2);
    run(&db, &["remove-task"]).expect_code(2);
    run(&db, &["remove-task", &a, "1", "2"]).expect_code(2);
    run(&db, &["remove-task", &a, "99999999999"]).expect_code(2); // beyond i32
    assert_eq!(count(&db, "select count(*) from tasks"), 8);
}
