//! Simulations as a user sees them through the API: visibility-checked lookups (with the
//! owner's and cluster's names, and the tasks), keyset-paginated listing, cancel and
//! deletion. (Operators' listings are [`crate::simulations`].)
//!
//! Visibility: `owner = Some(user_id)` restricts a query to that user's simulations (a
//! simulation of someone else is simply not found); `None` is an admin's view of all.

use crate::enums::JobState;
use crate::error::{DbError, DbResult};
use crate::models::{Simulation, Task};
use crate::pool::Conn;
use crate::schema::{clusters, simulations, tasks, users};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// A simulation with its owner's name and its cluster's name.
#[derive(Debug, Clone)]
pub struct SimulationView {
    /// The simulation.
    pub simulation: Simulation,
    /// The owner's login name.
    pub owner: String,
    /// The batch cluster's name, if any.
    pub cluster: Option<String>,
}

/// What a [`SimulationView`] is read from: the simulation, its owner's name and its
/// cluster's name.
type ViewColumns = (
    diesel::dsl::AsSelect<Simulation, diesel::pg::Pg>,
    users::username,
    diesel::dsl::Nullable<clusters::name>,
);

/// The columns of [`ViewColumns`], to select from simulations joined with users and clusters.
fn view_columns() -> ViewColumns {
    (
        Simulation::as_select(),
        users::username,
        clusters::name.nullable(),
    )
}

async fn views(conn: &mut Conn, ids: &[i64]) -> DbResult<Vec<SimulationView>> {
    let rows: Vec<(Simulation, String, Option<String>)> = simulations::table
        .inner_join(users::table)
        .left_join(clusters::table)
        .filter(simulations::id.eq_any(ids))
        .select(view_columns())
        .load(conn)
        .await?;
    let mut out: Vec<SimulationView> = rows
        .into_iter()
        .map(|(simulation, owner, cluster)| SimulationView {
            simulation,
            owner,
            cluster,
        })
        .collect();
    // Keep the order of `ids`.
    out.sort_by_key(|v| ids.iter().position(|&i| i == v.simulation.id));
    Ok(out)
}

/// Finds a simulation by public id if `owner` may see it. One query, and not a boxed one,
/// so diesel-async keeps it as a prepared statement (it runs on every `Get`).
pub async fn get_visible(
    conn: &mut Conn,
    job_id: Uuid,
    owner: Option<i64>,
) -> DbResult<SimulationView> {
    let base = simulations::table
        .inner_join(users::table)
        .left_join(clusters::table)
        .filter(simulations::job_id.eq(job_id))
        .select(view_columns());
    let row: Option<(Simulation, String, Option<String>)> = match owner {
        Some(uid) => base
            .filter(simulations::user_id.eq(uid))
            .first(conn)
            .await
            .optional()?,
        None => base.first(conn).await.optional()?,
    };
    let (simulation, owner, cluster) =
        row.ok_or_else(|| DbError::NotFound(format!("simulation {job_id}")))?;
    Ok(SimulationView {
        simulation,
        owner,
        cluster,
    })
}

/// A visible simulation with its tasks by index, in one statement (one round trip): what
/// `Get` and `Watch` read.
pub async fn get_visible_with_tasks(
    conn: &mut Conn,
    job_id: Uuid,
    owner: Option<i64>,
) -> DbResult<(SimulationView, Vec<Task>)> {
    type Row = (Simulation, String, Option<String>, Option<Task>);
    let base = simulations::table
        .inner_join(users::table)
        .left_join(clusters::table)
        .left_join(tasks::table)
        .filter(simulations::job_id.eq(job_id))
        .order_by(tasks::task_index)
        .select((
            Simulation::as_select(),
            users::username,
            clusters::name.nullable(),
            Option::<Task>::as_select(),
        ));
    let rows: Vec<Row> = match owner {
        Some(uid) => base.filter(simulations::user_id.eq(uid)).load(conn).await?,
        None => base.load(conn).await?,
    };
    let mut rows = rows.into_iter();
    let (simulation, owner, cluster, first) = rows
        .next()
        .ok_or_else(|| DbError::NotFound(format!("simulation {job_id}")))?;
    let tasks = first.into_iter().chain(rows.filter_map(|r| r.3)).collect();
    Ok((
        SimulationView {
            simulation,
            owner,
            cluster,
        },
        tasks,
    ))
}

/// The sort key of [`list_page`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOrder {
    /// By start time.
    StartTime,
    /// By end time; simulations without one sort as if they ended at +infinity.
    EndTime,
}

/// A keyset position: the sort key and id of the last row of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The sort key (`None`: no end time, i.e. +infinity).
    pub key: Option<DateTime<Utc>>,
    /// The id.
    pub id: i64,
}

