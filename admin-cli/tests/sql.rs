//! sql -c SQL | -f FILE | -f -.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use serde_json::json;
use std::path::PathBuf;

/// A file under the test target's temporary directory, unique to this test.
fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "admin-cli-sql-{}-{}",
        std::process::id(),
        name
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.sql"));
    std::fs::write(&path, contents).unwrap();
    path
}

/// `admin-cli sql -c SQL` against `db`.
fn sql(db: &Db, sql: &str) -> Out {
    run(db, &["sql", "-c", sql])
}

/// The standard output of `admin-cli sql -c SQL` against `db`, which must succeed.
fn sql_stdout(db: &Db, statements: &str) -> String {
    stdout_of(db, &["sql", "-c", statements])
}

#[tokio::test]
async fn select_prints_header_null_and_row_count() {
    let db = Db::new().await;
    let out = sql(&db, "select 1 as a, null as b");
    out.ok();
    assert_eq!(out.stdout, "a  b\n1  NULL\n(1 row)\n");
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

/// The operator's connections carry the tool's name in `pg_stat_activity`, as the services'
/// carry theirs.
#[tokio::test]
async fn connections_are_named_admin_cli() {
    let db = Db::new().await;
    let name = "select application_name from pg_stat_activity where pid = pg_backend_pid()";
    assert_eq!(
        sql_stdout(&db, name),
        "application_name\nadmin-cli\n(1 row)\n"
    );
}

#[tokio::test]
async fn rows_are_aligned_and_counted() {
    let db = Db::new().await;
    let rows = "select x as n, repeat('w', x) as word from generate_series(1, 3) x order by x";
    let out = sql_stdout(&db, rows);
    assert_eq!(out, "n  word\n1  w\n2  ww\n3  www\n(3 rows)\n");

    let none = sql_stdout(&db, "select 1 as only where false");
    assert_eq!(none, "only\n(0 rows)\n");
}

#[tokio::test]
async fn multiple_statements_print_each_result() {
    let db = Db::new().await;
    let out = sql_stdout(
        &db,
        "select 1 as x; select 'two' as y, 3 as z; create temp table t (v int); insert into t values (1), (2)",
    );
    assert_eq!(
        out,
        "x\n1\n(1 row)\n\ny    z\ntwo  3\n(1 row)\n\nOK, 0 row(s) affected\n\nOK, 2 row(s) affected\n"
    );
}

#[tokio::test]
async fn insert_update_delete_report_affected_rows() {
    let db = Db::new().await;
    for (statement, affected) in [
        ("insert into users (username) values ('a'), ('b'), ('c')", 3),
        (
            "update users set role = 'admin' where username in ('a', 'b')",
            2,
        ),
        ("update users set role = 'admin' where username = 'zzz'", 0),
        ("delete from users where role = 'admin'", 2),
    ] {
        let want = format!("OK, {affected} row(s) affected\n");
        assert_eq!(sql_stdout(&db, statement), want, "{statement}");
    }
    assert_eq!(user_count(&db), 1);
}

#[tokio::test]
async fn statements_run_in_one_transaction() {
    let db = Db::new().await;
    sql(
        &db,
        "insert into users (username) values ('ghost'); select 1/0",
    )
    .fails_with("division by zero");
    assert_eq!(
        user_count(&db),
        0,
        "the insert before the failing statement is rolled back"
    );
}

#[tokio::test]
async fn syntax_error_reports_the_server_message() {
    let db = Db::new().await;
    let out = sql(&db, "selec 1");
    out.fails_with("syntax error at or near \"selec\"");
    assert!(out.stdout.is_empty());

    sql(&db, "select * from no_such_table").fails_with("relation \"no_such_table\" does not exist");
}

#[tokio::test]
async fn constraint_violation_reports_the_detail() {
    let db = Db::new().await;
    exec(&db, "insert into users (username) values ('dup')");
    let out = sql(&db, "insert into users (username) values ('dup')");
    out.fails_with("users_username_provider_key");
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
}

/// SQL often starts with a `--` comment; `psql -c '-- why\nselect 1'` takes it, but clap
/// reads a value starting with `--` as an unknown option unless `allow_hyphen_values` is set.
#[tokio::test]
async fn sql_command_may_start_with_a_comment() {
    let db = Db::new().await;
    let out = sql_stdout(&db, "-- why: checking\nselect 1 as a");
    assert_eq!(out, "a\n1\n(1 row)\n");
}

#[tokio::test]
async fn sql_command_with_equals_sign_may_start_with_a_comment() {
    let db = Db::new().await;
    let out = stdout_of(&db, &["sql", "--command=-- why\nselect 2 as b"]);
    assert_eq!(out, "b\n2\n(1 row)\n");
}

#[tokio::test]
async fn sql_from_a_file() {
    let db = Db::new().await;
    let path = temp_file(
        "from_file",
        "-- a comment\ninsert into users (username) values ('from-file');\nselect username from users;\n",
    );
    let out = stdout_of(&db, &["sql", "-f", path.to_str().unwrap()]);
    assert_eq!(
        out,
        "OK, 1 row(s) affected\n\nusername\nfrom-file\n(1 row)\n"
    );
    let long = run(&db, &["sql", "--file", path.to_str().unwrap()]);
    long.expect_code(1); // the second insert of the same name is a duplicate
    assert_eq!(user_count(&db), 1);
}

#[tokio::test]
async fn sql_from_stdin() {
    let db = Db::new().await;
    let out = run_stdin(&db, &["sql", "-f", "-"], "select 40 + 2 as answer;\n");
    out.ok();
    assert_eq!(out.stdout, "answer\n42\n(1 row)\n");
}

#[tokio::test]
async fn sql_missing_file_is_an_error() {
    let db = Db::new().await;
    fails_cleanly(
        &db,
        &["sql", "-f", "/nonexistent/dir/q.sql"],
        "cannot read SQL from /nonexistent/dir/q.sql",
    );
}

#[tokio::test]
async fn empty_sql_is_rejected() {
    let db = Db::new().await;
    for blank in ["", "   \n\t "] {
        sql(&db, blank).fails_with("no SQL to run");
    }
    let stdin = run_stdin(&db, &["sql", "-f", "-"], "");
    stdin.expect_code(1);
    assert!(stdin.stderr.contains("no SQL to run"), "{}", stdin.stderr);
}

#[tokio::test]
async fn neither_or_both_of_c_and_f_is_bad_usage() {
    let db = Db::new().await;
    let out = run(&db, &["sql"]);
    out.usage_error_with("--command");
    run(&db, &["sql", "-c", "select 1", "-f", "-"]).expect_code(2);
    run(&db, &["sql", "-c"]).expect_code(2);
    run(&db, &["sql", "-f"]).expect_code(2);
}

#[tokio::test]
async fn json_output() {
    let db = Db::new().await;
    let out = json_of(&db, &["--json", "sql", "-c", "select 1 as a, null as b, 'x' as c; create temp table t (v int); insert into t values (1), (2), (3)"]);
    assert_eq!(
        out,
        json!([
            { "kind": "rows", "columns": ["a", "b", "c"], "rows": [["1", null, "x"]] },
            { "kind": "command", "affected": 0 },
            { "kind": "command", "affected": 3 },
        ])
    );
    let empty = json_of(&db, &["sql", "--json", "-c", "select 1 as a where false"]);
    assert_eq!(
        empty,
        json!([{ "kind": "rows", "columns": ["a"], "rows": [] }])
    );
}

#[tokio::test]
async fn control_characters_in_values_are_escaped_in_tables_only() {
    let db = Db::new().await;
    let select = "select E'red\\x1b[31m\\nline' as v";
    let out = sql_stdout(&db, select);
    assert!(!out.contains('\u{1b}'), "{out:?}");
    assert!(out.contains("red\\u{1b}[31m\\nline"), "{out:?}");
    let json = json_of(&db, &["--json", "sql", "-c", select]);
    assert_eq!(json[0]["rows"][0][0], "red\u{1b}[31m\nline");
}

#[tokio::test]
async fn sql_works_on_an_unmigrated_database() {
    // `sql` is the way to look at (and repair) a database whatever its schema.
    let db = Db::empty().await;
    let out = sql_stdout(&db, "select current_database() as db");
    assert!(out.contains(db.name()), "{out}");
}
