//! FLUKA's scoring cards, as far as Submit needs them: a run must write at least one result
//! file the worker can convert, and no `USRBIN` page may be larger than
//! [`crate::MAX_PAGE_VALUES`].
//!
//! - The estimators that write result files (`NAME001_fort.NN`) are `USRBIN`, `USRBDX`,
//!   `USRTRACK`, `USRCOLL`, `USRYIELD` and `RESNUCLE`. Their output unit is WHAT(3)
//!   (`RESNUCLE`: WHAT(2)); a negative unit is a binary (unformatted) file, which is what
//!   pymchelper's `convertmc` reads; a positive one is formatted text, and 0 means unit 11,
//!   FLUKA's main output.
//! - Each of them has a continuation card, the next card of the same keyword with `&` as
//!   SDUM (columns 71–78, or the eighth field in free format).
//! - A `USRBIN` page has one value per bin: the continuation's WHAT(4), WHAT(5) and WHAT(6)
//!   are the numbers of bins along X, Y, Z (R, Phi, Z for the cylindrical binnings), each
//!   taken as its absolute whole part, 0 as 1. Region binnings (WHAT(1) = 2 or 12) give
//!   regions there instead, one value each: those pages are as small as the geometry.

use super::{code_part, free_tokens, scan, what, Card};
use crate::{InputError, MAX_PAGE_VALUES};

/// The estimator cards whose results are written to a `NAME001_fort.NN` file.
pub const SCORING_CARDS: [&str; 6] = [
    "USRBIN", "USRBDX", "USRTRACK", "USRCOLL", "USRYIELD", "RESNUCLE",
];

