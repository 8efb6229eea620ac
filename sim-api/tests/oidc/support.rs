//! Keys, tokens, JWKS files and a server with OIDC, shared by the OIDC tests.

use crate::common::{authed, spawn_app_oidc, App};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use proto::v1::{LoginOidcRequest, TokenPair, WhoAmIRequest};
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::sha2::{Digest as _, Sha256};
use rsa::traits::PublicKeyParts as _;
use rsa::{Pkcs1v15Sign, PrivateKey};
use serde_json::{json, Value};
use sim_api::oidc::{JwksSource, OidcSettings};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use tonic::{Code, Status};

pub const ISSUER: &str = "http://keycloak.test/realms/sim";
pub const AUDIENCE: &str = "sim-web";
/// Keycloak's JWKS path for the realm `sim`.
pub const CERTS: &str = "/realms/sim/protocol/openid-connect/certs";

/// A committed test key (`a` or `b`).
pub fn key(name: &str) -> PrivateKey {
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

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn jwk(key: &PrivateKey, kid: &str) -> Value {
    json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": b64url(&key.n_bytes()), "e": b64url(&key.e_bytes()),
    })
}

/// A Keycloak-like JWKS: the signing keys plus an encryption key that must be ignored.
pub fn jwks(keys: &[Value]) -> String {
    let mut all = keys.to_vec();
    let mut enc = keys[0].clone();
    enc["kid"] = json!("enc-key");
    enc["use"] = json!("enc");
    enc["alg"] = json!("RSA-OAEP");
    all.push(enc);
    json!({ "keys": all }).to_string()
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn claims(username: &str) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "azp": AUDIENCE, "typ": "ID",
        "sub": format!("0b6c-{username}"), "preferred_username": username,
        "iat": now(), "nbf": now() - 5, "exp": now() + 300,
    })
}

/// [`claims`] of `username` with `claim` set to `value`, or left out when `value` is None.
pub fn claims_with(username: &str, claim: &str, value: Option<Value>) -> Value {
    let mut c = claims(username);
    match value {
        Some(v) => c[claim] = v,
        None => {
            c.as_object_mut().unwrap().remove(claim);
        }
    }
    c
}

pub fn rs256(kid: &str) -> Value {
    json!({ "alg": "RS256", "typ": "JWT", "kid": kid })
}

pub fn encode(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

pub fn sign(key: &PrivateKey, header: &Value, claims: &Value) -> String {
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
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(content: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "sim-api-oidc-test-{}-{}.json",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, content).unwrap();
        Self(path)
    }

    pub fn settings(&self) -> OidcSettings {
        OidcSettings::new(ISSUER, AUDIENCE, JwksSource::File(self.0.clone()))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A server whose JWKS file holds key `a` as `key-a`.
pub async fn setup() -> (App, TempFile, PrivateKey) {
    let a = key("a");
    let file = TempFile::new(&jwks(&[jwk(&a, "key-a")]));
    let app = spawn_app_oidc(file.settings()).await;
    (app, file, a)
}

/// An ID token with `claims` signed by `key` as `key-a` (RS256).
pub fn sign_a(key: &PrivateKey, claims: &Value) -> String {
    sign(key, &rs256("key-a"), claims)
}

/// Logs in with [`sign_a`]`(key, claims)`, which must be accepted; the token pair.
pub async fn login_a(app: &App, key: &PrivateKey, claims: &Value) -> TokenPair {
    login_oidc(app, &sign_a(key, claims)).await.unwrap()
}

pub async fn login_oidc(app: &App, token: &str) -> Result<TokenPair, Status> {
    app.auth()
        .login_oidc(LoginOidcRequest {
            id_token: token.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

pub async fn who_am_i(app: &App, access: &str) -> (String, String, String) {
    let me = app
        .auth()
        .who_am_i(authed(WhoAmIRequest {}, access))
        .await
        .unwrap()
        .into_inner();
    (me.username, me.auth_provider, me.role)
}

/// Asserts UNAUTHENTICATED with `reason` in a message that echoes no part of the token.
pub async fn assert_rejected(app: &App, token: &str, reason: &str) {
    let err = login_oidc(app, token).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{reason}: {err:?}");
    let msg = err.message();
    assert!(msg.contains(reason), "expected {reason:?} in {msg:?}");
    assert!(msg.len() < 100, "{msg:?}");
    for part in token.split('.').filter(|p| p.len() >= 4) {
        assert!(!msg.contains(part), "the message echoes the token: {msg:?}");
    }
}
