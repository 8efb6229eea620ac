//! SHIELD-HIT12A input: the four files `beam.dat`, `detect.dat`, `geo.dat` and `mat.dat`.
//!
//! Per task the worker sets `NSTAT` (primaries) and `RNDSEED` in `beam.dat`, and passes the
//! task's seed offset as `-N`. SHIELD-HIT12A adds the offset to `RNDSEED` and names every
//! output file `<name>_NNNN.bdo` with it (4 digits, at most 9999); pymchelper groups a task's
//! files by stripping exactly those 4 digits, so the offsets of one simulation are
//! `1..=ntasks` and simulations differ by their `RNDSEED` instead.

use crate::{InputError, MAX_PAGE_VALUES};
use std::collections::BTreeMap;

#[path = "shieldhit_pages.rs"]
pub mod pages;

/// The largest seed offset: SHIELD-HIT12A writes it as 4 digits into every output file name.
pub const MAX_SEED_OFFSET: i32 = 9999;

/// The most primaries one task may run: `NSTAT` is a 32-bit integer in SHIELD-HIT12A.
pub const MAX_PRIMARIES: i64 = i32::MAX as i64;

/// The files every SHIELD-HIT12A run reads.
pub const REQUIRED_FILES: [&str; 4] = ["beam.dat", "detect.dat", "geo.dat", "mat.dat"];

/// The seed offset (`-N`) of task `task_index` (0-based): `task_index + 1`, so that the
/// offsets of a simulation are distinct and its output names group as pymchelper expects.
pub fn seed_offset(task_index: i32) -> Result<i32, InputError> {
    match task_index.checked_add(1) {
        Some(n @ 1..=MAX_SEED_OFFSET) => Ok(n),
        _ => Err(InputError::new(format!(
            "SHIELD-HIT12A runs at most {MAX_SEED_OFFSET} tasks (the seed offset is 4 digits \
             of every output file name); task {task_index} is beyond that"
        ))),
    }
}

/// The `RNDSEED` of a simulation: distinct between simulations, deterministic, in
/// `1..=99_999_999` (8 digits, like the seeds in SHIELD-HIT12A's example inputs), with room
/// for the seed offset added to it.
pub fn rndseed(simulation_id: i64) -> i64 {
    let mut x = (simulation_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    1 + (x % 99_999_999) as i64
}

/// `beam.dat` with its first `keyword` line's first value set to `value` (the rest of the
/// line, e.g. `NSTAT`'s "step of saving" and a comment, kept), or the line added.
fn set_card(beam: &str, keyword: &str, value: i64, default_tail: &str) -> String {
    let mut found = false;
    let mut out: Vec<String> = beam
        .lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            if !found && words.next() == Some(keyword) {
                found = true;
                let rest: Vec<&str> = words.skip(1).collect();
                let tail = if rest.is_empty() {
                    default_tail.to_string()
                } else {
                    rest.join(" ")
                };
                format!("{keyword:<12}{value} {tail}")
                    .trim_end()
                    .to_string()
            } else {
                line.to_string()
            }
        })
        .collect();
    if !found {
        out.push(
            format!("{keyword:<12}{value} {default_tail}")
                .trim_end()
                .to_string(),
        );
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// `beam.dat` with `NSTAT` set to `primaries` (added when missing; the step of saving kept).
pub fn set_nstat(beam: &str, primaries: i64) -> String {
    set_card(beam, "NSTAT", primaries, "0")
}

/// `beam.dat` with `RNDSEED` set to `seed` (added when missing).
pub fn set_rndseed(beam: &str, seed: i64) -> String {
    set_card(beam, "RNDSEED", seed, "")
}

/// The `beam.dat` a task runs: `NSTAT` = its primaries, `RNDSEED` = its simulation's seed.
pub fn task_beam(beam: &str, primaries: i64, simulation_id: i64) -> String {
    set_rndseed(&set_nstat(beam, primaries), rndseed(simulation_id))
}

/// Whether a line of an input file is a comment (`*`, `!`, `#`) or blank.
fn is_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.is_empty() || t.starts_with('*') || t.starts_with('!') || t.starts_with('#')
}

