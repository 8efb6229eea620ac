//! Time to recover from a `kill -9` of a worker: from the kill until every task it held is
//! released (its lease expired and a reaper requeued it: the drill's workers take 4 s leases
//! and reap every 2 s), and until each runs again on another worker (or has ended): after
//! the retry backoff (2 s for a first attempt), behind whatever the queue holds.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(diesel::QueryableByName)]
struct Counts {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    held: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    waiting: i64,
}

/// The recoveries measured so far (each is a kill whose worker held tasks): (released,
/// running again), from the kill.
pub type Recoveries = Arc<Mutex<Vec<(Duration, Duration)>>>;

/// The ids of the tasks `worker_id` holds (RUNNING under its lease); empty when it holds none
/// or the database cannot say now (a fault of the drill's own).
pub async fn held_tasks(cfg: &db::DbConfig, worker_id: &str) -> Vec<i64> {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let Ok(mut conn) = db::connect(cfg).await else {
        return Vec::new();
    };
    diesel::sql_query("SELECT id FROM tasks WHERE task_state = 'RUNNING' AND lease_owner = $1")
        .bind::<diesel::sql_types::Text, _>(worker_id)
        .load::<Id>(&mut conn)
        .await
        .map(|rows| rows.into_iter().map(|r| r.id).collect())
        .unwrap_or_default()
}

/// Watches, in the background, until none of `tasks` is still RUNNING under the killed
/// `worker_id` (released), then until none is waiting to run again (PENDING), and records
/// both times since `killed` in `into`. Gives up silently after 120 s (the drain check then
/// reports what is stuck).
pub fn watch(
    cfg: db::DbConfig,
    worker_id: String,
    tasks: Vec<i64>,
    killed: Instant,
    into: Recoveries,
) {
    tokio::spawn(async move {
        use diesel_async::RunQueryDsl;
        let mut released = None;
        while killed.elapsed() < Duration::from_secs(120) {
            // A fresh connection each time: the drill terminates every connection now and
            // then, and restarts the server.
            if let Ok(mut conn) = db::connect(&cfg).await {
                let counts = diesel::sql_query(
                    "SELECT count(*) FILTER (WHERE task_state = 'RUNNING' AND lease_owner = $2)
                              AS held,
                            count(*) FILTER (WHERE task_state = 'PENDING') AS waiting
                     FROM tasks WHERE id = ANY($1)",
                )
                .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(&tasks)
                .bind::<diesel::sql_types::Text, _>(&worker_id)
                .get_result::<Counts>(&mut conn)
                .await;
                if let Ok(c) = counts {
                    if c.held == 0 && released.is_none() {
                        released = Some(killed.elapsed());
                    }
                    if let (Some(r), 0, 0) = (released, c.held, c.waiting) {
                        if let Ok(mut v) = into.lock() {
                            v.push((r, killed.elapsed()));
                        }
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}
