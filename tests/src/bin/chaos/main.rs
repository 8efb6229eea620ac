//! `chaos`: a fault drill on the real binaries (see `scripts/chaos`). It starts a private
//! PostgreSQL, `sim-api` and several `worker`s, keeps submitting builtin simulations through
//! gRPC, and meanwhile injects faults in turn:
//!
//! - `kill -9` of a random worker (a new one takes its place);
//! - `pg_terminate_backend` of every client connection;
//! - a PostgreSQL restart (fast shutdown, start);
//! - a worker whose work root is a full disk, all along (when `CONVERTMC` names pymchelper's
//!   converter: then every other simulation runs the SHIELD-HIT12A stand-in, which uses the
//!   disk; the full-disk worker must hand its tasks on and complete none).
//!
//! Then it stops submitting, waits for the queue to drain, and checks that no accepted
//! submission was lost, no task was counted twice (each simulation's tasks add up to its
//! primaries, exactly), nothing is stuck, and every simulation completed with readable
//! results. It prints the figures (submissions, faults, time to recover from each restart
//! and each kill, time to drain) and exits 1 when a check fails.
//!
//! `chaos [--secs N] [--workers N] [--every-ms N] [--primaries N] [--submit-ms N]
//! [--builtin-only]` (no SHIELD-HIT12A load, no full-disk worker; defaults
//! 60 s, 3 workers, a fault every 3000 ms, 30,000 primaries per 3-task builtin simulation, a
//! Submit every 150 ms). Loopback only.

mod checks;
mod procs;
mod recovery;

use db::private_pg::PrivatePg;
use procs::{start, start_sick_worker, start_worker, External};
use proto::v1 as pb;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tests::{command, Proc};

struct Args {
    secs: u64,
    workers: usize,
    every: Duration,
    primaries: i64,
    submit_every: Duration,
    external: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        secs: 60,
        workers: 3,
        every: Duration::from_millis(3000),
        primaries: 30_000,
        submit_every: Duration::from_millis(150),
        external: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--secs" => a.secs = value()?.parse()?,
            "--workers" => a.workers = value()?.parse()?,
            "--every-ms" => a.every = Duration::from_millis(value()?.parse()?),
            "--primaries" => a.primaries = value()?.parse()?,
            "--submit-ms" => a.submit_every = Duration::from_millis(value()?.parse()?),
            "--builtin-only" => a.external = false,
            "-h" | "--help" => {
                println!("chaos [--secs N] [--workers N] [--every-ms N] [--primaries N] [--submit-ms N] [--builtin-only]: a fault drill on the real binaries");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other} (see --help)"),
        }
    }
    anyhow::ensure!(
        a.workers >= 1 && a.secs >= 1,
        "need at least one worker and one second"
    );
    Ok(a)
}

/// What the submitter saw.
#[derive(Default)]
struct Submitted {
    accepted: Vec<String>,
    refused: usize,
    last_ok: Option<Instant>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let pg = PrivatePg::start();
    let admin = db::connect(&pg.config()).await?;
    drop(admin);
    let cfg = pg.config_for("chaos");
    {
        let mut c = db::connect(&pg.config()).await?;
        use diesel_async::SimpleAsyncConnection;
        c.batch_execute("CREATE DATABASE chaos").await?;
    }
    let url = cfg.url_with_password().to_string();
    let out = command("admin-cli")
        .args(["--database-url", &url, "migrate", "run"])
        .output()?;
    anyhow::ensure!(out.status.success(), "migrate failed: {out:?}");
    let out = command("admin-cli")
        .args([
            "--database-url",
            &url,
            "add-user",
            "chaos",
            "--password",
            "chaos-pw",
        ])
        .output()?;
    anyhow::ensure!(out.status.success(), "add-user failed: {out:?}");
    let (_api, line) = start("sim-api", &url, &["--listen", "127.0.0.1:0"])?;
    let addr = line
        .strip_prefix("listening on ")
        .ok_or_else(|| anyhow::anyhow!("sim-api did not start: {line}"))?
        .to_string();
    let ext = if args.external {
        External::find()
    } else {
        None
    };
    let mut workers: Vec<(Proc, String)> = (0..args.workers)
        .map(|n| start_worker(&url, n, ext.as_ref()))
        .collect::<anyhow::Result<_>>()?;
    // The fourth fault is there from the start: a worker on a full disk.
    let sick = ext.as_ref().and_then(|e| start_sick_worker(&url, e));
    let mut next_worker = args.workers;

