//! list-users, add-user, update-user, remove-user, and hostile user names.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use db::enums::AuthProvider;
use serde_json::Value;

/// The users of `list-users --json`, by name.
fn users_json(db: &Db, verbose: bool) -> Vec<Value> {
    let mut args = vec!["--json", "list-users"];
    if verbose {
        args.push("-v");
    }
    let out = run(db, &args);
    out.ok();
    out.json().as_array().expect("a JSON array").clone()
}

fn names(users: &[Value]) -> Vec<String> {
    users
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect()
}

fn hash_of(db: &Db, name: &str) -> Option<String> {
    // Dollar quoting keeps the name literal whatever it contains (the names used here hold no `$q$`).
    scalar(
        db,
        &format!("select password_hash from users where username = $q${name}$q$ and auth_provider = 'local'"),
    )
}

// ---------------------------------------------------------------- list-users

#[tokio::test]
async fn list_users_prints_header_and_one_row_per_user() {
    let db = Db::new().await;
    run(&db, &["add-user", "alice", "--admin"]).ok();
    run(&db, &["add-user", "bob"]).ok();

    let out = run(&db, &["list-users"]);
    out.ok();
    let t = table(&out.stdout);
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
    let out = run(&db, &["list-users"]);
    out.ok();
    assert_eq!(
        table(&out.stdout),
        [["ID", "USERNAME", "PROVIDER", "ROLE", "CREATED"]]
    );
    let json = run(&db, &["list-users", "--json"]);
    json.ok();
    assert_eq!(json.json(), serde_json::json!([]));
}

#[tokio::test]
async fn list_users_verbose_adds_password_and_simulation_counts() {
    let db = Db::new().await;
    run(&db, &["add-user", "alice", "--password", "pw-alice-1"]).ok();
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
    out.ok();
    let t = table(&out.stdout);
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
    let db = Db::new().await;
    run(
        &db,
        &["add-user", "alice", "--admin", "--password", "pw-json-1"],
    )
    .ok();
    let alice: i64 = scalar(&db, "select id from users where username = 'alice'")
        .unwrap()
        .parse()
        .unwrap();
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
    out.expect_code(1).assert_clean_error();
    assert!(
        out.stderr.contains("no password on standard input"),
        "{}",
        out.stderr
    );
    assert_eq!(count(&db, "select count(*) from users"), 0);

    let blank = run_stdin(&db, &["add-user", "alice", "--password-stdin"], "\n");
    blank.expect_code(1);
    assert_eq!(count(&db, "select count(*) from users"), 0);
}

#[tokio::test]
async fn add_user_with_admin_makes_an_administrator_without_password() {
    let db = Db::new().await;
    let out = run(&db, &["add-user", "root", "--admin"]);
    out.ok();
    assert!(out.stdout.contains("(local, admin)"), "{}", out.stdout);
    assert!(out.stdout.contains("no password"), "{}", out.stdout);
    let u = &users_json(&db, false)[0];
    assert_eq!(u["role"], "admin");
    assert_eq!(u["has_password"], false);
    assert!(hash_of(&db, "root").is_none());
}

#[tokio::test]
async fn add_user_json_confirmation_has_no_hash() {
    let db = Db::new().await;
    let out = run(
        &db,
        &["--json", "add-user", "alice", "--password", "pw-x-123"],
    );
    out.ok();
    let v = out.json();
    assert_eq!(v["username"], "alice");
    assert_eq!(v["has_password"], true);
    assert!(!out.stdout.contains("argon2"), "{}", out.stdout);
}

#[tokio::test]
async fn add_user_duplicate_is_refused() {
    let db = Db::new().await;
    run(&db, &["add-user", "alice"]).ok();
    let out = run(&db, &["add-user", "alice", "--admin"]);
    out.expect_code(1).assert_clean_error();
    assert!(
        out.stderr.contains("user \"alice\" (local) already exists"),
        "{}",
        out.stderr
    );
    // The first user is untouched.
    assert_eq!(users_json(&db, false)[0]["role"], "user");
    assert_eq!(count(&db, "select count(*) from users"), 1);
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
    let out = run(&db, &["add-user", ""]);
    out.expect_code(1).assert_clean_error();
    assert!(out.stderr.contains("1 to 255"), "{}", out.stderr);
    assert_eq!(count(&db, "select count(*) from users"), 0);
}

