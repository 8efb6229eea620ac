//! The transitions a batch component makes on its cluster's simulations.
//!
//! A batch component holds a batch simulation under a lease, as a worker holds a task
//! (`simulations.batch_owner`, `batch_lease_expires_at`): two components never act on one
//! simulation, and a restarted component takes over when the old lease expires. It holds the
//! tasks whose SLURM elements have started under task leases with the same owner, so that it
//! completes and fails them through the same guarded transitions as a direct worker
//! ([`crate::merge::complete_with_results`], [`super::fail()`]). A simulation stays held after
//! it ends until the component has cancelled its jobs and cleaned its job directory
//! ([`release`]).

use super::lease::Lease;
use crate::enums::{InputType, JobState, SimType, TaskState};
use crate::error::{DbError, DbResult};
use crate::pool::Conn;
use diesel::sql_types::{Array, BigInt, Double, Integer, Nullable, Text, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use std::time::Duration;

/// The `run_after` of a batch simulation's tasks, set when they are created: never due, so
/// that a direct worker's claim never takes them (the claim scans due tasks only, with no
/// per-row look at the simulation: that look cost 45% of the queue's throughput). The batch
/// component starts them by index ([`start_tasks`]), whatever their `run_after`; the reaper
/// and the retry paths leave batch tasks alone. A finite date, so that every reader of
/// `tasks.run_after` can still decode it.
pub const NEVER_DUE_SQL: &str = "'9999-12-31 00:00:00+00'";

/// A batch simulation as its component sees it.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct BatchSimulation {
    /// The simulation's id.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// Its public id (names the job directory and the SLURM jobs).
    #[diesel(sql_type = SqlUuid)]
    pub job_id: uuid::Uuid,
    /// Its state.
    #[diesel(sql_type = Text)]
    pub job_state: JobState,
    /// The simulator.
    #[diesel(sql_type = Text)]
    pub sim_type: SimType,
    /// How the input was given.
    #[diesel(sql_type = Text)]
    pub input_type: InputType,
    /// Number of tasks (= array elements).
    #[diesel(sql_type = Integer)]
    pub ntasks: i32,
    /// The submission's sbatch options (checked at Submit).
    #[diesel(sql_type = Array<Nullable<Text>>)]
    pub sbatch_options: Vec<Option<String>>,
    /// The job directory, once staged.
    #[diesel(sql_type = Nullable<Text>)]
    pub job_dir: Option<String>,
    /// The array job, once submitted.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub array_id: Option<i64>,
    /// The collect job, once submitted.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub collect_id: Option<i64>,
}

/// Takes, or keeps, up to `limit` batch simulations of cluster `cluster_id` for `owner`: open
/// ones (pending or running) and ended ones still held (jobs to cancel, a job directory to
/// clean), that nobody else holds under a live lease. Renews their lease, and the leases of
/// their running tasks, which pass to `owner` when it takes a simulation over (their attempt
/// numbers stay).
pub async fn hold(
    conn: &mut Conn,
    cluster_id: i64,
    owner: &str,
    lease: Duration,
    limit: i64,
) -> DbResult<Vec<BatchSimulation>> {
    Ok(diesel::sql_query(
        "WITH candidates AS (
             SELECT id FROM simulations
             WHERE platform = 'batch' AND cluster_id = $1
               AND (job_state IN ('PENDING', 'RUNNING') OR batch_owner IS NOT NULL)
               AND (batch_owner IS NULL OR batch_owner = $2 OR batch_lease_expires_at < now())
             ORDER BY id
             LIMIT $4
             FOR NO KEY UPDATE SKIP LOCKED
         ), held AS (
             UPDATE simulations s
             SET batch_owner = $2, batch_lease_expires_at = now() + make_interval(secs => $3)
             WHERE s.id IN (SELECT id FROM candidates)
             RETURNING s.id, s.job_id, s.job_state, s.sim_type, s.input_type, s.ntasks,
                       s.sbatch_options, s.job_dir, s.array_id, s.collect_id
         ), tasks AS (
             UPDATE tasks t
             SET lease_owner = $2, lease_expires_at = now() + make_interval(secs => $3)
             WHERE t.simulation_id IN (SELECT id FROM held) AND t.task_state = 'RUNNING'
         )
         SELECT * FROM held ORDER BY id",
    )
    .bind::<BigInt, _>(cluster_id)
    .bind::<Text, _>(owner)
    .bind::<Double, _>(lease.as_secs_f64())
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

/// Records a held simulation's job directory, and once submitted its array and collect jobs.
/// The directory is recorded before anything is submitted (`jobs: None`), so that a component
/// that takes over can find the jobs by the directory's name.
pub async fn record(
    conn: &mut Conn,
    simulation_id: i64,
    owner: &str,
    job_dir: &str,
    jobs: Option<(i64, i64)>,
) -> DbResult<()> {
    let n = diesel::sql_query(
        "UPDATE simulations SET job_dir = $3, array_id = $4, collect_id = $5, update_time = now()
         WHERE id = $1 AND batch_owner = $2",
    )
    .bind::<BigInt, _>(simulation_id)
    .bind::<Text, _>(owner)
    .bind::<Text, _>(job_dir)
    .bind::<Nullable<BigInt>, _>(jobs.map(|j| j.0))
    .bind::<Nullable<BigInt>, _>(jobs.map(|j| j.1))
    .execute(conn)
    .await?;
    if n == 0 {
        return Err(DbError::Conflict(format!(
            "batch simulation {simulation_id} is no longer held by {owner}"
        )));
    }
    Ok(())
}

#[derive(QueryableByName)]
struct IndexedLease {
    #[diesel(sql_type = Integer)]
    task_index: i32,
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Integer)]
    attempts: i32,
}

