//! The task handlers the `worker` binary offers (`--handler`): the real simulators, and
//! stand-ins for benchmarks and tests of the queue itself.

use crate::execute::{Outcome, Stop, TaskContext, TaskHandler};
use crate::simulators::Simulators;
use db::enums::SimType;
use db::queue::ClaimedTask;
use std::time::{Duration, Instant};

/// The `--handler` choice, as a plain value.
#[derive(Debug, Clone, PartialEq)]
pub enum HandlerKind {
    /// The real simulators.
    Simulators,
    /// Complete at once.
    Noop,
    /// Sleep, then complete.
    Sleep(Duration),
    /// Panic in every task (tests of the worker's panic guard).
    Panic,
}

/// A handler the binary can run: one of [`HandlerKind`], with its settings.
#[derive(Debug, Clone)]
pub enum Standard {
    /// The simulator named by the simulation's `sim_type`.
    Simulators(Simulators),
    /// Completes at once without results (queue benchmarks).
    Noop,
    /// Reports progress for the given time, then completes (queue tests).
    Sleep(Duration),
    /// Panics (tests of the panic guard: the task fails, its slot is freed).
    Panic,
}

impl Standard {
    /// The handler of `kind`; `simulators` configures [`Standard::Simulators`].
    pub fn new(kind: &HandlerKind, simulators: crate::simulators::Settings) -> Self {
        match kind {
            HandlerKind::Simulators => Self::Simulators(Simulators::new(simulators)),
            HandlerKind::Noop => Self::Noop,
            HandlerKind::Sleep(d) => Self::Sleep(*d),
            HandlerKind::Panic => Self::Panic,
        }
    }
}

impl TaskHandler for Standard {
    async fn run(&self, task: &ClaimedTask, ctx: TaskContext) -> Outcome {
        match self {
            Standard::Noop => Outcome::Done {
                simulated_primaries: task.requested_primaries,
                pages: Vec::new(),
            },
            Standard::Sleep(d) => sleep(task, ctx, *d).await,
            Standard::Panic => panic!("task {}: the panic handler panics, as asked", task.id),
            Standard::Simulators(s) => s.run(task, ctx).await,
        }
    }

    /// The configured simulators for [`Standard::Simulators`]; every simulator for the
    /// stand-ins, which ignore `sim_type` (so the queue benchmarks claim every task).
    fn sim_types(&self) -> Vec<SimType> {
        match self {
            Standard::Simulators(s) => s.sim_types(),
            Standard::Noop | Standard::Sleep(_) | Standard::Panic => SimType::ALL.to_vec(),
        }
    }
}

/// Pretends to simulate for `total`, reporting progress; stops when told to.
async fn sleep(task: &ClaimedTask, mut ctx: TaskContext, total: Duration) -> Outcome {
    let start = Instant::now();
    let tick = Duration::from_millis(50);
    loop {
        let elapsed = start.elapsed();
        if elapsed >= total {
            return Outcome::Done {
                simulated_primaries: task.requested_primaries,
                pages: Vec::new(),
            };
        }
        let frac = elapsed.as_secs_f64() / total.as_secs_f64().max(1e-9);
        let done = (task.requested_primaries as f64 * frac) as i64;
        let eta = (total - elapsed).as_secs() as i32;
        if !ctx.report(done, Some(eta)).await {
            return Outcome::Stopped(Stop::Canceled);
        }
        tokio::select! {
            _ = tokio::time::sleep(tick.min(total - elapsed)) => {}
            why = ctx.stopped() => return Outcome::Stopped(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simulators() -> crate::simulators::Settings {
        crate::simulators::Settings::new(std::env::temp_dir().join("sim-worker-unit"))
    }

    #[test]
    fn the_queue_stand_ins_claim_every_simulator() {
        for kind in [
            HandlerKind::Noop,
            HandlerKind::Sleep(std::time::Duration::from_millis(1)),
            HandlerKind::Panic,
        ] {
            assert_eq!(
                Standard::new(&kind, simulators()).sim_types(),
                SimType::ALL.to_vec()
            );
        }
        let mut s = simulators();
        s.topas = Some("/opt/topas".into());
        assert_eq!(
            Standard::new(&HandlerKind::Simulators, s).sim_types(),
            vec![SimType::Builtin, SimType::Topas]
        );
    }
}
