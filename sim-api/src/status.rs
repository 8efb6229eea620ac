//! What `Get`, `Watch` and `List` answer about a simulation: its wire form, built from the
//! stored rows (the enum conversions are [`proto::wire`]'s).

use crate::auth::Caller;
use crate::error::db_status;
use db::simulation_views::SimulationView;
use proto::v1 as pb;
use tonic::Status;
use uuid::Uuid;

/// A simulation's status with its tasks, read on a connection the caller holds, and what
/// the status cache needs to know about it.
pub async fn read(
    c: &mut db::Conn,
    caller: &Caller,
    job_id: Uuid,
) -> Result<(pb::SimulationStatus, crate::status_cache::Key), Status> {
    let (view, tasks) =
        db::simulation_views::get_visible_with_tasks(c, job_id, caller.owner_filter())
            .await
            .map_err(db_status)?;
    let simulated = tasks.iter().map(|t| t.simulated_primaries).sum();
    Ok((
        pb::SimulationStatus {
            simulation: Some(simulation_pb(&view, simulated)),
            tasks: tasks.iter().map(task_pb).collect(),
        },
        crate::status_cache::Key {
            job_id,
            simulation_id: view.simulation.id,
            owner_id: view.simulation.user_id,
        },
    ))
}

/// Whether the status is final: the simulation completed, failed or was canceled.
pub fn is_terminal(status: &pb::SimulationStatus) -> bool {
    status.simulation.as_ref().is_some_and(|s| {
        pb::JobState::try_from(s.job_state)
            .ok()
            .and_then(|w| db::enums::JobState::try_from(w).ok())
            .is_some_and(|state| db::enums::JobState::TERMINAL.contains(&state))
    })
}

/// A job id from a request: `INVALID_ARGUMENT` unless it is a UUID.
pub fn parse_job_id(s: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(s).map_err(|_| Status::invalid_argument("job_id must be a UUID"))
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A simulation's wire form; `simulated` is the sum over its tasks.
pub fn simulation_pb(v: &SimulationView, simulated: i64) -> pb::Simulation {
    let s = &v.simulation;
    pb::Simulation {
        job_id: s.job_id.to_string(),
        title: s.title.clone(),
        sim_type: pb::SimType::from(s.sim_type) as i32,
        platform: pb::Platform::from(s.platform) as i32,
        input_type: pb::InputType::from(s.input_type) as i32,
        job_state: pb::JobState::from(s.job_state) as i32,
        ntasks: s.ntasks,
        primaries: s.primaries,
        start_time: Some(ts(s.start_time)),
        end_time: s.end_time.map(ts),
        update_time: Some(ts(s.update_time)),
        cluster: v.cluster.clone().unwrap_or_default(),
        owner: v.owner.clone(),
        simulated_primaries: simulated,
    }
}

fn task_pb(t: &db::models::Task) -> pb::TaskProgress {
    pb::TaskProgress {
        task_index: t.task_index,
        state: pb::TaskState::from(t.task_state) as i32,
        requested_primaries: t.requested_primaries,
        simulated_primaries: t.simulated_primaries,
        estimated_time_left_s: t.estimated_time_s,
        start_time: t.start_time.map(ts),
        end_time: t.end_time.map(ts),
        update_time: Some(ts(t.update_time)),
        last_error: t.last_error.clone().unwrap_or_default(),
        attempts: t.attempts,
    }
}