/// The number of outputs `detect.dat` defines: `Output` blocks in the current format, or
/// scoring cards (one per line) in the old fixed format.
pub fn output_count(detect: &str) -> usize {
    let first_words = || {
        detect
            .lines()
            .filter(|l| !is_comment(l))
            .filter_map(|l| l.split_whitespace().next())
    };
    let keyword = |w: &str, k: &str| w.eq_ignore_ascii_case(k);
    let current = first_words().any(|w| {
        ["Geometry", "Output", "Filter", "Scoring"]
            .iter()
            .any(|k| keyword(w, k))
    });
    if current {
        first_words().filter(|w| keyword(w, "Output")).count()
    } else {
        first_words().count()
    }
}

/// Refuses a `detect.dat` page of more than [`MAX_PAGE_VALUES`] values, naming its output,
/// quantity and geometry, its bins and the limit.
fn check_page_sizes(detect: &str) -> Result<(), InputError> {
    let limit = MAX_PAGE_VALUES as u64;
    match pages::pages(detect).into_iter().find(|p| p.values > limit) {
        None => Ok(()),
        Some(p) => Err(InputError::new(format!(
            "detect.dat: Output {}, Quantity {} on Geometry {} makes a page of {} values ({}), \
             more than the limit of {limit} values per page; use fewer bins",
            p.output, p.quantity, p.geometry, p.values, p.binning
        ))),
    }
}

