//! Simulations by the id users see: every command that takes a simulation accepts its
//! numeric id or its job id (UUID), and refuses anything else as bad usage (exit 2) with the
//! text quoted escaped, before any connection.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;

/// The job id of simulation `id`, as text.
fn job_id(db: &Db, id: i64) -> String {
    scalar(
        db,
        &format!("select job_id::text from simulations where id = {id}"),
    )
    .unwrap()
}

/// A UUID no simulation has.
const UNKNOWN_UUID: &str = "00000000-0000-4000-8000-000000000000";

/// Names that are neither an id nor a UUID: SQL-looking text, control characters, signs,
/// spaces, UUIDs in braces.
const HOSTILE: &[&str] = &[
    "1; DROP TABLE simulations",
    "' OR '1'='1",
    "1 OR 1=1",
    "\u{1b}[2J\u{1b}[31mred",
    "a\nb",
    "bell\u{7}",
    "\\0",
    "-1",
    " 1",
    "1.0",
    "0x10",
    "{00000000-0000-4000-8000-000000000000}",
    "99999999999999999999",
];

/// Asserts bad usage that quotes nothing raw and leaves the database alone.
#[track_caller]
fn refused(db: &Db, args: &[&str]) {
    let out = run(db, args);
    out.usage_error_with("invalid value for <SIMULATION>");
    assert!(
        !out.stderr.contains('\u{1b}') && !out.stderr.contains('\u{7}'),
        "{:?}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{:?}", out.stderr);
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn list_tasks_takes_the_id_or_the_job_id() {
    let (db, a, b, _) = seeded().await;
    let by_uuid = list_json(&db, "list-tasks", &["--simulation", &job_id(&db, b)]);
    let by_id = list_json(&db, "list-tasks", &["--simulation", &b.to_string()]);
    assert_eq!(by_uuid, by_id);
    assert_eq!(by_uuid.len(), 3);
    assert!(by_uuid.iter().all(|t| t["simulation_id"] == b));
    // Upper case and without hyphens name the same simulation.
    let loud = job_id(&db, a).to_uppercase().replace('-', "");
    assert_eq!(
        list_json(&db, "list-tasks", &["--simulation", &loud]).len(),
        3
    );
    // An unknown simulation has no tasks, by either name.
    assert!(list_json(&db, "list-tasks", &["--simulation", UNKNOWN_UUID]).is_empty());
    assert!(list_json(&db, "list-tasks", &["--simulation", "999999"]).is_empty());
}

#[tokio::test]
async fn remove_simulation_by_job_id() {
    let (db, a, b, _) = seeded().await;
    let uuid = job_id(&db, a);
    let out = stdout_of(&db, &["remove-simulation", &uuid]);
    assert!(
        out.starts_with(&format!("removed simulation {a} ({uuid})")),
        "{out}"
    );
    assert_eq!(count(&db, "select count(*) from simulations"), 2);
    // Again: not found, named as given.
    fails_cleanly(
        &db,
        &["remove-simulation", &uuid],
        &format!("simulation {uuid} not found"),
    );
    fails_cleanly(
        &db,
        &["remove-simulation", UNKNOWN_UUID],
        &format!("simulation {UNKNOWN_UUID} not found"),
    );
    assert_eq!(
        count(
            &db,
            &format!("select count(*) from simulations where id = {b}")
        ),
        1
    );
}

#[tokio::test]
async fn remove_task_by_job_id() {
    let (db, a, b, _) = seeded().await;
    let out = stdout_of(&db, &["remove-task", &job_id(&db, a), "2"]);
    assert_eq!(out.trim(), format!("removed task 2 of simulation {a}"));
    assert_eq!(
        count(
            &db,
            &format!("select count(*) from tasks where simulation_id = {a}")
        ),
        2
    );
    assert_eq!(
        count(
            &db,
            &format!("select count(*) from tasks where simulation_id = {b}")
        ),
        3
    );
    fails_cleanly(
        &db,
        &["remove-task", UNKNOWN_UUID, "0"],
        &format!("simulation {UNKNOWN_UUID} not found"),
    );
    fails_cleanly(
        &db,
        &["remove-task", &job_id(&db, a), "2"],
        &format!("task 2 of simulation {a} not found"),
    );
}

#[tokio::test]
async fn hostile_simulation_names_are_bad_usage_and_change_nothing() {
    let (db, ..) = seeded().await;
    for bad in HOSTILE {
        refused(&db, &["remove-simulation", "--", bad]);
        refused(&db, &["remove-task", "--", bad, "0"]);
        refused(&db, &["list-tasks", &format!("--simulation={bad}")]);
        refused(&db, &["retry-task", "--", bad, "0"]);
    }
    refused(&db, &["remove-simulation", ""]);
    assert_eq!(count(&db, "select count(*) from simulations"), 3);
    assert_eq!(count(&db, "select count(*) from tasks"), 8);
    // The quoted text is escaped.
    let out = run(&db, &["remove-simulation", "\u{1b}[31mred"]);
    assert!(out.stderr.contains("\\u{1b}[31mred"), "{}", out.stderr);
}

#[test]
fn a_bad_simulation_name_is_refused_before_connecting() {
    let out = run_url(
        "postgres://u@127.0.0.1:1/d",
        &["remove-simulation", "x'; DROP TABLE users; --"],
    );
    out.expect_code(2);
    assert!(!out.stderr.contains("cannot connect"), "{}", out.stderr);
}
