//! Embedded migrations, applied under a PostgreSQL advisory lock, and the schema version check.
//!
//! diesel_migrations is synchronous; it runs here on a blocking thread through diesel-async's
//! `AsyncConnectionWrapper`, so no libpq is needed. Every operation that changes the schema
//! first takes a session-level advisory lock, so that many processes starting at once apply
//! each migration exactly once: the first one applies, the others wait and then find nothing
//! pending.

use crate::config::DbConfig;
use crate::error::{DbError, DbResult};
use crate::pool::Conn;
use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// The migrations of `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

/// The advisory lock key that serialises schema changes ("simmig" in ASCII).
pub const MIGRATION_LOCK_KEY: i64 = 0x73_69_6d_6d_69_67;

/// One migration and whether the database has it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationStatus {
    /// The version, e.g. `20261121000001`.
    pub version: String,
    /// The folder name, e.g. `2026-11-21-000001_users_and_tokens`; empty when unknown here.
    pub name: String,
    /// Whether the database has applied it.
    pub applied: bool,
    /// Whether this binary knows it (false: the database is newer than the binary).
    pub known: bool,
}

type SyncConn = AsyncConnectionWrapper<Conn>;

/// The versions and names this binary carries, oldest first.
pub fn known_migrations() -> DbResult<Vec<(String, String)>> {
    use diesel::migration::MigrationSource;
    let list =
        MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS).map_err(DbError::Migration)?;
    let mut out: Vec<(String, String)> = list
        .iter()
        .map(|m| (m.name().version().to_string(), m.name().to_string()))
        .collect();
    out.sort();
    Ok(out)
}

/// Runs `f` with a synchronous connection that holds the migration lock.
async fn with_locked_sync_conn<T, F>(config: &DbConfig, f: F) -> DbResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut SyncConn) -> DbResult<T> + Send + 'static,
{
    // Open (and drop) an async connection first: its errors name their cause, which the
    // synchronous wrapper's do not.
    drop(crate::pool::connect(config).await?);
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        use diesel::connection::Connection as _;
        use diesel::RunQueryDsl as _;
        let mut conn =
            SyncConn::establish(config.url_with_password()).map_err(|e| DbError::Connect {
                target: config.redacted_url(),
                reason: crate::config::redact(&e.to_string()),
            })?;
        diesel::sql_query("SELECT pg_advisory_lock($1)")
            .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
            .execute(&mut conn)?;
        let result = f(&mut conn);
        // Closing the session releases the lock too; unlock explicitly all the same.
        let _ = diesel::sql_query("SELECT pg_advisory_unlock($1)")
            .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
            .execute(&mut conn);
        result
    })
    .await
    .map_err(|e| DbError::Migration(Box::new(e)))?
}

fn mig_err(e: Box<dyn std::error::Error + Send + Sync>) -> DbError {
    DbError::Migration(e)
}

fn refuse_unknown(conn: &mut SyncConn) -> DbResult<()> {
    let applied: Vec<String> = conn
        .applied_migrations()
        .map_err(mig_err)?
        .into_iter()
        .map(|v| v.to_string())
        .collect();
    check_versions(&applied).map(|_| ())
}

/// Applies every pending migration; returns the versions applied (empty when up to date).
/// Refuses a database that holds migrations this binary does not know.
pub async fn run_pending(config: &DbConfig) -> DbResult<Vec<String>> {
    with_locked_sync_conn(config, |conn| {
        refuse_unknown(conn)?;
        let done = conn.run_pending_migrations(MIGRATIONS).map_err(mig_err)?;
        Ok(done.into_iter().map(|v| v.to_string()).collect())
    })
    .await
}

/// Reverts the last `steps` applied migrations; returns the versions reverted, newest first.
pub async fn revert(config: &DbConfig, steps: usize) -> DbResult<Vec<String>> {
    with_locked_sync_conn(config, move |conn| {
        refuse_unknown(conn)?;
        let mut reverted = Vec::new();
        for _ in 0..steps {
            if conn.applied_migrations().map_err(mig_err)?.is_empty() {
                break;
            }
            let v = conn.revert_last_migration(MIGRATIONS).map_err(mig_err)?;
            reverted.push(v.to_string());
        }
        Ok(reverted)
    })
    .await
}

