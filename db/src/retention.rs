//! Retention: deleting finished simulations in short batches (`admin-cli cleanup`). Only
//! the terminal states ([`JobState::TERMINAL`]) are ever taken, whatever a filter says, so a
//! pending, running or merging simulation is never deleted; each batch locks its rows, checks
//! the condition under the lock and commits whole.

use crate::enums::{AuthProvider, JobState};
use crate::error::{DbError, DbResult};
use crate::pool::Conn;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt};
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

/// Which finished simulations a cleanup takes ([`cleanup_count`], [`cleanup_candidates`],
/// [`cleanup_batch`]). Only `COMPLETED`, `FAILED` and `CANCELED` simulations are ever taken,
/// whatever `states` says: a pending, running or merging one never is.
#[derive(Debug, Clone)]
pub struct CleanupFilter {
    /// Ended at least this long ago (by the database's clock, at each statement).
    pub older_than: std::time::Duration,
    /// Only these states (empty: every finished state).
    pub states: Vec<JobState>,
    /// Only this owner's (name).
    pub username: Option<String>,
    /// Only owners of this auth provider.
    pub auth_provider: Option<AuthProvider>,
}

/// One simulation a cleanup deletes (or would), with the bytes it holds.
#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct CleanupRow {
    /// Operator id.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// Public id.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub job_id: Uuid,
    /// Owner's name.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub username: String,
    /// Owner's auth provider.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub auth_provider: AuthProvider,
    /// Its (finished) state.
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub job_state: JobState,
    /// When it ended.
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    pub end_time: Option<chrono::DateTime<chrono::Utc>>,
    /// Stored bytes of its input, logs, pages, task results and merge sums (as stored, after
    /// compression).
    #[diesel(sql_type = BigInt)]
    pub bytes: i64,
}

/// What one [`cleanup_batch`] did.
#[derive(Debug, Clone, Default)]
pub struct CleanupBatch {
    /// The simulations deleted, in id order.
    pub deleted: Vec<CleanupRow>,
    /// The highest id looked at: the next batch starts after it. `None` when nothing was
    /// left.
    pub last_id: Option<i64>,
}

/// The states a cleanup may take: the finished ones of `states`, or all finished ones.
fn cleanup_states(filter: &CleanupFilter) -> Vec<String> {
    JobState::TERMINAL
        .iter()
        .filter(|s| filter.states.is_empty() || filter.states.contains(s))
        .map(|s| s.as_str().to_string())
        .collect()
}

/// The WHERE clause of a cleanup, on `simulations s JOIN users u`: `$1` states, `$2` age in
/// seconds, `$3` owner's name, `$4` provider, `$5` the id to start after.
/// The terminal states are checked in SQL too, whatever `$1` holds.
fn cleanup_where() -> String {
    format!(
        "s.job_state = ANY($1)
    AND s.job_state IN {terminal}
    AND coalesce(s.end_time, s.update_time) < now() - make_interval(secs => $2)
    AND ($3::text IS NULL OR u.username = $3)
    AND ($4::text IS NULL OR u.auth_provider = $4)
    AND s.id > $5",
        terminal = JobState::TERMINAL_SQL
    )
}

/// The stored bytes under simulation `s`.
const CLEANUP_BYTES: &str = "(
    (SELECT coalesce(sum(pg_column_size(data)), 0) FROM inputs WHERE simulation_id = s.id)
  + (SELECT coalesce(sum(pg_column_size(data)), 0) FROM logfiles WHERE simulation_id = s.id)
  + (SELECT coalesce(sum(pg_column_size(p.values_data) + coalesce(pg_column_size(p.errors_data), 0)), 0)
       FROM pages p JOIN estimators e ON e.id = p.estimator_id WHERE e.simulation_id = s.id)
  + (SELECT coalesce(sum(pg_column_size(values_data)), 0) FROM task_results WHERE simulation_id = s.id)
  + (SELECT coalesce(sum(pg_column_size(sum_nx) + pg_column_size(sum_nx2)), 0)
       FROM merge_accumulators WHERE simulation_id = s.id)
)::bigint";

