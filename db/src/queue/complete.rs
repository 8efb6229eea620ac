//! Completing tasks (`RUNNING → COMPLETED`), alone or many in one transaction. A completion
//! with results goes through [`crate::merge::complete_with_results`], which folds them in
//! the same transaction.

use super::finish::{finalize_each, finish_locked_simulations};
use super::lease::{lease_lost, Lease};
use crate::error::{DbError, DbResult};
use crate::notify;
use crate::pool::Conn;
use crate::prepared::prepared;
use diesel::sql_types::{Array, BigInt, Integer, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, RunQueryDsl};

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
    finalize_each(conn, merging).await;
    Ok(done
        .iter()
        .map(|c| c.lease.task_id)
        .filter(|id| !completed.iter().any(|c| c.0 == *id))
        .collect())
}

/// The guarded transition `RUNNING → COMPLETED` for tasks whose lease is still held; returns
/// `(task id, simulation id)` of those completed. In the same statement it takes the row locks
/// of their simulations, in id order (as [`claim`](fn@super::claim) and [`finish_simulations`](super::finish_simulations) do), so the
/// caller's next statements see every completion committed before them. Call inside a
/// transaction that then calls [`finish_locked_simulations`].
pub async fn mark_completed(conn: &mut Conn, done: &[Completion]) -> DbResult<Vec<(i64, i64)>> {
    let (ids, attempts, owners) = super::lease::lease_arrays(done.iter().map(|c| &c.lease));
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

/// Completes one task; a lost lease is a conflict (see [`is_lease_lost`](super::is_lease_lost)).
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
