//! The merge: folding a completed task's pages into its simulation's running sums (in the
//! same transaction as the task's guarded completion, so a retried task is never counted
//! twice), and the final merge into estimators and pages, once when the last task ends (and,
//! for a canceled simulation, of the tasks it completed). The final merge costs O(pages), not
//! O(tasks × pages). Damaged stored sums end only their own simulation
//! ([`queue::fail_damaged`]).

use crate::aggregation::Aggregation;
use crate::codec::{
    self,
    sums::{add_sums, decode_sums, encode_sums, stored_count},
};
use crate::error::{DbError, DbResult};
use crate::notify;
use crate::pool::Conn;
use crate::prepared::prepared;
use crate::queue::{self, Lease};
use crate::results::{accumulators, concat_parts, merged, on_page, rule_of, PageMeta, TaskPage};
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Integer, Jsonb, Nullable, SmallInt, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, RunQueryDsl};

/// Folds one task's (non-empty) pages into the simulation's sums, and notifies the
/// simulation's watchers when the transaction commits. Call inside the transaction that
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
    // One round trip: the running sums (none on the first fold), whether other tasks are
    // still open, and the notification (sent at commit). The one-row subquery is the outer
    // side of the join, so it is evaluated exactly once.
    let rows: Vec<Row> = prepared(
        diesel::sql_query(format!(
            "SELECT n.open_tasks, n.notified, a.estimator_name, a.page_number, a.aggregation,
                    a.sum_nx, a.sum_nx2
             FROM (SELECT EXISTS (SELECT 1 FROM tasks t WHERE t.simulation_id = $1
                                    AND t.task_state IN {open}) AS open_tasks,
                          pg_notify($2, $1::text) AS notified) n
             LEFT JOIN merge_accumulators a ON a.simulation_id = $1",
            open = crate::enums::TaskState::OPEN_SQL
        ))
        .bind::<BigInt, _>(simulation_id)
        .bind::<Text, _>(notify::SIMULATION_EVENTS),
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
            Aggregation::Concat => {
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
/// A lost lease is a conflict (see [`queue::is_lease_lost`]) and folds nothing.
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
                return Ok((simulation_id, false, merging));
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
            Ok::<_, DbError>((simulation_id, true, merging))
        })
        .await
    });
    let (simulation_id, notified, merging) = match outcome {
        Ok(done) => done,
        // The simulation's stored sums are damaged: this completion can never be folded.
        // Rather than leave the task to expire and run again (and again), the simulation
        // ends FAILED with the damage named.
        Err(DbError::Corrupt(why)) => {
            let simulation_id = queue::simulation_of(conn, lease.task_id).await?;
            queue::fail_damaged(conn, simulation_id, Some(&lease), &why).await?;
            return Err(DbError::Corrupt(why));
        }
        Err(e) => return Err(e),
    };
    if !notified {
        queue::notify_simulations(conn, &[simulation_id]).await;
    }
    for sim in merging {
        finalize(conn, sim).await?;
    }
    Ok(())
}

/// Writes the final estimators and pages of a `MERGING` simulation from its sums and marks
/// it `COMPLETED`, all in one transaction. Returns false when it was not `MERGING`. When its
/// stored sums are damaged it ends `FAILED` instead, the damage named in its `merge` log
/// ([`queue::fail_damaged`]), and the [`DbError::Corrupt`] is returned.
pub async fn finalize(conn: &mut Conn, simulation_id: i64) -> DbResult<bool> {
    match finalize_tx(conn, simulation_id).await {
        Err(DbError::Corrupt(why)) => {
            queue::fail_damaged(conn, simulation_id, None, &why).await?;
            Err(DbError::Corrupt(why))
        }
        other => other,
    }
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
        write_final_pages(conn, simulation_id).await?;
        diesel::sql_query(
            "UPDATE simulations SET job_state = 'COMPLETED', end_time = now(), update_time = now()
             WHERE id = $1 AND job_state = 'MERGING'",
        )
        .bind::<BigInt, _>(simulation_id)
        .execute(conn)
        .await?;
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<Text, _>(notify::SIMULATION_EVENTS)
            .bind::<Text, _>(simulation_id.to_string())
            .execute(conn)
            .await?;
        Ok(true)
    })
    .await
}

