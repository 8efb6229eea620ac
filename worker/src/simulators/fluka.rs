//! FLUKA as an external program, run as yaptide runs it: the input files in a private
//! directory, the main `.inp` rewritten by [`sim_inputs::fluka`] (`START` set to the task's
//! primaries, the one `RANDOMIZ` card to a seed of its own, in fixed or free format as the
//! input is written), `rfluka -M 1 <dir>/<name>.inp`, progress read from the run's
//! `fluka_*/<name>001.out` (the `NEXT SEEDS:` blocks), and the `<name>001_fort.NN` result
//! files converted by pymchelper's `convertmc json --many` (one estimator per unit `NN`,
//! weighted by the `number_of_primaries` FLUKA wrote into them).

use super::external::{External, Files, Prepared, Program, Progress, ProgressParser, Results};
use super::SimulatorError;
use db::queue::ClaimedTask;
use sim_inputs::fluka;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The end-of-run line of a `.out` file that finished normally.
fn is_end_line(line: &str) -> bool {
    let t = line.trim();
    t.starts_with("* ======") && t.contains("End of FLUKA") && t.ends_with("====== *")
}

/// Reads the progress blocks of a `.out` file: after a ` NEXT SEEDS:` line, a line of six
/// numbers holds the primaries handled, the primaries still to handle, …, and the average
/// time per primary (4th). Returns the last `(done, seconds left)` found in `text`.
pub fn parse_progress(text: &str) -> Option<(i64, Option<i32>)> {
    let mut after_seeds = false;
    let mut last = None;
    for line in text.lines() {
        if line.starts_with(" NEXT SEEDS:") {
            after_seeds = true;
            continue;
        }
        if after_seeds {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.len() == 6 && words.iter().all(|w| w.parse::<f64>().is_ok()) {
                let done = words[0].parse::<f64>().ok()?;
                let left = words[1].parse::<f64>().ok()?;
                let per = words[3].parse::<f64>().ok()?;
                let eta = left * per;
                let eta = (eta.is_finite() && (0.0..=f64::from(i32::MAX)).contains(&eta))
                    .then_some(eta.round() as i32);
                last = Some((done as i64, eta));
                after_seeds = false;
            }
        }
    }
    last
}

/// Follows the `.out` file of a running `rfluka` (in its `fluka_<pid>` scratch directory,
/// or in the work directory once rfluka has moved it there).
struct OutFollower {
    name: String,
    read: usize,
    tail: String,
}

impl OutFollower {
    fn find(&self, dir: &Path) -> Option<PathBuf> {
        let moved = dir.join(&self.name);
        if moved.exists() {
            return Some(moved);
        }
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("fluka_"))
            .map(|e| e.path().join(&self.name))
            .find(|p| p.exists())
    }

    /// New progress since the last call.
    fn poll(&mut self, dir: &Path) -> Option<(i64, Option<i32>)> {
        let bytes = std::fs::read(self.find(dir)?).ok()?;
        if bytes.len() < self.read {
            // A different file (moved, or rewritten): start over.
            self.read = 0;
            self.tail.clear();
        }
        let new = bytes.get(self.read..)?;
        self.read = bytes.len();
        // Keep an unfinished last line (and a pending NEXT SEEDS line) for the next call.
        self.tail.push_str(&String::from_utf8_lossy(new));
        let found = parse_progress(&self.tail);
        let keep_from = match self.tail.rfind(" NEXT SEEDS:") {
            // The last block still waits for its line of numbers.
            Some(m) if parse_progress(&self.tail[m..]).is_none() => m,
            _ => self.tail.rfind('\n').map_or(0, |i| i + 1),
        };
        self.tail.drain(..keep_from);
        found
    }
}

/// FLUKA's part of the external-program skeleton ([`super::external`]): one run's main
/// input and the follower of its `.out` file.
pub struct Fluka {
    stem: String,
    inp_name: String,
    out: OutFollower,
}

