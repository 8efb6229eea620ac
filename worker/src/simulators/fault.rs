//! Why a run failed, classified by what should happen to its task: an input fault fails it at
//! once, a machine fault hands it to another worker without using an attempt, a transient
//! failure retries it.

pub use crate::execute::MachineFault;
use crate::execute::Stop;

/// Why a run did not produce results.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    /// The task's input, or the program run on it, failed: another attempt, on any worker,
    /// would fail the same way. The task fails at once; the message quotes the program's last
    /// output lines when a program failed.
    #[error("{0}")]
    Input(String),
    /// This machine failed the run; another worker may succeed. The task is handed on
    /// without using an attempt, up to a limit, and the worker counts it towards its health.
    #[error("{fault}: {message}")]
    Machine {
        /// Which fault.
        fault: MachineFault,
        /// What failed, with the system's error.
        message: String,
    },
    /// A passing failure that is neither the input's nor this machine's (no database
    /// connection, the engine's thread lost): retried after a backoff, using an attempt.
    #[error("{0}")]
    Transient(String),
    /// The run was stopped (canceled, or the worker is shutting down), not failed.
    #[error("stopped")]
    Stopped(Stop),
}

impl SimulatorError {
    /// An input fault with this message, or, given an error that is already classified (as
    /// [`super::workdir::WorkDir::write_input`] returns), that error unchanged: so that
    /// `.map_err(SimulatorError::fatal)` keeps a machine fault a machine fault.
    pub fn fatal(e: impl Into<SimulatorError>) -> Self {
        e.into()
    }

    /// A transient failure (see [`SimulatorError::Transient`]).
    pub fn retry(message: impl Into<String>) -> Self {
        Self::Transient(message.into())
    }

    /// A machine fault.
    pub fn machine(fault: MachineFault, message: impl Into<String>) -> Self {
        Self::Machine {
            fault,
            message: message.into(),
        }
    }

    /// The machine fault of an I/O error on files under the work root
    /// ([`super::workdir::io_fault`]): `"<context>: <the system's error>"`.
    pub fn from_io(e: &std::io::Error, context: impl std::fmt::Display) -> Self {
        Self::machine(super::workdir::io_fault(e), format!("{context}: {e}"))
    }

    /// Which machine fault this is, if it is one.
    pub fn machine_fault(&self) -> Option<MachineFault> {
        match self {
            Self::Machine { fault, .. } => Some(*fault),
            _ => None,
        }
    }

    pub(crate) fn stopped(why: Stop) -> Self {
        Self::Stopped(why)
    }
}

impl From<String> for SimulatorError {
    /// An input fault.
    fn from(message: String) -> Self {
        Self::Input(message)
    }
}

impl From<sim_inputs::InputError> for SimulatorError {
    /// An input fault: the input checks of `sim_inputs` failed.
    fn from(e: sim_inputs::InputError) -> Self {
        Self::Input(e.0)
    }
}

impl From<&str> for SimulatorError {
    /// An input fault.
    fn from(message: &str) -> Self {
        Self::Input(message.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::super::external::{program_failed, start_failed};
    use super::super::{process, recheck_input_fault};
    use super::*;
    use std::path::{Path, PathBuf};

    fn scratch(name: &str) -> PathBuf {
        super::super::workdir::scratch("fault-test", name)
    }

    /// Starts `program` as a run does and classifies what happens.
    async fn run(program: &Path, args: &[&str], dir: &Path) -> SimulatorError {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let mut child = match process::spawn(program, &args, dir) {
            Ok(c) => c,
            Err(e) => return start_failed(program, &e),
        };
        let status = child.wait().await.unwrap();
        let mut output = process::Output::default();
        child.drain_into(&mut output).await;
        assert!(!status.success());
        program_failed("the program", status, &output)
    }

    #[tokio::test]
    async fn a_configured_program_missing_here_is_a_machine_fault() {
        let dir = scratch("missing");
        let missing = dir.join("no-such-shieldhit");
        let err = run(&missing, &[], &dir).await;
        assert_eq!(err.machine_fault(), Some(MachineFault::Program), "{err:?}");
        assert!(err.to_string().contains("no-such-shieldhit"), "{err}");
        // A file without execute permission (root cannot execute it either).
        let plain = dir.join("not-executable");
        std::fs::write(&plain, "#!/bin/sh\nexit 0\n").unwrap();
        let err = run(&plain, &[], &dir).await;
        assert_eq!(err.machine_fault(), Some(MachineFault::Program), "{err:?}");
        // A wrapper whose own program is missing exits 127.
        let err = run(Path::new("/bin/sh"), &["-c", "exec /no/such/rfluka"], &dir).await;
        assert_eq!(err.machine_fault(), Some(MachineFault::Program), "{err:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_program_failing_on_its_input_is_an_input_fault_with_its_last_lines() {
        let dir = scratch("input");
        let script = "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo \"card $i read\"; done; \
                      echo ' *** unknown material WATR in geo.dat' >&2; \
                      echo 'run aborted'; exit 2";
        let err = run(Path::new("/bin/sh"), &["-c", script], &dir).await;
        let SimulatorError::Input(message) = &err else {
            panic!("not an input fault: {err:?}");
        };
        assert!(
            message.starts_with("the program exited with code 2; its last output lines:"),
            "{message}"
        );
        // The last lines of each stream, not only the last one.
        let lines: Vec<&str> = message.lines().skip(1).map(str::trim).collect();
        assert_eq!(lines.len(), process::LAST_LINES + 1, "{message}");
        assert_eq!(lines[0], "card 6 read");
        assert_eq!(lines[6], "card 12 read");
        assert_eq!(lines[7], "run aborted");
        assert_eq!(lines[8], "[stderr] *** unknown material WATR in geo.dat");
        // The work root is healthy, so the fault stays the input's.
        let kept = recheck_input_fault(&dir, message.clone()).await;
        assert!(matches!(kept, Err(SimulatorError::Input(m)) if m == *message));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn an_input_fault_on_a_work_root_that_takes_no_data_is_the_machines() {
        // A work root that is not a directory: nothing can be written there (as root, the
        // permission bits would not stop a write; a full filesystem is tried in
        // tests/machine_faults.rs).
        let dir = scratch("root");
        let root = dir.join("not-a-directory");
        std::fs::write(&root, "").unwrap();
        let err = recheck_input_fault(&root, "SHIELD-HIT12A wrote no .bdo result files".into())
            .await
            .unwrap_err();
        assert_eq!(err.machine_fault(), Some(MachineFault::Storage), "{err:?}");
        assert!(err.to_string().contains("wrote no .bdo"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fatal_keeps_a_classified_error_and_makes_input_faults_of_messages() {
        assert!(
            matches!(SimulatorError::fatal("bad card"), SimulatorError::Input(m) if m == "bad card")
        );
        let machine = SimulatorError::machine(MachineFault::DiskFull, "cannot write beam.dat");
        // As the simulators call it: `write_input(…).map_err(SimulatorError::fatal)`.
        let written: Result<(), SimulatorError> = Err(machine);
        let kept = written.map_err(SimulatorError::fatal).unwrap_err();
        assert_eq!(kept.machine_fault(), Some(MachineFault::DiskFull));
        assert_eq!(kept.to_string(), "disk full: cannot write beam.dat");
        assert!(matches!(
            SimulatorError::retry("no connection"),
            SimulatorError::Transient(_)
        ));
    }
}
