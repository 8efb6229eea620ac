//! Queries on simulations.

use crate::enums::{AuthProvider, InputType, JobState, Platform, SimType};
use crate::error::{DbError, DbResult};
use crate::models::Simulation;
use crate::pool::Conn;
use crate::schema::{inputs, simulations, tasks, users};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt};
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::Serialize;
use std::collections::HashMap;
use uuid::Uuid;

/// The most rows one listing returns when no limit is given.
pub const DEFAULT_LIST_LIMIT: i64 = 1000;

/// A listing's row limit: `limit`, or [`DEFAULT_LIST_LIMIT`] when none is given; less than
/// one is [`DbError::Invalid`].
pub(crate) fn list_limit(limit: Option<i64>) -> DbResult<i64> {
    let limit = limit.unwrap_or(DEFAULT_LIST_LIMIT);
    if limit < 1 {
        return Err(DbError::Invalid(format!(
            "limit must be at least 1, not {limit}"
        )));
    }
    Ok(limit)
}

/// Filters for [`list`]; `None` means any.
#[derive(Debug, Default, Clone)]
pub struct SimulationFilter {
    /// Owner's name.
    pub username: Option<String>,
    /// Owner's auth provider.
    pub auth_provider: Option<AuthProvider>,
    /// State.
    pub state: Option<JobState>,
    /// Most rows to return (default [`DEFAULT_LIST_LIMIT`]).
    pub limit: Option<i64>,
}

/// Task totals of one simulation.
#[derive(Debug, Clone, Copy, Default, Serialize, QueryableByName)]
pub struct TaskTotals {
    /// The simulation.
    #[diesel(sql_type = BigInt)]
    pub simulation_id: i64,
    /// Tasks in all.
    #[diesel(sql_type = BigInt)]
    pub total: i64,
    /// Tasks completed.
    #[diesel(sql_type = BigInt)]
    pub completed: i64,
    /// Tasks failed.
    #[diesel(sql_type = BigInt)]
    pub failed: i64,
    /// Primaries simulated so far, summed over tasks.
    #[diesel(sql_type = BigInt)]
    pub simulated_primaries: i64,
}

/// A simulation as operators list it.
#[derive(Debug, Clone, Serialize)]
pub struct SimulationRow {
    /// The simulation.
    #[serde(flatten)]
    pub simulation: Simulation,
    /// Owner's name.
    pub username: String,
    /// Owner's auth provider.
    pub auth_provider: AuthProvider,
    /// Task totals, when asked for.
    pub tasks: Option<TaskTotals>,
}

/// Lists simulations, newest first.
pub async fn list(
    conn: &mut Conn,
    filter: &SimulationFilter,
    with_tasks: bool,
) -> DbResult<Vec<SimulationRow>> {
    let limit = list_limit(filter.limit)?;
    let mut q = simulations::table.inner_join(users::table).into_boxed();
    if let Some(u) = &filter.username {
        q = q.filter(users::username.eq(u.clone()));
    }
    if let Some(p) = filter.auth_provider {
        q = q.filter(users::auth_provider.eq(p));
    }
    if let Some(s) = filter.state {
        q = q.filter(simulations::job_state.eq(s));
    }
    let rows: Vec<(Simulation, String, AuthProvider)> = q
        .order_by((simulations::start_time.desc(), simulations::id.desc()))
        .limit(limit)
        .select((
            Simulation::as_select(),
            users::username,
            users::auth_provider,
        ))
        .load(conn)
        .await?;
    let mut totals = if with_tasks {
        let ids: Vec<i64> = rows.iter().map(|r| r.0.id).collect();
        task_totals(conn, &ids).await?
    } else {
        HashMap::new()
    };
    Ok(rows
        .into_iter()
        .map(|(simulation, username, auth_provider)| SimulationRow {
            tasks: if with_tasks {
                Some(totals.remove(&simulation.id).unwrap_or(TaskTotals {
                    simulation_id: simulation.id,
                    ..TaskTotals::default()
                }))
            } else {
                None
            },
            simulation,
            username,
            auth_provider,
        })
        .collect())
}

/// Task totals for the given simulations, by simulation id.
pub async fn task_totals(conn: &mut Conn, ids: &[i64]) -> DbResult<HashMap<i64, TaskTotals>> {
    let rows: Vec<TaskTotals> = diesel::sql_query(
        "SELECT simulation_id, count(*) AS total, \
                count(*) FILTER (WHERE task_state = 'COMPLETED') AS completed, \
                count(*) FILTER (WHERE task_state = 'FAILED') AS failed, \
                coalesce(sum(simulated_primaries), 0)::bigint AS simulated_primaries \
         FROM tasks WHERE simulation_id = ANY($1) GROUP BY simulation_id",
    )
    .bind::<Array<BigInt>, _>(ids)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|t| (t.simulation_id, t)).collect())
}

