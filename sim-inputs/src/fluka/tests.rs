//! Tests on the real FLUKA inputs of `../shared/data/pymchelper/` (read from disk, never
//! copied into the repository) and on small variants of them.

use super::*;

fn real(rel: &str) -> String {
    let path = crate::testdata::pymchelper_data(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every real input: the four of `fluka/` and the captured run's.
const REAL: [&str; 5] = [
    "fluka/example.inp",
    "fluka/exfixed.inp",
    "fluka/exmixed.inp",
    "fluka/proton.inp",
    "captured/rfluka/input/minimal.inp",
];

fn files(name: &str, text: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(name.to_string(), text.to_string())])
}

fn rewrite(text: &str, primaries: i64, seed: i64) -> String {
    set_start_and_seed("t.inp", text, primaries, seed).unwrap()
}

/// The rewritten input `out` has exactly these START and RANDOMIZ cards.
#[track_caller]
fn assert_cards(out: &str, start: &str, randomiz: &str) {
    assert_eq!(card_lines(out, "START"), [start]);
    assert_eq!(card_lines(out, "RANDOMIZ"), [randomiz]);
}

fn err(text: &str) -> String {
    validate(&files("t.inp", text), 3, 1000).unwrap_err().0
}

#[test]
fn every_real_input_validates_and_gets_one_randomiz_card_with_the_seed() {
    for rel in REAL {
        let text = real(rel);
        validate(&files("sim.inp", &text), 3, 10_000).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let out = rewrite(&text, 2501, 4242);
        let randomiz = card_lines(&out, "RANDOMIZ");
        assert_eq!(randomiz.len(), 1, "{rel}: {randomiz:?}");
        assert_eq!(what(randomiz[0], false, 1), Some(1.0), "{rel}");
        assert_eq!(what(randomiz[0], false, 2), Some(4242.0), "{rel}");
        let start = card_lines(&out, "START");
        assert_eq!(start.len(), 1, "{rel}");
        assert_eq!(what(start[0], false, 1), Some(2501.0), "{rel}");
        // Only those two lines changed.
        let changed = text
            .lines()
            .zip(out.lines())
            .filter(|(a, b)| a.trim_end() != b.trim_end())
            .count();
        assert_eq!(out.lines().count(), text.lines().count(), "{rel}");
        assert!(changed <= 2, "{rel}: {changed} lines changed");
    }
}

#[test]
fn the_nine_letter_spellings_are_the_eight_letter_cards() {
    let text = real("fluka/exmixed.inp");
    // `RANDOMIZE        1.0` is FLUKA's RANDOMIZ card, `ASSIGNMAT` its ASSIGNMA.
    assert_eq!(card_lines(&text, "RANDOMIZ"), ["RANDOMIZE        1.0"]);
    assert_eq!(card_lines(&text, "ASSIGNMA").len(), 3);
    assert!(card_lines(&text, "RANDOMIZE").is_empty());
    let out = rewrite(&text, 7, 99);
    assert_eq!(
        card_lines(&out, "RANDOMIZ"),
        ["RANDOMIZE        1.0       99."],
        "the card is set where it is, not added"
    );
    assert_eq!(card_lines(&out, "START"), ["START             7."]);
}

#[test]
fn global_what4_4_keeps_fixed_format_and_the_captured_input_is_rewritten_in_columns() {
    // exfixed.inp starts with `GLOBAL ... 4.0` (fully numerical input), still fixed format.
    let out = rewrite(&real("fluka/exfixed.inp"), 1000, 12345);
    assert_cards(
        &out,
        "START          1000.",
        "RANDOMIZE        1.0    12345.",
    );

    let minimal = real("captured/rfluka/input/minimal.inp");
    let out = rewrite(&minimal, 20, 899_999_999);
    assert_cards(
        &out,
        "START            20.",
        "RANDOMIZ         1.0899999999.",
    );
    assert!(
        out.contains("SPH blkbody    0.0 0.0 0.0 100000.0\n"),
        "geometry kept"
    );
    assert!(
        out.starts_with("TITLE\n* Minimal fluka file"),
        "the title line is not a comment"
    );
}

#[test]
fn two_randomiz_cards_are_refused_naming_the_file_and_lines() {
    let text = real("fluka/proton.inp").replace("START ", "RANDOMIZE        1.0      777.\nSTART ");
    let e = validate(&files("proton.inp", &text), 2, 100).unwrap_err().0;
    assert!(
        e.contains("proton.inp has 2 RANDOMIZ cards") && e.contains("lines 42 and 44"),
        "{e}"
    );
    assert!(set_start_and_seed("proton.inp", &text, 100, 1).is_err());
}

#[test]
fn free_format_cards_are_read_and_rewritten_in_free_format() {
    let minimal = real("captured/rfluka/input/minimal.inp");
    let free = minimal
        .replace("RANDOMIZ         1.0        1.", "FREE\nRANDOMIZ  1.0 , 1.")
        .replace("START             20", "START 20 ! twenty");
    assert_eq!(card_lines(&free, "RANDOMIZ"), ["RANDOMIZ  1.0 , 1."]);
    let out = rewrite(&free, 2501, 4242);
    assert_cards(&out, "START, 2501. ! twenty", "RANDOMIZ, 1.0, 4242.");
    assert_eq!(what("START, 2501. ! twenty", true, 1), Some(2501.0));

    // Without a RANDOMIZ card, one is added before START, in START's format.
    let none = free.replace("RANDOMIZ  1.0 , 1.\n", "");
    let out = rewrite(&none, 10, 5);
    assert!(
        out.contains("\nRANDOMIZ, 1.0, 5.\nSTART, 10. ! twenty\n"),
        "{out}"
    );

    // FIXED switches back; GLOBAL WHAT(4) = 2 or 3 switches to free format.
    let fixed_again = free.replace("START 20", "FIXED\nSTART             20");
    let out = rewrite(&fixed_again, 10, 5);
    assert_eq!(card_lines(&out, "START"), ["START            10. ! twenty"]);
    for w4 in ["2.0", "3."] {
        let global = format!(
            "GLOBAL{:>40}\n{}",
            w4,
            minimal.replace("START             20", "START;20;;;7.")
        );
        let out = rewrite(&global, 10, 5);
        // Free from GLOBAL on: RANDOMIZ too, and empty fields are kept.
        assert_cards(&out, "START, 10., , , 7.", "RANDOMIZ, 1.0, 5.");
    }
}

