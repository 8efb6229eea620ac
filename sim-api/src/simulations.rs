//! SimulationService: submission, status and its live stream, listing, cancellation,
//! deletion, inputs, results and logs.
//!
//! Status codes: bad fields are INVALID_ARGUMENT; an input over `--max-input-bytes` or
//! more files than `--max-input-files` is RESOURCE_EXHAUSTED; another user's simulation
//! is NOT_FOUND; Cancel of a finished simulation and Delete of an unfinished one are
//! FAILED_PRECONDITION.

use crate::auth::{authenticate, Caller};
use crate::error::{conn, db_status, stored_data_status};
use crate::results;
use crate::AppState;
use base64::Engine as _;
use db::api::{Cursor, PageQuery, SimulationView};
use db::enums::{InputType, JobState, Platform, SimType, TaskState};
use db::inputs::SimulationInput;
use proto::v1 as pb;
use proto::v1::simulation_service_server::SimulationService;
use std::collections::HashMap;
use std::pin::Pin;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// Default page size of List.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page size of List; larger requests are capped.
pub const MAX_PAGE_SIZE: u32 = 500;
/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 1000;
/// Most sbatch options per submission.
pub const MAX_SBATCH_OPTIONS: usize = 32;
/// Attempts each task gets.
pub const TASK_MAX_ATTEMPTS: i32 = 3;

type BoxStream<T> = Pin<Box<dyn futures_util::Stream<Item = Result<T, Status>> + Send>>;

/// The SimulationService implementation.
#[derive(Clone)]
pub struct SimulationSvc {
    state: AppState,
}

impl SimulationSvc {
    /// A service over the shared state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    async fn visible(&self, caller: &Caller, job_id: &str) -> Result<SimulationView, Status> {
        let job_id = parse_job_id(job_id)?;
        let mut c = conn(&self.state.pool).await?;
        db::api::get_visible(&mut c, job_id, caller.owner_filter())
            .await
            .map_err(db_status)
    }

    /// The status `Get` and `Watch` return, and the simulation's internal id.
    async fn status(
        &self,
        caller: &Caller,
        job_id: Uuid,
    ) -> Result<(pb::SimulationStatus, i64), Status> {
        let mut c = conn(&self.state.pool).await?;
        let (status, key) = status_on(&mut c, caller, job_id).await?;
        Ok((status, key.simulation_id))
    }
}

