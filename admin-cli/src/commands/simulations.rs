//! list-simulations, remove-simulation.

use super::Ctx;
use crate::output::{opt, opt_time, safe, time};
use anyhow::Result;
use db::simulations::{SimulationFilter, SimulationRef};

/// `list-simulations [-v] [--user U] [--auth-provider P] [--state S] [--limit N]`.
pub async fn list(ctx: &mut Ctx<'_>, filter: SimulationFilter, verbose: bool) -> Result<()> {
    let mut conn = ctx.conn().await?;
    let rows = db::simulations::list(&mut conn, &filter, verbose).await?;
    let mut headers = vec![
        "ID",
        "JOB_ID",
        "USER",
        "STATE",
        "SIM_TYPE",
        "PLATFORM",
        "TASKS",
        "PRIMARIES",
        "STARTED",
        "ENDED",
        "TITLE",
    ];
    if verbose {
        headers.extend(["DONE", "FAILED", "SIMULATED", "ARRAY_ID", "JOB_DIR"]);
    }
    Ok(ctx.list(&rows, headers, |r| {
        let s = &r.simulation;
        let mut row = vec![
            s.id.to_string(),
            s.job_id.to_string(),
            format!("{}/{}", safe(&r.username), r.auth_provider),
            s.job_state.to_string(),
            s.sim_type.to_string(),
            s.platform.to_string(),
            s.ntasks.to_string(),
            s.primaries.to_string(),
            time(&s.start_time),
            opt_time(&s.end_time),
            safe(&s.title),
        ];
        if let Some(tt) = &r.tasks {
            row.extend([
                format!("{}/{}", tt.completed, tt.total),
                tt.failed.to_string(),
                tt.simulated_primaries.to_string(),
                opt(&s.array_id),
                safe(&opt(&s.job_dir)),
            ]);
        }
        row
    })?)
}

/// `remove-simulation SIMULATION` (its numeric id or job id).
pub async fn remove(ctx: &mut Ctx<'_>, simulation: SimulationRef) -> Result<()> {
    let mut conn = ctx.conn().await?;
    let id = db::simulations::resolve(&mut conn, simulation).await?.id;
    let sim = db::simulations::remove(&mut conn, id).await?;
    let warning = if sim.job_state.is_terminal() {
        String::new()
    } else {
        format!(" (it was {}: workers drop its tasks)", sim.job_state)
    };
    ctx.done(
        &format!("removed simulation {id} ({}){warning}", sim.job_id),
        &sim,
    )?;
    Ok(())
}
