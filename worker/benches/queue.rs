//! Queue benchmarks against a real PostgreSQL, with real worker processes (`--handler noop`):
//! throughput of 20,000 tasks over 2 workers against `pgbench -N` (16 clients) measured in
//! the same run, and dispatch latency from Submit to task start on an idle system.
//! Run: `cargo bench -p worker --bench queue`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use db::enums::SimType;
use db::testing::TestDb;
use diesel::sql_types::{BigInt, Double};
use diesel::QueryableByName;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use std::process::Command;
use std::time::{Duration, Instant};

const TASKS: i64 = 20_000;
/// 50 tasks per simulation: within the API's default cap of 64 tasks.
const SIMS: i64 = 400;

/// A worker process (`--handler noop`), killed when dropped, also when the bench panics.
fn start_worker(db: &TestDb, id: &str, concurrency: &str) -> tests::Proc {
    tests::spawn_worker(
        Command::new(env!("CARGO_BIN_EXE_worker"))
            .args(["--database-url", db.config().url_with_password()])
            .args(["--worker-id", id, "--handler", "noop"])
            .args(["--concurrency", concurrency, "--poll", "1"])
            .env("RUST_LOG", "warn"),
    )
}

#[derive(QueryableByName)]
struct Secs {
    #[diesel(sql_type = Double)]
    secs: f64,
}

async fn count(conn: &mut db::Conn, sql: &str) -> i64 {
    tests::count(conn, sql).await.unwrap()
}

async fn user(conn: &mut db::Conn) -> i64 {
    db::testing::user(conn, "bench").await
}

fn new_sim(user_id: i64, ntasks: i32) -> db::simulations::NewSimulation {
    db::testing::new_simulation(user_id, SimType::Builtin, ntasks, i64::from(ntasks) * 100)
}

