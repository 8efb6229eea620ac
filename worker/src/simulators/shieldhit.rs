//! SHIELD-HIT12A as an external program: input files in a private directory, `NSTAT` set to
//! the task's primaries, `-N` seed, progress parsed from its log lines, and results read from
//! the JSON files that pymchelper's `convertmc json` writes (yaptide's page format).

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

/// `beam.dat` with its `NSTAT` line set to `primaries` (added when missing).
pub fn set_nstat(beam: &str, primaries: i64) -> String {
    let mut found = false;
    let mut out: Vec<String> = beam
        .lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            if !found && words.next() == Some("NSTAT") {
                found = true;
                // Keep the "step of saving" and any comment after the count.
                let rest: Vec<&str> = words.skip(1).collect();
                let tail = if rest.is_empty() {
                    "0".to_string()
                } else {
                    rest.join(" ")
                };
                format!("NSTAT       {primaries} {tail}")
            } else {
                line.to_string()
            }
        })
        .collect();
    if !found {
        out.push(format!("NSTAT       {primaries} 0"));
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// A seed for SHIELD-HIT12A's `-N` (1 ..= 2^31 - 1), distinct per task and deterministic.
pub fn seed(simulation_id: i64, task_index: i32) -> i64 {
    let mut x = (simulation_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (task_index as u64);
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    1 + (x % 0x7FFF_FFFE) as i64
}

/// Runs one task of SHIELD-HIT12A.
pub async fn run(
    run: &mut Run<'_>,
    files: &BTreeMap<String, String>,
) -> Result<Vec<db::results::TaskPage>, SimulatorError> {
    let shieldhit = Run::configured(
        run.settings.shieldhit.as_ref(),
        "SHIELD-HIT12A",
        "--shieldhit",
    )?;
    run.require_convertmc()?;
    let beam = files
        .get("beam.dat")
        .ok_or_else(|| SimulatorError::fatal("the SHIELD-HIT12A input has no beam.dat"))?;
    let dir = run.workdir()?;
    for (name, content) in files {
        let content = if name == "beam.dat" {
            set_nstat(beam, run.task.requested_primaries)
        } else {
            content.clone()
        };
        dir.write_input(name, &content)
            .map_err(SimulatorError::fatal)?;
    }
    let seed = seed(run.task.simulation_id, run.task.task_index);
    let workdir = dir.path().to_string_lossy().into_owned();
    let status = run
        .run_program(
            &shieldhit,
            &["-N".into(), seed.to_string(), workdir],
            dir.path(),
            parse_progress,
        )
        .await?;
    if !status.success() {
        return Err(run.failed("SHIELD-HIT12A", status));
    }
    run.convert_results(dir.path(), "*.bdo").await
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

    #[test]
    fn nstat_is_set_and_kept_otherwise() {
        let beam = "RNDSEED 1\nNSTAT       10000    0       ! NSTAT, Step of saving\nSTRAGG 2\n";
        let out = set_nstat(beam, 2501);
        assert!(
            out.contains("NSTAT       2501 0 ! NSTAT, Step of saving"),
            "{out}"
        );
        assert!(out.contains("RNDSEED 1") && out.contains("STRAGG 2"));
        assert!(set_nstat("JPART0 2\n", 7).ends_with("NSTAT       7 0\n"));
    }

    #[test]
    fn seeds_are_distinct_and_in_range() {
        let mut seen = std::collections::HashSet::new();
        for sim in 1..50 {
            for t in 0..20 {
                let s = seed(sim, t);
                assert!((1..=0x7FFF_FFFE).contains(&s));
                assert!(seen.insert(s));
                assert_eq!(s, seed(sim, t));
            }
        }
    }
}
