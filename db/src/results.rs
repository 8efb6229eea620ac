//! A simulation's results: what a page is (as a task produced it, and merged), the statistics
//! of the running sums, reading them back (the final pages once the simulation has ended,
//! otherwise the merge of the tasks done so far, computed from the running sums and marked
//! partial), and writing the final pages from the sums (`write_final_pages`, which the
//! queue's final merge and cancel call). Folding a task into the sums is [`crate::merge`].
//!
//! Per bin, each simulation page keeps `ΣN`, `ΣN·x` and `ΣN·x²` over the tasks folded so
//! far, weighted by each task's primaries `N` (summed pages keep `Σx` and `Σx²`; copies keep
//! the first task's values; concatenated pages keep each task's values apart; see
//! [`Aggregation`]). So the mean `ΣN·x / ΣN` and its standard error exist at any time.

use crate::aggregation::Aggregation;
use crate::codec::{self, sums::decode_sums};
use crate::error::{DbError, DbResult};
use crate::pool::Conn;
use crate::prepared::prepared;
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Integer, Jsonb, Nullable, SmallInt, Text};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};

mod final_pages;
pub use final_pages::{Combined, PageRows};

/// The end of a query of a simulation's (`$1`) final pages, in estimator and page order,
/// from the columns of [`StoredCombined`] on (`e` its estimators, `p` their pages, `s` the
/// simulation): how each page was combined, and `partial`: a canceled simulation's pages
/// hold what its completed tasks computed, so they are partial. Every reader of final pages
/// ends its query with this, so that the rule is written once.
pub(crate) const FINAL_PAGES: &str = "p.aggregation, p.tasks_merged, p.primaries,
         s.job_state = 'CANCELED' AS partial
         FROM estimators e JOIN pages p ON p.estimator_id = e.id
              JOIN simulations s ON s.id = e.simulation_id
         WHERE e.simulation_id = $1 ORDER BY e.name, p.page_number";

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
    /// How tasks combine into this page.
    pub aggregation: Aggregation,
    /// The values, flat, in the simulator's order (see [`PageMeta::metadata`]'s
    /// `data_order`: `F` means the first axis varies fastest, `C` the last).
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
    /// How the tasks were combined.
    pub aggregation: Aggregation,
    /// Per-bin values: the primaries-weighted mean, the sum, the first task's copy or the
    /// concatenation (see [`Aggregation`]).
    pub values: Vec<f64>,
    /// Per-bin standard error; `None` when fewer than two tasks contributed.
    pub errors: Option<Vec<f64>>,
    /// The tasks merged into the page (so far, for a partial page); `None` for a final page
    /// written before pages kept it.
    pub tasks_merged: Option<i32>,
    /// The primaries those tasks really simulated, summed; `None` as for `tasks_merged`.
    pub primaries: Option<i64>,
    /// True while the simulation is still running (results from the tasks done so far).
    pub partial: bool,
    /// Set when this page's stored bytes do not decode: what is damaged. Its values and
    /// errors are then empty; the other pages are unaffected.
    pub damaged: Option<String>,
}

/// A final page's description as stored (`pages` columns, and the estimator's metadata
/// selected `AS estimator_metadata`), embedded in the rows of the queries that read pages.
#[derive(QueryableByName)]
pub(crate) struct StoredMeta {
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
    #[diesel(sql_type = Jsonb)]
    metadata: serde_json::Value,
    #[diesel(sql_type = Jsonb)]
    estimator_metadata: serde_json::Value,
}

impl From<StoredMeta> for PageMeta {
    fn from(m: StoredMeta) -> Self {
        PageMeta {
            name: m.page_name,
            dimension: m.page_dimension,
            axes: m.axes,
            value_name: m.value_name,
            value_unit: m.value_unit,
            metadata: m.metadata,
            estimator_metadata: m.estimator_metadata,
        }
    }
}

/// How a final page was combined, and whether it is partial, as [`FINAL_PAGES`] selects it;
/// embedded in the rows of the queries that read final pages.
#[derive(QueryableByName)]
pub(crate) struct StoredCombined {
    #[diesel(sql_type = Text)]
    aggregation: String,
    #[diesel(sql_type = Nullable<Integer>)]
    tasks_merged: Option<i32>,
    #[diesel(sql_type = Nullable<BigInt>)]
    primaries: Option<i64>,
    #[diesel(sql_type = Bool)]
    pub(crate) partial: bool,
}

