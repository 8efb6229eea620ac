//! Migrations: up, down and up again; data survives `redo`; schema rules hold in the catalog.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use db::testing::TestDb;
use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use support::fresh;

/// The tables each migration creates, in migration order.
const TABLES: &[&[&str]] = &[
    &["users", "auth_tokens"],
    &["clusters"],
    &["simulations", "tasks"],
    &[
        "inputs",
        "estimators",
        "pages",
        "task_results",
        "merge_accumulators",
        "logfiles",
    ],
    // Queue indexes only.
    &[],
    // The auth_events triggers only.
    &[],
    // Page aggregation columns only.
    &[],
    // The tasks' machine-fault counter only.
    &[],
    // Batch: cluster settings, the batch lease, the cleanup list.
    &["batch_cleanups"],
    // What each final page holds (tasks merged, primaries) only.
    &[],
];

/// One row for each table of each migration.
const SEED: &[&str] = &[
    "INSERT INTO users (id, username, password_hash, role) VALUES (1, 'u1', NULL, 'admin');
     INSERT INTO auth_tokens (user_id, token_hash, kind, session_id, expires_at)
       VALUES (1, decode(repeat('ab', 32), 'hex'), 'access', gen_random_uuid(), now() + interval '1 hour');",
    "INSERT INTO clusters (id, name, work_dir, sbatch_defaults) VALUES (1, 'c1', '/w', '{--time=1}');",
    "INSERT INTO simulations (id, user_id, platform, input_type, sim_type, ntasks, primaries, cluster_id)
       VALUES (1, 1, 'batch', 'files', 'shieldhit', 1, 100, 1);
     INSERT INTO tasks (id, simulation_id, task_index, requested_primaries) VALUES (1, 1, 0, 100);",
    "INSERT INTO inputs (simulation_id, data, uncompressed_size) VALUES (1, '\\x00', 1);
     INSERT INTO estimators (id, simulation_id, name) VALUES (1, 1, 'z_profile_');
     INSERT INTO pages (estimator_id, page_number, page_dimension, value_count, values_data)
       VALUES (1, 0, 1, 0, '\\x00');
     INSERT INTO task_results (simulation_id, task_id, estimator_name, page_number, primaries, values_data)
       VALUES (1, 1, 'z_profile_', 0, 100, '\\x00');
     INSERT INTO merge_accumulators (simulation_id, estimator_name, page_number, sum_nx, sum_nx2)
       VALUES (1, 'z_profile_', 0, '\\x00', '\\x00');
     INSERT INTO logfiles (simulation_id, task_id, name, data, uncompressed_size) VALUES (1, 1, 'stdout', '\\x00', 1);",
    "SELECT 1",
    "SELECT 1",
    "UPDATE merge_accumulators SET aggregation = 'sum'",
    "UPDATE tasks SET machine_faults = 1",
    "UPDATE clusters SET max_array_size = 10, keep_job_dirs = true;
     UPDATE simulations SET batch_owner = 'b1', batch_lease_expires_at = now();
     INSERT INTO batch_cleanups (cluster_id, job_dir, array_id) VALUES (1, '/w/old', 7);",
    "UPDATE pages SET tasks_merged = 1, primaries = 100",
];

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(conn: &mut db::Conn, sql: &str) -> i64 {
    let rows: Vec<Count> = diesel::sql_query(sql).load(conn).await.unwrap();
    rows.iter().map(|r| r.n).sum()
}

async fn public_tables(conn: &mut db::Conn) -> Vec<String> {
    #[derive(QueryableByName)]
    struct T {
        #[diesel(sql_type = Text)]
        table_name: String,
    }
    let rows: Vec<T> = diesel::sql_query(
        "SELECT table_name::text AS table_name FROM information_schema.tables
         WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations' ORDER BY 1",
    )
    .load(conn)
    .await
    .unwrap();
    rows.into_iter().map(|t| t.table_name).collect()
}

#[tokio::test]
async fn every_migration_goes_up_down_and_up_again() {
    let db = TestDb::empty().await;
    let applied = db::migrate::run_pending(db.config()).await.unwrap();
    assert_eq!(applied.len(), TABLES.len());
    let mut conn = db.conn().await;
    let mut all: Vec<String> = TABLES.concat().iter().map(|s| s.to_string()).collect();
    all.sort();
    assert_eq!(public_tables(&mut conn).await, all);

    let reverted = db::migrate::revert(db.config(), 100).await.unwrap();
    assert_eq!(reverted.len(), TABLES.len());
    let mut sorted = applied.clone();
    sorted.reverse();
    assert_eq!(reverted, sorted, "reverted newest first");
    assert!(
        public_tables(&mut conn).await.is_empty(),
        "down.sql left tables behind"
    );

    let again = db::migrate::run_pending(db.config()).await.unwrap();
    assert_eq!(again, applied);
    db::migrate::check_schema(&mut conn).await.unwrap();
}

#[tokio::test]
async fn data_survives_redo_of_every_later_migration() {
    let (db, mut conn) = fresh().await;
    for sql in SEED {
        conn.batch_execute(sql).await.unwrap();
    }
    // Revert the last k migrations and apply them again: tables of the earlier migrations keep
    // their rows. (The reverted migrations create tables, so their own rows go by nature.)
    for k in 1..TABLES.len() {
        let reverted = db::migrate::revert(db.config(), k).await.unwrap();
        assert_eq!(reverted.len(), k);
        db::migrate::run_pending(db.config()).await.unwrap();
        let kept = TABLES.len() - k;
        for tables in &TABLES[..kept] {
            for t in *tables {
                assert_eq!(
                    count(&mut conn, &format!("SELECT count(*) AS n FROM {t}")).await,
                    1,
                    "{t} lost its row after reverting {k}"
                );
            }
        }
        for (i, tables) in TABLES.iter().enumerate().skip(kept) {
            for t in *tables {
                assert_eq!(
                    count(&mut conn, &format!("SELECT count(*) AS n FROM {t}")).await,
                    0,
                    "{t}"
                );
            }
            conn.batch_execute(SEED[i]).await.unwrap();
        }
    }
    // And `redo` keeps everything that the last migration does not own.
    let redone = db::migrate::redo(db.config()).await.unwrap();
    assert!(redone.is_some());
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM simulations").await,
        1
    );
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM users").await, 1);
}

