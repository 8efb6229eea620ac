//! The pool after its connections' server side has gone: a connection closed by the server
//! (`pg_terminate_backend`, what a restart does to every client) is not handed out again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use db::testing::TestDb;
use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use std::time::Duration;

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Runs a one-row count query.
async fn count(conn: &mut db::Conn, sql: &str) -> diesel::QueryResult<i64> {
    diesel::sql_query(sql)
        .get_result::<N>(conn)
        .await
        .map(|r| r.n)
}

#[tokio::test]
async fn connections_ended_by_the_server_are_not_handed_out_again() {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    // Open all 4 of the pool's connections, and give them back idle.
    {
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(pool.get().await.expect("a connection"));
        }
        for conn in &mut held {
            assert_eq!(count(conn, "SELECT 1::bigint AS n").await.unwrap(), 1);
        }
    }
    assert_eq!(pool.state().connections, 4);

    // End every one of them from the server side, from a connection of our own.
    let mut admin = db.conn().await;
    let ended = count(
        &mut admin,
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) AS n
         FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .await
    .unwrap();
    assert_eq!(ended, 4, "the pool's four connections were ended");
    // The server closes each socket at once; give the clients' connection tasks a moment
    // to read the close.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Every checkout now gives a working connection: none of the four dead ones.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(pool.get().await.expect("a connection"));
    }
    for (i, conn) in held.iter_mut().enumerate() {
        let r = count(conn, "SELECT 1::bigint AS n").await;
        assert!(
            r.is_ok(),
            "checkout {i} after the server ended the connections was handed a dead one: {:?}",
            r.err()
        );
    }
}
