#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{authed, simple_submit, spawn_app, spawn_app_as};
use std::io::{BufRead, BufReader};
use std::time::Duration;

#[tokio::test]
async fn health_reports_serving() {
    let app = spawn_app().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    for service in [
        "",
        "sim.v1.AuthService",
        "sim.v1.SimulationService",
        "sim.v1.ClusterService",
    ] {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
}

#[tokio::test]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let app = spawn_app().await;
    let mut client = ServerReflectionClient::new(app.channel.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(futures_util::stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let msg = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("unexpected reflection response");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "sim.v1.AuthService",
        "sim.v1.SimulationService",
        "sim.v1.ClusterService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
}

#[tokio::test]
async fn gzip_is_negotiated_and_clusters_hide_ssh_details() {
    let (app, tok) = spawn_app_as("alice").await;
    app.sql("INSERT INTO clusters (name, host, ssh_key_path, partition, work_dir) VALUES ('prom', 'h', '/secret/key', 'plgrid', '/w')").await;
    let mut clusters =
        proto::v1::cluster_service_client::ClusterServiceClient::new(app.channel.clone())
            .send_compressed(tonic::codec::CompressionEncoding::Gzip)
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    let r = clusters
        .list(authed(proto::v1::ListClustersRequest {}, &tok))
        .await
        .unwrap();
    assert_eq!(
        r.metadata()
            .get("grpc-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    let list = r.into_inner().clusters;
    assert_eq!(
        list,
        vec![proto::v1::Cluster {
            name: "prom".into(),
            partition: "plgrid".into()
        }]
    );
    // A compressed request is accepted too.
    let mut sims = app
        .sims()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    sims.submit(authed(simple_submit(), &tok)).await.unwrap();
}

#[test]
fn help_lists_every_flag_without_secrets() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sim-api"))
        .arg("--help")
        .env("DB_PASSWORD", "hunter2-secret")
        .env("DATABASE_URL", "postgres://u:hunter2-secret@h/d")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--database-url",
        "--db-host",
        "--db-port",
        "--db-user",
        "--db-password",
        "--db-name",
        "--db-socket-dir",
        "--max-ntasks",
        "--max-primaries",
        "SIM_API_MAX_PRIMARIES",
        "--max-input-bytes",
        "--max-input-files",
        "--max-request-bytes",
        "--access-token-ttl <DURATION>",
        "SIM_API_ACCESS_TOKEN_TTL",
        "--refresh-token-ttl <DURATION>",
        "--token-cache <DURATION>",
        "--status-cache <DURATION>",
        "--oidc-leeway <DURATION>",
        "SIM_API_OIDC_LEEWAY",
    ] {
        assert!(help.contains(flag), "{flag} missing");
    }
    assert!(!help.contains("hunter2"), "{help}");
}

#[tokio::test]
async fn binary_migrates_listens_on_port_0_and_stops_on_sigterm() {
    let db = db::testing::TestDb::empty().await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sim-api"))
        .args(["--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", db.config().url_with_password())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_string();
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let e = proto::v1::auth_service_client::AuthServiceClient::new(channel)
        .who_am_i(proto::v1::WhoAmIRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    // The empty database was migrated.
    let mut c = db.conn().await;
    db::migrate::check_schema(&mut c).await.unwrap();
    drop(c);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "{s:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn oversized_request_is_refused() {
    let app = common::spawn_app_with(sim_api::Limits {
        max_request_bytes: 4096,
        ..sim_api::Limits::default()
    })
    .await;
    let tok = app.user_token("alice", false).await;
    let mut req = simple_submit();
    req.input = Some(proto::v1::submit_request::Input::EditorJson(format!(
        "\"{}\"",
        "a".repeat(10_000)
    )));
    let e = app.submit(&tok, req).await.unwrap_err();
    // tonic's decoder refuses the message before the handler runs; the server answers
    // RESOURCE_EXHAUSTED, naming the setting.
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("--max-request-bytes"), "{e:?}");
    // Nothing was stored; a normal request still works.
    app.submit(&tok, simple_submit()).await.unwrap();
}

/// Regression: the LISTEN tasks (Watch events, token revocations) outlived the server and
/// kept its pool, and so its connections, open; a process that starts servers one after
/// another (the Get benchmark) ran out of database connections.
#[tokio::test]
async fn a_stopped_server_closes_its_database_connections() {
    let db = db::testing::TestDb::new().await;
    let pool = db.pool().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sim_api::serve(
        pool,
        sim_api::Limits::default(),
        listener,
        async {
            let _ = rx.await;
        },
    ));
    // A client connection, open while the server stops.
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let others = |c: &'static str| {
        format!(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND backend_type = 'client backend' {c}"
        )
    };
    let count = |sql: String| {
        let db = &db;
        async move {
            use diesel_async::RunQueryDsl;
            #[derive(diesel::QueryableByName)]
            struct N {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let mut c = db.conn().await;
            diesel::sql_query(sql)
                .get_result::<N>(&mut c)
                .await
                .unwrap()
                .n
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count(others("AND query = 'LISTEN sim_auth_events'")).await == 0 {
        assert!(std::time::Instant::now() < deadline, "never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(channel);
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let open = count(others("")).await;
        if open == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{open} connections still open after the server stopped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
