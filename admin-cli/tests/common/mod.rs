//! Shared helpers for the admin-cli integration tests: run the real binary against a
//! private test database and set up data with the db crate.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use db::enums::{AuthProvider, InputType, Platform, Role, SimType};
use db::models::{NewUser, Simulation};
use db::simulations::NewSimulation;
use db::testing::TestDb;
use std::io::Write;
use std::process::{Command, Stdio};

pub use db::testing::TestDb as Db;

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Out {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Panics with everything the run printed unless it exited with `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit code {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Exit 0.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.expect_code(0)
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// Asserts that stdout holds `text`.
    #[track_caller]
    pub fn stdout_has(&self, text: &str) -> &Self {
        assert!(self.stdout.contains(text), "{}", self.stdout);
        self
    }

    /// stdout and stderr together, for "appears nowhere" checks.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Asserts a clean failure (exit code 1, a short error report) with `message` in stderr.
    #[track_caller]
    pub fn fails_with(&self, message: &str) -> &Self {
        self.expect_code(1).assert_clean_error();
        assert!(self.stderr.contains(message), "{}", self.stderr);
        self
    }

    /// Asserts bad usage (exit code 2) with `message` in stderr.
    #[track_caller]
    pub fn usage_error_with(&self, message: &str) -> &Self {
        self.expect_code(2);
        assert!(self.stderr.contains(message), "{}", self.stderr);
        self
    }

    /// Asserts a short, panic-free error report on stderr.
    #[track_caller]
    pub fn assert_clean_error(&self) {
        for bad in [
            "panicked",
            "stack backtrace",
            "RUST_BACKTRACE",
            "thread 'main'",
        ] {
            assert!(
                !self.stderr.contains(bad),
                "stderr has {bad:?}:\n{}",
                self.stderr
            );
        }
        assert!(
            self.stderr.starts_with("error: "),
            "stderr should start with `error: `:\n{}",
            self.stderr
        );
    }
}

/// Every environment variable that could point the binary at another database.
pub const DB_ENV: &[&str] = db::config::ENV_VARS;

/// The binary, with the machine's database settings removed from its environment.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_admin-cli"));
    for v in DB_ENV {
        c.env_remove(v);
    }
    // If anything panics, make it loud (and detectable).
    c.env("RUST_BACKTRACE", "1");
    c
}

/// Runs a prepared command, feeding `stdin` (or nothing: stdin is closed).
pub fn output(mut c: Command, stdin: Option<&[u8]>) -> Out {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn admin-cli");
    {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        if let Some(bytes) = stdin {
            // The binary may exit without reading (e.g. usage errors): ignore a broken pipe.
            let _ = pipe.write_all(bytes);
        }
    }
    let o = child.wait_with_output().expect("wait for admin-cli");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8(o.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(o.stderr).expect("stderr is UTF-8"),
    }
}

/// Runs `admin-cli --database-url URL ARGS...`.
pub fn run_url(url: &str, args: &[&str]) -> Out {
    let mut c = bin();
    c.arg("--database-url").arg(url).args(args);
    output(c, None)
}

/// The arguments of a command line, split at spaces: for command lines none of whose
/// arguments holds a space.
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// [`words`] of `line`, then `extra` (arguments that may hold spaces, or be empty).
pub fn words_and<'a>(line: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut all = words(line);
    all.extend_from_slice(extra);
    all
}

/// Runs `admin-cli ARGS...` against `db`.
pub fn run(db: &TestDb, args: &[&str]) -> Out {
    run_url(db.config().url_with_password(), args)
}

/// Runs `admin-cli ARGS...` against `db`, with `stdin` on standard input.
pub fn run_stdin(db: &TestDb, args: &[&str], stdin: &str) -> Out {
    let mut c = bin();
    c.arg("--database-url")
        .arg(db.config().url_with_password())
        .args(args);
    output(c, Some(stdin.as_bytes()))
}

/// Runs `admin-cli ARGS...` with no --database-url, and these environment variables set.
pub fn run_env(env: &[(&str, &str)], args: &[&str]) -> Out {
    let mut c = bin();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    output(c, None)
}

/// Runs SQL through `admin-cli sql --json` and returns the first statement's rows.
#[track_caller]
pub fn query(db: &TestDb, sql: &str) -> Vec<Vec<Option<String>>> {
    let out = run(db, &["--json", "sql", "-c", sql]);
    out.ok();
    let v = out.json();
    let first = &v[0];
    assert_eq!(first["kind"], "rows", "{sql} returned no rows: {v}");
    first["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .collect()
}

/// The single value of a one-row, one-column query (`None` for NULL).
#[track_caller]
pub fn scalar(db: &TestDb, sql: &str) -> Option<String> {
    let rows = query(db, sql);
    assert_eq!(rows.len(), 1, "{sql}: expected one row, got {rows:?}");
    assert_eq!(rows[0].len(), 1, "{sql}: expected one column, got {rows:?}");
    rows[0][0].clone()
}

/// A count(*) query as a number.
#[track_caller]
pub fn count(db: &TestDb, sql: &str) -> i64 {
    scalar(db, sql)
        .expect("count is never NULL")
        .parse()
        .unwrap()
}

/// How many users the database holds.
pub fn user_count(db: &TestDb) -> i64 {
    count(db, "select count(*) from users")
}

/// Runs SQL for its side effects, which must succeed.
#[track_caller]
pub fn exec(db: &TestDb, sql: &str) {
    run(db, &["sql", "-c", sql]).ok();
}

/// The id of the user named `name` (one provider only).
#[track_caller]
pub fn user_id(db: &TestDb, name: &str) -> i64 {
    scalar(
        db,
        &format!("select id from users where username = '{name}'"),
    )
    .expect("an id is never NULL")
    .parse()
    .unwrap()
}

/// A fresh database with one user, added by `admin-cli add-user ARGS...` (which must succeed).
pub async fn db_with_user(add_user_args: &[&str]) -> Db {
    let db = Db::new().await;
    let mut args = vec!["add-user"];
    args.extend_from_slice(add_user_args);
    run(&db, &args).ok();
    db
}

/// A fresh database with two users named `name`, a local one and then a Keycloak one:
/// the database and their ids.
pub async fn db_with_namesakes(name: &str) -> (Db, i64, i64) {
    let db = Db::new().await;
    let local = user(&db, name, AuthProvider::Local).await;
    let keycloak = user(&db, name, AuthProvider::Keycloak).await;
    (db, local, keycloak)
}

/// Creates a user through the db crate and returns its id.
pub async fn user(db: &TestDb, name: &str, provider: AuthProvider) -> i64 {
    let mut conn = db.conn().await;
    db::users::create(
        &mut conn,
        &NewUser {
            username: name,
            auth_provider: provider,
            password_hash: None,
            role: Role::User,
        },
    )
    .await
    .expect("create user")
    .id
}

/// A direct simulation of `ntasks` tasks, `100 * ntasks` primaries, with a small input row.
pub fn new_sim(user_id: i64, title: &str, ntasks: i32) -> NewSimulation {
    NewSimulation {
        user_id,
        title: title.into(),
        platform: Platform::Direct,
        input_type: InputType::Editor,
        sim_type: SimType::Builtin,
        ntasks,
        primaries: 100 * i64::from(ntasks),
        cluster_id: None,
        sbatch_options: Vec::new(),
        max_attempts: 3,
    }
}

/// Creates a direct simulation with `ntasks` tasks and an input row; returns it.
pub async fn sim(db: &TestDb, user_id: i64, title: &str, ntasks: i32) -> Simulation {
    let mut conn = db.conn().await;
    // The bytes are opaque to the CLI; they need not be a real compressed blob.
    let input: &[u8] = b"input-bytes";
    db::simulations::create_with_tasks(
        &mut conn,
        &new_sim(user_id, title, ntasks),
        Some((input, 11)),
    )
    .await
    .expect("create simulation")
}

/// The non-empty lines of a table's output, split on runs of spaces.
pub fn table(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The JSON that `admin-cli ARGS...` against `db` prints, which must succeed.
#[track_caller]
pub fn json_of(db: &TestDb, args: &[&str]) -> serde_json::Value {
    let out = run(db, args);
    out.ok();
    out.json()
}

/// The table of a successful run, whose header must be `header` (the column names, one
/// space apart).
#[track_caller]
pub fn table_with_header(out: &Out, header: &str) -> Vec<Vec<String>> {
    let t = table(&out.ok().stdout);
    assert_eq!(t[0].join(" "), header);
    t
}

/// `--json COMMAND ARGS`, which must succeed with a JSON array.
pub fn list_json(db: &TestDb, command: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["--json", command];
    all.extend_from_slice(args);
    let out = run(db, &all);
    out.ok();
    out.json().as_array().unwrap().clone()
}

/// Two users (alice local, kc keycloak) and three simulations: alice's A (3 tasks) and
/// B (3 tasks), kc's C (2 tasks). Returns (A, B, C) ids.
pub async fn seed(db: &Db) -> (i64, i64, i64) {
    let alice = user(db, "alice", AuthProvider::Local).await;
    let kc = user(db, "kc", AuthProvider::Keycloak).await;
    let a = sim(db, alice, "first", 3).await.id;
    let b = sim(db, alice, "second", 3).await.id;
    let c = sim(db, kc, "third", 2).await.id;
    (a, b, c)
}

/// A fresh database with [`seed`]'s users and simulations: the database and the ids of A,
/// B and C.
pub async fn seeded() -> (Db, i64, i64, i64) {
    let db = Db::new().await;
    let (a, b, c) = seed(&db).await;
    (db, a, b, c)
}

/// Runs `args`, which must fail cleanly (exit code 1) with `message` in stderr.
pub fn fails_cleanly(db: &TestDb, args: &[&str], message: &str) -> Out {
    let out = run(db, args);
    out.fails_with(message);
    out
}

/// The standard output of `admin-cli ARGS...` against `db`, which must succeed.
#[track_caller]
pub fn stdout_of(db: &TestDb, args: &[&str]) -> String {
    let out = run(db, args);
    out.ok();
    out.stdout
}
