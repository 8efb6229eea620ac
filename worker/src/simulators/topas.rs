//! TOPAS as an external program: the parameter files in a private directory, the main file
//! rewritten for the task (the active source's `NumberOfHistoriesInRun` and `Ts/Seed`, see
//! [`sim_inputs::topas`]), `topas <main file>` run there, and every active scorer's `.csv`
//! file read directly ([`super::topas_csv`]; pymchelper's `convertmc` writes nothing for
//! TOPAS files).
//!
//! Each scorer becomes one estimator named after the scorer. A `Mean` page is averaged over
//! tasks weighted by their histories, a `Sum` page is summed. The task's weight, and the
//! primaries it shows, are the histories TOPAS says it ran: the sum of its "Particle source
//! X: Total number of histories: N" lines.
//!
//! TOPAS prints no progress the worker parses, so a TOPAS task shows its primaries when it
//! ends.

use super::{topas_csv, Run, SimulatorError};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The histories of one source from TOPAS's summary line
/// `Particle source Demo: Total number of histories: 20`.
pub fn source_histories(line: &str) -> Option<i64> {
    let rest = line.trim().strip_prefix("Particle source ")?;
    let (_, n) = rest.rsplit_once(": Total number of histories:")?;
    n.trim().parse().ok().filter(|&n: &i64| n >= 0)
}

/// Runs one task of TOPAS.
pub async fn run(
    run: &mut Run<'_>,
    files: &BTreeMap<String, String>,
) -> Result<super::TaskResults, SimulatorError> {
    let topas = Run::configured(run.settings.topas.as_ref(), "TOPAS", "--topas")?;
    let fatal = |e: sim_inputs::InputError| SimulatorError::fatal(e.0);
    // The checks of Submit again: inputs stored before them, or queued directly.
    sim_inputs::topas::validate(files, 1, run.task.requested_primaries).map_err(fatal)?;
    let seed = sim_inputs::topas::seed(run.task.simulation_id, run.task.task_index);
    let main = sim_inputs::topas::task_main_file(files, run.task.requested_primaries, seed)
        .map_err(fatal)?;
    let scorers = sim_inputs::topas::scorers(files).map_err(fatal)?;
    let dir = run.workdir()?;
    for (name, content) in files {
        let content = if *name == main.name {
            &main.text
        } else {
            content
        };
        dir.write_input(name, content)
            .map_err(SimulatorError::fatal)?;
    }
    run.log(format!(
        "TOPAS task: {}, {} = {}, Ts/Seed {seed}",
        main.name, main.source, run.task.requested_primaries
    ));
    let histories = Mutex::new(None::<i64>);
    let status = run
        .run_program(
            &topas,
            std::slice::from_ref(&main.name),
            dir.path(),
            |line| {
                if let (Some(n), Ok(mut total)) = (source_histories(line), histories.lock()) {
                    *total = Some(total.unwrap_or(0).saturating_add(n));
                }
                None
            },
        )
        .await?;
    if !status.success() {
        return Err(run.failed("TOPAS", status));
    }
    let mut pages = Vec::with_capacity(scorers.len());
    for s in &scorers {
        let page = topas_csv::read(&dir.path().join(&s.file))
            .map_err(|e| SimulatorError::fatal(format!("scorer {}: {e}", s.name)))?;
        pages.push(page);
    }
    pages.sort_by(|a, b| a.estimator.cmp(&b.estimator));
    let primaries = histories.into_inner().ok().flatten().filter(|&n| n > 0);
    Ok(super::TaskResults { pages, primaries })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histories_come_from_topas_summary_lines() {
        // The line of the captured TOPAS 3.9 run (captured/topas/stdout.txt).
        let line = "Particle source Demo: Total number of histories: 20";
        assert_eq!(source_histories(line), Some(20));
        assert_eq!(
            source_histories("Particle source My: Beam: Total number of histories: 7\r"),
            Some(7)
        );
        for other in [
            "G4WT6 > Begin processing for Run: 0, History: 6",
            "Particle source Demo: Total number of histories: many",
            "Particle source Demo: Total number of histories: -1",
            "Scorer: FluenceBPprotonsXY",
        ] {
            assert_eq!(source_histories(other), None, "{other}");
        }
    }
}
