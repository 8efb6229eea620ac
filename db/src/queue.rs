//! The task queue: claims, leases, heartbeats, progress, completion, failure and requeueing.
//!
//! Every task state transition is written here, once, and guarded in SQL: an update names the
//! state it expects (and, for a running task, the lease owner and attempt number), so a stale
//! worker whose lease was lost and whose task was claimed again cannot complete, fail or
//! report progress for it. No transaction stays open while a task runs: a claim commits at
//! once, and the worker holds only the lease.

use crate::enums::{InputType, SimType, TaskState};
use crate::error::{DbError, DbResult};
use crate::notify;
use crate::pool::Conn;
use crate::prepared::prepared;
use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Double, Integer, Nullable, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, RunQueryDsl};
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

/// A task as handed to a worker by [`claim`].
#[derive(Debug, Clone, QueryableByName)]
pub struct ClaimedTask {
    /// The task's id.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// Its simulation.
    #[diesel(sql_type = BigInt)]
    pub simulation_id: i64,
    /// Its index within the simulation.
    #[diesel(sql_type = Integer)]
    pub task_index: i32,
    /// The attempt number of this claim.
    #[diesel(sql_type = Integer)]
    pub attempt: i32,
    /// Attempts allowed.
    #[diesel(sql_type = Integer)]
    pub max_attempts: i32,
    /// Primaries to simulate.
    #[diesel(sql_type = BigInt)]
    pub requested_primaries: i64,
    /// Which simulator.
    #[diesel(sql_type = Text)]
    pub sim_type: SimType,
    /// Editor JSON or files.
    #[diesel(sql_type = Text)]
    pub input_type: InputType,
    /// When the lease runs out unless extended.
    #[diesel(sql_type = Timestamptz)]
    pub lease_expires_at: DateTime<Utc>,
    /// Whether this claim started the simulation (`PENDING → RUNNING`).
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub started_simulation: bool,
}

