//! Runs the builtin engine for one task on a blocking thread, with progress and cancellation.

use super::{Run, SimulatorError};
use crate::execute::Stop;
use db::results::{PageMeta, TaskPage};
use engine::{Control, RunError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Simulates the task's primaries of the editor JSON `input`; task `i` uses
/// `task_seed(input.seed, i)`.
pub async fn run(
    run: &mut Run<'_>,
    input: &serde_json::Value,
) -> Result<super::TaskResults, SimulatorError> {
    let parsed = match engine::input::BuiltinInput::from_json(&input.to_string()) {
        Ok(p) => p,
        Err(e) => {
            run.log(format!("builtin input rejected: {e}"));
            return Err(SimulatorError::fatal(format!("builtin input: {e}")));
        }
    };
    let primaries = u64::try_from(run.task.requested_primaries)
        .map_err(|_| SimulatorError::fatal("negative primaries"))?;
    let index =
        u32::try_from(run.task.task_index).map_err(|_| SimulatorError::fatal("bad task index"))?;
    let seed = engine::task_seed(parsed.seed, index);
    run.log(format!(
        "builtin engine: {} MeV protons in water, {primaries} primaries, task {index}, seed {seed:#018x}",
        parsed.beam.energy_mev
    ));
    let done = Arc::new(AtomicU64::new(0));
    let cancel = Arc::new(AtomicBool::new(false));
    let engine = {
        let (done, cancel) = (done.clone(), cancel.clone());
        tokio::task::spawn_blocking(move || {
            engine::run(&parsed, primaries, seed, &mut |n| {
                done.store(n, Ordering::Relaxed);
                if cancel.load(Ordering::Relaxed) {
                    Control::Stop
                } else {
                    Control::Continue
                }
            })
        })
    };
    tokio::pin!(engine);
    let start = Instant::now();
    let result = loop {
        tokio::select! {
            r = &mut engine => break r,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                let n = done.load(Ordering::Relaxed);
                let eta = eta_secs(start.elapsed(), n, primaries);
                if !run.report(n as i64, eta).await {
                    cancel.store(true, Ordering::Relaxed);
                }
            }
            why = run.stopped() => {
                cancel.store(true, Ordering::Relaxed);
                let _ = (&mut engine).await;
                return Err(SimulatorError::stopped(why));
            }
        }
    };
    let estimators = match result {
        Ok(Ok(e)) => e,
        Ok(Err(RunError::Canceled { .. })) => return Err(SimulatorError::stopped(Stop::Canceled)),
        Ok(Err(e)) => {
            run.log(format!("builtin engine failed: {e}"));
            return Err(SimulatorError::fatal(format!("builtin engine: {e}")));
        }
        Err(e) => {
            return Err(SimulatorError::retry(format!(
                "builtin engine thread failed: {e}"
            )))
        }
    };
    let _ = run.report(primaries as i64, Some(0)).await;
    let secs = start.elapsed().as_secs_f64();
    run.log(format!(
        "done: {primaries} primaries in {secs:.2} s ({:.0} primaries/s)",
        primaries as f64 / secs.max(1e-9)
    ));
    let pages = estimators
        .into_iter()
        .flat_map(|est| {
            est.pages
                .into_iter()
                .enumerate()
                .map(move |(i, p)| TaskPage {
                    estimator: est.name.clone(),
                    page_number: i as i32,
                    meta: PageMeta {
                        name: p.name,
                        dimension: i16::from(p.dimension),
                        axes: serde_json::to_value(&p.axes).unwrap_or_default(),
                        value_name: p.value_name,
                        value_unit: p.value_unit,
                        metadata: serde_json::json!({}),
                        estimator_metadata: serde_json::json!({"simulator": "builtin"}),
                    },
                    aggregation: db::aggregation::Aggregation::Mean,
                    values: p.values,
                })
        })
        .collect();
    Ok(super::TaskResults {
        pages,
        primaries: Some(primaries as i64),
    })
}

fn eta_secs(elapsed: Duration, done: u64, total: u64) -> Option<i32> {
    if done == 0 {
        return None;
    }
    let left = elapsed.as_secs_f64() * (total.saturating_sub(done)) as f64 / done as f64;
    Some(left.min(f64::from(i32::MAX)) as i32)
}
