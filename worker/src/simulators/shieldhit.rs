//! SHIELD-HIT12A as an external program: input files in a private directory, `NSTAT` set to
//! the task's primaries and `RNDSEED` to the simulation's seed (see [`sim_inputs::shieldhit`]),
//! `shieldhit -N <seed offset> <dir>`, progress parsed from its log lines, and the `.bdo`
//! files it wrote converted by pymchelper's `convertmc json --many`.

use super::{Run, SimulatorError};
use std::collections::BTreeMap;

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

/// Runs one task of SHIELD-HIT12A.
pub async fn run(
    run: &mut Run<'_>,
    files: &BTreeMap<String, String>,
) -> Result<super::TaskResults, SimulatorError> {
    let shieldhit = Run::configured(
        run.settings.shieldhit.as_ref(),
        "SHIELD-HIT12A",
        "--shieldhit",
    )?;
    run.require_convertmc()?;
    let beam = files
        .get("beam.dat")
        .ok_or_else(|| SimulatorError::fatal("the SHIELD-HIT12A input has no beam.dat"))?;
    let offset = sim_inputs::shieldhit::seed_offset(run.task.task_index)
        .map_err(|e| SimulatorError::fatal(e.to_string()))?;
    let dir = run.workdir()?;
    for (name, content) in files {
        let content = if name == "beam.dat" {
            sim_inputs::shieldhit::task_beam(
                beam,
                run.task.requested_primaries,
                run.task.simulation_id,
            )
        } else {
            content.clone()
        };
        dir.write_input(name, &content)
            .map_err(SimulatorError::fatal)?;
    }
    let workdir = dir.path().to_string_lossy().into_owned();
    let status = run
        .run_program(
            &shieldhit,
            &["-N".into(), offset.to_string(), workdir],
            dir.path(),
            parse_progress,
        )
        .await?;
    if !status.success() {
        return Err(run.failed("SHIELD-HIT12A", status));
    }
    // The estimators saved: `<core name>_NNNN.bdo`, NNNN the seed offset.
    let suffix = format!("_{offset:04}.bdo");
    let saved: Vec<String> = std::fs::read_dir(dir.path())
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
            "SHIELD-HIT12A wrote no .bdo result files: detect.dat defines no Output it could score",
        ));
    }
    run.convert_results(dir.path(), &format!("*{suffix}"), &saved)
        .await
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
