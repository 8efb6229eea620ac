//! Load on `Get`: the real server (`sim_api::serve`, in-process on 127.0.0.1:0, with a pool
//! of 16 connections as `sim-api`'s default, then of 64 like pgbench's clients) answers
//! authenticated `Get` for one simulation of 16 tasks from 64 concurrent client tasks spread
//! over 8 HTTP/2 connections, for 10 s (2 rounds of 5 s, each after a 1 s warm-up);
//! requests/s, p50 and p99. Baselines in the same run: `pgbench -S -c 64 -j 2` for as long
//! (scale 1, its own scratch database; 5 s at the start of each round), and the same client
//! loop on a no-op RPC (`grpc.health.v1.Health/Check`, no database) and on `WhoAmI` (the
//! bearer-token lookup alone). Also: statements per call (from `pg_stat_database`) and pool
//! waits (bb8 statistics). The gRPC loads run twice per pool size: with the server's
//! in-process caches as `sim-api` defaults them (token lookups 5 s, `Get` answers 1 s, both
//! emptied by database notifications), so that repeated `Get`s of one simulation are served
//! from memory; and with both caches off, so that every call reads the database. Target:
//! `Get` ≥ 50% of `pgbench -S` TPS with p99 ≤ 20 ms.
//!
//! Run: `cargo bench -p sim-api --bench get_load` (PostgreSQL as for the tests:
//! `TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`; `pgbench` and
//! `psql` on the PATH). Settings: `BENCH_SECS` (10), `BENCH_CONCURRENCY` (64),
//! `BENCH_CHANNELS` (8), `BENCH_POOL_SIZES` (`16,64`: the gRPC loads run once per pool
//! size), `BENCH_CACHES` (`1,0`: with the caches, without),
//! `BENCH_PGBENCH_SCALE` (1), `BENCH_ROUNDS` (2: every configuration runs `BENCH_SECS` /
//! rounds seconds per round, so that drifts of the machine's load hit them alike).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::testing::TestDb;
use proto::v1::auth_service_client::AuthServiceClient;
use proto::v1::simulation_service_client::SimulationServiceClient;
use proto::v1::{GetRequest, WhoAmIRequest};
use std::time::{Duration, Instant};
use support::{authed, env_or, limits, list, ms, quantile, PgBench, Server};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const WARMUP: Duration = Duration::from_secs(1);
/// A service the server reports as SERVING.
const HEALTH_SERVICE: &str = "sim.v1.SimulationService";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    /// `grpc.health.v1.Health/Check`: no authentication, no database.
    Noop,
    /// `sim.v1.AuthService/WhoAmI`: the bearer-token lookup only.
    WhoAmI,
    /// `sim.v1.SimulationService/Get` of a 16-task simulation.
    Get,
}

impl Rpc {
    fn name(self) -> &'static str {
        match self {
            Rpc::Noop => "no-op (Health/Check)",
            Rpc::WhoAmI => "WhoAmI (token lookup)",
            Rpc::Get => "Get (16 tasks)",
        }
    }
}

/// One RPC client per kind, on one channel.
struct Clients {
    health: HealthClient<Channel>,
    auth: AuthServiceClient<Channel>,
    sims: SimulationServiceClient<Channel>,
}

impl Clients {
    fn new(ch: Channel) -> Self {
        Self {
            health: HealthClient::new(ch.clone()),
            auth: AuthServiceClient::new(ch.clone()),
            sims: SimulationServiceClient::new(ch),
        }
    }

    async fn call(&mut self, rpc: Rpc, auth: &MetadataValue<Ascii>, job: &str) -> bool {
        match rpc {
            Rpc::Noop => self
                .health
                .check(HealthCheckRequest {
                    service: HEALTH_SERVICE.into(),
                })
                .await
                .is_ok(),
            Rpc::WhoAmI => self
                .auth
                .who_am_i(authed(WhoAmIRequest {}, auth))
                .await
                .is_ok(),
            Rpc::Get => self
                .sims
                .get(authed(
                    GetRequest {
                        job_id: job.to_string(),
                    },
                    auth,
                ))
                .await
                .is_ok(),
        }
    }
}

struct Load {
    /// Latencies of the successful calls started in the measured window, sorted.
    lat: Vec<Duration>,
    errors: u64,
    secs: f64,
    /// The server pool's statistics over the measured window: (checkouts, of which waited,
    /// total wait).
    pool: (u64, u64, Duration),
}

impl Load {
    fn merge(&mut self, other: Load) {
        self.lat.extend(other.lat);
        self.lat.sort();
        self.errors += other.errors;
        self.secs += other.secs;
        self.pool.0 += other.pool.0;
        self.pool.1 += other.pool.1;
        self.pool.2 += other.pool.2;
    }
    fn rate(&self) -> f64 {
        self.lat.len() as f64 / self.secs
    }
    fn p(&self, q: f64) -> f64 {
        ms(quantile(&self.lat, q))
    }
}

