//! How deep the queue is: open tasks by state and the wait of the oldest due task, for the
//! services' metrics (`telemetry`). One read-only statement over the open tasks.

use crate::error::DbResult;
use crate::pool::Conn;
use diesel::sql_types::{BigInt, Double, Nullable};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

/// The open tasks at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, QueryableByName)]
pub struct QueueDepth {
    /// Tasks in state `PENDING`, due or not (a retry's backoff, or a batch simulation's tasks
    /// that the batch component starts).
    #[diesel(sql_type = BigInt)]
    pub pending: i64,
    /// `PENDING` tasks whose `run_after` has passed: what a worker would claim now.
    #[diesel(sql_type = BigInt)]
    pub due: i64,
    /// Tasks in state `RUNNING` (direct and batch).
    #[diesel(sql_type = BigInt)]
    pub running: i64,
    /// Seconds since the oldest due task became due (`now() − run_after`); `None` when no
    /// task is due.
    #[diesel(sql_type = Nullable<Double>)]
    pub oldest_due_secs: Option<f64>,
}

/// Reads the [`QueueDepth`]. The `WHERE` matches the predicate of the partial index
/// `tasks_open_idx`, so finished tasks, however many, are not read.
pub async fn depth(conn: &mut Conn) -> DbResult<QueueDepth> {
    Ok(diesel::sql_query(
        "SELECT count(*) FILTER (WHERE task_state = 'PENDING') AS pending,
                count(*) FILTER (WHERE task_state = 'PENDING' AND run_after <= now()) AS due,
                count(*) FILTER (WHERE task_state = 'RUNNING') AS running,
                EXTRACT(EPOCH FROM now() - min(run_after)
                    FILTER (WHERE task_state = 'PENDING' AND run_after <= now()))::float8
                    AS oldest_due_secs
           FROM tasks WHERE task_state IN ('PENDING', 'RUNNING')",
    )
    .get_result(conn)
    .await?)
}