#[tokio::test]
async fn add_user_name_length_limit() {
    let db = Db::new().await;
    let max = "n".repeat(255);
    run(&db, &["add-user", &max]).ok();
    let out = run(&db, &["add-user", &"n".repeat(256)]);
    out.expect_code(1).assert_clean_error();
    assert!(out.stderr.contains("1 to 255"), "{}", out.stderr);
    assert_eq!(count(&db, "select count(*) from users"), 1);
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
        &[
            "add-user",
            "alice",
            "--password",
            "pw-1",
            "--password-stdin",
        ],
        "pw-2\n",
    );
    out.expect_code(2);
    assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("pw-1"),
        "the password is echoed: {}",
        out.stderr
    );
    assert_eq!(count(&db, "select count(*) from users"), 0);
}

#[tokio::test]
async fn add_user_with_empty_password_is_rejected() {
    let db = Db::new().await;
    let out = run(&db, &["add-user", "alice", "--password", ""]);
    out.expect_code(1).assert_clean_error();
    assert!(out.stderr.contains("empty"), "{}", out.stderr);
    assert_eq!(count(&db, "select count(*) from users"), 0);
}

#[tokio::test]
async fn add_user_with_too_long_password_is_rejected() {
    let db = Db::new().await;
    let long = "p".repeat(1025);
    let out = run(&db, &["add-user", "alice", "--password", &long]);
    out.expect_code(1).assert_clean_error();
    assert!(
        out.stderr.contains("longer than 1024 bytes"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(&long));
    assert_eq!(count(&db, "select count(*) from users"), 0);
    run(&db, &["add-user", "alice", "--password", &"p".repeat(1024)]).ok();
}

#[tokio::test]
async fn update_user_with_empty_password_is_rejected() {
    let db = Db::new().await;
    run(&db, &["add-user", "alice", "--password", "keep-pw-2"]).ok();
    let out = run(&db, &["update-user", "alice", "--password", ""]);
    out.expect_code(1).assert_clean_error();
    assert!(out.stderr.contains("empty"), "{}", out.stderr);
    assert!(db::password::verify(
        "keep-pw-2",
        &hash_of(&db, "alice").unwrap()
    ));
}

#[tokio::test]
async fn add_user_without_a_name_is_bad_usage() {
    let db = Db::new().await;
    run(&db, &["add-user"]).expect_code(2);
}

// ---------------------------------------------------------------- update-user

#[tokio::test]
async fn update_user_admin_and_no_admin_change_the_role() {
    let db = Db::new().await;
    run(&db, &["add-user", "alice"]).ok();

    let out = run(&db, &["update-user", "alice", "--admin"]);
    out.ok();
    assert!(out.stdout.contains("role admin"), "{}", out.stdout);
    assert_eq!(users_json(&db, false)[0]["role"], "admin");

    run(&db, &["update-user", "alice", "--no-admin"]).ok();
    assert_eq!(users_json(&db, false)[0]["role"], "user");
}

#[tokio::test]
async fn update_user_password_sets_a_new_hash_and_revokes_tokens() {
    let db = Db::new().await;
    run(&db, &["add-user", "alice", "--password", "old-pw-1"]).ok();
    let old = hash_of(&db, "alice").unwrap();
    exec(
        &db,
        "insert into auth_tokens (user_id, token_hash, kind, session_id, expires_at) \
         select id, decode(repeat('ab', 32), 'hex'), 'access', gen_random_uuid(), now() + interval '1 hour' \
         from users where username = 'alice'",
    );

    let out = run(&db, &["update-user", "alice", "--password", "new-pw-2"]);
    out.ok();
    assert!(!out.all().contains("new-pw-2"));
    assert!(out.stdout.contains("password set"), "{}", out.stdout);
    let new = hash_of(&db, "alice").unwrap();
    assert_ne!(old, new);
    assert!(new.starts_with("$argon2id$"));
    assert!(db::password::verify("new-pw-2", &new));
    assert!(!db::password::verify("old-pw-1", &new));
    assert_eq!(
        scalar(&db, "select revoked::text from auth_tokens").as_deref(),
        Some("true")
    );
}

#[tokio::test]
async fn update_user_password_stdin() {
    let db = Db::new().await;
    run(&db, &["add-user", "alice"]).ok();
    let out = run_stdin(
        &db,
        &["update-user", "alice", "--password-stdin"],
        "stdin-pw-9\n",
    );
    out.ok();
    assert!(!out.all().contains("stdin-pw-9"));
    assert!(db::password::verify(
        "stdin-pw-9",
        &hash_of(&db, "alice").unwrap()
    ));
}

#[tokio::test]
async fn update_user_no_password_clears_the_hash() {
    let db = Db::new().await;
    run(&db, &["add-user", "alice", "--password", "pw-1-abc"]).ok();
    let out = run(&db, &["update-user", "alice", "--no-password"]);
    out.ok();
    assert!(out.stdout.contains("password none"), "{}", out.stdout);
    assert!(hash_of(&db, "alice").is_none());
    assert_eq!(users_json(&db, false)[0]["has_password"], false);
}

#[tokio::test]
async fn update_user_role_and_password_at_once() {
    let db = Db::new().await;
    run(&db, &["add-user", "alice"]).ok();
    run(
        &db,
        &["update-user", "alice", "--admin", "--password", "pw-both-1"],
    )
    .ok();
    let u = &users_json(&db, false)[0];
    assert_eq!(u["role"], "admin");
    assert_eq!(u["has_password"], true);
}

#[tokio::test]
async fn update_user_unknown_user_is_not_found() {
    let db = Db::new().await;
    run(&db, &["add-user", "alice"]).ok();
    let out = run(&db, &["update-user", "nobody", "--admin"]);
    out.expect_code(1).assert_clean_error();
    assert!(
        out.stderr.contains("user \"nobody\" (local) not found"),
        "{}",
        out.stderr
    );
    assert_eq!(users_json(&db, false)[0]["role"], "user");
}

#[tokio::test]
async fn update_user_with_nothing_to_change_is_rejected() {
    let db = Db::new().await;
    run(&db, &["add-user", "alice"]).ok();
    let out = run(&db, &["update-user", "alice"]);
    out.expect_code(1).assert_clean_error();
    assert!(out.stderr.contains("nothing to change"), "{}", out.stderr);
}

#[tokio::test]
async fn update_user_conflicting_flags_are_bad_usage() {
    let db = Db::new().await;
    run(&db, &["add-user", "alice", "--password", "keep-pw-1"]).ok();
    run(&db, &["update-user", "alice", "--admin", "--no-admin"]).expect_code(2);
    run(
        &db,
        &[
            "update-user",
            "alice",
            "--password",
            "x-pw-2",
            "--no-password",
        ],
    )
    .expect_code(2);
    run_stdin(
        &db,
        &["update-user", "alice", "--password-stdin", "--no-password"],
        "p\n",
    )
    .expect_code(2);
    run(
        &db,
        &["update-user", "alice", "--admin", "--auth-provider", "ldap"],
    )
    .expect_code(2);
    // Nothing changed.
    let u = &users_json(&db, false)[0];
    assert_eq!(u["role"], "user");
    assert!(db::password::verify(
        "keep-pw-1",
        &hash_of(&db, "alice").unwrap()
    ));
}

#[tokio::test]
async fn update_user_auth_provider_targets_only_that_provider() {
    let db = Db::new().await;
    user(&db, "eve", AuthProvider::Local).await;
    user(&db, "eve", AuthProvider::Keycloak).await;
    let out = run(
        &db,
        &[
            "update-user",
            "eve",
            "--auth-provider",
            "keycloak",
            "--admin",
        ],
    );
    out.ok();
    assert!(out.stdout.contains("(keycloak)"), "{}", out.stdout);
    let rows = query(
        &db,
        "select auth_provider, role from users where username = 'eve' order by auth_provider",
    );
    assert_eq!(
        rows,
        [
            [Some("keycloak".to_string()), Some("admin".to_string())],
            [Some("local".to_string()), Some("user".to_string())],
        ]
    );
}

// ---------------------------------------------------------------- remove-user

#[tokio::test]
async fn remove_user_without_simulations() {
    let db = Db::new().await;
    run(&db, &["add-user", "alice"]).ok();
    run(&db, &["add-user", "bob"]).ok();
    let out = run(&db, &["remove-user", "alice"]);
    out.ok();
    assert!(
        out.stdout
            .contains("removed user \"alice\" (local) and 0 simulation(s)"),
        "{}",
        out.stdout
    );
    assert_eq!(names(&users_json(&db, false)), ["bob"]);
}

#[tokio::test]
async fn remove_user_who_owns_simulations_is_refused_and_names_the_count() {
    let db = Db::new().await;
    let alice = user(&db, "alice", AuthProvider::Local).await;
    sim(&db, alice, "one", 1).await;
    sim(&db, alice, "two", 2).await;

    let out = run(&db, &["remove-user", "alice"]);
    out.expect_code(1).assert_clean_error();
    assert!(
        out.stderr.contains("owns 2 simulation(s)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--cascade"), "{}", out.stderr);
    assert_eq!(count(&db, "select count(*) from users"), 1);
    assert_eq!(count(&db, "select count(*) from simulations"), 2);
    assert_eq!(count(&db, "select count(*) from tasks"), 3);
}

#[tokio::test]
async fn remove_user_cascade_removes_the_user_and_only_their_simulations() {
    let db = Db::new().await;
    let alice = user(&db, "alice", AuthProvider::Local).await;
    let bob = user(&db, "bob", AuthProvider::Local).await;
    sim(&db, alice, "a1", 2).await;
    sim(&db, alice, "a2", 3).await;
    let b = sim(&db, bob, "b1", 4).await;

    let out = run(&db, &["remove-user", "alice", "--cascade"]);
    out.ok();
    assert!(out.stdout.contains("and 2 simulation(s)"), "{}", out.stdout);
    assert_eq!(names(&users_json(&db, false)), ["bob"]);
    assert_eq!(
        query(&db, "select id::text from simulations"),
        [[Some(b.id.to_string())]]
    );
    assert_eq!(count(&db, "select count(*) from tasks"), 4);
    assert_eq!(count(&db, "select count(*) from inputs"), 1);

    let json = run(&db, &["--json", "remove-user", "bob", "--cascade"]);
    json.ok();
    assert_eq!(json.json()["simulations_removed"], 1);
    assert_eq!(count(&db, "select count(*) from simulations"), 0);
}

#[tokio::test]
async fn remove_user_unknown_is_not_found() {
    let db = Db::new().await;
    run(&db, &["add-user", "alice"]).ok();
    let out = run(&db, &["remove-user", "nobody"]);
    out.expect_code(1).assert_clean_error();
    assert!(
        out.stderr.contains("user \"nobody\" (local) not found"),
        "{}",
        out.stderr
    );
    // A local name is not found under keycloak either.
    run(&db, &["remove-user", "alice", "keycloak"]).expect_code(1);
    assert_eq!(count(&db, "select count(*) from users"), 1);
}

#[tokio::test]
async fn remove_user_bad_auth_provider_is_bad_usage() {
    let db = Db::new().await;
    run(&db, &["add-user", "alice"]).ok();
    let out = run(&db, &["remove-user", "alice", "ldap"]);
    out.expect_code(2);
    assert!(out.stderr.contains("ldap"), "{}", out.stderr);
    assert_eq!(count(&db, "select count(*) from users"), 1);
}

#[tokio::test]
async fn remove_user_keycloak_removes_only_the_keycloak_user_of_that_name() {
    let db = Db::new().await;
    let local = user(&db, "frank", AuthProvider::Local).await;
    user(&db, "frank", AuthProvider::Keycloak).await;
    sim(&db, local, "local's", 1).await;

    let out = run(&db, &["remove-user", "frank", "keycloak"]);
    out.ok();
    assert!(out.stdout.contains("(keycloak)"), "{}", out.stdout);
    assert_eq!(
        query(&db, "select id::text, auth_provider from users"),
        [[Some(local.to_string()), Some("local".to_string())]]
    );
    assert_eq!(count(&db, "select count(*) from simulations"), 1);
}

#[tokio::test]
async fn remove_user_defaults_to_the_local_user() {
    let db = Db::new().await;
    user(&db, "gina", AuthProvider::Local).await;
    let kc = user(&db, "gina", AuthProvider::Keycloak).await;
    run(&db, &["remove-user", "gina"]).ok();
    assert_eq!(
        query(&db, "select id::text, auth_provider from users"),
        [[Some(kc.to_string()), Some("keycloak".to_string())]]
    );
}

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
        let out = run(&db, &["add-user", "--password", "pw-hostile-1", "--", name]);
        out.ok();
        assert!(out.stdout.contains(&format!("{name:?}")), "{}", out.stdout);
    }
    // The users table survived, with exactly these rows.
    assert_eq!(
        scalar(&db, "select to_regclass('users')::text").as_deref(),
        Some("users")
    );
    assert_eq!(
        count(&db, "select count(*) from users"),
        HOSTILE.len() as i64
    );

    let mut expected: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    expected.sort();
    let mut got = names(&users_json(&db, true));
    got.sort();
    assert_eq!(got, expected, "names round-trip exactly through --json");

    let table = run(&db, &["list-users"]);
    table.ok();
    for name in HOSTILE {
        assert!(
            table.stdout.contains(name),
            "{name:?} not printed literally:\n{}",
            table.stdout
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
    assert_eq!(count(&db, "select count(*) from users"), 0);
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
    assert_eq!(count(&db, "select count(*) from users"), 0);
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
