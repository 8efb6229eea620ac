//! update-user and remove-user.

use crate::common::*;
use crate::*;
use db::enums::AuthProvider;

// ---------------------------------------------------------------- update-user

#[tokio::test]
async fn update_user_admin_and_no_admin_change_the_role() {
    let db = db_with_user(&["alice"]).await;

    let out = stdout_of(&db, &["update-user", "alice", "--admin"]);
    assert!(out.contains("role admin"), "{}", out);
    assert_eq!(users_json(&db, false)[0]["role"], "admin");

    run(&db, &["update-user", "alice", "--no-admin"]).ok();
    assert_eq!(users_json(&db, false)[0]["role"], "user");
}

#[tokio::test]
async fn update_user_password_sets_a_new_hash_and_revokes_tokens() {
    let db = db_with_user(&["alice", "--password", "old-pw-1"]).await;
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
    let db = db_with_user(&["alice"]).await;
    let out = run_stdin(
        &db,
        &["update-user", "alice", "--password-stdin"],
        "stdin-pw-9\n",
    );
    out.ok();
    assert!(!out.all().contains("stdin-pw-9"));
    assert!(has_password(&db, "alice", "stdin-pw-9"));
}

#[tokio::test]
async fn update_user_no_password_clears_the_hash() {
    let db = db_with_user(&["alice", "--password", "pw-1-abc"]).await;
    let out = stdout_of(&db, &["update-user", "alice", "--no-password"]);
    assert!(out.contains("password none"), "{}", out);
    assert!(hash_of(&db, "alice").is_none());
    assert_eq!(users_json(&db, false)[0]["has_password"], false);
}

#[tokio::test]
async fn update_user_role_and_password_at_once() {
    let db = db_with_user(&["alice"]).await;
    run(
        &db,
        &words("update-user alice --admin --password pw-both-1"),
    )
    .ok();
    let u = &users_json(&db, false)[0];
    assert_eq!(u["role"], "admin");
    assert_eq!(u["has_password"], true);
}

#[tokio::test]
async fn update_user_unknown_user_is_not_found() {
    let db = db_with_user(&["alice"]).await;
    fails_cleanly(
        &db,
        &["update-user", "nobody", "--admin"],
        "user \"nobody\" (local) not found",
    );
    assert_eq!(users_json(&db, false)[0]["role"], "user");
}

#[tokio::test]
async fn update_user_with_nothing_to_change_is_rejected() {
    let db = db_with_user(&["alice"]).await;
    let out = run(&db, &["update-user", "alice"]);
    out.fails_with("nothing to change");
}

#[tokio::test]
async fn update_user_conflicting_flags_are_bad_usage() {
    let db = db_with_user(&["alice", "--password", "keep-pw-1"]).await;
    run(&db, &["update-user", "alice", "--admin", "--no-admin"]).expect_code(2);
    run(
        &db,
        &words("update-user alice --password x-pw-2 --no-password"),
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
        &words("update-user alice --admin --auth-provider ldap"),
    )
    .expect_code(2);
    // Nothing changed.
    let u = &users_json(&db, false)[0];
    assert_eq!(u["role"], "user");
    assert!(has_password(&db, "alice", "keep-pw-1"));
}

/// After a conflict the usage line is the one `--help` shows: the database flag, given on
/// the command line or through DATABASE_URL, does not read as if it were required.
#[tokio::test]
async fn update_user_conflict_usage_does_not_show_the_database_flag_as_required() {
    let db = db_with_user(&["bob"]).await;
    let url = db.config().url_with_password().to_string();
    for out in [
        run(&db, &["update-user", "bob", "--no-admin", "--admin"]),
        run_env(
            &[("DATABASE_URL", url.as_str())],
            &["update-user", "bob", "--no-admin", "--admin"],
        ),
    ] {
        out.usage_error_with("cannot be used with")
            .usage_error_with("Usage: admin-cli update-user [OPTIONS] <NAME>");
        assert!(!out.stderr.contains("--database-url"), "{}", out.stderr);
    }
    assert_eq!(users_json(&db, false)[0]["role"], "user");
}

#[tokio::test]
async fn update_user_auth_provider_targets_only_that_provider() {
    let (db, _, _) = db_with_namesakes("eve").await;
    run(
        &db,
        &words("update-user eve --auth-provider keycloak --admin"),
    )
    .ok()
    .stdout_has("(keycloak)");
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
    let db = db_with_user(&["alice"]).await;
    run(&db, &["add-user", "bob"]).ok();
    let out = stdout_of(&db, &["remove-user", "alice"]);
    assert!(
        out.contains("removed user \"alice\" (local) and 0 simulation(s)"),
        "{}",
        out
    );
    assert_eq!(names(&users_json(&db, false)), ["bob"]);
}

#[tokio::test]
async fn remove_user_who_owns_simulations_is_refused_and_names_the_count() {
    let db = Db::new().await;
    let alice = user(&db, "alice", AuthProvider::Local).await;
    sim(&db, alice, "one", 1).await;
    sim(&db, alice, "two", 2).await;

    let out = fails_cleanly(&db, &["remove-user", "alice"], "owns 2 simulation(s)");
    assert!(out.stderr.contains("--cascade"), "{}", out.stderr);
    assert_eq!(user_count(&db), 1);
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

    let out = stdout_of(&db, &["remove-user", "alice", "--cascade"]);
    assert!(out.contains("and 2 simulation(s)"), "{}", out);
    assert_eq!(names(&users_json(&db, false)), ["bob"]);
    assert_eq!(
        query(&db, "select id::text from simulations"),
        [[Some(b.id.to_string())]]
    );
    assert_eq!(count(&db, "select count(*) from tasks"), 4);
    assert_eq!(count(&db, "select count(*) from inputs"), 1);

    let json = json_of(&db, &["--json", "remove-user", "bob", "--cascade"]);
    assert_eq!(json["simulations_removed"], 1);
    assert_eq!(count(&db, "select count(*) from simulations"), 0);
}

#[tokio::test]
async fn remove_user_unknown_is_not_found() {
    let db = db_with_user(&["alice"]).await;
    fails_cleanly(
        &db,
        &["remove-user", "nobody"],
        "user \"nobody\" (local) not found",
    );
    // A local name is not found under keycloak either.
    run(&db, &["remove-user", "alice", "keycloak"]).expect_code(1);
    assert_eq!(user_count(&db), 1);
}

#[tokio::test]
async fn remove_user_bad_auth_provider_is_bad_usage() {
    let db = db_with_user(&["alice"]).await;
    let out = run(&db, &["remove-user", "alice", "ldap"]);
    out.usage_error_with("ldap");
    assert_eq!(user_count(&db), 1);
}

#[tokio::test]
async fn remove_user_keycloak_removes_only_the_keycloak_user_of_that_name() {
    let (db, local, _) = db_with_namesakes("frank").await;
    sim(&db, local, "local's", 1).await;

    let out = stdout_of(&db, &["remove-user", "frank", "keycloak"]);
    assert!(out.contains("(keycloak)"), "{}", out);
    assert_eq!(
        query(&db, "select id::text, auth_provider from users"),
        [[Some(local.to_string()), Some("local".to_string())]]
    );
    assert_eq!(count(&db, "select count(*) from simulations"), 1);
}

#[tokio::test]
async fn remove_user_defaults_to_the_local_user() {
    let (db, _, kc) = db_with_namesakes("gina").await;
    run(&db, &["remove-user", "gina"]).ok();
    assert_eq!(
        query(&db, "select id::text, auth_provider from users"),
        [[Some(kc.to_string()), Some("keycloak".to_string())]]
    );
}
