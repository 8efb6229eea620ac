//! migrate status | run | revert | redo, schema version checks, and concurrent `migrate run`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use std::collections::BTreeMap;

const VERSIONS: [&str; 10] = [
    "20261121000001",
    "20261121000002",
    "20261121000003",
    "20261121000004",
    "20261121000005",
    "20261121000006",
    "20261130000007",
    "20261130000008",
    "20261130000009",
    "20261201000010",
];
/// The number of migrations.
const N: usize = VERSIONS.len();

/// (version, state) pairs from `migrate status --json`.
fn status(db: &Db) -> Vec<(String, bool, bool)> {
    let out = run(db, &["--json", "migrate", "status"]);
    out.ok();
    out.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["version"].as_str().unwrap().to_string(),
                m["applied"].as_bool().unwrap(),
                m["known"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn applied(db: &Db) -> Vec<String> {
    status(db)
        .into_iter()
        .filter(|m| m.1)
        .map(|m| m.0)
        .collect()
}

fn table_exists(db: &Db, name: &str) -> bool {
    scalar(db, &format!("select to_regclass('{name}')::text")).is_some()
}

fn trigger_exists(db: &Db, name: &str) -> bool {
    count(
        db,
        &format!("select count(*) from pg_trigger where tgname = '{name}'"),
    ) == 1
}

#[tokio::test]
async fn status_on_an_empty_database_lists_every_migration_as_pending() {
    let db = Db::empty().await;
    let out = run(&db, &["migrate", "status"]);
    let t = table(&out.ok().stdout);
    assert_eq!(t[0], ["VERSION", "NAME", "STATE"]);
    assert_eq!(t.len(), N + 2, "{}", out.stdout);
    for (row, v) in t[1..=N].iter().zip(VERSIONS) {
        assert_eq!(row[0], v);
        // The name is the folder: the version with dashes, then the subject.
        let dashed = format!("{}-{}-{}-{}_", &v[..4], &v[4..6], &v[6..8], &v[8..]);
        assert!(row[1].starts_with(&dashed), "{row:?}");
        assert_eq!(row[2], "pending");
    }
    assert_eq!(
        out.stdout.lines().last(),
        Some(format!("{N} pending").as_str())
    );
    // Looking does not create anything.
    assert!(!table_exists(&db, "__diesel_schema_migrations"));
}

#[tokio::test]
async fn status_json_has_version_name_applied_known() {
    let db = Db::new().await;
    let v = json_of(&db, &["--json", "migrate", "status"]);
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), N);
    assert_eq!(list[0]["version"], "20261121000001");
    assert_eq!(list[0]["name"], "2026-11-21-000001_users_and_tokens");
    assert_eq!(list[3]["name"], "2026-11-21-000004_results_and_logs");
    assert_eq!(list[4]["name"], "2026-11-21-000005_queue_indexes");
    assert_eq!(list[5]["name"], "2026-11-21-000006_auth_events");
    assert!(
        list.iter()
            .all(|m| m["applied"] == true && m["known"] == true),
        "{v}"
    );

    let text = stdout_of(&db, &["migrate", "status"]);
    assert_eq!(text.lines().last(), Some("0 pending"));
    assert_eq!(text.matches(" applied").count(), VERSIONS.len(), "{}", text);
}

#[tokio::test]
async fn run_applies_every_migration_then_has_nothing_to_apply() {
    let db = Db::empty().await;
    let out = stdout_of(&db, &["migrate", "run"]);
    assert_eq!(out.trim(), format!("applied {}", VERSIONS.join(", ")));
    assert_eq!(applied(&db), VERSIONS);
    for t in [
        "users",
        "auth_tokens",
        "clusters",
        "simulations",
        "tasks",
        "inputs",
        "logfiles",
    ] {
        assert!(table_exists(&db, t), "{t} missing");
    }
    // The schema is usable.
    run(&db, &["add-user", "alice"]).ok();
    run(&db, &["list-users"]).ok();

    let again = stdout_of(&db, &["migrate", "run"]);
    assert_eq!(again.trim(), "nothing to apply: the database is up to date");
    let json = run(&db, &["--json", "migrate", "run"]);
    json.ok();
    assert_eq!(json.json(), serde_json::json!({ "applied": [] }));
    assert_eq!(
        count(&db, "select count(*) from __diesel_schema_migrations"),
        VERSIONS.len() as i64
    );
}