/// Reverts the last applied migration and applies it again; returns its version.
pub async fn redo(config: &DbConfig) -> DbResult<Option<String>> {
    with_locked_sync_conn(config, |conn| {
        refuse_unknown(conn)?;
        if conn.applied_migrations().map_err(mig_err)?.is_empty() {
            return Ok(None);
        }
        let v = conn.revert_last_migration(MIGRATIONS).map_err(mig_err)?;
        let v = v.to_string();
        // Apply exactly the reverted one again, not later pending ones.
        use diesel::migration::MigrationSource;
        let all = MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS).map_err(mig_err)?;
        let m = all
            .iter()
            .find(|m| m.name().version().to_string() == v)
            .ok_or_else(|| DbError::Migration(format!("migration {v} vanished").into()))?;
        conn.run_migration(m.as_ref()).map_err(mig_err)?;
        Ok(Some(v))
    })
    .await
}

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

/// The versions the database has applied (empty when it has never been migrated).
pub async fn applied_versions(conn: &mut Conn) -> DbResult<Vec<String>> {
    use diesel_async::RunQueryDsl as _;
    // to_regclass is NULL when the bookkeeping table does not exist yet.
    let rows: Vec<VersionRow> = diesel::sql_query(
        "SELECT version FROM __diesel_schema_migrations \
         WHERE to_regclass('__diesel_schema_migrations') IS NOT NULL ORDER BY version",
    )
    .load(conn)
    .await
    .or_else(|e| match e {
        // The table is missing: the WHERE above cannot save a query that names it.
        diesel::result::Error::DatabaseError(_, ref info)
            if info.message().contains("__diesel_schema_migrations") =>
        {
            Ok(Vec::new())
        }
        e => Err(e),
    })?;
    Ok(rows.into_iter().map(|r| r.version).collect())
}

/// Compares applied versions with the known ones: an error for unknown versions, else the
/// list of pending versions.
pub fn check_versions(applied: &[String]) -> DbResult<Vec<String>> {
    let known = known_migrations()?;
    let unknown: Vec<&str> = applied
        .iter()
        .filter(|a| !known.iter().any(|(v, _)| v == *a))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(DbError::UnknownMigrations {
            unknown: unknown.join(", "),
            latest: known.last().map(|(v, _)| v.clone()).unwrap_or_default(),
        });
    }
    Ok(known
        .into_iter()
        .filter(|(v, _)| !applied.contains(v))
        .map(|(v, _)| v)
        .collect())
}

/// Fails unless the database has exactly the migrations this binary knows.
pub async fn check_schema(conn: &mut Conn) -> DbResult<()> {
    let applied = applied_versions(conn).await?;
    let pending = check_versions(&applied)?;
    match pending.first() {
        Some(first) => Err(DbError::NotMigrated {
            count: pending.len(),
            first: first.clone(),
        }),
        None => Ok(()),
    }
}

/// Every known or applied migration with its state, oldest first.
pub async fn status(conn: &mut Conn) -> DbResult<Vec<MigrationStatus>> {
    let applied = applied_versions(conn).await?;
    let mut out: Vec<MigrationStatus> = known_migrations()?
        .into_iter()
        .map(|(version, name)| MigrationStatus {
            applied: applied.contains(&version),
            version,
            name,
            known: true,
        })
        .collect();
    for v in applied {
        if !out.iter().any(|m| m.version == v) {
            out.push(MigrationStatus {
                version: v,
                name: String::new(),
                applied: true,
                known: false,
            });
        }
    }
    out.sort_by(|a, b| a.version.cmp(&b.version));
    Ok(out)
}

/// Opens one connection and checks that the schema is exactly what this binary expects.
pub async fn connect_and_check(config: &DbConfig) -> DbResult<Conn> {
    let mut conn = crate::pool::connect(config).await?;
    check_schema(&mut conn).await?;
    Ok(conn)
}
