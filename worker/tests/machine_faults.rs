//! Machine faults are not input faults (issue 10, item 2), through real worker processes, the
//! stand-in `shieldhit` and the real `convertmc`: a worker whose work root is a full
//! filesystem hands every task on without using an attempt, stops claiming and says it is
//! unhealthy, and a healthy worker completes all 8 tasks; a configured program missing on a
//! worker is a machine fault too; a program failing on its input fails the task at once, with
//! its last output lines; and the queue's rule for machine faults (free hand-ons up to a
//! limit, then attempts).
//!
//! The full filesystem is a 64 KiB tmpfs, filled, mounted in a mount namespace of the sick
//! worker's own (`unshare --mount`, or `unshare --user --map-root-user --mount` without root):
//! nobody else sees it, and it goes when the worker is killed, whatever the test does. Where
//! neither is permitted, that test says so loudly on stderr and skips.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::enums::{JobState, SimType, TaskState};
use db::inputs::SimulationInput;
use db::testing::TestDb;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel_async::RunQueryDsl;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{convertmc, standin, wait_state};

/// Machine faults in a row that make a worker unhealthy (`runner::health::FAULTS_TO_UNHEALTHY`).
const FAULTS_TO_UNHEALTHY: i32 = 3;

/// The captured SHIELD-HIT12A run's input, with the stand-in's `mode`.
fn captured(mode: &str) -> SimulationInput {
    SimulationInput::Files(support::captured_shieldhit(
        serde_json::json!({ "mode": mode }),
    ))
}

/// A fresh test database, a connection to it, and a scratch directory for test `name`,
/// removed when dropped (a failed test's too).
async fn with_db(name: &str) -> (TestDb, db::Conn, tempfile::TempDir) {
    let db = TestDb::new().await;
    let conn = db.conn().await;
    let dir = tempfile::Builder::new()
        .prefix(&format!("machine-faults-{name}-"))
        .tempdir()
        .unwrap();
    (db, conn, dir)
}

/// A real worker process, its log (stderr) in a file; killed when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
    /// Where its `/healthz` and `/metrics` are served (`--metrics-listen 127.0.0.1:0`).
    metrics: String,
}