/// A page request for [`list_page`].
#[derive(Debug, Clone)]
pub struct PageQuery {
    /// Only this owner's simulations; `None` for all.
    pub owner: Option<i64>,
    /// Only this state.
    pub state: Option<JobState>,
    /// Sort key.
    pub order: ListOrder,
    /// Ascending (else descending).
    pub ascending: bool,
    /// Rows after this position.
    pub after: Option<Cursor>,
    /// Most rows.
    pub limit: i64,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// One page of simulations in keyset order, and the total count of matching rows.
///
/// The order is `(key, id)` in one direction, so a cursor from the last row continues
/// exactly after it: rows inserted between pages neither repeat nor push others out.
pub async fn list_page(conn: &mut Conn, q: &PageQuery) -> DbResult<(Vec<SimulationView>, i64)> {
    if q.limit < 1 {
        return Err(DbError::Invalid("limit must be at least 1".into()));
    }
    // $1 owner (NULL: all), $2 state (NULL: any), $3 has cursor, $4 key, $5 id, $6 limit.
    let filter = "($1::bigint IS NULL OR user_id = $1) AND ($2::text IS NULL OR job_state = $2)";
    let (after, order) = match (q.order, q.ascending) {
        (ListOrder::StartTime, true) => ("(start_time, id) > ($4, $5)", "start_time ASC, id ASC"),
        (ListOrder::StartTime, false) => {
            ("(start_time, id) < ($4, $5)", "start_time DESC, id DESC")
        }
        // A missing end time is +infinity: PostgreSQL's own NULL order (last when ascending,
        // first when descending), so `simulations_user_end_idx` serves the order directly.
        (ListOrder::EndTime, true) => (
            "CASE WHEN $4 IS NULL THEN end_time IS NULL AND id > $5 \
             ELSE end_time IS NULL OR (end_time, id) > ($4, $5) END",
            "end_time ASC, id ASC",
        ),
        (ListOrder::EndTime, false) => (
            "CASE WHEN $4 IS NULL THEN end_time IS NOT NULL OR id < $5 \
             ELSE (end_time, id) < ($4, $5) END",
            "end_time DESC, id DESC",
        ),
    };
    let sql = format!(
        "SELECT id FROM simulations WHERE {filter} \
         AND (NOT $3 OR ({after})) ORDER BY {order} LIMIT $6"
    );
    let state = q.state.map(|s| s.as_str().to_string());
    let ids: Vec<IdRow> = diesel::sql_query(sql)
        .bind::<Nullable<BigInt>, _>(q.owner)
        .bind::<Nullable<Text>, _>(state.clone())
        .bind::<Bool, _>(q.after.is_some())
        .bind::<Nullable<Timestamptz>, _>(q.after.and_then(|c| c.key))
        .bind::<BigInt, _>(q.after.map_or(0, |c| c.id))
        .bind::<BigInt, _>(q.limit)
        .load(conn)
        .await?;
    let count: CountRow = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM simulations WHERE {filter}"
    ))
    .bind::<Nullable<BigInt>, _>(q.owner)
    .bind::<Nullable<Text>, _>(state)
    .get_result(conn)
    .await?;
    let ids: Vec<i64> = ids.into_iter().map(|r| r.id).collect();
    Ok((views(conn, &ids).await?, count.n))
}

/// Cancels a simulation that is pending or running ([`crate::queue::cancel`](fn@crate::queue::cancel): its completed
/// tasks' results are kept). Returns the number of tasks canceled, or `None` when it was
/// already terminal, is gone, or is `MERGING` (which is left to complete).
pub async fn cancel(conn: &mut Conn, simulation_id: i64) -> DbResult<Option<usize>> {
    Ok(match crate::queue::cancel(conn, simulation_id).await? {
        crate::queue::Canceled::Now { tasks } => Some(tasks),
        crate::queue::Canceled::Merging | crate::queue::Canceled::Ended => None,
    })
}

/// Deletes a terminal simulation (and everything under it). Returns false, deleting
/// nothing, when it is still PENDING, RUNNING or MERGING (or is gone).
pub async fn delete_if_terminal(conn: &mut Conn, simulation_id: i64) -> DbResult<bool> {
    let n = diesel::delete(
        simulations::table
            .filter(simulations::id.eq(simulation_id))
            .filter(simulations::job_state.eq_any(JobState::TERMINAL.map(|s| s.as_str()))),
    )
    .execute(conn)
    .await?;
    if n > 0 {
        crate::notify::Announce::changed([simulation_id])
            .send(conn)
            .await;
    }
    Ok(n > 0)
}

pub use crate::pool::PooledConn;
