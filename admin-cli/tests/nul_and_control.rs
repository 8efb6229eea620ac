//! Text PostgreSQL cannot store (a NUL byte) and names with control characters get a clear
//! one-line error and exit 1, with nothing written: add-user names, passwords from standard
//! input, and SQL from a file or standard input. (A NUL cannot come through a command-line
//! argument at all.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;

#[tokio::test]
async fn add_user_refuses_control_characters_in_names() {
    let db = Db::new().await;
    for name in [
        "a\nb",
        "\u{1b}[31mred",
        "tab\tname",
        "bell\u{7}",
        "del\u{7f}",
    ] {
        let out = run(&db, &["add-user", "--password", "pw-control-1", "--", name]);
        out.expect_code(1);
        out.assert_clean_error();
        assert_eq!(out.stderr.lines().count(), 1, "{:?}", out.stderr);
        assert!(
            out.stderr
                .contains("a user name must not contain control characters"),
            "{}",
            out.stderr
        );
        // The character is named escaped, never echoed raw.
        assert!(
            !out.stderr.contains('\u{1b}') && !out.stderr.contains('\u{7}'),
            "{:?}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{:?}", out.stdout);
    }
    assert_eq!(user_count(&db), 0);
    // Other unusual characters are fine.
    run(&db, &["add-user", "Zoë Łukasiewicz"]).ok();
    assert_eq!(user_count(&db), 1);
}

#[tokio::test]
async fn a_nul_in_a_password_from_stdin_is_refused() {
    let db = Db::new().await;
    let out = run_stdin(
        &db,
        &["add-user", "alice", "--password-stdin"],
        "secret\0tail-9\n",
    );
    out.expect_code(1);
    out.assert_clean_error();
    assert_eq!(
        out.stderr,
        "error: the password contains a NUL byte; choose one without\n"
    );
    assert!(!out.all().contains("secret"), "the password leaked");
    assert_eq!(user_count(&db), 0);

    run(&db, &["add-user", "bob", "--password", "pw-bob-1"]).ok();
    let before = scalar(
        &db,
        "select password_hash from users where username = 'bob'",
    );
    let out = run_stdin(
        &db,
        &["update-user", "bob", "--password-stdin"],
        "new\0pw\n",
    );
    out.fails_with("NUL byte");
    assert_eq!(
        scalar(
            &db,
            "select password_hash from users where username = 'bob'"
        ),
        before,
        "the password did not change"
    );
}

#[tokio::test]
async fn a_nul_in_sql_from_a_file_or_stdin_is_a_clear_error() {
    let db = Db::new().await;
    let dir = std::env::temp_dir().join(format!("admin-cli-nul-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("nul.sql");
    std::fs::write(&file, b"create table t (x int);\nselect 1\0;").unwrap();
    let out = run(&db, &["sql", "-f", file.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    out.expect_code(1);
    out.assert_clean_error();
    assert_eq!(
        out.stderr,
        "error: the SQL contains a NUL byte (at byte 32), which PostgreSQL cannot take in a statement\n"
    );
    // Nothing ran, not even the statement before the NUL.
    assert_eq!(
        scalar(&db, "select to_regclass('t')::text"),
        None,
        "no statement ran"
    );

    let out = run_stdin(&db, &["sql", "-f", "-"], "select 'a\0b'");
    out.fails_with("NUL byte (at byte 9)");
}
