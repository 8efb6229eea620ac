//! add-cluster, list-clusters, remove-cluster.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use db::enums::{AuthProvider, Platform};
use serde_json::{json, Value};

fn clusters_json(db: &Db) -> Vec<Value> {
    let out = run(db, &["--json", "list-clusters"]);
    out.ok();
    out.json().as_array().unwrap().clone()
}

fn cluster_names(db: &Db) -> Vec<String> {
    clusters_json(db)
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// A batch simulation on cluster `cluster_id`, owned by a new user.
async fn batch_sim(db: &Db, owner: &str, cluster_id: i64) -> i64 {
    let uid = user(db, owner, AuthProvider::Local).await;
    let mut new = new_sim(uid, "batch", 2);
    new.platform = Platform::Batch;
    new.cluster_id = Some(cluster_id);
    let mut conn = db.conn().await;
    db::simulations::create_with_tasks(&mut conn, &new, None)
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn add_cluster_local() {
    let db = Db::new().await;
    let out = run(
        &db,
        &["add-cluster", "local1", "--work-dir", "/scratch/jobs"],
    );
    out.ok();
    assert!(
        out.stdout
            .contains("added cluster \"local1\" (on the worker's host) with id"),
        "{}",
        out.stdout
    );
    let cs = clusters_json(&db);
    assert_eq!(cs.len(), 1);
    let c = &cs[0];
    assert_eq!(c["name"], "local1");
    assert!(c["host"].is_null());
    assert!(c["ssh_user"].is_null());
    assert_eq!(c["ssh_port"], 22);
    assert!(c["ssh_key_path"].is_null());
    assert!(c["partition"].is_null());
    assert_eq!(c["work_dir"], "/scratch/jobs");
    assert_eq!(c["sbatch_defaults"], json!([]));
}

#[tokio::test]
async fn add_cluster_with_every_option() {
    let db = Db::new().await;
    let out = run(
        &db,
        &[
            "add-cluster",
            "prometheus.cyfronet-1",
            "--host",
            "login.example.org",
            "--ssh-user",
            "plgrid_user",
            "--ssh-port",
            "2222",
            "--ssh-key",
            "/etc/worker/id_ed25519",
            "--partition",
            "plgrid-short",
            "--work-dir",
            "/net/scratch/sim",
            "--sbatch-option=--time=01:00:00",
            "--sbatch-option",
            "--mem=4G",
            "--sbatch-option",
            "-A",
            "--sbatch-option",
            "--qos normal",
        ],
    );
    out.ok();
    assert!(
        out.stdout
            .contains("(via ssh plgrid_user@login.example.org:2222)"),
        "{}",
        out.stdout
    );
    let c = &clusters_json(&db)[0];
    assert_eq!(c["name"], "prometheus.cyfronet-1");
    assert_eq!(c["host"], "login.example.org");
    assert_eq!(c["ssh_user"], "plgrid_user");
    assert_eq!(c["ssh_port"], 2222);
    assert_eq!(c["ssh_key_path"], "/etc/worker/id_ed25519");
    assert_eq!(c["partition"], "plgrid-short");
    assert_eq!(c["work_dir"], "/net/scratch/sim");
    assert_eq!(
        c["sbatch_defaults"],
        json!(["--time=01:00:00", "--mem=4G", "-A", "--qos normal"])
    );
}

#[tokio::test]
async fn add_cluster_json_confirmation_is_the_cluster() {
    let db = Db::new().await;
    let out = run(
        &db,
        &[
            "--json",
            "add-cluster",
            "c1",
            "--host",
            "h",
            "--work-dir",
            "/w",
        ],
    );
    out.ok();
    let v = out.json();
    assert_eq!(v["name"], "c1");
    assert_eq!(v["host"], "h");
    assert!(v["id"].as_i64().is_some());
}

#[tokio::test]
async fn list_clusters_table_and_json() {
    let db = Db::new().await;
    // Empty: header only.
    let empty = run(&db, &["list-clusters"]);
    empty.ok();
    assert_eq!(
        table(&empty.stdout),
        [[
            "ID",
            "NAME",
            "HOST",
            "SSH_USER",
            "PORT",
            "PARTITION",
            "WORK_DIR",
            "SBATCH_DEFAULTS"
        ]]
    );

    run(&db, &["add-cluster", "zeta", "--work-dir", "/z"]).ok();
    run(
        &db,
        &[
            "add-cluster",
            "alpha",
            "--host",
            "a.example",
            "--ssh-user",
            "u",
            "--ssh-port",
            "2200",
            "--partition",
            "p1",
            "--work-dir",
            "/a",
            "--sbatch-option=--time=1:00",
            "--sbatch-option=--mem=1G",
        ],
    )
    .ok();
    let out = run(&db, &["list-clusters"]);
    out.ok();
    let t = table(&out.stdout);
    assert_eq!(t.len(), 3, "{}", out.stdout);
    // Sorted by name.
    assert_eq!(
        t[1][1..],
        [
            "alpha",
            "a.example",
            "u",
            "2200",
            "p1",
            "/a",
            "--time=1:00",
            "--mem=1G"
        ]
    );
    assert_eq!(t[2][1..], ["zeta", "(local)", "-", "22", "-", "/z"]);

    assert_eq!(cluster_names(&db), ["alpha", "zeta"]);
}

#[tokio::test]
async fn add_cluster_duplicate_is_refused() {
    let db = Db::new().await;
    run(&db, &["add-cluster", "c1", "--work-dir", "/one"]).ok();
    fails_cleanly(
        &db,
        &["add-cluster", "c1", "--work-dir", "/two"],
        "cluster \"c1\" already exists",
    );
    let cs = clusters_json(&db);
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0]["work_dir"], "/one");
}