/// Finds a simulation by its operator id.
pub async fn get(conn: &mut Conn, id: i64) -> DbResult<Simulation> {
    simulations::table
        .find(id)
        .select(Simulation::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| DbError::NotFound(format!("simulation {id}")))
}

/// A simulation as an operator names it: the numeric id operators see, or the job id
/// (a UUID) users see. Parsed once, where the name comes in ([`str::parse`]), and turned
/// into a simulation by one query ([`find`], [`resolve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimulationRef {
    /// The numeric id (`simulations.id`).
    Id(i64),
    /// The public job id (`simulations.job_id`).
    JobId(Uuid),
}

/// Text that names no simulation: neither a numeric id nor a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSimulationRef {
    /// Nothing was given.
    #[error("a simulation is named by its numeric id or its job id (a UUID), not an empty string")]
    Empty,
    /// Digits, but too many for an id.
    #[error("{0:?} is too large for a simulation id")]
    OutOfRange(String),
    /// Neither digits nor a UUID.
    #[error("{0:?} is neither a simulation id (digits) nor a job id (a UUID such as 67e55044-10b1-426f-9247-bb680e5fe0c8)")]
    Malformed(String),
}

impl std::str::FromStr for SimulationRef {
    type Err = BadSimulationRef;

    /// Digits are a numeric id, anything else must be a UUID (hyphenated or not, any case).
    /// Nothing is trimmed: the text is taken exactly as given.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(BadSimulationRef::Empty);
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse::<i64>()
                .map(SimulationRef::Id)
                .map_err(|_| BadSimulationRef::OutOfRange(s.to_string()));
        }
        // Only the plain forms (36 characters hyphenated, or 32 hex digits): no braces or
        // `urn:uuid:` prefix.
        let plain = s.len() == 36 || s.len() == 32;
        match Uuid::try_parse(s) {
            Ok(u) if plain => Ok(SimulationRef::JobId(u)),
            _ => Err(BadSimulationRef::Malformed(s.to_string())),
        }
    }
}

impl std::fmt::Display for SimulationRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimulationRef::Id(id) => write!(f, "simulation {id}"),
            SimulationRef::JobId(job_id) => write!(f, "simulation {job_id}"),
        }
    }
}

/// The simulation `r` names, if there is one: one query, by id or by job id.
pub async fn find(conn: &mut Conn, r: SimulationRef) -> DbResult<Option<Simulation>> {
    let q = simulations::table
        .select(Simulation::as_select())
        .into_boxed();
    let q = match r {
        SimulationRef::Id(id) => q.filter(simulations::id.eq(id)),
        SimulationRef::JobId(job_id) => q.filter(simulations::job_id.eq(job_id)),
    };
    Ok(q.first(conn).await.optional()?)
}

/// The simulation `r` names, or [`DbError::NotFound`] naming it as given.
pub async fn resolve(conn: &mut Conn, r: SimulationRef) -> DbResult<Simulation> {
    find(conn, r)
        .await?
        .ok_or_else(|| DbError::NotFound(r.to_string()))
}

