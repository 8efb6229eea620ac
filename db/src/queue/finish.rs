//! Ending a simulation once its tasks have all ended (`PENDING`/`RUNNING → MERGING`,
//! `COMPLETED` or `FAILED`), and the final merge (`MERGING → COMPLETED`), which writes the
//! final pages from the running sums (`results::write_final_pages`).

use super::damaged::fail_damaged;
use crate::error::{DbError, DbResult};
use crate::notify;
use crate::pool::Conn;
use crate::prepared::prepared;
use diesel::sql_types::{Array, BigInt, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, RunQueryDsl};

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
/// listed simulations, taken by an earlier statement (as [`mark_completed`](super::mark_completed) does).
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

/// Finalizes each of `simulations`, which a transition the caller has committed just made
/// `MERGING`, each on its own: one whose stored data is damaged ends `FAILED` ([`finalize`]),
/// and any other error (a lost connection) is logged and left to the stale-merge sweep
/// ([`super::finalize_stale`]). Neither stops the others, nor undoes the caller's transition:
/// the tasks it completed or failed stay so. Returns how many were finalized.
pub(crate) async fn finalize_each(
    conn: &mut Conn,
    simulations: impl IntoIterator<Item = i64>,
) -> usize {
    let mut n = 0;
    for sim in simulations {
        match finalize(conn, sim).await {
            Ok(true) => n += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(simulation = sim, error = %e, "cannot finish a merge"),
        }
    }
    n
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
