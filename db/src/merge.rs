//! The merge: folding a completed task's pages into its simulation's running sums, in the
//! same transaction as the task's guarded completion ([`queue::mark_completed`]), so a
//! retried task is never counted twice. This module sits above the queue: it calls the
//! queue's transitions, and the queue never calls it. The final merge (`MERGING →
//! COMPLETED`, [`queue::finalize`]) is a queue transition that writes the final pages with
//! `results::write_final_pages`; it costs O(pages), not O(tasks × pages). Damaged
//! stored sums end only their own simulation ([`queue::fail_damaged`]).

use crate::aggregation::Aggregation;
use crate::codec::sums::{add_sums, decode_sums, encode_sums, stored_count};
use crate::codec::DEFAULT_MAX_VALUES;
use crate::error::{DbError, DbResult};
use crate::notify;
use crate::pool::Conn;
use crate::prepared::prepared;
use crate::queue::{self, Lease};
use crate::results::{on_page, TaskPage};
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Integer, Jsonb, Nullable, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, RunQueryDsl};

/// Folds one task's (non-empty) pages into the simulation's sums. Call inside the transaction that
/// completed the task, after [`queue::mark_completed`] locked the simulation's row: that lock
/// serialises concurrent folds of one simulation, and this function's statements start after
/// it was granted, so they see every fold committed before (and no other fold can insert a
/// page's first sums meanwhile).
///
/// Returns whether the simulation still has pending or running tasks, as seen under the
/// lock. If so, the caller need not try to finish it: each of those tasks, when it ends,
/// takes the lock after this transaction commits and checks again.
async fn fold(
    conn: &mut Conn,
    simulation_id: i64,
    task_id: i64,
    primaries: i64,
    pages: &[TaskPage],
) -> DbResult<bool> {
    if primaries <= 0 {
        return Err(DbError::Invalid(format!(
            "a task with results must have simulated primaries, not {primaries}"
        )));
    }
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Bool)]
        open_tasks: bool,
        #[diesel(sql_type = Nullable<Text>)]
        estimator_name: Option<String>,
        #[diesel(sql_type = Nullable<Integer>)]
        page_number: Option<i32>,
        #[diesel(sql_type = Nullable<Text>)]
        aggregation: Option<String>,
        #[diesel(sql_type = Nullable<Bytea>)]
        sum_nx: Option<Vec<u8>>,
        #[diesel(sql_type = Nullable<Bytea>)]
        sum_nx2: Option<Vec<u8>>,
    }
    struct Sums {
        estimator_name: String,
        page_number: i32,
        aggregation: String,
        sum_nx: Vec<u8>,
        sum_nx2: Vec<u8>,
    }
    // One round trip: the running sums (none on the first fold) and whether other tasks are
    // still open. The one-row subquery is the outer side of the join, so it is evaluated
    // exactly once.
    let rows: Vec<Row> = prepared(
        diesel::sql_query(format!(
            "SELECT n.open_tasks, a.estimator_name, a.page_number, a.aggregation,
                    a.sum_nx, a.sum_nx2
             FROM (SELECT EXISTS (SELECT 1 FROM tasks t WHERE t.simulation_id = $1
                                    AND t.task_state IN {open}) AS open_tasks) n
             LEFT JOIN merge_accumulators a ON a.simulation_id = $1",
            open = crate::enums::TaskState::OPEN_SQL
        ))
        .bind::<BigInt, _>(simulation_id),
    )
    .load(conn)
    .await?;
    let open_tasks = rows.iter().any(|r| r.open_tasks);
    let existing: Vec<Sums> = rows
        .into_iter()
        .filter_map(|r| {
            Some(Sums {
                estimator_name: r.estimator_name?,
                page_number: r.page_number?,
                aggregation: r.aggregation?,
                sum_nx: r.sum_nx?,
                sum_nx2: r.sum_nx2?,
            })
        })
        .collect();
    for (i, p) in pages.iter().enumerate() {
        if pages[..i]
            .iter()
            .any(|q| q.estimator == p.estimator && q.page_number == p.page_number)
        {
            return Err(DbError::Invalid(format!(
                "page {} of {} appears twice in one task's results",
                p.page_number, p.estimator
            )));
        }
    }
    let n = primaries as f64;
    let mut names = Vec::with_capacity(pages.len());
    let mut numbers = Vec::with_capacity(pages.len());
    let mut metas = Vec::with_capacity(pages.len());
    let mut rules = Vec::with_capacity(pages.len());
    let mut nx_blobs = Vec::with_capacity(pages.len());
    let mut nx2_blobs = Vec::with_capacity(pages.len());
    // Concatenated pages: this task's own values, kept apart until the final merge.
    let mut concat_names = Vec::new();
    let mut concat_numbers = Vec::new();
    let mut concat_blobs = Vec::new();
    // Reused for every page: fresh buffers of a page's size would cost page faults.
    let (mut nx, mut nx2) = (Vec::new(), Vec::new());
    for p in pages {
        let old = existing
            .iter()
            .find(|a| a.estimator_name == p.estimator && a.page_number == p.page_number);
        if let Some(a) = old.filter(|a| a.aggregation != p.aggregation.as_str()) {
            return Err(DbError::Invalid(format!(
                "page {} of {} changed how tasks combine, from {} to {}",
                p.page_number, p.estimator, a.aggregation, p.aggregation
            )));
        }
        nx.clear();
        nx2.clear();
        match p.aggregation {
            Aggregation::Mean | Aggregation::Sum => {
                let w = if p.aggregation == Aggregation::Sum {
                    1.0
                } else {
                    n
                };
                nx.extend(p.values.iter().map(|&x| w * x));
                nx2.extend(p.values.iter().map(|&x| w * x * x));
                if let Some(a) = old {
                    let mismatch = |stored: usize| {
                        DbError::Invalid(format!(
                            "page {} of {} has {} values, but earlier tasks gave {stored}",
                            p.page_number,
                            p.estimator,
                            p.values.len(),
                        ))
                    };
                    let named = |e| on_page(e, &p.estimator, p.page_number);
                    for (bytes, sums) in [(&a.sum_nx, &mut nx), (&a.sum_nx2, &mut nx2)] {
                        let stored = stored_count(bytes).map_err(named)?;
                        if stored != sums.len() {
                            return Err(mismatch(stored));
                        }
                        add_sums(bytes, sums).map_err(named)?;
                    }
                }
            }
            // The first task's values stay; later tasks only count.
            Aggregation::Copy => match old {
                Some(a) => nx.extend(
                    decode_sums(&a.sum_nx).map_err(|e| on_page(e, &p.estimator, p.page_number))?,
                ),
                None => nx.extend_from_slice(&p.values),
            },
            // The accumulator of a concatenated page keeps one number: how many values the
            // tasks folded so far gave. The merged page must stay readable, so a task whose
            // part would take it over a page's limit is refused (the tasks before it stay).
            Aggregation::Concat => {
                let before = match old {
                    Some(a) => decode_sums(&a.sum_nx)
                        .map_err(|e| on_page(e, &p.estimator, p.page_number))?
                        .as_slice()
                        .first()
                        .map_or(0, |&n| n as usize),
                    None => 0,
                };
                let total = before + p.values.len();
                if total > DEFAULT_MAX_VALUES {
                    return Err(DbError::Invalid(format!(
                        "page {} of {} concatenates the tasks' records: this task's {} values \
                         would make {total}, more than a page holds ({DEFAULT_MAX_VALUES}); \
                         the {before} values of the tasks before it are kept",
                        p.page_number,
                        p.estimator,
                        p.values.len()
                    )));
                }
                nx.push(total as f64);
                concat_names.push(p.estimator.as_str());
                concat_numbers.push(p.page_number);
                concat_blobs.push(encode_sums(&p.values)?);
            }
        }
        names.push(p.estimator.as_str());
        numbers.push(p.page_number);
        // Used only when the page is new: an existing row keeps the first task's description.
        metas.push(serde_json::to_value(&p.meta).map_err(|e| DbError::Invalid(e.to_string()))?);
        rules.push(p.aggregation.as_str());
        nx_blobs.push(encode_sums(&nx)?);
        nx2_blobs.push(encode_sums(&nx2)?);
    }
    if !concat_blobs.is_empty() {
        prepared(
            diesel::sql_query(
                "INSERT INTO task_results
                     (simulation_id, task_id, estimator_name, page_number, primaries, values_data)
                 SELECT $1, $2, u.name, u.num, $3, u.data
                 FROM unnest($4::text[], $5::int[], $6::bytea[]) AS u(name, num, data)",
            )
            .bind::<BigInt, _>(simulation_id)
            .bind::<BigInt, _>(task_id)
            .bind::<BigInt, _>(primaries)
            .bind::<Array<Text>, _>(&concat_names)
            .bind::<Array<Integer>, _>(&concat_numbers)
            .bind::<Array<Bytea>, _>(&concat_blobs),
        )
        .execute(conn)
        .await?;
    }
    // One statement for new and existing pages. (Measured: an UPDATE joined to the arrays,
    // plus an INSERT for new pages, is slower than this upsert.)
    prepared(
        diesel::sql_query(
            "INSERT INTO merge_accumulators
                 (simulation_id, estimator_name, page_number, page_meta, aggregation, tasks_merged, sum_n, sum_nx, sum_nx2)
             SELECT $1, u.name, u.num, u.meta, u.rule, 1, $2, u.nx, u.nx2
             FROM unnest($3::text[], $4::int[], $5::jsonb[], $6::text[], $7::bytea[], $8::bytea[])
                  AS u(name, num, meta, rule, nx, nx2)
             ON CONFLICT (simulation_id, estimator_name, page_number) DO UPDATE SET
                 tasks_merged = merge_accumulators.tasks_merged + 1,
                 sum_n = merge_accumulators.sum_n + EXCLUDED.sum_n,
                 sum_nx = EXCLUDED.sum_nx, sum_nx2 = EXCLUDED.sum_nx2",
        )
        .bind::<BigInt, _>(simulation_id)
        .bind::<BigInt, _>(primaries)
        .bind::<Array<Text>, _>(&names)
        .bind::<Array<Integer>, _>(&numbers)
        .bind::<Array<Jsonb>, _>(&metas)
        .bind::<Array<Text>, _>(&rules)
        .bind::<Array<Bytea>, _>(&nx_blobs)
        .bind::<Array<Bytea>, _>(&nx2_blobs),
    )
    .execute(conn)
    .await?;
    Ok(open_tasks)
}