/// Removes a simulation and, by cascade, everything under it.
pub async fn remove(conn: &mut Conn, id: i64) -> DbResult<Simulation> {
    let removed = diesel::delete(simulations::table.find(id))
        .returning(Simulation::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or_else(|| DbError::NotFound(format!("simulation {id}")))?;
    crate::notify::Announce::stopped([id]).send(conn).await;
    Ok(removed)
}

pub use crate::retention::{
    cleanup_batch, cleanup_candidates, cleanup_count, CleanupBatch, CleanupFilter, CleanupRow,
};

/// Splits `total` primaries over `ntasks` tasks; the first `total % ntasks` tasks get one more,
/// so nothing is dropped.
pub fn split_primaries(total: i64, ntasks: i32) -> DbResult<Vec<i64>> {
    if ntasks < 1 {
        return Err(DbError::Invalid(format!(
            "ntasks must be at least 1, not {ntasks}"
        )));
    }
    if total < i64::from(ntasks) {
        return Err(DbError::Invalid(format!(
            "{total} primaries cannot be split over {ntasks} tasks: each task needs at least one"
        )));
    }
    let n = i64::from(ntasks);
    let (base, rest) = (total / n, total % n);
    Ok((0..n).map(|i| base + i64::from(i < rest)).collect())
}

/// A simulation to create with [`create_with_tasks`].
#[derive(Debug, Clone)]
pub struct NewSimulation {
    /// Owner.
    pub user_id: i64,
    /// Title.
    pub title: String,
    /// Direct or batch.
    pub platform: Platform,
    /// Editor JSON or files.
    pub input_type: InputType,
    /// Which simulator.
    pub sim_type: SimType,
    /// Number of tasks.
    pub ntasks: i32,
    /// Total primaries.
    pub primaries: i64,
    /// Cluster for batch runs.
    pub cluster_id: Option<i64>,
    /// Per-submission sbatch options.
    pub sbatch_options: Vec<String>,
    /// Attempts each task gets.
    pub max_attempts: i32,
}

/// Writes a simulation, its input (already compressed with [`crate::blob`], with its
/// uncompressed size) and its tasks in one transaction; once it has committed, wakes idle
/// workers.
pub async fn create_with_tasks(
    conn: &mut Conn,
    new: &NewSimulation,
    input: Option<(&[u8], i64)>,
) -> DbResult<Simulation> {
    let split = split_primaries(new.primaries, new.ntasks)?;
    let new = new.clone();
    let input = input.map(|(d, n)| (d.to_vec(), n));
    let sim = conn
        .transaction(async |conn| {
            let sim: Simulation = diesel::insert_into(simulations::table)
                .values((
                    simulations::user_id.eq(new.user_id),
                    simulations::title.eq(&new.title),
                    simulations::platform.eq(new.platform),
                    simulations::input_type.eq(new.input_type),
                    simulations::sim_type.eq(new.sim_type),
                    simulations::ntasks.eq(new.ntasks),
                    simulations::primaries.eq(new.primaries),
                    simulations::cluster_id.eq(new.cluster_id),
                    simulations::sbatch_options.eq(new
                        .sbatch_options
                        .iter()
                        .map(|s| Some(s.clone()))
                        .collect::<Vec<_>>()),
                ))
                .returning(Simulation::as_returning())
                .get_result(conn)
                .await?;
            if let Some((data, size)) = &input {
                diesel::insert_into(inputs::table)
                    .values((
                        inputs::simulation_id.eq(sim.id),
                        inputs::data.eq(data),
                        inputs::uncompressed_size.eq(size),
                    ))
                    .execute(conn)
                    .await?;
            }
            let rows: Vec<_> = split
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    (
                        tasks::simulation_id.eq(sim.id),
                        tasks::task_index.eq(i as i32),
                        tasks::requested_primaries.eq(*n),
                        tasks::max_attempts.eq(new.max_attempts),
                    )
                })
                .collect();
            diesel::insert_into(tasks::table)
                .values(&rows)
                .execute(conn)
                .await?;
            if new.platform == Platform::Batch {
                diesel::sql_query(format!(
                    "UPDATE tasks SET run_after = {} WHERE simulation_id = $1",
                    crate::queue::batch::NEVER_DUE_SQL
                ))
                .bind::<BigInt, _>(sim.id)
                .execute(conn)
                .await?;
            }
            Ok::<_, DbError>(sim)
        })
        .await?;
    crate::notify::Announce::tasks_ready().send(conn).await;
    Ok(sim)
}

#[cfg(test)]
mod tests {
    use super::{split_primaries, BadSimulationRef, SimulationRef};

    #[test]
    fn a_simulation_ref_is_digits_or_a_uuid() {
        let u = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        assert_eq!("42".parse(), Ok(SimulationRef::Id(42)));
        assert_eq!("0042".parse(), Ok(SimulationRef::Id(42)));
        let parsed: SimulationRef = u.parse().unwrap();
        assert_eq!(parsed, SimulationRef::JobId(u.parse().unwrap()));
        assert_eq!(u.to_uppercase().parse::<SimulationRef>(), Ok(parsed));
        assert_eq!(u.replace('-', "").parse::<SimulationRef>(), Ok(parsed));
        assert_eq!("".parse::<SimulationRef>(), Err(BadSimulationRef::Empty));
        assert!(matches!(
            "99999999999999999999".parse::<SimulationRef>(),
            Err(BadSimulationRef::OutOfRange(_))
        ));
        for bad in [
            "-1",
            "+1",
            " 1",
            "1 ",
            "1.5",
            "abc",
            "1; DROP TABLE simulations",
            "' OR 1=1 --",
            "a\0b",
            "\u{1b}[31m",
            "{67e55044-10b1-426f-9247-bb680e5fe0c8}",
            "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
        ] {
            let e = bad.parse::<SimulationRef>().unwrap_err();
            assert!(matches!(e, BadSimulationRef::Malformed(_)), "{bad:?}: {e}");
            // The message quotes the text escaped, never raw.
            assert!(!e.to_string().contains('\u{1b}'), "{e}");
            assert!(!e.to_string().contains('\0'), "{e}");
        }
    }

    #[test]
    fn split_spreads_the_remainder() {
        assert_eq!(split_primaries(10, 3).unwrap(), vec![4, 3, 3]);
        assert_eq!(split_primaries(12, 4).unwrap(), vec![3, 3, 3, 3]);
        assert_eq!(split_primaries(5, 5).unwrap(), vec![1; 5]);
        let big = split_primaries(i64::MAX, 7).unwrap();
        assert_eq!(
            big.iter().map(|&n| n as i128).sum::<i128>(),
            i64::MAX as i128
        );
        assert!(split_primaries(3, 4).is_err());
        assert!(split_primaries(3, 0).is_err());
    }
}
