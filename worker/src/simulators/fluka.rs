//! FLUKA as an external program, run as yaptide runs it: the input files in a private
//! directory, the `START` card set to the task's primaries and the `RANDOMIZ` card to a seed
//! of its own, `rfluka -M 1 <dir>/<name>.inp`, progress read from the run's
//! `fluka_*/<name>001.out` (the `NEXT SEEDS:` blocks), and results converted from the
//! `*_fort.*` files by pymchelper's `convertmc json`.
//!
//! Only fixed-format input is rewritten (10-column fields, as flair writes it): an input that
//! switches to free format is refused with a clear message rather than guessed at.

use super::{Run, SimulatorError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The most primaries one task may run: `START`'s WHAT(1) must fit a 10-column field
/// exactly (a rounded number would make the merge weights wrong).
pub const MAX_PRIMARIES: i64 = 999_999_999;

/// The end-of-run line of a `.out` file that finished normally.
fn is_end_line(line: &str) -> bool {
    let t = line.trim();
    t.starts_with("* ======") && t.contains("End of FLUKA") && t.ends_with("====== *")
}

/// The input: the one `*.inp` file's name without `.inp`, and its text.
pub fn main_input(files: &BTreeMap<String, String>) -> Result<(&str, &str), String> {
    let inputs: Vec<(&String, &String)> = files
        .iter()
        .filter(|(name, _)| name.ends_with(".inp") && name.len() > 4)
        .collect();
    match inputs[..] {
        [(name, text)] => Ok((&name[..name.len() - 4], text.as_str())),
        [] => Err("the FLUKA input has no .inp file".into()),
        _ => Err(format!(
            "the FLUKA input has {} .inp files ({}); send exactly one",
            inputs.len(),
            inputs
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The card name of a fixed-format line (columns 1–10), if it is a card.
fn keyword(line: &str) -> Option<&str> {
    if line.starts_with('*') || line.starts_with('!') {
        return None;
    }
    let head: String = line.chars().take(10).collect();
    if head.trim().is_empty() {
        return None;
    }
    line.split_whitespace().next()
}

/// `line` with WHAT(`n`) (1-based; columns `10n+1 ..= 10n+10`) set to `value`, right-aligned,
/// keeping every other column.
fn set_what(line: &str, n: usize, value: &str) -> String {
    let mut cols: Vec<char> = line.chars().collect();
    let start = 10 * n;
    if cols.len() < start + 10 {
        cols.resize(start + 10, ' ');
    }
    let field: Vec<char> = format!("{value:>10}").chars().collect();
    cols.splice(start..start + 10, field);
    cols.into_iter().collect::<String>().trim_end().to_string()
}

/// The input with `START`'s WHAT(1) set to `primaries` and `RANDOMIZ` set to unit 1 and
/// `seed` (a `RANDOMIZ` card is added before `START` when there is none). Refuses
/// free-format input, a missing `START`, and primaries that do not fit the field.
pub fn set_start_and_seed(input: &str, primaries: i64, seed: i64) -> Result<String, String> {
    if !(1..=MAX_PRIMARIES).contains(&primaries) {
        return Err(format!(
            "a FLUKA task runs 1 to {MAX_PRIMARIES} primaries, not {primaries}; use more tasks"
        ));
    }
    let mut in_geometry = false;
    let mut start_at = None;
    let mut has_randomiz = false;
    let mut out: Vec<String> = Vec::new();
    for line in input.lines() {
        let k = if in_geometry { None } else { keyword(line) };
        match k {
            Some("GEOBEGIN") => in_geometry = true,
            Some("FREE") => {
                return Err(
                    "free-format FLUKA input (a FREE card) is not supported; use fixed format"
                        .into(),
                )
            }
            Some("GLOBAL") if what(line, 4).is_some_and(|w| w >= 2.0) => {
                return Err(
                    "free-format FLUKA input (GLOBAL WHAT(4) >= 2) is not supported; use fixed \
                     format"
                        .into(),
                )
            }
            Some("START") if start_at.is_none() => {
                start_at = Some(out.len());
                out.push(set_what(line, 1, &format!("{primaries}.")));
                continue;
            }
            Some("RANDOMIZ") => {
                has_randomiz = true;
                let l = set_what(line, 1, "1.0");
                out.push(set_what(&l, 2, &format!("{seed}.")));
                continue;
            }
            _ => {}
        }
        if in_geometry && line.trim_start().starts_with("GEOEND") {
            in_geometry = false;
        }
        out.push(line.to_string());
    }
    let Some(start_at) = start_at else {
        return Err("the FLUKA input has no START card".into());
    };
    if !has_randomiz {
        out.insert(
            start_at,
            set_what(&set_what("RANDOMIZ", 1, "1.0"), 2, &format!("{seed}.")),
        );
    }
    let mut text = out.join("\n");
    text.push('\n');
    Ok(text)
}

/// WHAT(`n`) of a fixed-format line as a number, if present.
fn what(line: &str, n: usize) -> Option<f64> {
    let field: String = line.chars().skip(10 * n).take(10).collect();
    field.trim().parse().ok()
}

/// A seed for `RANDOMIZ` WHAT(2) (FLUKA takes seeds below 9·10⁸), distinct per task and
/// deterministic.
pub fn seed(simulation_id: i64, task_index: i32) -> i64 {
    1 + super::shieldhit::seed(simulation_id, task_index) % 899_999_998
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
    dir: PathBuf,
    name: String,
    read: usize,
    tail: String,
}

impl OutFollower {
    fn find(&self) -> Option<PathBuf> {
        let moved = self.dir.join(&self.name);
        if moved.exists() {
            return Some(moved);
        }
        std::fs::read_dir(&self.dir)
            .ok()?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("fluka_"))
            .map(|e| e.path().join(&self.name))
            .find(|p| p.exists())
    }

    /// New progress since the last call.
    fn poll(&mut self) -> Option<(i64, Option<i32>)> {
        let bytes = std::fs::read(self.find()?).ok()?;
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

/// Runs one task of FLUKA.
pub async fn run(
    run: &mut Run<'_>,
    files: &BTreeMap<String, String>,
) -> Result<Vec<db::results::TaskPage>, SimulatorError> {
    let rfluka = Run::configured(run.settings.fluka.as_ref(), "FLUKA", "--fluka")?;
    run.require_convertmc()?;
    let (stem, text) = main_input(files).map_err(SimulatorError::fatal)?;
    let seed = seed(run.task.simulation_id, run.task.task_index);
    let input = set_start_and_seed(text, run.task.requested_primaries, seed)
        .map_err(SimulatorError::fatal)?;
    let dir = run.workdir()?;
    for (name, content) in files {
        let content = if name == &format!("{stem}.inp") {
            &input
        } else {
            content
        };
        dir.write_input(name, content)
            .map_err(SimulatorError::fatal)?;
    }
    let inp = dir.path().join(format!("{stem}.inp"));
    let out_name = format!("{stem}001.out");
    let mut follower = OutFollower {
        dir: dir.path().to_path_buf(),
        name: out_name.clone(),
        read: 0,
        tail: String::new(),
    };
    run.log(format!("FLUKA task: {stem}.inp, RANDOMIZ seed {seed}"));
    let status = run
        .run_program_polling(
            &rfluka,
            &["-M".into(), "1".into(), inp.to_string_lossy().into_owned()],
            dir.path(),
            |_| None,
            || follower.poll(),
        )
        .await?;
    let out_text = std::fs::read_to_string(dir.path().join(&out_name)).unwrap_or_default();
    if !status.success() {
        return Err(run.failed("FLUKA", status));
    }
    if !out_text.lines().any(is_end_line) {
        let why = last_error_of(dir.path(), stem);
        return Err(SimulatorError::fatal(format!(
            "FLUKA did not finish its run: {out_name} has no end-of-run line{}",
            why.map(|l| format!(" ({stem}001.err: {l})"))
                .unwrap_or_default()
        )));
    }
    run.convert_results(dir.path(), "*_fort.*").await
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

    const INPUT: &str = "\
TITLE
Proton beam on water
* comment START  999
BEAM          -0.150                                                  PROTON
GEOBEGIN                                                              COMBNAME
START is a body name here, not a card
GEOEND
START         10000.       0.0       1.0                              
STOP
";

    #[test]
    fn start_is_set_and_a_randomiz_card_added_before_it() {
        let out = set_start_and_seed(INPUT, 2501, 4242).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        let start = lines.iter().rposition(|l| l.starts_with("START ")).unwrap();
        assert_eq!(
            lines[start], "START          2501.       0.0       1.0",
            "WHAT(1) set, the other fields kept"
        );
        assert_eq!(lines[start - 1], "RANDOMIZ         1.0     4242.");
        assert!(
            out.contains("START is a body name here"),
            "geometry untouched"
        );
        assert!(out.contains("* comment START  999"), "comments untouched");
        assert_eq!(what(lines[start], 1), Some(2501.0));
        assert_eq!(what(lines[start - 1], 2), Some(4242.0));
    }

    #[test]
    fn an_existing_randomiz_card_gets_the_seed() {
        let input = "RANDOMIZ         1.0  54217137\nSTART           100.\nSTOP\n";
        let out = set_start_and_seed(input, 7, 99).unwrap();
        assert_eq!(
            out,
            "RANDOMIZ         1.0       99.\nSTART             7.\nSTOP\n"
        );
    }

    #[test]
    fn free_format_no_start_and_huge_counts_are_refused() {
        let free = "FREE\nSTART, 100.\nSTOP\n";
        assert!(set_start_and_seed(free, 7, 1)
            .unwrap_err()
            .contains("free-format"));
        let global = format!("{}\nSTART 100.\n", set_what("GLOBAL", 4, "2.0"));
        assert!(set_start_and_seed(&global, 7, 1)
            .unwrap_err()
            .contains("free-format"));
        assert!(set_start_and_seed("BEAM 1.\nSTOP\n", 7, 1)
            .unwrap_err()
            .contains("no START card"));
        assert!(set_start_and_seed(INPUT, MAX_PRIMARIES + 1, 1)
            .unwrap_err()
            .contains("use more tasks"));
    }

    #[test]
    fn the_one_inp_file_is_the_input() {
        let mut files = BTreeMap::new();
        files.insert("source.dat".to_string(), "x".to_string());
        assert!(main_input(&files).unwrap_err().contains("no .inp"));
        files.insert("fl_sim.inp".to_string(), "START".to_string());
        assert_eq!(main_input(&files).unwrap(), ("fl_sim", "START"));
        files.insert("other.inp".to_string(), "START".to_string());
        assert!(main_input(&files).unwrap_err().contains("2 .inp files"));
    }

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

    #[test]
    fn seeds_fit_randomiz() {
        for sim in 1..30 {
            for t in 0..30 {
                let s = seed(sim, t);
                assert!((1..900_000_000).contains(&s));
            }
        }
    }
}
