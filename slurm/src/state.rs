//! SLURM job states as the batch component maps them onto task states.
//!
//! The state names are SLURM's own (`man squeue`, "JOB STATE CODES", SLURM 22.05). A state
//! that SLURM may still change (pending, running, completing, suspended, requeued) is not
//! final; a final one is [`ElementState::Completed`] or [`ElementState::Failed`] with the
//! reason users are shown.

use std::fmt;

/// A SLURM job id: an array job's id, or a single job's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why SLURM ended a job or array element other than by success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailReason {
    /// `CANCELLED`: `scancel`, or an administrator.
    Cancelled,
    /// `TIMEOUT`: the element reached its time limit (`--time`).
    Timeout,
    /// `NODE_FAIL`: the node it ran on failed.
    NodeFail,
    /// `OUT_OF_MEMORY`: it exceeded its memory limit.
    OutOfMemory,
    /// `FAILED`: the program exited with a non-zero code.
    NonZeroExit,
    /// `PREEMPTED`, `BOOT_FAIL`, `DEADLINE`, `REVOKED`, `SPECIAL_EXIT` or a state this
    /// version does not know, by its SLURM name.
    Other(String),
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cancelled => "CANCELLED",
            Self::Timeout => "TIMEOUT",
            Self::NodeFail => "NODE_FAIL",
            Self::OutOfMemory => "OUT_OF_MEMORY",
            Self::NonZeroExit => "FAILED",
            Self::Other(s) => s,
        })
    }
}

/// Where one array element (or a single job) is, in the terms of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementState {
    /// Waiting for resources, a dependency, or a requeue.
    Pending,
    /// Running (or completing, or suspended while running).
    Running,
    /// Ended with exit code 0.
    Completed,
    /// Ended otherwise.
    Failed(FailReason),
}

impl ElementState {
    /// Maps a SLURM state name (`%T` of `squeue`, `JobState` of `scontrol`; a trailing
    /// ` by <uid>` as in `CANCELLED by 0` is ignored).
    pub fn from_slurm(state: &str) -> Self {
        let name = state.split_whitespace().next().unwrap_or("");
        match name {
            "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_FED" | "REQUEUE_HOLD"
            | "RESIZING" => Self::Pending,
            "RUNNING" | "COMPLETING" | "STAGE_OUT" | "SIGNALING" | "SUSPENDED" | "STOPPED" => {
                Self::Running
            }
            "COMPLETED" => Self::Completed,
            "CANCELLED" => Self::Failed(FailReason::Cancelled),
            "TIMEOUT" => Self::Failed(FailReason::Timeout),
            "NODE_FAIL" => Self::Failed(FailReason::NodeFail),
            "OUT_OF_MEMORY" => Self::Failed(FailReason::OutOfMemory),
            "FAILED" => Self::Failed(FailReason::NonZeroExit),
            other => Self::Failed(FailReason::Other(other.to_owned())),
        }
    }

    /// Whether SLURM will not change this state any more.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Completed | Self::Failed(_))
    }
}

/// One line of a poll: a single job, or one element of an array job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementStatus {
    /// The array job's id (for a single job, its own id).
    pub job: JobId,
    /// The element's index in the array (`SLURM_ARRAY_TASK_ID`), `None` for a single job.
    pub index: Option<u32>,
    /// The mapped state.
    pub state: ElementState,
    /// SLURM's reason (`%r`), e.g. `Resources`, `Dependency`, `NonZeroExitCode`, `None`.
    pub reason: String,
}

/// The `squeue --format` that [`parse_squeue`] reads: array job id (`%F`), array index
/// (`%K`, `N/A` for a single job), state (`%T`), reason (`%r`).
pub const SQUEUE_FORMAT: &str = "%F|%K|%T|%r";

/// Parses `squeue --noheader --array --states=all --format=SQUEUE_FORMAT` output; lines that
/// do not parse are skipped with a warning (a newer SLURM may add states, never columns).
pub fn parse_squeue(out: &str) -> Vec<ElementStatus> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|line| {
            let mut f = line.trim().splitn(4, '|');
            let (job, index, state, reason) = (f.next()?, f.next()?, f.next()?, f.next()?);
            let Ok(job) = job.parse::<u64>() else {
                tracing::warn!(line, "squeue line without a job id");
                return None;
            };
            let index = match index {
                "N/A" | "" => None,
                i => match i.parse::<u32>() {
                    Ok(i) => Some(i),
                    Err(_) => {
                        tracing::warn!(line, "squeue line with an unexpanded array index");
                        return None;
                    }
                },
            };
            Some(ElementStatus {
                job: JobId(job),
                index,
                state: ElementState::from_slurm(state),
                reason: reason.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as SLURM 22.05 printed them on this machine (`scripts/slurm-single-node`):
    /// one array of 3 where element 2 exits 3 and element 3 is cancelled, and a single job.
    const CAPTURED: &str = "5|3|CANCELLED|Resources\n5|1|COMPLETED|None\n5|2|FAILED|NonZeroExitCode\n8|N/A|PENDING|Dependency\n9|0|RUNNING|None\n";

    #[test]
    fn parses_captured_squeue_output() {
        let got = parse_squeue(CAPTURED);
        assert_eq!(got.len(), 5);
        assert_eq!(got[0].job, JobId(5));
        assert_eq!(got[0].index, Some(3));
        assert_eq!(got[0].state, ElementState::Failed(FailReason::Cancelled));
        assert_eq!(got[1].state, ElementState::Completed);
        assert_eq!(got[2].state, ElementState::Failed(FailReason::NonZeroExit));
        assert_eq!(got[2].reason, "NonZeroExitCode");
        assert_eq!(got[3].index, None);
        assert_eq!(got[3].state, ElementState::Pending);
        assert_eq!(got[4].state, ElementState::Running);
        assert!(!got[3].state.is_final() && !got[4].state.is_final());
        assert!(got[0].state.is_final() && got[1].state.is_final());
    }

    #[test]
    fn maps_every_failure_reason() {
        use FailReason::*;
        for (s, r) in [
            ("TIMEOUT", Timeout),
            ("NODE_FAIL", NodeFail),
            ("OUT_OF_MEMORY", OutOfMemory),
            ("CANCELLED by 0", Cancelled),
            ("PREEMPTED", Other("PREEMPTED".into())),
        ] {
            assert_eq!(ElementState::from_slurm(s), ElementState::Failed(r.clone()));
            assert_eq!(r.to_string(), s.split(' ').next().unwrap_or_default());
        }
    }

    #[test]
    fn skips_lines_that_do_not_parse() {
        let got = parse_squeue("garbage\n5|[1-3]|PENDING|None\n7|1|RUNNING|None\n");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].job, JobId(7));
    }
}