#[tokio::test]
async fn run_json_lists_the_applied_versions() {
    let db = Db::empty().await;
    let out = json_of(&db, &["--json", "migrate", "run"]);
    assert_eq!(out, serde_json::json!({ "applied": VERSIONS }));
}

#[tokio::test]
async fn revert_one_step_then_commands_refuse_until_run() {
    let db = Db::new().await;
    let out = stdout_of(&db, &["migrate", "revert"]);
    assert_eq!(out.trim(), format!("reverted {}", VERSIONS[N - 1]));
    assert_eq!(applied(&db), VERSIONS[..N - 1]);
    assert!(table_exists(&db, "merge_accumulators"));

    let st = stdout_of(&db, &["migrate", "status"]);
    assert_eq!(st.lines().last(), Some("1 pending"));

    let refused = run(&db, &["list-users"]);
    refused.fails_with(&format!(
        "1 pending migration(s), starting with {}",
        VERSIONS[N - 1]
    ));
    assert!(refused.stderr.contains("migrate run"), "{}", refused.stderr);

    run(&db, &["migrate", "run"]).ok();
    run(&db, &["list-users"]).ok();
}

#[tokio::test]
async fn revert_steps_two() {
    let db = Db::new().await;
    let out = stdout_of(&db, &["migrate", "revert", "--steps", "2"]);
    assert_eq!(
        out.trim(),
        format!("reverted {}, {}", VERSIONS[N - 1], VERSIONS[N - 2])
    );
    assert_eq!(applied(&db), VERSIONS[..N - 2]);
    assert!(table_exists(&db, "logfiles"));

    let json = run(&db, &["--json", "migrate", "revert", "--steps", "10"]);
    json.ok();
    assert_eq!(
        json.json(),
        serde_json::json!({ "reverted": VERSIONS[..N - 2].iter().rev().collect::<Vec<_>>() }),
        "more steps than applied migrations reverts them all"
    );
    assert!(applied(&db).is_empty());
    assert!(!table_exists(&db, "users"));

    let nothing = run(&db, &["migrate", "revert"]);
    nothing.ok();
    assert_eq!(nothing.stdout.trim(), "nothing to revert");
}

#[tokio::test]
async fn revert_bad_steps_are_bad_usage() {
    let db = Db::new().await;
    run(&db, &["migrate", "revert", "--steps", "0"]).expect_code(2);
    run(&db, &["migrate", "revert", "--steps", "-1"]).expect_code(2);
    run(&db, &["migrate", "revert", "--steps", "two"]).expect_code(2);
    run(&db, &["migrate"]).expect_code(2);
    run(&db, &["migrate", "sideways"]).expect_code(2);
    assert_eq!(applied(&db), VERSIONS);
}

#[tokio::test]
async fn redo_reverts_and_reapplies_the_last_migration_only() {
    let db = Db::new().await;
    run(&db, &["add-user", "keeper"]).ok();
    let out = stdout_of(&db, &["migrate", "redo"]);
    assert_eq!(out.trim(), format!("redid {}", VERSIONS[N - 1]));
    assert_eq!(applied(&db), VERSIONS);
    assert!(trigger_exists(&db, "users_changed"));
    assert!(trigger_exists(&db, "auth_tokens_changed"));
    // Data in tables of earlier migrations survives.
    assert_eq!(
        count(&db, "select count(*) from users where username = 'keeper'"),
        1
    );
    run(&db, &["list-users"]).ok();

    // With later migrations pending, redo re-applies only the one it reverted.
    run(&db, &["migrate", "revert", "--steps", "2"]).ok();
    let json = run(&db, &["--json", "migrate", "redo"]);
    json.ok();
    assert_eq!(
        json.json(),
        serde_json::json!({ "redone": VERSIONS[N - 3] })
    );
    assert_eq!(applied(&db), VERSIONS[..N - 2]);
}

