//! `--metrics-listen` on the real binaries: `sim-api` and a `worker` serve Prometheus
//! metrics, and the values move with the work (queue depth, claims, outcomes, primaries,
//! task and merge times, RPC latency by method and code, the pool). `/healthz` and both
//! binaries' `probe` commands answer; a probe of nothing fails with exit code 1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use db::testing::TestDb;
use proto::v1 as pb;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Spawns `cmd` and reads its stdout up to its `listening on` or `ready` line: the process,
/// the address of its `metrics on ADDR` line, and the lines read.
fn spawn_with_metrics(cmd: &mut Command) -> (tests::Proc, String, Vec<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let proc = tests::Proc(child);
    let mut lines = Vec::new();
    let mut reader = BufReader::new(out);
    let mut metrics = None;
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "ended: {lines:?}");
        let line = line.trim().to_string();
        if let Some(addr) = line.strip_prefix("metrics on ") {
            metrics = Some(addr.to_string());
        }
        let done = line.starts_with("listening on ") || line.contains("ready");
        lines.push(line);
        if done {
            break;
        }
    }
    let metrics = metrics.unwrap_or_else(|| panic!("no `metrics on` line: {lines:?}"));
    (proc, metrics, lines)
}

async fn scrape(addr: &str) -> String {
    let (status, body) =
        telemetry::probe::get(&format!("http://{addr}/metrics"), Duration::from_secs(10))
            .await
            .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("# EOF\n"), "not OpenMetrics text: {body}");
    body
}

/// The value of the sample `series` (name and labels exactly as written), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split(' ').next()?.parse().ok()
    })
}

