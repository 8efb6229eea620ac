//! The TOPAS scorer reader against every real scorer file in `../shared/data/pymchelper/`
//! (read from disk at test time, never copied here), compared with what pymchelper's own
//! TOPAS reader makes of the same files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use std::path::PathBuf;

use sim_inputs::testdata::pymchelper_data as shared_data;

/// Every real TOPAS scorer file.
const FILES: [&str; 7] = [
    "topas/binning_by_energy/fluence_bp_protons_xy.csv",
    "topas/cylinder/MyScorer.csv",
    "topas/minimal/fluence_bp_protons_xy.csv",
    "topas/no_bins/MyScorer.csv",
    "topas/sphere/MyScorer.csv",
    "captured/topas/output/fluence_bp_protons_xy.csv",
    "captured/topas/output/fluence_bp_protons_xy2.csv",
];

fn read_real(rel: &str) -> TaskPage {
    read(&shared_data(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn text(rel: &str) -> String {
    std::fs::read_to_string(shared_data(rel)).unwrap()
}

/// (name, unit, bin centres) of each axis of a page.
fn axes(p: &TaskPage) -> Vec<(String, String, Vec<f64>)> {
    serde_json::from_value::<Vec<serde_json::Value>>(p.meta.axes.clone())
        .unwrap()
        .into_iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["unit"].as_str().unwrap().to_string(),
                serde_json::from_value(a["values"].clone()).unwrap(),
            )
        })
        .collect()
}

const XY: [f64; 4] = [0.375, 1.125, 1.875, 2.625];

/// What pymchelper 2.9.6's `TopasReader` gives for each file: page name, dettyp, unit,
/// dimension, axes (`plot_axis(i).data`) and `data_raw`. Obtained once by hand with
/// `/tmp/pyv/bin/python` (pymchelper 2.9.6 from PyPI): `e = Estimator();
/// TopasReader(path).read(e); p = e.pages[0]` for every file in [`FILES`]. The larger
/// pages are given as their length and non-zero values (index, value).
#[test]
fn every_real_scorer_file_reads_as_pymchelper_reads_it() {
    type Ref = (
        &'static str,
        &'static str,
        &'static str,
        i16,
        usize,
        Vec<(usize, f64)>,
    );
    let m = 0.001777777777777778;
    let h = 0.0008888888888888889;
    let h2 = 0.000888888888888889; // topas/minimal writes this one digit shorter
    let t = 0.002666666666666667;
    // The non-zero values of the two 4 x 4 fluence pages, which differ only in how many
    // digits of `h` (the value at 3, 4 and 9) were written.
    let fluence_xy = |h_349: f64| {
        vec![
            (0, m),
            (3, h_349),
            (4, h_349),
            (5, m),
            (7, h),
            (8, t),
            (9, h_349),
            (10, m),
            (11, m),
            (12, h),
        ]
    };
    // The non-zero values of the dose page: their indices, then the values.
    let dose = [5, 6, 35, 45, 55, 76, 86, 96, 106, 115, 116, 125]
        .into_iter()
        .zip([
            9.080903509193889e-11,
            9.013105463113584e-11,
            9.083960132124552e-11,
            9.152689792517148e-11,
            1.821172892712442e-10,
            9.067865282717259e-11,
            2.696254032024574e-10,
            9.006026509227903e-11,
            1.811402691690857e-10,
            9.147425086196995e-11,
            9.013259427045676e-11,
            9.07914094811693e-11,
        ])
        .collect();
    let refs: [Ref; 7] = [
        ("FluenceBPprotonsXY", "DoseToMedium", "Gy", 3, 160, dose),
        ("MyScorer", "SurfaceTrackCount", "", 2, 4, vec![]),
        (
            "FluenceBPprotonsXY",
            "Fluence",
            "/mm2",
            2,
            16,
            fluence_xy(h2),
        ),
        ("MyScorer", "SurfaceTrackCount", "", 0, 1, vec![(0, 0.1)]),
        (
            "MyScorer",
            "SurfaceTrackCount",
            "",
            3,
            40,
            vec![(1, 0.1), (21, 0.1)],
        ),
        (
            "FluenceBPprotonsXY",
            "Fluence",
            "/mm2",
            2,
            16,
            fluence_xy(h),
        ),
        (
            "FluenceBPprotonsXY2",
            "Fluence",
            "/mm2",
            2,
            16,
            vec![
                (0, m),
                (3, h),
                (5, m),
                (6, m),
                (7, m),
                (8, t),
                (9, h),
                (10, h),
            ],
        ),
    ];
    let energy: Vec<f64> = (0..10).map(|i| 5.0 + 10.0 * i as f64).collect();
    let ref_axes = [
        vec![
            ("X", "cm", XY.to_vec()),
            ("Y", "cm", XY.to_vec()),
            ("incident track energy", "MeV", energy),
        ],
        vec![
            ("R", "cm", vec![1.25, 3.75]),
            ("Phi", "deg", vec![25.0, 75.0]),
        ],
        vec![("X", "cm", XY.to_vec()), ("Y", "cm", XY.to_vec())],
        vec![],
        vec![
            ("R", "cm", vec![1.25, 3.75]),
            ("Phi", "deg", vec![25.0, 75.0]),
            (
                "time",
                "ns",
                (0..10).map(|i| 5.0 + 10.0 * i as f64).collect(),
            ),
        ],
        vec![("X", "cm", XY.to_vec()), ("Y", "cm", XY.to_vec())],
        vec![("X", "cm", XY.to_vec()), ("Y", "cm", XY.to_vec())],
    ];
    for ((rel, (name, quantity, unit, dim, len, nonzero)), want_axes) in
        FILES.iter().zip(refs).zip(ref_axes)
    {
        let p = read_real(rel);
        assert_eq!(p.estimator, name, "{rel}");
        assert_eq!(p.meta.name, name, "{rel}");
        assert_eq!(p.page_number, 0);
        assert_eq!(
            (p.meta.value_name.as_str(), p.meta.value_unit.as_str()),
            (quantity, unit),
            "{rel}"
        );
        assert_eq!(p.meta.dimension, dim, "{rel}");
        assert_eq!(p.aggregation, Aggregation::Mean, "{rel}");
        assert_eq!(p.values.len(), len, "{rel}");
        let got: Vec<(usize, f64)> = p
            .values
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, v)| *v != 0.0)
            .collect();
        assert_eq!(got, nonzero, "{rel}");
        let want: Vec<(String, String, Vec<f64>)> = want_axes
            .into_iter()
            .map(|(n, u, v)| (n.to_string(), u.to_string(), v))
            .collect();
        assert_eq!(axes(&p), want, "{rel}");
    }
}