#[tokio::test]
async fn redo_on_an_empty_database_has_nothing_to_do() {
    let db = Db::empty().await;
    let out = stdout_of(&db, &["migrate", "redo"]);
    assert_eq!(out.trim(), "nothing to redo: no migration is applied");
}

#[tokio::test]
async fn unknown_migration_version_is_refused_by_commands_and_migrate() {
    let db = Db::new().await;
    exec(
        &db,
        "insert into __diesel_schema_migrations (version) values ('99990101000000')",
    );

    let list = run(&db, &["list-users"]);
    list.fails_with("99990101000000");
    assert!(list.stderr.contains("upgrade"), "{}", list.stderr);

    for args in [
        &["migrate", "run"][..],
        &["migrate", "revert"],
        &["migrate", "redo"],
    ] {
        let out = run(&db, args);
        out.expect_code(1).assert_clean_error();
        assert!(
            out.stderr.contains("99990101000000"),
            "{args:?}: {}",
            out.stderr
        );
    }
    // Nothing was reverted or applied.
    assert_eq!(
        count(&db, "select count(*) from __diesel_schema_migrations"),
        VERSIONS.len() as i64 + 1
    );
    assert!(table_exists(&db, "logfiles"));

    // status still works, and shows the stranger.
    let st = status(&db);
    assert_eq!(st.len(), VERSIONS.len() + 1);
    assert_eq!(
        st[VERSIONS.len()],
        ("99990101000000".to_string(), true, false)
    );
    let text = stdout_of(&db, &["migrate", "status"]);
    assert!(text.contains("applied, unknown to this binary"), "{}", text);
}

#[tokio::test]
async fn unmigrated_database_gives_a_one_line_hint() {
    let db = Db::empty().await;
    for args in [
        &["list-users"][..],
        &["list-clusters"],
        &["list-tasks"],
        &["add-user", "x"],
    ] {
        let out = run(&db, args);
        out.expect_code(1).assert_clean_error();
        assert_eq!(
            out.stderr.trim_end().lines().count(),
            1,
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("not migrated"), "{}", out.stderr);
        assert!(
            out.stderr.contains(&format!("{N} pending")),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("migrate run"), "{}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }
}

#[tokio::test]
async fn partly_migrated_database_gets_the_rest() {
    let db = Db::empty().await;
    run(&db, &["migrate", "run"]).ok();
    run(&db, &["migrate", "revert", "--steps", &(N - 1).to_string()]).ok();
    let out = stdout_of(&db, &["migrate", "run"]);
    assert_eq!(out.trim(), format!("applied {}", VERSIONS[1..].join(", ")));
}

/// Eight processes start `migrate run` at once on an empty database: under the advisory
/// lock each migration is applied exactly once and every process succeeds.
#[tokio::test]
async fn concurrent_migrate_run_applies_each_migration_once() {
    let db = Db::empty().await;
    let url = db.config().url_with_password().to_string();
    let children: Vec<_> = (0..8)
        .map(|_| {
            let mut c = bin();
            c.args(["--database-url", &url, "--json", "migrate", "run"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();

    let mut times_applied: BTreeMap<String, usize> = BTreeMap::new();
    let mut appliers = 0;
    for child in children {
        let o = child.wait_with_output().unwrap();
        let stdout = String::from_utf8(o.stdout).unwrap();
        let stderr = String::from_utf8(o.stderr).unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "stdout: {stdout}\nstderr: {stderr}"
        );
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let done = v["applied"].as_array().unwrap();
        if !done.is_empty() {
            appliers += 1;
        }
        for ver in done {
            *times_applied
                .entry(ver.as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    let expected: BTreeMap<String, usize> = VERSIONS.iter().map(|v| (v.to_string(), 1)).collect();
    assert_eq!(times_applied, expected);
    assert_eq!(
        appliers, 1,
        "one process applies everything; the others find nothing pending"
    );
    assert_eq!(
        count(&db, "select count(*) from __diesel_schema_migrations"),
        VERSIONS.len() as i64
    );
    assert_eq!(
        count(
            &db,
            "select count(distinct version) from __diesel_schema_migrations"
        ),
        VERSIONS.len() as i64
    );
    run(&db, &["list-users"]).ok();
}
