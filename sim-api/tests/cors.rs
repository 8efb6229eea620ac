//! CORS for grpc-web (`--cors-allow-origin`): a browser's preflight from an allowed origin is
//! answered with the headers a grpc-web client needs; other origins, and every origin when
//! the flag is not given, get no `access-control-allow-origin`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use db::testing::TestDb;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Starts the API with `origins` allowed; its address, and the database kept alive.
async fn serve(origins: &[&str]) -> (SocketAddr, TestDb, tokio::sync::oneshot::Sender<()>) {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let extras = sim_api::Extras {
        cors_origins: origins.iter().map(|o| o.to_string()).collect(),
        ..sim_api::Extras::default()
    };
    tokio::spawn(sim_api::serve_with(
        pool,
        sim_api::Limits::default(),
        extras,
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    (addr, db, stop)
}

/// A grpc-web preflight for Login from `origin`: the response's status line and headers,
/// lower-cased.
async fn preflight(addr: SocketAddr, origin: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "OPTIONS /sim.v1.AuthService/Login HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\n\
         Access-Control-Request-Method: POST\r\n\
         Access-Control-Request-Headers: content-type,x-grpc-web,authorization\r\n\
         Connection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_lowercase();
    text.split("\r\n\r\n").next().unwrap().to_string()
}

#[tokio::test]
async fn an_allowed_origin_gets_its_preflight_answered() {
    let (addr, _db, _stop) = serve(&["https://ui.example.org"]).await;
    let head = preflight(addr, "https://ui.example.org").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("access-control-allow-origin: https://ui.example.org"),
        "{head}"
    );
    let allowed = head
        .lines()
        .find(|l| l.starts_with("access-control-allow-headers:"))
        .unwrap_or_else(|| panic!("no allow-headers in {head}"));
    for h in ["content-type", "x-grpc-web", "authorization"] {
        assert!(allowed.contains(h), "{h}: {allowed}");
    }
    assert!(
        head.contains("access-control-allow-methods: post"),
        "{head}"
    );
    assert!(!head.contains("access-control-allow-credentials"), "{head}");

    let other = preflight(addr, "https://evil.example.com").await;
    assert!(!other.contains("access-control-allow-origin"), "{other}");
}

#[tokio::test]
async fn without_the_flag_no_origin_is_allowed() {
    let (addr, _db, _stop) = serve(&[]).await;
    let head = preflight(addr, "https://ui.example.org").await;
    assert!(!head.contains("access-control-allow-origin"), "{head}");
}

#[tokio::test]
async fn a_star_allows_any_origin() {
    let (addr, _db, _stop) = serve(&["*"]).await;
    let head = preflight(addr, "http://localhost:3000").await;
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
}
