//! `--log-format json` on the real binaries: every stderr line of `sim-api` and of a
//! `worker` is one JSON object; a line logged inside an RPC carries the RPC's span (method
//! and caller, never the token), and a line logged for a task carries the task's span
//! (simulation, task, attempt, worker). The flag is accepted in every mode of every binary.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use db::testing::TestDb;
use proto::v1 as pb;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;

/// A fresh file for a process's stderr.
fn log_file(name: &str) -> (PathBuf, std::fs::File) {
    let path = std::env::temp_dir().join(format!(
        "log_format_{}_{name}_{}.log",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let file = std::fs::File::create(&path).unwrap();
    (path, file)
}

/// Every line of `path` as JSON; panics on a line that is not an object with a `level` and
/// a `fields.message`.
/// The first of `lines` whose message is `message`.
fn line_with<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["fields"]["message"] == message)
        .unwrap_or_else(|| panic!("no `{message}` line in {lines:?}"))
}

fn json_lines(path: &PathBuf) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let _ = std::fs::remove_file(path);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\nin:\n{text}"));
            assert!(v["level"].is_string(), "no level: {l}");
            assert!(v["fields"]["message"].is_string(), "no message: {l}");
            v
        })
        .collect();
    assert!(!lines.is_empty(), "nothing logged");
    lines
}

#[tokio::test]
async fn json_logs_carry_the_rpc_and_task_spans() {
    let db = TestDb::new().await;
    let url = db.config().url_with_password();
    tests::add_user(url, "alice", "pw-alice");

    let (api_log, api_err) = log_file("sim-api");
    let mut cmd = tests::command("sim-api");
    cmd.args(["--database-url", url, "--listen", "127.0.0.1:0"])
        .args(["--log-format", "json"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::from(api_err));
    let (api, line) = tests::spawn(&mut cmd).unwrap();
    let addr = line.strip_prefix("listening on ").unwrap().to_string();

    let (worker_log, worker_err) = log_file("worker");
    let mut cmd = tests::command("worker");
    cmd.args(["--database-url", url, "--concurrency", "1", "--poll", "0.2"])
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stderr(Stdio::from(worker_err));
    let worker = tests::spawn_worker(&mut cmd);

    let (mut sims, token) = tests::login(&addr, "alice", "pw-alice").await.unwrap();
    let editor =
        r#"{"beam": {"energy_mev": 100.0}, "scoring": {"z_bins": 10, "r_bins": 2}, "seed": 1}"#;
    let request = tests::builtin_request("log format", editor, 1, 50);
    let job_id = tests::submit(&mut sims, &token, request).await.unwrap();
    let last = tests::wait_final(&mut sims, &job_id, &token).await;
    assert_eq!(last, pb::JobState::Completed);
    drop((api, worker));

    let api_lines = json_lines(&api_log);
    let raw = serde_json::to_string(&api_lines).unwrap();
    assert!(!raw.contains(&token), "the access token was logged");
    let submitted = line_with(&api_lines, "submitted");
    let span = &submitted["span"];
    assert_eq!(span["name"], "rpc", "{submitted}");
    assert!(span["simulation"].is_number(), "{submitted}");
    assert!(
        span["method"].as_str().unwrap().ends_with("/Submit"),
        "{submitted}"
    );
    let alice = {
        let mut c = db.conn().await;
        tests::count(&mut c, "SELECT id AS n FROM users WHERE username = 'alice'")
            .await
            .unwrap()
    };
    assert_eq!(span["caller"], alice, "{submitted}");

    let worker_lines = json_lines(&worker_log);
    let started = line_with(&worker_lines, "task started");
    let span = &started["span"];
    assert_eq!(span["name"], "task", "{started}");
    for field in ["simulation", "task", "attempt", "worker"] {
        assert!(!span[field].is_null(), "no {field} in {started}");
    }
    // One id follows the simulation from the RPC to the task.
    assert_eq!(
        span["simulation"], submitted["span"]["simulation"],
        "{started}"
    );
}

/// The flag parses in every mode (subcommands included) and rejects unknown formats.
#[test]
fn every_binary_and_mode_takes_the_flag() {
    for args in [
        &["sim-api", "--log-format", "json", "--help"][..],
        &["worker", "--log-format", "text", "--help"],
        &["worker", "batch", "--log-format", "json", "--help"],
        &["worker", "element", "--log-format", "json", "--help"],
        &["admin-cli", "--log-format", "json", "--help"],
        &["admin-cli", "list-users", "--log-format", "json", "--help"],
    ] {
        let out = tests::run_bin(args[0], &args[1..]);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let out = tests::run_bin("worker", &["--log-format", "xml", "--help"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
