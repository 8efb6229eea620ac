#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{authed, spawn_app};
use proto::v1::{LoginRequest, LogoutRequest, RefreshRequest, WhoAmIRequest};
use tonic::Code;

#[tokio::test]
async fn login_refresh_rotate_logout_lifecycle() {
    let app = spawn_app().await;
    app.create_user("alice", "s3cret", false).await;
    let mut auth = app.auth();

    let bad = auth
        .login(LoginRequest {
            username: "alice".into(),
            password: "wrong".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::Unauthenticated);
    let unknown = auth
        .login(LoginRequest {
            username: "nobody".into(),
            password: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);

    let pair = app.login("alice", "s3cret").await;
    assert_ne!(pair.access_token, pair.refresh_token);
    assert_eq!(pair.token_type, "Bearer");
    assert_eq!(pair.access_expires_in, 15 * 60);
    let me = auth
        .who_am_i(authed(WhoAmIRequest {}, &pair.access_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            me.username.as_str(),
            me.auth_provider.as_str(),
            me.role.as_str()
        ),
        ("alice", "local", "user")
    );

    // Tokens are stored only as hashes.
    {
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut c = app.db.conn().await;
        let n: N = diesel::sql_query(
            "SELECT count(*) AS n FROM auth_tokens WHERE token_hash = convert_to($1, 'UTF8')",
        )
        .bind::<diesel::sql_types::Text, _>(&pair.access_token)
        .get_result(&mut c)
        .await
        .unwrap();
        assert_eq!(n.n, 0);
    }

    // Rotate: the new pair works, the old refresh token does not.
    let pair2 = auth
        .refresh(RefreshRequest {
            refresh_token: pair.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(pair2.refresh_token, pair.refresh_token);
    auth.who_am_i(authed(WhoAmIRequest {}, &pair2.access_token))
        .await
        .unwrap();
    let reuse = auth
        .refresh(RefreshRequest {
            refresh_token: pair.refresh_token.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(reuse.code(), Code::Unauthenticated);
    // Reuse of a rotated refresh token revoked the whole session.
    let after = auth
        .who_am_i(authed(WhoAmIRequest {}, &pair2.access_token))
        .await
        .unwrap_err();
    assert_eq!(after.code(), Code::Unauthenticated);
    let again = auth
        .refresh(RefreshRequest {
            refresh_token: pair2.refresh_token.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::Unauthenticated);
    let garbage = auth
        .refresh(RefreshRequest {
            refresh_token: "garbage".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), Code::Unauthenticated);

    // Logout revokes the session's tokens, access and refresh.
    let pair3 = app.login("alice", "s3cret").await;
    let out = auth
        .logout(authed(LogoutRequest::default(), &pair3.access_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.revoked, 2);
    assert_eq!(
        auth.who_am_i(authed(WhoAmIRequest {}, &pair3.access_token))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(
        auth.refresh(RefreshRequest {
            refresh_token: pair3.refresh_token
        })
        .await
        .unwrap_err()
        .code(),
        Code::Unauthenticated
    );

    // Logout with only the refresh token.
    let pair4 = app.login("alice", "s3cret").await;
    auth.logout(LogoutRequest {
        refresh_token: pair4.refresh_token,
    })
    .await
    .unwrap();
    assert_eq!(
        auth.who_am_i(authed(WhoAmIRequest {}, &pair4.access_token))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn failed_logins_are_slowed_down() {
    let app = spawn_app().await;
    app.create_user("bob", "right", false).await;
    let mut auth = app.auth();
    for _ in 0..4 {
        let _ = auth
            .login(LoginRequest {
                username: "bob".into(),
                password: "wrong".into(),
            })
            .await;
    }
    // After 4 failures the next attempt waits 800 ms before checking.
    let start = std::time::Instant::now();
    app.login("bob", "right").await;
    assert!(
        start.elapsed() >= std::time::Duration::from_millis(800),
        "{:?}",
        start.elapsed()
    );
    // A success clears the backoff.
    let start = std::time::Instant::now();
    app.login("bob", "right").await;
    assert!(start.elapsed() < std::time::Duration::from_millis(800));
}

#[tokio::test]
async fn malformed_authorization_is_unauthenticated() {
    let app = spawn_app().await;
    let mut auth = app.auth();
    for value in ["", "Bearer", "Bearer ", "Basic abc", "token"] {
        let mut r = tonic::Request::new(WhoAmIRequest {});
        if !value.is_empty() {
            r.metadata_mut()
                .insert("authorization", value.parse().unwrap());
        }
        let e = auth.who_am_i(r).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{value:?}");
    }
    let oidc = auth
        .login_oidc(proto::v1::LoginOidcRequest {
            id_token: "x".into(),
        })
        .await
        .unwrap_err();
    // Without --oidc-* settings (tests/oidc.rs covers the configured case).
    assert_eq!(oidc.code(), Code::FailedPrecondition);
}

/// Access tokens are cached in the server (`--token-cache`), yet a revocation made
/// outside it (another server, admin-cli, plain SQL) takes effect at once: a trigger
/// notifies, and the server empties its cache. With an hour-long cache, only the notification
/// can explain the refusal at the end.
#[tokio::test]
async fn a_revocation_made_elsewhere_empties_the_token_cache() {
    use std::time::{Duration, Instant};
    let app = common::spawn_app_with(sim_api::Limits {
        token_cache_ttl: Duration::from_secs(3600),
        ..Default::default()
    })
    .await;
    app.create_user("carol", "pw-of-carol", false).await;
    let token = app.login("carol", "pw-of-carol").await.access_token;
    let mut auth = app.auth();

    // The cache is used only once the server listens for revocations.
    app.wait_listening("sim_auth_events").await;
    auth.who_am_i(authed(WhoAmIRequest {}, &token))
        .await
        .unwrap();

    // Without the trigger a revocation goes unnoticed: the token is served from the cache.
    app.sql("ALTER TABLE auth_tokens DISABLE TRIGGER auth_tokens_changed")
        .await;
    app.sql("UPDATE auth_tokens SET revoked = true").await;
    auth.who_am_i(authed(WhoAmIRequest {}, &token))
        .await
        .expect("served from the cache");

    // Any later change that fires a trigger empties the cache.
    app.sql("ALTER TABLE auth_tokens ENABLE TRIGGER auth_tokens_changed")
        .await;
    app.sql("UPDATE users SET updated_at = now() WHERE username = 'carol'")
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match auth.who_am_i(authed(WhoAmIRequest {}, &token)).await {
            Err(e) => {
                assert_eq!(e.code(), Code::Unauthenticated);
                break;
            }
            Ok(_) => {
                assert!(Instant::now() < deadline, "the cache was never emptied");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
