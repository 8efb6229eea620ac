//! The worker survives a database restart while idle: its listener reconnects, its pool
//! replaces dead connections, and new work is picked up. Uses a private PostgreSQL server
//! (the shared one cannot be restarted under other tests), started from the system's server
//! binaries like scripts/test does.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use db::enums::{AuthProvider, InputType, JobState, Platform, Role, SimType};
use db::private_pg::PrivatePg;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

async fn submit_and_wait(config: &db::DbConfig, user_id: i64, limit: Duration) -> Duration {
    let mut conn = db::connect(config).await.unwrap();
    let sim = db::simulations::create_with_tasks(
        &mut conn,
        &db::simulations::NewSimulation {
            user_id,
            title: String::new(),
            platform: Platform::Direct,
            input_type: InputType::Editor,
            sim_type: SimType::Builtin,
            ntasks: 2,
            primaries: 200,
            cluster_id: None,
            sbatch_options: vec![],
            max_attempts: 3,
        },
        None,
    )
    .await
    .unwrap();
    let t = Instant::now();
    while db::simulations::get(&mut conn, sim.id)
        .await
        .unwrap()
        .job_state
        != JobState::Completed
    {
        assert!(
            t.elapsed() < limit,
            "simulation not completed after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.elapsed()
}

#[tokio::test]
async fn the_worker_reconnects_after_a_database_restart_and_takes_new_work() {
    let pg = PrivatePg::start();
    let config = pg.config();
    db::migrate::run_pending(&config).await.unwrap();
    let mut conn = db::connect(&config).await.unwrap();
    let user = db::users::create(
        &mut conn,
        &db::models::NewUser {
            username: "u",
            auth_provider: AuthProvider::Local,
            password_hash: None,
            role: Role::User,
        },
    )
    .await
    .unwrap();
    drop(conn);

    // Polling is slowed to a minute: only notifications (and the reconnect) can wake it.
    let mut worker = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args([
            "--database-url",
            config.url_with_password(),
            "--handler",
            "sleep:20",
            "--poll-secs",
            "60",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(worker.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("ready"));

    submit_and_wait(&config, user.id, Duration::from_secs(10)).await;

    pg.ctl("stop");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker must survive the outage"
    );
    pg.ctl("start");

    let took = submit_and_wait(&config, user.id, Duration::from_secs(20)).await;
    eprintln!("new work after the restart completed in {took:?}");
    let _ = worker.kill();
    let _ = worker.wait();
}