fn pgbench_tps(server: &db::DbConfig) -> f64 {
    let url = server.with_dbname("simbench_pgbench");
    let admin = server.url_with_password();
    let _ = Command::new("psql")
        .args([admin, "-qc", "DROP DATABASE IF EXISTS simbench_pgbench"])
        .status();
    assert!(Command::new("psql")
        .args([admin, "-qc", "CREATE DATABASE simbench_pgbench"])
        .status()
        .unwrap()
        .success());
    assert!(Command::new("pgbench")
        .args(["-q", "-i", "-s", "16", url.url_with_password()])
        .output()
        .unwrap()
        .status
        .success());
    let out = Command::new("pgbench")
        .args([
            "-N",
            "-c",
            "16",
            "-j",
            "2",
            "-T",
            "10",
            url.url_with_password(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let _ = Command::new("psql")
        .args([admin, "-qc", "DROP DATABASE IF EXISTS simbench_pgbench"])
        .status();
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot read pgbench output: {text}"))
}

async fn throughput() -> (f64, f64, f64) {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let uid = user(&mut conn).await;
    for _ in 0..SIMS {
        db::simulations::create_with_tasks(&mut conn, &new_sim(uid, (TASKS / SIMS) as i32), None)
            .await
            .unwrap();
    }
    // Not due yet: the workers start idle, then everything becomes due at once.
    conn.batch_execute("UPDATE tasks SET run_after = now() + interval '1 hour'")
        .await
        .unwrap();
    let a = start_worker(&db, "bench-a", "64");
    let b = start_worker(&db, "bench-b", "64");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    conn.batch_execute(&format!(
        "UPDATE tasks SET run_after = now(); NOTIFY {}",
        db::notify::TASKS_READY
    ))
    .await
    .unwrap();
    // The tasks became due when that transaction committed, just before this.
    let due_at = diesel::sql_query("SELECT extract(epoch FROM clock_timestamp())::float8 AS secs")
        .get_result::<Secs>(&mut conn)
        .await
        .unwrap()
        .secs;
    // Watch a small table, seldom: polling the 20,000 tasks every few milliseconds would
    // take CPU from the workers and PostgreSQL being measured. The interval itself comes
    // from the database's clock: from the moment the tasks became due (when the
    // UPDATE above committed) to the last completion (the transaction time of the last
    // completing transaction, which also completed its simulation).
    loop {
        let left = count(
            &mut conn,
            "SELECT count(*) AS n FROM simulations WHERE job_state <> 'COMPLETED'",
        )
        .await;
        if left == 0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "{left} simulations unfinished after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let secs = diesel::sql_query(
        "SELECT extract(epoch FROM greatest((SELECT max(end_time) FROM tasks),
                                            (SELECT max(end_time) FROM simulations)))::float8
                - $1 AS secs",
    )
    .bind::<Double, _>(due_at)
    .get_result::<Secs>(&mut conn)
    .await
    .unwrap()
    .secs;
    assert!(
        secs > 0.0 && secs <= wall,
        "{secs} s by the database, {wall} s by the clock"
    );
    let sims_done = count(
        &mut conn,
        "SELECT count(*) AS n FROM simulations WHERE job_state = 'COMPLETED'",
    )
    .await;
    let twice = count(
        &mut conn,
        "SELECT count(*) AS n FROM tasks WHERE attempts <> 1",
    )
    .await;
    assert_eq!((sims_done, twice), (SIMS, 0));
    drop((a, b));
    (TASKS as f64 / secs, secs, wall)
}

async fn dispatch_latency() -> Vec<f64> {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let uid = user(&mut conn).await;
    let w = start_worker(&db, "bench-idle", "2");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ms = Vec::new();
    for _ in 0..300 {
        // Submit as Submit does (simulation, task and NOTIFY in one transaction), noting the
        // server's clock just before COMMIT.
        #[derive(QueryableByName)]
        struct Sub {
            #[diesel(sql_type = BigInt)]
            id: i64,
        }
        conn.batch_execute("BEGIN").await.unwrap();
        let sim: Vec<Sub> = diesel::sql_query(
            "WITH s AS (INSERT INTO simulations (user_id, platform, input_type, sim_type, ntasks, primaries)
                        VALUES ($1, 'direct', 'editor', 'builtin', 1, 100) RETURNING id),
                  t AS (INSERT INTO tasks (simulation_id, task_index, requested_primaries)
                        SELECT id, 0, 100 FROM s)
             SELECT id FROM s",
        )
        .bind::<BigInt, _>(uid)
        .load(&mut conn)
        .await
        .unwrap();
        let sim = sim[0].id;
        conn.batch_execute(&format!(
            "NOTIFY {}; CREATE TEMP TABLE IF NOT EXISTS commit_at (sim bigint, at timestamptz);
             INSERT INTO commit_at VALUES ({sim}, clock_timestamp()); COMMIT",
            db::notify::TASKS_READY
        ))
        .await
        .unwrap();
        #[derive(QueryableByName)]
        struct L {
            #[diesel(sql_type = diesel::sql_types::Nullable<Double>)]
            ms: Option<f64>,
        }
        let t = Instant::now();
        loop {
            let r: Vec<L> = diesel::sql_query(
                "SELECT extract(epoch FROM t.start_time - c.at)::float8 * 1000 AS ms
                 FROM tasks t JOIN commit_at c ON c.sim = t.simulation_id WHERE t.simulation_id = $1",
            )
            .bind::<BigInt, _>(sim)
            .load(&mut conn)
            .await
            .unwrap();
            if let Some(v) = r[0].ms {
                ms.push(v);
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Idle between submissions.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(w);
    ms.sort_by(f64::total_cmp);
    ms
}

#[tokio::main]
async fn main() {
    let tps = pgbench_tps(&db::testing::server_config());
    let (rate, secs, wall) = throughput().await;
    println!("Queue throughput: {TASKS} no-op tasks in {SIMS} simulations, 2 worker processes (concurrency 64 each)");
    println!(
        "  worker queue        {rate:>9.0} tasks/s  ({secs:.2} s by the database's clock; \
         the poller saw the end after {wall:.2} s)"
    );
    println!("  pgbench -N -c 16    {tps:>9.0} TPS (baseline, same run)");
    println!(
        "  ratio               {:>9.2}x   target >= 2x: {}",
        rate / tps,
        if rate >= 2.0 * tps { "MET" } else { "NOT MET" }
    );
    let ms = dispatch_latency().await;
    let p = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "Dispatch latency, Submit transaction start to task start, idle worker, {} runs:",
        ms.len()
    );
    println!(
        "  p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        p(0.5),
        p(0.9),
        p(0.99),
        ms[ms.len() - 1]
    );
    println!(
        "  targets p50 <= 2 ms: {}, p99 <= 5 ms: {}",
        if p(0.5) <= 2.0 { "MET" } else { "NOT MET" },
        if p(0.99) <= 5.0 { "MET" } else { "NOT MET" }
    );
}