/// Writes a simulation's final estimators and pages from its running sums (and phase-space
/// parts), then deletes those. Call inside a transaction that holds the simulation's row
/// lock; the caller sets the final state: `COMPLETED` after a merge, `CANCELED` when a cancel
/// keeps what its completed tasks computed. A damaged stored part is a [`DbError::Corrupt`]
/// naming the page, and nothing is written.
pub(crate) async fn write_final_pages(conn: &mut Conn, simulation_id: i64) -> DbResult<()> {
    let accs = accumulators(conn, simulation_id).await?;
    let parts = concat_parts(conn, simulation_id).await?;
    let mut estimator_names: Vec<&str> = accs.iter().map(|a| a.estimator_name.as_str()).collect();
    estimator_names.dedup();
    let estimator_meta: Vec<serde_json::Value> = estimator_names
        .iter()
        .map(|name| {
            accs.iter()
                .find(|a| a.estimator_name == *name)
                .and_then(|a| a.page_meta.get("estimator_metadata").cloned())
                .unwrap_or(serde_json::Value::Null)
        })
        .map(|v| {
            if v.is_null() {
                serde_json::json!({})
            } else {
                v
            }
        })
        .collect();
    #[derive(QueryableByName)]
    struct Est {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Text)]
        name: String,
    }
    let ests: Vec<Est> = diesel::sql_query(
        "INSERT INTO estimators (simulation_id, name, metadata)
         SELECT $1, u.name, u.meta FROM unnest($2::text[], $3::jsonb[]) AS u(name, meta)
         RETURNING id, name",
    )
    .bind::<BigInt, _>(simulation_id)
    .bind::<Array<Text>, _>(&estimator_names)
    .bind::<Array<Jsonb>, _>(&estimator_meta)
    .load(conn)
    .await?;
    let mut est_ids = Vec::new();
    let mut numbers = Vec::new();
    let mut names = Vec::new();
    let mut dims = Vec::new();
    let mut axes = Vec::new();
    let mut vnames = Vec::new();
    let mut vunits = Vec::new();
    let mut counts = Vec::new();
    let mut values = Vec::new();
    let mut errors: Vec<Option<Vec<u8>>> = Vec::new();
    let mut metas = Vec::new();
    let mut rules = Vec::new();
    for a in &accs {
        let meta: PageMeta = serde_json::from_value(a.page_meta.clone()).unwrap_or_default();
        let (mean, err) = merged(a, &parts)?;
        rules.push(rule_of(a)?.as_str());
        let Some(est) = ests.iter().find(|e| e.name == a.estimator_name) else {
            continue;
        };
        est_ids.push(est.id);
        numbers.push(a.page_number);
        names.push(meta.name);
        dims.push(meta.dimension);
        axes.push(meta.axes);
        vnames.push(meta.value_name);
        vunits.push(meta.value_unit);
        counts.push(mean.len() as i32);
        values.push(codec::encode(&mean).map_err(|e| codec::corrupt("page", e))?);
        errors.push(match err {
            Some(e) => Some(codec::encode(&e).map_err(|e| codec::corrupt("page", e))?),
            None => None,
        });
        metas.push(meta.metadata);
    }
    diesel::sql_query(
        "INSERT INTO pages (estimator_id, page_number, page_name, page_dimension, axes, value_name,
                            value_unit, value_count, values_data, errors_data, metadata, aggregation)
         SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::smallint[], $5::jsonb[],
                              $6::text[], $7::text[], $8::int[], $9::bytea[], $10::bytea[], $11::jsonb[],
                              $12::text[])",
    )
    .bind::<Array<BigInt>, _>(&est_ids)
    .bind::<Array<Integer>, _>(&numbers)
    .bind::<Array<Text>, _>(&names)
    .bind::<Array<SmallInt>, _>(&dims)
    .bind::<Array<Jsonb>, _>(&axes)
    .bind::<Array<Text>, _>(&vnames)
    .bind::<Array<Text>, _>(&vunits)
    .bind::<Array<Integer>, _>(&counts)
    .bind::<Array<Bytea>, _>(&values)
    .bind::<Array<Nullable<Bytea>>, _>(&errors)
    .bind::<Array<Jsonb>, _>(&metas)
    .bind::<Array<Text>, _>(&rules)
    .execute(conn)
    .await?;
    diesel::sql_query("DELETE FROM merge_accumulators WHERE simulation_id = $1")
        .bind::<BigInt, _>(simulation_id)
        .execute(conn)
        .await?;
    diesel::sql_query("DELETE FROM task_results WHERE simulation_id = $1")
        .bind::<BigInt, _>(simulation_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Finalizes simulations left `MERGING` for longer than `stale_secs` (their worker died
/// between the last completion and the final merge). Returns how many were finalized.
pub async fn finalize_stale(conn: &mut Conn, stale_secs: f64) -> DbResult<usize> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let ids: Vec<Id> = diesel::sql_query(
        "SELECT id FROM simulations WHERE job_state = 'MERGING'
           AND update_time < now() - make_interval(secs => $1)",
    )
    .bind::<diesel::sql_types::Double, _>(stale_secs)
    .load(conn)
    .await?;
    // Each simulation on its own: one whose data is damaged ends FAILED (see [`finalize`]),
    // and no error stops the others.
    let mut n = 0;
    for id in ids {
        match finalize(conn, id.id).await {
            Ok(true) => n += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(simulation = id.id, error = %e, "cannot finish a merge"),
        }
    }
    Ok(n)
}
