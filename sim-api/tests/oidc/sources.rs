//! Where the keys come from: http and https JWKS URLs, discovery, CA files, the flags.

use crate::common::spawn_app_oidc;
use crate::support::*;
use clap::Parser as _;
use serde_json::json;
use sim_api::oidc::{JwksSource, OidcSettings};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tonic::Code;

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
/// signed; returns the CA certificate as a PEM file.
fn test_tls() -> (TempFile, tokio_rustls::TlsAcceptor) {
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
    let ca_file = TempFile::new(&ca.pem());
    (ca_file, tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Key `a` and a JWKS that holds it as `key-a`.
fn key_a_and_jwks() -> (rsa::PrivateKey, String) {
    let a = key("a");
    let body = jwks(&[jwk(&a, "key-a")]);
    (a, body)
}

/// A server that reads its keys from the JWKS at `url`.
async fn spawn_with_jwks_url(url: &str) -> crate::common::App {
    let source = url.parse::<JwksSource>().unwrap();
    spawn_app_oidc(OidcSettings::new(ISSUER, AUDIENCE, source)).await
}

#[tokio::test]
async fn jwks_from_an_http_url() {
    let (a, body) = key_a_and_jwks();
    let (addr, hits) = serve(None, |_| vec![(CERTS.into(), body)]).await;
    let url = format!("http://{addr}{CERTS}");
    let app = spawn_with_jwks_url(&url).await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched at start");
    let pair = login_a(&app, &a, &claims("judy")).await;
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
    let app = spawn_with_jwks_url(&url).await;
    let a = key("a");
    let err = login_oidc(&app, &sign_a(&a, &claims("kim")))
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
    let (a, body) = key_a_and_jwks();
    let (ca, acceptor) = test_tls();
    let (addr, hits) = serve(Some(acceptor), |_| vec![(CERTS.into(), body)]).await;
    let url = format!("https://localhost:{}{CERTS}", addr.port());
    let settings = OidcSettings {
        ca_file: Some(ca.0.clone()),
        ..OidcSettings::new(ISSUER, AUDIENCE, url.parse::<JwksSource>().unwrap())
    };
    let app = spawn_app_oidc(settings.clone()).await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched at start");
    let pair = login_a(&app, &a, &claims("liam")).await;
    assert_eq!(who_am_i(&app, &pair.access_token).await.1, "keycloak");

    let untrusting = spawn_app_oidc(OidcSettings {
        ca_file: None,
        ..settings
    })
    .await;
    let token = sign_a(&a, &claims("liam"));
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
    let (a, body) = key_a_and_jwks();
    let (ca, acceptor) = test_tls();
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
    let pair = login_a(&app, &a, &c).await;
    assert_eq!(who_am_i(&app, &pair.access_token).await.0, "mia");
    // The issuer is still checked in the token.
    assert_rejected(&app, &sign_a(&a, &claims("mia")), "wrong issuer").await;
}

/// A discovery document that names another issuer is not used.
#[tokio::test]
async fn a_discovery_document_of_another_issuer_is_not_used() {
    let (a, body) = key_a_and_jwks();
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
    let err = login_oidc(&app, &sign_a(&a, &c)).await.unwrap_err();
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
