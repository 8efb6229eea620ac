//! db-url, database settings from the environment, connection failures, --help, bad usage.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;

/// Every subcommand path, top-level first.
const SUBCOMMANDS: &[&[&str]] = &[
    &[],
    &["list-users"],
    &["add-user"],
    &["update-user"],
    &["remove-user"],
    &["list-tasks"],
    &["remove-task"],
    &["list-simulations"],
    &["remove-simulation"],
    &["add-cluster"],
    &["list-clusters"],
    &["remove-cluster"],
    &["migrate"],
    &["sql"],
    &["db-url"],
];

const MIGRATE_SUBCOMMANDS: &[&[&str]] = &[
    &["migrate", "status"],
    &["migrate", "run"],
    &["migrate", "revert"],
    &["migrate", "redo"],
];

// ---------------------------------------------------------------- db-url

#[test]
fn db_url_redacts_the_password() {
    let out = run_url("postgres://u:secret@h/d", &["db-url"]);
    out.ok();
    assert_eq!(out.stdout, "postgres://u:***@h/d\n");
    assert!(!out.all().contains("secret"));

    let q = run_url(
        "postgres://u@h:6000/d?sslmode=disable&password=hunter2",
        &["db-url"],
    );
    q.ok();
    assert_eq!(
        q.stdout,
        "postgres://u@h:6000/d?sslmode=disable&password=***\n"
    );
}

#[test]
fn db_url_show_password() {
    let out = run_url("postgres://u:secret@h/d", &["db-url", "--show-password"]);
    out.ok();
    assert_eq!(out.stdout, "postgres://u:secret@h/d\n");
}

#[test]
fn db_url_reads_database_url_from_the_environment() {
    let out = run_env(
        &[("DATABASE_URL", "postgres://env:pw@envhost:5555/envdb")],
        &["db-url"],
    );
    out.ok();
    assert_eq!(out.stdout, "postgres://env:***@envhost:5555/envdb\n");
    // The flag wins over the environment.
    let mut c = bin();
    c.env("DATABASE_URL", "postgres://env@envhost/envdb").args([
        "--database-url",
        "postgres://flag@flaghost/flagdb",
        "db-url",
    ]);
    let flag = output(c, None);
    flag.ok();
    assert_eq!(flag.stdout, "postgres://flag@flaghost/flagdb\n");
}

#[test]
fn db_url_defaults_without_any_setting() {
    let out = run_env(&[], &["db-url"]);
    out.ok();
    assert_eq!(
        out.stdout,
        "postgres://postgres@127.0.0.1:5432/simulations\n"
    );
}

#[test]
fn db_parts_build_the_url_when_database_url_is_absent() {
    let env = [
        ("DB_HOST", "db.example"),
        ("DB_PORT", "6543"),
        ("DB_USER", "sim"),
        ("DB_PASSWORD", "p@ss:w/rd"),
        ("DB_NAME", "sims"),
    ];
    let out = run_env(&env, &["db-url"]);
    out.ok();
    assert_eq!(out.stdout, "postgres://sim:***@db.example:6543/sims\n");
    let shown = run_env(&env, &["db-url", "--show-password"]);
    shown.ok();
    assert_eq!(
        shown.stdout,
        "postgres://sim:p%40ss%3Aw%2Frd@db.example:6543/sims\n"
    );

    // DATABASE_URL wins over the parts.
    let mut with_url = env.to_vec();
    with_url.push(("DATABASE_URL", "postgres://u@h/d"));
    let url = run_env(&with_url, &["db-url"]);
    url.ok();
    assert_eq!(url.stdout, "postgres://u@h/d\n");
}

#[tokio::test]
async fn db_parts_are_used_to_connect() {
    let db = Db::new().await;
    run(&db, &["add-user", "via-parts"]).ok();
    let env = [
        ("DB_HOST", "127.0.0.1"),
        ("DB_PORT", "5432"),
        ("DB_USER", "postgres"),
        ("DB_PASSWORD", "ignored-by-trust"),
        ("DB_NAME", db.name()),
    ];
    let out = run_env(&env, &["--json", "list-users"]);
    out.ok();
    assert_eq!(out.json()[0]["username"], "via-parts");
    assert!(!out.all().contains("ignored-by-trust"));
}

