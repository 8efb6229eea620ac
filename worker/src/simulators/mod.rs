//! The simulators a task can run: dispatch on `sim_type`, the input, the work directory, the
//! child process with progress and cancellation, the task's logs, and the classification of
//! failures ([`fault`]): input faults, machine faults, transient ones.

mod builtin_task;
pub mod fault;
pub mod fluka;
pub mod process;
pub mod pymchelper;
pub mod shieldhit;
pub mod topas;
pub mod topas_csv;
pub mod workdir;

use crate::execute::{Outcome, ProgressReporter, Stop};
use db::enums::SimType;
use db::inputs::SimulationInput;
use db::queue::{ClaimedTask, Lease};
use db::Pool;
pub use fault::{MachineFault, SimulatorError};
use process::{Output, Stream, Tail};
use std::path::{Path, PathBuf};
use tokio::sync::watch;

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
    progress: ProgressReporter,
    stop: watch::Receiver<Stop>,
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
        self.progress.report(done, eta_s, false).await
    }

    /// Resolves when the run is told to stop, with the reason.
    pub async fn stopped(&mut self) -> Stop {
        loop {
            if self.stop.changed().await.is_err() {
                return Stop::Canceled;
            }
            let why = *self.stop.borrow();
            if why != Stop::No {
                return why;
            }
        }
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
    /// fault saying it is not configured: leaving a simulator out is this deployment's
    /// choice (the task fails at once, as documented), while a configured program that is
    /// missing is a machine fault, found when it is started.
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

    /// The error for a program that ended unsuccessfully (see [`program_failed`]).
    pub fn failed(&self, what: &str, status: std::process::ExitStatus) -> SimulatorError {
        program_failed(what, status, &self.output)
    }

    /// Fails fast, before a run, when pymchelper's `convertmc` is not configured.
    pub fn require_convertmc(&self) -> Result<(), SimulatorError> {
        Self::configured(
            self.settings.convertmc.as_ref(),
            "pymchelper's convertmc",
            "--convertmc",
        )
        .map(|_| ())
    }

    /// Converts the result files matching `pattern` with pymchelper's `convertmc json
    /// --many` (into `<workdir>/output`) and reads the pages it wrote. `expected` names the
    /// estimators the run saved (the outputs' core names), when the caller knows them: one
    /// that convertmc skipped (it exits 0 on a file it cannot read) fails the task, naming
    /// it and convertmc's last words, rather than silently losing it.
    pub async fn convert_results(
        &mut self,
        workdir: &Path,
        pattern: &str,
        expected: &[String],
    ) -> Result<TaskResults, SimulatorError> {
        let convertmc = Self::configured(
            self.settings.convertmc.as_ref(),
            "pymchelper's convertmc",
            "--convertmc",
        )?;
        let out = workdir.join("output");
        std::fs::create_dir_all(&out)
            .map_err(|e| SimulatorError::from_io(&e, "cannot create the output directory"))?;
        let pattern = format!("{}/{pattern}", workdir.to_string_lossy());
        let status = self
            .run_program(
                &convertmc,
                &["json".into(), "--many".into(), pattern],
                &out,
                |_| None,
            )
            .await?;
        if !status.success() {
            return Err(self.failed("convertmc", status));
        }
        let said = || {
            self.last_error_line()
                .map(|l| format!(" (convertmc: {l})"))
                .unwrap_or_default()
        };
        let converted = pymchelper::read_dir(&out)
            .map_err(|e| SimulatorError::fatal(format!("{e}{}", said())))?;
        let missing: Vec<&str> = expected
            .iter()
            .filter(|e| !converted.pages.iter().any(|p| &p.estimator == *e))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(SimulatorError::fatal(format!(
                "convertmc could not read the output of {}{}",
                missing.join(", "),
                said()
            )));
        }
        Ok(TaskResults {
            pages: converted.pages,
            primaries: converted.primaries,
        })
    }

    /// Runs a program to its end, feeding its output lines to `progress` (which may return
    /// primaries done and seconds left) and stopping it — the whole process group — when the
    /// task is canceled or the worker shuts down.
    pub async fn run_program(
        &mut self,
        program: &Path,
        args: &[String],
        dir: &Path,
        progress: impl Fn(&str) -> Option<(i64, i32)>,
    ) -> Result<std::process::ExitStatus, SimulatorError> {
        self.run_program_polling(program, args, dir, progress, || None)
            .await
    }

    /// [`Run::run_program`] for programs that report progress in a file: `poll` is called
    /// every half second while the program runs, and may return primaries done and seconds
    /// left (or `None` when it has nothing new).
    pub async fn run_program_polling(
        &mut self,
        program: &Path,
        args: &[String],
        dir: &Path,
        progress: impl Fn(&str) -> Option<(i64, i32)>,
        mut poll: impl FnMut() -> Option<(i64, Option<i32>)>,
    ) -> Result<std::process::ExitStatus, SimulatorError> {
        let mut child =
            process::spawn(program, args, dir).map_err(|e| start_failed(program, &e))?;
        let mut tick = tokio::time::interval(POLL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let report = tokio::select! {
                line = child.lines.recv() => match line {
                    Some((which, line)) => {
                        let report = if which == Stream::Stdout {
                            progress(&line).map(|(done, eta)| (done, Some(eta)))
                        } else {
                            None
                        };
                        self.output.push(which, line);
                        report
                    }
                    None => break,
                },
                _ = tick.tick() => poll(),
                changed = self.stop.changed() => {
                    let why = if changed.is_err() { Stop::Canceled } else { *self.stop.borrow() };
                    if why != Stop::No {
                        child.kill_group();
                        let _ = child.wait().await;
                        return Err(SimulatorError::stopped(why));
                    }
                    None
                }
            };
            if let Some((done, eta)) = report {
                if !self.progress.report(done, eta, false).await {
                    child.kill_group();
                    let _ = child.wait().await;
                    return Err(SimulatorError::stopped(Stop::Canceled));
                }
            }
        }
        let status = child.wait().await.map_err(|e| {
            SimulatorError::retry(format!("cannot wait for {}: {e}", program.display()))
        })?;
        child.drain_into(&mut self.output).await;
        // What the program wrote last (e.g. its final progress) is read once more.
        if let Some((done, eta)) = poll() {
            self.progress.report(done, eta, false).await;
        }
        Ok(status)
    }
}