/// Compares every file with pymchelper's `TopasReader` run now, in pymchelper's virtualenv
/// ([`::tests::pymchelper_python`]: `PYMCHELPER_PYTHON`, which `scripts/test` sets, or the
/// python beside `CONVERTMC`; fails when there is none): values exactly, axes to 1e-12
/// relative.
#[test]
fn every_real_scorer_file_matches_pymchelper_run_now() {
    let python = ::tests::pymchelper_python();
    const SCRIPT: &str = "import sys, json
from pymchelper.estimator import Estimator
from pymchelper.readers.topas import TopasReader
for path in sys.argv[1:]:
    e = Estimator(); assert TopasReader(path).read(e), path
    p = e.pages[0]
    axes = [p.plot_axis(i) for i in range(p.dimension)]
    print(json.dumps({'name': p.name, 'dim': p.dimension, 'values': p.data_raw.tolist(),
        'axes': [[a.name, a.unit, a.data.tolist()] for a in axes]}))";
    let paths: Vec<PathBuf> = FILES.iter().map(|f| shared_data(f)).collect();
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), FILES.len());
    for (rel, want) in FILES.iter().zip(lines) {
        let p = read_real(rel);
        assert_eq!(p.estimator, want["name"].as_str().unwrap(), "{rel}");
        assert_eq!(
            i64::from(p.meta.dimension),
            want["dim"].as_i64().unwrap(),
            "{rel}"
        );
        let values: Vec<f64> = serde_json::from_value(want["values"].clone()).unwrap();
        assert_eq!(p.values, values, "{rel}");
        let want_axes: Vec<(String, String, Vec<f64>)> =
            serde_json::from_value(want["axes"].clone()).unwrap();
        let got = axes(&p);
        assert_eq!(got.len(), want_axes.len(), "{rel}");
        for (g, w) in got.iter().zip(&want_axes) {
            assert_eq!((&g.0, &g.1), (&w.0, &w.1), "{rel}");
            assert_eq!(g.2.len(), w.2.len(), "{rel}");
            for (a, b) in g.2.iter().zip(&w.2) {
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                    "{rel}: {a} vs {b}"
                );
            }
        }
    }
}