/// [`SimulationSvc::status`] on a connection the caller holds, with what the status cache
/// needs to know about it.
async fn status_on(
    c: &mut db::Conn,
    caller: &Caller,
    job_id: Uuid,
) -> Result<(pb::SimulationStatus, crate::status_cache::Key), Status> {
    let (view, tasks) = db::api::get_visible_with_tasks(c, job_id, caller.owner_filter())
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

fn is_terminal(status: &pb::SimulationStatus) -> bool {
    status.simulation.as_ref().is_some_and(|s| {
        matches!(
            pb::JobState::try_from(s.job_state),
            Ok(pb::JobState::Completed | pb::JobState::Failed | pb::JobState::Canceled)
        )
    })
}

fn parse_job_id(s: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(s).map_err(|_| Status::invalid_argument("job_id must be a UUID"))
}

fn check_sbatch_option(opt: &str) -> Result<(), Status> {
    if opt.is_empty() || opt.len() > 256 || opt.chars().any(char::is_control) {
        return Err(Status::invalid_argument(
            "each sbatch option must be 1 to 256 characters without control characters",
        ));
    }
    Ok(())
}

fn sim_type_from(v: i32) -> Result<SimType, Status> {
    match pb::SimType::try_from(v) {
        Ok(pb::SimType::Builtin) => Ok(SimType::Builtin),
        Ok(pb::SimType::Shieldhit) => Ok(SimType::Shieldhit),
        Ok(pb::SimType::Topas) => Ok(SimType::Topas),
        Ok(pb::SimType::Fluka) => Ok(SimType::Fluka),
        _ => Err(Status::invalid_argument(
            "sim_type must be builtin, shieldhit, topas or fluka",
        )),
    }
}

fn sim_type_to(s: SimType) -> pb::SimType {
    match s {
        SimType::Builtin => pb::SimType::Builtin,
        SimType::Shieldhit => pb::SimType::Shieldhit,
        SimType::Topas => pb::SimType::Topas,
        SimType::Fluka => pb::SimType::Fluka,
    }
}

fn job_state_to(s: JobState) -> pb::JobState {
    match s {
        JobState::Pending => pb::JobState::Pending,
        JobState::Running => pb::JobState::Running,
        JobState::Merging => pb::JobState::Merging,
        JobState::Completed => pb::JobState::Completed,
        JobState::Failed => pb::JobState::Failed,
        JobState::Canceled => pb::JobState::Canceled,
    }
}

fn job_state_from(v: i32) -> Result<Option<JobState>, Status> {
    Ok(match pb::JobState::try_from(v) {
        Ok(pb::JobState::Unspecified) => None,
        Ok(pb::JobState::Pending) => Some(JobState::Pending),
        Ok(pb::JobState::Running) => Some(JobState::Running),
        Ok(pb::JobState::Merging) => Some(JobState::Merging),
        Ok(pb::JobState::Completed) => Some(JobState::Completed),
        Ok(pb::JobState::Failed) => Some(JobState::Failed),
        Ok(pb::JobState::Canceled) => Some(JobState::Canceled),
        Err(_) => return Err(Status::invalid_argument("unknown state")),
    })
}

fn task_state_to(s: TaskState) -> pb::TaskState {
    match s {
        TaskState::Pending => pb::TaskState::Pending,
        TaskState::Running => pb::TaskState::Running,
        TaskState::Completed => pb::TaskState::Completed,
        TaskState::Failed => pb::TaskState::Failed,
        TaskState::Canceled => pb::TaskState::Canceled,
    }
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn simulation_pb(v: &SimulationView, simulated: i64) -> pb::Simulation {
    let s = &v.simulation;
    pb::Simulation {
        job_id: s.job_id.to_string(),
        title: s.title.clone(),
        sim_type: sim_type_to(s.sim_type) as i32,
        platform: match s.platform {
            Platform::Direct => pb::Platform::Direct,
            Platform::Batch => pb::Platform::Batch,
        } as i32,
        input_type: match s.input_type {
            InputType::Editor => pb::InputType::Editor,
            InputType::Files => pb::InputType::Files,
        } as i32,
        job_state: job_state_to(s.job_state) as i32,
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
        state: task_state_to(t.task_state) as i32,
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

/// The List cursor: order, state filter, and the last row's key and id, base64url-encoded
/// so clients treat it as opaque.
fn encode_token(order: i32, state: i32, cursor: Cursor) -> String {
    let key = cursor
        .key
        .map_or_else(|| "inf".to_string(), |k| k.timestamp_micros().to_string());
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("v1|{order}|{state}|{key}|{}", cursor.id))
}

fn decode_token(token: &str, order: i32, state: i32) -> Result<Cursor, Status> {
    let bad = || Status::invalid_argument("invalid page_token");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let parts: Vec<&str> = text.split('|').collect();
    let [version, o, s, key, id] = parts.as_slice() else {
        return Err(bad());
    };
    if *version != "v1" || o.parse::<i32>().ok() != Some(order) {
        return Err(Status::invalid_argument(
            "page_token belongs to a listing with another order",
        ));
    }
    if s.parse::<i32>().ok() != Some(state) {
        return Err(Status::invalid_argument(
            "page_token belongs to a listing with another state filter",
        ));
    }
    let key = if *key == "inf" {
        None
    } else {
        let micros = key.parse::<i64>().map_err(|_| bad())?;
        Some(chrono::DateTime::from_timestamp_micros(micros).ok_or_else(bad)?)
    };
    let id = id.parse::<i64>().map_err(|_| bad())?;
    Ok(Cursor { key, id })
}

#[tonic::async_trait]
impl SimulationService for SimulationSvc {
    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let caller = authenticate(&self.state, &request).await?;
        let req = request.into_inner();
        let limits = &self.state.limits;
        let title = crate::submit_fields::title(req.title)?;
        let sim_type = sim_type_from(req.sim_type)?;
        let (input_type, document) = match req.input {
            None => return Err(Status::invalid_argument("an input is required")),
            Some(pb::submit_request::Input::EditorJson(json)) => {
                if json.len() > limits.max_input_bytes {
                    return Err(Status::resource_exhausted(format!(
                        "the input is larger than {} bytes",
                        limits.max_input_bytes
                    )));
                }
                let value: serde_json::Value = serde_json::from_str(&json)
                    .map_err(|_| Status::invalid_argument("editor_json is not valid JSON"))?;
                (InputType::Editor, SimulationInput::Editor(value))
            }
            Some(pb::submit_request::Input::Files(files)) => {
                let files = files.files;
                if files.is_empty() {
                    return Err(Status::invalid_argument(
                        "files must hold at least one file",
                    ));
                }
                if files.len() > limits.max_input_files {
                    return Err(Status::resource_exhausted(format!(
                        "more than {} input files",
                        limits.max_input_files
                    )));
                }
                let total: usize = files.iter().map(|(k, v)| k.len() + v.len()).sum();
                if total > limits.max_input_bytes {
                    return Err(Status::resource_exhausted(format!(
                        "the input is larger than {} bytes",
                        limits.max_input_bytes
                    )));
                }
                for name in files.keys() {
                    sim_inputs::FileName::parse(name)
                        .map_err(|e| Status::invalid_argument(e.to_string()))?;
                }
                (
                    InputType::Files,
                    SimulationInput::Files(files.into_iter().collect()),
                )
            }
        };
        crate::submit_fields::counts(req.ntasks, req.primaries, limits)?;
        crate::input_check::check(sim_type, &document, req.ntasks, req.primaries)?;
        let mut c = conn(&self.state.pool).await?;
        let (platform, cluster_id, sbatch_options) = match req.platform {
            None | Some(pb::submit_request::Platform::Direct(_)) => {
                (Platform::Direct, None, Vec::new())
            }
            Some(pb::submit_request::Platform::Batch(b)) => {
                let cluster_name = crate::submit_fields::cluster(b.cluster)?;
                if b.sbatch_options.len() > MAX_SBATCH_OPTIONS {
                    return Err(Status::invalid_argument(format!(
                        "more than {MAX_SBATCH_OPTIONS} sbatch options"
                    )));
                }
                for o in &b.sbatch_options {
                    check_sbatch_option(o)?;
                }
                let cluster = match db::clusters::get(&mut c, &cluster_name).await {
                    Ok(cl) => cl,
                    Err(db::DbError::NotFound(_)) => {
                        return Err(Status::invalid_argument(format!(
                            "no cluster named {:?}",
                            cluster_name.as_str()
                        )))
                    }
                    Err(e) => return Err(db_status(e)),
                };
                (Platform::Batch, Some(cluster.id), b.sbatch_options)
            }
        };
        // One stored form for inputs, shared with the worker: db::inputs.
        let (blob, size) = document.encode().map_err(|e| {
            tracing::error!(error = %e, "cannot encode the input");
            Status::internal("internal error")
        })?;
        let new = db::simulations::NewSimulation {
            user_id: caller.user.id,
            title: title.into_inner(),
            platform,
            input_type,
            sim_type,
            ntasks: req.ntasks,
            primaries: req.primaries,
            cluster_id,
            sbatch_options,
            max_attempts: TASK_MAX_ATTEMPTS,
        };
        let sim = db::simulations::create_with_tasks(&mut c, &new, Some((&blob, size)))
            .await
            .map_err(db_status)?;
        tracing::info!(job_id = %sim.job_id, user = %caller.user.username, ntasks = sim.ntasks, "submitted");
        Ok(Response::new(pb::SubmitResponse {
            job_id: sim.job_id.to_string(),
        }))
    }

    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::SimulationStatus>, Status> {
        // Get is the hot path of every polling client: a cached caller and answer cost no
        // database work, and otherwise the whole call uses one pool checkout.
        let mut held = None;
        let caller = match crate::auth::cached_caller(&self.state, &request)? {
            Some(caller) => caller,
            None => {
                let mut c = conn(&self.state.pool).await?;
                let caller = crate::auth::authenticate_on(&self.state, &mut c, &request).await?;
                held = Some(c);
                caller
            }
        };
        let job_id = parse_job_id(&request.get_ref().job_id)?;
        if let Some(status) = self.state.statuses.get(job_id, &caller) {
            return Ok(Response::new(status));
        }
        let mut c = match held {
            Some(c) => c,
            None => conn(&self.state.pool).await?,
        };
        let ticket = self.state.statuses.ticket();
        let (status, key) = status_on(&mut c, &caller, job_id).await?;
        self.state.statuses.insert(ticket, key, status.clone());
        Ok(Response::new(status))
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let caller = authenticate(&self.state, &request).await?;
        let req = request.into_inner();
        let state = job_state_from(req.state)?;
        let (order, ascending) = match pb::ListOrder::try_from(req.order) {
            Ok(pb::ListOrder::Unspecified | pb::ListOrder::StartTimeDesc) => {
                (db::api::ListOrder::StartTime, false)
            }
            Ok(pb::ListOrder::StartTimeAsc) => (db::api::ListOrder::StartTime, true),
            Ok(pb::ListOrder::EndTimeDesc) => (db::api::ListOrder::EndTime, false),
            Ok(pb::ListOrder::EndTimeAsc) => (db::api::ListOrder::EndTime, true),
            Err(_) => return Err(Status::invalid_argument("unknown order")),
        };
        let page_size = match req.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let after = if req.page_token.is_empty() {
            None
        } else {
            Some(decode_token(&req.page_token, req.order, req.state)?)
        };
        let mut c = conn(&self.state.pool).await?;
        // One more row than asked tells whether another page follows.
        let (mut rows, total) = db::api::list_page(
            &mut c,
            &PageQuery {
                owner: caller.owner_filter(),
                state,
                order,
                ascending,
                after,
                limit: i64::from(page_size) + 1,
            },
        )
        .await
        .map_err(db_status)?;
        let more = rows.len() > page_size as usize;
        rows.truncate(page_size as usize);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => {
                let key = match order {
                    db::api::ListOrder::StartTime => Some(last.simulation.start_time),
                    db::api::ListOrder::EndTime => last.simulation.end_time,
                };
                encode_token(
                    req.order,
                    req.state,
                    Cursor {
                        key,
                        id: last.simulation.id,
                    },
                )
            }
            _ => String::new(),
        };
        let ids: Vec<i64> = rows.iter().map(|v| v.simulation.id).collect();
        let simulated: HashMap<i64, i64> = db::simulations::task_totals(&mut c, &ids)
            .await
            .map_err(db_status)?
            .into_iter()
            .map(|(id, t)| (id, t.simulated_primaries))
            .collect();
        Ok(Response::new(pb::ListResponse {
            simulations: rows
                .iter()
                .map(|v| simulation_pb(v, simulated.get(&v.simulation.id).copied().unwrap_or(0)))
                .collect(),
            next_page_token,
            total_count: total,
        }))
    }

    type WatchStream = BoxStream<pb::SimulationStatus>;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let caller = authenticate(&self.state, &request).await?;
        let job_id = parse_job_id(&request.get_ref().job_id)?;
        // Subscribe before the first read, so no change between the two is missed.
        let rx = self.state.events.subscribe(&self.state.pool);
        let (first, id) = self.status(&caller, job_id).await?;
        struct W {
            svc: SimulationSvc,
            caller: Caller,
            job_id: Uuid,
            id: i64,
            rx: tokio::sync::broadcast::Receiver<i64>,
            last: Option<pb::SimulationStatus>,
            pending: Option<pb::SimulationStatus>,
            done: bool,
        }
        let w = W {
            svc: self.clone(),
            caller,
            job_id,
            id,
            rx,
            last: None,
            pending: Some(first),
            done: false,
        };
        // One message per change, ending after a terminal state. When the client goes
        // away tonic drops the stream, and with it the subscription.
        let stream = futures_util::stream::unfold(w, |mut w| async move {
            if w.done {
                return None;
            }
            loop {
                let next = match w.pending.take() {
                    Some(s) => Ok(s),
                    None => {
                        if !crate::watch::changed(&mut w.rx, w.id).await {
                            return None;
                        }
                        w.svc.status(&w.caller, w.job_id).await.map(|(s, _)| s)
                    }
                };
                match next {
                    Ok(s) if w.last.as_ref() == Some(&s) => continue,
                    Ok(s) => {
                        w.done = is_terminal(&s);
                        w.last = Some(s.clone());
                        return Some((Ok(s), w));
                    }
                    Err(e) => {
                        // Deleted meanwhile, or the database is gone: end the stream.
                        w.done = true;
                        return Some((Err(e), w));
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn cancel(
        &self,
        request: Request<pb::CancelRequest>,
    ) -> Result<Response<pb::CancelResponse>, Status> {
        let caller = authenticate(&self.state, &request).await?;
        let view = self.visible(&caller, &request.get_ref().job_id).await?;
        let mut c = conn(&self.state.pool).await?;
        match db::api::cancel(&mut c, view.simulation.id)
            .await
            .map_err(db_status)?
        {
            Some(n) => {
                self.state.statuses.invalidate(view.simulation.id);
                tracing::info!(job_id = %view.simulation.job_id, user = %caller.user.username, "canceled");
                Ok(Response::new(pb::CancelResponse {
                    job_state: pb::JobState::Canceled as i32,
                    tasks_canceled: i32::try_from(n).unwrap_or(i32::MAX),
                }))
            }
            None if view.simulation.job_state == JobState::Merging => {
                Err(Status::failed_precondition(
                    "every task has ended and the results are being merged: the simulation \
                     will complete",
                ))
            }
            None => Err(Status::failed_precondition(
                "the simulation has already finished",
            )),
        }
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let caller = authenticate(&self.state, &request).await?;
        let view = self.visible(&caller, &request.get_ref().job_id).await?;
        let mut c = conn(&self.state.pool).await?;
        if db::api::delete_if_terminal(&mut c, view.simulation.id)
            .await
            .map_err(db_status)?
        {
            self.state.statuses.invalidate(view.simulation.id);
            tracing::info!(job_id = %view.simulation.job_id, user = %caller.user.username, "deleted");
            Ok(Response::new(pb::DeleteResponse {}))
        } else {
            Err(Status::failed_precondition(
                "the simulation is still pending, running or merging; cancel it first",
            ))
        }
    }

    async fn get_input(
        &self,
        request: Request<pb::GetInputRequest>,
    ) -> Result<Response<pb::GetInputResponse>, Status> {
        let caller = authenticate(&self.state, &request).await?;
        let view = self.visible(&caller, &request.get_ref().job_id).await?;
        let mut c = conn(&self.state.pool).await?;
        let stored = db::inputs::get(&mut c, view.simulation.id)
            .await
            .map_err(|e| stored_data_status(e, "input", view.simulation.job_id))?
            .ok_or_else(|| Status::not_found("the simulation has no stored input"))?;
        let (input_type, input) = match stored {
            SimulationInput::Editor(value) => (
                pb::InputType::Editor,
                pb::get_input_response::Input::EditorJson(value.to_string()),
            ),
            SimulationInput::Files(files) => (
                pb::InputType::Files,
                pb::get_input_response::Input::Files(pb::InputFiles {
                    files: files.into_iter().collect(),
                }),
            ),
        };
        Ok(Response::new(pb::GetInputResponse {
            input_type: input_type as i32,
            input: Some(input),
        }))
    }

    async fn list_estimators(
        &self,
        request: Request<pb::ListEstimatorsRequest>,
    ) -> Result<Response<pb::ListEstimatorsResponse>, Status> {
        let caller = authenticate(&self.state, &request).await?;
        let view = self.visible(&caller, &request.get_ref().job_id).await?;
        let mut c = conn(&self.state.pool).await?;
        let (pages, partial) = db::page_info::list(&mut c, view.simulation.id)
            .await
            .map_err(db_status)?;
        Ok(Response::new(pb::ListEstimatorsResponse {
            estimators: results::estimators_pb(&pages),
            partial,
        }))
    }

    type GetResultsStream = BoxStream<pb::ResultsChunk>;

    async fn get_results(
        &self,
        request: Request<pb::GetResultsRequest>,
    ) -> Result<Response<Self::GetResultsStream>, Status> {
        let caller = authenticate(&self.state, &request).await?;
        let req = request.into_inner();
        let selection =
            results::PageSelection::parse(&req.pages).map_err(Status::invalid_argument)?;
        results::check_estimator_names(&req.estimators)?;
        let view = self.visible(&caller, &req.job_id).await?;
        let mut c = conn(&self.state.pool).await?;
        let pages = db::results::read_all(&mut c, view.simulation.id)
            .await
            .map_err(|e| stored_data_status(e, "results", view.simulation.job_id))?;
        drop(c);
        if pages.is_empty() {
            return Err(Status::failed_precondition(
                match view.simulation.job_state {
                    JobState::Pending | JobState::Running | JobState::Merging => {
                        "no results yet: no task has finished"
                    }
                    _ => "the simulation has no results",
                },
            ));
        }
        let chosen = results::select(pages, &req.estimators, &selection)?;
        let stream = futures_util::stream::iter(results::chunks(chosen).map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_logs(
        &self,
        request: Request<pb::GetLogsRequest>,
    ) -> Result<Response<pb::GetLogsResponse>, Status> {
        let caller = authenticate(&self.state, &request).await?;
        let view = self.visible(&caller, &request.get_ref().job_id).await?;
        let mut c = conn(&self.state.pool).await?;
        let logs = db::logs::list(&mut c, view.simulation.id)
            .await
            .map_err(|e| stored_data_status(e, "logs", view.simulation.job_id))?;
        Ok(Response::new(pb::GetLogsResponse {
            logs: logs
                .into_iter()
                .map(|l| pb::LogFile {
                    name: l.name,
                    task_index: l.task_index,
                    content: String::from_utf8_lossy(&l.content).into_owned(),
                })
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn page_token_round_trips_and_checks_the_listing() {
        let c = Cursor {
            key: chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456),
            id: 42,
        };
        let t = encode_token(2, 1, c);
        assert_eq!(decode_token(&t, 2, 1).unwrap(), c);
        assert!(decode_token(&t, 1, 1).is_err());
        assert!(decode_token(&t, 2, 0).is_err());
        assert!(decode_token("garbage!", 2, 1).is_err());
        let inf = encode_token(3, 0, Cursor { key: None, id: 7 });
        assert_eq!(decode_token(&inf, 3, 0).unwrap().key, None);
    }
}
