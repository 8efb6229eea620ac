//! cleanup --older-than AGE [--state S,...] [--user U] [--dry-run]: finished simulations that
//! ended long enough ago go, in batches, with everything under them; live ones never do.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use db::enums::AuthProvider;

/// Makes simulation `id` finished in `state`, `days` ago (its tasks ended too).
fn finish(db: &Db, id: i64, state: &str, days: i64) {
    exec(
        db,
        &format!(
            "update tasks set task_state = '{task}', end_time = now() where simulation_id = {id}; \
             update simulations set job_state = '{state}', \
                 end_time = now() - interval '{days} days', \
                 update_time = now() - interval '{days} days' where id = {id}",
            task = if state == "COMPLETED" {
                "COMPLETED"
            } else {
                state
            }
        ),
    );
}

/// Makes simulation `id` live in `state` (PENDING, RUNNING or MERGING) but untouched for
/// `days`: its age must not matter.
fn stale_live(db: &Db, id: i64, state: &str, days: i64) {
    exec(
        db,
        &format!(
            "update simulations set job_state = '{state}', \
                 start_time = now() - interval '{days} days', \
                 update_time = now() - interval '{days} days' where id = {id}"
        ),
    );
}

/// Adds a 2000-byte (incompressible) log to simulation `id`.
fn add_log(db: &Db, id: i64) {
    exec(
        db,
        &format!(
            "insert into logfiles (simulation_id, name, data, uncompressed_size) \
             select {id}, 'stdout', string_agg(decode(md5(random()::text), 'hex'), ''), 2000 \
             from generate_series(1, 125)"
        ),
    );
}

fn ids(db: &Db) -> Vec<i64> {
    query(db, "select s.id::text from simulations s order by s.id")
        .into_iter()
        .map(|r| r[0].as_deref().unwrap().parse().unwrap())
        .collect()
}

/// alice: old COMPLETED (a, with a log), old FAILED (b), old CANCELED (c), recent COMPLETED
/// (d), and live ones untouched for a year: PENDING (e), RUNNING (f), MERGING (g).
/// kc (keycloak): old COMPLETED (h). Returns [a..h].
async fn world(db: &Db) -> [i64; 8] {
    let alice = user(db, "alice", AuthProvider::Local).await;
    let kc = user(db, "kc", AuthProvider::Keycloak).await;
    let mut s = [0i64; 8];
    for (i, slot) in s.iter_mut().enumerate() {
        let owner = if i == 7 { kc } else { alice };
        *slot = sim(db, owner, &format!("s{i}"), 2).await.id;
    }
    finish(db, s[0], "COMPLETED", 100);
    add_log(db, s[0]);
    finish(db, s[1], "FAILED", 120);
    finish(db, s[2], "CANCELED", 91);
    finish(db, s[3], "COMPLETED", 10);
    stale_live(db, s[4], "PENDING", 365);
    stale_live(db, s[5], "RUNNING", 365);
    stale_live(db, s[6], "MERGING", 365);
    finish(db, s[7], "COMPLETED", 200);
    s
}

#[tokio::test]
async fn cleanup_deletes_only_old_finished_simulations_with_everything_under_them() {
    let db = Db::new().await;
    let [a, b, c, d, e, f, g, h] = world(&db).await;
    let out = stdout_of(&db, &["cleanup", "--older-than", "90d"]);
    assert!(
        out.starts_with("deleted 4 finished simulation(s); freed "),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1, "{out}");
    assert_eq!(ids(&db), [d, e, f, g]);
    for gone in [a, b, c, h] {
        for table in ["tasks", "inputs", "logfiles"] {
            assert_eq!(
                count(
                    &db,
                    &format!("select count(*) from {table} where simulation_id = {gone}")
                ),
                0
            );
        }
    }
    // The live and recent ones keep their tasks and inputs.
    assert_eq!(count(&db, "select count(*) from tasks"), 8);
    assert_eq!(count(&db, "select count(*) from inputs"), 4);
    // Run again: nothing left to do, and that is success.
    let again = stdout_of(&db, &["cleanup", "--older-than", "90d"]);
    assert_eq!(
        again.trim(),
        "deleted 0 finished simulation(s); freed 0 B (0 bytes)"
    );
    assert_eq!(user_count(&db), 2);
}