fn leases(rows: Vec<IndexedLease>, owner: &str) -> Vec<(i32, Lease)> {
    rows.into_iter()
        .map(|r| {
            let lease = Lease {
                task_id: r.id,
                attempt: r.attempts,
                owner: owner.to_owned(),
            };
            (r.task_index, lease)
        })
        .collect()
}

/// A batch simulation's task, as its array element's bookkeeping needs it.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct BatchTask {
    /// The task's id.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// Its index (= the array element's index).
    #[diesel(sql_type = Integer)]
    pub task_index: i32,
    /// Its state.
    #[diesel(sql_type = Text)]
    pub task_state: TaskState,
    /// Primaries it should simulate.
    #[diesel(sql_type = BigInt)]
    pub requested_primaries: i64,
}

/// The simulation's tasks by index.
pub async fn tasks(conn: &mut Conn, simulation_id: i64) -> DbResult<Vec<BatchTask>> {
    Ok(diesel::sql_query(
        "SELECT id, task_index, task_state, requested_primaries FROM tasks
         WHERE simulation_id = $1 ORDER BY task_index",
    )
    .bind::<BigInt, _>(simulation_id)
    .load(conn)
    .await?)
}

/// The tasks of elements SLURM has started: `PENDING → RUNNING` under `owner`'s lease (a new
/// attempt), and the simulation `PENDING → RUNNING`. Returns the new leases by task index;
/// tasks not pending, or a simulation not held by `owner`, are left alone.
pub async fn start_tasks(
    conn: &mut Conn,
    simulation_id: i64,
    owner: &str,
    task_indices: &[i32],
    lease: Duration,
) -> DbResult<Vec<(i32, Lease)>> {
    let rows: Vec<IndexedLease> = diesel::sql_query(
        "WITH sim AS (
             UPDATE simulations SET job_state = CASE WHEN job_state = 'PENDING' THEN 'RUNNING'
                                                     ELSE job_state END,
                                    update_time = now()
             WHERE id = $1 AND batch_owner = $2 AND job_state IN ('PENDING', 'RUNNING')
             RETURNING id
         )
         UPDATE tasks t
         SET task_state = 'RUNNING', attempts = t.attempts + 1, lease_owner = $2,
             lease_expires_at = now() + make_interval(secs => $4),
             start_time = coalesce(t.start_time, now()), update_time = now()
         WHERE t.simulation_id IN (SELECT id FROM sim) AND t.task_state = 'PENDING'
           AND t.task_index = ANY ($3)
         RETURNING t.task_index, t.id, t.attempts",
    )
    .bind::<BigInt, _>(simulation_id)
    .bind::<Text, _>(owner)
    .bind::<Array<Integer>, _>(task_indices)
    .bind::<Double, _>(lease.as_secs_f64())
    .load(conn)
    .await?;
    Ok(leases(rows, owner))
}

