//! Results: folding a completed task's pages into the simulation's running sums, the final
//! merge into estimators and pages, and reading them back (final, or partial while running).
//!
//! Per bin, each simulation page keeps `ΣN`, `ΣN·x` and `ΣN·x²` over the tasks folded so
//! far, weighted by each task's primaries `N` (pages holding totals keep `Σx` and `Σx²`
//! instead, and are summed). So the mean `ΣN·x / ΣN` and its standard error exist at any
//! time, and the final merge costs O(pages), not O(tasks × pages). The fold happens in the
//! same transaction as the task's guarded completion, so a retried task is never counted twice.

use crate::codec;
use crate::error::{DbError, DbResult};
use crate::notify;
use crate::pool::Conn;
use crate::queue::{self, Lease};
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Integer, Jsonb, Nullable, SmallInt, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

/// What describes a page, apart from its values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PageMeta {
    /// Page title, e.g. "DOSE".
    pub name: String,
    /// 0, 1, 2 or 3.
    pub dimension: i16,
    /// One entry per dimension: name, unit, bins, min, max (free-form JSON).
    pub axes: serde_json::Value,
    /// Quantity name, e.g. "dose".
    pub value_name: String,
    /// Quantity unit, e.g. "Gy/primary".
    pub value_unit: String,
    /// Anything else the simulator said about the page.
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// What the simulator said about the whole estimator (kept from the first page folded).
    #[serde(default)]
    pub estimator_metadata: serde_json::Value,
}

/// One page of one task's results, as the simulator produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPage {
    /// Estimator name, e.g. "z_profile_".
    pub estimator: String,
    /// Page number within the estimator.
    pub page_number: i32,
    /// Description.
    pub meta: PageMeta,
    /// True when values are totals (summed over tasks) rather than per primary (averaged).
    pub is_total: bool,
    /// The values.
    pub values: Vec<f64>,
}

/// A merged page: the mean per bin and, with two or more tasks, its standard error.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultPage {
    /// Estimator name.
    pub estimator: String,
    /// Page number.
    pub page_number: i32,
    /// Description.
    pub meta: PageMeta,
    /// Per-bin mean (or sum, for totals).
    pub values: Vec<f64>,
    /// Per-bin standard error; `None` when fewer than two tasks contributed.
    pub errors: Option<Vec<f64>>,
    /// Tasks merged into it.
    pub tasks_merged: i32,
    /// True while the simulation is still running (results from the tasks done so far).
    pub partial: bool,
}

#[derive(QueryableByName)]
struct AccRow {
    #[diesel(sql_type = Text)]
    estimator_name: String,
    #[diesel(sql_type = Integer)]
    page_number: i32,
    #[diesel(sql_type = Jsonb)]
    page_meta: serde_json::Value,
    #[diesel(sql_type = Bool)]
    is_total: bool,
    #[diesel(sql_type = Integer)]
    tasks_merged: i32,
    #[diesel(sql_type = BigInt)]
    sum_n: i64,
    #[diesel(sql_type = Bytea)]
    sum_nx: Vec<u8>,
    #[diesel(sql_type = Bytea)]
    sum_nx2: Vec<u8>,
}

fn codec_err(what: &str, e: codec::CodecError) -> DbError {
    DbError::Invalid(format!("stored {what} cannot be decoded: {e}"))
}

async fn accumulators(conn: &mut Conn, simulation_id: i64) -> DbResult<Vec<AccRow>> {
    Ok(diesel::sql_query(
        "SELECT estimator_name, page_number, page_meta, is_total, tasks_merged, sum_n, sum_nx, sum_nx2
         FROM merge_accumulators WHERE simulation_id = $1 ORDER BY estimator_name, page_number",
    )
    .bind::<BigInt, _>(simulation_id)
    .load(conn)
    .await?)
}