/// Checks a SHIELD-HIT12A input at Submit: the four files, `NSTAT` in `beam.dat`, at least
/// one output in `detect.dat` and no page of more than [`MAX_PAGE_VALUES`] values
/// ([`pages::pages`]), at most [`MAX_SEED_OFFSET`] tasks and [`MAX_PRIMARIES`] per task.
pub fn validate(
    files: &BTreeMap<String, String>,
    ntasks: i32,
    primaries_per_task: i64,
) -> Result<(), InputError> {
    let missing: Vec<&str> = REQUIRED_FILES
        .into_iter()
        .filter(|f| !files.contains_key(*f))
        .collect();
    if !missing.is_empty() {
        return Err(InputError::new(format!(
            "the SHIELD-HIT12A input lacks {}",
            missing.join(", ")
        )));
    }
    let beam = &files["beam.dat"];
    let has_nstat = beam
        .lines()
        .filter(|l| !is_comment(l))
        .any(|l| l.split_whitespace().next() == Some("NSTAT"));
    if !has_nstat {
        return Err(InputError::new("beam.dat has no NSTAT card"));
    }
    if output_count(&files["detect.dat"]) == 0 {
        return Err(InputError::new(
            "detect.dat defines no Output: the run would score nothing",
        ));
    }
    check_page_sizes(&files["detect.dat"])?;
    if ntasks > MAX_SEED_OFFSET {
        return Err(InputError::new(format!(
            "SHIELD-HIT12A runs at most {MAX_SEED_OFFSET} tasks per simulation (the seed \
             offset is 4 digits of every output file name), not {ntasks}"
        )));
    }
    if primaries_per_task > MAX_PRIMARIES {
        return Err(InputError::new(format!(
            "{primaries_per_task} primaries per task do not fit SHIELD-HIT12A's NSTAT (at most \
             {MAX_PRIMARIES}); use more tasks"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn files(detect: &str, beam: &str) -> BTreeMap<String, String> {
        REQUIRED_FILES
            .iter()
            .map(|f| (f.to_string(), String::new()))
            .chain([
                ("beam.dat".to_string(), beam.to_string()),
                ("detect.dat".to_string(), detect.to_string()),
            ])
            .collect()
    }

    const BEAM: &str = "RNDSEED      \t89736501     ! Random seed\nNSTAT           1000    1000 ! NSTAT, Step of saving\n";
    const DETECT: &str = "Geometry Mesh\n    Name M\n    X -5 5 1\n\nOutput\n    Filename dose.bdo\n    Geo M\n    Quantity Dose\n";

    #[test]
    fn nstat_and_rndseed_are_set_and_the_rest_kept() {
        let out = task_beam(BEAM, 2501, 7);
        assert!(
            out.contains("NSTAT       2501 1000 ! NSTAT, Step of saving"),
            "{out}"
        );
        assert!(
            out.contains(&format!("RNDSEED     {} ! Random seed", rndseed(7))),
            "{out}"
        );
        assert!(!out.contains("89736501"));
        let added = task_beam("JPART0 2\n", 7, 1);
        assert!(
            added.contains("NSTAT       7 0\n") && added.contains("RNDSEED"),
            "{added}"
        );
    }

    #[test]
    fn offsets_are_1_to_9999_and_simulations_differ_by_rndseed() {
        assert_eq!(seed_offset(0), Ok(1));
        assert_eq!(seed_offset(9998), Ok(9999));
        assert!(seed_offset(9999).is_err());
        assert!(seed_offset(-5).is_err());
        let seeds: std::collections::HashSet<i64> = (1..2000).map(rndseed).collect();
        assert_eq!(seeds.len(), 1999);
        assert!(seeds.iter().all(|s| (1..=99_999_999).contains(s)));
    }

    #[test]
    fn submit_checks_name_the_cause() {
        assert_eq!(validate(&files(DETECT, BEAM), 4, 1000), Ok(()));
        let no_output = "Geometry Mesh\n    Name M\n";
        let e = validate(&files(no_output, BEAM), 1, 10).unwrap_err();
        assert!(e.0.contains("detect.dat defines no Output"), "{e}");
        let e = validate(&files(DETECT, "JPART0 2\n"), 1, 10).unwrap_err();
        assert!(e.0.contains("NSTAT"), "{e}");
        let e = validate(&files(DETECT, BEAM), 10_000, 10).unwrap_err();
        assert!(e.0.contains("9999"), "{e}");
        assert!(validate(&files(DETECT, BEAM), 1, MAX_PRIMARIES + 1).is_err());
        let mut partial = files(DETECT, BEAM);
        partial.remove("mat.dat");
        let e = validate(&partial, 1, 10).unwrap_err();
        assert!(e.0.contains("mat.dat"), "{e}");
    }

    fn real(rel: &str) -> String {
        let path = crate::testdata::pymchelper_data(rel);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// (output, values) of every page `detect` asks for.
    fn sizes(detect: &str) -> Vec<(String, u64)> {
        pages::pages(detect)
            .into_iter()
            .map(|p| (p.output, p.values))
            .collect()
    }

    #[test]
    fn the_real_detectors_pages_have_their_bins() {
        let captured = real("captured/shieldhit/input/detect.dat");
        assert_eq!(
            sizes(&captured),
            [
                ("mesh.bdo".to_string(), 16),
                ("fluence.bdo".to_string(), 16)
            ]
        );
        assert_eq!(pages::pages(&captured)[0].binning, "X 1 × Y 4 × Z 4");
        // Material and Rho, Count, DLET and TLET, Dose and Fluence; the MCPL page is not bins.
        let averaging = real("shieldhit/averaging/detect.dat");
        let pages = pages::pages(&averaging);
        assert_eq!(pages.len(), 7);
        assert!(pages
            .iter()
            .all(|p| p.values == 1 && p.geometry == "MyMesh_YZ (Mesh)"));
        // pymchelper's generated old-format cards: 1, 10, 100 or 1000 bins by their name;
        // zones 1 to 1, 1 to 3 and 2 to 3 (`z1`, `z13`, `z23`).
        for kind in ["cyl", "msh", "geomap", "plane", "zone"] {
            let text = real(&format!("shieldhit/generated/detect_{kind}.dat"));
            let all = sizes(&text);
            assert!(!all.is_empty(), "{kind}");
            for (output, values) in all {
                let shape = output.split('_').nth(1).unwrap();
                let want = match (kind, shape) {
                    ("zone", "z13") => 3,
                    ("zone", "z23") => 2,
                    ("plane" | "zone", _) | (_, "0") => 1,
                    _ => 10u64.pow(shape.len() as u32),
                };
                assert_eq!(values, want, "{kind}: {output}");
            }
        }
    }

    fn mesh(x: u64, y: u64, z: u64, output_tail: &str) -> String {
        format!(
            "Geometry Mesh\n    Name Big\n    X -5 5 {x}\n    Y -5 5 {y}\n    Z 0 30 {z}\n\n\
             Output\n    Filename big.bdo\n    Geo Big\n{output_tail}"
        )
    }

    #[test]
    fn a_page_over_the_limit_is_refused_naming_it_and_the_limit() {
        // 200 × 200 × 100 = 4 M values: fits.
        let ok = mesh(200, 200, 100, "    Quantity Dose\n    Quantity Fluence\n");
        assert_eq!(
            sizes(&ok),
            [
                ("big.bdo".to_string(), 4_000_000),
                ("big.bdo".to_string(), 4_000_000)
            ]
        );
        assert_eq!(validate(&files(&ok, BEAM), 1, 10), Ok(()));
        // 300 × 300 × 200 = 18 M values.
        let big = mesh(300, 300, 200, "    Quantity Dose\n");
        let e = validate(&files(&big, BEAM), 1, 10).unwrap_err().0;
        assert!(
            e.contains("detect.dat: Output big.bdo, Quantity Dose on Geometry Big (Mesh)")
                && e.contains("18000000 values (X 300 × Y 300 × Z 200)")
                && e.contains(&format!("limit of {MAX_PAGE_VALUES} values")),
            "{e}"
        );
        // Differential scoring multiplies the page it follows: 4 M × 10 energy bins.
        let diff = mesh(
            200,
            200,
            100,
            "    Quantity Dose\n    Quantity Fluence\n    Diff1 0 150 10 LOG\n    Diff1Type E\n",
        );
        assert_eq!(sizes(&diff)[0].1, 4_000_000);
        assert_eq!(sizes(&diff)[1].1, 40_000_000);
        let e = validate(&files(&diff, BEAM), 1, 10).unwrap_err().0;
        assert!(
            e.contains("Quantity Fluence") && e.contains("× Diff1 10)"),
            "{e}"
        );
        // Before any Quantity, a Diff line applies to all of them; Diff2 multiplies again.
        let shared = mesh(
            10,
            10,
            10,
            "    Diff1 0 1 20\n    Diff2 0 1 30\n    Quantity Dose\n",
        );
        assert_eq!(sizes(&shared), [("big.bdo".to_string(), 600_000)]);
        // A cylinder: R × Z (× Phi).
        let cyl = "Geometry Cyl\n  Name C\n  R 0 10 5000\n  Z 0 20 4000\n\
                   Output\n  Filename c.bdo\n  Geo C\n  Quantity Dose\n";
        let e = validate(&files(cyl, BEAM), 1, 10).unwrap_err().0;
        assert!(e.contains("20000000 values (R 5000 × Z 4000)"), "{e}");
        // A phase space is not bins.
        let mcpl = mesh(300, 300, 200, "    Quantity MCPL\n");
        assert_eq!(validate(&files(&mcpl, BEAM), 1, 10), Ok(()));
    }

    #[test]
    fn old_fixed_format_detectors_count_their_cards() {
        let old = "* generated by pymchelper *\n*----0---><----1--->\nZONE               1                             1  AVG-BETA  bet_z1_n\n";
        assert_eq!(output_count(old), 1);
        assert_eq!(output_count("* only comments\n\n"), 0);
        assert_eq!(output_count(DETECT), 1);
    }
}
