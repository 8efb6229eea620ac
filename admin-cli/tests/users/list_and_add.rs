//! list-users and add-user.

use crate::common::*;
use crate::*;
use db::enums::AuthProvider;

// ---------------------------------------------------------------- list-users

#[tokio::test]
async fn list_users_prints_header_and_one_row_per_user() {
    let db = db_with_user(&["alice", "--admin"]).await;
    run(&db, &["add-user", "bob"]).ok();

    let out = run(&db, &["list-users"]);
    let t = table(&out.ok().stdout);
    assert_eq!(t[0], ["ID", "USERNAME", "PROVIDER", "ROLE", "CREATED"]);
    assert_eq!(t.len(), 3, "{}", out.stdout);
    // Sorted by name; CREATED is a date and a time, so 6 tokens per row.
    assert_eq!(t[1][1..4], ["alice", "local", "admin"]);
    assert_eq!(t[2][1..4], ["bob", "local", "user"]);
    assert_eq!(t[1].len(), 6, "{:?}", t[1]);
    assert!(!out.stdout.contains("PASSWORD"));
}

#[tokio::test]
async fn list_users_on_an_empty_table_prints_only_the_header() {
    let db = Db::new().await;
    let out = stdout_of(&db, &["list-users"]);
    assert_eq!(
        table(&out),
        [["ID", "USERNAME", "PROVIDER", "ROLE", "CREATED"]]
    );
    let json = run(&db, &["list-users", "--json"]);
    json.ok();
    assert_eq!(json.json(), serde_json::json!([]));
}

#[tokio::test]
async fn list_users_verbose_adds_password_and_simulation_counts() {
    let db = db_with_user(&["alice", "--password", "pw-alice-1"]).await;
    run(&db, &["add-user", "bob"]).ok();
    let carol = user(&db, "carol", AuthProvider::Keycloak).await;
    let alice: i64 = scalar(&db, "select id from users where username = 'alice'")
        .unwrap()
        .parse()
        .unwrap();
    sim(&db, alice, "a1", 1).await;
    sim(&db, alice, "a2", 2).await;
    sim(&db, carol, "c1", 3).await;

    let out = run(&db, &["list-users", "-v"]);
    let t = table(&out.ok().stdout);
    assert_eq!(
        t[0],
        [
            "ID",
            "USERNAME",
            "PROVIDER",
            "ROLE",
            "CREATED",
            "PASSWORD",
            "SIMULATIONS"
        ]
    );
    let row = |name: &str| {
        t.iter()
            .find(|r| r[1] == name)
            .unwrap_or_else(|| panic!("no row for {name}:\n{}", out.stdout))
            .clone()
    };
    // ID NAME PROVIDER ROLE DATE TIME PASSWORD SIMULATIONS
    assert_eq!(row("alice")[6..], ["set", "2"]);
    assert_eq!(row("bob")[6..], ["none", "0"]);
    assert_eq!(row("carol")[2], "keycloak");
    assert_eq!(row("carol")[6..], ["none", "1"]);
}

#[tokio::test]
async fn list_users_json_has_every_field() {
    let db = db_with_user(&words("alice --admin --password pw-json-1")).await;
    let alice = user_id(&db, "alice");
    sim(&db, alice, "s", 1).await;

    let plain = users_json(&db, false);
    assert_eq!(plain.len(), 1);
    let u = &plain[0];
    assert_eq!(u["id"], alice);
    assert_eq!(u["username"], "alice");
    assert_eq!(u["auth_provider"], "local");
    assert_eq!(u["role"], "admin");
    assert_eq!(u["has_password"], true);
    assert!(
        u["created_at"]
            .as_str()
            .is_some_and(|s| s.starts_with("20")),
        "{u}"
    );
    assert!(u["simulations"].is_null(), "counts only with -v: {u}");
    assert!(
        u.get("password_hash").is_none(),
        "the hash must not be listed: {u}"
    );

    let verbose = users_json(&db, true);
    assert_eq!(verbose[0]["simulations"], 1);
}

// ---------------------------------------------------------------- add-user

#[tokio::test]
async fn add_user_with_password_stores_an_argon2id_hash_and_never_prints_the_password() {
    let db = Db::new().await;
    let pw = "Tr0ub4dor&3-horse";
    let out = run(&db, &["add-user", "alice", "--password", pw]);
    out.ok();
    assert!(
        out.stdout.contains("added user \"alice\" (local, user)"),
        "{}",
        out.stdout
    );

    let hash = hash_of(&db, "alice").expect("a password hash");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(pw));
    assert!(
        db::password::verify(pw, &hash),
        "the hash is of the given password"
    );

    let mut seen = out.all();
    for args in [
        &["list-users"][..],
        &["list-users", "-v"],
        &["list-users", "-v", "--json"],
    ] {
        let o = run(&db, args);
        o.ok();
        seen.push_str(&o.all());
    }
    assert!(!seen.contains(pw), "the password leaked:\n{seen}");
}

#[tokio::test]
async fn add_user_reads_the_password_from_stdin() {
    let db = Db::new().await;
    let pw = "from-stdin pw with spaces";
    let out = run_stdin(
        &db,
        &["add-user", "alice", "--password-stdin"],
        &format!("{pw}\nsecond line\n"),
    );
    out.ok();
    assert!(
        !out.all().contains(pw),
        "the password leaked:\n{}",
        out.all()
    );

    let hash = hash_of(&db, "alice").expect("a password hash");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(
        db::password::verify(pw, &hash),
        "only the first line, without its newline, is the password"
    );
    let listed = run(&db, &["list-users", "-v", "--json"]);
    listed.ok();
    assert!(!listed.all().contains(pw));
    assert_eq!(listed.json()[0]["has_password"], true);
}