/// Folds one task's pages into the simulation's sums. Call inside the transaction that
/// completed the task. Serialises concurrent folds of one simulation on its row.
async fn fold(
    conn: &mut Conn,
    simulation_id: i64,
    primaries: i64,
    pages: &[TaskPage],
) -> DbResult<()> {
    if pages.is_empty() {
        return Ok(());
    }
    if primaries <= 0 {
        return Err(DbError::Invalid(format!(
            "a task with results must have simulated primaries, not {primaries}"
        )));
    }
    diesel::sql_query("SELECT 1 FROM simulations WHERE id = $1 FOR NO KEY UPDATE")
        .bind::<BigInt, _>(simulation_id)
        .execute(conn)
        .await?;
    let existing = accumulators(conn, simulation_id).await?;
    let n = primaries as f64;
    let mut names = Vec::with_capacity(pages.len());
    let mut numbers = Vec::with_capacity(pages.len());
    let mut metas = Vec::with_capacity(pages.len());
    let mut totals = Vec::with_capacity(pages.len());
    let mut nx_blobs = Vec::with_capacity(pages.len());
    let mut nx2_blobs = Vec::with_capacity(pages.len());
    for p in pages {
        let old = existing
            .iter()
            .find(|a| a.estimator_name == p.estimator && a.page_number == p.page_number);
        let (mut nx, mut nx2) = match old {
            Some(a) => (
                codec::decode(&a.sum_nx).map_err(|e| codec_err("sums", e))?,
                codec::decode(&a.sum_nx2).map_err(|e| codec_err("sums", e))?,
            ),
            None => (vec![0.0; p.values.len()], vec![0.0; p.values.len()]),
        };
        if nx.len() != p.values.len() || nx2.len() != p.values.len() {
            return Err(DbError::Invalid(format!(
                "page {} of {} has {} values, but earlier tasks gave {}",
                p.page_number,
                p.estimator,
                p.values.len(),
                nx.len()
            )));
        }
        if old.is_some_and(|a| a.is_total != p.is_total) {
            return Err(DbError::Invalid(format!(
                "page {} of {} changed between totals and per-primary values",
                p.page_number, p.estimator
            )));
        }
        let w = if p.is_total { 1.0 } else { n };
        for ((s1, s2), &x) in nx.iter_mut().zip(nx2.iter_mut()).zip(&p.values) {
            *s1 += w * x;
            *s2 += w * x * x;
        }
        names.push(p.estimator.as_str());
        numbers.push(p.page_number);
        metas.push(
            serde_json::to_value(match old {
                Some(a) => {
                    serde_json::from_value(a.page_meta.clone()).unwrap_or_else(|_| p.meta.clone())
                }
                None => p.meta.clone(),
            })
            .map_err(|e| DbError::Invalid(e.to_string()))?,
        );
        totals.push(p.is_total);
        nx_blobs.push(codec::encode(&nx).map_err(|e| codec_err("sums", e))?);
        nx2_blobs.push(codec::encode(&nx2).map_err(|e| codec_err("sums", e))?);
    }
    diesel::sql_query(
        "INSERT INTO merge_accumulators
             (simulation_id, estimator_name, page_number, page_meta, is_total, tasks_merged, sum_n, sum_nx, sum_nx2)
         SELECT $1, u.name, u.num, u.meta, u.total, 1, $2, u.nx, u.nx2
         FROM unnest($3::text[], $4::int[], $5::jsonb[], $6::bool[], $7::bytea[], $8::bytea[])
              AS u(name, num, meta, total, nx, nx2)
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
    .bind::<Array<Bool>, _>(&totals)
    .bind::<Array<Bytea>, _>(&nx_blobs)
    .bind::<Array<Bytea>, _>(&nx2_blobs)
    .execute(conn)
    .await?;
    Ok(())
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
    let merging = retry_transient!({
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
            fold(conn, simulation_id, simulated_primaries, pages).await?;
            queue::finish_simulations(conn, &[simulation_id]).await
        })
        .await
    })?;
    for sim in merging {
        finalize(conn, sim).await?;
    }
    Ok(())
}

fn merged(acc: &AccRow) -> DbResult<(Vec<f64>, Option<Vec<f64>>)> {
    let s1 = codec::decode(&acc.sum_nx).map_err(|e| codec_err("sums", e))?;
    let s2 = codec::decode(&acc.sum_nx2).map_err(|e| codec_err("sums", e))?;
    let k = f64::from(acc.tasks_merged);
    if acc.is_total {
        // Totals add up; the spread between tasks gives the standard error of the sum.
        let errors = (acc.tasks_merged >= 2).then(|| {
            s1.iter()
                .zip(&s2)
                .map(|(&sx, &sxx)| {
                    let var = ((sxx - sx * sx / k) / (k - 1.0)).max(0.0);
                    (k * var).sqrt()
                })
                .collect()
        });
        return Ok((s1, errors));
    }
    let n = acc.sum_n as f64;
    if n <= 0.0 {
        return Ok((vec![0.0; s1.len()], None));
    }
    let mean: Vec<f64> = s1.iter().map(|&sx| sx / n).collect();
    // Standard error of a primaries-weighted mean of k task estimates.
    let errors = (acc.tasks_merged >= 2).then(|| {
        s1.iter()
            .zip(&s2)
            .map(|(&sx, &sxx)| (((sxx - sx * sx / n) / ((k - 1.0) * n)).max(0.0)).sqrt())
            .collect()
    });
    Ok((mean, errors))
}

