//! `worker element`: one SLURM array element, run on a cluster node without the database.
//!
//! It reads the job directory that the batch component staged ([`slurm::job_dir`]): the
//! manifest, and the input under `input/`. It runs the element's task through the same code
//! as a direct task ([`crate::simulators::run_input`], so the same seeds, the same pymchelper
//! rules and the same primaries count), with progress written to `element-<i>/progress`. It
//! ends by writing `element-<i>/result` ([`super::result_file`], written to a temporary name
//! and renamed, so that a reader never sees half of it) or `element-<i>/error`. What the
//! simulator printed goes to stdout and stderr, which SLURM keeps in `element-<i>/slurm.out`.

use super::result_file::ElementResult;
use crate::execute::{Outcome, Stop, TaskContext};
use crate::simulators::{self, outcome_of, run_input};
use db::enums::{InputType, SimType};
use db::inputs::SimulationInput;
use db::queue::ClaimedTask;
use slurm::job_dir::{self, Manifest};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::sync::watch;

/// Why an element could not run its task at all (its exit code is then 2).
#[derive(Debug, thiserror::Error)]
pub enum ElementError {
    /// A file of the job directory cannot be read or written.
    #[error("{what} ({path}): {source}")]
    Io {
        /// What the file is.
        what: &'static str,
        /// Its path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The manifest or the input is not what the batch component writes.
    #[error("{0}")]
    Invalid(String),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ElementError + 'a {
    move |source| ElementError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// How an element ended: its process exit code, and the one line for `error` (none on
/// success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementExit {
    /// 0: results written; 1: the task failed; 2: the element could not run it; 143: stopped
    /// by SIGTERM (SLURM's time limit or `scancel`).
    pub code: u8,
    /// Why it failed.
    pub error: Option<String>,
}

/// Runs element `index` of the job directory `job_dir`: the task, then its result or error
/// file. `settings` holds the simulator programs on this node; its work root is replaced by
/// the element's own directory. A send on `stop` (SIGTERM) stops the simulator.
pub async fn run(
    settings: &simulators::Settings,
    job_dir: &Path,
    index: i32,
    stop: watch::Receiver<Stop>,
) -> ElementExit {
    // element.sh passes `--job-dir .`: programs run in their own work directories, so every
    // path handed to them must be absolute.
    let job_dir = &std::path::absolute(job_dir).unwrap_or_else(|_| job_dir.to_path_buf());
    let dir = job_dir.join(format!("element-{index}"));
    let exit = match run_task(settings, job_dir, &dir, index, stop).await {
        Ok(exit) => exit,
        Err(e) => ElementExit {
            code: 2,
            error: Some(format!("the element cannot run: {e}")),
        },
    };
    if let Some(why) = &exit.error {
        eprintln!("element {index}: {why}");
        let line = format!("{}\n", why.replace('\n', " "));
        if let Err(e) = write_atomically(&dir.join(job_dir::ERROR), line.as_bytes()) {
            eprintln!("element {index}: cannot write its error file: {e}");
        }
    }
    exit
}

async fn run_task(
    settings: &simulators::Settings,
    job_dir: &Path,
    dir: &Path,
    index: i32,
    stop: watch::Receiver<Stop>,
) -> Result<ElementExit, ElementError> {
    std::fs::create_dir_all(dir).map_err(io("the element directory", dir))?;
    let manifest_path = job_dir.join(job_dir::MANIFEST);
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(&manifest_path).map_err(io("the manifest", &manifest_path))?,
    )
    .map_err(|e| ElementError::Invalid(format!("the manifest is not valid: {e}")))?;
    let task = claimed_task(&manifest, index)?;
    let input = read_input(&job_dir.join(job_dir::INPUT_DIR), task.input_type)?;
    let mut settings = settings.clone();
    settings.work_root = dir.to_path_buf();
    let ctx = TaskContext::offline(dir.join(job_dir::PROGRESS), stop);
    let (result, output) = run_input(&settings, &task, &input, ctx).await;
    print!("{}", output.stdout.text());
    eprint!("{}", output.stderr.text());
    let _ = std::io::stdout().flush();
    Ok(match outcome_of(result, &task) {
        Outcome::Done {
            simulated_primaries,
            pages,
        } => {
            let bytes = ElementResult {
                primaries: simulated_primaries,
                pages,
            }
            .to_bytes()
            .map_err(|e| ElementError::Invalid(format!("results cannot be encoded: {e}")))?;
            let path = dir.join(job_dir::RESULT);
            write_atomically(&path, &bytes).map_err(io("the result file", &path))?;
            println!("element {index}: {simulated_primaries} primaries, results written");
            ElementExit {
                code: 0,
                error: None,
            }
        }
        Outcome::Stopped(_) => ElementExit {
            code: 143,
            error: Some("stopped by SIGTERM (the time limit, or scancel)".into()),
        },
        failed => ElementExit {
            code: 1,
            error: Some(failed.to_string()),
        },
    })
}

/// The task element `index` runs, as a direct worker would have claimed it (attempt 1).
fn claimed_task(manifest: &Manifest, index: i32) -> Result<ClaimedTask, ElementError> {
    let task = manifest.task(index).ok_or_else(|| {
        ElementError::Invalid(format!("the manifest has no task with index {index}"))
    })?;
    let sim_type: SimType = manifest
        .sim_type
        .parse()
        .map_err(|e: db::enums::UnknownVariant| ElementError::Invalid(e.to_string()))?;
    let input_type: InputType = manifest
        .input_type
        .parse()
        .map_err(|e: db::enums::UnknownVariant| ElementError::Invalid(e.to_string()))?;
    Ok(ClaimedTask {
        id: task.task_id,
        simulation_id: manifest.simulation_id,
        task_index: task.task_index,
        attempt: 1,
        max_attempts: 1,
        requested_primaries: task.requested_primaries,
        sim_type,
        input_type,
        lease_expires_at: chrono::Utc::now(),
        started_simulation: false,
    })
}

/// The staged input: `input/editor.json`, or every file under `input/` by name.
fn read_input(input_dir: &Path, input_type: InputType) -> Result<SimulationInput, ElementError> {
    if input_type == InputType::Editor {
        let path = input_dir.join(job_dir::EDITOR_INPUT);
        let bytes = std::fs::read(&path).map_err(io("the editor input", &path))?;
        let json = serde_json::from_slice(&bytes)
            .map_err(|e| ElementError::Invalid(format!("the editor input is not JSON: {e}")))?;
        return Ok(SimulationInput::Editor(json));
    }
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(input_dir).map_err(io("the input directory", input_dir))? {
        let entry = entry.map_err(io("the input directory", input_dir))?;
        let path: PathBuf = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).map_err(io("an input file", &path))?;
        files.insert(name, text);
    }
    Ok(SimulationInput::Files(files))
}

/// Writes `bytes` to `path` through a temporary name in the same directory, so that a reader
/// sees the old file or the whole new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
