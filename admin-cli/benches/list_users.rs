//! `admin-cli list-users` with 10,000 users, timed as a whole process, against `psql` running
//! the same query as a baseline in the same run. Run: `cargo bench -p admin-cli --bench list_users`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const USERS: usize = 10_000;
const RUNS: usize = 41;

fn time(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let status = cmd.status().expect("spawn");
    let d = t.elapsed();
    assert!(status.success(), "{cmd:?} failed");
    d
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(v[v.len() / 2]), ms(v[v.len() * 9 / 10]))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let db = db::testing::TestDb::new().await;
    let url = db.config().url_with_password().to_string();
    let hash = db::password::hash("bench-password").unwrap();
    db::sql::run(
        db.config(),
        &format!(
            "INSERT INTO users (username, password_hash, role)
             SELECT 'user' || lpad(g::text, 5, '0'), '{hash}',
                    CASE WHEN g % 100 = 0 THEN 'admin' ELSE 'user' END
             FROM generate_series(1, {USERS}) g; ANALYZE users;"
        ),
    )
    .await
    .unwrap();

    let bin = env!("CARGO_BIN_EXE_admin-cli");
    let out = Command::new(bin)
        .args(["--database-url", &url, "list-users"])
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(lines, USERS + 1, "header plus one line per user");

    let mut cli = Command::new(bin);
    cli.args(["--database-url", &url, "list-users"])
        .stdout(Stdio::null());
    let mut cli_json = Command::new(bin);
    cli_json
        .args(["--database-url", &url, "--json", "list-users"])
        .stdout(Stdio::null());
    let mut cli_verbose = Command::new(bin);
    cli_verbose
        .args(["--database-url", &url, "list-users", "-v"])
        .stdout(Stdio::null());
    let mut psql = Command::new("psql");
    psql.args([
        url.as_str(),
        "-Atc",
        "SELECT id, username, auth_provider, role, created_at FROM users ORDER BY username, auth_provider",
    ])
    .stdout(Stdio::null());

    let mut cmds = [
        ("admin-cli list-users", cli, Vec::new()),
        ("admin-cli --json list-users", cli_json, Vec::new()),
        ("admin-cli list-users -v", cli_verbose, Vec::new()),
        ("psql -Atc <same query> (baseline)", psql, Vec::new()),
    ];
    for (_, c, _) in cmds.iter_mut() {
        for _ in 0..3 {
            time(c);
        }
    }
    // Interleave the commands so that machine noise hits them alike.
    for _ in 0..RUNS {
        for (_, c, v) in cmds.iter_mut() {
            v.push(time(c));
        }
    }
    let base = stats(cmds[3].2.clone()).0;
    println!("list-users with {USERS} users, {RUNS} runs each, whole process, stdout to /dev/null");
    println!(
        "{:<36} {:>10} {:>10} {:>12}",
        "command", "median ms", "p90 ms", "vs psql"
    );
    for (name, _, v) in &cmds {
        let (med, p90) = stats(v.clone());
        println!("{name:<36} {med:>10.1} {p90:>10.1} {:>11.2}x", med / base);
    }
    let (med, _) = stats(cmds[0].2.clone());
    println!(
        "target: admin-cli list-users median <= 50 ms: {} ({med:.1} ms)",
        if med <= 50.0 { "MET" } else { "NOT MET" }
    );
}