/// `concurrency` client tasks, task `i` on channel `i % channels.len()`, each calling
/// `rpc` back to back; calls started during the warm-up are not counted.
async fn load(
    rpc: Rpc,
    channels: &[Channel],
    concurrency: usize,
    auth: &MetadataValue<Ascii>,
    job: &str,
    secs: f64,
    pool: &db::Pool,
) -> Load {
    let from = Instant::now() + WARMUP;
    let end = from + Duration::from_secs_f64(secs);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..concurrency {
        let mut clients = Clients::new(channels[i % channels.len()].clone());
        let (auth, job) = (auth.clone(), job.to_string());
        set.spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                let ok = clients.call(rpc, &auth, &job).await;
                if t >= from {
                    if ok {
                        lat.push(t.elapsed());
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        });
    }
    tokio::time::sleep_until(from.into()).await;
    let before = pool.state().statistics;
    tokio::time::sleep_until(end.into()).await;
    let after = pool.state().statistics;
    let (mut lat, mut errors) = (Vec::new(), 0);
    while let Some(r) = set.join_next().await {
        let (l, e) = r.unwrap();
        lat.extend(l);
        errors += e;
    }
    lat.sort();
    Load {
        lat,
        errors,
        secs,
        pool: (
            (after.get_direct + after.get_waited) - (before.get_direct + before.get_waited),
            after.get_waited - before.get_waited,
            after.get_wait_time.saturating_sub(before.get_wait_time),
        ),
    }
}

/// Committed plus rolled-back transactions of database `name` so far.
async fn xacts(admin: &mut db::Conn, name: &str) -> i64 {
    let sql = format!(
        "SELECT (xact_commit + xact_rollback)::bigint AS n FROM pg_stat_database \
         WHERE datname = '{name}'"
    );
    support::bigint(admin, &sql).await
}

/// Transactions per call of `rpc`: outside explicit transactions each statement is one, so
/// this counts statements. A server with its own pool makes `n` sequential calls and stops
/// (its connections close, which flushes their statistics); a run with no calls is
/// subtracted.
async fn statements_per_call(
    db: &TestDb,
    rpc: Rpc,
    auth: &MetadataValue<Ascii>,
    job: &str,
    n: usize,
    caches: bool,
) -> f64 {
    let idle = xact_delta(db, rpc, auth, job, 0, caches).await;
    let busy = xact_delta(db, rpc, auth, job, n, caches).await;
    (busy - idle) as f64 / n as f64
}

/// Transactions in `db` while a fresh server starts, makes `calls` calls and stops.
async fn xact_delta(
    db: &TestDb,
    rpc: Rpc,
    auth: &MetadataValue<Ascii>,
    job: &str,
    calls: usize,
    caches: bool,
) -> i64 {
    let mut admin = db::connect(&db::testing::server_config()).await.unwrap();
    let before = xacts(&mut admin, db.name()).await;
    let server = Server::start_with(db, 2, false, limits(caches)).await;
    let mut clients = Clients::new(support::channels(server.addr, 1).await.remove(0));
    for _ in 0..calls {
        assert!(clients.call(rpc, auth, job).await);
    }
    drop(clients);
    server.stop().await;
    // Backends flush their counters when they exit; wait until the count settles.
    let mut last = -1;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = xacts(&mut admin, db.name()).await;
        if now == last {
            break;
        }
        last = now;
    }
    last - before
}

