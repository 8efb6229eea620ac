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

use super::external::{External, Files, Prepared, Program, Progress, ProgressParser, Results};
use super::{topas_csv, SimulatorError, TaskResults};
use db::queue::ClaimedTask;
use std::collections::BTreeMap;
use std::path::Path;

/// The histories of one source from TOPAS's summary line
/// `Particle source Demo: Total number of histories: 20`.
pub fn source_histories(line: &str) -> Option<i64> {
    let rest = line.trim().strip_prefix("Particle source ")?;
    let (_, n) = rest.rsplit_once(": Total number of histories:")?;
    n.trim().parse().ok().filter(|&n: &i64| n >= 0)
}

/// TOPAS's part of the external-program skeleton ([`super::external`]): one run's main
/// file, its scorers, and the histories TOPAS said it ran.
pub struct Topas {
    main: String,
    scorers: Vec<sim_inputs::topas::Scorer>,
    histories: Option<i64>,
}

impl ProgressParser for Topas {
    /// No progress; counts the histories of the summary lines.
    fn line(&mut self, line: &str) -> Option<Progress> {
        if let Some(n) = source_histories(line) {
            self.histories = Some(self.histories.unwrap_or(0).saturating_add(n));
        }
        None
    }
}

impl External for Topas {
    const PROGRAM: Program = Program::new("TOPAS", "--topas", false, |s| s.topas.as_ref());

    fn prepare(task: &ClaimedTask, files: &Files) -> Result<Prepared<Self>, SimulatorError> {
        // The checks of Submit again: inputs stored before them, or queued directly.
        sim_inputs::topas::validate(files, 1, task.requested_primaries)?;
        let seed = sim_inputs::topas::seed(task.simulation_id, task.task_index);
        let main = sim_inputs::topas::task_main_file(files, task.requested_primaries, seed)?;
        let scorers = sim_inputs::topas::scorers(files)?;
        let log = vec![format!(
            "TOPAS task: {}, {} = {}, Ts/Seed {seed}",
            main.name, main.source, task.requested_primaries
        )];
        Ok(Prepared {
            state: Topas {
                main: main.name.clone(),
                scorers,
                histories: None,
            },
            rewrites: BTreeMap::from([(main.name, main.text)]),
            log,
        })
    }

    fn args(&self, _dir: &Path) -> Vec<String> {
        vec![self.main.clone()]
    }

    fn results(self, dir: &Path) -> Result<Results, SimulatorError> {
        let mut pages = Vec::with_capacity(self.scorers.len());
        for s in &self.scorers {
            let page = topas_csv::read(&dir.join(&s.file))
                .map_err(|e| SimulatorError::fatal(format!("scorer {}: {e}", s.name)))?;
            pages.push(page);
        }
        pages.sort_by(|a, b| a.estimator.cmp(&b.estimator));
        let primaries = self.histories.filter(|&n| n > 0);
        Ok(Results::Read(TaskResults { pages, primaries }))
    }
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
