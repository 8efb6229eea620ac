//! AuthService.LoginOidc against a real server (ephemeral port) and a real PostgreSQL, with
//! RS256 tokens signed here.
//!
//! The signing keys are committed test-only PKCS#8 PEM files under `tests/fixtures/` (made
//! with `openssl genpkey`), because RSA key generation in debug builds is slow and nextest runs
//! every test in its own process. The JWKS is built from their public parts and written to a
//! temporary file per test, or served by a tiny HTTP or HTTPS server on 127.0.0.1. For HTTPS
//! a CA and a server certificate for `localhost` and `127.0.0.1` are made at test time with
//! `rcgen` (nothing is checked in); the CA is handed to the verifier as its CA file.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use clap::Parser as _;
use common::{authed, spawn_app, spawn_app_oidc, App};
use db::enums::AuthProvider;
use proto::v1::{LoginOidcRequest, RefreshRequest, TokenPair, WhoAmIRequest};
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::sha2::{Digest as _, Sha256};
use rsa::traits::PublicKeyParts as _;
use rsa::{Pkcs1v15Sign, PrivateKey};
use serde_json::{json, Value};
use sim_api::oidc::{JwksSource, OidcSettings};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Code, Status};

const ISSUER: &str = "http://keycloak.test/realms/sim";
const AUDIENCE: &str = "sim-web";
/// Keycloak's JWKS path for the realm `sim`.
const CERTS: &str = "/realms/sim/protocol/openid-connect/certs";

/// A committed test key (`a` or `b`).
fn key(name: &str) -> PrivateKey {
    let path = format!(
        "{}/tests/fixtures/oidc-test-key-{name}.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    let pem = std::fs::read_to_string(path).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    PrivateKey::from_pkcs8_der(&der).unwrap()
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn jwk(key: &PrivateKey, kid: &str) -> Value {
    json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": b64url(&key.n_bytes()), "e": b64url(&key.e_bytes()),
    })
}

/// A Keycloak-like JWKS: the signing keys plus an encryption key that must be ignored.
fn jwks(keys: &[Value]) -> String {
    let mut all = keys.to_vec();
    let mut enc = keys[0].clone();
    enc["kid"] = json!("enc-key");
    enc["use"] = json!("enc");
    enc["alg"] = json!("RSA-OAEP");
    all.push(enc);
    json!({ "keys": all }).to_string()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(username: &str) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "azp": AUDIENCE, "typ": "ID",
        "sub": format!("0b6c-{username}"), "preferred_username": username,
        "iat": now(), "nbf": now() - 5, "exp": now() + 300,
    })
}

fn rs256(kid: &str) -> Value {
    json!({ "alg": "RS256", "typ": "JWT", "kid": kid })
}