/// `DB_HOST=::1` is a valid host (libpq's PGHOST accepts it), but the URL built from it,
/// `postgres://postgres@::1:5432/simulations`, is not one the driver can parse.
#[test]
fn db_host_ipv6_address_is_bracketed() {
    let out = run_env(&[("DB_HOST", "::1"), ("DB_NAME", "d")], &["db-url"]);
    out.ok();
    assert_eq!(out.stdout, "postgres://postgres@[::1]:5432/d\n");
}

#[tokio::test]
async fn db_socket_dir_connects_over_a_unix_socket() {
    let dir = "/var/run/postgresql";
    assert!(
        std::path::Path::new(dir).join(".s.PGSQL.5432").exists(),
        "this test needs the server's Unix socket in {dir}"
    );
    let db = Db::new().await;
    let env = [("DB_SOCKET_DIR", dir), ("DB_NAME", db.name())];
    let url = run_env(&env, &["db-url"]);
    url.ok();
    assert_eq!(
        url.stdout,
        format!(
            "postgres://postgres@%2Fvar%2Frun%2Fpostgresql:5432/{}\n",
            db.name()
        )
    );
    run_env(&env, &["list-users"]).ok();
    run_env(&env, &["migrate", "status"]).ok();
    let out = run_env(
        &env,
        &[
            "--json",
            "sql",
            "-c",
            "select (inet_server_addr() is null)::text as unix",
        ],
    );
    out.ok();
    assert_eq!(
        out.json()[0]["rows"][0][0],
        "true",
        "connected over the socket, not TCP"
    );
}

#[tokio::test]
async fn closed_stdout_is_not_an_error() {
    // `admin-cli ... | head -1`: the reader goes away; the tool exits quietly with 0.
    use std::io::Read;
    let db = Db::new().await;
    let mut c = bin();
    c.args([
        "--database-url",
        db.config().url_with_password(),
        "sql",
        "-c",
        "select repeat('x', 100) as line from generate_series(1, 100000)",
    ])
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 5];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"line\n");
    drop(stdout);
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn bad_database_settings_are_rejected() {
    run_url("mysql://u@h/d", &["list-users"]).fails_with("postgres://");
    run_env(&[("DB_PORT", "fifty")], &["list-users"])
        .fails_with("DB_PORT \"fifty\" is not a port number");
    run_env(&[("DB_HOST", "a@b")], &["db-url"]).fails_with("DB_HOST");
}

// ---------------------------------------------------------------- connection failures

/// The URL of database `name`, which does not exist, on the test server.
async fn missing_database_url(name: &str) -> String {
    let db = Db::new().await;
    db.config()
        .with_dbname(name)
        .url_with_password()
        .to_string()
}

