//! TOPAS as an external program: the parameter files in a private directory, the source's
//! `NumberOfHistoriesInRun` set to the task's primaries and `Ts/Seed` to a seed of its own,
//! `topas <main file>` run there, and the scorers' `*.csv` files converted by pymchelper's
//! `convertmc json` (whose TOPAS reader takes each bin's mean per history).
//!
//! TOPAS prints no progress the worker parses, so a TOPAS task shows its primaries when it
//! ends. Inputs whose histories cannot be split exactly are refused: more than one source
//! with a history count, or a sequential time mode (histories × times).

use super::{Run, SimulatorError};
use std::collections::BTreeMap;

/// The main parameter file: `topas_config.txt` (the name yaptide's converter writes), else
/// the only `*.txt` file.
pub fn main_file(files: &BTreeMap<String, String>) -> Result<(&str, &str), String> {
    if let Some((name, text)) = files.get_key_value("topas_config.txt") {
        return Ok((name.as_str(), text.as_str()));
    }
    let txt: Vec<(&String, &String)> = files.iter().filter(|(n, _)| n.ends_with(".txt")).collect();
    match txt[..] {
        [(name, text)] => Ok((name.as_str(), text.as_str())),
        [] => Err("the TOPAS input has no parameter file (*.txt)".into()),
        _ => Err(format!(
            "the TOPAS input has {} parameter files and no topas_config.txt; name the main one \
             topas_config.txt",
            txt.len()
        )),
    }
}

/// A parameter line `type:Name = value` (comments after `#` removed): its name (without the
/// type prefix) and value.
fn parameter(line: &str) -> Option<(&str, &str)> {
    let code = line.split('#').next()?.trim();
    let (lhs, value) = code.split_once('=')?;
    let (_, name) = lhs.trim().split_once(':')?;
    Some((name.trim(), value.trim()))
}

/// The parameter file with the one `So/<source>/NumberOfHistoriesInRun` set to `primaries`
/// and `Ts/Seed` set to `seed` (added when missing).
pub fn set_histories_and_seed(text: &str, primaries: i64, seed: i64) -> Result<String, String> {
    let mut sources = Vec::new();
    let mut seeded = false;
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        match parameter(line) {
            Some((name, _))
                if name.starts_with("So/") && name.ends_with("/NumberOfHistoriesInRun") =>
            {
                sources.push(name.to_string());
                out.push(format!("i:{name} = {primaries}"));
            }
            Some(("Ts/Seed", _)) => {
                seeded = true;
                out.push(format!("i:Ts/Seed = {seed}"));
            }
            Some(("Tf/NumberOfSequentialTimes", v)) if v.parse::<i64>() != Ok(1) => {
                return Err(format!(
                    "TOPAS sequential time mode (Tf/NumberOfSequentialTimes = {v}) is not supported: \
                     the histories of a task would not be its primaries"
                ));
            }
            _ => out.push(line.to_string()),
        }
    }
    match sources.len() {
        1 => {}
        0 => {
            return Err(
                "the TOPAS parameter file sets no So/<source>/NumberOfHistoriesInRun".into(),
            )
        }
        _ => {
            return Err(format!(
                "the TOPAS parameter file has {} sources with histories ({}); one is supported",
                sources.len(),
                sources.join(", ")
            ))
        }
    }
    if !seeded {
        out.push(format!("i:Ts/Seed = {seed}"));
    }
    let mut s = out.join("\n");
    s.push('\n');
    Ok(s)
}

/// Runs one task of TOPAS.
pub async fn run(
    run: &mut Run<'_>,
    files: &BTreeMap<String, String>,
) -> Result<Vec<db::results::TaskPage>, SimulatorError> {
    let topas = Run::configured(run.settings.topas.as_ref(), "TOPAS", "--topas")?;
    run.require_convertmc()?;
    let (main, text) = main_file(files).map_err(SimulatorError::fatal)?;
    let seed = super::shieldhit::seed(run.task.simulation_id, run.task.task_index);
    let params = set_histories_and_seed(text, run.task.requested_primaries, seed)
        .map_err(SimulatorError::fatal)?;
    let dir = run.workdir()?;
    for (name, content) in files {
        let content = if name == main { &params } else { content };
        dir.write_input(name, content)
            .map_err(SimulatorError::fatal)?;
    }
    run.log(format!("TOPAS task: {main}, Ts/Seed {seed}"));
    let status = run
        .run_program(&topas, &[main.to_string()], dir.path(), |_| None)
        .await?;
    if !status.success() {
        return Err(run.failed("TOPAS", status));
    }
    run.convert_results(dir.path(), "*.csv").await
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
# Proton beam on water (as yaptide's converter writes it)
s:So/Demo/Type = \"Beam\"
i:So/Demo/NumberOfHistoriesInRun = 5000 # all tasks together
d:So/Demo/BeamEnergy = 150 MeV
s:Sc/Dose/Quantity = \"DoseToMedium\"
i:Ts/ShowHistoryCountAtInterval = 50
";

    #[test]
    fn histories_are_set_and_a_seed_added() {
        let out = set_histories_and_seed(CONFIG, 2501, 77).unwrap();
        assert!(
            out.contains("i:So/Demo/NumberOfHistoriesInRun = 2501\n"),
            "{out}"
        );
        assert!(!out.contains("5000"));
        assert!(out.ends_with("i:Ts/Seed = 77\n"), "{out}");
        assert!(out.contains("d:So/Demo/BeamEnergy = 150 MeV"));
        let again = set_histories_and_seed(&out, 10, 78).unwrap();
        assert_eq!(
            again.matches("Ts/Seed").count(),
            1,
            "an existing seed is replaced"
        );
        assert!(again.contains("i:Ts/Seed = 78"));
    }

    #[test]
    fn splits_that_would_not_be_exact_are_refused() {
        let two = format!("{CONFIG}i:So/Other/NumberOfHistoriesInRun = 10\n");
        assert!(set_histories_and_seed(&two, 1, 1)
            .unwrap_err()
            .contains("2 sources"));
        assert!(set_histories_and_seed("s:So/Demo/Type = \"Beam\"\n", 1, 1)
            .unwrap_err()
            .contains("no So/<source>/NumberOfHistoriesInRun"));
        let timed = format!("{CONFIG}i:Tf/NumberOfSequentialTimes = 100\n");
        assert!(set_histories_and_seed(&timed, 1, 1)
            .unwrap_err()
            .contains("sequential time mode"));
        let commented = format!("{CONFIG}# i:So/Other/NumberOfHistoriesInRun = 10\n");
        assert!(
            set_histories_and_seed(&commented, 1, 1).is_ok(),
            "comments do not count"
        );
    }

    #[test]
    fn the_main_file_is_topas_config_or_the_only_txt() {
        let mut files = BTreeMap::new();
        assert!(main_file(&files).unwrap_err().contains("no parameter file"));
        files.insert("beam.txt".to_string(), "a".to_string());
        assert_eq!(main_file(&files).unwrap().0, "beam.txt");
        files.insert("geometry.txt".to_string(), "b".to_string());
        assert!(main_file(&files).unwrap_err().contains("2 parameter files"));
        files.insert("topas_config.txt".to_string(), "c".to_string());
        assert_eq!(main_file(&files).unwrap(), ("topas_config.txt", "c"));
    }
}
