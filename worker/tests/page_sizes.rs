//! The page sizes Submit reads from an input (`sim_inputs`: a `detect.dat`'s geometries and
//! outputs, a FLUKA input's USRBIN cards), which it holds to the page limit, against the pages
//! the real pymchelper `convertmc` makes of the real output of those same inputs
//! (`../shared/data/pymchelper/`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use support::reference::convertmc_pages;
use support::shared_data;

fn real(rel: &str) -> String {
    std::fs::read_to_string(shared_data(rel)).unwrap()
}

/// The predicted number of values of each page, by output (the file name without `.bdo`).
fn predicted(detect: &str) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for p in sim_inputs::shieldhit::pages::pages(detect) {
        let stem = p.output.trim_end_matches(".bdo").to_string();
        out.entry(stem).or_default().push(p.values);
    }
    out
}

/// Checks every page convertmc made of `bdo` (files under `dir`) against `detect`'s
/// prediction; returns how many pages were compared.
fn compare(detect: &str, dir: &str, bdo: &[String]) -> usize {
    let want = predicted(detect);
    let files: Vec<(PathBuf, String)> = bdo
        .iter()
        .map(|f| (shared_data(&format!("{dir}/{f}")), f.clone()))
        .collect();
    let pages = convertmc_pages(&files);
    assert!(!pages.is_empty(), "{dir}");
    for p in &pages {
        let sizes = want
            .get(&p.estimator)
            .unwrap_or_else(|| panic!("{dir}: no output {} predicted", p.estimator));
        let i = usize::try_from(p.page_number).unwrap();
        assert_eq!(
            sizes.get(i).copied(),
            Some(p.values.len() as u64),
            "{dir}: {} page {i}",
            p.estimator
        );
    }
    pages.len()
}

#[test]
fn shieldhit_page_sizes_are_what_convertmc_reads_from_the_real_output() {
    let captured = real("captured/shieldhit/input/detect.dat");
    let n = compare(
        &captured,
        "captured/shieldhit/output",
        &["mesh.bdo".into(), "fluence.bdo".into()],
    );
    assert_eq!(n, 2);
    // The averaging run's first task, without its phase space (records, not bins).
    let averaging = real("shieldhit/averaging/detect.dat");
    let bdo: Vec<String> = [1, 2, 3, 5]
        .iter()
        .map(|k| {
            let rule = ["none", "sum", "mean", "", "mean"][k - 1];
            format!("normalisation-{k}_aggregation-{rule}_0001.bdo")
        })
        .collect();
    assert_eq!(compare(&averaging, "shieldhit/averaging", &bdo), 7);
    // pymchelper's generated old-format inputs, every geometry and binning shape.
    for kind in ["cyl", "msh", "geomap", "plane", "zone"] {
        let dir = format!("shieldhit/generated/single/{kind}");
        let mut bdo: Vec<String> = std::fs::read_dir(shared_data(&dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".bdo"))
            .collect();
        bdo.sort();
        let detect = real(&format!("shieldhit/generated/detect_{kind}.dat"));
        assert_eq!(compare(&detect, &dir, &bdo), bdo.len(), "{kind}");
    }
}

#[test]
fn usrbin_page_sizes_are_what_convertmc_reads_from_the_real_output() {
    let input = real("captured/rfluka/input/minimal.inp");
    let scorers = sim_inputs::fluka::scorers::scorers(&input);
    for unit in [21, 22] {
        let scorer = scorers.iter().find(|s| s.unit == -unit).unwrap();
        let name = format!("minimal001_fort.{unit}");
        let file = shared_data(&format!("captured/rfluka/output/{name}"));
        let pages = convertmc_pages(&[(file, name)]);
        assert_eq!(pages.len(), 1, "unit {unit}");
        assert_eq!(
            Some(pages[0].values.len() as u64),
            scorer.values(),
            "unit {unit}"
        );
    }
}