#[tokio::test]
async fn add_cluster_invalid_names_are_rejected_with_the_rule() {
    let db = Db::new().await;
    let long = "c".repeat(64);
    for name in [
        "bad name!",
        "../x",
        "a/b",
        "-x",
        ".hidden",
        "x;drop",
        "ünï",
        "a\nb",
        long.as_str(),
    ] {
        let out = run(&db, &["add-cluster", "--work-dir", "/w", "--", name]);
        out.expect_code(1).assert_clean_error();
        assert!(
            out.stderr.contains("1 to 63 of A-Z a-z 0-9 . _ -"),
            "{name:?}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(&format!("{name:?}")),
            "{name:?}: {}",
            out.stderr
        );
    }
    assert!(clusters_json(&db).is_empty());
    // The limits themselves are fine.
    run(&db, &["add-cluster", &"c".repeat(63), "--work-dir", "/w"]).ok();
    run(&db, &["add-cluster", "A.b_c-9", "--work-dir", "/w"]).ok();
    run(&db, &["add-cluster", "0", "--work-dir", "/w"]).ok();
    assert_eq!(clusters_json(&db).len(), 3);
}

/// The rejection says "was rejected rejected by the schema (...)": the db crate's
/// `Invalid(why)` already starts with "rejected".
#[tokio::test]
async fn add_cluster_invalid_name_message_reads_cleanly() {
    let db = Db::new().await;
    let out = run(&db, &["add-cluster", "bad name!", "--work-dir", "/w"]);
    out.expect_code(1);
    assert!(!out.stderr.contains("rejected rejected"), "{}", out.stderr);
}

#[tokio::test]
async fn add_cluster_empty_work_dir_or_host_is_rejected() {
    let db = Db::new().await;
    run(&db, &["add-cluster", "c1", "--work-dir", ""])
        .expect_code(1)
        .assert_clean_error();
    run(
        &db,
        &["add-cluster", "c2", "--work-dir", "/w", "--host", ""],
    )
    .expect_code(1)
    .assert_clean_error();
    assert!(clusters_json(&db).is_empty());
}

