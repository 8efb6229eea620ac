//! The worker survives a database restart while idle: its listener reconnects, its pool
//! replaces dead connections, and new work is picked up. Uses a private PostgreSQL server
//! (the shared one cannot be restarted under other tests), started from the system's server
//! binaries like scripts/test does.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::enums::{JobState, SimType};
use db::private_pg::PrivatePg;
use db::testing;
use std::time::{Duration, Instant};

async fn submit_and_wait(config: &db::DbConfig, user_id: i64, limit: Duration) -> Duration {
    let mut conn = db::connect(config).await.unwrap();
    let new = testing::new_simulation(user_id, SimType::Builtin, 2, 200);
    let sim = testing::submit(&mut conn, new, None).await;
    let t = Instant::now();
    support::wait_state(&mut conn, sim, JobState::Completed, limit).await;
    t.elapsed()
}

#[tokio::test]
async fn the_worker_reconnects_after_a_database_restart_and_takes_new_work() {
    let pg = PrivatePg::start();
    let config = pg.config();
    db::migrate::run_pending(&config).await.unwrap();
    let mut conn = db::connect(&config).await.unwrap();
    let user = testing::user(&mut conn, "u").await;
    drop(conn);

    // Polling is slowed to a minute: only notifications (and the reconnect) can wake it.
    let mut worker =
        tests::spawn_worker(support::worker_command(config.url_with_password()).args([
            "--handler",
            "sleep:20",
            "--poll",
            "60",
        ]));

    submit_and_wait(&config, user, Duration::from_secs(10)).await;

    pg.ctl("stop");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        worker.0.try_wait().unwrap().is_none(),
        "the worker must survive the outage"
    );
    pg.ctl("start");

    let took = submit_and_wait(&config, user, Duration::from_secs(20)).await;
    eprintln!("new work after the restart completed in {took:?}");
}