impl From<&StoredCombined> for Combined {
    fn from(c: &StoredCombined) -> Self {
        Combined {
            aggregation: Aggregation::parse(&c.aggregation).unwrap_or_default(),
            tasks_merged: c.tasks_merged,
            primaries: c.primaries,
        }
    }
}

/// One row of `merge_accumulators`: a page's running sums.
#[derive(QueryableByName)]
pub(crate) struct AccRow {
    #[diesel(sql_type = Text)]
    pub(crate) estimator_name: String,
    #[diesel(sql_type = Integer)]
    pub(crate) page_number: i32,
    #[diesel(sql_type = Jsonb)]
    pub(crate) page_meta: serde_json::Value,
    #[diesel(sql_type = Text)]
    pub(crate) aggregation: String,
    #[diesel(sql_type = Integer)]
    pub(crate) tasks_merged: i32,
    #[diesel(sql_type = BigInt)]
    pub(crate) sum_n: i64,
    #[diesel(sql_type = Bytea)]
    pub(crate) sum_nx: Vec<u8>,
    #[diesel(sql_type = Bytea)]
    pub(crate) sum_nx2: Vec<u8>,
}

pub(crate) async fn accumulators(conn: &mut Conn, simulation_id: i64) -> DbResult<Vec<AccRow>> {
    Ok(prepared(
        diesel::sql_query(
            "SELECT estimator_name, page_number, page_meta, aggregation, tasks_merged, sum_n, sum_nx, sum_nx2
             FROM merge_accumulators WHERE simulation_id = $1 ORDER BY estimator_name, page_number",
        )
        .bind::<BigInt, _>(simulation_id),
    )
    .load(conn)
    .await?)
}

/// The stored values of concatenated pages, per task: `(estimator, page, blob)` in task order.
pub(crate) type ConcatParts = Vec<(String, i32, Vec<u8>)>;

pub(crate) async fn concat_parts(conn: &mut Conn, simulation_id: i64) -> DbResult<ConcatParts> {
    #[derive(QueryableByName)]
    struct Part {
        #[diesel(sql_type = Text)]
        estimator_name: String,
        #[diesel(sql_type = Integer)]
        page_number: i32,
        #[diesel(sql_type = Bytea)]
        values_data: Vec<u8>,
    }
    let rows: Vec<Part> = diesel::sql_query(
        "SELECT r.estimator_name, r.page_number, r.values_data
         FROM task_results r JOIN tasks t ON t.id = r.task_id
         WHERE r.simulation_id = $1 ORDER BY r.estimator_name, r.page_number, t.task_index",
    )
    .bind::<BigInt, _>(simulation_id)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.estimator_name, r.page_number, r.values_data))
        .collect())
}

/// A [`DbError::Corrupt`] that names the page it is about.
pub(crate) fn on_page(e: DbError, estimator: &str, page: i32) -> DbError {
    match e {
        DbError::Corrupt(m) => DbError::Corrupt(format!("page {page} of {estimator}: {m}")),
        other => other,
    }
}

/// The rule stored with a page's sums.
pub(crate) fn rule_of(acc: &AccRow) -> DbResult<Aggregation> {
    Aggregation::parse(&acc.aggregation).ok_or_else(|| {
        DbError::Corrupt(format!(
            "stored sums of page {} of {} name an unknown aggregation {:?}",
            acc.page_number, acc.estimator_name, acc.aggregation
        ))
    })
}

/// A page's merged values and, where the rule has one, their standard error. A damaged
/// stored part is a [`DbError::Corrupt`] naming the page.
pub(crate) fn merged(acc: &AccRow, parts: &ConcatParts) -> DbResult<(Vec<f64>, Option<Vec<f64>>)> {
    merged_unnamed(acc, parts).map_err(|e| on_page(e, &acc.estimator_name, acc.page_number))
}

