//! Results: folding a completed task's pages into the simulation's running sums, the final
//! merge into estimators and pages, and reading them back (final, or partial while running).
//!
//! Per bin, each simulation page keeps `ΣN`, `ΣN·x` and `ΣN·x²` over the tasks folded so
//! far, weighted by each task's primaries `N` (pages holding totals keep `Σx` and `Σx²`
//! instead, and are summed). So the mean `ΣN·x / ΣN` and its standard error exist at any
//! time, and the final merge costs O(pages), not O(tasks × pages). The fold happens in the
//! same transaction as the task's guarded completion, so a retried task is never counted twice.
//!
//! The running sums are intermediate (never served, deleted by the final merge) and are
//! rewritten by every fold, so they are stored in a form that costs no more than a copy to
//! read and write (see [`encode_sums`]) rather than with the page codec: the codec's deflate
//! would cost more per fold than the write it saves.

use crate::aggregation::Aggregation;
use crate::codec;
use crate::error::{DbError, DbResult};
use crate::notify;
use crate::pool::Conn;
use crate::prepared::prepared;
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
    /// Tasks merged into it.
    pub tasks_merged: i32,
    /// True while the simulation is still running (results from the tasks done so far).
    pub partial: bool,
    /// Set when this page's stored bytes do not decode: what is damaged. Its values and
    /// errors are then empty; the other pages are unaffected.
    pub damaged: Option<String>,
}

#[derive(QueryableByName)]
struct AccRow {
    #[diesel(sql_type = Text)]
    estimator_name: String,
    #[diesel(sql_type = Integer)]
    page_number: i32,
    #[diesel(sql_type = Jsonb)]
    page_meta: serde_json::Value,
    #[diesel(sql_type = Text)]
    aggregation: String,
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
    DbError::Corrupt(format!("stored {what} cannot be decoded: {e}"))
}

/// Magic bytes of stored running sums.
const SUMS_MAGIC: [u8; 4] = *b"MACC";
/// Every value stored, 8 little-endian bytes each.
const SUMS_DENSE: u8 = 0;
/// A bitmap of the non-zero values, then the non-zero values only.
const SUMS_SPARSE: u8 = 1;
/// Magic, layout byte, value count (u32).
const SUMS_HEADER: usize = 9;

/// Encodes a running sum for `merge_accumulators`: the 4-byte magic `MACC`, a layout byte,
/// the value count (u32, little-endian), then either every value as 8 little-endian bytes
/// (layout 0, dense) or, when that saves space, a bitmap of `ceil(count / 8)` bytes (bit
/// `i % 8` of byte `i / 8` set when value `i` is not `+0.0`) followed by the non-zero values
/// only (layout 1, sparse). No compression: both directions run at memory speed, and the
/// sparse layout still keeps the beam-free zeros of a dose map out of the row.
fn encode_sums(values: &[f64]) -> DbResult<Vec<u8>> {
    let count = u32::try_from(values.len())
        .map_err(|_| DbError::Invalid(format!("a page of {} values is too large", values.len())))?;
    let zeros = values.iter().filter(|v| v.to_bits() == 0).count();
    let sparse = zeros * 64 > values.len();
    let bitmap_len = if sparse { values.len().div_ceil(8) } else { 0 };
    let stored = if sparse {
        values.len() - zeros
    } else {
        values.len()
    };
    let mut out = vec![0u8; SUMS_HEADER + bitmap_len + stored * 8];
    let (header, body) = out.split_at_mut(SUMS_HEADER);
    header[..4].copy_from_slice(&SUMS_MAGIC);
    header[4] = if sparse { SUMS_SPARSE } else { SUMS_DENSE };
    header[5..].copy_from_slice(&count.to_le_bytes());
    let (bitmap, body) = body.split_at_mut(bitmap_len);
    let mut slots = body.chunks_exact_mut(8);
    if sparse {
        // Per group of eight: the bitmap byte without branches, then one step per set bit.
        for (byte, chunk) in bitmap.iter_mut().zip(values.chunks(8)) {
            for (i, v) in chunk.iter().enumerate() {
                *byte |= u8::from(v.to_bits() != 0) << i;
            }
            let mut bits = *byte;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let (Some(slot), Some(v)) = (slots.next(), chunk.get(i)) {
                    slot.copy_from_slice(&v.to_le_bytes());
                }
            }
        }
    } else {
        for (slot, v) in slots.zip(values) {
            slot.copy_from_slice(&v.to_le_bytes());
        }
    }
    Ok(out)
}

