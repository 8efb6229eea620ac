//! The one skeleton of the external programs (SHIELD-HIT12A, FLUKA, TOPAS), written once:
//! the program's path from the settings, the inputs written into a private work directory
//! with the task's rewrites, the program run in its own process group with its output
//! tailed, progress reported and stop requests obeyed, and its results read, each failure
//! classified ([`super::fault`]). What differs between the programs is the [`External`]
//! trait.

use super::process::{self, Stream};
use super::{Run, Settings, SimulatorError, TaskResults};
use crate::execute::Stop;
use db::queue::ClaimedTask;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

/// Progress of a run: primaries done, and seconds left when known.
pub type Progress = (i64, Option<i32>);

/// How progress is read from a running program: from its stdout lines, or from a file it
/// writes. Both say nothing by default.
pub trait ProgressParser {
    /// Progress read from one line the program wrote to stdout.
    fn line(&mut self, _line: &str) -> Option<Progress> {
        None
    }

    /// Progress found in the work directory `dir`: looked at every half second while the
    /// program runs, and once after it ends; `None` when there is nothing new.
    fn poll(&mut self, _dir: &Path) -> Option<Progress> {
        None
    }
}

/// A program whose progress is not followed (pymchelper's `convertmc`).
pub struct NoProgress;

impl ProgressParser for NoProgress {}

/// An external simulator: what one run of it needs besides the shared skeleton ([`run`]).
/// A value of it is the state of one run (created by [`External::prepare`]).
pub trait External: ProgressParser + Sized {
    /// Which program it is.
    const PROGRAM: Program;

    /// Checks the input files and plans the task's run: which files are rewritten for it,
    /// what goes into its log, and the state that follows the run. An error here is the
    /// input's.
    fn prepare(task: &ClaimedTask, files: &Files) -> Result<Prepared<Self>, SimulatorError>;

    /// The program's arguments, the work directory being `dir`.
    fn args(&self, dir: &Path) -> Vec<String>;

    /// After the program exited successfully: which results to read and how.
    fn results(self, dir: &Path) -> Result<Results, SimulatorError>;
}

/// A simulation's input files: name to content.
pub type Files = BTreeMap<String, String>;

/// What names and finds an external program.
pub struct Program {
    /// Its name in messages (`"FLUKA"`).
    pub name: &'static str,
    /// The flag that configures its path (`"--fluka"`).
    pub flag: &'static str,
    /// Whether its results are converted by pymchelper's `convertmc` (then a worker without
    /// it fails the task before running anything).
    pub convertmc: bool,
    /// Its configured path.
    pub path: fn(&Settings) -> Option<&PathBuf>,
}

impl Program {
    /// The program called `name` in messages, configured by `flag` and found by `path` in
    /// the settings; `convertmc` when its results are converted by pymchelper.
    pub const fn new(
        name: &'static str,
        flag: &'static str,
        convertmc: bool,
        path: fn(&Settings) -> Option<&PathBuf>,
    ) -> Self {
        Self {
            name,
            flag,
            convertmc,
            path,
        }
    }
}

/// What [`External::prepare`] plans.
pub struct Prepared<P> {
    /// The run's state.
    pub state: P,
    /// Input files whose content is replaced for this task, by name.
    pub rewrites: BTreeMap<String, String>,
    /// Lines for the task's log, written before the program starts.
    pub log: Vec<String>,
}

/// The results of a run, and how to read them.
pub enum Results {
    /// Files matching `pattern` in the work directory, converted by `convertmc`; `expected`
    /// names the estimators that must come out of it (see [`Run::convert_results`]).
    Convert {
        /// A glob relative to the work directory.
        pattern: String,
        /// Estimators that must be converted (may be empty).
        expected: Vec<String>,
    },
    /// Already read.
    Read(TaskResults),
}

