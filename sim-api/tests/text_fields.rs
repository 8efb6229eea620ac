//! Text fields the database cannot store (a NUL byte: PostgreSQL refuses it in `text`), names
//! with control characters, and the primaries limit are `INVALID_ARGUMENT` naming the field,
//! refused before anything reaches the database: no row is written and nothing is logged as
//! an error.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{authed, simple_submit, spawn_app, spawn_app_as, spawn_app_with, App};
use proto::v1 as pb;
use proto::v1::submit_request::Platform;
use std::sync::{Arc, Mutex};
use tonic::Code;

/// Everything the server logs, from the moment this is called (one test per process under
/// nextest; under `cargo test` the first caller wins and the others read a shared log).
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOG: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_ansi(false)
            .with_writer(move || Writer(sink.clone()))
            .try_init();
        log
    })
    .clone()
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn error_lines(log: &Arc<Mutex<Vec<u8>>>) -> Vec<String> {
    String::from_utf8_lossy(&log.lock().unwrap())
        .lines()
        .filter(|l| l.contains("ERROR"))
        .map(str::to_string)
        .collect()
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(r: Result<T, tonic::Status>, message: &str) {
    let s = r.expect_err("expected INVALID_ARGUMENT");
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert_eq!(s.message(), message);
}

/// [`simple_submit`] for `primaries` primaries in all.
fn with_primaries(primaries: i64) -> pb::SubmitRequest {
    pb::SubmitRequest {
        primaries,
        ..simple_submit()
    }
}

async fn simulations(app: &App) -> i64 {
    app.count("SELECT count(*) FROM simulations").await
}

#[tokio::test]
async fn a_nul_in_a_title_or_a_cluster_name_is_invalid_argument() {
    let log = capture_logs();
    let (app, tok) = spawn_app_as("alice").await;
    app.sql("INSERT INTO clusters (name, work_dir) VALUES ('prom', '/scratch')")
        .await;

    let mut req = simple_submit();
    req.title = "dose\0map".into();
    assert_invalid(
        app.submit(&tok, req).await,
        "title must not contain a NUL byte",
    );
    let on = |cluster: &str, sbatch_options: &[&str]| {
        let mut req = simple_submit();
        req.platform = Some(Platform::Batch(pb::BatchPlatform {
            cluster: cluster.into(),
            sbatch_options: sbatch_options.iter().map(|o| o.to_string()).collect(),
        }));
        req
    };
    for (cluster, message) in [
        ("prom\0", "batch.cluster must not contain a NUL byte"),
        (
            "prom\n",
            "batch.cluster must not contain control characters",
        ),
        ("", "batch.cluster is required"),
    ] {
        assert_invalid(app.submit(&tok, on(cluster, &[])).await, message);
    }
    let e = app.submit(&tok, on("prom", &["--time=1\0"])).await;
    assert_eq!(e.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(simulations(&app).await, 0, "nothing was stored");

    // Control characters other than NUL are fine in a title, and a NUL escaped inside the
    // editor's JSON is data (stored compressed, as bytes).
    let mut req = simple_submit();
    req.title = "line one\nline\ttwo".into();
    app.submit(&tok, req).await.unwrap();
    let stored: Vec<String> = {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        let mut c = app.db.conn().await;
        db::schema::simulations::table
            .select(db::schema::simulations::title)
            .load(&mut c)
            .await
            .unwrap()
    };
    assert_eq!(stored, ["line one\nline\ttwo"]);
    let mut req = simple_submit();
    req.input = Some(pb::submit_request::Input::EditorJson(
        r#"{"beam":{"energy_mev":150},"title":"a\u0000b"}"#.into(),
    ));
    if let Err(s) = app.submit(&tok, req).await {
        assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    }

    // Job ids are UUIDs: a NUL never reaches a query.
    let e = app.get(&tok, "00000000-0000-0000-0000-00000000000\0").await;
    let e = e.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(error_lines(&log), Vec::<String>::new());
}

#[tokio::test]
async fn a_nul_or_a_control_character_at_login_is_invalid_argument() {
    let log = capture_logs();
    let app = spawn_app().await;
    app.create_user("alice", "pw-login", false).await;
    let login = |username: &str, password: &str| pb::LoginRequest {
        username: username.into(),
        password: password.into(),
    };
    let mut auth = app.auth();
    let long_name = "é".repeat(256);
    for (username, password, message) in [
        (
            "alice\0",
            "pw-login",
            "username must not contain a NUL byte",
        ),
        ("\0", "pw-login", "username must not contain a NUL byte"),
        (
            "al\u{1b}[2Jice",
            "pw-login",
            "username must not contain control characters",
        ),
        (
            "alice",
            "pw-\0login",
            "password must not contain a NUL byte",
        ),
        (
            &long_name,
            "pw-login",
            "username is longer than 255 characters",
        ),
    ] {
        assert_invalid(auth.login(login(username, password)).await, message);
    }
    // 255 two-byte characters is a valid name (the schema counts characters): no such
    // user, so UNAUTHENTICATED.
    let e = auth
        .login(login(&"é".repeat(255), "pw-login"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    auth.login(login("alice", "pw-login")).await.unwrap();
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(text.contains("login failed"), "the log is captured: {text}");
    assert_eq!(error_lines(&log), Vec::<String>::new());
}

#[tokio::test]
async fn a_nul_in_an_estimator_name_is_invalid_argument() {
    let (app, tok) = spawn_app_as("alice").await;
    let job_id = app.submit(&tok, simple_submit()).await.unwrap();
    let e = app
        .sims()
        .get_results(authed(
            pb::GetResultsRequest {
                job_id,
                estimators: vec!["depth_dose".into(), "dose\0".into()],
                pages: String::new(),
            },
            &tok,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(e.message(), "estimators must not contain a NUL byte");
}

#[tokio::test]
async fn primaries_above_the_limit_are_refused_naming_it() {
    let app = spawn_app_with(sim_api::Limits {
        max_primaries: 1_000_000,
        ..sim_api::Limits::default()
    })
    .await;
    let tok = app.user_token("alice", false).await;
    assert_invalid(
        app.submit(&tok, with_primaries(1_000_001)).await,
        "primaries must be at most 1000000 (this server's --max-primaries)",
    );
    let e = app.submit(&tok, with_primaries(i64::MAX)).await;
    assert_eq!(e.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(simulations(&app).await, 0);
    app.submit(&tok, with_primaries(1_000_000)).await.unwrap();
    assert_eq!(
        app.count("SELECT sum(requested_primaries)::bigint FROM tasks")
            .await,
        1_000_000
    );
}

#[tokio::test]
async fn the_default_primaries_limit_is_ten_to_the_twelfth() {
    let (app, tok) = spawn_app_as("alice").await;
    assert_invalid(
        app.submit(&tok, with_primaries(1_000_000_000_001)).await,
        "primaries must be at most 1000000000000 (this server's --max-primaries)",
    );
}