/// One estimator card of an input (its first card, not the continuation).
#[derive(Debug, Clone, PartialEq)]
pub struct Scorer {
    /// The card's keyword, e.g. `USRBIN`.
    pub keyword: String,
    /// The card's line, 1-based.
    pub line: usize,
    /// Its name (SDUM), e.g. `dose_xz`.
    pub name: String,
    /// The logical output unit (negative: binary); 0 when the card leaves it out.
    pub unit: i64,
    /// For a `USRBIN` with a continuation card and no region binning: its bins along each
    /// axis, e.g. `[("X", 500), ("Y", 1), ("Z", 500)]`.
    pub bins: Option<Vec<(&'static str, u64)>>,
}

impl Scorer {
    /// The number of values of its page, when known (the product of [`Scorer::bins`],
    /// saturating).
    pub fn values(&self) -> Option<u64> {
        self.bins
            .as_ref()
            .map(|b| b.iter().fold(1u64, |n, (_, k)| n.saturating_mul(*k)))
    }
}

/// SDUM of a card line: columns 71–78 in fixed format, the eighth field in free format.
fn sdum(line: &str, free: bool) -> String {
    let code = code_part(line);
    if free {
        free_tokens(code).get(7).cloned().unwrap_or_default()
    } else {
        code.chars().skip(70).take(8).collect::<String>()
    }
    .trim()
    .to_string()
}

/// Whether `card` continues the card before it (SDUM `&`).
fn is_continuation(lines: &[&str], card: &Card) -> bool {
    sdum(lines[card.line], card.free).starts_with('&')
}

/// A bin count: the absolute whole part of WHAT(`n`), at least 1.
fn bin_count(line: &str, free: bool, n: usize) -> u64 {
    let v = what(line, free, n).unwrap_or(0.0).abs().trunc();
    if v >= 1.0 {
        v.min(u64::MAX as f64) as u64
    } else {
        1
    }
}

/// Every estimator card of `input` that writes a result file, in input order.
pub fn scorers(input: &str) -> Vec<Scorer> {
    let lines: Vec<&str> = input.lines().collect();
    let cards = scan(&lines).cards;
    let mut out = Vec::new();
    for (i, card) in cards.iter().enumerate() {
        if !SCORING_CARDS.contains(&card.keyword.as_str()) || is_continuation(&lines, card) {
            continue;
        }
        let line = lines[card.line];
        let unit_what = if card.keyword == "RESNUCLE" { 2 } else { 3 };
        let unit = what(line, card.free, unit_what).unwrap_or(0.0).trunc() as i64;
        let next = cards
            .get(i + 1)
            .filter(|c| c.keyword == card.keyword && is_continuation(&lines, c));
        let bins = match next {
            Some(c) if card.keyword == "USRBIN" => {
                let kind = what(line, card.free, 1).unwrap_or(0.0).abs().trunc() as i64 % 10;
                let axes = if kind == 1 || kind == 7 {
                    ["R", "Phi", "Z"]
                } else {
                    ["X", "Y", "Z"]
                };
                (kind != 2).then(|| {
                    axes.iter()
                        .zip(4..=6)
                        .map(|(a, n)| (*a, bin_count(lines[c.line], c.free, n)))
                        .collect()
                })
            }
            _ => None,
        };
        out.push(Scorer {
            keyword: card.keyword.clone(),
            line: card.line + 1,
            name: sdum(line, card.free),
            unit,
            bins,
        });
    }
    out
}

/// Checks that `input` (the text of `file`) has a scorer writing a binary result file and
/// no `USRBIN` page over [`MAX_PAGE_VALUES`] values.
pub(super) fn check(file: &str, input: &str) -> Result<(), InputError> {
    let all = scorers(input);
    if !all.iter().any(|s| s.unit < 0) {
        let formatted: Vec<String> = all
            .iter()
            .map(|s| {
                let unit = if s.unit == 0 { 11 } else { s.unit };
                format!(
                    "{} {} on line {} writes to unit {unit}",
                    s.keyword, s.name, s.line
                )
            })
            .collect();
        return Err(InputError::new(format!(
            "{file} has no scoring card writing a binary result file ({} with a negative \
             output unit, e.g. USRBIN WHAT(3) = -21.): FLUKA would write nothing the worker \
             can read{}",
            SCORING_CARDS.join(", "),
            if formatted.is_empty() {
                String::new()
            } else {
                format!(" ({}: formatted text)", formatted.join("; "))
            }
        )));
    }
    let limit = MAX_PAGE_VALUES as u64;
    for s in &all {
        if let (Some(values), Some(bins)) = (s.values(), &s.bins) {
            if values > limit {
                let binning: Vec<String> = bins.iter().map(|(a, n)| format!("{a} {n}")).collect();
                return Err(InputError::new(format!(
                    "{file}: {} {} (line {}, unit {}) makes a page of {values} values ({} \
                     bins), more than the limit of {limit} values per page; use fewer bins",
                    s.keyword,
                    s.name,
                    s.line,
                    s.unit,
                    binning.join(" × ")
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn real(rel: &str) -> String {
        let path = crate::testdata::pymchelper_data(rel);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// (keyword, name, unit, values) of every scorer of `input`.
    fn summary(input: &str) -> Vec<(String, String, i64, Option<u64>)> {
        scorers(input)
            .into_iter()
            .map(|s| (s.keyword.clone(), s.name.clone(), s.unit, s.values()))
            .collect()
    }

    fn row(k: &str, n: &str, unit: i64, values: Option<u64>) -> (String, String, i64, Option<u64>) {
        (k.to_string(), n.to_string(), unit, values)
    }

    #[test]
    fn the_real_inputs_scorers_are_read_with_their_units_and_bins() {
        let minimal = real("captured/rfluka/input/minimal.inp");
        assert_eq!(
            summary(&minimal),
            [
                row("USRBIN", "dose_xz", -21, Some(16)),
                row("USRBIN", "dose_xy", -22, Some(16)),
            ]
        );
        assert_eq!(
            scorers(&minimal)[0].bins,
            Some(vec![("X", 4), ("Y", 1), ("Z", 4)])
        );
        assert_eq!(scorers(&minimal)[0].line, 31);
        // example.inp names its particles; exfixed.inp (GLOBAL WHAT(4) = 4: fixed) numbers them.
        // SDUM is columns 71-78: the ninth letter of `piFluenUD` is not read.
        for rel in [
            "fluka/example.inp",
            "fluka/exfixed.inp",
            "fluka/exmixed.inp",
        ] {
            assert_eq!(
                summary(&real(rel)),
                [
                    row("USRBDX", "piFluenU", -47, None),
                    row("USRBDX", "piCurrUD", -47, None),
                    row("USRTRACK", "piFluenU", -48, None),
                    row("USRTRACK", "piFluenD", -49, None),
                    row("USRBIN", "piFluBin", -50, Some(100 * 100 * 60)),
                    row("USRBIN", "Edeposit", -51, Some(20 * 20 * 5)),
                ],
                "{rel}"
            );
        }
        let proton = summary(&real("fluka/proton.inp"));
        assert_eq!(proton.len(), 6);
        assert_eq!(proton[4], row("USRBIN", "dose_xy", -25, Some(500 * 500)));
        check("proton.inp", &real("fluka/proton.inp")).unwrap();
    }

    #[test]
    fn free_format_scorers_are_read_by_their_fields() {
        let free = "FREE\nUSRBIN, 11., ENERGY, -30., 5., 0., 5., dose_rz\n\
                    USRBIN, 0., 0., 0., 50., 0., 500., &\nSTART, 10.\nSTOP\n";
        assert_eq!(summary(free), [row("USRBIN", "dose_rz", -30, Some(25_000))]);
        assert_eq!(
            scorers(free)[0].bins,
            Some(vec![("R", 50), ("Phi", 1), ("Z", 500)])
        );
        // A region binning counts regions, not bins: no page size.
        let regions = free.replace("11., ENERGY", "2., ENERGY");
        assert_eq!(summary(&regions), [row("USRBIN", "dose_rz", -30, None)]);
    }

    #[test]
    fn an_input_without_a_binary_scorer_is_refused() {
        let minimal = real("captured/rfluka/input/minimal.inp");
        let none: String = minimal
            .lines()
            .filter(|l| !l.starts_with("USRBIN"))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = check("m.inp", &none).unwrap_err().0;
        assert!(
            e.contains("m.inp has no scoring card writing a binary result file")
                && e.contains("USRBIN, USRBDX, USRTRACK, USRCOLL, USRYIELD, RESNUCLE"),
            "{e}"
        );
        // Formatted units (positive, or 0 for unit 11) are named.
        let formatted = minimal
            .replace("-21.", " 21.")
            .replace("      -22.", "          ");
        let e = check("m.inp", &formatted).unwrap_err().0;
        assert!(
            e.contains("USRBIN dose_xz on line 31 writes to unit 21")
                && e.contains("USRBIN dose_xy on line 34 writes to unit 11"),
            "{e}"
        );
        check("m.inp", &minimal).unwrap();
    }

    #[test]
    fn a_usrbin_page_over_the_limit_is_refused_naming_it() {
        let minimal = real("captured/rfluka/input/minimal.inp");
        let old = "        4.        1.        4. &";
        assert!(minimal.contains(old));
        // 200 × 200 × 100 = 4 M values: fits.
        let mesh = minimal.replace(old, "      200.      200.      100. &");
        check("m.inp", &mesh).unwrap();
        // 1000 × 100 × 200 = 20 M values: over 16 Mi.
        let big = minimal.replace(old, "     1000.      100.      200. &");
        let e = check("m.inp", &big).unwrap_err().0;
        assert!(
            e.contains("m.inp: USRBIN dose_xz (line 31, unit -21) makes a page of 20000000 values")
                && e.contains("X 1000 × Y 100 × Z 200")
                && e.contains(&format!("limit of {MAX_PAGE_VALUES} values")),
            "{e}"
        );
        // Negative counts are read as their absolute value.
        let negative = minimal.replace(old, "    -1000.      100.      200. &");
        assert!(check("m.inp", &negative).is_err());
    }
}
