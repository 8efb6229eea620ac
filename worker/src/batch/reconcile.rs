//! Bringing one batch simulation's tasks up to date with what SLURM and the job directory
//! say about its array elements.
//!
//! | SLURM (`squeue`)        | files left            | the task                                  |
//! |-------------------------|-----------------------|-------------------------------------------|
//! | PENDING                 |                       | stays PENDING                             |
//! | RUNNING                 | progress              | RUNNING (a new attempt), its progress     |
//! | COMPLETED               | result                | COMPLETED, its pages merged               |
//! | FAILED, TIMEOUT, …      | error, slurm.out      | FAILED with the reason and the last lines |
//! | forgotten (`MinJobAge`) | exit-code 0 + result  | COMPLETED, as above                       |
//! | forgotten               | exit-code ≠ 0         | FAILED (exit code)                        |
//! | forgotten               | nothing               | FAILED: lost                              |

use super::driver::ClusterDriver;
use super::result_file::ElementResult;
use super::BatchError;
use db::enums::TaskState;
use db::queue::batch::{self, BatchSimulation};
use db::queue::{self, Lease};
use db::Conn;
use slurm::job_dir::{self, ElementFiles, JobDir};
use slurm::{ElementState, ElementStatus, FailReason, JobId};
use std::collections::{BTreeMap, HashMap};

/// How much of an element's `slurm.out` is kept as the task's log.
const LOG_TAIL_BYTES: u64 = 256 * 1024;
/// How many of its last lines a failure's message quotes.
const QUOTED_LINES: usize = 8;

/// Where one element is.
#[derive(Debug, Clone, PartialEq)]
enum Element {
    /// Not started.
    Waiting,
    /// Running, with its last progress.
    Running(Option<job_dir::Progress>),
    /// Ended with results.
    Done,
    /// Ended without results.
    Failed(String),
}

/// What SLURM and the files say about element `index`.
fn element(state: Option<&ElementState>, files: Option<&ElementFiles>) -> Element {
    let files = files.cloned().unwrap_or_default();
    let failed = |reason: &str| {
        let mut why = reason.to_owned();
        if let Some(e) = &files.error {
            why.push_str(": ");
            why.push_str(e);
        }
        Element::Failed(why)
    };
    match state {
        Some(ElementState::Pending) => Element::Waiting,
        Some(ElementState::Running) => Element::Running(files.progress),
        Some(ElementState::Completed) | None if files.exit_code == Some(0) && files.has_result => {
            Element::Done
        }
        Some(ElementState::Completed) => failed("SLURM: COMPLETED, but the element left no result"),
        Some(ElementState::Failed(reason)) => failed(&format!("SLURM: {}", describe(reason))),
        None => match files.exit_code {
            Some(code) => failed(&format!("the element exited with {code}")),
            None => failed(
                "SLURM no longer knows the element and it left no exit code (ended by a time \
                 limit, a node failure or scancel before the last poll)",
            ),
        },
    }
}

fn describe(reason: &FailReason) -> String {
    match reason {
        FailReason::Cancelled => "CANCELLED (scancel, or an administrator)".into(),
        FailReason::Timeout => "TIMEOUT (the element reached its time limit)".into(),
        FailReason::NodeFail => "NODE_FAIL (the node it ran on failed)".into(),
        FailReason::OutOfMemory => "OUT_OF_MEMORY (it exceeded its memory limit)".into(),
        FailReason::NonZeroExit => "FAILED (non-zero exit code)".into(),
        FailReason::Other(s) => s.clone(),
    }
}

/// Brings `sim`'s open tasks up to date with `statuses` (this poll's `squeue` lines of every
/// active array of the cluster) and the files its elements left.
pub async fn reconcile(
    driver: &ClusterDriver,
    conn: &mut Conn,
    sim: &BatchSimulation,
    statuses: &[ElementStatus],
) -> Result<(), BatchError> {
    let (Some(array), Some(dir)) = (sim.array_id, sim.job_dir.as_deref()) else {
        return Ok(());
    };
    let array = JobId(u64::try_from(array).unwrap_or_default());
    let states: HashMap<u32, &ElementState> = statuses
        .iter()
        .filter(|s| s.job == array)
        .filter_map(|s| Some((s.index?, &s.state)))
        .collect();
    let tasks = batch::tasks(conn, sim.id).await?;
    let open: Vec<_> = tasks
        .iter()
        .filter(|t| TaskState::OPEN.contains(&t.task_state))
        .collect();
    if open.is_empty() {
        return Ok(());
    }
    let dir = JobDir::at(dir);
    let files = driver.slurm().element_files(&dir).await?;
    let now: BTreeMap<i32, Element> = open
        .iter()
        .map(|t| {
            let i = u32::try_from(t.task_index).unwrap_or(u32::MAX);
            (
                t.task_index,
                element(states.get(&i).copied(), files.get(&i)),
            )
        })
        .collect();
    let to_start: Vec<i32> = open
        .iter()
        .filter(|t| t.task_state == TaskState::Pending && now[&t.task_index] != Element::Waiting)
        .map(|t| t.task_index)
        .collect();
    let mut leases: BTreeMap<i32, Lease> = batch::running_leases(conn, sim.id, driver.owner())
        .await?
        .into_iter()
        .collect();
    if !to_start.is_empty() {
        let started =
            batch::start_tasks(conn, sim.id, driver.owner(), &to_start, driver.lease()).await?;
        leases.extend(started);
    }
    for (index, state) in now {
        let Some(lease) = leases.get(&index) else {
            continue;
        };
        let held = |lease| Held {
            driver,
            sim,
            dir: &dir,
            index,
            lease,
        };
        let step = match state {
            Element::Waiting => Ok(()),
            Element::Running(p) => match p {
                Some(p) => {
                    let eta = p.seconds_left.and_then(|s| i32::try_from(s).ok());
                    ignore_lost(queue::report_progress(conn, lease, p.primaries_done, eta).await)
                }
                None => Ok(()),
            },
            Element::Done => held(lease).complete(conn).await,
            Element::Failed(why) => held(lease).fail(conn, &why).await,
        };
        if let Err(e) = step {
            if !e.is_transient() {
                tracing::warn!(simulation = sim.id, task_index = index, error = %e, "element not brought up to date");
            }
            return Err(e);
        }
    }
    Ok(())
}