impl ClaimedTask {
    /// The lease this claim gave `owner`.
    pub fn lease(&self, owner: &str) -> Lease {
        Lease {
            task_id: self.id,
            attempt: self.attempt,
            owner: owner.to_string(),
        }
    }
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

/// Claims up to `limit` due tasks for `owner`, oldest first, in one round trip; sets their
/// lease and marks their simulations `RUNNING`. Locked rows are skipped, so concurrent
/// workers never claim the same task.
pub async fn claim(
    conn: &mut Conn,
    owner: &str,
    limit: i64,
    lease: Duration,
) -> DbResult<Vec<ClaimedTask>> {
    // With `LIMIT $n`, PostgreSQL's generic plan assumes a tenth of the table, so it would
    // plan this statement again on every call (about half a millisecond). Instead the LIMIT
    // is a literal, rounded up to a power of two so that a worker uses only a few statements
    // (each planned once per connection), and the claim takes the first `limit` of the rows
    // it locked; the others are unlocked when the statement commits. Limits above
    // MAX_PREPARED_LIMIT (a worker claims at most its concurrency) are planned each time, so
    // the statement cache stays bounded.
    const MAX_PREPARED_LIMIT: i64 = 1024;
    if limit == 0 {
        return Ok(Vec::new());
    }
    let prepare = (1..=MAX_PREPARED_LIMIT).contains(&limit);
    let rows = if prepare {
        limit.max(1).unsigned_abs().next_power_of_two()
    } else {
        limit.unsigned_abs()
    };
    // A negative limit keeps PostgreSQL's own error.
    let sign = if limit < 0 { "-" } else { "" };
    // The later steps take their rows as arrays (`= ANY`), which keeps the plan an index
    // lookup whatever the row estimates are.
    let sql = format!(
        "WITH due AS (
             SELECT id, run_after FROM tasks
             WHERE task_state = 'PENDING' AND run_after <= now()
             ORDER BY run_after, id
             LIMIT {sign}{rows}
             FOR UPDATE SKIP LOCKED
         ), claimed AS (
             UPDATE tasks t
             SET task_state = 'RUNNING', attempts = t.attempts + 1, lease_owner = $1,
                 lease_expires_at = now() + make_interval(secs => $2),
                 start_time = coalesce(t.start_time, now()), update_time = now()
             WHERE t.id = ANY ((ARRAY(SELECT id FROM due ORDER BY run_after, id))[1:$3])
             RETURNING t.id, t.simulation_id, t.task_index, t.attempts, t.max_attempts,
                       t.requested_primaries, t.lease_expires_at
         ), to_start AS (
             -- Lock the simulations to start in id order, as finish_simulations does, so
             -- concurrent claims and completions cannot deadlock on them.
             SELECT id FROM simulations
             WHERE id = ANY (ARRAY(SELECT simulation_id FROM claimed)) AND job_state = 'PENDING'
             ORDER BY id
             FOR NO KEY UPDATE
         ), started AS (
             UPDATE simulations s SET job_state = 'RUNNING', update_time = now()
             WHERE s.id = ANY (ARRAY(SELECT id FROM to_start)) AND s.job_state = 'PENDING'
             RETURNING s.id
         )
         SELECT c.id, c.simulation_id, c.task_index, c.attempts AS attempt, c.max_attempts,
                c.requested_primaries, s.sim_type, s.input_type, c.lease_expires_at,
                c.simulation_id IN (SELECT id FROM started) AS started_simulation
         FROM claimed c JOIN simulations s ON s.id = c.simulation_id
         ORDER BY c.id"
    );
    let slice = i32::try_from(limit).unwrap_or(i32::MAX);
    let query = diesel::sql_query(sql)
        .bind::<Text, _>(owner)
        .bind::<Double, _>(lease.as_secs_f64())
        .bind::<Integer, _>(slice);
    let tasks: Vec<ClaimedTask> = if prepare {
        prepared(query).load(conn).await?
    } else {
        query.load(conn).await?
    };
    // Watchers (and API status caches) hear of simulations that started; a task claimed in
    // a simulation already running shows at its first progress report.
    let mut started: Vec<i64> = tasks
        .iter()
        .filter(|t| t.started_simulation)
        .map(|t| t.simulation_id)
        .collect();
    started.sort_unstable();
    started.dedup();
    notify::Announce::changed(started).send(conn).await;
    Ok(tasks)
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Extends the leases `owner` still holds; returns the task ids whose lease is gone (canceled,
/// reaped or re-claimed), whose runs the worker must stop.
pub async fn heartbeat(conn: &mut Conn, leases: &[Lease], lease: Duration) -> DbResult<Vec<i64>> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = leases.iter().map(|l| l.task_id).collect();
    let attempts: Vec<i32> = leases.iter().map(|l| l.attempt).collect();
    let owners: Vec<&str> = leases.iter().map(|l| l.owner.as_str()).collect();
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

/// Records progress of a running task and notifies watchers. Fails with a lease-lost
/// conflict when the lease is gone.
pub async fn report_progress(
    conn: &mut Conn,
    lease: &Lease,
    simulated_primaries: i64,
    estimated_time_s: Option<i32>,
) -> DbResult<()> {
    let rows: Vec<Id> = prepared(
        diesel::sql_query(
            "WITH t AS (
             UPDATE tasks SET simulated_primaries = $4, estimated_time_s = $5, update_time = now()
             WHERE id = $1 AND attempts = $2 AND lease_owner = $3 AND task_state = 'RUNNING'
             RETURNING simulation_id
         )
         SELECT simulation_id AS id, pg_notify($6, simulation_id::text) IS NULL AS _n FROM t",
        )
        .bind::<BigInt, _>(lease.task_id)
        .bind::<Integer, _>(lease.attempt)
        .bind::<Text, _>(&lease.owner)
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

/// A finished task to record with [`complete_many`].
#[derive(Debug, Clone)]
pub struct Completion {
    /// The lease under which it ran.
    pub lease: Lease,
    /// Primaries actually simulated.
    pub simulated_primaries: i64,
}

/// Marks tasks `COMPLETED` in one transaction; returns the ids whose lease was lost (their
/// completion is rejected and counts for nothing). Simulations whose last task this was are
/// completed (or, when they have results to merge, merged and completed).
pub async fn complete_many(conn: &mut Conn, done: &[Completion]) -> DbResult<Vec<i64>> {
    if done.is_empty() {
        return Ok(Vec::new());
    }
    let (completed, sims, merging) = retry_transient!({
        conn.transaction(async |conn| {
            let completed = mark_completed(conn, done).await?;
            let mut sims: Vec<i64> = completed.iter().map(|c| c.1).collect();
            sims.sort_unstable();
            sims.dedup();
            let merging = finish_locked_simulations(conn, &sims).await?;
            Ok::<_, DbError>((completed, sims, merging))
        })
        .await
    })?;
    notify::Announce::changed(sims).send(conn).await;
    for sim in merging {
        finalize(conn, sim).await?;
    }
    Ok(done
        .iter()
        .map(|c| c.lease.task_id)
        .filter(|id| !completed.iter().any(|c| c.0 == *id))
        .collect())
}

/// The guarded transition `RUNNING → COMPLETED` for tasks whose lease is still held; returns
/// `(task id, simulation id)` of those completed. In the same statement it takes the row locks
/// of their simulations, in id order (as [`claim`] and [`finish_simulations`] do), so the
/// caller's next statements see every completion committed before them. Call inside a
/// transaction that then calls [`finish_locked_simulations`].
pub async fn mark_completed(conn: &mut Conn, done: &[Completion]) -> DbResult<Vec<(i64, i64)>> {
    let ids: Vec<i64> = done.iter().map(|c| c.lease.task_id).collect();
    let attempts: Vec<i32> = done.iter().map(|c| c.lease.attempt).collect();
    let owners: Vec<&str> = done.iter().map(|c| c.lease.owner.as_str()).collect();
    let simulated: Vec<i64> = done.iter().map(|c| c.simulated_primaries).collect();
    // `locked` is MATERIALIZED and counted, so all its rows (and locks) are taken before the
    // statement ends, in the order of its ORDER BY. The tasks are looked up by primary key.
    let rows: Vec<CompletedRow> = prepared(
        diesel::sql_query(
            "WITH done AS (
                 UPDATE tasks t
                 SET task_state = 'COMPLETED', simulated_primaries = h.simulated,
                     estimated_time_s = 0, end_time = now(), update_time = now(),
                     lease_expires_at = NULL
                 FROM unnest($1::bigint[], $2::int[], $3::text[], $4::bigint[])
                      AS h(id, attempt, owner, simulated)
                 WHERE t.id = h.id AND t.attempts = h.attempt AND t.lease_owner = h.owner
                   AND t.task_state = 'RUNNING'
                 RETURNING t.id, t.simulation_id
             ), locked AS MATERIALIZED (
                 SELECT id FROM simulations
                 WHERE id IN (SELECT simulation_id FROM done)
                 ORDER BY id
                 FOR NO KEY UPDATE
             )
             SELECT d.id, d.simulation_id, (SELECT count(*) FROM locked) AS locked
             FROM done d",
        )
        .bind::<Array<BigInt>, _>(&ids)
        .bind::<Array<Integer>, _>(&attempts)
        .bind::<Array<Text>, _>(&owners)
        .bind::<Array<BigInt>, _>(&simulated),
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.simulation_id)).collect())
}

