//! The simulators a task can run: dispatch on `sim_type`, the input, the work directory, the
//! external programs' shared skeleton ([`external`]) with the child process, progress and
//! cancellation ([`process`]), the task's logs, and the classification of failures
//! ([`fault`]): input faults, machine faults, transient ones.

mod builtin_task;
pub mod external;
pub mod fault;
pub mod fluka;
pub mod process;
pub mod pymchelper;
pub mod shieldhit;
pub mod topas;
pub mod topas_csv;
pub mod workdir;

use crate::execute::{Outcome, Stop, TaskContext, TaskHandler};
use db::enums::SimType;
use db::inputs::SimulationInput;
use db::queue::ClaimedTask;
use db::Pool;
pub use fault::{MachineFault, SimulatorError};
pub use process::Output;
use process::{Stream, Tail};
use std::path::{Path, PathBuf};

/// Where the external programs are, and where tasks work.
#[derive(Debug, Clone)]
pub struct Settings {
    /// SHIELD-HIT12A executable.
    pub shieldhit: Option<PathBuf>,
    /// pymchelper's `convertmc`.
    pub convertmc: Option<PathBuf>,
    /// The `topas` executable.
    pub topas: Option<PathBuf>,
    /// FLUKA's `rfluka` script.
    pub fluka: Option<PathBuf>,
    /// Root of the per-task work directories.
    pub work_root: PathBuf,
    /// Keep work directories after the run (for debugging).
    pub keep_workdirs: bool,
}

impl Settings {
    /// No simulator program configured, `convertmc` looked up on `PATH`, work directories
    /// under `work_root`, removed after each run.
    pub fn new(work_root: PathBuf) -> Self {
        Self {
            shieldhit: None,
            convertmc: Some(PathBuf::from("convertmc")),
            topas: None,
            fluka: None,
            work_root,
            keep_workdirs: false,
        }
    }

    /// The simulators whose tasks a worker with these settings runs, and so claims: the
    /// builtin engine always; SHIELD-HIT12A, FLUKA and TOPAS when their program is
    /// configured (`--shieldhit`, `--fluka`, `--topas`), and for SHIELD-HIT12A and FLUKA,
    /// whose results pymchelper converts, `convertmc` too. (The `worker` binary always has
    /// one: `--convertmc` defaults to `convertmc` on `PATH`.) Whether a configured program
    /// really runs here is found when it is started: a missing one is a machine fault, and
    /// the task goes to another worker without using an attempt.
    pub fn runnable(&self) -> Vec<SimType> {
        let configured = |p: &external::Program| {
            (p.path)(self).is_some() && (!p.convertmc || self.convertmc.is_some())
        };
        let mut types = vec![SimType::Builtin];
        for (sim_type, program) in [
            (
                SimType::Shieldhit,
                &<shieldhit::Shieldhit as external::External>::PROGRAM,
            ),
            (
                SimType::Fluka,
                &<fluka::Fluka as external::External>::PROGRAM,
            ),
            (
                SimType::Topas,
                &<topas::Topas as external::External>::PROGRAM,
            ),
        ] {
            if configured(program) {
                types.push(sim_type);
            }
        }
        types
    }
}

/// The task handler of the real simulators: runs the simulator the task's simulation names.
#[derive(Debug, Clone)]
pub struct Simulators {
    settings: Settings,
}

impl Simulators {
    /// The simulators with these programs and directories.
    pub fn new(settings: Settings) -> Self {
        Self { settings }
    }
}

impl TaskHandler for Simulators {
    async fn run(&self, task: &ClaimedTask, ctx: TaskContext) -> Outcome {
        run(&self.settings, task, ctx).await
    }

    /// Those configured in its settings ([`Settings::runnable`]).
    fn sim_types(&self) -> Vec<SimType> {
        self.settings.runnable()
    }
}

/// What a run produced: its pages, and the primaries the program reports it simulated.
#[derive(Debug, Default)]
pub struct TaskResults {
    /// Every page of every estimator.
    pub pages: Vec<db::results::TaskPage>,
    /// Primaries (histories) the program really simulated, from its own output
    /// (SHIELD-HIT12A's and FLUKA's `number_of_primaries`, TOPAS's "Total number of
    /// histories"); `None` when it does not say, and then the requested count is used. The
    /// task's merge weight and the count it shows.
    pub primaries: Option<i64>,
}