impl Proc {
    /// Starts `worker --worker-id ID --work-root ROOT --shieldhit SHIELDHIT …`, through
    /// `wrapper` (a command that ends by running its arguments) when given. `Err` holds the
    /// log when the process ended before it was ready.
    fn start(
        db: &TestDb,
        id: &str,
        root: &Path,
        shieldhit: &Path,
        wrapper: &[&str],
    ) -> Result<Self, String> {
        let log = root.with_extension("log");
        let mut cmd = Command::new(
            wrapper
                .first()
                .copied()
                .unwrap_or(env!("CARGO_BIN_EXE_worker")),
        );
        if !wrapper.is_empty() {
            cmd.args(&wrapper[1..]).arg(env!("CARGO_BIN_EXE_worker"));
        }
        cmd.args(["--database-url", db.config().url_with_password()])
            .args(["--worker-id", id, "--concurrency", "3", "--poll", "0.5"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .arg("--work-root")
            .arg(root)
            .arg("--shieldhit")
            .arg(shieldhit)
            .arg("--convertmc")
            .arg(convertmc())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
        // `metrics on ADDR`, then `worker ID ready`; nothing when it ended first.
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut metrics = None;
        let mut line = String::new();
        while out.read_line(&mut line).unwrap_or(0) > 0 && !line.contains("ready") {
            metrics = line.trim().strip_prefix("metrics on ").map(str::to_string);
            line.clear();
        }
        if let (true, Some(metrics)) = (line.contains("ready"), metrics) {
            Ok(Self {
                child,
                log,
                metrics,
            })
        } else {
            let _ = child.kill();
            let status = child.wait().unwrap();
            Err(format!(
                "{status}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ))
        }
    }

    /// The worker with its work root on a full 64 KiB tmpfs mounted over `root` in a mount
    /// namespace of its own; `None` (after a loud message) when this machine permits neither
    /// way of mounting it.
    fn start_on_full_disk(db: &TestDb, id: &str, root: &Path) -> Option<Self> {
        // The shell mounts, fills the tmpfs to the last byte, checks that nothing more fits,
        // and becomes the worker. Exit 77: the mount was refused.
        let script = r#"mount -t tmpfs -o size=64k machine-faults-tmpfs "$0" || exit 77
            head -c 1048576 /dev/zero > "$0/fill" 2>/dev/null
            if printf x >> "$0/fill" 2>/dev/null; then echo "the tmpfs is not full" >&2; exit 1; fi
            echo "full tmpfs mounted on $0" >&2
            exec "$@""#;
        let root_arg = root.to_str().unwrap();
        let mut refusals = Vec::new();
        for unshare in [
            &["unshare", "--mount", "--propagation", "private"][..],
            &[
                "unshare",
                "--user",
                "--map-root-user",
                "--mount",
                "--propagation",
                "private",
            ],
        ] {
            let mut wrapper = unshare.to_vec();
            wrapper.extend(["sh", "-c", script, root_arg]);
            match Self::start(db, id, root, &standin("shieldhit"), &wrapper) {
                Ok(p) => return Some(p),
                // Mounted, but the worker did not start: a failure of the worker.
                Err(log) if log.contains("full tmpfs mounted") => {
                    panic!("the sick worker did not start: {log}")
                }
                Err(log) => refusals.push(format!("{}: {log}", unshare.join(" "))),
            }
        }
        eprintln!(
            "\n\n################################################################\n\
             SKIPPED: this machine permits no tmpfs mount for the full-disk worker\n\
             (tried a private mount namespace as root and in a user namespace):\n{}\n\
             ################################################################\n",
            refusals.join("\n")
        );
        None
    }

    /// Waits until the log has a line containing `what`; returns that line.
    fn wait_log(&self, what: &str, limit: Duration) -> String {
        let t = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(l) = text.lines().find(|l| l.contains(what)) {
                return l.to_string();
            }
            assert!(
                t.elapsed() < limit,
                "no {what:?} in the log after {limit:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What its `/healthz` answers: the status code and the body.
    async fn health(&self) -> (u16, String) {
        let url = format!("http://{}/healthz", self.metrics);
        let (status, body) = telemetry::probe::get(&url, Duration::from_secs(5))
            .await
            .unwrap();
        (status.as_u16(), body)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A task's queue columns.
#[derive(Debug, diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    task_state: TaskState,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Integer)]
    machine_faults: i32,
    #[diesel(sql_type = Nullable<Text>)]
    lease_owner: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
}

async fn rows(conn: &mut db::Conn, sim: i64) -> Vec<Row> {
    diesel::sql_query(
        "SELECT task_state, attempts, machine_faults, lease_owner, last_error FROM tasks
         WHERE simulation_id = $1 ORDER BY task_index",
    )
    .bind::<BigInt, _>(sim)
    .load(conn)
    .await
    .unwrap()
}

/// Waits until no task of `sim` is running (the sick worker has handed its tasks on).
async fn wait_none_running(conn: &mut db::Conn, sim: i64) -> Vec<Row> {
    let t = Instant::now();
    loop {
        let r = rows(conn, sim).await;
        if r.iter().all(|r| r.task_state != TaskState::Running) {
            return r;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_worker_on_a_full_disk_hands_every_task_to_the_healthy_one() {
    let (db, mut conn, dir) = with_db("full-disk").await;
    let sick_root = dir.path().join("sick");
    std::fs::create_dir_all(&sick_root).unwrap();
    let Some(sick) = Proc::start_on_full_disk(&db, "sick", &sick_root) else {
        return;
    };
    let sim = support::submit(&mut conn, SimType::Shieldhit, 8, 800, &captured("ok")).await;

    // Alone, the sick worker fails nothing: it hands tasks back, then stops claiming.
    let unhealthy = sick.wait_log("worker unhealthy", Duration::from_secs(60));
    assert!(unhealthy.contains("ERROR"), "{unhealthy}");
    eprintln!("the sick worker says: {unhealthy}");
    let before = wait_none_running(&mut conn, sim).await;
    let faults: i32 = before.iter().map(|r| r.machine_faults).sum();
    assert!(faults >= FAULTS_TO_UNHEALTHY, "{before:?}");
    for r in &before {
        assert_eq!(r.task_state, TaskState::Pending, "{r:?}");
        assert_eq!(r.attempts, 0, "a machine fault uses no attempt: {r:?}");
        if r.machine_faults > 0 {
            let err = r.last_error.as_deref().unwrap();
            assert!(err.contains("machine fault on worker sick"), "{err}");
            assert!(err.contains("disk full"), "{err}");
            assert!(err.contains("No space left on device"), "{err}");
        }
    }
    let state = db::simulations::get(&mut conn, sim)
        .await
        .unwrap()
        .job_state;
    assert_ne!(state, JobState::Failed);
    // It says so to its health check too, and it has stopped claiming: while it backs off
    // (a minute), no task meets another fault.
    assert_eq!(sick.health().await, (503, "unhealthy\n".to_string()));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later: i32 = rows(&mut conn, sim)
        .await
        .iter()
        .map(|r| r.machine_faults)
        .sum();
    assert_eq!(later, faults, "the unhealthy worker stopped claiming");

    // The healthy worker runs all 8 (the sick one pauses for a minute, then tries one task
    // at a time; whatever it tries goes back to the queue the same way).
    let healthy_root = dir.path().join("healthy");
    let healthy = Proc::start(&db, "healthy", &healthy_root, &standin("shieldhit"), &[]).unwrap();
    let limit = Duration::from_secs(240);
    wait_state(&mut conn, sim, JobState::Completed, limit).await;
    let after = rows(&mut conn, sim).await;
    assert_eq!(after.len(), 8);
    for r in &after {
        assert_eq!(r.task_state, TaskState::Completed, "{r:?}");
        assert_eq!(r.lease_owner.as_deref(), Some("healthy"), "{r:?}");
        assert_eq!(r.attempts, 1, "handed on without using an attempt: {r:?}");
    }
    let log = healthy.log_text();
    assert!(!log.contains("worker unhealthy"), "{log}");
    assert_eq!(healthy.health().await, (200, "ok\n".to_string()));
    drop((sick, healthy));
}

#[tokio::test]
async fn a_configured_program_missing_on_a_worker_is_a_machine_fault() {
    let (db, mut conn, dir) = with_db("missing").await;
    let missing = dir.path().join("not-installed/shieldhit");
    let lacking = Proc::start(&db, "lacking", &dir.path().join("lacking"), &missing, &[]).unwrap();
    let sim = support::submit(&mut conn, SimType::Shieldhit, 1, 100, &captured("ok")).await;
    lacking.wait_log("worker unhealthy", Duration::from_secs(60));
    let r = wait_none_running(&mut conn, sim).await;
    // One task, claimed again after each fault until the worker was unhealthy.
    assert_eq!(r[0].task_state, TaskState::Pending, "{r:?}");
    assert_eq!(r[0].attempts, 0, "{r:?}");
    assert_eq!(r[0].machine_faults, FAULTS_TO_UNHEALTHY, "{r:?}");
    let err = r[0].last_error.as_deref().unwrap();
    assert!(
        err.contains("machine fault on worker lacking") && err.contains("program cannot run"),
        "{err}"
    );
    assert!(err.contains("not-installed/shieldhit"), "{err}");

    // A worker that has the program runs it on the first attempt.
    let _healthy = Proc::start(
        &db,
        "healthy",
        &dir.path().join("healthy"),
        &standin("shieldhit"),
        &[],
    )
    .unwrap();
    let limit = Duration::from_secs(120);
    wait_state(&mut conn, sim, JobState::Completed, limit).await;
    let r = rows(&mut conn, sim).await;
    assert_eq!(
        (r[0].attempts, r[0].lease_owner.as_deref()),
        (1, Some("healthy"))
    );
    drop(lacking);
}

#[tokio::test]
async fn a_program_failing_on_its_input_fails_the_task_at_once_with_its_last_lines() {
    let (db, mut conn, dir) = with_db("input").await;
    let w = Proc::start(&db, "w", &dir.path().join("w"), &standin("shieldhit"), &[]).unwrap();
    let sim = support::submit(&mut conn, SimType::Shieldhit, 1, 100, &captured("crash")).await;
    let limit = Duration::from_secs(60);
    wait_state(&mut conn, sim, JobState::Failed, limit).await;
    let r = rows(&mut conn, sim).await;
    assert_eq!(
        (r[0].task_state, r[0].attempts, r[0].machine_faults),
        (TaskState::Failed, 1, 0)
    );
    let err = r[0].last_error.as_deref().unwrap();
    assert!(
        err.starts_with("SHIELD-HIT12A exited with code 3; its last output lines:"),
        "{err}"
    );
    // Its stderr and the stdout lines before it, not only the last line.
    assert!(
        err.contains("\n  [stderr] ERROR: particle lost in geometry, zone 0"),
        "{err}"
    );
    let stdout_lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("  ") && !l.contains("[stderr]"))
        .collect();
    assert_eq!(stdout_lines.len(), 8, "{err}");
    assert!(
        stdout_lines[7].contains("Primary particle no.          10"),
        "{err}"
    );
    assert!(!w.log_text().contains("worker unhealthy"));
    drop(w);
}

#[tokio::test]
async fn machine_faults_use_no_attempt_up_to_the_limit_then_attempts() {
    use db::queue;
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let owner = db::testing::user(&mut conn, "physicist").await;
    let mut new = db::testing::new_simulation(owner, SimType::Builtin, 1, 10);
    new.max_attempts = 1;
    let sim = db::testing::submit(&mut conn, new, None).await;
    let lease_secs = Duration::from_secs(30);
    for n in 1..=2 {
        let t = queue::claim(&mut conn, "w", 1, lease_secs, db::enums::SimType::ALL)
            .await
            .unwrap();
        assert_eq!(t.len(), 1, "handed on at once, claimable again");
        assert_eq!(t[0].attempt, 1);
        let lease = t[0].lease("w");
        let state = queue::release_machine_fault(&mut conn, &lease, "disk full: x", 2)
            .await
            .unwrap();
        assert_eq!(state, TaskState::Pending);
        let r = &rows(&mut conn, sim).await[0];
        assert_eq!((r.attempts, r.machine_faults), (0, n), "{r:?}");
        assert_eq!(
            r.last_error.as_deref(),
            Some(
                format!(
                    "machine fault on worker w ({n} of 2 handed on without using an attempt): \
                     disk full: x"
                )
                .as_str()
            )
        );
        // The lease is gone: a second report of it is rejected.
        let again = queue::release_machine_fault(&mut conn, &lease, "x", 2).await;
        assert!(queue::is_lease_lost(&again.unwrap_err()));
    }
    // Over the limit, the fault uses the attempt: the only one, so the task fails.
    let t = queue::claim(&mut conn, "w", 1, lease_secs, db::enums::SimType::ALL)
        .await
        .unwrap();
    let state = queue::release_machine_fault(&mut conn, &t[0].lease("w"), "disk full: y", 2)
        .await
        .unwrap();
    assert_eq!(state, TaskState::Failed);
    let r = &rows(&mut conn, sim).await[0];
    assert_eq!((r.attempts, r.machine_faults), (1, 3), "{r:?}");
    assert_eq!(
        r.last_error.as_deref(),
        Some("machine fault on worker w (over the limit of 2: attempt 1 of 1 used): disk full: y")
    );
    let state = db::simulations::get(&mut conn, sim)
        .await
        .unwrap()
        .job_state;
    assert_eq!(state, JobState::Failed);
}