/// A lost lease means another component took the task over: not this one's to act on.
fn ignore_lost(r: db::DbResult<()>) -> Result<(), BatchError> {
    match r {
        Err(e) if queue::is_lease_lost(&e) => Ok(()),
        other => Ok(other?),
    }
}

/// One element of a simulation, with the lease its task is held under.
struct Held<'a> {
    driver: &'a ClusterDriver,
    sim: &'a BatchSimulation,
    dir: &'a JobDir,
    index: i32,
    lease: &'a Lease,
}

impl Held<'_> {
    /// Stores the element's `slurm.out` as the task's log and returns its last lines.
    async fn store_log(&self, conn: &mut Conn) -> Result<String, BatchError> {
        let path = self.dir.element_file(self.index, job_dir::SLURM_OUT);
        let Some(log) = self.driver.slurm().read_tail(&path, LOG_TAIL_BYTES).await? else {
            return Ok(String::new());
        };
        let task = Some(self.lease.task_id);
        db::logs::store(conn, self.sim.id, task, job_dir::SLURM_OUT, &log).await?;
        let text = String::from_utf8_lossy(&log);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        Ok(lines[lines.len().saturating_sub(QUOTED_LINES)..].join("\n"))
    }

    /// Merges the element's result file (or fails the task when it cannot be read).
    async fn complete(&self, conn: &mut Conn) -> Result<(), BatchError> {
        let path = self.dir.element_file(self.index, job_dir::RESULT);
        let bytes = self.driver.slurm().read_file(&path).await?;
        let result = match bytes.as_deref().map(ElementResult::from_bytes) {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                let why = format!("the element's result cannot be read: {e}");
                return self.fail(conn, &why).await;
            }
            None => return self.fail(conn, "the element's result file is gone").await,
        };
        self.store_log(conn).await?;
        let done =
            db::merge::complete_with_results(conn, self.lease, result.primaries, &result.pages)
                .await;
        tracing::info!(
            simulation = self.sim.id,
            task_index = self.index,
            primaries = result.primaries,
            "element completed"
        );
        ignore_lost(done)
    }

    /// Fails the task with `why` and the last lines of its `slurm.out`.
    async fn fail(&self, conn: &mut Conn, why: &str) -> Result<(), BatchError> {
        let tail = self.store_log(conn).await?;
        let message = if tail.is_empty() {
            why.to_owned()
        } else {
            format!("{why}\nlast lines of slurm.out:\n{tail}")
        };
        tracing::info!(
            simulation = self.sim.id,
            task_index = self.index,
            why,
            "element failed"
        );
        ignore_lost(
            queue::fail(conn, self.lease, &message, false)
                .await
                .map(|_| ()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(exit_code: Option<i32>, has_result: bool) -> ElementFiles {
        ElementFiles {
            exit_code,
            has_result,
            ..ElementFiles::default()
        }
    }

    #[test]
    fn squeue_and_files_make_the_element_state() {
        use ElementState as S;
        assert_eq!(element(Some(&S::Pending), None), Element::Waiting);
        assert_eq!(element(Some(&S::Running), None), Element::Running(None));
        assert_eq!(
            element(Some(&S::Completed), Some(&files(Some(0), true))),
            Element::Done
        );
        assert_eq!(element(None, Some(&files(Some(0), true))), Element::Done);
        assert!(
            matches!(element(Some(&S::Completed), Some(&files(Some(0), false))), Element::Failed(w) if w.contains("no result"))
        );
        assert!(
            matches!(element(Some(&S::Failed(FailReason::Timeout)), None), Element::Failed(w) if w.contains("TIMEOUT"))
        );
        assert!(
            matches!(element(None, Some(&files(Some(1), false))), Element::Failed(w) if w.contains("exited with 1"))
        );
        assert!(matches!(element(None, None), Element::Failed(w) if w.contains("no longer knows")));
        let mut f = files(Some(1), false);
        f.error = Some("builtin input: bad energy".into());
        assert!(
            matches!(element(Some(&S::Failed(FailReason::NonZeroExit)), Some(&f)), Element::Failed(w) if w.ends_with("bad energy"))
        );
    }
}