#[derive(QueryableByName)]
struct CompletedRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    simulation_id: i64,
}

/// Completes one task; a lost lease is a conflict (see [`is_lease_lost`]).
pub async fn complete(conn: &mut Conn, lease: &Lease, simulated_primaries: i64) -> DbResult<()> {
    let lost = complete_many(
        conn,
        &[Completion {
            lease: lease.clone(),
            simulated_primaries,
        }],
    )
    .await?;
    if lost.is_empty() {
        Ok(())
    } else {
        Err(lease_lost(lease))
    }
}

/// When a failed attempt may run again: 2^attempts seconds after now (2 s, 4 s, 8 s, …,
/// at most 256 s). The one place the retry backoff is defined.
const RETRY_AT_SQL: &str =
    "now() + make_interval(secs => power(2, least(attempts, 8))::double precision)";

/// Records a failed run. If attempts remain and `retry` is set, the task goes back to the
/// queue after the retry backoff; otherwise it is `FAILED` with `error` kept. Returns the new state.
pub async fn fail(conn: &mut Conn, lease: &Lease, error: &str, retry: bool) -> DbResult<TaskState> {
    let error = truncate(error, 4000);
    let lease = lease.clone();
    let outcome = conn.transaction(async |conn| {
        let rows: Vec<FailedRow> = diesel::sql_query(format!(
            "UPDATE tasks SET
                 task_state = CASE WHEN $5 AND attempts < max_attempts THEN 'PENDING' ELSE 'FAILED' END,
                 run_after = {RETRY_AT_SQL},
                 end_time = CASE WHEN $5 AND attempts < max_attempts THEN NULL ELSE now() END,
                 lease_owner = NULL, lease_expires_at = NULL, last_error = $4, update_time = now()
             WHERE id = $1 AND attempts = $2 AND lease_owner = $3 AND task_state = 'RUNNING'
             RETURNING simulation_id, task_state"
        ))
        .bind::<BigInt, _>(lease.task_id)
        .bind::<Integer, _>(lease.attempt)
        .bind::<Text, _>(&lease.owner)
        .bind::<Text, _>(&error)
        .bind::<diesel::sql_types::Bool, _>(retry)
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
    notify::Announce {
        tasks_ready: state == TaskState::Pending,
        ..notify::Announce::changed([simulation_id])
    }
    .send(conn)
    .await;
    for sim in merging {
        finalize(conn, sim).await?;
    }
    Ok(state)
}

/// Hands a task back to the queue without counting the attempt (a worker shutting down).
pub async fn release(conn: &mut Conn, lease: &Lease) -> DbResult<()> {
    let released: Vec<Id> = diesel::sql_query(
        "UPDATE tasks SET task_state = 'PENDING', attempts = attempts - 1, run_after = now(),
                lease_owner = NULL, lease_expires_at = NULL, update_time = now()
         WHERE id = $1 AND attempts = $2 AND lease_owner = $3 AND task_state = 'RUNNING'
         RETURNING simulation_id AS id",
    )
    .bind::<BigInt, _>(lease.task_id)
    .bind::<Integer, _>(lease.attempt)
    .bind::<Text, _>(&lease.owner)
    .load(conn)
    .await?;
    let [Id { id: simulation_id }] = released[..] else {
        return Err(lease_lost(lease));
    };
    notify::Announce {
        tasks_ready: true,
        ..notify::Announce::changed([simulation_id])
    }
    .send(conn)
    .await;
    Ok(())
}

/// Returns running tasks whose lease has expired (their worker died) to the queue, with
/// backoff, or fails those out of attempts. Returns how many were requeued and failed.
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
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE tasks t SET
                 task_state = CASE WHEN t.attempts < t.max_attempts THEN 'PENDING' ELSE 'FAILED' END,
                 run_after = {RETRY_AT_SQL},
                 end_time = CASE WHEN t.attempts < t.max_attempts THEN NULL ELSE now() END,
                 last_error = 'lease of ' || t.lease_owner || ' expired (worker lost?) in attempt '
                              || t.attempts,
                 lease_owner = NULL, lease_expires_at = NULL, update_time = now()
             FROM expired WHERE t.id = expired.id
             RETURNING t.simulation_id, t.task_state"
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
        let announce = notify::Announce {
            tasks_ready: !requeued.is_empty(),
            ..notify::Announce::changed([requeued, failed].concat())
        };
        Ok::<_, DbError>((counts, announce, merging))
    })
    .await?;
    outcome.1.send(conn).await;
    for sim in outcome.2 {
        finalize(conn, sim).await?;
    }
    Ok(outcome.0)
}