#[tokio::test]
async fn cleanup_dry_run_lists_what_would_go_and_deletes_nothing() {
    let db = Db::new().await;
    let [a, b, c, _, _, _, _, h] = world(&db).await;
    let before = ids(&db);
    let out = run(&db, &["cleanup", "--older-than", "90d", "--dry-run"]);
    let t = table_with_header(&out, "ID JOB_ID USER STATE ENDED BYTES");
    let listed: Vec<i64> = t[1..t.len() - 1]
        .iter()
        .map(|r| r[0].parse().unwrap())
        .collect();
    assert_eq!(listed, [a, b, c, h]);
    assert!(out
        .stdout
        .contains("would delete 4 finished simulation(s); would free"));
    assert_eq!(ids(&db), before);

    // JSON: the same candidates and the bytes they hold, which a real run then frees.
    let out = run(
        &db,
        &["--json", "cleanup", "--older-than", "90d", "--dry-run"],
    );
    out.ok();
    let v = out.json();
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["simulations"], 4);
    let would = v["bytes"].as_u64().unwrap();
    assert!(would > 2000, "the log alone is 2000 bytes: {v}");
    let cands = v["candidates"].as_array().unwrap();
    assert_eq!(cands[0]["id"], a);
    assert_eq!(cands[0]["username"], "alice");
    assert_eq!(cands[0]["job_state"], "COMPLETED");
    assert_eq!(cands[3]["auth_provider"], "keycloak");
    let out = run(&db, &["--json", "cleanup", "--older-than", "90d"]);
    out.ok();
    let v = out.json();
    assert_eq!(v["dry_run"], false);
    assert_eq!(v["simulations"], 4);
    assert_eq!(v["bytes"].as_u64().unwrap(), would);
    assert_eq!(v["interrupted"], false);
}

#[tokio::test]
async fn cleanup_filters_by_state_user_and_age() {
    let db = Db::new().await;
    let [a, b, c, d, e, f, g, h] = world(&db).await;
    let out = stdout_of(
        &db,
        &[
            "cleanup",
            "--older-than",
            "90d",
            "--state",
            "failed,canceled",
            "--user",
            "alice",
        ],
    );
    assert!(out.starts_with("deleted 2 "), "{out}");
    assert_eq!(ids(&db), [a, d, e, f, g, h]);
    // kc's ended 200 days ago: not older than 250 days.
    let out = stdout_of(
        &db,
        &[
            "cleanup",
            "--older-than",
            "250d",
            "--user",
            "kc",
            "--auth-provider",
            "keycloak",
        ],
    );
    assert!(out.starts_with("deleted 0 "), "{out}");
    let out = stdout_of(&db, &["cleanup", "--older-than", "150d", "--user", "kc"]);
    assert!(out.starts_with("deleted 1 "), "{out}");
    assert_eq!(ids(&db), [a, d, e, f, g]);
    // "completed" takes a, never the recent d.
    let out = stdout_of(
        &db,
        &["cleanup", "--older-than", "30d", "--state", "COMPLETED"],
    );
    assert!(out.starts_with("deleted 1 "), "{out}");
    assert_eq!(ids(&db), [d, e, f, g]);
    let _ = (b, c, h);
}

#[tokio::test]
async fn cleanup_in_batches_of_one() {
    let db = Db::new().await;
    let u = user(&db, "alice", AuthProvider::Local).await;
    let mut all = Vec::new();
    for i in 0..7 {
        let s = sim(&db, u, &format!("old{i}"), 1).await.id;
        finish(&db, s, "COMPLETED", 100);
        all.push(s);
    }
    let out = stdout_of(
        &db,
        &["cleanup", "--older-than", "2160h", "--batch-size", "1"],
    );
    assert!(out.starts_with("deleted 7 "), "{out}");
    assert!(ids(&db).is_empty());
}