#[tokio::test]
async fn add_cluster_bad_ports_are_bad_usage() {
    let db = Db::new().await;
    for port in ["0", "70000", "65536", "-1", "ssh"] {
        let arg = format!("--ssh-port={port}");
        let out = run(
            &db,
            &["add-cluster", "c1", "--host", "h", "--work-dir", "/w", &arg],
        );
        out.expect_code(2);
        assert!(out.stderr.contains("--ssh-port"), "{port}: {}", out.stderr);
    }
    // Also as a separate argument, and the limits themselves.
    run(
        &db,
        &["add-cluster", "c0", "--work-dir", "/w", "--ssh-port", "0"],
    )
    .expect_code(2);
    run(
        &db,
        &[
            "add-cluster",
            "c1",
            "--host",
            "h",
            "--work-dir",
            "/w",
            "--ssh-port",
            "65535",
        ],
    )
    .ok();
    run(
        &db,
        &[
            "add-cluster",
            "c2",
            "--host",
            "h",
            "--work-dir",
            "/w",
            "--ssh-port",
            "1",
        ],
    )
    .ok();
    assert_eq!(clusters_json(&db).len(), 2);
}

#[tokio::test]
async fn add_cluster_missing_or_misplaced_arguments_are_bad_usage() {
    let db = Db::new().await;
    let out = run(&db, &["add-cluster", "c1"]);
    out.expect_code(2);
    assert!(out.stderr.contains("--work-dir"), "{}", out.stderr);
    run(&db, &["add-cluster", "--work-dir", "/w"]).expect_code(2);
    // SSH details without a host make no sense.
    run(
        &db,
        &["add-cluster", "c1", "--work-dir", "/w", "--ssh-user", "u"],
    )
    .expect_code(2);
    run(
        &db,
        &["add-cluster", "c1", "--work-dir", "/w", "--ssh-key", "/k"],
    )
    .expect_code(2);
    run(
        &db,
        &["add-cluster", "c1", "--work-dir", "/w", "--sbatch-option"],
    )
    .expect_code(2);
    assert!(clusters_json(&db).is_empty());
}

#[tokio::test]
async fn remove_cluster() {
    let db = Db::new().await;
    run(&db, &["add-cluster", "c1", "--work-dir", "/w"]).ok();
    run(&db, &["add-cluster", "c2", "--work-dir", "/w"]).ok();
    let out = run(&db, &["remove-cluster", "c1"]);
    out.ok();
    assert_eq!(out.stdout.trim(), "removed cluster \"c1\"");
    assert_eq!(cluster_names(&db), ["c2"]);

    let again = run(&db, &["remove-cluster", "c1"]);
    again.expect_code(1).assert_clean_error();
    assert!(
        again.stderr.contains("cluster \"c1\" not found"),
        "{}",
        again.stderr
    );
}

#[tokio::test]
async fn remove_cluster_unknown_is_not_found() {
    let db = Db::new().await;
    run(&db, &["add-cluster", "c1", "--work-dir", "/w"]).ok();
    for name in ["nope", "C1", "c%", "../x"] {
        let out = run(&db, &["remove-cluster", name]);
        out.expect_code(1).assert_clean_error();
        assert!(out.stderr.contains("not found"), "{name}: {}", out.stderr);
    }
    run(&db, &["remove-cluster"]).expect_code(2);
    assert_eq!(cluster_names(&db), ["c1"]);
}

#[tokio::test]
async fn remove_cluster_used_by_a_batch_simulation_is_refused() {
    let db = Db::new().await;
    run(
        &db,
        &["add-cluster", "busy", "--host", "h", "--work-dir", "/w"],
    )
    .ok();
    let id = clusters_json(&db)[0]["id"].as_i64().unwrap();
    batch_sim(&db, "u1", id).await;
    batch_sim(&db, "u2", id).await;

    fails_cleanly(&db, &["remove-cluster", "busy"], "used by 2 simulation(s)");
    assert_eq!(cluster_names(&db), ["busy"]);
    assert_eq!(count(&db, "select count(*) from simulations"), 2);

    // Once the simulations are gone, the cluster can go.
    for sid in query(&db, "select id::text from simulations") {
        run(&db, &["remove-simulation", sid[0].as_deref().unwrap()]).ok();
    }
    run(&db, &["remove-cluster", "busy"]).ok();
    assert!(clusters_json(&db).is_empty());
}
