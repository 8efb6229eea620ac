//! A database that stops answering gives `UNAVAILABLE` (which clients retry), never
//! `INTERNAL`, on every kind of call, and the server recovers by itself once the database is
//! back. The outage is real: the test database stops accepting connections
//! (`ALLOW_CONNECTIONS false`) and every connection the server holds to it is terminated
//! (`pg_terminate_backend`), so the server meets both a connection that dies under it and a
//! database it cannot connect to.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{authed, simple_submit, App};
use db::testing::TestDb;
use proto::v1 as pb;
use proto::v1::auth_service_client::AuthServiceClient;
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::simulation_service_client::SimulationServiceClient;
use std::time::Duration;
use tonic::Code;

/// The server under test: in-process, on a pool that gives up on a connection after 1 s
/// (the binary's default is 10 s), with both in-process caches off so that every call
/// really asks the database.
async fn start() -> App {
    let db = TestDb::new().await;
    let pool = db::build_pool(
        db.config(),
        &db::PoolOptions {
            max_size: 4,
            connection_timeout: Duration::from_secs(1),
        },
    )
    .await
    .unwrap();
    let limits = sim_api::Limits {
        token_cache_ttl: Duration::ZERO,
        status_cache_ttl: Duration::ZERO,
        ..sim_api::Limits::default()
    };
    common::spawn_on(db, pool, limits, None).await
}

/// Runs SQL on the server's maintenance database (not the test database).
async fn admin_sql(sql: &str) {
    use diesel_async::RunQueryDsl;
    let mut admin = db::connect(&db::testing::server_config()).await.unwrap();
    diesel::sql_query(sql).execute(&mut admin).await.unwrap();
}

/// Makes the test database unreachable: no new connections, and every open one terminated
/// (waiting until each backend has exited).
async fn outage(db: &TestDb) {
    let name = db.name();
    admin_sql(&format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"
    ))
    .await;
    admin_sql(&format!(
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity \
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    ))
    .await;
}

async fn recover(db: &TestDb) {
    admin_sql(&format!(
        "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true",
        db.name()
    ))
    .await;
}

#[track_caller]
fn assert_unavailable<T: std::fmt::Debug>(what: &str, r: Result<T, tonic::Status>) {
    match r {
        Err(s) => {
            assert_eq!(s.code(), Code::Unavailable, "{what}: {s:?}");
            assert_eq!(
                s.message(),
                "the database is unavailable; try again later",
                "{what}"
            );
        }
        Ok(v) => panic!("{what} succeeded during the outage: {v:?}"),
    }
}

/// Calls `op` until it succeeds, as a client that retries UNAVAILABLE would; any other
/// failure, or no success in 50 tries, fails the test.
async fn until_ok<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    for _ in 0..50 {
        match op().await {
            Ok(v) => return v,
            Err(s) if s.code() == Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => panic!("{what} after the outage: {s:?}"),
        }
    }
    panic!("{what} never succeeded after the database came back");
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_and_the_server_recovers() {
    let server = start().await;
    let hash = db::password::hash("pw-outage").unwrap();
    {
        let mut c = server.db.conn().await;
        db::users::create(
            &mut c,
            &db::models::NewUser {
                username: "alice",
                auth_provider: db::enums::AuthProvider::Local,
                password_hash: Some(&hash),
                role: db::enums::Role::User,
            },
        )
        .await
        .unwrap();
    }
    let mut auth = AuthServiceClient::new(server.channel.clone());
    let mut sims = SimulationServiceClient::new(server.channel.clone());
    let mut clusters = ClusterServiceClient::new(server.channel.clone());
    let login = || pb::LoginRequest {
        username: "alice".into(),
        password: "pw-outage".into(),
    };
    let tokens = auth.login(login()).await.unwrap().into_inner();
    let tok = tokens.access_token.clone();
    let job_id = sims
        .submit(authed(simple_submit(), &tok))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let get = |job_id: &str| pb::GetRequest {
        job_id: job_id.into(),
    };
    // Calls made before the outage leave connections in the pool: the first calls during it
    // meet connections that were terminated under them.
    sims.get(authed(get(&job_id), &tok)).await.unwrap();
    sims.list(authed(pb::ListRequest::default(), &tok))
        .await
        .unwrap();
    let mut watch = sims
        .watch(authed(
            pb::WatchRequest {
                job_id: job_id.clone(),
            },
            &tok,
        ))
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap().expect("the first status");

    outage(&server.db).await;

    // Every call, twice: first on a terminated connection or a refused one, then again.
    for round in 0..2 {
        assert_unavailable(
            &format!("Get, round {round}"),
            sims.get(authed(get(&job_id), &tok)).await,
        );
        assert_unavailable(
            &format!("List, round {round}"),
            sims.list(authed(pb::ListRequest::default(), &tok)).await,
        );
        assert_unavailable(
            &format!("Submit, round {round}"),
            sims.submit(authed(simple_submit(), &tok)).await,
        );
        assert_unavailable(&format!("Login, round {round}"), auth.login(login()).await);
    }
    assert_unavailable(
        "Refresh",
        auth.refresh(pb::RefreshRequest {
            refresh_token: tokens.refresh_token.clone(),
        })
        .await,
    );
    assert_unavailable(
        "WhoAmI",
        auth.who_am_i(authed(pb::WhoAmIRequest {}, &tok)).await,
    );
    assert_unavailable(
        "ListClusters",
        clusters
            .list(authed(pb::ListClustersRequest {}, &tok))
            .await,
    );
    assert_unavailable(
        "GetResults",
        sims.get_results(authed(
            pb::GetResultsRequest {
                job_id: job_id.clone(),
                ..Default::default()
            },
            &tok,
        ))
        .await,
    );
    assert_unavailable(
        "Watch",
        sims.watch(authed(
            pb::WatchRequest {
                job_id: job_id.clone(),
            },
            &tok,
        ))
        .await,
    );
    // The stream opened before the outage ends with UNAVAILABLE at its next re-read.
    assert_unavailable("the open Watch stream", watch.message().await);

    recover(&server.db).await;

    // Without a restart, each call works again once the database answers.
    let status = until_ok("Get", || {
        let mut s = sims.clone();
        let r = authed(get(&job_id), &tok);
        async move { s.get(r).await }
    })
    .await
    .into_inner();
    assert_eq!(status.simulation.unwrap().job_id, job_id);
    let listed = until_ok("List", || {
        let mut s = sims.clone();
        let r = authed(pb::ListRequest::default(), &tok);
        async move { s.list(r).await }
    })
    .await
    .into_inner();
    assert_eq!(listed.total_count, 1, "no Submit of the outage was stored");
    until_ok("Submit", || {
        let mut s = sims.clone();
        let r = authed(simple_submit(), &tok);
        async move { s.submit(r).await }
    })
    .await;
    let fresh = until_ok("Login", || {
        let mut a = auth.clone();
        async move { a.login(login()).await }
    })
    .await
    .into_inner();
    let me = sims
        .list(authed(pb::ListRequest::default(), &fresh.access_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.total_count, 2);
}
