//! Canceling a simulation (`PENDING`/`RUNNING → CANCELED`, its open tasks `CANCELED`),
//! keeping what its completed tasks computed.

use crate::error::{DbError, DbResult};
use crate::notify;
use crate::pool::Conn;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, RunQueryDsl};

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
        let tasks = cancel_open_tasks(conn, simulation_id, None).await?;
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

/// `PENDING`/`RUNNING → CANCELED` for the simulation's open tasks, their leases dropped and,
/// when given, `last_error` recorded. Returns how many there were.
pub(super) async fn cancel_open_tasks(
    conn: &mut Conn,
    simulation_id: i64,
    last_error: Option<&str>,
) -> DbResult<usize> {
    Ok(diesel::sql_query(format!(
        "UPDATE tasks SET task_state = 'CANCELED', end_time = now(), update_time = now(),
             lease_owner = NULL, lease_expires_at = NULL, last_error = coalesce($2, last_error)
         WHERE simulation_id = $1 AND task_state IN {open}",
        open = crate::enums::TaskState::OPEN_SQL
    ))
    .bind::<BigInt, _>(simulation_id)
    .bind::<Nullable<Text>, _>(last_error)
    .execute(conn)
    .await?)
}
