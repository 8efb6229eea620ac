//! SHIELD-HIT12A as an external program: input files in a private directory, `NSTAT` set to
//! the task's primaries and `RNDSEED` to the simulation's seed (see [`sim_inputs::shieldhit`]),
//! `shieldhit -N <seed offset> <dir>`, progress parsed from its log lines, and the `.bdo`
//! files it wrote converted by pymchelper's `convertmc json --many`.

use super::external::{External, Files, Prepared, Program, Progress, ProgressParser, Results};
use super::SimulatorError;
use db::queue::ClaimedTask;
use std::collections::BTreeMap;
use std::path::Path;

/// Parses `Primary particle no. 1234 ETR: 0 hour(s) 1 minute(s) 23 second(s)` into the
/// primaries simulated so far and the estimated seconds left.
pub fn parse_progress(line: &str) -> Option<(i64, i32)> {
    let rest = line.trim_start().strip_prefix("Primary particle no.")?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    // ["1234", "ETR:", "0", "hour(s)", "1", "minute(s)", "23", "second(s)"]
    if words.len() < 8 || words[1] != "ETR:" {
        return None;
    }
    let done = words[0].parse::<i64>().ok()?;
    let h = words[2].parse::<i64>().ok()?;
    let m = words[4].parse::<i64>().ok()?;
    let s = words[6].parse::<i64>().ok()?;
    let eta = (h * 3600 + m * 60 + s).clamp(0, i64::from(i32::MAX)) as i32;
    Some((done, eta))
}

/// SHIELD-HIT12A's part of the external-program skeleton ([`super::external`]): the state of
/// one run is its seed offset.
pub struct Shieldhit {
    offset: i32,
}

impl ProgressParser for Shieldhit {
    fn line(&mut self, line: &str) -> Option<Progress> {
        parse_progress(line).map(|(done, eta)| (done, Some(eta)))
    }
}

impl External for Shieldhit {
    const PROGRAM: Program = Program::new("SHIELD-HIT12A", "--shieldhit", true, |s| {
        s.shieldhit.as_ref()
    });

    fn prepare(task: &ClaimedTask, files: &Files) -> Result<Prepared<Self>, SimulatorError> {
        let beam = files
            .get("beam.dat")
            .ok_or_else(|| SimulatorError::fatal("the SHIELD-HIT12A input has no beam.dat"))?;
        let offset = sim_inputs::shieldhit::seed_offset(task.task_index)
            .map_err(|e| SimulatorError::fatal(e.to_string()))?;
        let beam =
            sim_inputs::shieldhit::task_beam(beam, task.requested_primaries, task.simulation_id);
        Ok(Prepared {
            state: Shieldhit { offset },
            rewrites: BTreeMap::from([("beam.dat".to_string(), beam)]),
            log: Vec::new(),
        })
    }

    fn args(&self, dir: &Path) -> Vec<String> {
        let dir = dir.to_string_lossy().into_owned();
        vec!["-N".into(), self.offset.to_string(), dir]
    }

    fn results(self, dir: &Path) -> Result<Results, SimulatorError> {
        // The estimators saved: `<core name>_NNNN.bdo`, NNNN the seed offset.
        let suffix = format!("_{:04}.bdo", self.offset);
        let saved: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.strip_suffix(&suffix).map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        if saved.is_empty() {
            return Err(SimulatorError::fatal(
                "SHIELD-HIT12A wrote no .bdo result files: detect.dat defines no Output it could \
                 score",
            ));
        }
        Ok(Results::Convert {
            pattern: format!("*{suffix}"),
            expected: saved,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_parse_like_yaptides_watcher() {
        assert_eq!(
            parse_progress(
                "Primary particle no.    1234 ETR:   0 hour(s)  1 minute(s) 23 second(s)"
            ),
            Some((1234, 83))
        );
        assert_eq!(
            parse_progress("Primary particle no. 10 ETR: 2 hour(s) 0 minute(s) 0 second(s)"),
            Some((10, 7200))
        );
        assert_eq!(
            parse_progress("Run time: 0 hour(s) 0 minute(s) 1 second(s)"),
            None
        );
        assert_eq!(
            parse_progress("Primary particle no. x ETR: 0 hour(s) 0 minute(s) 0 second(s)"),
            None
        );
        assert_eq!(parse_progress("Primary particle no. 5"), None);
    }
}
