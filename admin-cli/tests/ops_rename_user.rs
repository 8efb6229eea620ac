//! rename-user OLD NEW [--auth-provider P]: one transaction, refused if the new name is taken,
//! the user's tokens revoked; simulations, role and password stay with the user.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use db::enums::AuthProvider;

/// Gives the user named `name` (any provider) two valid tokens and one revoked one.
fn tokens_for(db: &Db, name: &str) {
    let name = name.replace('\'', "''");
    exec(
        db,
        &format!(
            "insert into auth_tokens (user_id, token_hash, kind, session_id, expires_at, revoked) \
             select id, decode(md5(random()::text) || md5(random()::text), 'hex'), k, \
                    gen_random_uuid(), now() + interval '1 hour', r \
             from users, (values ('access', false), ('refresh', false), ('access', true)) v(k, r) \
             where username = '{name}'"
        ),
    );
}

fn valid_tokens(db: &Db) -> i64 {
    count(db, "select count(*) from auth_tokens where not revoked")
}

fn names(db: &Db) -> Vec<String> {
    query(
        db,
        "select username || '/' || auth_provider from users order by username, auth_provider",
    )
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect()
}

#[tokio::test]
async fn rename_user_keeps_everything_and_revokes_tokens() {
    let db = db_with_user(&words("alice --password pw-alice-1 --admin")).await;
    let id = user_id(&db, "alice");
    sim(&db, id, "hers", 2).await;
    tokens_for(&db, "alice");
    run(&db, &["add-user", "bob"]).ok();
    tokens_for(&db, "bob");
    assert_eq!(valid_tokens(&db), 4);

    let out = stdout_of(&db, &["rename-user", "alice", "alice.smith"]);
    assert_eq!(
        out.trim(),
        "renamed user \"alice\" (local) to \"alice.smith\"; 2 token(s) revoked"
    );
    assert_eq!(names(&db), ["alice.smith/local", "bob/local"]);
    // Same id: simulations, role and password follow.
    assert_eq!(user_id(&db, "alice.smith"), id);
    assert_eq!(
        count(
            &db,
            &format!("select count(*) from simulations where user_id = {id}")
        ),
        1
    );
    assert_eq!(
        scalar(&db, "select role from users where username = 'alice.smith'").as_deref(),
        Some("admin")
    );
    let hash = scalar(
        &db,
        &format!("select password_hash from users where id = {id}"),
    )
    .unwrap();
    assert!(db::password::verify("pw-alice-1", &hash));
    // Only alice's tokens were revoked.
    assert_eq!(valid_tokens(&db), 2);
    assert_eq!(
        count(
            &db,
            &format!("select count(*) from auth_tokens where user_id = {id} and not revoked")
        ),
        0
    );
}

#[tokio::test]
async fn rename_user_json_and_auth_provider() {
    let (db, _, _) = db_with_namesakes("kc").await;
    let v = json_of(
        &db,
        &words("--json rename-user kc kc2 --auth-provider keycloak"),
    );
    assert_eq!(v["old_username"], "kc");
    assert_eq!(v["username"], "kc2");
    assert_eq!(v["auth_provider"], "keycloak");
    assert_eq!(v["tokens_revoked"], 0);
    // The local user of the old name is another account, untouched.
    assert_eq!(names(&db), ["kc/local", "kc2/keycloak"]);
}

#[tokio::test]
async fn rename_user_to_a_taken_name_is_refused_and_changes_nothing() {
    let db = Db::new().await;
    user(&db, "alice", AuthProvider::Local).await;
    user(&db, "bob", AuthProvider::Local).await;
    user(&db, "carol", AuthProvider::Keycloak).await;
    tokens_for(&db, "alice");
    fails_cleanly(
        &db,
        &["rename-user", "alice", "bob"],
        "user \"bob\" (local) already exists",
    );
    // The same name under another provider is free.
    run(&db, &["rename-user", "alice", "carol"]).ok();
    fails_cleanly(
        &db,
        &["rename-user", "carol", "carol"],
        "user \"carol\" (local) already has that name",
    );
    assert_eq!(names(&db), ["bob/local", "carol/keycloak", "carol/local"]);
}

#[tokio::test]
async fn rename_user_not_found() {
    let db = Db::new().await;
    user(&db, "alice", AuthProvider::Local).await;
    fails_cleanly(
        &db,
        &["rename-user", "nobody", "x"],
        "user \"nobody\" (local) not found",
    );
    // alice is local, not keycloak.
    fails_cleanly(
        &db,
        &words("rename-user alice x --auth-provider keycloak"),
        "user \"alice\" (keycloak) not found",
    );
    let out = run(&db, &["rename-user", "no\u{1b}]0;pwned\u{7}", "x"]);
    out.fails_with("not found");
    assert!(!out.stderr.contains('\u{1b}') && !out.stderr.contains('\u{7}'));
    assert_eq!(names(&db), ["alice/local"]);
}

#[tokio::test]
async fn rename_user_hostile_names() {
    let db = Db::new().await;
    user(&db, "alice", AuthProvider::Local).await;
    tokens_for(&db, "alice");
    // Control characters in the new name: refused in one line, escaped, nothing changed.
    for bad in [
        "a\nb",
        "\u{1b}[31mred",
        "tab\tname",
        "bell\u{7}",
        "del\u{7f}",
    ] {
        let out = run(&db, &["rename-user", "alice", "--", bad]);
        out.fails_with("a user name must not contain control characters");
        assert_eq!(out.stderr.lines().count(), 1, "{:?}", out.stderr);
        assert!(!out.stderr.contains('\u{1b}') && !out.stderr.contains('\u{7}'));
    }
    fails_cleanly(&db, &["rename-user", "alice", ""], "1 to 255 characters");
    let long = "x".repeat(256);
    fails_cleanly(&db, &["rename-user", "alice", &long], "1 to 255 characters");
    assert_eq!(names(&db), ["alice/local"]);
    assert_eq!(valid_tokens(&db), 2);
    // SQL-looking and wildcard names are stored literally, and renamed back.
    for odd in [
        "'; DROP TABLE users; --",
        "%",
        "_",
        "Robert'); DELETE FROM auth_tokens;--",
        "\\0",
        "Zoë Łukasiewicz",
    ] {
        run(&db, &["rename-user", "alice", "--", odd]).ok();
        assert_eq!(names(&db), [format!("{odd}/local")]);
        run(&db, &["rename-user", "--", odd, "alice"]).ok();
    }
    assert_eq!(names(&db), ["alice/local"]);
    assert_eq!(count(&db, "select count(*) from auth_tokens"), 3);
    // A NUL cannot come through a command-line argument; bad usage is exit 2.
    run(&db, &["rename-user", "alice"]).expect_code(2);
    run(&db, &words("rename-user alice b --auth-provider ldap")).expect_code(2);
}
