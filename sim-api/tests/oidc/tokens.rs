//! What LoginOidc accepts and refuses: users, claims, signatures, algorithms, reloads.

use crate::common::{spawn_app, spawn_app_oidc};
use crate::support::*;
use db::enums::AuthProvider;
use proto::v1::RefreshRequest;
use rsa::sha2::{Digest as _, Sha256};
use rsa::Pkcs1v15Sign;
use serde_json::json;
use sim_api::oidc::OidcSettings;
use std::time::Duration;
use tonic::Code;

#[tokio::test]
async fn valid_token_creates_a_keycloak_user_then_reuses_it() {
    let (app, _file, a) = setup().await;

    let pair = login_a(&app, &a, &claims("kc-alice")).await;
    assert_eq!(pair.token_type, "Bearer");
    assert_eq!(pair.access_expires_in, 15 * 60);
    assert_eq!(
        who_am_i(&app, &pair.access_token).await,
        ("kc-alice".into(), "keycloak".into(), "user".into())
    );
    let first = {
        let mut c = app.db.conn().await;
        db::users::get(&mut c, "kc-alice", AuthProvider::Keycloak)
            .await
            .unwrap()
    };
    assert!(first.password_hash.is_none());

    // Second login (aud as an array this time): the same user, touched; a new session.
    let mut second_claims = claims("kc-alice");
    second_claims["aud"] = json!(["account", AUDIENCE]);
    let pair2 = login_a(&app, &a, &second_claims).await;
    assert_ne!(pair2.access_token, pair.access_token);
    let second = {
        let mut c = app.db.conn().await;
        db::users::get(&mut c, "kc-alice", AuthProvider::Keycloak)
            .await
            .unwrap()
    };
    assert_eq!(second.id, first.id);
    assert!(second.updated_at >= first.updated_at);
    let listed = {
        let mut c = app.db.conn().await;
        db::users::list(&mut c, false).await.unwrap()
    };
    assert_eq!(
        listed.iter().filter(|u| u.username == "kc-alice").count(),
        1
    );

    // The pair behaves like one from Login: both sessions work, refresh rotates.
    who_am_i(&app, &pair.access_token).await;
    let rotated = app
        .auth()
        .refresh(RefreshRequest {
            refresh_token: pair2.refresh_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(who_am_i(&app, &rotated.access_token).await.0, "kc-alice");
}

#[tokio::test]
async fn username_falls_back_to_sub() {
    let (app, _file, a) = setup().await;
    let mut c = claims("ignored");
    c.as_object_mut().unwrap().remove("preferred_username");
    c["sub"] = json!("f81d4fae-7dec-11d0-a765-00a0c91e6bf6");
    let pair = login_a(&app, &a, &c).await;
    assert_eq!(
        who_am_i(&app, &pair.access_token).await.0,
        "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
    );

    let c = claims_with("x", "sub", None);
    assert_rejected(&app, &sign_a(&a, &c), "sub").await;
}

#[tokio::test]
async fn a_local_user_of_the_same_name_is_a_separate_account() {
    let (app, _file, a) = setup().await;
    app.create_user("alice", "local-pw", true).await;

    let kc = login_a(&app, &a, &claims("alice")).await;
    // Not the local admin: a new keycloak user with role user.
    assert_eq!(
        who_am_i(&app, &kc.access_token).await,
        ("alice".into(), "keycloak".into(), "user".into())
    );
    let local = app.login("alice", "local-pw").await;
    assert_eq!(
        who_am_i(&app, &local.access_token).await,
        ("alice".into(), "local".into(), "admin".into())
    );
    let mut c = app.db.conn().await;
    let local_user = db::users::get(&mut c, "alice", AuthProvider::Local)
        .await
        .unwrap();
    assert!(local_user.password_hash.is_some());
}

#[tokio::test]
async fn wrong_audience_is_rejected() {
    let (app, _file, a) = setup().await;
    for aud in [
        Some(json!("other-client")),
        Some(json!(["account", "other"])),
        Some(json!([])),
        None,
    ] {
        let c = claims_with("bob", "aud", aud);
        assert_rejected(&app, &sign_a(&a, &c), "wrong audience").await;
    }
}

#[tokio::test]
async fn wrong_issuer_is_rejected() {
    let (app, _file, a) = setup().await;
    for iss in [
        json!("http://evil.test/realms/sim"),
        json!(format!("{ISSUER}/")),
        json!(null),
    ] {
        let c = claims_with("bob", "iss", Some(iss));
        assert_rejected(&app, &sign_a(&a, &c), "wrong issuer").await;
    }
}

/// The leeway is 30 s by default (`--oidc-leeway`): a token is accepted until `exp + 30 s`
/// and from `nbf - 30 s`.
#[tokio::test]
async fn expiry_is_checked_with_a_small_leeway() {
    let (app, _file, a) = setup().await;
    // (claim, its value or None to leave it out, None if accepted or why it is rejected)
    for (claim, value, rejected) in [
        ("exp", Some(json!(now() - 120)), Some("expired")),
        // Expired 5 s ago: within the leeway.
        ("exp", Some(json!(now() - 5)), None),
        ("nbf", Some(json!(now() + 300)), Some("not yet valid")),
        ("exp", None, Some("exp")),
        // Not valid for another 20 s: within the leeway.
        ("nbf", Some(json!(now() + 20)), None),
        // A NumericDate with a fraction is a time like any other.
        ("exp", Some(json!(now() as f64 + 300.5)), None),
        // A time that is not a number is not skipped but refused.
        ("exp", Some(json!("never")), Some("usable `exp`")),
        ("nbf", Some(json!("later")), Some("malformed")),
    ] {
        let c = claims_with("carol", claim, value);
        match rejected {
            Some(reason) => assert_rejected(&app, &sign_a(&a, &c), reason).await,
            None => {
                login_a(&app, &a, &c).await;
            }
        }
    }
}

#[tokio::test]
async fn bad_signature_is_rejected() {
    let (app, _file, a) = setup().await;
    let b = key("b");
    // Another key under the same kid.
    assert_rejected(
        &app,
        &sign(&b, &rs256("key-a"), &claims("dave")),
        "bad signature",
    )
    .await;

    // A valid signature over other claims.
    let good = sign_a(&a, &claims("dave"));
    let sig = good.rsplit('.').next().unwrap();
    let mut forged = claims("dave");
    forged["preferred_username"] = json!("admin");
    let tampered = format!("{}.{sig}", encode(&rs256("key-a"), &forged));
    assert_rejected(&app, &tampered, "bad signature").await;

    // A truncated signature, and an empty one.
    let truncated = &good[..good.len() - 2]; // 255 bytes: still valid base64url
    assert_rejected(&app, truncated, "bad signature").await;
    let unsigned = format!("{}.", encode(&rs256("key-a"), &claims("dave")));
    assert_rejected(&app, &unsigned, "bad signature").await;

    let mut c = app.db.conn().await;
    assert!(db::users::list(&mut c, false).await.unwrap().is_empty());
}

#[tokio::test]
async fn unknown_kid_is_rejected() {
    let (app, _file, a) = setup().await;
    assert_rejected(
        &app,
        &sign(&a, &rs256("no-such-key"), &claims("erin")),
        "unknown signing key",
    )
    .await;
    // The encryption key of the JWKS is not a signing key.
    assert_rejected(
        &app,
        &sign(&a, &rs256("enc-key"), &claims("erin")),
        "unknown signing key",
    )
    .await;
    // No kid at all.
    assert_rejected(
        &app,
        &sign(&a, &json!({"alg": "RS256", "typ": "JWT"}), &claims("erin")),
        "unknown signing key",
    )
    .await;
}

#[tokio::test]
async fn algorithms_other_than_rs256_are_rejected() {
    let (app, _file, a) = setup().await;
    let c = claims("frank");
    // alg none, unsigned and signed.
    let none = json!({"alg": "none", "typ": "JWT", "kid": "key-a"});
    let unsigned = format!("{}.", encode(&none, &c));
    assert_rejected(&app, &unsigned, "unsupported signing algorithm").await;
    assert_rejected(&app, &sign(&a, &none, &c), "unsupported signing algorithm").await;
    // HS256 "signed" with the public key as the HMAC secret is refused before any key use.
    for alg in ["HS256", "RS512", "PS256", "ES256", "rs256", "None"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": "key-a"});
        let token = format!("{}.{}", encode(&header, &c), b64url(&[7u8; 32]));
        assert_rejected(&app, &token, "unsupported signing algorithm").await;
    }
    // A critical header extension is not understood.
    let crit = json!({"alg": "RS256", "kid": "key-a", "crit": ["exp"], "exp": 1});
    assert_rejected(&app, &sign(&a, &crit, &c), "malformed").await;
}

#[tokio::test]
async fn malformed_tokens_are_rejected() {
    let (app, _file, a) = setup().await;
    let good = sign_a(&a, &claims("grace"));
    let parts: Vec<&str> = good.split('.').collect();
    let not_json = format!("{}.{}.{}", b64url(b"{not json"), parts[1], parts[2]);
    let padded = format!("{}=.{}.{}", parts[0], parts[1], parts[2]);
    let big = format!("{}.{}.{}", parts[0], "A".repeat(20_000), parts[2]);
    for token in [
        "not-a-jwt-at-all",
        "abc.def",
        "a.b.c.d.e",
        &format!("{good}.extra"),
        "!!!!.????.####",
        &not_json,
        &padded,
        &big,
    ] {
        assert_rejected(&app, token, "malformed").await;
    }
    // A validly signed payload that is not a JSON object of claims.
    let header = b64url(rs256("key-a").to_string().as_bytes());
    let input = format!("{header}.{}", b64url(b"[1,2,3]"));
    let sig = a
        .sign(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(input.as_bytes()),
        )
        .unwrap();
    assert_rejected(&app, &format!("{input}.{}", b64url(&sig)), "malformed").await;

    let empty = login_oidc(&app, "").await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn not_configured_is_failed_precondition() {
    let app = spawn_app().await;
    let a = key("a");
    let err = login_oidc(&app, &sign_a(&a, &claims("heidi")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("not configured"), "{err:?}");
}

#[tokio::test]
async fn jwks_file_is_reloaded_for_an_unknown_kid_at_most_once_per_interval() {
    let a = key("a");
    let b = key("b");
    let file = TempFile::new(&jwks(&[jwk(&a, "key-a")]));
    let token_b = sign(&b, &rs256("key-b"), &claims("ivan"));

    // Default interval (60 s): the keys were loaded at start, so no reload yet.
    let app = spawn_app_oidc(file.settings()).await;
    std::fs::write(&file.0, jwks(&[jwk(&a, "key-a"), jwk(&b, "key-b")])).unwrap();
    assert_rejected(&app, &token_b, "unknown signing key").await;

    // No minimum interval: the unknown kid triggers a reload that finds the rotated key.
    std::fs::write(&file.0, jwks(&[jwk(&a, "key-a")])).unwrap();
    let app = spawn_app_oidc(OidcSettings {
        jwks_refresh_min: Duration::ZERO,
        ..file.settings()
    })
    .await;
    std::fs::write(&file.0, jwks(&[jwk(&a, "key-a"), jwk(&b, "key-b")])).unwrap();
    let pair = login_oidc(&app, &token_b).await.unwrap();
    assert_eq!(who_am_i(&app, &pair.access_token).await.0, "ivan");

    // A reload that yields garbage keeps the previous keys.
    std::fs::write(&file.0, "{ not json").unwrap();
    assert_rejected(
        &app,
        &sign(&a, &rs256("key-c"), &claims("ivan")),
        "unknown signing key",
    )
    .await;
    login_a(&app, &a, &claims("ivan")).await;
}