/// Decodes what [`encode_sums`] wrote (or, for sums written before it, the page codec).
/// Every length is checked against the header; bad bytes are an error, never a panic.
fn decode_sums(bytes: &[u8]) -> DbResult<Vec<f64>> {
    let mut out = vec![0.0; stored_count(bytes)?];
    apply_sums(bytes, &mut out, |slot, v| *slot = v)?;
    Ok(out)
}

/// Adds stored sums into `out`, which must have as many values.
fn add_sums(bytes: &[u8], out: &mut [f64]) -> DbResult<()> {
    apply_sums(bytes, out, |slot, v| *slot += v)
}

/// The value count in stored sums' header.
fn stored_count(bytes: &[u8]) -> DbResult<usize> {
    if bytes.starts_with(b"MCRP") {
        return codec::value_count(bytes).map_err(|e| codec_err("sums", e));
    }
    let header = bytes
        .get(..SUMS_HEADER)
        .ok_or_else(|| corrupt_sums(format!("{} bytes, shorter than the header", bytes.len())))?;
    if header[..4] != SUMS_MAGIC {
        return Err(corrupt_sums("bad magic bytes".into()));
    }
    let count = u32::from_le_bytes([header[5], header[6], header[7], header[8]]) as usize;
    if count > codec::DEFAULT_MAX_VALUES {
        return Err(corrupt_sums(format!("{count} values, more than the limit")));
    }
    Ok(count)
}

fn corrupt_sums(why: String) -> DbError {
    DbError::Corrupt(format!("stored sums are corrupt: {why}"))
}

/// Calls `f(slot, value)` for every stored value (the non-zero ones, for the sparse layout)
/// after checking the whole layout against `out`'s length.
fn apply_sums(bytes: &[u8], out: &mut [f64], f: impl Fn(&mut f64, f64)) -> DbResult<()> {
    let count = stored_count(bytes)?;
    if count != out.len() {
        return Err(corrupt_sums(format!(
            "{count} values where the page has {}",
            out.len()
        )));
    }
    if bytes.starts_with(b"MCRP") {
        let values = codec::decode(bytes).map_err(|e| codec_err("sums", e))?;
        for (slot, v) in out.iter_mut().zip(values) {
            f(slot, v);
        }
        return Ok(());
    }
    let (header, body) = bytes
        .split_at_checked(SUMS_HEADER)
        .ok_or_else(|| corrupt_sums("shorter than the header".into()))?;
    let value = |c: &[u8]| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
    match header[4] {
        SUMS_DENSE => {
            if body.len() % 8 != 0 || body.len() / 8 != count {
                return Err(corrupt_sums(format!(
                    "{} bytes of values for {count} values",
                    body.len()
                )));
            }
            for (slot, c) in out.iter_mut().zip(body.chunks_exact(8)) {
                f(slot, value(c));
            }
            Ok(())
        }
        SUMS_SPARSE => {
            let (bitmap, values) = body
                .split_at_checked(count.div_ceil(8))
                .ok_or_else(|| corrupt_sums("the bitmap is truncated".into()))?;
            let nonzero: usize = bitmap.iter().map(|b| b.count_ones() as usize).sum();
            let padding = match (bitmap.last(), count % 8) {
                (Some(&last), bits @ 1..) => last >> bits,
                _ => 0,
            };
            if padding != 0 || values.len() % 8 != 0 || values.len() / 8 != nonzero {
                return Err(corrupt_sums(format!(
                    "{} bytes of values for {nonzero} non-zero values",
                    values.len()
                )));
            }
            let mut stored = values.chunks_exact(8);
            for (chunk, &byte) in out.chunks_mut(8).zip(bitmap) {
                let mut bits = byte;
                while bits != 0 {
                    let i = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if let (Some(slot), Some(c)) = (chunk.get_mut(i), stored.next()) {
                        f(slot, value(c));
                    }
                }
            }
            Ok(())
        }
        other => Err(corrupt_sums(format!("unknown layout {other}"))),
    }
}