fn merged_unnamed(acc: &AccRow, parts: &ConcatParts) -> DbResult<(Vec<f64>, Option<Vec<f64>>)> {
    let rule = rule_of(acc)?;
    match rule {
        Aggregation::Copy => return Ok((decode_sums(&acc.sum_nx)?, None)),
        Aggregation::Concat => {
            let mut out = Vec::new();
            for (_, _, blob) in parts
                .iter()
                .filter(|(e, n, _)| *e == acc.estimator_name && *n == acc.page_number)
            {
                out.extend(decode_sums(blob)?);
            }
            return Ok((out, None));
        }
        Aggregation::Mean | Aggregation::Sum => {}
    }
    let s1 = decode_sums(&acc.sum_nx)?;
    let s2 = decode_sums(&acc.sum_nx2)?;
    if s1.len() != s2.len() {
        return Err(DbError::Corrupt(format!(
            "stored sums of page {} of {} disagree: {} values, {} squares",
            acc.page_number,
            acc.estimator_name,
            s1.len(),
            s2.len()
        )));
    }
    let k = f64::from(acc.tasks_merged);
    if rule == Aggregation::Sum {
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

/// Every page of a simulation's results: the final pages once it is `COMPLETED`, otherwise
/// the merge of the tasks done so far (marked partial).
pub async fn read_all(conn: &mut Conn, simulation_id: i64) -> DbResult<Vec<ResultPage>> {
    let accs = accumulators(conn, simulation_id).await?;
    if !accs.is_empty() {
        let parts = if accs
            .iter()
            .any(|a| a.aggregation == Aggregation::Concat.as_str())
        {
            concat_parts(conn, simulation_id).await?
        } else {
            Vec::new()
        };
        return accs
            .iter()
            .map(|a| {
                let (values, errors, damaged) = match merged(a, &parts) {
                    Ok((v, e)) => (v, e, None),
                    Err(DbError::Corrupt(why)) => (Vec::new(), None, Some(why)),
                    Err(e) => return Err(e),
                };
                Ok(ResultPage {
                    estimator: a.estimator_name.clone(),
                    page_number: a.page_number,
                    meta: serde_json::from_value(a.page_meta.clone()).unwrap_or_default(),
                    aggregation: Aggregation::parse(&a.aggregation).unwrap_or_default(),
                    values,
                    errors,
                    tasks_merged: Some(a.tasks_merged),
                    primaries: Some(a.sum_n),
                    partial: true,
                    damaged,
                })
            })
            .collect();
    }
    #[derive(QueryableByName)]
    struct PageRow {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Integer)]
        page_number: i32,
        #[diesel(embed)]
        meta: StoredMeta,
        #[diesel(sql_type = Bytea)]
        values_data: Vec<u8>,
        #[diesel(sql_type = Nullable<Bytea>)]
        errors_data: Option<Vec<u8>>,
        #[diesel(embed)]
        combined: StoredCombined,
    }
    let rows: Vec<PageRow> = diesel::sql_query(format!(
        "SELECT e.name, e.metadata AS estimator_metadata, p.page_number, p.page_name, p.page_dimension,
                p.axes, p.value_name, p.value_unit, p.values_data, p.errors_data, p.metadata,
                {FINAL_PAGES}"
    ))
    .bind::<BigInt, _>(simulation_id)
    .load(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            let decoded = codec::decode(&r.values_data).and_then(|v| {
                let e = r.errors_data.as_deref().map(codec::decode).transpose()?;
                Ok((v, e))
            });
            let (values, errors, damaged) = match decoded {
                Ok((v, e)) => (v, e, None),
                Err(e) => {
                    let why = on_page(codec::corrupt("page", e), &r.name, r.page_number);
                    (Vec::new(), None, Some(why.to_string()))
                }
            };
            let combined = Combined::from(&r.combined);
            Ok(ResultPage {
                aggregation: combined.aggregation,
                values,
                errors,
                damaged,
                estimator: r.name,
                page_number: r.page_number,
                meta: r.meta.into(),
                tasks_merged: combined.tasks_merged,
                primaries: combined.primaries,
                partial: r.combined.partial,
            })
        })
        .collect()
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
    let mut rows = PageRows::default();
    for a in &accs {
        let meta: PageMeta = serde_json::from_value(a.page_meta.clone()).unwrap_or_default();
        let (mean, err) = merged(a, &parts)?;
        let Some(est) = ests.iter().find(|e| e.name == a.estimator_name) else {
            continue;
        };
        rows.push(
            est.id,
            a.page_number,
            meta,
            Combined {
                aggregation: rule_of(a)?,
                tasks_merged: Some(a.tasks_merged),
                primaries: Some(a.sum_n),
            },
            &mean,
            err.as_deref(),
        )?;
    }
    rows.insert(conn).await?;
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
