//! An operator's retry of a failed task (`FAILED → PENDING`, with a fresh attempt budget),
//! while its simulation is still open.

use crate::enums::{JobState, Platform, TaskState};
use crate::error::DbError;
use crate::models::Task;
use crate::notify;
use crate::pool::Conn;
use crate::schema::tasks;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, RunQueryDsl};

/// Why [`retry`] did not requeue the task.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// The simulation, or that task of it, does not exist; or the database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Only a failed task is retried.
    #[error("task {task_index} of simulation {simulation_id} is {state}, not FAILED: only a failed task is retried")]
    NotFailed {
        /// The simulation.
        simulation_id: i64,
        /// The task's index.
        task_index: i32,
        /// The task's state.
        state: TaskState,
    },
    /// The simulation has ended (or is merging its final results): its tasks stay as they
    /// are.
    #[error("simulation {simulation_id} is {state}: it has ended, so its tasks are not retried")]
    SimulationEnded {
        /// The simulation.
        simulation_id: i64,
        /// Its state.
        state: JobState,
    },
    /// A batch simulation's tasks run as elements of one SLURM array, submitted once: a
    /// single task cannot be queued again.
    #[error("simulation {simulation_id} runs on a cluster as one SLURM array: its tasks cannot be retried one by one")]
    Batch {
        /// The simulation.
        simulation_id: i64,
    },
}

impl From<diesel::result::Error> for RetryError {
    fn from(e: diesel::result::Error) -> Self {
        RetryError::Db(e.into())
    }
}

#[derive(QueryableByName)]
struct TaskRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    task_state: TaskState,
}

#[derive(QueryableByName)]
struct SimulationRow {
    #[diesel(sql_type = Text)]
    job_state: JobState,
    #[diesel(sql_type = Text)]
    platform: Platform,
}

/// Requeues task `task_index` of simulation `simulation_id` when it is `FAILED` and its
/// simulation is still open (`PENDING` or `RUNNING`, direct): the task is `PENDING` again,
/// due now, with no attempt used and no machine fault counted; its last error stays until a
/// new run replaces it. One transaction, locking the task before its simulation (the queue's
/// order). Idle workers are woken after commit. Returns the task as it is now.
pub async fn retry(
    conn: &mut Conn,
    simulation_id: i64,
    task_index: i32,
) -> Result<Task, RetryError> {
    let task = conn
        .transaction(async |conn| retry_tx(conn, simulation_id, task_index).await)
        .await?;
    notify::Announce::changed([simulation_id])
        .with_tasks_ready(true)
        .send(conn)
        .await;
    Ok(task)
}

async fn retry_tx(
    conn: &mut Conn,
    simulation_id: i64,
    task_index: i32,
) -> Result<Task, RetryError> {
    let task: Option<TaskRow> = diesel::sql_query(
        "SELECT id, task_state FROM tasks WHERE simulation_id = $1 AND task_index = $2 FOR UPDATE",
    )
    .bind::<BigInt, _>(simulation_id)
    .bind::<Integer, _>(task_index)
    .load(conn)
    .await?
    .into_iter()
    .next();
    let sim: Option<SimulationRow> = diesel::sql_query(
        "SELECT job_state, platform FROM simulations WHERE id = $1 FOR NO KEY UPDATE",
    )
    .bind::<BigInt, _>(simulation_id)
    .load(conn)
    .await?
    .into_iter()
    .next();
    let Some(sim) = sim else {
        return Err(DbError::NotFound(format!("simulation {simulation_id}")).into());
    };
    let Some(task) = task else {
        return Err(
            DbError::NotFound(format!("task {task_index} of simulation {simulation_id}")).into(),
        );
    };
    if !matches!(sim.job_state, JobState::Pending | JobState::Running) {
        return Err(RetryError::SimulationEnded {
            simulation_id,
            state: sim.job_state,
        });
    }
    if sim.platform != Platform::Direct {
        return Err(RetryError::Batch { simulation_id });
    }
    if task.task_state != TaskState::Failed {
        return Err(RetryError::NotFailed {
            simulation_id,
            task_index,
            state: task.task_state,
        });
    }
    let task: Task = diesel::update(
        tasks::table
            .filter(tasks::id.eq(task.id))
            .filter(tasks::task_state.eq(TaskState::Failed)),
    )
    .set((
        tasks::task_state.eq(TaskState::Pending),
        tasks::attempts.eq(0),
        tasks::machine_faults.eq(0),
        tasks::run_after.eq(diesel::dsl::now),
        tasks::end_time.eq(None::<chrono::DateTime<chrono::Utc>>),
        tasks::lease_owner.eq(None::<String>),
        tasks::lease_expires_at.eq(None::<chrono::DateTime<chrono::Utc>>),
        tasks::update_time.eq(diesel::dsl::now),
    ))
    .returning(Task::as_returning())
    .get_result(conn)
    .await?;
    Ok(task)
}
