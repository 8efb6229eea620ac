//! An operator's first day, end to end with the real `admin-cli` binary: migrate an empty
//! database, add users and a cluster, inspect simulations, clean up.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use db::testing::TestDb;
use tests::{command, Run};

fn admin(db: &TestDb, args: &[&str]) -> Run {
    command("admin-cli")
        .arg("--database-url")
        .arg(db.config().url_with_password())
        .args(args)
        .output()
        .unwrap()
        .into()
}

#[tokio::test]
async fn operator_sets_up_and_cleans_up_a_fresh_database() {
    let db = TestDb::empty().await;

    let r = admin(&db, &["list-users"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("migrate run"), "{}", r.stderr);

    let r = admin(&db, &["migrate", "run"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("applied 20261121000001"), "{}", r.stdout);

    assert_eq!(
        admin(&db, &["add-user", "alice", "--password", "pw-alice"]).code,
        0
    );
    assert_eq!(
        admin(
            &db,
            &["add-user", "root", "--password", "pw-root", "--admin"]
        )
        .code,
        0
    );
    assert_eq!(
        admin(
            &db,
            &[
                "add-cluster",
                "prometheus",
                "--host",
                "login.example",
                "--ssh-user",
                "sim",
                "--work-dir",
                "/scratch/sim"
            ]
        )
        .code,
        0
    );

    // A batch simulation of alice on that cluster, written the way the API writes one.
    let mut conn = db.conn().await;
    let alice = db::users::get(&mut conn, "alice", db::enums::AuthProvider::Local)
        .await
        .unwrap();
    let cluster = db::clusters::get(&mut conn, "prometheus").await.unwrap();
    let sim = db::simulations::create_with_tasks(
        &mut conn,
        &db::simulations::NewSimulation {
            user_id: alice.id,
            title: "proton 150 MeV".into(),
            platform: db::enums::Platform::Batch,
            input_type: db::enums::InputType::Files,
            sim_type: db::enums::SimType::Shieldhit,
            ntasks: 4,
            primaries: 10_001,
            cluster_id: Some(cluster.id),
            sbatch_options: vec!["--time=01:00:00".into()],
            max_attempts: 3,
        },
        None,
    )
    .await
    .unwrap();

    let r = admin(&db, &["list-simulations", "-v", "--user", "alice"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(&sim.job_id.to_string()), "{}", r.stdout);
    assert!(r.stdout.contains("0/4"), "{}", r.stdout);

    let r = admin(
        &db,
        &["--json", "list-tasks", "--simulation", &sim.id.to_string()],
    );
    let tasks: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let primaries: Vec<i64> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["requested_primaries"].as_i64().unwrap())
        .collect();
    assert_eq!(primaries, vec![2501, 2500, 2500, 2500]);

    // The cluster is in use, alice owns a simulation: both removals are refused.
    assert_eq!(admin(&db, &["remove-cluster", "prometheus"]).code, 1);
    let r = admin(&db, &["remove-user", "alice"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("owns 1 simulation"), "{}", r.stderr);

    assert_eq!(admin(&db, &["remove-user", "alice", "--cascade"]).code, 0);
    assert_eq!(admin(&db, &["remove-cluster", "prometheus"]).code, 0);
    let r = admin(&db, &["--json", "list-users"]);
    let users: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(users[0]["username"], "root");
}