#[tokio::main]
async fn main() {
    let secs: f64 = env_or("BENCH_SECS", 10.0);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 64);
    let nchannels: usize = env_or("BENCH_CHANNELS", 8);
    let scale: u32 = env_or("BENCH_PGBENCH_SCALE", 1);
    let rounds: usize = env_or::<usize>("BENCH_ROUNDS", 2).max(1);
    let pool_sizes: Vec<u32> = list("BENCH_POOL_SIZES", "16,64");
    let cache_modes: Vec<bool> = list::<u8>("BENCH_CACHES", "1,0")
        .into_iter()
        .map(|v| v != 0)
        .collect();

    let db = TestDb::new().await;
    let setup = Server::start(&db, 4, false).await;
    let ch = support::channels(setup.addr, 1).await.remove(0);
    let auth = support::login(&db, ch.clone(), "bench").await;
    let job = support::submit(ch.clone(), &auth, "get load", 16, 160_000).await;
    let status = support::get(ch.clone(), &auth, &job).await;
    assert_eq!(status.tasks.len(), 16);
    drop(ch);
    setup.stop().await;

    let stmts_get = statements_per_call(&db, Rpc::Get, &auth, &job, 300, true).await;
    let stmts_who = statements_per_call(&db, Rpc::WhoAmI, &auth, &job, 300, true).await;
    let stmts_get_off = statements_per_call(&db, Rpc::Get, &auth, &job, 300, false).await;
    let stmts_who_off = statements_per_call(&db, Rpc::WhoAmI, &auth, &job, 300, false).await;

    // Every configuration in every round, so that slow drifts of the machine's load hit
    // them alike; pgbench runs at the start of each round.
    let pgbench = PgBench::new(scale);
    let slice = (secs / rounds as f64).round().max(1.0);
    let configs: Vec<(u32, bool)> = pool_sizes
        .iter()
        .flat_map(|&p| cache_modes.iter().map(move |&c| (p, c)))
        .collect();
    let mut acc: Vec<Vec<(Rpc, Load)>> = configs.iter().map(|_| Vec::new()).collect();
    let mut pg = Vec::new();
    for _ in 0..rounds {
        pg.push(pgbench.select_only(concurrency, slice as u64));
        for (i, &(pool_size, caches)) in configs.iter().enumerate() {
            let server = Server::start_with(&db, pool_size, false, limits(caches)).await;
            let channels = support::channels(server.addr, nchannels).await;
            for (k, rpc) in [Rpc::Noop, Rpc::WhoAmI, Rpc::Get].into_iter().enumerate() {
                let l = load(
                    rpc,
                    &channels,
                    concurrency,
                    &auth,
                    &job,
                    slice,
                    &server.pool,
                )
                .await;
                match acc[i].get_mut(k) {
                    Some((_, a)) => a.merge(l),
                    None => acc[i].push((rpc, l)),
                }
            }
            drop(channels);
            server.stop().await;
        }
    }
    drop(pgbench);
    let pg_tps = pg.iter().map(|p| p.0).sum::<f64>() / pg.len() as f64;
    let pg_lat = pg.iter().map(|p| p.1).sum::<f64>() / pg.len() as f64;

    println!(
        "Get load: {concurrency} concurrent client tasks over {nchannels} HTTP/2 connections, \
         {} s per kind in {rounds} rounds of {slice} s, each after a {} s warm-up; server in-process",
        slice * rounds as f64,
        WARMUP.as_secs(),
    );
    println!(
        "  pgbench -S -c {concurrency} -j 2 (scale {scale})   {pg_tps:>8.0} TPS   \
         latency avg {pg_lat:.2} ms   (baseline; rounds: {})",
        pg.iter()
            .map(|p| format!("{:.0}", p.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  statements per call (pg_stat_database): with caches Get {stmts_get:.2}, WhoAmI \
         {stmts_who:.2}; without Get {stmts_get_off:.2}, WhoAmI {stmts_who_off:.2}"
    );
    for (&(pool_size, caches), results) in configs.iter().zip(&acc) {
        println!(
            "  server pool {pool_size} connections, {}:",
            if caches {
                "caches on (sim-api's defaults)"
            } else {
                "caches off (every call reads the database)"
            }
        );
        println!(
            "    {:<24} {:>9} {:>8} {:>8} {:>8} {:>7} {:>13} {:>16}",
            "rpc",
            "req/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "errors",
            "checkouts/req",
            "waited (avg ms)"
        );
        for (rpc, l) in results {
            let (gets, waited, wait) = l.pool;
            let calls = l.lat.len() as u64 + l.errors;
            println!(
                "    {:<24} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>13.2} {:>8.1}% ({:.2})",
                rpc.name(),
                l.rate(),
                l.p(0.5),
                l.p(0.99),
                ms(*l.lat.last().unwrap()),
                l.errors,
                gets as f64 / calls as f64,
                if gets == 0 {
                    0.0
                } else {
                    100.0 * waited as f64 / gets as f64
                },
                if waited == 0 {
                    0.0
                } else {
                    ms(wait) / waited as f64
                },
            );
        }
        let (noop, who, get) = (&results[0].1, &results[1].1, &results[2].1);
        println!(
            "    Get / pgbench -S {:.2}x   Get / no-op {:.2}x   WhoAmI / no-op {:.2}x",
            get.rate() / pg_tps,
            get.rate() / noop.rate(),
            who.rate() / noop.rate()
        );
        println!(
            "    target Get >= 50% of pgbench -S TPS: {}; p99 <= 20 ms: {} ({:.2} ms)",
            if get.rate() >= 0.5 * pg_tps {
                "MET"
            } else {
                "NOT MET"
            },
            if get.p(0.99) <= 20.0 {
                "MET"
            } else {
                "NOT MET"
            },
            get.p(0.99)
        );
    }
}