/// One run of a task: what it needs and what it collects (logs).
pub struct Run<'a> {
    /// The claimed task.
    pub task: &'a ClaimedTask,
    /// Program paths and directories.
    pub settings: &'a Settings,
    ctx: TaskContext,
    output: Output,
    /// Whether this run created a work directory (then an input fault is checked against the
    /// work root's health, see [`recheck_input_fault`]).
    used_workdir: bool,
}

impl Run<'_> {
    /// A fresh private work directory for this attempt. Failing to make it is this machine's
    /// fault.
    pub fn workdir(&mut self) -> Result<workdir::WorkDir, SimulatorError> {
        self.used_workdir = true;
        workdir::WorkDir::create(
            &self.settings.work_root,
            self.task.simulation_id,
            self.task.task_index,
            self.task.attempt,
            self.settings.keep_workdirs,
        )
        .map_err(|e| SimulatorError::from_io(&e, "cannot create the work directory"))
    }

    /// Records progress (at most once a second); false when the lease is gone.
    pub async fn report(&mut self, done: i64, eta_s: Option<i32>) -> bool {
        self.ctx.report(done, eta_s).await
    }

    /// Resolves when the run is told to stop, with the reason.
    pub async fn stopped(&mut self) -> Stop {
        self.ctx.stopped().await
    }

    /// Adds a line to the task's stdout log (for simulators that run in-process).
    pub fn log(&mut self, line: String) {
        self.output.push(Stream::Stdout, line);
    }

    /// The last line the program wrote to stderr (or stdout).
    pub fn last_error_line(&self) -> Option<&str> {
        self.output.last_error_line()
    }

    /// The program path configured for `what` (e.g. `"FLUKA"`, set by `flag`), or an input
    /// fault saying it is not configured. A worker does not claim tasks of a simulator it
    /// lacks ([`Settings::runnable`]), so this is only a guard (a task run by a handler with
    /// other settings than those it claimed with, or `worker element` on a node without the
    /// program); a configured program that is missing is a machine fault, found when it is
    /// started.
    pub fn configured(
        path: Option<&PathBuf>,
        what: &str,
        flag: &str,
    ) -> Result<PathBuf, SimulatorError> {
        path.cloned().ok_or_else(|| {
            SimulatorError::fatal(format!(
                "{what} is not configured on this worker (set {flag} PATH)"
            ))
        })
    }
}

/// Runs a claimed task with the simulator its simulation names, stores its logs, and says
/// how it ended.
async fn run(settings: &Settings, task: &ClaimedTask, ctx: TaskContext) -> Outcome {
    let (Some(pool), Some(expiry)) = (ctx.pool().cloned(), ctx.lease_expiry().cloned()) else {
        return outcome_of(
            Err(SimulatorError::fatal("a queued task needs the database")),
            task,
        );
    };
    let input = match load_input(&pool, task.simulation_id).await {
        Ok(i) => i,
        Err(e) => return outcome_of(Err(e), task),
    };
    let (result, output) = run_input(settings, task, &input, ctx).await;
    store_logs(&pool, task, &expiry, &output.stdout, &output.stderr).await;
    outcome_of(result, task)
}

/// Runs `task` on `input` with the simulator its `sim_type` names, and returns the result
/// with what the program printed (the ends of its stdout and stderr). The queue's handler
/// and `worker element` (an offline SLURM array element) both run tasks through here.
pub async fn run_input(
    settings: &Settings,
    task: &ClaimedTask,
    input: &SimulationInput,
    ctx: TaskContext,
) -> (Result<TaskResults, SimulatorError>, Output) {
    let mut run = Run {
        task,
        settings,
        ctx,
        output: Output::default(),
        used_workdir: false,
    };
    let result = match (task.sim_type, input) {
        (SimType::Shieldhit, SimulationInput::Files(files)) => {
            external::run::<shieldhit::Shieldhit>(&mut run, files).await
        }
        (SimType::Shieldhit, SimulationInput::Editor(_)) => Err(SimulatorError::fatal(
            "SHIELD-HIT12A needs input files; editor projects are not converted on this worker",
        )),
        (SimType::Builtin, SimulationInput::Editor(json)) => {
            builtin_task::run(&mut run, json).await
        }
        (SimType::Builtin, SimulationInput::Files(_)) => Err(SimulatorError::fatal(
            "the builtin simulator takes editor JSON, not input files",
        )),
        (SimType::Topas, SimulationInput::Files(files)) => {
            external::run::<topas::Topas>(&mut run, files).await
        }
        (SimType::Topas, SimulationInput::Editor(_)) => Err(SimulatorError::fatal(
            "TOPAS needs parameter files; editor projects are not converted on this worker",
        )),
        (SimType::Fluka, SimulationInput::Files(files)) => {
            external::run::<fluka::Fluka>(&mut run, files).await
        }
        (SimType::Fluka, SimulationInput::Editor(_)) => Err(SimulatorError::fatal(
            "FLUKA needs input files; editor projects are not converted on this worker",
        )),
    };
    let result = match result {
        Err(SimulatorError::Input(message)) if run.used_workdir => {
            recheck_input_fault(&settings.work_root, message).await
        }
        other => other,
    };
    (result, run.output)
}

