//! Submit's request, parsed at the edge: [`Submission`] is a `SubmitRequest` whose every
//! field has been checked ([`crate::submit_fields`], [`crate::text`]) and whose input passed
//! [`crate::input_check`]; [`Submission::store`] names the cluster and queues it.
//!
//! Codes: a bad field is `INVALID_ARGUMENT`; an input over `--max-input-bytes` or more files
//! than `--max-input-files` is `RESOURCE_EXHAUSTED`.

use crate::error::{db_status, internal, unknown_name};
use crate::submit_fields;
use crate::text::StoredText;
use crate::Limits;
use db::enums::{InputType, Platform, SimType};
use db::inputs::SimulationInput;
use proto::v1 as pb;
use tonic::Status;

/// Most sbatch options per submission.
pub const MAX_SBATCH_OPTIONS: usize = 32;
/// Attempts each task gets.
pub const TASK_MAX_ATTEMPTS: i32 = 3;
/// Longest sbatch option, in bytes.
pub const MAX_SBATCH_OPTION_BYTES: usize = slurm::options::MAX_OPTION_LEN;

/// Where a submission runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// On the workers.
    Direct,
    /// Through a batch cluster.
    Batch {
        /// The cluster's name (not yet looked up).
        cluster: StoredText,
        /// Options passed to `sbatch`, each checked.
        sbatch_options: Vec<String>,
    },
}

/// A checked `SubmitRequest`.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The title.
    pub title: StoredText,
    /// The simulator.
    pub sim_type: SimType,
    /// The input, checked for `sim_type`.
    pub input: SimulationInput,
    /// Tasks, within `1..=--max-ntasks`.
    pub ntasks: i32,
    /// Primaries in all, within `ntasks..=--max-primaries`.
    pub primaries: i64,
    /// Where it runs.
    pub target: Target,
}

/// Parses a request against the server's limits; the checks run in the order of the fields
/// (title, simulator, input, counts, the input itself, platform), and the first failure is
/// the answer.
impl TryFrom<(pb::SubmitRequest, &Limits)> for Submission {
    type Error = Status;

    fn try_from((req, limits): (pb::SubmitRequest, &Limits)) -> Result<Self, Status> {
        let title = submit_fields::title(req.title)?;
        let sim_type = pb::SimType::try_from(req.sim_type)
            .ok()
            .and_then(|s| SimType::try_from(s).ok())
            .ok_or_else(|| {
                Status::invalid_argument("sim_type must be builtin, shieldhit, topas or fluka")
            })?;
        let input = match req.input {
            None => return Err(Status::invalid_argument("an input is required")),
            Some(pb::submit_request::Input::EditorJson(json)) => editor_input(&json, limits)?,
            Some(pb::submit_request::Input::Files(files)) => file_input(files.files, limits)?,
        };
        submit_fields::counts(req.ntasks, req.primaries, limits)?;
        crate::input_check::check(sim_type, &input, req.ntasks, req.primaries)?;
        let target = match req.platform {
            None | Some(pb::submit_request::Platform::Direct(_)) => Target::Direct,
            Some(pb::submit_request::Platform::Batch(b)) => batch_target(b)?,
        };
        Ok(Self {
            title,
            sim_type,
            input,
            ntasks: req.ntasks,
            primaries: req.primaries,
            target,
        })
    }
}

fn too_large(limits: &Limits) -> Status {
    Status::resource_exhausted(format!(
        "the input is larger than {} bytes",
        limits.max_input_bytes
    ))
}

fn editor_input(json: &str, limits: &Limits) -> Result<SimulationInput, Status> {
    if json.len() > limits.max_input_bytes {
        return Err(too_large(limits));
    }
    let value = sim_inputs::editor_json::parse(json)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok(SimulationInput::Editor(value))
}

fn file_input(
    files: std::collections::HashMap<String, String>,
    limits: &Limits,
) -> Result<SimulationInput, Status> {
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
        return Err(too_large(limits));
    }
    for name in files.keys() {
        sim_inputs::FileName::parse(name).map_err(|e| Status::invalid_argument(e.to_string()))?;
    }
    Ok(SimulationInput::Files(files.into_iter().collect()))
}

fn batch_target(b: pb::BatchPlatform) -> Result<Target, Status> {
    let cluster = submit_fields::cluster(b.cluster)?;
    if b.sbatch_options.len() > MAX_SBATCH_OPTIONS {
        return Err(Status::invalid_argument(format!(
            "more than {MAX_SBATCH_OPTIONS} sbatch options"
        )));
    }
    // The allow-list of option names and the value alphabet live in `slurm::options`, which
    // the batch component checks again before it runs `sbatch`.
    slurm::options::parse_all(&b.sbatch_options)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok(Target::Batch {
        cluster,
        sbatch_options: b.sbatch_options,
    })
}

impl Submission {
    /// Looks up the cluster (an unknown one, or one whose `max_array_size` is below `ntasks`,
    /// is `INVALID_ARGUMENT`) and stores the simulation, its input and its tasks for `user_id`.
    pub async fn store(
        self,
        c: &mut db::Conn,
        user_id: i64,
    ) -> Result<db::models::Simulation, Status> {
        let (platform, cluster_id, sbatch_options) = match self.target {
            Target::Direct => (Platform::Direct, None, Vec::new()),
            Target::Batch {
                cluster,
                sbatch_options,
            } => {
                let found = db::clusters::get(c, &cluster).await.map_err(|e| {
                    unknown_name(e, || format!("no cluster named {:?}", cluster.as_str()))
                })?;
                // One task is one element of the cluster's array job.
                if self.ntasks > found.max_array_size {
                    return Err(Status::invalid_argument(format!(
                        "ntasks {} is more than cluster {:?} allows (max_array_size {})",
                        self.ntasks, found.name, found.max_array_size
                    )));
                }
                (Platform::Batch, Some(found.id), sbatch_options)
            }
        };
        let input_type = match self.input {
            SimulationInput::Editor(_) => InputType::Editor,
            SimulationInput::Files(_) => InputType::Files,
        };
        // One stored form for inputs, shared with the worker: db::inputs.
        let (blob, size) = self
            .input
            .encode()
            .map_err(|e| internal("cannot encode the input", &e))?;
        let new = db::simulations::NewSimulation {
            user_id,
            title: self.title.into_inner(),
            platform,
            input_type,
            sim_type: self.sim_type,
            ntasks: self.ntasks,
            primaries: self.primaries,
            cluster_id,
            sbatch_options,
            max_attempts: TASK_MAX_ATTEMPTS,
        };
        db::simulations::create_with_tasks(c, &new, Some((&blob, size)))
            .await
            .map_err(db_status)
    }
}