/// Binds a cleanup's parameters `$1` to `$5` (`cleanup_where`).
macro_rules! bind_cleanup {
    ($q:expr, $filter:expr, $after:expr) => {
        $q.bind::<Array<diesel::sql_types::Text>, _>(cleanup_states($filter))
            .bind::<diesel::sql_types::Double, _>($filter.older_than.as_secs_f64())
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(
                $filter.username.clone(),
            )
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(
                $filter.auth_provider.map(|p| p.as_str().to_string()),
            )
            .bind::<BigInt, _>($after)
    };
}

/// How many simulations a cleanup would take now.
pub async fn cleanup_count(conn: &mut Conn, filter: &CleanupFilter) -> DbResult<i64> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let rows: Vec<Count> = bind_cleanup!(
        diesel::sql_query(format!(
            "SELECT count(*) AS n FROM simulations s JOIN users u ON u.id = s.user_id
             WHERE {}",
            cleanup_where()
        )),
        filter,
        0i64
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().map_or(0, |c| c.n))
}

/// Up to `limit` simulations a cleanup would take, after id `after_id`, in id order, with
/// their sizes. Reads only (for `--dry-run`).
pub async fn cleanup_candidates(
    conn: &mut Conn,
    filter: &CleanupFilter,
    after_id: i64,
    limit: i64,
) -> DbResult<Vec<CleanupRow>> {
    Ok(bind_cleanup!(
        diesel::sql_query(format!(
            "SELECT s.id, s.job_id, u.username, u.auth_provider, s.job_state, s.end_time,
                    {CLEANUP_BYTES} AS bytes
             FROM simulations s JOIN users u ON u.id = s.user_id
             WHERE {} ORDER BY s.id LIMIT $6",
            cleanup_where()
        )),
        filter,
        after_id
    )
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

/// Deletes, in one short transaction, up to `limit` simulations a cleanup takes, after id
/// `after_id`, in id order, with everything under them (by cascade). The rows are locked
/// first and the condition is checked under the lock; rows another transaction holds are
/// skipped (a later run takes them); a batch that collides with another transaction (a
/// deadlock) is run again. Workers hear that the simulations stopped, after
/// commit. Interrupting between batches loses nothing: each batch commits whole or not at
/// all.
pub async fn cleanup_batch(
    conn: &mut Conn,
    filter: &CleanupFilter,
    after_id: i64,
    limit: i64,
) -> DbResult<CleanupBatch> {
    let filter = filter.clone();
    // A deadlock with another transaction (the queue locks tasks before their simulation)
    // rolls the batch back whole: run it again.
    let deleted = retry_transient!(
        conn.transaction(async |conn| {
            let rows: Vec<CleanupRow> = bind_cleanup!(
                diesel::sql_query(format!(
                    "WITH doomed AS (
                         SELECT s.id FROM simulations s JOIN users u ON u.id = s.user_id
                         WHERE {} ORDER BY s.id LIMIT $6
                         FOR UPDATE OF s SKIP LOCKED
                     )
                     SELECT s.id, s.job_id, u.username, u.auth_provider, s.job_state, s.end_time,
                            {CLEANUP_BYTES} AS bytes
                     FROM doomed d JOIN simulations s ON s.id = d.id JOIN users u ON u.id = s.user_id
                     ORDER BY s.id"
                , cleanup_where())),
                &filter,
                after_id
            )
            .bind::<BigInt, _>(limit)
            .load(conn)
            .await?;
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            if !ids.is_empty() {
                diesel::sql_query("DELETE FROM simulations WHERE id = ANY($1)")
                    .bind::<Array<BigInt>, _>(&ids)
                    .execute(conn)
                    .await?;
            }
            Ok::<_, DbError>(rows)
        })
        .await
    )?;
    let ids: Vec<i64> = deleted.iter().map(|r| r.id).collect();
    if !ids.is_empty() {
        crate::notify::Announce::stopped(ids).send(conn).await;
    }
    Ok(CleanupBatch {
        last_id: deleted.last().map(|r| r.id),
        deleted,
    })
}