/// The outcome a run's result makes for the queue: the primaries the program reports (or
/// the requested count when it says none), or the failure's class.
pub fn outcome_of(result: Result<TaskResults, SimulatorError>, task: &ClaimedTask) -> Outcome {
    match result {
        Ok(TaskResults { pages, primaries }) => Outcome::Done {
            simulated_primaries: primaries
                .filter(|&n| n > 0)
                .unwrap_or(task.requested_primaries),
            pages,
        },
        Err(SimulatorError::Stopped(why)) => Outcome::Stopped(why),
        Err(e @ SimulatorError::Machine { fault, .. }) => Outcome::MachineFault {
            error: e.to_string(),
            fault,
        },
        Err(SimulatorError::Input(error)) => Outcome::Failed {
            error,
            retry: false,
        },
        Err(SimulatorError::Transient(error)) => Outcome::Failed { error, retry: true },
    }
}

/// An input fault of a run that used the disk, checked against the work root's health: when
/// the work root cannot take data ([`workdir::probe`]), the failure (a program that stopped
/// on a full disk, a converter that could not write, results that could not be read) is the
/// machine's, not the input's. A program that freed its space before it failed looks like an
/// input fault; its message then quotes the program's own words.
async fn recheck_input_fault(
    work_root: &Path,
    message: String,
) -> Result<TaskResults, SimulatorError> {
    let root = work_root.to_path_buf();
    let probe = tokio::task::spawn_blocking(move || workdir::probe(&root)).await;
    match probe {
        Ok(Err(SimulatorError::Machine {
            fault,
            message: why,
        })) => {
            tracing::warn!(%why, "a failure is put down to the work root");
            Err(SimulatorError::machine(fault, format!("{message} ({why})")))
        }
        _ => Err(SimulatorError::Input(message)),
    }
}

async fn load_input(pool: &Pool, simulation_id: i64) -> Result<SimulationInput, SimulatorError> {
    let mut conn = pool
        .get()
        .await
        .map_err(|e| SimulatorError::retry(format!("no database connection: {e}")))?;
    match db::inputs::get(&mut conn, simulation_id).await {
        Ok(Some(i)) => Ok(i),
        Ok(None) => Err(SimulatorError::fatal("the simulation has no input")),
        Err(e) if e.is_transient() => Err(SimulatorError::retry(e.to_string())),
        Err(e) => Err(SimulatorError::fatal(e.to_string())),
    }
}

/// Stores the ends of what the run printed, trying through a database outage until the lease
/// would expire (as the outcome's write after it does).
async fn store_logs(
    pool: &Pool,
    task: &ClaimedTask,
    expiry: &crate::retry::LeaseExpiry,
    stdout: &Tail,
    stderr: &Tail,
) {
    for (name, tail) in [("stdout", stdout), ("stderr", stderr)] {
        let text = tail.text();
        if text.is_empty() {
            continue;
        }
        let stored = crate::retry::with_retries("storing a log", expiry, || async {
            let mut conn = pool.get().await.map_err(db::DbError::from)?;
            db::logs::store(
                &mut conn,
                task.simulation_id,
                Some(task.id),
                name,
                text.as_bytes(),
            )
            .await
        })
        .await;
        if let Err(e) = stored {
            tracing::warn!(task = task.id, error = %e, "cannot store the task's {name}");
        }
    }
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