/// Runs one task of the external program `P` on the input `files`.
pub async fn run<P: External>(
    run: &mut Run<'_>,
    files: &Files,
) -> Result<TaskResults, SimulatorError> {
    let Program {
        name,
        flag,
        convertmc,
        path,
    } = P::PROGRAM;
    let program = Run::configured(path(run.settings), name, flag)?;
    if convertmc {
        run.require_convertmc()?;
    }
    let Prepared {
        mut state,
        rewrites,
        log,
    } = P::prepare(run.task, files)?;
    let dir = run.workdir()?;
    for (name, content) in files {
        let content = rewrites.get(name).unwrap_or(content);
        dir.write_input(name, content)
            .map_err(SimulatorError::fatal)?;
    }
    for line in log {
        run.log(line);
    }
    let args = state.args(dir.path());
    let status = run
        .run_program(&program, &args, dir.path(), &mut state)
        .await?;
    if !status.success() {
        return Err(run.failed(name, status));
    }
    match state.results(dir.path())? {
        Results::Convert { pattern, expected } => {
            run.convert_results(dir.path(), &pattern, &expected).await
        }
        Results::Read(results) => Ok(results),
    }
}

/// How often [`Run::run_program`] polls a program's progress.
const POLL_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl Run<'_> {
    /// Runs a program in `dir` to its end, feeding its output to `progress` and reporting
    /// what it finds, and stopping the program — its whole process group — when the task is
    /// canceled or the worker shuts down.
    pub async fn run_program(
        &mut self,
        program: &Path,
        args: &[String],
        dir: &Path,
        progress: &mut impl ProgressParser,
    ) -> Result<ExitStatus, SimulatorError> {
        let mut child =
            process::spawn(program, args, dir).map_err(|e| start_failed(program, &e))?;
        let mut tick = tokio::time::interval(POLL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let report = tokio::select! {
                line = child.lines.recv() => match line {
                    Some((which, line)) => {
                        let report = if which == Stream::Stdout {
                            progress.line(&line)
                        } else {
                            None
                        };
                        self.output.push(which, line);
                        report
                    }
                    None => break,
                },
                _ = tick.tick() => progress.poll(dir),
                why = self.ctx.stopped() => {
                    child.kill_group();
                    let _ = child.wait().await;
                    return Err(SimulatorError::stopped(why));
                }
            };
            if let Some((done, eta)) = report {
                if !self.ctx.report(done, eta).await {
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
        if let Some((done, eta)) = progress.poll(dir) {
            self.ctx.report(done, eta).await;
        }
        Ok(status)
    }

    /// Fails fast, before a run, when pymchelper's `convertmc` is not configured.
    pub fn require_convertmc(&self) -> Result<PathBuf, SimulatorError> {
        Self::configured(
            self.settings.convertmc.as_ref(),
            "pymchelper's convertmc",
            "--convertmc",
        )
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
        let convertmc = self.require_convertmc()?;
        let out = workdir.join("output");
        std::fs::create_dir_all(&out)
            .map_err(|e| SimulatorError::from_io(&e, "cannot create the output directory"))?;
        let pattern = format!("{}/{pattern}", workdir.to_string_lossy());
        let args = ["json".into(), "--many".into(), pattern];
        let status = self
            .run_program(&convertmc, &args, &out, &mut NoProgress)
            .await?;
        if !status.success() {
            return Err(self.failed("convertmc", status));
        }
        let said = || {
            self.last_error_line()
                .map(|l| format!(" (convertmc: {l})"))
                .unwrap_or_default()
        };
        let converted = super::pymchelper::read_dir(&out)
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

    /// The error for a program that ended unsuccessfully (see [`program_failed`]).
    pub fn failed(&self, what: &str, status: ExitStatus) -> SimulatorError {
        program_failed(what, status, &self.output)
    }
}

/// The error for a program that ended unsuccessfully: `"<what> exited with code 3"` and the
/// run's last output lines ([`process::Output::last_lines`]). An input fault, unless the
/// exit points at the machine ([`process::exit_fault`]).
pub fn program_failed(what: &str, status: ExitStatus, output: &process::Output) -> SimulatorError {
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
pub(crate) fn start_failed(program: &Path, e: &std::io::Error) -> SimulatorError {
    SimulatorError::machine(
        super::MachineFault::Program,
        format!("cannot start {}: {e}", program.display()),
    )
}
