//! Submit → first element RUNNING on the local cluster, against `sbatch` of a script that
//! only sleeps → RUNNING, in the same run (SLURM's own scheduling latency is the floor).
//! Every measurement starts on an idle node (no job left in `squeue`), since SLURM delays a
//! start by seconds while a cancelled job's node is cleaned up; run it on a SLURM no one
//! else uses.
//!
//! Needs a single-node SLURM (`scripts/slurm-single-node start`), PostgreSQL at
//! `TEST_DATABASE_URL`, and the binaries built (`cargo build -p worker -p sim-api -p admin-cli
//! --bins`); `SIM_BIN_DIR` names their folder (default: `target/debug` beside this bench's
//! build, via `tests::bin_path`).
//!
//! ```text
//! SIM_BIN_DIR=$CARGO_TARGET_DIR/debug cargo bench -p tests --bench batch_submit
//! ```
//! `BENCH_ROUNDS` (default 8) rounds of each, alternating; `BENCH_POLL` (default 1s) is the
//! batch component's `--poll`. Medians are printed, and their ratio.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use db::testing::TestDb;
use proto::v1 as pb;
use std::process::Command;
use std::time::{Duration, Instant};

fn squeue_state(id: &str) -> String {
    let out = Command::new("squeue")
        .args(["-h", "-j", id, "-o", "%T"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `sbatch` of a sleeping script, until `squeue` shows it running.
fn bare_sbatch(dir: &std::path::Path) -> Duration {
    let script = dir.join("sleep.sh");
    std::fs::write(&script, "#!/bin/sh\nsleep 30\n").unwrap();
    let t0 = Instant::now();
    let out = Command::new("sbatch")
        .args(["--parsable", "--job-name=bench-bare", "--output=/dev/null"])
        .arg(format!("--chdir={}", dir.display()))
        .arg(&script)
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    while squeue_state(&id) != "RUNNING" {
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = t0.elapsed();
    Command::new("scancel").arg(&id).status().unwrap();
    t
}

async fn task_running(db: &TestDb, job: &str) -> bool {
    let mut c = db.conn().await;
    let sql = format!(
        "SELECT count(*) AS n FROM tasks t JOIN simulations s ON s.id = t.simulation_id \
         WHERE s.job_id = '{job}' AND t.task_state = 'RUNNING'"
    );
    tests::count(&mut c, &sql).await.unwrap() > 0
}

/// Waits until SLURM has no job left (a cancelled job's node cleanup delays the next start
/// by seconds), then a little more, so that every measurement starts from an idle node.
fn quiesce() {
    loop {
        let out = Command::new("squeue")
            .args(["-h", "-o", "%i"])
            .output()
            .unwrap();
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
}

/// Waits for one of the simulation's tasks to run; panics with the component's log after 60 s.
async fn wait_running(db: &TestDb, job: &str, dir: &std::path::Path) {
    let end = Instant::now() + Duration::from_secs(60);
    while !task_running(db, job).await {
        if Instant::now() > end {
            let log = std::fs::read_to_string(dir.join("batch.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "{job} never ran; worker batch's log ends:\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let poll = std::env::var("BENCH_POLL").unwrap_or_else(|_| "1s".into());
    let db = TestDb::new().await;
    let url = db.config().url_with_password().to_owned();
    let dir = std::path::PathBuf::from(format!("/var/tmp/sim-batch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let worker = tests::bin_path("worker").display().to_string();
    let ok = tests::command("admin-cli")
        .args(["--database-url", &url, "add-cluster", "bench", "--work-dir"])
        .arg(&dir)
        .args(["--worker-path", &worker])
        .status()
        .unwrap();
    assert!(ok.success());
    // A second cluster whose elements only sleep, for the cost of a poll of 100 active elements
    // (the elements' work would otherwise load the two cores the poll runs on).
    let sleeper = dir.join("sleep-worker.sh");
    std::fs::write(&sleeper, "#!/bin/sh\nexec sleep 600\n").unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&sleeper)
        .status()
        .unwrap();
    let ok = tests::command("admin-cli")
        .args([
            "--database-url",
            &url,
            "add-cluster",
            "bench-sleep",
            "--work-dir",
        ])
        .arg(&dir)
        .arg("--worker-path")
        .arg(&sleeper)
        .status()
        .unwrap();
    assert!(ok.success());
    tests::add_user(&url, "bench", "pw-bench");
    let (_api, line) = tests::start(
        "sim-api",
        &url,
        &["--listen", "127.0.0.1:0", "--max-ntasks", "100"],
    )
    .unwrap();
    let addr = line
        .strip_prefix("listening on ")
        .expect("sim-api's address")
        .to_owned();
    let mut batch = tests::command("worker");
    batch
        .args([
            "batch",
            "--database-url",
            &url,
            "--poll",
            &poll,
            "--cluster",
            "bench",
            "--cluster",
            "bench-sleep",
        ])
        .env(
            "RUST_LOG",
            std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn,worker::batch=debug".into()),
        )
        .stderr(std::fs::File::create(dir.join("batch.log")).unwrap());
    let (_batch, line) = tests::spawn(&mut batch).unwrap();
    assert!(line.contains("ready"), "{line}");
    let (mut sims, token) = tests::login(&addr, "bench", "pw-bench").await.unwrap();
    let submit = |n: i64| pb::SubmitRequest {
        title: format!("bench {n}"),
        sim_type: pb::SimType::Builtin as i32,
        input: Some(pb::submit_request::Input::EditorJson(
            serde_json::json!({"beam": {"energy_mev": 150.0}, "seed": n}).to_string(),
        )),
        ntasks: 1,
        primaries: 1_000_000_000,
        platform: Some(pb::submit_request::Platform::Batch(pb::BatchPlatform {
            cluster: "bench".into(),
            sbatch_options: vec![],
        })),
    };
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for round in 0..=rounds {
        quiesce();
        let b = bare_sbatch(&dir);
        quiesce();
        let t0 = Instant::now();
        let job = tests::submit(&mut sims, &token, submit(round as i64))
            .await
            .unwrap();
        wait_running(&db, &job, &dir).await;
        let o = t0.elapsed();
        let cancel = pb::CancelRequest { job_id: job };
        sims.cancel(tests::authed(cancel, &token)).await.unwrap();
        if round > 0 {
            // Round 0 warms up.
            bare.push(b);
            ours.push(o);
        }
    }
    let (o, b) = (median(ours), median(bare));
    println!("batch_submit: {rounds} rounds, worker batch --poll {poll}");
    println!("  sbatch of a sleeping script -> RUNNING (squeue): median {b:?}");
    println!("  Submit -> first element's task RUNNING:           median {o:?}");
    println!("  ratio: {:.2}x", o.as_secs_f64() / b.as_secs_f64());

    // One poll of a simulation of 100 active elements, against one bare squeue of them.
    quiesce();
    let mut r = submit(1_000);
    r.ntasks = 100;
    r.platform = Some(pb::submit_request::Platform::Batch(pb::BatchPlatform {
        cluster: "bench-sleep".into(),
        sbatch_options: vec![],
    }));
    let job = tests::submit(&mut sims, &token, r).await.unwrap();
    wait_running(&db, &job, &dir).await;
    let log = dir.join("batch.log");
    let polls = |text: &str| -> Vec<Duration> {
        text.lines()
            .filter(|l| l.contains(" poll ") && l.contains("staged=0 active=1"))
            .filter_map(|l| l.split("elapsed=").nth(1))
            .filter_map(|e| {
                let e = e.trim();
                let (n, unit) = e.split_at(e.find(|c: char| c.is_ascii_alphabetic())?);
                let n: f64 = n.parse().ok()?;
                Some(Duration::from_secs_f64(match unit {
                    "ms" => n / 1e3,
                    "s" => n,
                    "µs" => n / 1e6,
                    _ => return None,
                }))
            })
            .collect()
    };
    let before = polls(&std::fs::read_to_string(&log).unwrap_or_default()).len();
    let mut bare_polls = Vec::new();
    let array = {
        let out = Command::new("squeue")
            .args(["-h", "-o", "%F", &format!("--name=sim-{job}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    while polls(&std::fs::read_to_string(&log).unwrap_or_default()).len() < before + 15 {
        let t0 = Instant::now();
        Command::new("squeue")
            .args([
                "-h",
                "--array",
                "--states=all",
                &format!("--jobs={array}"),
                "--format=%F|%K|%T|%r",
            ])
            .output()
            .unwrap();
        bare_polls.push(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let ticks: Vec<Duration> = polls(&std::fs::read_to_string(&log).unwrap_or_default())
        .into_iter()
        .skip(before)
        .collect();
    let elements = tests::count(
        &mut db.conn().await,
        &format!(
            "SELECT count(*) AS n FROM tasks t JOIN simulations s ON s.id = t.simulation_id \
             WHERE s.job_id = '{job}' AND t.task_state = 'RUNNING'"
        ),
    )
    .await
    .unwrap();
    let (t, q) = (median(ticks.clone()), median(bare_polls));
    println!(
        "batch poll: one simulation of 100 elements ({elements} running), {} polls",
        ticks.len()
    );
    println!("  bare squeue of the array:                         median {q:?}");
    println!("  one poll of worker batch (hold, squeue, files, db): median {t:?}");
    println!("  ratio: {:.2}x", t.as_secs_f64() / q.as_secs_f64());
    sims.cancel(tests::authed(pb::CancelRequest { job_id: job }, &token))
        .await
        .unwrap();
    // The last simulation's jobs, if the component had no time to cancel them.
    let out = Command::new("squeue")
        .args(["-h", "-o", "%A|%Z"])
        .output()
        .unwrap();
    let root = dir.display().to_string();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((id, d)) = line.split_once('|') {
            if d.starts_with(&root) {
                Command::new("scancel").arg(id).status().unwrap();
            }
        }
    }
    if std::env::var_os("BENCH_LOG").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
