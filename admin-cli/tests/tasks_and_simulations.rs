//! list-tasks, remove-task, list-simulations, remove-simulation.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use db::enums::AuthProvider;
use serde_json::Value;

/// Two users (alice local, kc keycloak) and three simulations: alice's A (3 tasks) and
/// B (3 tasks), kc's C (2 tasks). Returns (A, B, C) ids.
async fn seed(db: &Db) -> (i64, i64, i64) {
    let alice = user(db, "alice", AuthProvider::Local).await;
    let kc = user(db, "kc", AuthProvider::Keycloak).await;
    let a = sim(db, alice, "first", 3).await.id;
    let b = sim(db, alice, "second", 3).await.id;
    let c = sim(db, kc, "third", 2).await.id;
    (a, b, c)
}

/// `list-tasks --json ARGS` as (simulation_id, task_index) pairs.
fn task_keys(db: &Db, args: &[&str]) -> Vec<(i64, i64)> {
    let mut all = vec!["--json", "list-tasks"];
    all.extend_from_slice(args);
    let out = run(db, &all);
    out.ok();
    out.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["simulation_id"].as_i64().unwrap(),
                t["task_index"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// `list-simulations --json ARGS`.
fn sims_json(db: &Db, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json", "list-simulations"];
    all.extend_from_slice(args);
    let out = run(db, &all);
    out.ok();
    out.json().as_array().unwrap().clone()
}

fn sim_ids(sims: &[Value]) -> Vec<i64> {
    sims.iter().map(|s| s["id"].as_i64().unwrap()).collect()
}

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
    let db = Db::new().await;
    let (a, b, c) = seed(&db).await;
    let out = run(&db, &["list-tasks"]);
    out.ok();
    let t = table(&out.stdout);
    assert_eq!(
        t[0],
        [
            "SIMULATION",
            "INDEX",
            "STATE",
            "USER",
            "PRIMARIES",
            "DONE",
            "ATTEMPTS",
            "STARTED",
            "ENDED",
            "LAST_ERROR"
        ]
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
    let db = Db::new().await;
    let (a, _, _) = seed(&db).await;
    let out = run(
        &db,
        &["--json", "list-tasks", "--simulation", &a.to_string()],
    );
    out.ok();
    let v = out.json();
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
    let db = Db::new().await;
    let (a, b, _) = seed(&db).await;
    assert_eq!(
        task_keys(&db, &["--simulation", &b.to_string()]),
        [(b, 0), (b, 1), (b, 2)]
    );
    assert_eq!(task_keys(&db, &["--simulation", &a.to_string()]).len(), 3);
    assert!(task_keys(&db, &["--simulation", "999999"]).is_empty());
}

#[tokio::test]
async fn list_tasks_filters_by_user_and_auth_provider() {
    let db = Db::new().await;
    let (a, b, c) = seed(&db).await;
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
    let db = Db::new().await;
    let (a, b, _) = seed(&db).await;
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
    out.ok();
    let t = table(&out.stdout);
    assert_eq!(t[1].last().unwrap(), "boom");
}

#[tokio::test]
async fn list_tasks_limit() {
    let db = Db::new().await;
    let (a, _, _) = seed(&db).await;
    assert_eq!(task_keys(&db, &["--limit", "2"]), [(a, 0), (a, 1)]);
    let out = run(&db, &["list-tasks", "--limit", "1"]);
    out.ok();
    assert_eq!(table(&out.stdout).len(), 2);
}

#[tokio::test]
async fn list_tasks_bad_arguments_are_bad_usage() {
    let db = Db::new().await;
    seed(&db).await;
    let out = run(&db, &["list-tasks", "--state", "DONE"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("PENDING, RUNNING, COMPLETED, FAILED, CANCELED"),
        "{}",
        out.stderr
    );
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
    let db = Db::new().await;
    let (a, b, c) = seed(&db).await;
    let out = run(&db, &["remove-task", &a.to_string(), "1"]);
    out.ok();
    assert_eq!(
        out.stdout.trim(),
        format!("removed task 1 of simulation {a}")
    );

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
    let db = Db::new().await;
    let (_, b, _) = seed(&db).await;
    let out = run(&db, &["--json", "remove-task", &b.to_string(), "2"]);
    out.ok();
    let v = out.json();
    assert_eq!(v["simulation_id"], b);
    assert_eq!(v["task_index"], 2);
    assert_eq!(
        task_keys(&db, &["--simulation", &b.to_string()]),
        [(b, 0), (b, 1)]
    );
}

#[tokio::test]
async fn remove_task_twice_is_not_found_the_second_time() {
    let db = Db::new().await;
    let (a, _, _) = seed(&db).await;
    run(&db, &["remove-task", &a.to_string(), "0"]).ok();
    let out = run(&db, &["remove-task", &a.to_string(), "0"]);
    out.expect_code(1).assert_clean_error();
    assert!(
        out.stderr
            .contains(&format!("task 0 of simulation {a} not found")),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn remove_task_on_a_missing_simulation_is_not_found() {
    let db = Db::new().await;
    seed(&db).await;
    let out = run(&db, &["remove-task", "999999", "1"]);
    out.expect_code(1).assert_clean_error();
    assert!(
        out.stderr.contains("simulation 999999 not found"),
        "{}",
        out.stderr
    );
    assert_eq!(count(&db, "select count(*) from tasks"), 8);
}

#[tokio::test]
async fn remove_task_with_a_missing_index_is_not_found() {
    let db = Db::new().await;
    let (a, _, _) = seed(&db).await;
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
    let db = Db::new().await;
    let (a, _, _) = seed(&db).await;
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

// ---------------------------------------------------------------- list-simulations

#[tokio::test]
async fn list_simulations_prints_newest_first() {
    let db = Db::new().await;
    let (a, b, c) = seed(&db).await;
    let out = run(&db, &["list-simulations"]);
    out.ok();
    let t = table(&out.stdout);
    assert_eq!(
        t[0],
        [
            "ID",
            "JOB_ID",
            "USER",
            "STATE",
            "SIM_TYPE",
            "PLATFORM",
            "TASKS",
            "PRIMARIES",
            "STARTED",
            "ENDED",
            "TITLE"
        ]
    );
    let ids: Vec<String> = t[1..].iter().map(|r| r[0].clone()).collect();
    assert_eq!(ids, [c.to_string(), b.to_string(), a.to_string()]);
    // c: kc/keycloak, PENDING, builtin, direct, 2 tasks, 200 primaries, date time, -, title.
    assert_eq!(
        t[1][2..8],
        ["kc/keycloak", "PENDING", "builtin", "direct", "2", "200"]
    );
    assert_eq!(t[1][10..], ["-", "third"]);
    assert!(!out.stdout.contains("DONE"));
}

#[tokio::test]
async fn list_simulations_verbose_shows_task_totals() {
    let db = Db::new().await;
    let (a, b, _) = seed(&db).await;
    exec(
        &db,
        &format!(
            "update tasks set task_state = 'COMPLETED', simulated_primaries = requested_primaries, end_time = now() \
             where simulation_id = {a} and task_index in (0, 2); \
             update tasks set task_state = 'FAILED', simulated_primaries = 7, end_time = now() \
             where simulation_id = {a} and task_index = 1"
        ),
    );
    exec(&db, &format!("delete from tasks where simulation_id = {b}"));
    exec(
        &db,
        &format!("update simulations set array_id = 4242, job_dir = '/w/job-b' where id = {b}"),
    );

    let out = run(&db, &["list-simulations", "-v"]);
    out.ok();
    let t = table(&out.stdout);
    assert_eq!(
        t[0][11..],
        ["DONE", "FAILED", "SIMULATED", "ARRAY_ID", "JOB_DIR"]
    );
    let row = t.iter().find(|r| r[0] == a.to_string()).unwrap();
    // ... TITLE DONE FAILED SIMULATED ARRAY_ID JOB_DIR
    assert_eq!(row[row.len() - 5..], ["2/3", "1", "207", "-", "-"]);
    let row_b = t.iter().find(|r| r[0] == b.to_string()).unwrap();
    assert_eq!(
        row_b[row_b.len() - 5..],
        ["0/0", "0", "0", "4242", "/w/job-b"]
    );

    let json = sims_json(&db, &["-v"]);
    let ja = json.iter().find(|s| s["id"] == a).unwrap();
    assert_eq!(ja["tasks"]["total"], 3);
    assert_eq!(ja["tasks"]["completed"], 2);
    assert_eq!(ja["tasks"]["failed"], 1);
    assert_eq!(ja["tasks"]["simulated_primaries"], 207);
    let jb = json.iter().find(|s| s["id"] == b).unwrap();
    assert_eq!(jb["tasks"]["total"], 0);
}

#[tokio::test]
async fn list_simulations_json_has_the_fields() {
    let db = Db::new().await;
    let (a, _, _) = seed(&db).await;
    let sims = sims_json(&db, &[]);
    assert_eq!(sims.len(), 3);
    let s = sims.iter().find(|s| s["id"] == a).unwrap();
    assert_eq!(s["username"], "alice");
    assert_eq!(s["auth_provider"], "local");
    assert_eq!(s["title"], "first");
    assert_eq!(s["job_state"], "PENDING");
    assert_eq!(s["platform"], "direct");
    assert_eq!(s["sim_type"], "builtin");
    assert_eq!(s["ntasks"], 3);
    assert_eq!(s["primaries"], 300);
    assert!(s["job_id"].as_str().is_some_and(|j| j.len() == 36), "{s}");
    assert!(s["tasks"].is_null(), "task totals only with -v: {s}");
}

#[tokio::test]
async fn list_simulations_filters() {
    let db = Db::new().await;
    let (a, b, c) = seed(&db).await;
    exec(
        &db,
        &format!("update simulations set job_state = 'COMPLETED', end_time = now() where id = {b}"),
    );
    assert_eq!(sim_ids(&sims_json(&db, &["--user", "alice"])), [b, a]);
    assert_eq!(sim_ids(&sims_json(&db, &["--user", "kc"])), [c]);
    assert!(sims_json(&db, &["--user", "nobody"]).is_empty());
    assert_eq!(
        sim_ids(&sims_json(&db, &["--auth-provider", "keycloak"])),
        [c]
    );
    assert_eq!(
        sim_ids(&sims_json(&db, &["--auth-provider", "local"])),
        [b, a]
    );
    assert!(sims_json(&db, &["--user", "alice", "--auth-provider", "keycloak"]).is_empty());
    assert_eq!(sim_ids(&sims_json(&db, &["--state", "COMPLETED"])), [b]);
    assert_eq!(sim_ids(&sims_json(&db, &["--state", "pending"])), [c, a]);
    assert!(sims_json(&db, &["--state", "MERGING"]).is_empty());
    assert_eq!(sim_ids(&sims_json(&db, &["--limit", "1"])), [c]);
    assert_eq!(sim_ids(&sims_json(&db, &["--limit", "2"])), [c, b]);
    assert_eq!(
        sim_ids(&sims_json(&db, &["--user", "alice", "--limit", "1"])),
        [b]
    );
}

#[tokio::test]
async fn list_simulations_bad_arguments_are_bad_usage() {
    let db = Db::new().await;
    seed(&db).await;
    let out = run(&db, &["list-simulations", "--state", "DONE"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("PENDING, RUNNING, MERGING"),
        "{}",
        out.stderr
    );
    run(&db, &["list-simulations", "--limit", "0"]).expect_code(2);
    run(&db, &["list-simulations", "--limit", "x"]).expect_code(2);
    run(&db, &["list-simulations", "--auth-provider", "github"]).expect_code(2);
}

#[tokio::test]
async fn list_simulations_escapes_control_characters_in_titles() {
    let db = Db::new().await;
    let alice = user(&db, "alice", AuthProvider::Local).await;
    let s = sim(&db, alice, "evil\u{1b}[2J\ntitle", 1).await;
    let out = run(&db, &["list-simulations"]);
    out.ok();
    assert!(!out.stdout.contains('\u{1b}'), "{:?}", out.stdout);
    assert_eq!(out.stdout.lines().count(), 2, "{:?}", out.stdout);
    let json = sims_json(&db, &[]);
    assert_eq!(json[0]["id"], s.id);
    assert_eq!(json[0]["title"], "evil\u{1b}[2J\ntitle");
}

// ---------------------------------------------------------------- remove-simulation

#[tokio::test]
async fn remove_simulation_cascades_to_its_tasks_and_input_only() {
    let db = Db::new().await;
    let (a, b, _) = seed(&db).await;
    exec(
        &db,
        &format!(
            "insert into logfiles (simulation_id, task_id, name, data, uncompressed_size) \
             select simulation_id, id, 'stdout', '\\x00', 1 from tasks where simulation_id in ({a}, {b})"
        ),
    );
    let out = run(&db, &["remove-simulation", &a.to_string()]);
    out.ok();
    assert!(
        out.stdout.starts_with(&format!("removed simulation {a} (")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("it was PENDING"),
        "a pending simulation gets a warning: {}",
        out.stdout
    );

    for table in ["tasks", "inputs", "logfiles"] {
        assert_eq!(
            count(
                &db,
                &format!("select count(*) from {table} where simulation_id = {a}")
            ),
            0,
            "{table} rows of the removed simulation"
        );
    }
    assert_eq!(
        count(
            &db,
            &format!("select count(*) from simulations where id = {a}")
        ),
        0
    );
    // The other simulation keeps everything.
    assert_eq!(
        count(
            &db,
            &format!("select count(*) from tasks where simulation_id = {b}")
        ),
        3
    );
    assert_eq!(
        count(
            &db,
            &format!("select count(*) from inputs where simulation_id = {b}")
        ),
        1
    );
    assert_eq!(
        count(
            &db,
            &format!("select count(*) from logfiles where simulation_id = {b}")
        ),
        3
    );
    assert_eq!(count(&db, "select count(*) from users"), 2);
}

#[tokio::test]
async fn remove_simulation_of_a_finished_simulation_has_no_warning() {
    let db = Db::new().await;
    let (a, _, _) = seed(&db).await;
    exec(
        &db,
        &format!("update simulations set job_state = 'CANCELED', end_time = now() where id = {a}"),
    );
    let out = run(&db, &["remove-simulation", &a.to_string()]);
    out.ok();
    assert!(!out.stdout.contains("it was"), "{}", out.stdout);
    let again = run(&db, &["remove-simulation", &a.to_string()]);
    again.expect_code(1);
    assert!(
        again.stderr.contains(&format!("simulation {a} not found")),
        "{}",
        again.stderr
    );
}

#[tokio::test]
async fn remove_simulation_json_returns_the_simulation() {
    let db = Db::new().await;
    let (_, b, _) = seed(&db).await;
    let out = run(&db, &["--json", "remove-simulation", &b.to_string()]);
    out.ok();
    let v = out.json();
    assert_eq!(v["id"], b);
    assert_eq!(v["title"], "second");
}

#[tokio::test]
async fn remove_simulation_missing_id_is_not_found() {
    let db = Db::new().await;
    seed(&db).await;
    let out = run(&db, &["remove-simulation", "999999"]);
    out.expect_code(1).assert_clean_error();
    assert!(
        out.stderr.contains("simulation 999999 not found"),
        "{}",
        out.stderr
    );
    assert_eq!(count(&db, "select count(*) from simulations"), 3);
}

#[tokio::test]
async fn remove_simulation_bad_arguments_are_bad_usage() {
    let db = Db::new().await;
    seed(&db).await;
    run(&db, &["remove-simulation", "abc"]).expect_code(2);
    run(&db, &["remove-simulation"]).expect_code(2);
    run(&db, &["remove-simulation", "1", "2"]).expect_code(2);
    assert_eq!(count(&db, "select count(*) from simulations"), 3);
}