    let (sims_client, token) = tests::login(&addr, "chaos", "chaos-pw")
        .await
        .map_err(|e| anyhow::anyhow!("login failed: {e}"))?;
    let submitted = Arc::new(Mutex::new(Submitted::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let submitter = {
        let (submitted, stop, token) = (submitted.clone(), stop.clone(), token.clone());
        let primaries = args.primaries;
        let files = ext.as_ref().map(|e| e.input.clone());
        let submit_every = args.submit_every;
        let mut sims = sims_client.clone();
        tokio::spawn(async move {
            let editor =
                r#"{"beam": {"energy_mev": 70.0}, "scoring": {"z_bins": 20, "r_bins": 2}}"#;
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                // Every other one runs the SHIELD-HIT12A stand-in, when there is one.
                let (sim_type, input) = match &files {
                    Some(f) if n.is_multiple_of(2) => (
                        pb::SimType::Shieldhit,
                        pb::submit_request::Input::Files(pb::InputFiles { files: f.clone() }),
                    ),
                    _ => (
                        pb::SimType::Builtin,
                        pb::submit_request::Input::EditorJson(editor.into()),
                    ),
                };
                let mut req = tonic::Request::new(pb::SubmitRequest {
                    title: "chaos".into(),
                    sim_type: sim_type as i32,
                    input: Some(input),
                    ntasks: 3,
                    primaries,
                    platform: None,
                });
                if let Ok(v) = format!("Bearer {token}").parse() {
                    req.metadata_mut().insert("authorization", v);
                }
                req.set_timeout(Duration::from_secs(5));
                let r = sims.submit(req).await;
                if let Ok(mut s) = submitted.lock() {
                    match r {
                        Ok(resp) => {
                            s.accepted.push(resp.into_inner().job_id);
                            s.last_ok = Some(Instant::now());
                        }
                        Err(_) => s.refused += 1,
                    }
                }
                tokio::time::sleep(submit_every).await;
            }
        })
    };

    // The faults, in turn.
    let t0 = Instant::now();
    let mut faults = [0usize; 3];
    let mut recoveries: Vec<Duration> = Vec::new();
    let kill_recoveries = recovery::Recoveries::default();
    // The baseline: how long `pg_ctl restart` itself took (stop, start, ready).
    let mut restarts: Vec<Duration> = Vec::new();
    let mut kind = 0usize;
    let mut pick = t0.elapsed().as_nanos() as usize;
    while t0.elapsed() < Duration::from_secs(args.secs) {
        tokio::time::sleep(args.every).await;
        match kind % 3 {
            0 => {
                pick = pick
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let victim = (pick >> 33) % workers.len();
                let (mut dead, dead_id) = workers.swap_remove(victim);
                let held = recovery::held_tasks(&cfg, &dead_id).await;
                let killed = Instant::now();
                let _ = std::process::Command::new("kill")
                    .args(["-9", &dead.0.id().to_string()])
                    .status();
                let _ = dead.0.wait();
                if !held.is_empty() {
                    let into = kill_recoveries.clone();
                    recovery::watch(cfg.clone(), dead_id, held, killed, into);
                }
                workers.push(start_worker(&url, next_worker, ext.as_ref())?);
                next_worker += 1;
            }
            1 => {
                let mut c = db::connect(&pg.config()).await?;
                use diesel_async::RunQueryDsl;
                diesel::sql_query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = 'chaos' AND pid <> pg_backend_pid()",
                )
                .execute(&mut c)
                .await?;
            }
            _ => {
                let before = Instant::now();
                pg.ctl("restart");
                restarts.push(before.elapsed());
                // Time to recover: until a submission is accepted again.
                loop {
                    let ok = submitted.lock().ok().and_then(|s| s.last_ok);
                    if ok.is_some_and(|t| t > before) {
                        recoveries.push(before.elapsed());
                        break;
                    }
                    anyhow::ensure!(
                        before.elapsed() < Duration::from_secs(60),
                        "no Submit succeeded within 60 s of a restart"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        faults[kind % 3] += 1;
        kind += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    submitter.await?;

    // Every accepted simulation must end; then the checks.
    let accepted: Vec<String> = submitted
        .lock()
        .map(|s| s.accepted.clone())
        .unwrap_or_default();
    let refused = submitted.lock().map(|s| s.refused).unwrap_or_default();
    let mut conn = db::connect(&cfg).await?;
    let mut problems: Vec<String> = Vec::new();
    let drained = checks::drain(&mut conn, &mut problems).await?;
    let completed = checks::check_simulations(&mut conn, &accepted, &mut problems).await?;
    let total = tests::count(&mut conn, "SELECT count(*) AS n FROM simulations").await?;
    if total as usize != accepted.len() {
        // More rows than accepted answers: a Submit whose answer was lost in a fault.
        println!(
            "note: {} simulations stored, {} accepted answers received",
            total,
            accepted.len()
        );
    }
    let sick_completed = tests::count(
        &mut conn,
        "SELECT count(*) AS n FROM tasks t JOIN simulations s ON s.id = t.simulation_id
         WHERE t.task_state = 'COMPLETED' AND t.lease_owner = 'chaos-sick'
           AND s.sim_type = 'shieldhit'",
    )
    .await?;
    let handed_on = tests::count(
        &mut conn,
        "SELECT count(*) AS n FROM tasks WHERE last_error LIKE 'machine fault on worker chaos-sick%'",
    )
    .await?;
    if sick.is_some() && sick_completed > 0 {
        problems.push(format!(
            "the full-disk worker completed {sick_completed} tasks"
        ));
    }
    let retried = tests::count(
        &mut conn,
        "SELECT count(*) AS n FROM tasks WHERE attempts > 1",
    )
    .await?;
    let max_attempts = tests::count(
        &mut conn,
        "SELECT coalesce(max(attempts), 0)::bigint AS n FROM tasks",
    )
    .await?;

    println!(
        "chaos: {} s, {} workers, a fault every {:?}",
        args.secs, args.workers, args.every
    );
    println!(
        "  submissions accepted {}, refused during faults {refused}",
        accepted.len()
    );
    println!(
        "  faults: {} worker kill -9, {} backend terminations, {} PostgreSQL restarts",
        faults[0], faults[1], faults[2]
    );
    let show = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "  PostgreSQL restarts: pg_ctl restart took [{}] s; the next accepted Submit came [{}] s after it began",
        show(&restarts),
        show(&recoveries)
    );
    let kills = kill_recoveries
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    let (released, rerun): (Vec<Duration>, Vec<Duration>) = kills.into_iter().unzip();
    println!(
        "  worker kill -9 (lease 4 s): a killed worker's tasks were released [{}] s and ran again [{}] s after the kill",
        show(&released),
        show(&rerun)
    );
    println!(
        "  queue drained {:.2} s after the load stopped; {retried} tasks ran again after a fault, at most {max_attempts} attempts",
        drained.as_secs_f64()
    );
    println!(
        "  completed with whole results: {completed} of {}",
        accepted.len()
    );
    match &sick {
        Some(_) => println!(
            "  full-disk worker: {handed_on} tasks handed on without using an attempt, {sick_completed} SHIELD-HIT12A tasks completed by it"
        ),
        None => println!("  full-disk worker: left out"),
    }
    drop(sick);
    if let Some(e) = &ext {
        let _ = std::fs::remove_dir_all(&e.work);
    }
    if problems.is_empty() {
        println!("chaos: PASS (no accepted submission lost, none counted twice, nothing stuck)");
        Ok(())
    } else {
        for p in problems.iter().take(20) {
            println!("  problem: {p}");
        }
        println!("chaos: FAIL ({} problems)", problems.len());
        std::process::exit(1);
    }
}
