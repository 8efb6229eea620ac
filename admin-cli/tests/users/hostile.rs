//! Hostile names: quotes, wildcards and control characters, stored and printed literally.

use crate::common::*;
use crate::*;
use db::enums::AuthProvider;

// ---------------------------------------------------------------- hostile names

const HOSTILE: &[&str] = &[
    "Robert'); DROP TABLE users;--",
    "x\" OR \"1\"=\"1",
    "' OR '1'='1",
    "%_\\",
    "$1",
    "admin' --",
    "Zoë Łukasiewicz",
    "日本語ユーザー",
    "😀 emoji",
    "-leading-dash",
    "  spaced  ",
];

#[tokio::test]
async fn hostile_names_are_stored_and_printed_literally() {
    let db = Db::new().await;
    for name in HOSTILE {
        // `--` ends the options, so a name starting with `-` is a name.
        let out = stdout_of(&db, &["add-user", "--password", "pw-hostile-1", "--", name]);
        assert!(out.contains(&format!("{name:?}")), "{}", out);
    }
    // The users table survived, with exactly these rows.
    assert_eq!(
        scalar(&db, "select to_regclass('users')::text").as_deref(),
        Some("users")
    );
    assert_eq!(user_count(&db), HOSTILE.len() as i64);

    let mut expected: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    expected.sort();
    let mut got = names(&users_json(&db, true));
    got.sort();
    assert_eq!(got, expected, "names round-trip exactly through --json");

    let table = stdout_of(&db, &["list-users"]);
    for name in HOSTILE {
        assert!(
            table.contains(name),
            "{name:?} not printed literally:\n{}",
            table
        );
    }
}

#[tokio::test]
async fn hostile_names_work_with_update_and_remove() {
    let db = Db::new().await;
    for name in HOSTILE {
        run(&db, &["add-user", "--", name]).ok();
    }
    for name in HOSTILE {
        run(&db, &["update-user", "--admin", "--", name]).ok();
    }
    let users = users_json(&db, false);
    assert!(users.iter().all(|u| u["role"] == "admin"), "{users:?}");
    for name in HOSTILE {
        run(&db, &["remove-user", "--", name]).ok();
    }
    assert_eq!(user_count(&db), 0);
    assert_eq!(
        scalar(&db, "select to_regclass('users')::text").as_deref(),
        Some("users")
    );
}

#[tokio::test]
async fn like_wildcards_in_names_match_only_themselves() {
    let db = Db::new().await;
    for name in ["%_\\", "abc", "a_c", "xyz"] {
        run(&db, &["add-user", name]).ok();
    }
    // `%` and `_` are not patterns: nothing matches them but themselves.
    run(&db, &["remove-user", "%"]).expect_code(1);
    run(&db, &["update-user", "a%", "--admin"]).expect_code(1);
    run(&db, &["update-user", "%_\\", "--admin"]).ok();
    run(&db, &["remove-user", "a_c"]).ok();
    let users = users_json(&db, false);
    let admins: Vec<&str> = users
        .iter()
        .filter(|u| u["role"] == "admin")
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(admins, ["%_\\"]);
    let mut left = names(&users);
    left.sort();
    assert_eq!(left, ["%_\\", "abc", "xyz"]);
}

#[tokio::test]
async fn control_characters_are_escaped_in_tables_and_exact_in_json() {
    let db = Db::new().await;
    let name = "ev\u{1b}[31mil\nfake row\u{7}";
    // add-user refuses such a name (tests/nul_and_control.rs); one made some other way (an
    // older version, SQL, an identity provider) is still shown safely and addressable.
    user(&db, name, AuthProvider::Local).await;

    for args in [&["list-users"][..], &["list-users", "-v"]] {
        let out = run(&db, args);
        out.ok();
        assert!(
            !out.stdout.contains('\u{1b}'),
            "raw ESC in: {:?}",
            out.stdout
        );
        assert!(
            !out.stdout.contains('\u{7}'),
            "raw BEL in: {:?}",
            out.stdout
        );
        assert_eq!(
            out.stdout.lines().count(),
            2,
            "the newline must not start a row: {:?}",
            out.stdout
        );
        assert!(
            out.stdout.contains("ev\\u{1b}[31mil\\nfake row\\u{7}"),
            "{:?}",
            out.stdout
        );
    }
    assert_eq!(names(&users_json(&db, false)), [name]);
    // The exact name still addresses the user.
    run(&db, &["update-user", name, "--admin"]).ok();
    run(&db, &["remove-user", name]).ok();
    assert_eq!(user_count(&db), 0);
}

#[tokio::test]
async fn not_found_messages_escape_control_characters() {
    let db = Db::new().await;
    let out = run(&db, &["remove-user", "no\u{1b}]0;pwned\u{7}body"]);
    out.expect_code(1);
    assert!(
        !out.stderr.contains('\u{1b}'),
        "raw ESC in: {:?}",
        out.stderr
    );
    assert!(out.stderr.contains("not found"), "{}", out.stderr);
}
