//! list-tasks, remove-task, retry-task.

use super::Ctx;
use crate::output::{opt, opt_time, safe};
use anyhow::Result;
use db::simulations::SimulationRef;
use db::tasks::TaskFilter;

/// `list-tasks [--simulation SIMULATION] [--user U] [--auth-provider P] [--state S] [--limit N]`.
/// A simulation that does not exist has no tasks: the list is empty.
pub async fn list(
    ctx: &mut Ctx<'_>,
    simulation: Option<SimulationRef>,
    mut filter: TaskFilter,
) -> Result<()> {
    let mut conn = ctx.conn().await?;
    let rows = match simulation {
        None => db::tasks::list(&mut conn, &filter).await?,
        Some(r) => match db::simulations::find(&mut conn, r).await? {
            Some(sim) => {
                filter.simulation_id = Some(sim.id);
                db::tasks::list(&mut conn, &filter).await?
            }
            None => Vec::new(),
        },
    };
    let headers = vec![
        "SIMULATION",
        "INDEX",
        "STATE",
        "USER",
        "PRIMARIES",
        "DONE",
        "ATTEMPTS",
        "STARTED",
        "ENDED",
        "LAST_ERROR",
    ];
    Ok(ctx.list(&rows, headers, |r| {
        let task = &r.task;
        vec![
            task.simulation_id.to_string(),
            task.task_index.to_string(),
            task.task_state.to_string(),
            safe(&r.username),
            task.requested_primaries.to_string(),
            task.simulated_primaries.to_string(),
            format!("{}/{}", task.attempts, task.max_attempts),
            opt_time(&task.start_time),
            opt_time(&task.end_time),
            safe(&opt(&task.last_error)),
        ]
    })?)
}

/// `retry-task SIMULATION TASK_INDEX`: a failed task of an open simulation is pending again,
/// with no attempt used.
pub async fn retry(ctx: &mut Ctx<'_>, simulation: SimulationRef, task_index: i32) -> Result<()> {
    let mut conn = ctx.conn().await?;
    let sim = db::simulations::resolve(&mut conn, simulation).await?;
    let task = db::queue::retry(&mut conn, sim.id, task_index).await?;
    ctx.done(
        &format!(
            "requeued task {task_index} of simulation {} ({}): PENDING, 0 of {} attempts used",
            sim.id, sim.job_id, task.max_attempts
        ),
        &task,
    )?;
    Ok(())
}

/// `remove-task SIMULATION TASK_INDEX`.
pub async fn remove(ctx: &mut Ctx<'_>, simulation: SimulationRef, task_index: i32) -> Result<()> {
    let mut conn = ctx.conn().await?;
    let simulation_id = db::simulations::resolve(&mut conn, simulation).await?.id;
    let task = db::tasks::remove(&mut conn, simulation_id, task_index).await?;
    ctx.done(
        &format!("removed task {task_index} of simulation {simulation_id}"),
        &task,
    )?;
    Ok(())
}
