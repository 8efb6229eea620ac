//! A worker's lease on a claimed task: renewing it (heartbeat), checking it, reporting
//! progress under it, and handing the task back (`RUNNING → PENDING`, no attempt used);
//! and the small lookups of a task.

use crate::enums::TaskState;
use crate::error::{DbError, DbResult};
use crate::notify;
use crate::pool::Conn;
use crate::prepared::prepared;
use diesel::sql_types::{Array, BigInt, Double, Integer, Nullable, Text};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::RunQueryDsl;
use std::time::Duration;

/// A worker's hold on one claimed task: who, which attempt, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The task.
    pub task_id: i64,
    /// The attempt number this claim made (1 for the first claim).
    pub attempt: i32,
    /// The worker holding it.
    pub owner: String,
}

/// The lease is gone: the task was canceled, reaped after the lease expired, or claimed again.
pub fn lease_lost(lease: &Lease) -> DbError {
    DbError::LeaseLost {
        task_id: lease.task_id,
        attempt: lease.attempt,
        owner: lease.owner.clone(),
    }
}

/// Whether an error means the lease was lost ([`DbError::LeaseLost`]).
pub fn is_lease_lost(e: &DbError) -> bool {
    matches!(e, DbError::LeaseLost { .. })
}

/// The guard of every update under a lease: the task is still `RUNNING` for this attempt and
/// owner, with the lease bound as `$1` (task id), `$2` (attempt) and `$3` (owner) by
/// [`bind_lease!`].
pub(super) const HELD_SQL: &str =
    "id = $1 AND attempts = $2 AND lease_owner = $3 AND task_state = 'RUNNING'";

/// Binds a lease to a query guarded by [`HELD_SQL`]: its task id as `$1`, attempt as `$2`
/// and owner as `$3`.
macro_rules! bind_lease {
    ($query:expr, $lease:expr) => {{
        let lease: &$crate::queue::lease::Lease = $lease;
        $query
            .bind::<diesel::sql_types::BigInt, _>(lease.task_id)
            .bind::<diesel::sql_types::Integer, _>(lease.attempt)
            .bind::<diesel::sql_types::Text, _>(lease.owner.as_str())
    }};
}
pub(super) use bind_lease;

/// The leases as the arrays `$1::bigint[]` (task ids), `$2::int[]` (attempts) and
/// `$3::text[]` (owners) of an `unnest`.
pub(super) fn lease_arrays<'a>(
    leases: impl Iterator<Item = &'a Lease> + Clone,
) -> (Vec<i64>, Vec<i32>, Vec<&'a str>) {
    (
        leases.clone().map(|l| l.task_id).collect(),
        leases.clone().map(|l| l.attempt).collect(),
        leases.map(|l| l.owner.as_str()).collect(),
    )
}

#[derive(QueryableByName)]
pub(super) struct Id {
    #[diesel(sql_type = BigInt)]
    pub(super) id: i64,
}

/// Extends the leases `owner` still holds; returns the task ids whose lease is gone (canceled,
/// reaped or re-claimed), whose runs the worker must stop.
pub async fn heartbeat(conn: &mut Conn, leases: &[Lease], lease: Duration) -> DbResult<Vec<i64>> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, attempts, owners) = lease_arrays(leases.iter());
    let held: Vec<Id> = prepared(
        diesel::sql_query(
            "UPDATE tasks t SET lease_expires_at = now() + make_interval(secs => $4)
         FROM unnest($1::bigint[], $2::int[], $3::text[]) AS h(id, attempt, owner)
         WHERE t.id = h.id AND t.attempts = h.attempt AND t.lease_owner = h.owner
           AND t.task_state = 'RUNNING'
         RETURNING t.id",
        )
        .bind::<Array<BigInt>, _>(&ids)
        .bind::<Array<Integer>, _>(&attempts)
        .bind::<Array<Text>, _>(&owners)
        .bind::<Double, _>(lease.as_secs_f64()),
    )
    .load(conn)
    .await?;
    Ok(ids
        .into_iter()
        .filter(|id| !held.iter().any(|h| h.id == *id))
        .collect())
}