#[tokio::test]
async fn deleting_a_simulation_removes_everything_under_it() {
    let (_db, mut conn) = fresh().await;
    for sql in SEED {
        conn.batch_execute(sql).await.unwrap();
    }
    conn.batch_execute("DELETE FROM simulations WHERE id = 1")
        .await
        .unwrap();
    // batch_cleanups belongs to the cluster: what is left to clean outlives the simulation.
    for t in TABLES[2..]
        .concat()
        .into_iter()
        .filter(|t| *t != "batch_cleanups")
    {
        assert_eq!(
            count(&mut conn, &format!("SELECT count(*) AS n FROM {t}")).await,
            0,
            "{t} kept rows"
        );
    }
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM users").await, 1);
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM clusters").await,
        1
    );
}

#[tokio::test]
async fn a_user_who_owns_simulations_cannot_be_deleted_by_accident() {
    let (_db, mut conn) = fresh().await;
    for sql in &SEED[..3] {
        conn.batch_execute(sql).await.unwrap();
    }
    let err = conn
        .batch_execute("DELETE FROM users WHERE id = 1")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("foreign key"), "{err}");
}

#[tokio::test]
async fn every_key_is_bigint_and_every_foreign_key_is_indexed() {
    let (_db, mut conn) = fresh().await;
    // Primary keys and references to them are BIGINT.
    let not_bigint = count(
        &mut conn,
        "SELECT count(*) AS n FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'
           AND (column_name = 'id' OR column_name LIKE '%\\_id' ESCAPE '\\')
           AND column_name NOT IN ('job_id', 'session_id', 'array_id', 'collect_id')
           AND data_type <> 'bigint'",
    )
    .await;
    assert_eq!(not_bigint, 0, "some id column is not BIGINT");
    // Every foreign key's columns lead some index, so cascades and joins never scan.
    let unindexed = count(
        &mut conn,
        "SELECT count(*) AS n FROM pg_constraint c
         WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
           AND NOT EXISTS (
             SELECT 1 FROM pg_index i
             WHERE i.indrelid = c.conrelid
               AND (i.indkey::int2[])[0:array_length(c.conkey, 1) - 1] = c.conkey)",
    )
    .await;
    assert_eq!(unindexed, 0, "a foreign key has no index");
    // Everything that references a simulation (directly) cascades.
    let not_cascading = count(
        &mut conn,
        "SELECT count(*) AS n FROM pg_constraint
         WHERE contype = 'f' AND confrelid = 'simulations'::regclass AND confdeltype <> 'c'",
    )
    .await;
    assert_eq!(not_cascading, 0);
}

#[tokio::test]
async fn compressed_columns_are_stored_external() {
    let (_db, mut conn) = fresh().await;
    let external = count(
        &mut conn,
        "SELECT count(*) AS n FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
           AND a.atttypid = 'bytea'::regtype AND a.attstorage = 'e'",
    )
    .await;
    let all_bytea_except_token = count(
        &mut conn,
        "SELECT count(*) AS n FROM information_schema.columns
         WHERE table_schema = 'public' AND data_type = 'bytea' AND column_name <> 'token_hash'",
    )
    .await;
    assert_eq!(external, all_bytea_except_token);
    assert_eq!(external, 7);
}

#[tokio::test]
async fn a_database_newer_than_the_binary_is_refused_with_the_versions() {
    let (db, mut conn) = fresh().await;
    conn.batch_execute(
        "INSERT INTO __diesel_schema_migrations (version) VALUES ('99990101000000')",
    )
    .await
    .unwrap();
    let err = db::migrate::check_schema(&mut conn).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("99990101000000"), "{msg}");
    assert!(msg.contains("20261201000010"), "{msg}");
    let err = db::migrate::run_pending(db.config()).await.unwrap_err();
    assert!(err.to_string().contains("99990101000000"), "{err}");
}

#[tokio::test]
async fn an_unmigrated_database_is_reported_as_such() {
    let db = TestDb::empty().await;
    let err = db::connect_and_check(db.config()).await.err().unwrap();
    assert!(
        matches!(err, db::DbError::NotMigrated { count: 10, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("migrate run"), "{err}");
}

#[tokio::test]
async fn deleting_a_batch_simulation_leaves_its_job_dir_to_clean() {
    let (_db, mut conn) = fresh().await;
    for sql in &SEED[..3] {
        conn.batch_execute(sql).await.unwrap();
    }
    conn.batch_execute(
        "UPDATE simulations SET job_dir = '/w/sim-1', array_id = 41, collect_id = 42;
         INSERT INTO simulations (id, user_id, platform, input_type, sim_type, ntasks, primaries)
           VALUES (2, 1, 'direct', 'editor', 'builtin', 1, 100);
         DELETE FROM simulations;",
    )
    .await
    .unwrap();
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM batch_cleanups
             WHERE cluster_id = 1 AND job_dir = '/w/sim-1' AND array_id = 41 AND collect_id = 42"
        )
        .await,
        1
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM batch_cleanups").await,
        1,
        "a direct simulation leaves nothing to clean"
    );
}
