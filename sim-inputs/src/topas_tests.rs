//! Tests of the TOPAS parameter rules, on small inputs and on the real parameter files of
//! `../shared/data/pymchelper/` (read from disk, never copied here).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

use crate::testdata::pymchelper_data as shared_data;

fn real(rel: &str) -> String {
    std::fs::read_to_string(shared_data(rel)).unwrap()
}

fn input(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

const SCORER: &str = "s:Sc/Dose/Quantity = \"DoseToMedium\"\nsv:Sc/Dose/Report = 1 \"Mean\"\n";

fn err(r: Result<impl std::fmt::Debug, InputError>) -> String {
    r.unwrap_err().0
}

/// `text` as the one file `topas_config.txt`, with `primaries` in one task, is refused with
/// an error containing each of `messages`.
#[track_caller]
fn assert_refused(text: &str, primaries: i64, messages: &[&str]) {
    let e = err(validate(
        &input(&[("topas_config.txt", text)]),
        1,
        primaries,
    ));
    for m in messages {
        assert!(e.contains(m), "{e}");
    }
}

#[test]
fn the_captured_run_validates_and_its_scorers_are_found() {
    let files = input(&[("minimal.txt", &real("captured/topas/input/minimal.txt"))]);
    validate(&files, 3, 3334).unwrap();
    let s = scorers(&files).unwrap();
    let got: Vec<_> = s
        .iter()
        .map(|s| (s.name.as_str(), s.file.as_str(), s.column))
        .collect();
    assert_eq!(
        got,
        [
            (
                "FluenceBPprotonsXY",
                "fluence_bp_protons_xy.csv",
                Column::Mean
            ),
            (
                "FluenceBPprotonsXY2",
                "fluence_bp_protons_xy2.csv",
                Column::Mean
            )
        ]
    );
    // CRLF lines: replaced lines keep their ending, nothing else changes.
    let t = task_main_file(&files, 3334, 77).unwrap();
    assert_eq!(t.name, "minimal.txt");
    assert_eq!(t.source, "So/Demo/NumberOfHistoriesInRun");
    assert!(t
        .text
        .contains("i:So/Demo/NumberOfHistoriesInRun = 3334\r\n"));
    assert!(t.text.contains("i:Ts/Seed = 77\r\n"));
    assert_eq!(t.text.matches("Ts/Seed").count(), 1);
    assert_eq!(t.text.lines().count(), files["minimal.txt"].lines().count());
}

#[test]
fn every_real_parameter_file_validates() {
    for (rel, column) in [
        ("topas/minimal/minimal.txt", Column::Mean),
        ("topas/binning_by_energy/minimal.txt", Column::Mean),
        ("topas/sphere/sphere.txt", Column::Mean),
        ("topas/no_bins/sphere.txt", Column::Mean),
        // No Report: TOPAS reports Sum, and Sum is summed over tasks.
        ("topas/cylinder/FoilToCylinder.txt", Column::Sum),
    ] {
        let files = input(&[("main.txt", &real(rel))]);
        validate(&files, 2, 1000).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let s = scorers(&files).unwrap();
        assert_eq!(s.len(), 1 + rel.contains("minimal.txt") as usize, "{rel}");
        assert_eq!(s[0].column, column, "{rel}");
    }
}

// Item 7: names are case-insensitive.
#[test]
fn names_are_case_insensitive() {
    let text = format!("i:TS/Seed = 5\ni:so/beam/numberofhistoriesinrun = 100\n{SCORER}");
    let files = input(&[("topas_config.txt", &text)]);
    validate(&files, 1, 10).unwrap();
    let t = task_main_file(&files, 42, 9).unwrap();
    assert_eq!(
        t.text,
        format!("i:TS/Seed = 9\ni:so/beam/numberofhistoriesinrun = 42\n{SCORER}")
    );
    let upper = format!("S:SC/DOSE/OUTPUTFILE = \"d\"\n{text}");
    let s = scorers(&input(&[("a.txt", &upper)])).unwrap();
    assert_eq!(s[0].file, "d.csv", "Sc/Dose/OutputFile, spelt in capitals");
}

// Item 7: an override may have no type prefix.
#[test]
fn an_override_may_have_no_type_prefix() {
    let base = format!("i:So/Demo/NumberOfHistoriesInRun = 20\ni:Ts/Seed = 1\n{SCORER}");
    let main = "includeFile = base.txt\nSo/Demo/NumberOfHistoriesInRun = 50\nTs/Seed = 3\n";
    let files = input(&[("base.txt", &base), ("topas_config.txt", main)]);
    validate(&files, 1, 10).unwrap();
    let t = task_main_file(&files, 7, 8).unwrap();
    assert_eq!(
        t.text,
        "includeFile = base.txt\nSo/Demo/NumberOfHistoriesInRun = 7\nTs/Seed = 8\n"
    );
    assert_eq!(files["base.txt"], base, "included files are not changed");
    // An untyped 0 in the including file turns the included source off.
    let off = input(&[
        ("base.txt", &base),
        (
            "topas_config.txt",
            "includeFile = base.txt\nSo/Demo/NumberOfHistoriesInRun = 0\n",
        ),
    ]);
    assert!(err(validate(&off, 1, 10)).contains("no TOPAS source has histories"));
}

// Item 7: includeFile chains are followed, and the including file wins.
#[test]
fn include_chains_are_followed_and_the_including_file_wins() {
    let deep = format!(
        "s:So/Beam/Type = \"Beam\"\ni:So/Beam/NumberOfHistoriesInRun = 100\n\
         i:So/Other/NumberOfHistoriesInRun = 5\ni:Ts/Seed = 1\n{SCORER}"
    );
    let middle = "includeFile = deep.txt # the beam\ni:So/Other/NumberOfHistoriesInRun = 0\n";
    let main = "includeFile = ./middle.txt\ns:Sc/Dose/OutputFile = \"dose\"\n";
    let files = input(&[
        ("deep.txt", &deep),
        ("middle.txt", middle),
        ("run.txt", main),
    ]);
    assert_eq!(
        main_file(&files).unwrap(),
        "run.txt",
        "the file nobody includes"
    );
    validate(&files, 2, 10).unwrap();
    assert_eq!(scorers(&files).unwrap()[0].file, "dose.csv");
    let t = task_main_file(&files, 11, 12).unwrap();
    assert_eq!(t.source, "So/Beam/NumberOfHistoriesInRun");
    assert_eq!(
        t.text,
        format!("{main}i:So/Beam/NumberOfHistoriesInRun = 11\ni:Ts/Seed = 12\n")
    );

    // Two included files that disagree, unless the including file decides.
    let a = "i:So/Beam/NumberOfHistoriesInRun = 10\n";
    let b = format!("i:So/Beam/NumberOfHistoriesInRun = 20\n{SCORER}");
    let top = "includeFile = a.txt b.txt\n";
    let files = input(&[("a.txt", a), ("b.txt", &b), ("topas_config.txt", top)]);
    let e = err(validate(&files, 1, 10));
    assert!(
        e.contains("So/Beam/NumberOfHistoriesInRun is set differently in a.txt and b.txt"),
        "{e}"
    );
    let decided = format!("{top}i:So/Beam/NumberOfHistoriesInRun = 1\n");
    let files = input(&[("a.txt", a), ("b.txt", &b), ("topas_config.txt", &decided)]);
    validate(&files, 1, 10).unwrap();

    // Missing files and cycles.
    let files = input(&[("topas_config.txt", "includeFile = gone.txt\n")]);
    assert!(err(validate(&files, 1, 1))
        .contains("includeFile = gone.txt in topas_config.txt: there is no input file"));
    let files = input(&[
        ("topas_config.txt", "includeFile = x.txt\n"),
        ("x.txt", "includeFile = topas_config.txt\n"),
    ]);
    let e = err(validate(&files, 1, 1));
    assert!(
        e.contains("cycle: topas_config.txt → x.txt → topas_config.txt"),
        "{e}"
    );
}

// Item 7: a source with 0 histories is off and stays at 0.
#[test]
fn a_source_with_zero_histories_stays_off() {
    let text = format!(
        "i:So/Demo/NumberOfHistoriesInRun = 20\ni:So/Off/NumberOfHistoriesInRun = 0\n{SCORER}"
    );
    let files = input(&[("topas_config.txt", &text)]);
    validate(&files, 2, 10).unwrap();
    let t = task_main_file(&files, 10, 3).unwrap();
    assert!(t.text.contains("i:So/Demo/NumberOfHistoriesInRun = 10\n"));
    assert!(t.text.contains("i:So/Off/NumberOfHistoriesInRun = 0\n"));

    let none = input(&[("topas_config.txt", SCORER)]);
    assert!(err(validate(&none, 1, 1)).contains("sets no So/<source>/NumberOfHistoriesInRun"));
    let two = format!("{text}i:So/Second/NumberOfHistoriesInRun = 10\n");
    assert_refused(
        &two,
        1,
        &[
            "2 sources with histories",
            "So/Second/NumberOfHistoriesInRun = 10 in topas_config.txt",
        ],
    );
    let bad = format!("i:So/Demo/NumberOfHistoriesInRun = lots\n{SCORER}");
    assert_refused(
        &bad,
        1,
        &["So/Demo/NumberOfHistoriesInRun = lots in topas_config.txt"],
    );
}

// Item 7: counts are 32-bit.
#[test]
fn a_task_over_32_bits_of_histories_is_refused() {
    let text = format!("i:So/Demo/NumberOfHistoriesInRun = 20\n{SCORER}");
    let files = input(&[("topas_config.txt", &text)]);
    validate(&files, 1, 2_147_483_647).unwrap();
    let e = err(validate(&files, 2, 2_147_483_648));
    assert!(
        e.contains("2147483648 histories (So/Demo/NumberOfHistoriesInRun)")
            && e.contains("limit of 2147483647")
            && e.contains("at least 3 tasks"),
        "{e}"
    );
    assert!(err(task_main_file(&files, 2_147_483_648, 1)).contains("1 to 2147483647"));
    assert!(err(task_main_file(&files, 1, -1)).contains("seed -1"));
}

#[test]
fn seeds_are_distinct_in_a_simulation_and_differ_between_simulations() {
    let a: BTreeSet<i64> = (0..10_000).map(|t| seed(1, t)).collect();
    assert_eq!(a.len(), 10_000);
    assert!(a.iter().all(|s| (1..=MAX_HISTORIES).contains(s)));
    let b: BTreeSet<i64> = (0..64).map(|t| seed(2, t)).collect();
    assert!(a.intersection(&b).next().is_none());
    assert_eq!(
        seed(7, 3),
        seed(7, 3),
        "the same task gets the same seed again"
    );
    assert!((1..=MAX_HISTORIES).contains(&seed(i64::MAX, i32::MAX)));
}

#[test]
fn scorers_must_write_csv_with_mean_or_sum() {
    let run = "i:So/Demo/NumberOfHistoriesInRun = 20\n";
    let check = |extra: &str| {
        let text = format!("{run}s:Sc/Dose/Quantity = \"DoseToMedium\"\n{extra}");
        validate(&input(&[("topas_config.txt", &text)]), 1, 10)
    };
    check("").unwrap();
    check("sv:Sc/Dose/Report = 2 \"Sum\" \"Standard_Deviation\"\n").unwrap();
    let e = err(check("sv:Sc/Dose/Report = 1 \"Standard_Deviation\"\n"));
    assert!(
        e.contains("Sc/Dose/Report = 1 \"Standard_Deviation\" in topas_config.txt reports neither"),
        "{e}"
    );
    let e = err(check("s:Sc/Dose/OutputType = \"binary\"\n"));
    assert!(
        e.contains("Sc/Dose/OutputType = \"binary\" in topas_config.txt"),
        "{e}"
    );
    let e = err(check("s:Sc/Dose/OutputFile = \"../dose\"\n"));
    assert!(e.contains("Sc/Dose/OutputFile = \"../dose\""), "{e}");
    // The output type through another parameter, as TOPAS's documentation suggests.
    check("s:Sc/Type = \"csv\"\ns:Sc/Dose/OutputType = Sc/Type\n").unwrap();
    let e = err(check("s:Sc/P/Quantity = \"PhaseSpace\"\n"));
    assert!(
        e.contains("Sc/P in topas_config.txt is a phase-space scorer"),
        "{e}"
    );
    check("s:Sc/P/Quantity = \"PhaseSpace\"\nb:Sc/P/Active = \"False\"\n").unwrap();
    let e = err(check(
        "s:Sc/Other/Quantity = \"Fluence\"\ns:Sc/Other/OutputFile = \"Dose\"\n",
    ));
    assert!(e.contains("both write Dose.csv"), "{e}");

    let e = err(validate(&input(&[("topas_config.txt", run)]), 1, 10));
    assert!(e.contains("defines no scorer"), "{e}");
}

#[test]
fn run_modes_the_worker_cannot_split_are_refused() {
    let text = format!("i:So/Demo/NumberOfHistoriesInRun = 20\n{SCORER}");
    let timed = format!("{text}i:Tf/NumberOfSequentialTimes = 100\n");
    assert_refused(
        &timed,
        10,
        &["Tf/NumberOfSequentialTimes = 100 in topas_config.txt"],
    );
    let one = format!("{text}i:Tf/NumberOfSequentialTimes = 1\n");
    validate(&input(&[("topas_config.txt", &one)]), 1, 10).unwrap();
    let seed = format!("{text}u:Ts/Seed = 1\n");
    assert_refused(
        &seed,
        10,
        &["Ts/Seed in topas_config.txt is not an integer"],
    );
    // The value must be an integer too, typed or not.
    for bad in ["i:Ts/Seed = 1.5", "Ts/Seed = \"abc\"", "i:Ts/Seed = seven"] {
        let seed = format!("{text}{bad}\n");
        assert_refused(
            &seed,
            10,
            &["in topas_config.txt is not an integer (i:Ts/Seed = 1)"],
        );
    }
    let seed = format!("{text}Ts/Seed = 12\n");
    validate(&input(&[("topas_config.txt", &seed)]), 1, 10).unwrap();
}

#[test]
fn comments_and_quotes_are_read_as_topas_reads_them() {
    let text = format!(
        "# i:So/Old/NumberOfHistoriesInRun = 10\ni:So/Demo/NumberOfHistoriesInRun = 20 # all\n\
         s:Gr/Title = \"run #2\"\n{SCORER}"
    );
    let files = input(&[("topas_config.txt", &text)]);
    validate(&files, 1, 10).unwrap();
    let t = task_main_file(&files, 4, 5).unwrap();
    assert!(t
        .text
        .starts_with("# i:So/Old/NumberOfHistoriesInRun = 10\n"));
    assert!(t.text.contains("s:Gr/Title = \"run #2\"\n"));
    assert!(t.text.ends_with("i:Ts/Seed = 5\n"), "{}", t.text);
}

#[test]
fn the_main_file_is_topas_config_the_only_txt_or_the_one_not_included() {
    let mut files = BTreeMap::new();
    assert!(err(main_file(&files)).contains("no parameter file"));
    files.insert("beam.txt".to_string(), "a".to_string());
    assert_eq!(main_file(&files).unwrap(), "beam.txt");
    files.insert("geometry.txt".to_string(), "b".to_string());
    let e = err(main_file(&files));
    assert!(e.contains("2 of them are not included by another"), "{e}");
    // Each includes the other: no main file, and the message says why.
    let mut looped = files.clone();
    looped.insert("beam.txt".into(), "includeFile = geometry.txt".into());
    looped.insert("geometry.txt".into(), "includeFile = beam.txt".into());
    let e = err(main_file(&looped));
    assert!(
        e.contains("every one of them is included") && e.contains("loop"),
        "{e}"
    );
    files.insert(
        "beam.txt".to_string(),
        "includeFile = geometry.txt".to_string(),
    );
    assert_eq!(main_file(&files).unwrap(), "beam.txt");
    files.insert("topas_config.txt".to_string(), "c".to_string());
    assert_eq!(main_file(&files).unwrap(), "topas_config.txt");
}