/// Moves on every listed simulation whose tasks have all ended: to `MERGING` when at least
/// one task completed and results were folded (the caller then runs
/// [`finalize`] after its transaction commits), to `COMPLETED` when tasks
/// completed without results (there is nothing to merge), else to `FAILED`. The caller
/// announces the listed simulations once its transaction has committed. Returns the
/// simulations now `MERGING`.
pub async fn finish_simulations(conn: &mut Conn, simulation_ids: &[i64]) -> DbResult<Vec<i64>> {
    if simulation_ids.is_empty() {
        return Ok(Vec::new());
    }
    // Take the simulations' row locks first, in id order, in a statement of their own: two
    // tasks of one simulation completing at once then run this check one after the other,
    // and the second one's next statement sees the first one's committed task. (Without it,
    // each sees the other still RUNNING and nobody finishes the simulation.)
    prepared(
        diesel::sql_query(
            "SELECT id FROM simulations WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
        )
        .bind::<Array<BigInt>, _>(simulation_ids),
    )
    .execute(conn)
    .await?;
    finish_locked_simulations(conn, simulation_ids).await
}

/// [`finish_simulations`] for a transaction that already holds the row locks of all the
/// listed simulations, taken by an earlier statement (as [`mark_completed`] does).
pub async fn finish_locked_simulations(
    conn: &mut Conn,
    simulation_ids: &[i64],
) -> DbResult<Vec<i64>> {
    if simulation_ids.is_empty() {
        return Ok(Vec::new());
    }
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Text)]
        job_state: crate::enums::JobState,
    }
    // The open-task probe uses tasks_open_idx. `OFFSET 0` keeps each EXISTS in the CASE a
    // probe of this simulation's rows through an index: without it, PostgreSQL may turn it
    // into a hashed subplan that scans every task once per call.
    let rows: Vec<Row> = prepared(
        diesel::sql_query(format!(
            "UPDATE simulations s SET
                 job_state = CASE
                     WHEN NOT EXISTS (SELECT 1 FROM tasks t WHERE t.simulation_id = s.id
                                        AND t.task_state = 'COMPLETED' OFFSET 0) THEN 'FAILED'
                     WHEN EXISTS (SELECT 1 FROM merge_accumulators a
                                  WHERE a.simulation_id = s.id OFFSET 0) THEN 'MERGING'
                     ELSE 'COMPLETED' END,
                 end_time = CASE
                     WHEN EXISTS (SELECT 1 FROM tasks t WHERE t.simulation_id = s.id
                                    AND t.task_state = 'COMPLETED' OFFSET 0)
                      AND EXISTS (SELECT 1 FROM merge_accumulators a
                                  WHERE a.simulation_id = s.id OFFSET 0) THEN NULL
                     ELSE now() END,
                 update_time = now()
             WHERE s.id = ANY($1) AND s.job_state IN ('PENDING', 'RUNNING')
               AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.simulation_id = s.id
                                 AND t.task_state IN {open})
             RETURNING s.id, s.job_state",
            open = crate::enums::TaskState::OPEN_SQL
        ))
        .bind::<Array<BigInt>, _>(simulation_ids),
    )
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|r| r.job_state == crate::enums::JobState::Merging)
        .map(|r| r.id)
        .collect())
}

