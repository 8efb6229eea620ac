//! list-simulations, remove-simulation.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use db::enums::AuthProvider;
use serde_json::Value;

/// `list-simulations --json ARGS`.
fn sims_json(db: &Db, args: &[&str]) -> Vec<Value> {
    list_json(db, "list-simulations", args)
}

fn sim_ids(sims: &[Value]) -> Vec<i64> {
    sims.iter().map(|s| s["id"].as_i64().unwrap()).collect()
}

// ---------------------------------------------------------------- list-simulations

#[tokio::test]
async fn list_simulations_prints_newest_first() {
    let (db, a, b, c) = seeded().await;
    let out = run(&db, &["list-simulations"]);
    let t = table_with_header(
        &out,
        "ID JOB_ID USER STATE SIM_TYPE PLATFORM TASKS PRIMARIES STARTED ENDED TITLE",
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
    let (db, a, b, _) = seeded().await;
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
    let t = table(&out.ok().stdout);
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
    let (db, a, _, _) = seeded().await;
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
    let (db, a, b, c) = seeded().await;
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
    let (db, ..) = seeded().await;
    let out = run(&db, &["list-simulations", "--state", "DONE"]);
    out.usage_error_with("PENDING, RUNNING, MERGING");
    run(&db, &["list-simulations", "--limit", "0"]).expect_code(2);
    run(&db, &["list-simulations", "--limit", "x"]).expect_code(2);
    run(&db, &["list-simulations", "--auth-provider", "github"]).expect_code(2);
}

#[tokio::test]
async fn list_simulations_escapes_control_characters_in_titles() {
    let db = Db::new().await;
    let alice = user(&db, "alice", AuthProvider::Local).await;
    let s = sim(&db, alice, "evil\u{1b}[2J\ntitle", 1).await;
    let out = stdout_of(&db, &["list-simulations"]);
    assert!(!out.contains('\u{1b}'), "{:?}", out);
    assert_eq!(out.lines().count(), 2, "{:?}", out);
    let json = sims_json(&db, &[]);
    assert_eq!(json[0]["id"], s.id);
    assert_eq!(json[0]["title"], "evil\u{1b}[2J\ntitle");
}

// ---------------------------------------------------------------- remove-simulation

#[tokio::test]
async fn remove_simulation_cascades_to_its_tasks_and_input_only() {
    let (db, a, b, _) = seeded().await;
    exec(
        &db,
        &format!(
            "insert into logfiles (simulation_id, task_id, name, data, uncompressed_size) \
             select simulation_id, id, 'stdout', '\\x00', 1 from tasks where simulation_id in ({a}, {b})"
        ),
    );
    let out = stdout_of(&db, &["remove-simulation", &a.to_string()]);
    assert!(
        out.starts_with(&format!("removed simulation {a} (")),
        "{}",
        out
    );
    assert!(
        out.contains("it was PENDING"),
        "a pending simulation gets a warning: {}",
        out
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
    assert_eq!(user_count(&db), 2);
}

#[tokio::test]
async fn remove_simulation_of_a_finished_simulation_has_no_warning() {
    let (db, a, _, _) = seeded().await;
    exec(
        &db,
        &format!("update simulations set job_state = 'CANCELED', end_time = now() where id = {a}"),
    );
    let out = stdout_of(&db, &["remove-simulation", &a.to_string()]);
    assert!(!out.contains("it was"), "{}", out);
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
    let (db, _, b, _) = seeded().await;
    let v = json_of(&db, &["--json", "remove-simulation", &b.to_string()]);
    assert_eq!(v["id"], b);
    assert_eq!(v["title"], "second");
}

#[tokio::test]
async fn remove_simulation_missing_id_is_not_found() {
    let (db, ..) = seeded().await;
    fails_cleanly(
        &db,
        &["remove-simulation", "999999"],
        "simulation 999999 not found",
    );
    assert_eq!(count(&db, "select count(*) from simulations"), 3);
}

#[tokio::test]
async fn remove_simulation_bad_arguments_are_bad_usage() {
    let (db, ..) = seeded().await;
    run(&db, &["remove-simulation", "abc"]).expect_code(2);
    run(&db, &["remove-simulation"]).expect_code(2);
    run(&db, &["remove-simulation", "1", "2"]).expect_code(2);
    assert_eq!(count(&db, "select count(*) from simulations"), 3);
}