/// How often [`Run::run_program_polling`] looks at a program's progress file.
const POLL_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Runs a claimed task with the simulator its simulation names, stores its logs, and says
/// how it ended.
pub async fn run(
    pool: &Pool,
    settings: &Settings,
    task: &ClaimedTask,
    lease: &Lease,
    stop: watch::Receiver<Stop>,
) -> Outcome {
    let input = match load_input(pool, task.simulation_id).await {
        Ok(i) => i,
        Err(e) => return outcome_of(Err(e), task),
    };
    let mut run = Run {
        task,
        settings,
        progress: ProgressReporter::new(pool.clone(), lease.clone()),
        stop,
        output: Output::default(),
        used_workdir: false,
    };
    let result = match (task.sim_type, &input) {
        (SimType::Shieldhit, SimulationInput::Files(files)) => {
            shieldhit::run(&mut run, files).await
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
        (SimType::Topas, SimulationInput::Files(files)) => topas::run(&mut run, files).await,
        (SimType::Topas, SimulationInput::Editor(_)) => Err(SimulatorError::fatal(
            "TOPAS needs parameter files; editor projects are not converted on this worker",
        )),
        (SimType::Fluka, SimulationInput::Files(files)) => fluka::run(&mut run, files).await,
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
    store_logs(pool, task, &run.output.stdout, &run.output.stderr).await;
    outcome_of(result, task)
}

/// The outcome a run's result makes for the queue.
fn outcome_of(result: Result<TaskResults, SimulatorError>, task: &ClaimedTask) -> Outcome {
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

/// The error for a program that ended unsuccessfully: `"<what> exited with code 3"` and the
/// run's last output lines ([`Output::last_lines`]). An input fault, unless the exit points
/// at the machine ([`process::exit_fault`]).
pub fn program_failed(
    what: &str,
    status: std::process::ExitStatus,
    output: &Output,
) -> SimulatorError {
    let described = process::describe(status);
    let message = match output.last_lines() {
        lines if lines.is_empty() => format!("{what} {described} (it wrote nothing)"),
        lines => format!("{what} {described}; its last output lines:{lines}"),
    };
    match process::exit_fault(status) {
        Some(fault) => SimulatorError::machine(fault, message),
        None => SimulatorError::Input(message),
    }
}

/// The error for a program that could not be started: a machine fault (a configured path
/// that does not exist here or is not executable, a missing interpreter, no processes left).
fn start_failed(program: &Path, e: &std::io::Error) -> SimulatorError {
    SimulatorError::machine(
        MachineFault::Program,
        format!("cannot start {}: {e}", program.display()),
    )
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

/// How long storing a task's logs keeps trying through a database outage (the outcome's
/// own write then gets up to a lease length, see [`crate::outcome`]).
const LOG_RETRY_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

async fn store_logs(pool: &Pool, task: &ClaimedTask, stdout: &Tail, stderr: &Tail) {
    for (name, tail) in [("stdout", stdout), ("stderr", stderr)] {
        let text = tail.text();
        if text.is_empty() {
            continue;
        }
        let stored = crate::outcome::with_retries("storing a log", LOG_RETRY_BUDGET, || async {
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