#[tokio::test]
async fn add_user_with_crlf_on_stdin_strips_the_line_end() {
    let db = Db::new().await;
    run_stdin(&db, &["add-user", "win", "--password-stdin"], "pw-crlf\r\n").ok();
    let hash = hash_of(&db, "win").unwrap();
    assert!(db::password::verify("pw-crlf", &hash));
}

#[tokio::test]
async fn add_user_with_empty_stdin_is_rejected() {
    let db = Db::new().await;
    let out = run_stdin(&db, &["add-user", "alice", "--password-stdin"], "");
    out.fails_with("no password on standard input");
    assert_eq!(user_count(&db), 0);

    let blank = run_stdin(&db, &["add-user", "alice", "--password-stdin"], "\n");
    blank.expect_code(1);
    assert_eq!(user_count(&db), 0);
}

#[tokio::test]
async fn add_user_with_admin_makes_an_administrator_without_password() {
    let db = Db::new().await;
    let out = stdout_of(&db, &["add-user", "root", "--admin"]);
    assert!(out.contains("(local, admin)"), "{}", out);
    assert!(out.contains("no password"), "{}", out);
    let u = &users_json(&db, false)[0];
    assert_eq!(u["role"], "admin");
    assert_eq!(u["has_password"], false);
    assert!(hash_of(&db, "root").is_none());
}

#[tokio::test]
async fn add_user_json_confirmation_has_no_hash() {
    let db = Db::new().await;
    let out = run(&db, &words("--json add-user alice --password pw-x-123"));
    out.ok();
    let v = out.json();
    assert_eq!(v["username"], "alice");
    assert_eq!(v["has_password"], true);
    assert!(!out.stdout.contains("argon2"), "{}", out.stdout);
}

#[tokio::test]
async fn add_user_duplicate_is_refused() {
    let db = db_with_user(&["alice"]).await;
    fails_cleanly(
        &db,
        &["add-user", "alice", "--admin"],
        "user \"alice\" (local) already exists",
    );
    // The first user is untouched.
    assert_eq!(users_json(&db, false)[0]["role"], "user");
    assert_eq!(user_count(&db), 1);
}

#[tokio::test]
async fn add_user_local_is_allowed_next_to_a_keycloak_user_of_the_same_name() {
    let db = Db::new().await;
    user(&db, "dana", AuthProvider::Keycloak).await;
    run(&db, &["add-user", "dana"]).ok();
    assert_eq!(
        count(&db, "select count(*) from users where username = 'dana'"),
        2
    );
}

#[tokio::test]
async fn add_user_with_an_empty_name_is_rejected() {
    let db = Db::new().await;
    fails_cleanly(&db, &["add-user", ""], "1 to 255");
    assert_eq!(user_count(&db), 0);
}

#[tokio::test]
async fn add_user_name_length_limit() {
    let db = Db::new().await;
    let max = "n".repeat(255);
    run(&db, &["add-user", &max]).ok();
    fails_cleanly(&db, &["add-user", &"n".repeat(256)], "1 to 255");
    assert_eq!(user_count(&db), 1);
}

/// `add-user --help` promises "1 to 255 characters" and the schema checks characters
/// (`length(username)`), so a 255-character name of two-byte characters must be accepted.
#[tokio::test]
async fn add_user_accepts_255_multibyte_characters() {
    let db = Db::new().await;
    let name = "é".repeat(255); // 510 bytes
    let out = run(&db, &["add-user", &name]);
    out.ok();
    assert_eq!(names(&users_json(&db, false)), [name]);
    // And 256 characters are still refused.
    run(&db, &["add-user", &"é".repeat(256)]).expect_code(1);
}

#[tokio::test]
async fn add_user_with_password_and_password_stdin_is_bad_usage() {
    let db = Db::new().await;
    let out = run_stdin(
        &db,
        &words("add-user alice --password pw-1 --password-stdin"),
        "pw-2\n",
    );
    out.usage_error_with("cannot be used with");
    assert!(
        !out.stderr.contains("pw-1"),
        "the password is echoed: {}",
        out.stderr
    );
    assert_eq!(user_count(&db), 0);
}

#[tokio::test]
async fn add_user_with_empty_password_is_rejected() {
    let db = Db::new().await;
    fails_cleanly(&db, &["add-user", "alice", "--password", ""], "empty");
    assert_eq!(user_count(&db), 0);
}

#[tokio::test]
async fn add_user_with_too_long_password_is_rejected() {
    let db = Db::new().await;
    let long = "p".repeat(1025);
    let out = fails_cleanly(
        &db,
        &["add-user", "alice", "--password", &long],
        "longer than 1024 bytes",
    );
    assert!(!out.stderr.contains(&long));
    assert_eq!(user_count(&db), 0);
    run(&db, &["add-user", "alice", "--password", &"p".repeat(1024)]).ok();
}

#[tokio::test]
async fn update_user_with_empty_password_is_rejected() {
    let db = db_with_user(&["alice", "--password", "keep-pw-2"]).await;
    let out = run(&db, &["update-user", "alice", "--password", ""]);
    out.fails_with("empty");
    assert!(has_password(&db, "alice", "keep-pw-2"));
}

#[tokio::test]
async fn add_user_without_a_name_is_bad_usage() {
    let db = Db::new().await;
    run(&db, &["add-user"]).expect_code(2);
}