#[tokio::test]
async fn missing_database_is_a_short_error_with_a_hint() {
    let url = missing_database_url("simtest_no_such_database_x").await;
    for args in [
        &["list-users"][..],
        &["migrate", "run"],
        &["migrate", "status"],
        &["migrate", "revert"],
    ] {
        let out = run_url(&url, args);
        out.expect_code(1).assert_clean_error();
        assert!(
            out.stderr.contains("simtest_no_such_database_x")
                && out.stderr.contains("does not exist"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("\nhint: "), "{args:?}: {}", out.stderr);
        assert!(out.stderr.lines().count() <= 2, "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty());
    }
}

/// `sql` connects with tokio-postgres, whose `Display` for a server error is only
/// "db error": the operator is not told that the database does not exist.
#[tokio::test]
async fn sql_on_a_missing_database_names_the_problem() {
    let url = missing_database_url("simtest_no_such_database_y").await;
    let out = run_url(&url, &["sql", "-c", "select 1"]);
    out.fails_with("\nhint: ");
    assert!(
        out.stderr
            .contains("database \"simtest_no_such_database_y\" does not exist"),
        "{}",
        out.stderr
    );
}

#[test]
fn unreachable_server_is_a_short_error_with_a_hint_and_no_password() {
    let url = "postgres://postgres:hunter2-secret@127.0.0.1:1/simulations";
    for args in [
        &["list-users"][..],
        &["remove-user", "x"],
        &["sql", "-c", "select 1"],
        &["migrate", "run"],
        &["migrate", "status"],
        &["migrate", "revert"],
    ] {
        let out = run_url(url, args);
        out.expect_code(1).assert_clean_error();
        assert!(
            out.stderr.contains(
                "cannot connect to the database at postgres://postgres:***@127.0.0.1:1/simulations"
            ),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("\nhint: is PostgreSQL running"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.stderr.lines().count() <= 2, "{args:?}: {}", out.stderr);
        assert!(
            !out.all().contains("hunter2"),
            "{args:?}: the password leaked: {}",
            out.stderr
        );
    }
}

// ---------------------------------------------------------------- help and usage

fn help(path: &[&str]) -> Out {
    let mut args: Vec<&str> = path.to_vec();
    args.push("--help");
    run_env(&[], &args)
}

/// Asserts that `admin-cli PATH... --help` exits 0 and mentions each of `needles`.
#[track_caller]
fn assert_help_mentions(path: &[&str], needles: &[&str]) {
    let out = help(path);
    out.ok();
    for needle in needles {
        assert!(
            out.stdout.contains(needle),
            "{path:?} --help:\n{}",
            out.stdout
        );
    }
}

#[test]
fn every_subcommand_help_exits_0_and_mentions_exit_codes() {
    for path in SUBCOMMANDS {
        assert_help_mentions(path, &["Exit codes", "2  bad usage"]);
    }
}

/// `migrate status|run|revert|redo --help` lack the "Exit codes" footer: the
/// `after_help` is only on the `migrate` group, not on `MigrateCommand`'s variants.
#[test]
fn every_migrate_subcommand_help_mentions_exit_codes() {
    for path in MIGRATE_SUBCOMMANDS {
        assert_help_mentions(path, &["Exit codes"]);
    }
}

#[test]
fn help_subcommand_form_works_too() {
    let out = run_env(&[], &["help", "add-cluster"]);
    out.ok();
    assert!(out.stdout.contains("--sbatch-option"), "{}", out.stdout);
}

#[test]
fn passwords_never_appear_in_help() {
    for args in [
        &["add-user", "bob", "--password", "Zx9-help-secret", "--help"][..],
        &[
            "update-user",
            "bob",
            "--password",
            "Zx9-help-secret",
            "--help",
        ],
        &["--help", "add-user", "bob", "--password", "Zx9-help-secret"],
    ] {
        let out = run_env(&[], args);
        out.ok();
        assert!(
            !out.all().contains("Zx9-help-secret"),
            "{args:?}:\n{}",
            out.all()
        );
    }
    // Nor does the DATABASE_URL's password, though the option shows its env variable.
    let env = [
        ("DATABASE_URL", "postgres://u:Env-secret-42@h/d"),
        ("DB_PASSWORD", "Part-secret-43"),
    ];
    for path in SUBCOMMANDS {
        let mut args = path.to_vec();
        args.push("--help");
        let out = run_env(&env, &args);
        out.ok();
        assert!(!out.all().contains("secret-4"), "{path:?}:\n{}", out.all());
    }
}

#[test]
fn unknown_subcommand_or_option_is_bad_usage() {
    let out = run_env(&[], &["frobnicate"]);
    out.usage_error_with("frobnicate");
    assert!(out.stdout.is_empty());
    run_env(&[], &["list-users", "--frobnicate"]).expect_code(2);
    run_env(&[], &["--frobnicate", "list-users"]).expect_code(2);
    run_env(&[], &["migrate", "frobnicate"]).expect_code(2);
    // No subcommand at all.
    run_env(&[], &[]).expect_code(2);
}

#[test]
fn bad_usage_does_not_touch_the_database() {
    // Usage errors come before any connection attempt, so an unreachable server does not matter.
    let out = run_url("postgres://u@127.0.0.1:1/d", &["remove-task", "x", "y"]);
    out.expect_code(2);
    assert!(!out.stderr.contains("cannot connect"), "{}", out.stderr);
}

#[test]
fn version_exits_0() {
    let out = run_env(&[], &["--version"]);
    out.ok();
    assert!(out.stdout.starts_with("admin-cli "), "{}", out.stdout);
}
