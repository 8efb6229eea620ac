//! Claiming due tasks (`PENDING → RUNNING`, and their simulations `PENDING → RUNNING`).

use super::lease::Lease;
use crate::enums::InputType;
use crate::enums::SimType;
use crate::error::DbResult;
use crate::notify;
use crate::pool::Conn;
use crate::prepared::prepared;
use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Double, Integer, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use std::time::Duration;

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

/// Claims up to `limit` due tasks of direct simulations for `owner`, oldest first, in one
/// round trip; sets their lease and marks their simulations `RUNNING`. Locked rows are
/// skipped, so concurrent workers never claim the same task. Batch simulations' tasks are
/// never claimed here: their cluster's batch component runs them.
///
/// Only tasks of simulations whose `sim_type` is in `sim_types` are claimed: a worker names
/// the simulators it can run (pass [`SimType::ALL`] for every one), and the tasks of the
/// others stay `PENDING`, in their place in the queue, for a worker that can run them. An
/// empty `sim_types` claims nothing.
pub async fn claim(
    conn: &mut Conn,
    owner: &str,
    limit: i64,
    lease: Duration,
    sim_types: &[SimType],
) -> DbResult<Vec<ClaimedTask>> {
    // With `LIMIT $n`, PostgreSQL's generic plan assumes a tenth of the table, so it would
    // plan this statement again on every call (about half a millisecond). Instead the LIMIT
    // is a literal, rounded up to a power of two so that a worker uses only a few statements
    // (each planned once per connection), and the claim takes the first `limit` of the rows
    // it locked; the others are unlocked when the statement commits. Limits above
    // MAX_PREPARED_LIMIT (a worker claims at most its concurrency) are planned each time, so
    // the statement cache stays bounded.
    const MAX_PREPARED_LIMIT: i64 = 1024;
    if limit == 0 || sim_types.is_empty() {
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
    // A worker that runs every simulator claims with the statement it always had (no join:
    // the queue benchmarks measure it). Otherwise the due tasks are those of the open
    // simulations ($4) of the types asked for: PostgreSQL either walks tasks_due_idx in order
    // and looks each task's simulation up (memoized: a simulation's tasks are looked up
    // once), or starts from the open simulations of those types (simulations_active_idx) and
    // their pending tasks (tasks_open_idx), sorted. Either way a claim's cost grows with the
    // open backlog (the other simulators' pending tasks it passes over at the head of the
    // queue, or its own pending tasks it sorts), never with the finished ones: with 10,000
    // pending tasks of an unclaimed simulator at the head of the queue, a claim of 4 took
    // 0.8 ms beside 500 claimable tasks and 4 ms beside 100,000 (EXPLAIN ANALYZE, generic
    // plan, on PostgreSQL 15).
    // Only open simulations have pending tasks: a simulation ends when its tasks have, and
    // cancel ends its open tasks with it.
    let every_type = SimType::ALL.iter().all(|t| sim_types.contains(t));
    let of_types = if every_type {
        ""
    } else {
        "AND simulation_id IN (SELECT id FROM simulations
                                    WHERE job_state IN ('PENDING', 'RUNNING')
                                      AND sim_type = ANY ($4))"
    };
    let types: Vec<&'static str> = sim_types.iter().map(|t| t.as_str()).collect();
    // The later steps take their rows as arrays (`= ANY`), which keeps the plan an index
    // lookup whatever the row estimates are.
    let sql = format!(
        "WITH due AS (
             SELECT id, run_after FROM tasks
             WHERE task_state = 'PENDING' AND run_after <= now() {of_types}
               -- A batch simulation's tasks are never due here: they are created with
               -- run_after = batch::NEVER_DUE_SQL (its cluster's batch component runs them
               -- as SLURM array elements), and no transition makes them due again.
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
        .bind::<Integer, _>(slice)
        // Unused (but typed, which PostgreSQL accepts) when every type is claimed.
        .bind::<Array<Text>, _>(types);
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