impl ProgressParser for Fluka {
    fn poll(&mut self, dir: &Path) -> Option<Progress> {
        self.out.poll(dir)
    }
}

impl External for Fluka {
    const PROGRAM: Program = Program::new("FLUKA", "--fluka", true, |s| s.fluka.as_ref());

    fn prepare(task: &ClaimedTask, files: &Files) -> Result<Prepared<Self>, SimulatorError> {
        let (stem, text) = fluka::main_input(files)?;
        let inp_name = format!("{stem}.inp");
        let seed = fluka::seed(task.simulation_id, task.task_index);
        let input = fluka::set_start_and_seed(&inp_name, text, task.requested_primaries, seed)?;
        let mut log = vec![format!("FLUKA task: {inp_name}, RANDOMIZ seed {seed}")];
        for keyword in ["RANDOMIZ", "START"] {
            for line in fluka::card_lines(&input, keyword) {
                log.push(format!("{inp_name}: {line}"));
            }
        }
        let out = OutFollower {
            name: format!("{stem}001.out"),
            read: 0,
            tail: String::new(),
        };
        Ok(Prepared {
            state: Fluka {
                stem: stem.to_string(),
                inp_name: inp_name.clone(),
                out,
            },
            rewrites: BTreeMap::from([(inp_name, input)]),
            log,
        })
    }

    fn args(&self, dir: &Path) -> Vec<String> {
        let inp = dir.join(&self.inp_name).to_string_lossy().into_owned();
        vec!["-M".into(), "1".into(), inp]
    }

    fn results(self, dir: &Path) -> Result<Results, SimulatorError> {
        let Fluka {
            stem,
            inp_name,
            out,
        } = self;
        let out_text = std::fs::read_to_string(dir.join(&out.name)).unwrap_or_default();
        if !out_text.lines().any(is_end_line) {
            let why = last_error_of(dir, &stem);
            return Err(SimulatorError::fatal(format!(
                "FLUKA did not finish its run: {} has no end-of-run line{}",
                out.name,
                why.map(|l| format!(" ({stem}001.err: {l})"))
                    .unwrap_or_default()
            )));
        }
        let wrote_results = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().contains("_fort."))
            })
            .unwrap_or(false);
        if !wrote_results {
            return Err(SimulatorError::fatal(format!(
                "FLUKA wrote no result files ({stem}001_fort.NN): the scoring cards of \
                 {inp_name} (USRBIN, USRBDX, USRTRACK, … with a negative, binary output unit) \
                 wrote nothing"
            )));
        }
        Ok(Results::Convert {
            pattern: "*_fort.*".into(),
            expected: Vec::new(),
        })
    }
}

/// The last non-empty line of `<stem>001.err`, if any.
fn last_error_of(dir: &Path, stem: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(format!("{stem}001.err"))).ok()?;
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_blocks_parse_like_yaptides_monitor() {
        let out = "\
1NUMBER OF BEAM      NUMBER OF BEAM      NUMBER OF BEAM      AVERAGE TIME
 NEXT SEEDS:    1234ABCD       0       0       0       0       0       0
     980000                 20000                 20000             1.8515483E-04         1.0000000E+30             44182
 some other line with six numbers 1 2 3 4 5 6
";
        assert_eq!(parse_progress(out), Some((980_000, Some(4))));
        assert_eq!(
            parse_progress("     980000 20000 20000 1E-4 1E30 4"),
            None,
            "no NEXT SEEDS"
        );
        let hours = " NEXT SEEDS: x\n 10 1000000000 1 1.0E+30 1.0 1\n";
        assert_eq!(
            parse_progress(hours),
            Some((10, None)),
            "an absurd estimate is dropped"
        );
    }

    #[test]
    fn the_end_line_is_recognised() {
        assert!(is_end_line(
            " * ======                      End of FLUKA 4-4.1 run                      ====== *"
        ));
        assert!(!is_end_line(" *** RUN TERMINATION FORCED FROM OUTSIDE ***"));
    }
}
