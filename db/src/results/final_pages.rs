//! The final pages of a simulation, written in one statement: the rows of table `pages`,
//! column by column, as `results::write_final_pages` builds them from the running sums (and
//! as benches that need many stored pages build them directly).

use super::PageMeta;
use crate::aggregation::Aggregation;
use crate::codec;
use crate::error::DbResult;
use crate::pool::Conn;
use diesel::sql_types::{Array, BigInt, Bytea, Integer, Jsonb, Nullable, SmallInt, Text};
use diesel_async::RunQueryDsl;

/// Final pages to insert: entry `i` of every vector is page `i`.
#[derive(Debug, Default)]
pub struct PageRows {
    estimator_ids: Vec<i64>,
    page_numbers: Vec<i32>,
    names: Vec<String>,
    dimensions: Vec<i16>,
    axes: Vec<serde_json::Value>,
    value_names: Vec<String>,
    value_units: Vec<String>,
    value_counts: Vec<i32>,
    values: Vec<Vec<u8>>,
    errors: Vec<Option<Vec<u8>>>,
    metadata: Vec<serde_json::Value>,
    aggregations: Vec<&'static str>,
    tasks_merged: Vec<Option<i32>>,
    primaries: Vec<Option<i64>>,
}

/// How a final page was made from its tasks: the rule, and (when known) how many tasks were
/// merged into it and the primaries they really simulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Combined {
    /// How the tasks' values combined.
    pub aggregation: Aggregation,
    /// The tasks merged into the page.
    pub tasks_merged: Option<i32>,
    /// Their primaries, summed.
    pub primaries: Option<i64>,
}

impl PageRows {
    /// Adds page `page_number` of estimator `estimator_id` (a row of `estimators`): its
    /// description, how its tasks were combined ([`Combined`]), its values and their
    /// standard errors (in the page's value order), encoded by [`codec::encode`].
    ///
    /// # Errors
    /// [`crate::DbError::Corrupt`] when the values cannot be encoded (more than the page
    /// format holds).
    pub fn push(
        &mut self,
        estimator_id: i64,
        page_number: i32,
        meta: PageMeta,
        combined: Combined,
        values: &[f64],
        errors: Option<&[f64]>,
    ) -> DbResult<()> {
        let encode = |v: &[f64]| codec::encode(v).map_err(|e| codec::corrupt("page", e));
        self.values.push(encode(values)?);
        self.errors.push(errors.map(encode).transpose()?);
        self.estimator_ids.push(estimator_id);
        self.page_numbers.push(page_number);
        self.names.push(meta.name);
        self.dimensions.push(meta.dimension);
        self.axes.push(meta.axes);
        self.value_names.push(meta.value_name);
        self.value_units.push(meta.value_unit);
        self.value_counts
            .push(i32::try_from(values.len()).unwrap_or(i32::MAX));
        self.metadata.push(meta.metadata);
        self.aggregations.push(combined.aggregation.as_str());
        self.tasks_merged.push(combined.tasks_merged);
        self.primaries.push(combined.primaries);
        Ok(())
    }

    /// The bytes of the encoded values and errors so far.
    pub fn encoded_bytes(&self) -> usize {
        self.values.iter().map(Vec::len).sum::<usize>()
            + self.errors.iter().flatten().map(Vec::len).sum::<usize>()
    }

    /// Inserts every page in one statement (`unnest` of one array per column).
    ///
    /// # Errors
    /// The database's, e.g. a missing estimator or a page number stored twice.
    pub async fn insert(&self, conn: &mut Conn) -> DbResult<()> {
        diesel::sql_query(
            "INSERT INTO pages (estimator_id, page_number, page_name, page_dimension, axes,
                                value_name, value_unit, value_count, values_data, errors_data,
                                metadata, aggregation, tasks_merged, primaries)
             SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::smallint[],
                                  $5::jsonb[], $6::text[], $7::text[], $8::int[], $9::bytea[],
                                  $10::bytea[], $11::jsonb[], $12::text[], $13::int[],
                                  $14::bigint[])",
        )
        .bind::<Array<BigInt>, _>(&self.estimator_ids)
        .bind::<Array<Integer>, _>(&self.page_numbers)
        .bind::<Array<Text>, _>(&self.names)
        .bind::<Array<SmallInt>, _>(&self.dimensions)
        .bind::<Array<Jsonb>, _>(&self.axes)
        .bind::<Array<Text>, _>(&self.value_names)
        .bind::<Array<Text>, _>(&self.value_units)
        .bind::<Array<Integer>, _>(&self.value_counts)
        .bind::<Array<Bytea>, _>(&self.values)
        .bind::<Array<Nullable<Bytea>>, _>(&self.errors)
        .bind::<Array<Jsonb>, _>(&self.metadata)
        .bind::<Array<Text>, _>(&self.aggregations)
        .bind::<Array<Nullable<Integer>>, _>(&self.tasks_merged)
        .bind::<Array<Nullable<BigInt>>, _>(&self.primaries)
        .execute(conn)
        .await?;
        Ok(())
    }
}