/// Of the given leases, the task ids whose lease is gone (canceled, reaped, re-claimed or
/// deleted), in one query and without extending anything.
pub async fn lost_leases(conn: &mut Conn, leases: &[Lease]) -> DbResult<Vec<i64>> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, attempts, owners) = lease_arrays(leases.iter());
    let lost: Vec<Id> = prepared(
        diesel::sql_query(
            "SELECT h.id FROM unnest($1::bigint[], $2::int[], $3::text[]) AS h(id, attempt, owner)
         WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = h.id AND t.attempts = h.attempt
                             AND t.lease_owner = h.owner AND t.task_state = 'RUNNING')",
        )
        .bind::<Array<BigInt>, _>(&ids)
        .bind::<Array<Integer>, _>(&attempts)
        .bind::<Array<Text>, _>(&owners),
    )
    .load(conn)
    .await?;
    Ok(lost.into_iter().map(|r| r.id).collect())
}

/// Records progress of a running task and notifies watchers. Fails with a lease-lost
/// conflict when the lease is gone.
pub async fn report_progress(
    conn: &mut Conn,
    lease: &Lease,
    simulated_primaries: i64,
    estimated_time_s: Option<i32>,
) -> DbResult<()> {
    let rows: Vec<Id> = prepared(
        bind_lease!(
            diesel::sql_query(format!(
                "WITH t AS (
             UPDATE tasks SET simulated_primaries = $4, estimated_time_s = $5, update_time = now()
             WHERE {HELD_SQL}
             RETURNING simulation_id
         )
         SELECT simulation_id AS id, pg_notify($6, simulation_id::text) IS NULL AS _n FROM t",
            )),
            lease
        )
        .bind::<BigInt, _>(simulated_primaries)
        .bind::<Nullable<Integer>, _>(estimated_time_s)
        .bind::<Text, _>(notify::SIMULATION_EVENTS),
    )
    .load(conn)
    .await?;
    if rows.is_empty() {
        return Err(lease_lost(lease));
    }
    Ok(())
}

/// Hands a task back to the queue without counting the attempt (a worker shutting down).
pub async fn release(conn: &mut Conn, lease: &Lease) -> DbResult<()> {
    let released: Vec<Id> = bind_lease!(
        diesel::sql_query(format!(
            "UPDATE tasks SET task_state = 'PENDING', attempts = attempts - 1, run_after = now(),
                {progress},
                lease_owner = NULL, lease_expires_at = NULL, update_time = now()
         WHERE {HELD_SQL}
         RETURNING simulation_id AS id",
            progress = progress_cleared_sql("true")
        )),
        lease
    )
    .load(conn)
    .await?;
    let [Id { id: simulation_id }] = released[..] else {
        return Err(lease_lost(lease));
    };
    notify::Announce::changed([simulation_id])
        .with_tasks_ready(true)
        .send(conn)
        .await;
    Ok(())
}

/// The `SET` items that clear a run's progress when `requeued` (an SQL condition on the row
/// as it was) holds: a task back in the queue starts its next run from zero, so it shows no
/// primaries done and no time left until that run reports. A task that ends keeps how far its
/// last run got. The one place this rule is written, for every transition back to `PENDING`.
pub(super) fn progress_cleared_sql(requeued: &str) -> String {
    format!(
        "simulated_primaries = CASE WHEN {requeued} THEN 0 ELSE simulated_primaries END,
         estimated_time_s = CASE WHEN {requeued} THEN NULL ELSE estimated_time_s END"
    )
}

/// The state of a task, if it still exists.
pub async fn task_state(conn: &mut Conn, task_id: i64) -> DbResult<Option<TaskState>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        task_state: TaskState,
    }
    let row: Option<Row> = diesel::sql_query("SELECT task_state FROM tasks WHERE id = $1")
        .bind::<BigInt, _>(task_id)
        .get_result(conn)
        .await
        .optional()?;
    Ok(row.map(|r| r.task_state))
}

/// The simulation a task belongs to.
pub async fn simulation_of(conn: &mut Conn, task_id: i64) -> DbResult<i64> {
    let row: Option<Id> = diesel::sql_query("SELECT simulation_id AS id FROM tasks WHERE id = $1")
        .bind::<BigInt, _>(task_id)
        .get_result(conn)
        .await
        .optional()?;
    row.map(|r| r.id)
        .ok_or_else(|| DbError::NotFound(format!("task {task_id}")))
}