fn encode(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

fn sign(key: &PrivateKey, header: &Value, claims: &Value) -> String {
    let input = encode(header, claims);
    let sig = key
        .sign(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(input.as_bytes()),
        )
        .unwrap();
    format!("{input}.{}", b64url(&sig))
}

/// A file (a JWKS or a CA certificate) in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(content: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "sim-api-oidc-test-{}-{}.json",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, content).unwrap();
        Self(path)
    }

    fn settings(&self) -> OidcSettings {
        OidcSettings::new(ISSUER, AUDIENCE, JwksSource::File(self.0.clone()))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A server whose JWKS file holds key `a` as `key-a`.
async fn setup() -> (App, TempFile, PrivateKey) {
    let a = key("a");
    let file = TempFile::new(&jwks(&[jwk(&a, "key-a")]));
    let app = spawn_app_oidc(file.settings()).await;
    (app, file, a)
}

async fn login_oidc(app: &App, token: &str) -> Result<TokenPair, Status> {
    app.auth()
        .login_oidc(LoginOidcRequest {
            id_token: token.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn who_am_i(app: &App, access: &str) -> (String, String, String) {
    let me = app
        .auth()
        .who_am_i(authed(WhoAmIRequest {}, access))
        .await
        .unwrap()
        .into_inner();
    (me.username, me.auth_provider, me.role)
}

/// Asserts UNAUTHENTICATED with `reason` in a message that echoes no part of the token.
async fn assert_rejected(app: &App, token: &str, reason: &str) {
    let err = login_oidc(app, token).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{reason}: {err:?}");
    let msg = err.message();
    assert!(msg.contains(reason), "expected {reason:?} in {msg:?}");
    assert!(msg.len() < 100, "{msg:?}");
    for part in token.split('.').filter(|p| p.len() >= 4) {
        assert!(!msg.contains(part), "the message echoes the token: {msg:?}");
    }
}

#[tokio::test]
async fn valid_token_creates_a_keycloak_user_then_reuses_it() {
    let (app, _file, a) = setup().await;

    let pair = login_oidc(&app, &sign(&a, &rs256("key-a"), &claims("kc-alice")))
        .await
        .unwrap();
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
    let pair2 = login_oidc(&app, &sign(&a, &rs256("key-a"), &second_claims))
        .await
        .unwrap();
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
    let pair = login_oidc(&app, &sign(&a, &rs256("key-a"), &c))
        .await
        .unwrap();
    assert_eq!(
        who_am_i(&app, &pair.access_token).await.0,
        "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
    );

    let mut c = claims("x");
    c.as_object_mut().unwrap().remove("sub");
    assert_rejected(&app, &sign(&a, &rs256("key-a"), &c), "sub").await;
}

#[tokio::test]
async fn a_local_user_of_the_same_name_is_a_separate_account() {
    let (app, _file, a) = setup().await;
    app.create_user("alice", "local-pw", true).await;

    let kc = login_oidc(&app, &sign(&a, &rs256("key-a"), &claims("alice")))
        .await
        .unwrap();
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
        json!("other-client"),
        json!(["account", "other"]),
        json!([]),
    ] {
        let mut c = claims("bob");
        c["aud"] = aud;
        assert_rejected(&app, &sign(&a, &rs256("key-a"), &c), "wrong audience").await;
    }
    let mut c = claims("bob");
    c.as_object_mut().unwrap().remove("aud");
    assert_rejected(&app, &sign(&a, &rs256("key-a"), &c), "wrong audience").await;
}

#[tokio::test]
async fn wrong_issuer_is_rejected() {
    let (app, _file, a) = setup().await;
    for iss in [
        json!("http://evil.test/realms/sim"),
        json!(format!("{ISSUER}/")),
        json!(null),
    ] {
        let mut c = claims("bob");
        c["iss"] = iss;
        assert_rejected(&app, &sign(&a, &rs256("key-a"), &c), "wrong issuer").await;
    }
}

/// The leeway is 30 s by default (`--oidc-leeway`): a token is accepted until `exp + 30 s`
/// and from `nbf - 30 s`.
#[tokio::test]
async fn expiry_is_checked_with_a_small_leeway() {
    let (app, _file, a) = setup().await;
    let mut c = claims("carol");
    c["exp"] = json!(now() - 120);
    assert_rejected(&app, &sign(&a, &rs256("key-a"), &c), "expired").await;

    // Expired 5 s ago: within the leeway.
    let mut c = claims("carol");
    c["exp"] = json!(now() - 5);
    login_oidc(&app, &sign(&a, &rs256("key-a"), &c))
        .await
        .unwrap();

    let mut c = claims("carol");
    c["nbf"] = json!(now() + 300);
    assert_rejected(&app, &sign(&a, &rs256("key-a"), &c), "not yet valid").await;

    let mut c = claims("carol");
    c.as_object_mut().unwrap().remove("exp");
    assert_rejected(&app, &sign(&a, &rs256("key-a"), &c), "exp").await;

    // Not valid for another 20 s: within the leeway.
    let mut c = claims("carol");
    c["nbf"] = json!(now() + 20);
    login_oidc(&app, &sign(&a, &rs256("key-a"), &c))
        .await
        .unwrap();

    // A NumericDate with a fraction is a time like any other.
    let mut c = claims("carol");
    c["exp"] = json!(now() as f64 + 300.5);
    login_oidc(&app, &sign(&a, &rs256("key-a"), &c))
        .await
        .unwrap();

    // A time that is not a number is not skipped but refused.
    for (claim, value, reason) in [
        ("exp", json!("never"), "usable `exp`"),
        ("nbf", json!("later"), "malformed"),
    ] {
        let mut c = claims("carol");
        c[claim] = value;
        assert_rejected(&app, &sign(&a, &rs256("key-a"), &c), reason).await;
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
    let good = sign(&a, &rs256("key-a"), &claims("dave"));
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
    let good = sign(&a, &rs256("key-a"), &claims("grace"));
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
    let err = login_oidc(&app, &sign(&a, &rs256("key-a"), &claims("heidi")))
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
    login_oidc(&app, &sign(&a, &rs256("key-a"), &claims("ivan")))
        .await
        .unwrap();
}

/// A small HTTP/1.1 server on 127.0.0.1 (HTTPS when `tls` is given) that answers a GET of
/// each path of `routes(its address)` with that body and anything else with 404; counts
/// connections.
async fn serve(
    tls: Option<tokio_rustls::TlsAcceptor>,
    routes: impl FnOnce(SocketAddr) -> Vec<(String, String)>,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = Arc::new(routes(addr));
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let (routes, tls) = (Arc::clone(&routes), tls.clone());
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            answer(stream, &routes).await;
                        }
                    }
                    None => answer(stream, &routes).await,
                }
            });
        }
    });
    (addr, hits)
}

