//! A simulation whose stored results do not decode ends `FAILED` (and never blocks anything).

use super::cancel::cancel_open_tasks;
use super::lease::{bind_lease, Id, Lease, HELD_SQL};
use crate::error::truncate;
use crate::error::{DbError, DbResult};
use crate::notify;
use crate::pool::Conn;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, RunQueryDsl};

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
                bind_lease!(
                    diesel::sql_query(format!(
                        "UPDATE tasks SET task_state = 'FAILED', last_error = $4, end_time = now(),
                         update_time = now(), lease_owner = NULL, lease_expires_at = NULL
                     WHERE {HELD_SQL}",
                    )),
                    lease
                )
                .bind::<Text, _>(&why)
                .execute(conn)
                .await?;
            }
            let why_canceled = "canceled: the simulation's stored results are damaged";
            cancel_open_tasks(conn, simulation_id, Some(why_canceled)).await?;
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
