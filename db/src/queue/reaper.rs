//! What lost workers leave behind: expired leases (requeued, or failed when out of
//! attempts) and simulations left `MERGING`.

use super::fail::RETRY_AT_SQL;
use super::finish::{finalize_each, finish_simulations};
use super::lease::progress_cleared_sql;
use crate::enums::TaskState;
use crate::error::{DbError, DbResult};
use crate::notify;
use crate::pool::Conn;
use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, RunQueryDsl};

/// Returns running tasks of direct simulations whose lease has expired (their worker died)
/// to the queue, with backoff, or fails those out of attempts (batch tasks are left to the
/// batch component that takes their simulation over). Returns how many were requeued and failed.
pub async fn requeue_expired(conn: &mut Conn) -> DbResult<(usize, usize)> {
    let outcome = conn.transaction(async |conn| {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = BigInt)]
            simulation_id: i64,
            #[diesel(sql_type = Text)]
            task_state: TaskState,
        }
        let rows: Vec<Row> = diesel::sql_query(format!(
            "WITH expired AS (
                 SELECT id FROM tasks
                 WHERE task_state = 'RUNNING' AND lease_expires_at < now()
                   -- A batch task's element may still run on SLURM: the batch component
                   -- that takes the simulation over re-leases it instead.
                   AND EXISTS (SELECT 1 FROM simulations s
                               WHERE s.id = tasks.simulation_id AND s.platform = 'direct')
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE tasks t SET
                 task_state = CASE WHEN t.attempts < t.max_attempts THEN 'PENDING' ELSE 'FAILED' END,
                 {progress},
                 run_after = {RETRY_AT_SQL},
                 end_time = CASE WHEN t.attempts < t.max_attempts THEN NULL ELSE now() END,
                 last_error = 'lease of ' || t.lease_owner || ' expired (worker lost?) in attempt '
                              || t.attempts,
                 lease_owner = NULL, lease_expires_at = NULL, update_time = now()
             FROM expired WHERE t.id = expired.id
             RETURNING t.simulation_id, t.task_state",
            progress = progress_cleared_sql("t.attempts < t.max_attempts")
        ))
        .load(conn)
        .await?;
        let failed: Vec<i64> = rows
            .iter()
            .filter(|r| r.task_state == TaskState::Failed)
            .map(|r| r.simulation_id)
            .collect();
        let requeued: Vec<i64> = rows
            .iter()
            .filter(|r| r.task_state != TaskState::Failed)
            .map(|r| r.simulation_id)
            .collect();
        let merging = finish_simulations(conn, &failed).await?;
        let counts = (requeued.len(), failed.len());
        let ready = !requeued.is_empty();
        let announce = notify::Announce::changed([requeued, failed].concat()).with_tasks_ready(ready);
        Ok::<_, DbError>((counts, announce, merging))
    })
    .await?;
    outcome.1.send(conn).await;
    finalize_each(conn, outcome.2).await;
    Ok(outcome.0)
}

/// Finalizes simulations left `MERGING` for longer than `stale_secs` (their worker died
/// between the last completion and the final merge). Returns how many were finalized.
pub async fn finalize_stale(conn: &mut Conn, stale_secs: f64) -> DbResult<usize> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let ids: Vec<Id> = diesel::sql_query(
        "SELECT id FROM simulations WHERE job_state = 'MERGING'
           AND update_time < now() - make_interval(secs => $1)",
    )
    .bind::<diesel::sql_types::Double, _>(stale_secs)
    .load(conn)
    .await?;
    Ok(finalize_each(conn, ids.into_iter().map(|i| i.id)).await)
}
