//! The metadata of a simulation's result pages, read without their values: what
//! `ListEstimators` shows. Final pages come from `estimators`/`pages`; while a simulation
//! runs, from the merge accumulators (partial).

use crate::aggregation::Aggregation;
use crate::error::DbResult;
use crate::pool::Conn;
use crate::results::{Combined, PageMeta, StoredCombined, StoredMeta};
use diesel::sql_types::{BigInt, Bool, Integer, Jsonb, Nullable, Text};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

/// One page's description, without its values.
#[derive(Debug, Clone, PartialEq)]
pub struct PageInfo {
    /// Estimator name.
    pub estimator: String,
    /// The simulator's output file of the estimator, when known.
    pub file_name: Option<String>,
    /// Page number within the estimator.
    pub page_number: i32,
    /// Description.
    pub meta: PageMeta,
    /// Number of values.
    pub value_count: i64,
    /// Whether standard errors exist for the page.
    pub has_errors: bool,
    /// How the tasks' values combine into the page.
    pub aggregation: Aggregation,
    /// The tasks merged into the page (so far, for a partial page); `None` for a final page
    /// written before pages kept it.
    pub tasks_merged: Option<i32>,
    /// The primaries those tasks really simulated, summed; `None` as for `tasks_merged`.
    pub primaries: Option<i64>,
}

/// The pages of a simulation, ordered by estimator and page number, and whether they are
/// partial: a merge of the tasks done so far, or the final pages of a canceled simulation
/// (the tasks it completed before the cancel). Empty when no task has produced results.
pub async fn list(conn: &mut Conn, simulation_id: i64) -> DbResult<(Vec<PageInfo>, bool)> {
    #[derive(QueryableByName)]
    struct AccRow {
        #[diesel(sql_type = Text)]
        estimator_name: String,
        #[diesel(sql_type = Integer)]
        page_number: i32,
        #[diesel(sql_type = Jsonb)]
        page_meta: serde_json::Value,
        #[diesel(sql_type = Integer)]
        tasks_merged: i32,
        #[diesel(sql_type = BigInt)]
        sum_n: i64,
        #[diesel(sql_type = Text)]
        aggregation: String,
    }
    let accs: Vec<AccRow> = diesel::sql_query(
        "SELECT estimator_name, page_number, page_meta, tasks_merged, sum_n, aggregation
         FROM merge_accumulators WHERE simulation_id = $1 ORDER BY estimator_name, page_number",
    )
    .bind::<BigInt, _>(simulation_id)
    .load(conn)
    .await?;
    if !accs.is_empty() {
        let pages = accs
            .into_iter()
            .map(|a| {
                let meta: PageMeta = serde_json::from_value(a.page_meta).unwrap_or_default();
                PageInfo {
                    value_count: count_from_axes(&meta.axes),
                    estimator: a.estimator_name,
                    file_name: None,
                    page_number: a.page_number,
                    meta,
                    has_errors: a.tasks_merged >= 2,
                    aggregation: Aggregation::parse(&a.aggregation).unwrap_or_default(),
                    tasks_merged: Some(a.tasks_merged),
                    primaries: Some(a.sum_n),
                }
            })
            .collect();
        return Ok((pages, true));
    }
    #[derive(QueryableByName)]
    struct PageRow {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Nullable<Text>)]
        file_name: Option<String>,
        #[diesel(sql_type = Integer)]
        page_number: i32,
        #[diesel(embed)]
        meta: StoredMeta,
        #[diesel(sql_type = Integer)]
        value_count: i32,
        #[diesel(sql_type = Bool)]
        has_errors: bool,
        #[diesel(embed)]
        combined: StoredCombined,
    }
    let rows: Vec<PageRow> = diesel::sql_query(format!(
        "SELECT e.name, e.file_name, e.metadata AS estimator_metadata, p.page_number,
                p.page_name, p.page_dimension, p.axes, p.value_name, p.value_unit,
                p.value_count, p.errors_data IS NOT NULL AS has_errors, p.metadata, {}",
        crate::results::FINAL_PAGES
    ))
    .bind::<BigInt, _>(simulation_id)
    .load(conn)
    .await?;
    let partial = rows.iter().any(|r| r.combined.partial);
    let pages = rows
        .into_iter()
        .map(|r| {
            let combined = Combined::from(&r.combined);
            PageInfo {
                estimator: r.name,
                file_name: r.file_name,
                page_number: r.page_number,
                value_count: i64::from(r.value_count),
                has_errors: r.has_errors,
                aggregation: combined.aggregation,
                tasks_merged: combined.tasks_merged,
                primaries: combined.primaries,
                meta: r.meta.into(),
            }
        })
        .collect();
    Ok((pages, partial))
}

/// Which tasks a simulation's result pages hold: those that completed (each folded into the
/// merge as it completed), and the primaries they really simulated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    /// The tasks' indexes, ascending.
    pub tasks: Vec<i32>,
    /// Their primaries, summed.
    pub primaries: i64,
}

/// [`list`] and the [`Merged`] tasks of the same moment (one read-only snapshot), so that
/// the pages and the tasks they hold agree.
pub async fn list_with_merged(
    conn: &mut Conn,
    simulation_id: i64,
) -> DbResult<(Vec<PageInfo>, bool, Merged)> {
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run(async |conn| {
            let (pages, partial) = list(conn, simulation_id).await?;
            let merged = merged(conn, simulation_id).await?;
            Ok::<_, crate::error::DbError>((pages, partial, merged))
        })
        .await
}

/// The tasks of a simulation whose results its pages hold (see [`Merged`]).
pub async fn merged(conn: &mut Conn, simulation_id: i64) -> DbResult<Merged> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Integer)]
        task_index: i32,
        #[diesel(sql_type = BigInt)]
        simulated_primaries: i64,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT task_index, simulated_primaries FROM tasks
         WHERE simulation_id = $1 AND task_state = 'COMPLETED' ORDER BY task_index",
    )
    .bind::<BigInt, _>(simulation_id)
    .load(conn)
    .await?;
    Ok(Merged {
        primaries: rows.iter().map(|r| r.simulated_primaries).sum(),
        tasks: rows.into_iter().map(|r| r.task_index).collect(),
    })
}

/// The number of bins the axes describe: the product of each axis's `bins` (or the length
/// of its `values` list, pymchelper's form); 1 for a scalar page.
pub fn count_from_axes(axes: &serde_json::Value) -> i64 {
    let Some(list) = axes.as_array() else {
        return 1;
    };
    list.iter()
        .map(|a| {
            a.get("bins")
                .and_then(serde_json::Value::as_i64)
                .or_else(|| {
                    a.get("values")
                        .and_then(serde_json::Value::as_array)
                        .and_then(|v| i64::try_from(v.len()).ok())
                })
                .unwrap_or(1)
                .max(1)
        })
        .fold(1i64, i64::saturating_mul)
}

#[cfg(test)]
mod tests {
    use super::count_from_axes;
    use serde_json::json;

    #[test]
    fn counts_bins_of_both_axis_forms() {
        assert_eq!(count_from_axes(&json!([])), 1);
        assert_eq!(count_from_axes(&json!(null)), 1);
        assert_eq!(count_from_axes(&json!([{"bins": 100}])), 100);
        assert_eq!(
            count_from_axes(&json!([{"bins": 80}, {"values": [0.5, 1.5, 2.5]}])),
            240
        );
    }
}