async fn accumulators(conn: &mut Conn, simulation_id: i64) -> DbResult<Vec<AccRow>> {
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
        diesel::sql_query(
            "SELECT n.open_tasks, n.notified, a.estimator_name, a.page_number, a.aggregation,
                    a.sum_nx, a.sum_nx2
             FROM (SELECT EXISTS (SELECT 1 FROM tasks t WHERE t.simulation_id = $1
                                    AND t.task_state IN ('PENDING', 'RUNNING')) AS open_tasks,
                          pg_notify($2, $1::text) AS notified) n
             LEFT JOIN merge_accumulators a ON a.simulation_id = $1",
        )
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

/// The stored values of concatenated pages, per task: `(estimator, page, blob)` in task order.
type ConcatParts = Vec<(String, i32, Vec<u8>)>;

async fn concat_parts(conn: &mut Conn, simulation_id: i64) -> DbResult<ConcatParts> {
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
fn on_page(e: DbError, estimator: &str, page: i32) -> DbError {
    match e {
        DbError::Corrupt(m) => DbError::Corrupt(format!("page {page} of {estimator}: {m}")),
        other => other,
    }
}

/// The rule stored with a page's sums.
fn rule_of(acc: &AccRow) -> DbResult<Aggregation> {
    Aggregation::parse(&acc.aggregation).ok_or_else(|| {
        DbError::Corrupt(format!(
            "stored sums of page {} of {} name an unknown aggregation {:?}",
            acc.page_number, acc.estimator_name, acc.aggregation
        ))
    })
}

/// A page's merged values and, where the rule has one, their standard error. A damaged
/// stored part is a [`DbError::Corrupt`] naming the page.
fn merged(acc: &AccRow, parts: &ConcatParts) -> DbResult<(Vec<f64>, Option<Vec<f64>>)> {
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
        values.push(codec::encode(&mean).map_err(|e| codec_err("page", e))?);
        errors.push(match err {
            Some(e) => Some(codec::encode(&e).map_err(|e| codec_err("page", e))?),
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
                    tasks_merged: a.tasks_merged,
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
        #[diesel(sql_type = Text)]
        aggregation: String,
        #[diesel(sql_type = Bool)]
        partial: bool,
    }
    // A canceled simulation's pages hold what its completed tasks computed: partial.
    let rows: Vec<PageRow> = diesel::sql_query(
        "SELECT e.name, e.metadata AS estimator_metadata, p.page_number, p.page_name, p.page_dimension,
                p.axes, p.value_name, p.value_unit, p.values_data, p.errors_data, p.metadata,
                p.aggregation, s.job_state = 'CANCELED' AS partial
         FROM estimators e JOIN pages p ON p.estimator_id = e.id
              JOIN simulations s ON s.id = e.simulation_id
         WHERE e.simulation_id = $1 ORDER BY e.name, p.page_number",
    )
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
                    let why = on_page(codec_err("page", e), &r.name, r.page_number);
                    (Vec::new(), None, Some(why.to_string()))
                }
            };
            Ok(ResultPage {
                aggregation: Aggregation::parse(&r.aggregation).unwrap_or_default(),
                values,
                errors,
                damaged,
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
                partial: r.partial,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn sums_round_trip_bit_for_bit_in_both_layouts() {
        let dense: Vec<f64> = (1..=1000).map(|i| f64::from(i) * 1.000_000_1e-7).collect();
        let mut sparse = dense.clone();
        for v in sparse.iter_mut().step_by(3) {
            *v = 0.0;
        }
        let special = vec![
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE / 4.0,
            0.0,
            1.5,
        ];
        for values in [dense, sparse, special, vec![], vec![0.0; 17], vec![2.5]] {
            let bytes = encode_sums(&values).unwrap();
            assert_eq!(bits(&decode_sums(&bytes).unwrap()), bits(&values));
        }
    }

    #[test]
    fn sums_pick_the_smaller_layout() {
        let dense = encode_sums(&[1.0; 100]).unwrap();
        assert_eq!((dense[4], dense.len()), (SUMS_DENSE, SUMS_HEADER + 800));
        let mut mostly_zero = vec![0.0; 100];
        mostly_zero[7] = 3.0;
        let sparse = encode_sums(&mostly_zero).unwrap();
        assert_eq!(
            (sparse[4], sparse.len()),
            (SUMS_SPARSE, SUMS_HEADER + 13 + 8)
        );
    }

    #[test]
    fn stored_sums_add_into_a_page_of_their_length_only() {
        let mut sums = vec![1.0, 0.0, 0.5, 0.0];
        let stored = encode_sums(&[0.0, 2.0, 0.25, 0.0]).unwrap();
        add_sums(&stored, &mut sums).unwrap();
        assert_eq!(sums, [1.0, 2.0, 0.75, 0.0]);
        let legacy = codec::encode(&[1.0, 1.0, 1.0, 1.0]).unwrap();
        add_sums(&legacy, &mut sums).unwrap();
        assert_eq!(sums, [2.0, 3.0, 1.75, 1.0]);
        for bytes in [stored, legacy] {
            match add_sums(&bytes, &mut [0.0; 3]) {
                Err(DbError::Corrupt(m)) => {
                    assert!(m.contains("4 values where the page has 3"), "{m}")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn sums_written_by_the_page_codec_are_still_read() {
        let values = vec![0.0, 1.25, 0.0, -3.5];
        let legacy = codec::encode(&values).unwrap();
        assert_eq!(bits(&decode_sums(&legacy).unwrap()), bits(&values));
    }

    #[test]
    fn corrupt_sums_are_an_error_not_a_panic() {
        let dense = encode_sums(&[1.0, 2.0, 3.0]).unwrap();
        let mut values = vec![0.0; 20];
        values[3] = 1.0;
        values[19] = 2.0;
        let sparse = encode_sums(&values).unwrap();
        assert_eq!(sparse[4], SUMS_SPARSE);
        let mut cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"MACC".to_vec(),
            dense[..dense.len() - 1].to_vec(), // not a multiple of 8
            dense[..dense.len() - 8].to_vec(), // one value short of the count
            [dense.clone(), vec![0; 8]].concat(), // one value too many
            sparse[..sparse.len() - 8].to_vec(),
            [sparse.clone(), vec![0; 8]].concat(),
            sparse[..SUMS_HEADER + 1].to_vec(), // bitmap cut short
        ];
        let mut bad_magic = dense.clone();
        bad_magic[0] = b'X';
        cases.push(bad_magic);
        let mut bad_layout = dense.clone();
        bad_layout[4] = 9;
        cases.push(bad_layout);
        let mut huge = dense.clone();
        huge[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
        cases.push(huge);
        let mut padding = sparse.clone();
        padding[SUMS_HEADER + 2] |= 0x80; // a bit past value 19
        cases.push(padding);
        let mut extra_bit = sparse.clone();
        extra_bit[SUMS_HEADER] |= 0x01; // claims one more value than stored
        cases.push(extra_bit);
        for (i, bytes) in cases.iter().enumerate() {
            match decode_sums(bytes) {
                Err(DbError::Corrupt(m)) => assert!(m.contains("stored sums"), "case {i}: {m}"),
                other => panic!("case {i}: {other:?}"),
            }
        }
    }
}