#[tokio::test]
async fn cleanup_user_not_found() {
    let db = Db::new().await;
    let [..] = world(&db).await;
    let before = ids(&db);
    fails_cleanly(
        &db,
        &["cleanup", "--older-than", "90d", "--user", "nobody"],
        "user \"nobody\" not found",
    );
    fails_cleanly(
        &db,
        &[
            "cleanup",
            "--older-than",
            "90d",
            "--user",
            "kc",
            "--auth-provider",
            "local",
        ],
        "user \"kc\" (local) not found",
    );
    for hostile in [
        "'; DELETE FROM simulations; --",
        "alice' OR '1'='1",
        "%",
        "\u{1b}[2Jevil\u{7}",
        "a\nb",
        "\\0",
    ] {
        let out = run(&db, &["cleanup", "--older-than", "90d", "--user", hostile]);
        out.fails_with("not found");
        assert!(!out.stderr.contains('\u{1b}') && !out.stderr.contains('\u{7}'));
        assert_eq!(out.stderr.lines().count(), 1, "{:?}", out.stderr);
    }
    assert_eq!(ids(&db), before);
}

#[tokio::test]
async fn cleanup_bad_input_is_bad_usage_and_deletes_nothing() {
    let db = Db::new().await;
    let [..] = world(&db).await;
    let before = ids(&db);
    run(&db, &["cleanup"]).usage_error_with("--older-than");
    for age in [
        "abc",
        "-5d",
        "",
        "90 parsecs",
        "1; DROP TABLE simulations",
        "\u{1b}[31m",
    ] {
        run(&db, &["cleanup", &format!("--older-than={age}")]).expect_code(2);
    }
    for state in ["pending", "RUNNING", "merging"] {
        run(&db, &["cleanup", "--older-than", "1d", "--state", state])
            .usage_error_with("not a finished state");
    }
    for state in [
        "completed;DROP TABLE x",
        "finished",
        "completed,,failed",
        "\u{7}",
    ] {
        run(
            &db,
            &["cleanup", "--older-than", "1d", &format!("--state={state}")],
        )
        .expect_code(2);
    }
    run(&db, &["cleanup", "--older-than", "1d", "--batch-size", "0"]).expect_code(2);
    run(
        &db,
        &["cleanup", "--older-than", "1d", "--auth-provider", "ldap"],
    )
    .expect_code(2);
    assert_eq!(ids(&db), before);
}

/// An age longer than 1000 years reaches before any date the database holds: bad usage,
/// refused before any connection (the server below is not there), not a database error.
#[tokio::test]
async fn cleanup_an_age_beyond_1000_years_is_bad_usage() {
    let db = Db::new().await;
    let [..] = world(&db).await;
    let before = ids(&db);
    let nowhere = "postgres://postgres@127.0.0.1:1/nowhere";
    for age in ["99999999999d", "1001y", "1000y 1s", "99999999999999999999"] {
        for args in [
            vec!["cleanup", "--older-than", age, "--dry-run"],
            vec!["cleanup", "--older-than", age],
        ] {
            let out = run_url(nowhere, &args);
            out.usage_error_with("invalid value");
            assert!(!out.stderr.contains("database error"), "{}", out.stderr);
        }
    }
    run_url(nowhere, &["cleanup", "--older-than", "1001y"])
        .usage_error_with("is longer than 1000years (the longest age cleanup takes)");
    // The longest age itself is fine; nothing ended that long ago.
    let out = run(
        &db,
        &["--json", "cleanup", "--older-than", "1000y", "--dry-run"],
    );
    out.ok();
    assert_eq!(out.json()["simulations"], 0);
    run(&db, &["cleanup", "--older-than", "1000y"]).ok();
    assert_eq!(ids(&db), before);
}

