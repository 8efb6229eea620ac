//! Failed runs and machine faults: `RUNNING → PENDING` after the retry backoff, or
//! `RUNNING → FAILED` when no attempt is left (which may end the simulation).

use super::finish::{finalize_each, finish_simulations};
use super::lease::{bind_lease, lease_lost, progress_cleared_sql, Lease, HELD_SQL};
use crate::enums::TaskState;
use crate::error::truncate;
use crate::error::DbResult;
use crate::notify;
use crate::pool::Conn;
use diesel::pg::Pg;
use diesel::query_builder::QueryId;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Bool, HasSqlType, Integer, SqlType, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, RunQueryDsl};

/// When a failed attempt may run again: 2^attempts seconds after now (2 s, 4 s, 8 s, …,
/// at most 256 s). The one place the retry backoff is defined.
pub(super) const RETRY_AT_SQL: &str =
    "now() + make_interval(secs => power(2, least(attempts, 8))::double precision)";

/// Records a failed run. If attempts remain and `retry` is set, the task goes back to the
/// queue after the retry backoff; otherwise it is `FAILED` with `error` kept. Returns the new state.
pub async fn fail(conn: &mut Conn, lease: &Lease, error: &str, retry: bool) -> DbResult<TaskState> {
    let set = format!(
        "task_state = CASE WHEN $5 AND attempts < max_attempts THEN 'PENDING' ELSE 'FAILED' END,
         {progress},
         run_after = {RETRY_AT_SQL},
         end_time = CASE WHEN $5 AND attempts < max_attempts THEN NULL ELSE now() END,
         lease_owner = NULL, lease_expires_at = NULL, last_error = $4, update_time = now()",
        progress = progress_cleared_sql("$5 AND attempts < max_attempts")
    );
    record_failure::<Bool, _>(conn, lease, error, &set, retry).await
}

/// Runs a failure's guarded `UPDATE tasks SET {set}` under the lease (bound as `$1` to `$3`,
/// the truncated `error` as `$4`, `fifth` as `$5`) and the rest of its transaction, then
/// announces it. Returns the task's new state.
async fn record_failure<ST, T>(
    conn: &mut Conn,
    lease: &Lease,
    error: &str,
    set: &str,
    fifth: T,
) -> DbResult<TaskState>
where
    ST: SqlType + QueryId + Send + 'static,
    T: ToSql<ST, Pg> + Send + Sync,
    Pg: HasSqlType<ST>,
{
    let error = truncate(error, 4000);
    let lease = lease.clone();
    let outcome = conn
        .transaction(async |conn| {
            let rows: Vec<FailedRow> = bind_lease!(
                diesel::sql_query(format!(
                    "UPDATE tasks SET {set} WHERE {HELD_SQL} RETURNING simulation_id, task_state"
                )),
                &lease
            )
            .bind::<Text, _>(&error)
            .bind::<ST, _>(&fifth)
            .load(conn)
            .await?;
            after_failure(conn, rows, &lease).await
        })
        .await;
    announce_failure(conn, outcome?).await
}

/// What a failure's guarded `UPDATE … RETURNING simulation_id, task_state` gives.
#[derive(QueryableByName)]
struct FailedRow {
    #[diesel(sql_type = BigInt)]
    simulation_id: i64,
    #[diesel(sql_type = Text)]
    task_state: TaskState,
}

/// The rest of a failure's transaction: no updated row means the lease was lost; a task now
/// `FAILED` may end its simulation. Returns the new state, the simulation, and the
/// simulations now `MERGING`.
async fn after_failure(
    conn: &mut Conn,
    rows: Vec<FailedRow>,
    lease: &Lease,
) -> DbResult<(TaskState, i64, Vec<i64>)> {
    let Some(row) = rows.into_iter().next() else {
        return Err(lease_lost(lease));
    };
    let merging = if row.task_state == TaskState::Failed {
        finish_simulations(conn, &[row.simulation_id]).await?
    } else {
        Vec::new()
    };
    Ok((row.task_state, row.simulation_id, merging))
}

/// After a failure's commit: watchers hear of the simulation (a task `PENDING` again, with
/// its error, or `FAILED`, perhaps ending it), a task `PENDING` again wakes the workers, and
/// the simulations it ended are merged. Returns the task's new state.
async fn announce_failure(
    conn: &mut Conn,
    (state, simulation_id, merging): (TaskState, i64, Vec<i64>),
) -> DbResult<TaskState> {
    notify::Announce::changed([simulation_id])
        .with_tasks_ready(state == TaskState::Pending)
        .send(conn)
        .await;
    finalize_each(conn, merging).await;
    Ok(state)
}

/// Hands a task back after a fault of its worker's machine (a full disk, an I/O error, a
/// simulator program missing there), so that another worker runs it. The first `limit` such
/// faults of a task use no attempt: the task is `PENDING` again at once. After that a machine
/// fault counts as a failed attempt that may be retried (as [`fail`] with `retry`: backoff,
/// and `FAILED` when no attempt is left), so a task that every worker fails on still ends.
/// `last_error` names the worker and the count. Fails with a lease-lost conflict when the
/// lease is gone. Returns the new state.
pub async fn release_machine_fault(
    conn: &mut Conn,
    lease: &Lease,
    error: &str,
    limit: i32,
) -> DbResult<TaskState> {
    // Every right-hand side reads the row as it was before this update.
    let set = format!(
        "machine_faults = machine_faults + 1,
         attempts = CASE WHEN machine_faults < $5 THEN attempts - 1 ELSE attempts END,
         task_state = CASE WHEN machine_faults < $5 OR attempts < max_attempts
                      THEN 'PENDING' ELSE 'FAILED' END,
         {progress},
         run_after = CASE WHEN machine_faults < $5 THEN now() ELSE {RETRY_AT_SQL} END,
         end_time = CASE WHEN machine_faults < $5 OR attempts < max_attempts
                    THEN NULL ELSE now() END,
         last_error = 'machine fault on worker ' || lease_owner || ' ('
             || CASE WHEN machine_faults < $5
                     THEN (machine_faults + 1) || ' of ' || $5
                          || ' handed on without using an attempt'
                     ELSE 'over the limit of ' || $5 || ': attempt ' || attempts
                          || ' of ' || max_attempts || ' used' END
             || '): ' || $4,
         lease_owner = NULL, lease_expires_at = NULL, update_time = now()",
        progress = progress_cleared_sql("machine_faults < $5 OR attempts < max_attempts")
    );
    record_failure::<Integer, _>(conn, lease, error, &set, limit.max(0)).await
}