/// Completes a task and folds its pages into the simulation's sums in one transaction; when
/// it was the last task, also writes the final estimators and pages (see [`finalize`]).
/// A lost lease is a conflict (see [`queue::is_lease_lost`]) and folds nothing. Pages that
/// cannot be folded ([`DbError::Invalid`]: a page whose size or rule differs from earlier
/// tasks', or a concatenated page that would pass [`DEFAULT_MAX_VALUES`]) fail the task,
/// not retried, with the reason, and the error is returned.
pub async fn complete_with_results(
    conn: &mut Conn,
    lease: &Lease,
    simulated_primaries: i64,
    pages: &[TaskPage],
) -> DbResult<()> {
    let lease = lease.clone();
    let outcome = retry_transient!({
        conn.transaction(async |conn| {
            let done = queue::mark_completed(
                conn,
                &[queue::Completion {
                    lease: lease.clone(),
                    simulated_primaries,
                }],
            )
            .await?;
            let [(_, simulation_id), ..] = done[..] else {
                return Err(queue::lease_lost(&lease));
            };
            if pages.is_empty() {
                let merging = queue::finish_locked_simulations(conn, &[simulation_id]).await?;
                return Ok((simulation_id, merging));
            }
            let open_tasks = fold(
                conn,
                simulation_id,
                lease.task_id,
                simulated_primaries,
                pages,
            )
            .await?;
            let merging = if open_tasks {
                Vec::new()
            } else {
                queue::finish_locked_simulations(conn, &[simulation_id]).await?
            };
            Ok::<_, DbError>((simulation_id, merging))
        })
        .await
    });
    let (simulation_id, merging) = match outcome {
        Ok(done) => done,
        // The simulation's stored sums are damaged: this completion can never be folded.
        // Rather than leave the task to expire and run again (and again), the simulation
        // ends FAILED with the damage named.
        Err(DbError::Corrupt(why)) => {
            let simulation_id = queue::simulation_of(conn, lease.task_id).await?;
            queue::fail_damaged(conn, simulation_id, Some(&lease), &why).await?;
            return Err(DbError::Corrupt(why));
        }
        // The task's pages cannot be folded (they disagree with earlier tasks' pages, or
        // would make a page too large): it fails at once, with the reason, rather than stay
        // RUNNING until its lease expires and run again to the same end.
        Err(DbError::Invalid(why)) => {
            let message = format!("its results cannot be merged: {why}");
            queue::fail(conn, &lease, &message, false).await?;
            return Err(DbError::Invalid(why));
        }
        Err(e) => return Err(e),
    };
    notify::Announce::changed([simulation_id]).send(conn).await;
    queue::finalize_each(conn, merging).await;
    Ok(())
}

/// The final merge and the stale-merge sweep are queue transitions (`MERGING → COMPLETED`),
/// kept at their old paths.
pub use crate::queue::{finalize, finalize_stale};