fn must(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

fn builtin(title: &str, ntasks: i32, primaries: i64) -> pb::SubmitRequest {
    let editor =
        r#"{"beam": {"energy_mev": 100.0}, "scoring": {"z_bins": 10, "r_bins": 2}, "seed": 1}"#;
    tests::builtin_request(title, editor, ntasks, primaries)
}

#[tokio::test]
async fn both_services_serve_metrics_that_move_with_the_work() {
    let db = TestDb::new().await;
    let url = db.config().url_with_password();
    tests::add_user(url, "alice", "pw-alice");

    let mut cmd = tests::command("sim-api");
    cmd.args(["--database-url", url, "--listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0"]);
    let (_api, api_metrics, lines) = spawn_with_metrics(&mut cmd);
    let addr = lines
        .last()
        .and_then(|l| l.strip_prefix("listening on "))
        .unwrap()
        .to_string();

    let before = scrape(&api_metrics).await;
    assert_eq!(must(&before, "sim_queue_tasks{state=\"due\"}"), 0.0);
    assert_eq!(must(&before, "sim_queue_up"), 1.0);
    assert_eq!(must(&before, "sim_healthy"), 1.0);
    assert!(must(&before, "sim_db_pool_connections") >= 1.0, "{before}");
    // Every method's `Ok` series exists, at 0, before the method's first call.
    let login = "sim_api_rpc_seconds_count{method=\"/sim.v1.AuthService/Login\",code=\"Ok\"}";
    assert_eq!(must(&before, login), 0.0);

    // Two tasks wait in the queue while no worker runs.
    let (mut sims, token) = tests::login(&addr, "alice", "pw-alice").await.unwrap();
    let job_id = tests::submit(&mut sims, &token, builtin("metrics", 2, 400))
        .await
        .unwrap();
    let refused = tests::submit(&mut sims, &token, builtin("bad", 0, 400)).await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::InvalidArgument);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let queued = scrape(&api_metrics).await;
    assert_eq!(must(&queued, "sim_queue_tasks{state=\"due\"}"), 2.0);
    assert_eq!(must(&queued, "sim_queue_tasks{state=\"pending\"}"), 2.0);
    assert!(
        must(&queued, "sim_queue_oldest_due_seconds") >= 1.0,
        "{queued}"
    );
    let submit = "sim_api_rpc_seconds_count{method=\"/sim.v1.SimulationService/Submit\"";
    assert_eq!(must(&queued, &format!("{submit},code=\"Ok\"}}")), 1.0);
    assert_eq!(
        must(&queued, &format!("{submit},code=\"InvalidArgument\"}}")),
        1.0
    );
    assert_eq!(must(&queued, login), 1.0);

    // A worker runs them.
    let mut cmd = tests::command("worker");
    cmd.args(["--database-url", url, "--concurrency", "2", "--poll", "0.2"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "error");
    let (_worker, worker_metrics, _) = spawn_with_metrics(&mut cmd);
    let last = tests::wait_final(&mut sims, &job_id, &token).await;
    assert_eq!(last, pb::JobState::Completed);

    let done = scrape(&worker_metrics).await;
    assert_eq!(must(&done, "sim_worker_claims_total"), 2.0);
    assert_eq!(
        must(&done, "sim_worker_tasks_total{outcome=\"completed\"}"),
        2.0
    );
    for outcome in ["failed", "machine_fault", "released", "canceled"] {
        let series = format!("sim_worker_tasks_total{{outcome=\"{outcome}\"}}");
        assert_eq!(must(&done, &series), 0.0, "{series}");
    }
    assert_eq!(must(&done, "sim_worker_primaries_total"), 400.0);
    assert_eq!(must(&done, "sim_worker_task_seconds_count"), 2.0);
    assert!(must(&done, "sim_worker_task_seconds_sum") > 0.0, "{done}");
    assert_eq!(must(&done, "sim_worker_merge_seconds_count"), 2.0);
    assert_eq!(must(&done, "sim_queue_tasks{state=\"due\"}"), 0.0);
    assert_eq!(must(&done, "sim_queue_tasks{state=\"running\"}"), 0.0);
    assert_eq!(must(&done, "sim_queue_oldest_due_seconds"), 0.0);
    assert_eq!(must(&done, "sim_healthy"), 1.0);
    assert!(must(&done, "sim_db_pool_connections") >= 1.0, "{done}");
    let api_after = scrape(&api_metrics).await;
    let watch = "sim_api_rpc_seconds_count{method=\"/sim.v1.SimulationService/Watch\",code=\"Ok\"}";
    assert_eq!(must(&api_after, watch), 1.0);

    // Each service's connections carry its name.
    let mut conn = db.conn().await;
    for name in ["sim-api", "worker"] {
        let sql = format!(
            "SELECT count(*) AS n FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = '{name}'"
        );
        let n = tests::count(&mut conn, &sql).await.unwrap();
        assert!(n >= 1, "no connection named {name}");
    }

    // Health: the endpoint and both binaries' probes.
    let healthz = format!("http://{worker_metrics}/healthz");
    let (status, body) = telemetry::probe::get(&healthz, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!((status.as_u16(), body.as_str()), (200, "ok\n"));
    let (status, _) = telemetry::probe::get(
        &format!("http://{worker_metrics}/nothing"),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(status, 404);
    for (bin, url) in [("worker", healthz), ("sim-api", format!("http://{addr}"))] {
        let probe = tests::run_bin(bin, &["probe", &url]);
        assert!(probe.status.success(), "{bin}: {probe:?}");
    }
}

/// The batch component serves the shared figures (the pool, the queue, health).
#[tokio::test]
async fn the_batch_component_serves_the_shared_figures() {
    let db = TestDb::new().await;
    let url = db.config().url_with_password();
    let mut cmd = tests::command("worker");
    cmd.args(["batch", "--database-url", url, "--poll", "1s"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "error");
    let (_batch, metrics, lines) = spawn_with_metrics(&mut cmd);
    assert!(
        lines.last().unwrap().starts_with("batch component"),
        "{lines:?}"
    );
    let text = scrape(&metrics).await;
    assert_eq!(must(&text, "sim_queue_up"), 1.0);
    assert_eq!(must(&text, "sim_queue_tasks{state=\"pending\"}"), 0.0);
    assert_eq!(must(&text, "sim_healthy"), 1.0);
    assert!(must(&text, "sim_db_pool_connections") >= 1.0, "{text}");
}

/// A probe of a port nobody listens on fails with exit code 1 and says why.
#[test]
fn probes_of_nothing_fail() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (bin, url) in [
        ("worker", format!("http://127.0.0.1:{port}/healthz")),
        ("sim-api", format!("http://127.0.0.1:{port}")),
    ] {
        let out = tests::run_bin(bin, &["probe", &url, "--timeout", "3s"]);
        assert_eq!(out.status.code(), Some(1), "{bin}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&port.to_string()), "{bin}: {err}");
    }
    let out = tests::run_bin("worker", &["probe", "ftp://example/healthz"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an http:// URL"));
}

/// Both services document the flag and its environment variable in `--help`.
#[test]
fn the_flag_is_documented() {
    let out = tests::command("sim-api").arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--metrics-listen"), "{help}");
    assert!(help.contains("METRICS_LISTEN"), "{help}");
    let out = tests::command("worker").arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--metrics-listen"), "{help}");
}