async fn answer<S>(mut stream: S, routes: &[(String, String)])
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let path = head.strip_prefix("GET ").and_then(|r| r.split(' ').next());
    let (status, body) = match routes.iter().find(|(p, _)| Some(p.as_str()) == path) {
        Some((_, body)) => ("200 OK", body.as_str()),
        None => ("404 Not Found", ""),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A CA made now, and a TLS acceptor whose certificate (for `localhost` and `127.0.0.1`) it
/// signed; returns the CA certificate as PEM.
fn test_tls() -> (String, tokio_rustls::TlsAcceptor) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sim-api OIDC test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![server.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )
        .unwrap();
    (ca.pem(), tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[tokio::test]
async fn jwks_from_an_http_url() {
    let a = key("a");
    let body = jwks(&[jwk(&a, "key-a")]);
    let (addr, hits) = serve(None, |_| vec![(CERTS.into(), body)]).await;
    let url = format!("http://{addr}{CERTS}");
    let app = spawn_app_oidc(OidcSettings::new(
        ISSUER,
        AUDIENCE,
        url.parse::<JwksSource>().unwrap(),
    ))
    .await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched at start");
    let pair = login_oidc(&app, &sign(&a, &rs256("key-a"), &claims("judy")))
        .await
        .unwrap();
    assert_eq!(who_am_i(&app, &pair.access_token).await.1, "keycloak");
    // An unknown kid right after start does not fetch again (at most once per 60 s).
    assert_rejected(
        &app,
        &sign(&a, &rs256("key-x"), &claims("judy")),
        "unknown signing key",
    )
    .await;
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unreachable_jwks_url_starts_but_logins_are_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/certs");
    let app = spawn_app_oidc(OidcSettings::new(
        ISSUER,
        AUDIENCE,
        url.parse::<JwksSource>().unwrap(),
    ))
    .await;
    let a = key("a");
    let err = login_oidc(&app, &sign(&a, &rs256("key-a"), &claims("kim")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
}

#[test]
fn oidc_flags() {
    let parse = |extra: &[&str]| {
        let mut args = vec!["sim-api"];
        args.extend_from_slice(extra);
        sim_api::Config::try_parse_from(args).unwrap()
    };
    assert!(parse(&[]).oidc().unwrap().is_none());
    let full = [
        "--oidc-issuer",
        ISSUER,
        "--oidc-audience",
        AUDIENCE,
        "--oidc-jwks",
        "/etc/sim/jwks.json",
        "--oidc-leeway",
        "5s",
    ];
    let settings = parse(&full).oidc().unwrap().unwrap();
    assert_eq!(settings.issuer, ISSUER);
    assert_eq!(settings.leeway, Duration::from_secs(5));
    assert_eq!(
        settings.jwks,
        JwksSource::File(PathBuf::from("/etc/sim/jwks.json"))
    );
    // https, with a private CA beside the built-in roots.
    let https = parse(&[
        "--oidc-issuer",
        ISSUER,
        "--oidc-audience",
        AUDIENCE,
        "--oidc-jwks",
        "https://kc/certs",
        "--oidc-ca-file",
        "/etc/sim/ca.pem",
    ])
    .oidc()
    .unwrap()
    .unwrap();
    assert!(
        matches!(&https.jwks, JwksSource::Url(u) if u.scheme_str() == Some("https")),
        "{:?}",
        https.jwks
    );
    assert_eq!(https.ca_file, Some(PathBuf::from("/etc/sim/ca.pem")));
    // No --oidc-jwks: discovery from the issuer.
    let discovered = parse(&["--oidc-issuer", ISSUER, "--oidc-audience", AUDIENCE])
        .oidc()
        .unwrap()
        .unwrap();
    assert_eq!(discovered.jwks, JwksSource::Discovery);
    assert_eq!(discovered.ca_file, None);
    let ftp = parse(&[
        "--oidc-issuer",
        ISSUER,
        "--oidc-audience",
        AUDIENCE,
        "--oidc-jwks",
        "ftp://kc/certs",
    ])
    .oidc()
    .unwrap_err();
    assert!(ftp.to_string().contains("https://"), "{ftp}");
    let keys_only = parse(&["--oidc-jwks", "/etc/sim/jwks.json"])
        .oidc()
        .unwrap_err();
    assert!(
        keys_only.to_string().contains("must be set together"),
        "{keys_only}"
    );
    let partial = parse(&["--oidc-issuer", ISSUER]).oidc().unwrap_err();
    assert!(
        partial.to_string().contains("must be set together"),
        "{partial}"
    );
}

/// The https contract: the JWKS over TLS, trusted through `--oidc-ca-file`; without that CA
/// the certificate is not trusted, and logins are UNAVAILABLE, not UNAUTHENTICATED.
#[tokio::test]
async fn jwks_from_an_https_url_trusted_through_the_ca_file() {
    let a = key("a");
    let (ca_pem, acceptor) = test_tls();
    let ca = TempFile::new(&ca_pem);
    let body = jwks(&[jwk(&a, "key-a")]);
    let (addr, hits) = serve(Some(acceptor), |_| vec![(CERTS.into(), body)]).await;
    let url = format!("https://localhost:{}{CERTS}", addr.port());
    let settings = OidcSettings {
        ca_file: Some(ca.0.clone()),
        ..OidcSettings::new(ISSUER, AUDIENCE, url.parse::<JwksSource>().unwrap())
    };
    let app = spawn_app_oidc(settings.clone()).await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched at start");
    let pair = login_oidc(&app, &sign(&a, &rs256("key-a"), &claims("liam")))
        .await
        .unwrap();
    assert_eq!(who_am_i(&app, &pair.access_token).await.1, "keycloak");

    let untrusting = spawn_app_oidc(OidcSettings {
        ca_file: None,
        ..settings
    })
    .await;
    let token = sign(&a, &rs256("key-a"), &claims("liam"));
    let err = login_oidc(&untrusting, &token).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    for part in token.split('.') {
        assert!(!err.message().contains(part));
    }
}

/// Without a JWKS location the keys come from the issuer's discovery document (over https
/// here), whose `jwks_uri` may name another host.
#[tokio::test]
async fn keys_are_discovered_from_the_issuer_over_https() {
    let a = key("a");
    let (ca_pem, acceptor) = test_tls();
    let ca = TempFile::new(&ca_pem);
    let body = jwks(&[jwk(&a, "key-a")]);
    let (addr, hits) = serve(Some(acceptor), |addr| {
        let port = addr.port();
        let doc = json!({
            "issuer": format!("https://127.0.0.1:{port}/realms/sim"),
            "jwks_uri": format!("https://localhost:{port}{CERTS}"),
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        vec![
            (
                "/realms/sim/.well-known/openid-configuration".into(),
                doc.to_string(),
            ),
            (CERTS.into(), body),
        ]
    })
    .await;
    let issuer = format!("https://127.0.0.1:{}/realms/sim", addr.port());
    let app = spawn_app_oidc(OidcSettings {
        ca_file: Some(ca.0.clone()),
        ..OidcSettings::new(&issuer, AUDIENCE, JwksSource::Discovery)
    })
    .await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "discovery and JWKS at start"
    );
    let mut c = claims("mia");
    c["iss"] = json!(issuer);
    let pair = login_oidc(&app, &sign(&a, &rs256("key-a"), &c))
        .await
        .unwrap();
    assert_eq!(who_am_i(&app, &pair.access_token).await.0, "mia");
    // The issuer is still checked in the token.
    assert_rejected(
        &app,
        &sign(&a, &rs256("key-a"), &claims("mia")),
        "wrong issuer",
    )
    .await;
}

/// A discovery document that names another issuer is not used.
#[tokio::test]
async fn a_discovery_document_of_another_issuer_is_not_used() {
    let a = key("a");
    let body = jwks(&[jwk(&a, "key-a")]);
    let (addr, _hits) = serve(None, |addr| {
        let doc = json!({
            "issuer": "http://evil.test/realms/sim",
            "jwks_uri": format!("http://{addr}{CERTS}"),
        });
        vec![
            (
                "/realms/sim/.well-known/openid-configuration".into(),
                doc.to_string(),
            ),
            (CERTS.into(), body),
        ]
    })
    .await;
    let issuer = format!("http://{addr}/realms/sim");
    let app = spawn_app_oidc(OidcSettings::new(&issuer, AUDIENCE, JwksSource::Discovery)).await;
    let mut c = claims("noah");
    c["iss"] = json!(issuer);
    let err = login_oidc(&app, &sign(&a, &rs256("key-a"), &c))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
}

/// A CA file that cannot be read or holds no certificate stops the start.
#[tokio::test]
async fn an_unusable_ca_file_is_a_settings_error() {
    let a = key("a");
    let keys = TempFile::new(&jwks(&[jwk(&a, "key-a")]));
    let not_pem = TempFile::new("not a certificate");
    for (path, reason) in [
        (PathBuf::from("/nonexistent/ca.pem"), "cannot read"),
        (not_pem.0.clone(), "no PEM certificate"),
    ] {
        let err = sim_api::oidc::OidcVerifier::new(OidcSettings {
            ca_file: Some(path),
            ..keys.settings()
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains(reason), "{err}");
    }
}