#[test]
fn free_format_fields_follow_flukas_separators() {
    assert_eq!(
        free_tokens("USRBIN  , 10., ENERGY"),
        ["USRBIN", "10.", "ENERGY"]
    );
    assert_eq!(
        free_tokens("  A  B:C/D\\E;F"),
        ["A", "B", "C", "D", "E", "F"]
    );
    assert_eq!(free_tokens("A,,B , ,C"), ["A", "", "B", "", "C"]);
    assert_eq!(what("X, 1.5D2", true, 1), Some(150.0));
    assert_eq!(what("X, , 3", true, 1), Some(0.0));
    assert_eq!(what("X, name", true, 1), None);
    assert_eq!(keyword("RANDOMIZE, 1.0", true).as_deref(), Some("RANDOMIZ"));
}

#[test]
fn comments_titles_geometry_disabled_blocks_and_what_follows_stop_are_not_cards() {
    let text = "\
TITLE
START of the title, not a card
* START 5.
! RANDOMIZ 1. 2.
#if 0
START           99.
#endif
#define X
GEOBEGIN                                                              COMBNAME
START body
GEOEND
  START         10.
START          100.
STOP
RANDOMIZ         1.0        3.
START            1.
";
    let out = rewrite(text, 5, 6);
    assert_cards(
        &out,
        "START             5.",
        "RANDOMIZ         1.0        6.",
    );
    assert!(
        out.contains("START           99.\n#endif"),
        "disabled card untouched"
    );
    assert!(out.contains("STOP\nRANDOMIZ         1.0        3.\nSTART            1.\n"));
}

#[test]
fn unrunnable_inputs_are_refused_with_messages_naming_the_card() {
    let cases = [
        ("BEAM          1.\nSTOP\n", "t.inp has no START card"),
        // START after STOP is not read.
        ("STOP\nSTART           1.\n", "no START card"),
        (
            "START 1.\nSTOP\n",
            "line 1 starts with START, but its keyword (columns 1-8) is `START 1.`",
        ),
        (
            "START           1.\nSTART           2.\nSTOP\n",
            "t.inp has 2 START cards (lines 1 and 2)",
        ),
        (
            "START           1.\nRANDOMIZ        1.0       2.\nSTOP\n",
            "RANDOMIZ card (line 2) comes after START (line 1)",
        ),
        (
            "GEOBEGIN\nSTART           1.\n",
            "GEOBEGIN card (line 1) has no GEOEND",
        ),
    ];
    for (input, message) in cases {
        let e = err(input);
        assert!(e.contains(message), "{input:?}: {e}");
    }
}

#[test]
fn primaries_must_fit_start_and_the_input_must_be_one_inp_file() {
    let ok = real("captured/rfluka/input/minimal.inp");
    let e = validate(&files("m.inp", &ok), 1, MAX_PRIMARIES + 1)
        .unwrap_err()
        .0;
    assert!(e.contains("use more tasks"), "{e}");
    assert!(validate(&files("m.inp", &ok), 1, 0).is_err());
    validate(&files("m.inp", &ok), 1, MAX_PRIMARIES).unwrap();
    let out = rewrite(&ok, MAX_PRIMARIES, 1);
    assert_eq!(card_lines(&out, "START"), ["START     999999999."]);

    let mut fs = files("source.dat", "x");
    assert!(validate(&fs, 1, 10).unwrap_err().0.contains("no .inp file"));
    fs.insert("fl_sim.inp".into(), ok.clone());
    assert_eq!(main_input(&fs).unwrap(), ("fl_sim", ok.as_str()));
    validate(&fs, 1, 10).unwrap();
    fs.insert("other.inp".into(), ok);
    let e = validate(&fs, 1, 10).unwrap_err().0;
    assert!(e.contains("2 .inp files (fl_sim.inp, other.inp)"), "{e}");
}

#[test]
fn seeds_fit_randomiz_and_differ_within_and_between_simulations() {
    fn gcd(a: i128, b: i128) -> i128 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    assert_eq!(
        gcd(SEED_MIXER, SEED_MODULUS),
        1,
        "the mixing is a bijection"
    );
    let mut seen = std::collections::HashSet::new();
    for sim in 1..200 {
        for t in 0..64 {
            let s = seed(sim, t);
            assert!((1..900_000_000).contains(&s), "{s}");
            assert!(
                seen.insert(s),
                "seed {s} repeated (simulation {sim}, task {t})"
            );
        }
    }
    let big: std::collections::HashSet<i64> = (0..20_000).map(|t| seed(i64::MAX, t)).collect();
    assert_eq!(
        big.len(),
        20_000,
        "distinct within one simulation of many tasks"
    );
    assert_eq!(seed(7, 3), seed(7, 3), "deterministic");
    assert!(seed(-5, 0) >= 1);
}