/// While cleanup runs (in batches of 3), other clients submit simulations: every new one
/// survives, as do the live ones, and every old finished one goes.
#[tokio::test]
async fn cleanup_under_concurrent_submits_loses_no_live_simulation() {
    let db = Db::new().await;
    let u = user(&db, "alice", AuthProvider::Local).await;
    // 300 old finished simulations, each with a task and an input.
    exec(
        &db,
        &format!(
            "insert into simulations (user_id, platform, input_type, sim_type, job_state, ntasks, primaries, end_time) \
             select {u}, 'direct', 'editor', 'builtin', 'COMPLETED', 1, 1, now() - interval '100 days' \
             from generate_series(1, 300); \
             insert into tasks (simulation_id, task_index, task_state, requested_primaries, end_time) \
             select id, 0, 'COMPLETED', 1, now() from simulations; \
             insert into inputs (simulation_id, data, uncompressed_size) \
             select id, '\\x00', 1 from simulations"
        ),
    );
    let url = db.config().url_with_password().to_string();
    let cleaner = tokio::task::spawn_blocking(move || {
        run_url(
            &url,
            &["cleanup", "--older-than", "90d", "--batch-size", "3"],
        )
    });
    let mut live = Vec::new();
    let mut during = 0;
    while !cleaner.is_finished() || live.len() < 40 {
        if !cleaner.is_finished() {
            during += 1;
        }
        live.push(sim(&db, u, &format!("new{}", live.len()), 2).await.id);
        if live.len() > 2000 {
            break;
        }
    }
    let out = cleaner.await.unwrap();
    out.ok();
    assert!(during > 1, "submits ran while the cleanup did");
    assert!(out.stdout.starts_with("deleted 300 "), "{}", out.stdout);
    assert_eq!(
        ids(&db),
        live,
        "every simulation submitted during the cleanup is kept"
    );
    assert_eq!(
        count(&db, "select count(*) from tasks"),
        2 * live.len() as i64
    );
}

/// Ctrl-C stops after the batch under way: what is deleted is whole, the rest stays, and
/// running the command again finishes the job.
#[tokio::test]
async fn cleanup_is_interruptible_and_runs_again() {
    let db = Db::new().await;
    let u = user(&db, "alice", AuthProvider::Local).await;
    let n = 3000;
    exec(
        &db,
        &format!(
            "insert into simulations (user_id, platform, input_type, sim_type, job_state, ntasks, primaries, end_time) \
             select {u}, 'direct', 'editor', 'builtin', 'COMPLETED', 1, 1, now() - interval '100 days' \
             from generate_series(1, {n}); \
             insert into tasks (simulation_id, task_index, task_state, requested_primaries, end_time) \
             select id, 0, 'COMPLETED', 1, now() from simulations"
        ),
    );
    let mut c = bin();
    c.arg("--database-url")
        .arg(db.config().url_with_password())
        .args(["cleanup", "--older-than", "90d", "--batch-size", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let pid = child.id().to_string();
    // Wait until it has deleted something (its Ctrl-C handler is in place by then).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let left = count(&db, "select count(*) from simulations");
        if left < n - 5 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "cleanup made no progress"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(o.stderr).unwrap();
    let left = count(&db, "select count(*) from simulations");
    eprintln!("interrupted with {left} of {n} left");
    if left > 0 {
        assert_eq!(o.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.starts_with("error: interrupted: deleted "),
            "{stderr}"
        );
        assert!(stderr.contains("run the same command again"), "{stderr}");
    }
    // Every simulation is whole or gone: no task without its simulation, none without tasks.
    assert_eq!(count(&db, "select count(*) from tasks"), left);
    let out = stdout_of(&db, &["cleanup", "--older-than", "90d"]);
    assert!(out.starts_with(&format!("deleted {left} ")), "{out}");
    assert!(ids(&db).is_empty());
}
