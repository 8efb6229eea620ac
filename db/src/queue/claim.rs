//! Claiming due tasks (`PENDING → RUNNING`, and their simulations `PENDING → RUNNING`).

use super::lease::Lease;
use crate::enums::InputType;
use crate::enums::SimType;
use crate::error::DbResult;
use crate::notify;
use crate::pool::Conn;
use crate::prepared::prepared;
use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Double, Integer, Text, Timestamptz};
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
