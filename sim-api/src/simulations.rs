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
use crate::status::{is_terminal, parse_job_id};
use crate::submission::Submission;
use crate::AppState;
use db::enums::JobState;
use db::inputs::SimulationInput;
use db::simulation_views::{PooledConn, SimulationView};
use proto::v1 as pb;
use proto::v1::simulation_service_server::SimulationService;
use std::pin::Pin;
use tonic::{Request, Response, Status};
use uuid::Uuid;

pub use crate::listing::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
pub use crate::submission::{MAX_SBATCH_OPTIONS, TASK_MAX_ATTEMPTS};

pub use crate::text::MAX_TITLE_CHARS;

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
        db::simulation_views::get_visible(&mut c, job_id, caller.owner_filter())
            .await
            .map_err(db_status)
    }

    /// Authenticates `request`, finds the simulation `job_id` that its caller may see, then
    /// takes a connection for the rest of the call.
    async fn open<T: Sync>(
        &self,
        request: &Request<T>,
        job_id: &str,
    ) -> Result<(Caller, SimulationView, PooledConn<'_>), Status> {
        let caller = authenticate(&self.state, request).await?;
        let view = self.visible(&caller, job_id).await?;
        let c = conn(&self.state.pool).await?;
        Ok((caller, view, c))
    }

    /// The status `Get` and `Watch` return, and the simulation's internal id.
    async fn status(
        &self,
        caller: &Caller,
        job_id: Uuid,
    ) -> Result<(pb::SimulationStatus, i64), Status> {
        let mut c = conn(&self.state.pool).await?;
        let (status, key) = crate::status::read(&mut c, caller, job_id).await?;
        Ok((status, key.simulation_id))
    }
}

#[tonic::async_trait]
impl SimulationService for SimulationSvc {
    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let caller = authenticate(&self.state, &request).await?;
        let submission = Submission::try_from((request.into_inner(), &*self.state.limits))?;
        let mut c = conn(&self.state.pool).await?;
        let sim = submission.store(&mut c, caller.user.id).await?;
        // The worker's task span carries the same id (see `rpc_span`).
        tracing::Span::current().record("simulation", sim.id);
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
        let (status, key) = crate::status::read(&mut c, &caller, job_id).await?;
        self.state.statuses.insert(ticket, key, status.clone());
        Ok(Response::new(status))
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let caller = authenticate(&self.state, &request).await?;
        let query = crate::listing::Query::try_from(request.get_ref())?;
        let mut c = conn(&self.state.pool).await?;
        let page = crate::listing::page(&mut c, &caller, query).await?;
        Ok(Response::new(page))
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
            stopping: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
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
            stopping: Box::pin(self.state.events.stopping()),
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
                        tokio::select! {
                            open = crate::watch::changed(&mut w.rx, w.id) => if !open {
                                return None;
                            },
                            () = &mut w.stopping => {
                                w.done = true;
                                let why = "the server is shutting down: watch again";
                                return Some((Err(Status::unavailable(why)), w));
                            }
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
        let (caller, view, mut c) = self.open(&request, &request.get_ref().job_id).await?;
        match db::simulation_views::cancel(&mut c, view.simulation.id)
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
        let (caller, view, mut c) = self.open(&request, &request.get_ref().job_id).await?;
        if db::simulation_views::delete_if_terminal(&mut c, view.simulation.id)
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
        let (_, view, mut c) = self.open(&request, &request.get_ref().job_id).await?;
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
        let (_, view, mut c) = self.open(&request, &request.get_ref().job_id).await?;
        let (pages, partial, merged) = db::page_info::list_with_merged(&mut c, view.simulation.id)
            .await
            .map_err(db_status)?;
        Ok(Response::new(pb::ListEstimatorsResponse {
            estimators: results::estimators_pb(&pages),
            partial,
            merged_primaries: merged.primaries,
            merged_tasks: merged.tasks,
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
        let stream = futures_util::stream::iter(results::stream(chosen)?);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_logs(
        &self,
        request: Request<pb::GetLogsRequest>,
    ) -> Result<Response<pb::GetLogsResponse>, Status> {
        let (_, view, mut c) = self.open(&request, &request.get_ref().job_id).await?;
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