/// What [`cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canceled {
    /// The simulation is `CANCELED`: this many unfinished tasks were canceled, and what its
    /// completed tasks computed was merged into its (partial) results.
    Now {
        /// Tasks that were pending or running.
        tasks: usize,
    },
    /// Every task had ended and the final merge is under way: it is left to finish, so the
    /// simulation completes with whole results.
    Merging,
    /// It had already ended (or is gone).
    Ended,
}

/// Cancels a simulation that is pending or running, in one transaction: its unfinished
/// tasks become `CANCELED` (workers running them are told to stop, through
/// [`notify::CANCELLATIONS`]; pending ones never start) and the merge of the tasks already
/// completed is finished into final pages, read back as partial results. A simulation that
/// is `MERGING` is left to complete. If the stored sums are damaged, the cancel still
/// happens; the damage is kept in the simulation's `merge` log.
pub async fn cancel(conn: &mut Conn, simulation_id: i64) -> DbResult<Canceled> {
    let canceled = retry_transient!(
        conn.transaction(async |conn| cancel_tx(conn, simulation_id).await)
            .await
    )?;
    if let Canceled::Now { .. } = canceled {
        notify::Announce::stopped([simulation_id]).send(conn).await;
    }
    Ok(canceled)
}

async fn cancel_tx(conn: &mut Conn, simulation_id: i64) -> DbResult<Canceled> {
    {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            job_state: crate::enums::JobState,
        }
        // Locks in the queue's order, tasks before their simulation (as a completion takes
        // them): the open tasks first, so a completion under way finishes before this looks.
        diesel::sql_query(format!(
            "SELECT id FROM tasks WHERE simulation_id = $1 AND task_state IN {open}
             ORDER BY id FOR UPDATE",
            open = crate::enums::TaskState::OPEN_SQL
        ))
        .bind::<BigInt, _>(simulation_id)
        .execute(conn)
        .await?;
        let rows: Vec<Row> =
            diesel::sql_query("SELECT job_state FROM simulations WHERE id = $1 FOR NO KEY UPDATE")
                .bind::<BigInt, _>(simulation_id)
                .load(conn)
                .await?;
        match rows.into_iter().next().map(|r| r.job_state) {
            Some(crate::enums::JobState::Pending | crate::enums::JobState::Running) => {}
            Some(crate::enums::JobState::Merging) => return Ok(Canceled::Merging),
            _ => return Ok(Canceled::Ended),
        }
        diesel::sql_query(
            "UPDATE simulations SET job_state = 'CANCELED', end_time = now(), update_time = now()
             WHERE id = $1",
        )
        .bind::<BigInt, _>(simulation_id)
        .execute(conn)
        .await?;
        let tasks = diesel::sql_query(format!(
            "UPDATE tasks SET task_state = 'CANCELED', end_time = now(), update_time = now(),
                 lease_owner = NULL, lease_expires_at = NULL
             WHERE simulation_id = $1 AND task_state IN {open}",
            open = crate::enums::TaskState::OPEN_SQL
        ))
        .bind::<BigInt, _>(simulation_id)
        .execute(conn)
        .await?;
        // Under a savepoint: damaged sums undo only the final pages, not the cancel.
        let merged = conn
            .transaction(async |conn| crate::results::write_final_pages(conn, simulation_id).await)
            .await;
        match merged {
            Ok(()) => {}
            Err(DbError::Corrupt(why)) => {
                tracing::error!(simulation = simulation_id, error = %why, "canceled; its results are damaged");
                crate::logs::store(conn, simulation_id, None, "merge", why.as_bytes()).await?;
            }
            Err(e) => return Err(e),
        }
        Ok(Canceled::Now { tasks })
    }
}

