//! The value parsers of the command line: each setting checked where it comes in, so that a
//! bad value is bad usage (exit code 2) and nothing is stored.

use super::MAX_CLEANUP_AGE;
use db::enums::{AuthProvider, JobState, TaskState};
use db::simulations::SimulationRef;
use std::ffi::OsStr;
use std::time::Duration;

/// The range of `--max-array-size`, as the schema checks it.
pub(super) fn max_array_size() -> clap::builder::RangedI64ValueParser<i32> {
    clap::value_parser!(i32).range(1..=1_000_000)
}

/// A bad value where it comes in: bad usage (exit code 2), `invalid value for <what>: why`.
/// `why` must quote the value escaped (`{:?}`), never raw, so that a control character in it
/// cannot rewrite the terminal.
fn bad_value(cmd: &clap::Command, what: &str, why: &str) -> clap::Error {
    clap::Error::raw(
        clap::error::ErrorKind::ValueValidation,
        format!("invalid value for {what}: {why}\n"),
    )
    .with_cmd(cmd)
}

/// A value checked where it comes in by a function that returns it, or why it is refused
/// (quoting the value escaped): a refused value is bad usage (exit code 2), and the message
/// names the flag (`--host`) or the argument (`<NAME>`).
#[derive(Debug, Clone, Copy)]
pub struct Checked<T>(pub fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> clap::builder::TypedValueParser for Checked<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let what = match arg {
            Some(a) => match a.get_long() {
                Some(long) => format!("--{long}"),
                None => format!(
                    "<{}>",
                    a.get_value_names()
                        .and_then(|v| v.first())
                        .map_or_else(|| a.get_id().to_string(), ToString::to_string)
                ),
            },
            None => "a value".into(),
        };
        let text = value
            .to_str()
            .ok_or_else(|| bad_value(cmd, &what, &format!("{value:?} is not valid UTF-8")))?;
        (self.0)(text).map_err(|why| bad_value(cmd, &what, &why))
    }
}

/// A cluster's name, as the schema's CHECK has it: 1 to 63 of A-Z a-z 0-9 . _ -, starting
/// with a letter or digit.
pub(super) fn parse_cluster_name(s: &str) -> Result<String, String> {
    let mut bytes = s.bytes();
    let ok = s.len() <= 63
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "cluster name {s:?} is refused: a name is 1 to 63 of A-Z a-z 0-9 . _ -, \
             starting with a letter or digit"
        ))
    }
}

/// An SSH host, by `slurm::ssh::check_host` (the rule the batch component checks again).
pub(super) fn parse_host(s: &str) -> Result<String, String> {
    slurm::ssh::check_host(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

/// An SSH user, by `slurm::ssh::check_user`.
pub(super) fn parse_ssh_user(s: &str) -> Result<String, String> {
    slurm::ssh::check_user(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

/// A cluster's work directory, by `slurm::job_dir::check_work_dir`: absolute.
pub(super) fn parse_work_dir(s: &str) -> Result<String, String> {
    slurm::job_dir::check_work_dir(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

/// `cleanup --older-than`: a duration ([`db::config::parse_duration`]) of at most
/// [`MAX_CLEANUP_AGE`].
pub(super) fn parse_age(s: &str) -> Result<Duration, String> {
    let age = db::config::parse_duration(s)?;
    if age > MAX_CLEANUP_AGE {
        return Err(format!(
            "{:?} is longer than {} (the longest age cleanup takes)",
            s.trim(),
            db::config::format_duration(MAX_CLEANUP_AGE)
        ));
    }
    Ok(age)
}

/// Parses a simulation's numeric id or job id (UUID) once, where it comes in. A bad value
/// is bad usage (exit code 2), and the message quotes it escaped, so a control character in
/// it cannot rewrite the terminal.
#[derive(Debug, Clone, Copy)]
pub struct SimulationRefParser;

impl clap::builder::TypedValueParser for SimulationRefParser {
    type Value = SimulationRef;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<SimulationRef, clap::Error> {
        let what = arg
            .and_then(|a| a.get_value_names())
            .and_then(|v| v.first())
            .map_or_else(|| "SIMULATION".to_string(), ToString::to_string);
        let what = format!("<{what}>");
        let fail = |why: String| bad_value(cmd, &what, &why);
        let text = value
            .to_str()
            .ok_or_else(|| fail(format!("{value:?} is not valid UTF-8")))?;
        text.parse()
            .map_err(|e: db::simulations::BadSimulationRef| fail(e.to_string()))
    }
}

pub(super) fn parse_provider(s: &str) -> Result<AuthProvider, String> {
    s.parse()
        .map_err(|e: db::enums::UnknownVariant| e.to_string())
}

pub(super) fn parse_job_state(s: &str) -> Result<JobState, String> {
    s.parse()
        .map_err(|e: db::enums::UnknownVariant| e.to_string())
}

/// A finished state for `cleanup --state`: completed, failed or canceled.
pub(super) fn parse_finished_state(s: &str) -> Result<JobState, String> {
    let state = parse_job_state(s)?;
    if !state.is_terminal() {
        return Err(format!(
            "{state} is not a finished state: cleanup deletes only completed, failed or canceled simulations"
        ));
    }
    Ok(state)
}

pub(super) fn parse_task_state(s: &str) -> Result<TaskState, String> {
    s.parse()
        .map_err(|e: db::enums::UnknownVariant| e.to_string())
}