/// The value column is found by the header's column list, not by position.
#[test]
fn the_mean_column_is_chosen_by_the_header() {
    let rel = "topas/minimal/fluence_bp_protons_xy.csv"; // Mean, Sum, Standard_Deviation
    let p = read_real(rel);
    let column = |i: usize| -> Vec<f64> {
        text(rel)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(',').nth(i).unwrap().trim().parse().unwrap())
            .collect()
    };
    assert_eq!(p.values, column(3));
    assert_ne!(p.values, column(4), "not the Sum column");
    assert_eq!(p.meta.metadata["column"], "Mean");
    assert_eq!(
        p.meta.estimator_metadata["file_corename"],
        "fluence_bp_protons_xy"
    );
    // The Sum column of that file is 20 times its Mean (20 histories; TOPAS sums in single
    // precision, hence 1e-6).
    for (s, m) in column(4).iter().zip(column(3)) {
        assert!((s - 20.0 * m).abs() <= 1e-6 * s.abs(), "{s} {m}");
    }
}

/// Item 8: a scorer that reports Sum and no Mean is summed over tasks. The file is the real
/// one with its Mean and Standard_Deviation columns taken out, as TOPAS writes a scorer whose
/// `Report` is `1 "Sum"`.
#[test]
fn a_sum_only_scorer_is_summed() {
    let real = text("topas/minimal/fluence_bp_protons_xy.csv");
    let sum_only: String = real
        .lines()
        .map(|l| {
            if l.starts_with("# Fluence") {
                "# Fluence ( /mm2 ) : Sum   ".to_string()
            } else if l.starts_with('#') {
                l.to_string()
            } else {
                let v: Vec<&str> = l.split(", ").collect();
                format!("{}, {}, {}, {}", v[0], v[1], v[2], v[4])
            }
        })
        .map(|l| l + "\n")
        .collect();
    let p = parse("fluence_bp_protons_xy.csv", &sum_only).unwrap();
    assert_eq!(p.aggregation, Aggregation::Sum);
    assert_eq!(p.meta.metadata["column"], "Sum");
    assert_eq!(p.values[0], 0.03555555641651154);
    assert_eq!(p.values[8], 0.0533333346247673);
    let e = parse("x.csv", &sum_only.replace(": Sum", ": Standard_Deviation")).unwrap_err();
    assert!(e.contains("neither Mean nor Sum"), "{e}");
}

#[test]
fn malformed_files_are_clear_errors() {
    let real = text("captured/topas/output/fluence_bp_protons_xy.csv");
    let cases = [
        (
            real.lines().take(20).map(|l| format!("{l}\n")).collect(),
            "11 rows of values, 16 expected",
        ),
        (real[..real.len() - 40].to_string(), "line 23: \"\" is not a number"),
        (real.replace("0.002666666666666667", "0.00266x"), "\"0.00266x\" is not a number"),
        (real.replace("# Results for scorer: FluenceBPprotonsXY\n", ""), "not a TOPAS scorer file"),
        (real.replace("# Fluence ( /mm2 ) : Mean   Standard_Deviation   \n", ""), "naming the reported columns"),
        (real.replace("2, 1, 0, ", "2, 0, 0, "), "a bin given twice"),
        (real.replace("3, 3, 0, ", "3, 4, 0, "), "bin index 4 of Y is outside 0..4"),
        (real.replace("3, 3, 0, 0, 0", "3, 3, 0, 0"), "4 values, 5 expected"),
        (format!("{real}3, 3, 0, 0, 0\n"), "a bin given twice"),
        (real.replace("# Y in 4 bins of 0.75 cm\n", ""), "2 binning lines"),
        (real.replace("X in 4 bins", "X in 99999999999 bins"), "more than"),
        (real.replace("X in 4 bins", "X in 0 bins"), "or none"),
        (
            real.replace("# Z in 1 bin  of 1.75 cm", "# Z in 1 bin  of 1.75 cm\n# Binned by charge in 2 bins of 1 e from 0 e to 2 e"),
            "binning by charge is not supported",
        ),
        (
            real.replace("# Z in 1 bin  of 1.75 cm", "# Z in 1 bin  of 1.75 cm\n# Binned by time in 10 bins of 10 ns from 0 ns to 100 ns"),
            "values, 24 expected",
        ),
    ];
    for (text, want) in cases {
        let e = parse("fluence_bp_protons_xy.csv", &text).unwrap_err();
        assert!(e.contains(want), "{want}: {e}");
    }
    // Any cut of any real file is read or refused, never a panic.
    for rel in FILES {
        let t = text(rel);
        for cut in (0..t.len()).filter(|c| t.is_char_boundary(*c)) {
            let _ = parse(rel, &t[..cut]);
        }
    }
    let e = read(&shared_data("captured/topas/output/none.csv")).unwrap_err();
    assert_eq!(e, "TOPAS wrote no scorer file none.csv");
}