/// The simulation a task belongs to.
pub async fn simulation_of(conn: &mut Conn, task_id: i64) -> DbResult<i64> {
    let rows: Vec<Id> = diesel::sql_query("SELECT simulation_id AS id FROM tasks WHERE id = $1")
        .bind::<BigInt, _>(task_id)
        .load(conn)
        .await?;
    rows.into_iter()
        .next()
        .map(|r| r.id)
        .ok_or_else(|| DbError::NotFound(format!("task {task_id}")))
}

/// Ends a simulation whose stored results are damaged ([`DbError::Corrupt`]: merge sums or
/// phase-space parts that do not decode), so that it can never block anything: it becomes
/// `FAILED`; the task holding `lease` (the one whose completion met the damage), if given,
/// `FAILED` with `why`; its other open tasks `CANCELED` (their results could not be merged);
/// and `why`, which names the damaged part, is kept as the simulation's `merge` log. The sums
/// of undamaged pages stay readable as partial results. Workers running its tasks are told to
/// stop. Returns false when the simulation had already ended.
pub async fn fail_damaged(
    conn: &mut Conn,
    simulation_id: i64,
    lease: Option<&Lease>,
    why: &str,
) -> DbResult<bool> {
    let why = truncate(why, 4000);
    let lease = lease.cloned();
    let failed = conn
        .transaction(async |conn| {
            let ended: Vec<Id> = diesel::sql_query(format!(
            "UPDATE simulations SET job_state = 'FAILED', end_time = now(), update_time = now()
                 WHERE id = $1 AND job_state NOT IN {terminal}
                 RETURNING id",
            terminal = crate::enums::JobState::TERMINAL_SQL
        ))
            .bind::<BigInt, _>(simulation_id)
            .load(conn)
            .await?;
            if ended.is_empty() {
                return Ok(false);
            }
            if let Some(lease) = &lease {
                diesel::sql_query(
                    "UPDATE tasks SET task_state = 'FAILED', last_error = $4, end_time = now(),
                         update_time = now(), lease_owner = NULL, lease_expires_at = NULL
                     WHERE id = $1 AND attempts = $2 AND lease_owner = $3 AND task_state = 'RUNNING'",
                )
                .bind::<BigInt, _>(lease.task_id)
                .bind::<Integer, _>(lease.attempt)
                .bind::<Text, _>(&lease.owner)
                .bind::<Text, _>(&why)
                .execute(conn)
                .await?;
            }
            diesel::sql_query(format!(
            "UPDATE tasks SET task_state = 'CANCELED', end_time = now(), update_time = now(),
                     lease_owner = NULL, lease_expires_at = NULL,
                     last_error = 'canceled: the simulation''s stored results are damaged'
                 WHERE simulation_id = $1 AND task_state IN {open}",
            open = crate::enums::TaskState::OPEN_SQL
        ))
            .bind::<BigInt, _>(simulation_id)
            .execute(conn)
            .await?;
            crate::logs::store(conn, simulation_id, None, "merge", why.as_bytes()).await?;
            Ok::<_, DbError>(true)
        })
        .await?;
    if failed {
        tracing::error!(simulation = simulation_id, error = %why, "damaged stored results: simulation failed");
        notify::Announce::stopped([simulation_id]).send(conn).await;
    }
    Ok(failed)
}

/// Whether a transaction failed only because it collided with another (a deadlock or a
/// serialization failure) and may simply be run again. See [`DbError::is_collision`].
pub fn is_transient(e: &DbError) -> bool {
    e.is_collision()
}