/// Writes the final estimators and pages of a `MERGING` simulation from its sums and marks
/// it `COMPLETED`, all in one transaction. Returns false when it was not `MERGING`.
pub async fn finalize(conn: &mut Conn, simulation_id: i64) -> DbResult<bool> {
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
        let accs = accumulators(conn, simulation_id).await?;
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
            .map(|v| if v.is_null() { serde_json::json!({}) } else { v })
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
        for a in &accs {
            let meta: PageMeta = serde_json::from_value(a.page_meta.clone()).unwrap_or_default();
            let (mean, err) = merged(a)?;
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
            values.push(codec::encode(&mean).map_err(|e| codec_err("page", e))?);
            errors.push(match err {
                Some(e) => Some(codec::encode(&e).map_err(|e| codec_err("page", e))?),
                None => None,
            });
            metas.push(meta.metadata);
        }
        diesel::sql_query(
            "INSERT INTO pages (estimator_id, page_number, page_name, page_dimension, axes, value_name,
                                value_unit, value_count, values_data, errors_data, metadata)
             SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::smallint[], $5::jsonb[],
                                  $6::text[], $7::text[], $8::int[], $9::bytea[], $10::bytea[], $11::jsonb[])",
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
        .execute(conn)
        .await?;
        diesel::sql_query("DELETE FROM merge_accumulators WHERE simulation_id = $1")
            .bind::<BigInt, _>(simulation_id)
            .execute(conn)
            .await?;
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
    let mut n = 0;
    for id in ids {
        if finalize(conn, id.id).await? {
            n += 1;
        }
    }
    Ok(n)
}

/// Every page of a simulation's results: the final pages once it is `COMPLETED`, otherwise
/// the merge of the tasks done so far (marked partial).
pub async fn read_all(conn: &mut Conn, simulation_id: i64) -> DbResult<Vec<ResultPage>> {
    let accs = accumulators(conn, simulation_id).await?;
    if !accs.is_empty() {
        return accs
            .iter()
            .map(|a| {
                let (values, errors) = merged(a)?;
                Ok(ResultPage {
                    estimator: a.estimator_name.clone(),
                    page_number: a.page_number,
                    meta: serde_json::from_value(a.page_meta.clone()).unwrap_or_default(),
                    values,
                    errors,
                    tasks_merged: a.tasks_merged,
                    partial: true,
                })
            })
            .collect();
    }
    #[derive(QueryableByName)]
    struct PageRow {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Jsonb)]
        estimator_metadata: serde_json::Value,
        #[diesel(sql_type = Integer)]
        page_number: i32,
        #[diesel(sql_type = Text)]
        page_name: String,
        #[diesel(sql_type = SmallInt)]
        page_dimension: i16,
        #[diesel(sql_type = Jsonb)]
        axes: serde_json::Value,
        #[diesel(sql_type = Text)]
        value_name: String,
        #[diesel(sql_type = Text)]
        value_unit: String,
        #[diesel(sql_type = Bytea)]
        values_data: Vec<u8>,
        #[diesel(sql_type = Nullable<Bytea>)]
        errors_data: Option<Vec<u8>>,
        #[diesel(sql_type = Jsonb)]
        metadata: serde_json::Value,
    }
    let rows: Vec<PageRow> = diesel::sql_query(
        "SELECT e.name, e.metadata AS estimator_metadata, p.page_number, p.page_name, p.page_dimension,
                p.axes, p.value_name, p.value_unit, p.values_data, p.errors_data, p.metadata
         FROM estimators e JOIN pages p ON p.estimator_id = e.id
         WHERE e.simulation_id = $1 ORDER BY e.name, p.page_number",
    )
    .bind::<BigInt, _>(simulation_id)
    .load(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(ResultPage {
                values: codec::decode(&r.values_data).map_err(|e| codec_err("page", e))?,
                errors: match &r.errors_data {
                    Some(b) => Some(codec::decode(b).map_err(|e| codec_err("page", e))?),
                    None => None,
                },
                estimator: r.name,
                page_number: r.page_number,
                meta: PageMeta {
                    name: r.page_name,
                    dimension: r.page_dimension,
                    axes: r.axes,
                    value_name: r.value_name,
                    value_unit: r.value_unit,
                    metadata: r.metadata,
                    estimator_metadata: r.estimator_metadata,
                },
                tasks_merged: 0,
                partial: false,
            })
        })
        .collect()
}