/// The leases `owner` holds on the simulation's running tasks, by task index (after
/// [`hold`] took the simulation over, or after a restart).
pub async fn running_leases(
    conn: &mut Conn,
    simulation_id: i64,
    owner: &str,
) -> DbResult<Vec<(i32, Lease)>> {
    let rows: Vec<IndexedLease> = diesel::sql_query(
        "SELECT task_index, id, attempts FROM tasks
         WHERE simulation_id = $1 AND task_state = 'RUNNING' AND lease_owner = $2
         ORDER BY task_index",
    )
    .bind::<BigInt, _>(simulation_id)
    .bind::<Text, _>(owner)
    .load(conn)
    .await?;
    Ok(leases(rows, owner))
}

/// Ends a held batch simulation that cannot be run on its cluster (`sbatch` refused it, or
/// its input is gone): the simulation `FAILED`, and each open task `FAILED` with `why`.
/// Returns false if it had already ended or is not held by `owner`.
pub async fn fail_unsubmittable(
    conn: &mut Conn,
    simulation_id: i64,
    owner: &str,
    why: &str,
) -> DbResult<bool> {
    let why = crate::error::truncate(why, 4000);
    let n = diesel::sql_query(format!(
        "WITH sim AS (
             UPDATE simulations SET job_state = 'FAILED', end_time = now(), update_time = now()
             WHERE id = $1 AND batch_owner = $2 AND job_state NOT IN {terminal}
             RETURNING id
         ), failed AS (
             UPDATE tasks SET task_state = 'FAILED', last_error = $3, end_time = now(),
                              update_time = now(), lease_owner = NULL, lease_expires_at = NULL
             WHERE simulation_id IN (SELECT id FROM sim) AND task_state IN {open}
         )
         SELECT id FROM sim",
        terminal = JobState::TERMINAL_SQL,
        open = TaskState::OPEN_SQL
    ))
    .bind::<BigInt, _>(simulation_id)
    .bind::<Text, _>(owner)
    .bind::<Text, _>(&why)
    .execute(conn)
    .await?;
    if n == 1 {
        crate::notify::Announce::changed([simulation_id])
            .send(conn)
            .await;
    }
    Ok(n == 1)
}

/// Ends `owner`'s hold on an ended simulation, once its jobs are cancelled and its job
/// directory cleaned. Returns false if the simulation is still open or not held by `owner`.
pub async fn release(conn: &mut Conn, simulation_id: i64, owner: &str) -> DbResult<bool> {
    let n = diesel::sql_query(format!(
        "UPDATE simulations SET batch_owner = NULL, batch_lease_expires_at = NULL
         WHERE id = $1 AND batch_owner = $2 AND job_state IN {}",
        JobState::TERMINAL_SQL
    ))
    .bind::<BigInt, _>(simulation_id)
    .bind::<Text, _>(owner)
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// A deleted batch simulation's leftovers on a cluster (see migration `batch`).
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Cleanup {
    /// The row's id, for [`cleaned`].
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// The job directory to remove.
    #[diesel(sql_type = Text)]
    pub job_dir: String,
    /// The array job to cancel, if it was submitted.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub array_id: Option<i64>,
    /// The collect job to cancel, if it was submitted.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub collect_id: Option<i64>,
}

/// Up to `limit` leftovers of deleted simulations on cluster `cluster_id`, oldest first.
pub async fn cleanups(conn: &mut Conn, cluster_id: i64, limit: i64) -> DbResult<Vec<Cleanup>> {
    Ok(diesel::sql_query(
        "SELECT id, job_dir, array_id, collect_id FROM batch_cleanups
         WHERE cluster_id = $1 ORDER BY id LIMIT $2",
    )
    .bind::<BigInt, _>(cluster_id)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

/// Forgets a leftover once its jobs are cancelled and its directory removed.
pub async fn cleaned(conn: &mut Conn, cleanup_id: i64) -> DbResult<()> {
    diesel::sql_query("DELETE FROM batch_cleanups WHERE id = $1")
        .bind::<BigInt, _>(cleanup_id)
        .execute(conn)
        .await?;
    Ok(())
}