/// Of the given leases, the task ids whose lease is gone (canceled, reaped, re-claimed or
/// deleted), in one query and without extending anything.
pub async fn lost_leases(conn: &mut Conn, leases: &[Lease]) -> DbResult<Vec<i64>> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = leases.iter().map(|l| l.task_id).collect();
    let attempts: Vec<i32> = leases.iter().map(|l| l.attempt).collect();
    let owners: Vec<&str> = leases.iter().map(|l| l.owner.as_str()).collect();
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

/// The state of a task, if it still exists.
pub async fn task_state(conn: &mut Conn, task_id: i64) -> DbResult<Option<TaskState>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        task_state: TaskState,
    }
    let rows: Vec<Row> = diesel::sql_query("SELECT task_state FROM tasks WHERE id = $1")
        .bind::<BigInt, _>(task_id)
        .load(conn)
        .await?;
    Ok(rows.into_iter().next().map(|r| r.task_state))
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
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
    let error = truncate(error, 4000);
    let lease = lease.clone();
    let outcome = conn
        .transaction(async |conn| {
            // Every right-hand side reads the row as it was before this update.
            let rows: Vec<FailedRow> = diesel::sql_query(format!(
                "UPDATE tasks SET
                     machine_faults = machine_faults + 1,
                     attempts = CASE WHEN machine_faults < $5 THEN attempts - 1 ELSE attempts END,
                     task_state = CASE WHEN machine_faults < $5 OR attempts < max_attempts
                                  THEN 'PENDING' ELSE 'FAILED' END,
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
                     lease_owner = NULL, lease_expires_at = NULL, update_time = now()
                 WHERE id = $1 AND attempts = $2 AND lease_owner = $3 AND task_state = 'RUNNING'
                 RETURNING simulation_id, task_state"
            ))
            .bind::<BigInt, _>(lease.task_id)
            .bind::<Integer, _>(lease.attempt)
            .bind::<Text, _>(&lease.owner)
            .bind::<Text, _>(&error)
            .bind::<Integer, _>(limit.max(0))
            .load(conn)
            .await?;
            after_failure(conn, rows, &lease).await
        })
        .await;
    announce_failure(conn, outcome?).await
}

/// Writes the final estimators and pages of a `MERGING` simulation from its sums and marks
/// it `COMPLETED`, all in one transaction. Returns false when it was not `MERGING`. When its
/// stored sums are damaged it ends `FAILED` instead, the damage named in its `merge` log
/// ([`fail_damaged`]), and the [`DbError::Corrupt`] is returned.
pub async fn finalize(conn: &mut Conn, simulation_id: i64) -> DbResult<bool> {
    match finalize_tx(conn, simulation_id).await {
        Ok(true) => {
            notify::Announce::changed([simulation_id]).send(conn).await;
            Ok(true)
        }
        Err(DbError::Corrupt(why)) => {
            fail_damaged(conn, simulation_id, None, &why).await?;
            Err(DbError::Corrupt(why))
        }
        other => other,
    }
}

async fn finalize_tx(conn: &mut Conn, simulation_id: i64) -> DbResult<bool> {
    conn.transaction(async |conn| {
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = BigInt)]
            id: i64,
        }
        let locked: Vec<Id> = diesel::sql_query(
            "SELECT id FROM simulations WHERE id = $1 AND job_state = 'MERGING' FOR NO KEY UPDATE",
        )
        .bind::<BigInt, _>(simulation_id)
        .load(conn)
        .await?;
        if !locked.iter().any(|r| r.id == simulation_id) {
            return Ok(false);
        }
        crate::results::write_final_pages(conn, simulation_id).await?;
        diesel::sql_query(
            "UPDATE simulations SET job_state = 'COMPLETED', end_time = now(), update_time = now()
             WHERE id = $1 AND job_state = 'MERGING'",
        )
        .bind::<BigInt, _>(simulation_id)
        .execute(conn)
        .await?;
        Ok(true)
    })
    .await
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
    // Each simulation on its own: one whose data is damaged ends FAILED (see [`finalize`]),
    // and no error stops the others.
    let mut n = 0;
    for id in ids {
        match finalize(conn, id.id).await {
            Ok(true) => n += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(simulation = id.id, error = %e, "cannot finish a merge"),
        }
    }
    Ok(n)
}
