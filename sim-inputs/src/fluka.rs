//! FLUKA input: the one `*.inp` file of a simulation, read card by card as FLUKA reads it,
//! checked at Submit ([`validate`]) and rewritten for each task ([`set_start_and_seed`]):
//! `START`'s WHAT(1) becomes the task's primaries and the `RANDOMIZ` card's WHAT(2) its seed.
//!
//! How cards are recognised (FLUKA's rules, as flair's parser applies them):
//!
//! - A card's keyword is its first 8 characters, so `RANDOMIZE` is a `RANDOMIZ` card and
//!   `ASSIGNMAT` an `ASSIGNMA` card. Keywords are case-sensitive.
//! - Fixed format (the default): keyword in columns 1–8, WHAT(1..6) in the 10-column fields
//!   starting at columns 11, 21, …, 61, SDUM in 71–78.
//! - Free format, after a `FREE` card or a `GLOBAL` card whose WHAT(4) is 2 or 3, until a
//!   `FIXED` card: the keyword and the fields are separated by blanks or by one of
//!   `,` `;` `/` `\` `:` (two separators in a row leave an empty field, read as 0).
//!   A card rewritten in free format is written in free format (`START, 2500.`).
//! - Not cards: comment lines (`*` or `!` in column 1; text after `!` on a card), blank
//!   lines, preprocessor lines (`#define`, …; a `#if 0` … `#endif` block is skipped whole),
//!   the line after `TITLE` (the title) and after `OPEN` (a file name), everything between
//!   `GEOBEGIN` and `GEOEND` (the geometry), and everything after `STOP`.
//!
//! A run needs exactly one `START` card and at most one `RANDOMIZ` card, before `START`
//! (FLUKA reads its seed before it starts the run). When there is none, the task's
//! `RANDOMIZ` card is added just before `START`; two are refused rather than guessed at.

use crate::InputError;
use std::collections::BTreeMap;

pub mod scorers;

/// The most primaries one task may run: `START`'s WHAT(1) must fit a 10-column field
/// exactly (`999999999.`); a rounded number would make the merge weights wrong.
pub const MAX_PRIMARIES: i64 = 999_999_999;

/// Seeds are `1..=SEED_MODULUS`: FLUKA's `RANDOMIZ` WHAT(2) is "any number < 9.E8"
/// (0 would mean its default seed).
const SEED_MODULUS: i128 = 899_999_999;

/// Seed slots reserved per simulation (tasks beyond this share slots with the next ids).
const SEED_SLOTS: i128 = 10_000;

/// Spreads consecutive slots over the seed range; coprime with [`SEED_MODULUS`], so the
/// map is a bijection.
const SEED_MIXER: i128 = 613_651_349;

/// The `RANDOMIZ` WHAT(2) of task `task_index` of simulation `simulation_id`, in
/// `1..9·10⁸`. Deterministic (a retried task gets the same seed), distinct for every task of
/// a simulation, and distinct between the tasks (up to 10,000 each) of any two simulations
/// whose ids differ by less than 89,999.
pub fn seed(simulation_id: i64, task_index: i32) -> i64 {
    let slot =
        (i128::from(simulation_id) * SEED_SLOTS + i128::from(task_index)).rem_euclid(SEED_MODULUS);
    // In 1..=899_999_999: fits an i64.
    (1 + slot * SEED_MIXER % SEED_MODULUS) as i64
}

/// The simulation's FLUKA input: the one `*.inp` file's stem (`fl_sim` for `fl_sim.inp`,
/// what `rfluka` names its outputs after) and its text.
pub fn main_input(files: &BTreeMap<String, String>) -> Result<(&str, &str), InputError> {
    let inputs: Vec<(&String, &String)> = files
        .iter()
        .filter(|(name, _)| name.ends_with(".inp") && name.len() > 4)
        .collect();
    match inputs[..] {
        [(name, text)] => Ok((&name[..name.len() - 4], text.as_str())),
        [] => Err(InputError::new(
            "the FLUKA input has no .inp file; send the input file as NAME.inp",
        )),
        _ => Err(InputError::new(format!(
            "the FLUKA input has {} .inp files ({}); send exactly one",
            inputs.len(),
            inputs
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Checks a simulation's FLUKA input at Submit: exactly one `.inp` file, with exactly one
/// `START` card, at most one `RANDOMIZ` card (before `START`), a closed geometry section, at
/// least one scoring card writing a binary result file and no `USRBIN` page over
/// [`crate::MAX_PAGE_VALUES`] values ([`scorers`]), and `primaries_per_task` (the largest
/// task's share) in `1..=`[`MAX_PRIMARIES`].
pub fn validate(
    files: &BTreeMap<String, String>,
    _ntasks: i32,
    primaries_per_task: i64,
) -> Result<(), InputError> {
    let (stem, text) = main_input(files)?;
    check_primaries(primaries_per_task)?;
    let file = format!("{stem}.inp");
    Layout::of(&file, text)?;
    scorers::check(&file, text)
}

/// `input` (the text of `file`, for messages) for one task: `START`'s WHAT(1) set to
/// `primaries`, and the `RANDOMIZ` card set to unit 1 and `seed` (added just before `START`
/// when there is none), each in the format the card is read in. Every other line is kept.
pub fn set_start_and_seed(
    file: &str,
    input: &str,
    primaries: i64,
    seed: i64,
) -> Result<String, InputError> {
    check_primaries(primaries)?;
    if !(1..=SEED_MODULUS as i64).contains(&seed) {
        return Err(InputError::new(format!(
            "a FLUKA RANDOMIZ seed is 1 to {SEED_MODULUS}, not {seed}"
        )));
    }
    let layout = Layout::of(file, input)?;
    let mut lines: Vec<String> = input.lines().map(str::to_string).collect();
    let start = &layout.start;
    lines[start.line] = set_what(&lines[start.line], start.free, 1, &format!("{primaries}."));
    let seed = format!("{seed}.");
    match &layout.randomiz {
        Some(r) => {
            let l = set_what(&lines[r.line], r.free, 1, "1.0");
            lines[r.line] = set_what(&l, r.free, 2, &seed);
        }
        None => {
            let card = if start.free { "RANDOMIZ" } else { "RANDOMIZ  " };
            let l = set_what(card, start.free, 1, "1.0");
            lines.insert(start.line, set_what(&l, start.free, 2, &seed));
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    Ok(text)
}

/// The lines of the cards with `keyword` (8 characters at most, e.g. `RANDOMIZ`), as FLUKA
/// would read them: comments, the title, the geometry and anything after `STOP` are not cards.
pub fn card_lines<'a>(input: &'a str, keyword: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = input.lines().collect();
    scan(&lines)
        .cards
        .iter()
        .filter(|c| c.keyword == keyword)
        .map(|c| lines[c.line])
        .collect()
}

/// WHAT(`n`) (1-based) of a card line read in fixed (`free == false`) or free format, as
/// FLUKA reads a number (a blank field is 0; `D` exponents allowed); `None` when it is not
/// a number (a name).
pub fn what(line: &str, free: bool, n: usize) -> Option<f64> {
    let code = code_part(line);
    let field = if free {
        free_tokens(code).get(n).cloned().unwrap_or_default()
    } else {
        code.chars().skip(10 * n).take(10).collect()
    };
    let field = field.trim();
    if field.is_empty() {
        return Some(0.0);
    }
    field.replace(['d', 'D'], "E").parse().ok()
}

fn check_primaries(primaries: i64) -> Result<(), InputError> {
    if (1..=MAX_PRIMARIES).contains(&primaries) {
        return Ok(());
    }
    Err(InputError::new(format!(
        "a FLUKA task runs 1 to {MAX_PRIMARIES} primaries (START's WHAT(1) is a 10-column \
         field), not {primaries}; use more tasks"
    )))
}

/// A card: its line (0-based), its keyword (at most 8 characters) and its format.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Card {
    line: usize,
    keyword: String,
    free: bool,
}

/// The cards of an input, and where its geometry section opened if it never closed.
struct Scan {
    cards: Vec<Card>,
    unclosed_geometry: Option<usize>,
}

/// Reads the cards of `lines` as FLUKA does (see the module documentation).
fn scan(lines: &[&str]) -> Scan {
    let mut cards = Vec::new();
    let mut free = false;
    let mut geometry: Option<usize> = None;
    let mut skip_next = false;
    let mut disabled = 0usize; // depth inside `#if 0`
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        if disabled > 0 {
            if trimmed.starts_with("#if") {
                disabled += 1;
            } else if trimmed.starts_with("#endif") {
                disabled -= 1;
            }
            continue;
        }
        if std::mem::take(&mut skip_next) {
            continue;
        }
        if line.starts_with('#') {
            if trimmed == "#if 0" {
                disabled = 1;
            }
            continue;
        }
        if line.starts_with('*') || line.starts_with('!') || trimmed.is_empty() {
            continue;
        }
        let Some(keyword) = keyword(line, free) else {
            continue;
        };
        if geometry.is_some() {
            if keyword == "GEOEND" {
                geometry = None;
            } else {
                continue;
            }
        }
        match keyword.as_str() {
            "TITLE" | "OPEN" => skip_next = true,
            "FREE" => free = true,
            "FIXED" => free = false,
            "GEOBEGIN" => geometry = Some(i),
            "GLOBAL" => {
                let w4 = what(line, free, 4).unwrap_or(0.0).trunc();
                if w4 == 2.0 || w4 == 3.0 {
                    free = true;
                }
            }
            _ => {}
        }
        let stop = keyword == "STOP";
        cards.push(Card {
            line: i,
            keyword,
            free,
        });
        if stop {
            break;
        }
    }
    Scan {
        cards,
        unclosed_geometry: geometry,
    }
}

/// The keyword of a card line: its first 8 characters in fixed format, its first field
/// (cut to 8 characters) in free format; `None` when there is none.
fn keyword(line: &str, free: bool) -> Option<String> {
    let code = code_part(line);
    let word: String = if free {
        free_tokens(code)
            .into_iter()
            .next()?
            .chars()
            .take(8)
            .collect()
    } else {
        let head: String = code.chars().take(8).collect();
        if head.starts_with([' ', '\t']) {
            return None;
        }
        head.trim_end().to_string()
    };
    (!word.is_empty()).then_some(word)
}

/// The card's text without an inline `!` comment.
fn code_part(line: &str) -> &str {
    line.split_once('!').map_or(line, |(code, _)| code)
}

/// The fields of a free-format line (the keyword first): separators are runs of blanks, or
/// one of `,;/\:` with blanks around it; two separators in a row leave an empty field.
fn free_tokens(code: &str) -> Vec<String> {
    let mut tokens = vec![String::new()];
    let mut after_blank = false;
    let mut after_sep = true; // leading blanks separate nothing
    for c in code.trim().chars() {
        match c {
            ' ' | '\t' => after_blank = true,
            ',' | ';' | '/' | '\\' | ':' => {
                tokens.push(String::new());
                after_blank = false;
                after_sep = true;
            }
            _ => {
                if after_blank && !after_sep {
                    tokens.push(String::new());
                }
                after_blank = false;
                after_sep = false;
                if let Some(t) = tokens.last_mut() {
                    t.push(c);
                }
            }
        }
    }
    tokens
}

/// `line` with WHAT(`n`) set to `value`. Fixed format: the 10-column field, right-aligned,
/// every other column kept. Free format: the `n`th field, the fields rewritten with `, `
/// between them (missing ones as `0.`), the inline comment kept.
fn set_what(line: &str, free: bool, n: usize, value: &str) -> String {
    if free {
        let (code, comment) = match line.split_once('!') {
            Some((code, comment)) => (code, Some(comment)),
            None => (line, None),
        };
        let mut tokens = free_tokens(code);
        if tokens.len() <= n {
            tokens.resize(n + 1, "0.".to_string());
        }
        tokens[n] = value.to_string();
        let mut out = tokens.join(", ");
        if let Some(comment) = comment {
            out.push_str(" !");
            out.push_str(comment);
        }
        return out;
    }
    let mut cols: Vec<char> = line.chars().collect();
    let start = 10 * n;
    if cols.len() < start + 10 {
        cols.resize(start + 10, ' ');
    }
    cols.splice(start..start + 10, format!("{value:>10}").chars());
    cols.into_iter().collect::<String>().trim_end().to_string()
}

/// Where the cards a task rewrites are, once the input is known to be runnable.
struct Layout {
    start: Card,
    randomiz: Option<Card>,
}

impl Layout {
    fn of(file: &str, input: &str) -> Result<Self, InputError> {
        let lines: Vec<&str> = input.lines().collect();
        let scan = scan(&lines);
        if let Some(at) = scan.unclosed_geometry {
            return Err(InputError::new(format!(
                "{file}: the GEOBEGIN card (line {}) has no GEOEND card",
                at + 1
            )));
        }
        let of = |k: &str| -> Vec<&Card> { scan.cards.iter().filter(|c| c.keyword == k).collect() };
        let at = |cards: &[&Card]| -> String {
            let lines: Vec<String> = cards.iter().map(|c| (c.line + 1).to_string()).collect();
            lines.join(" and ")
        };
        let start = match of("START")[..] {
            [start] => start.clone(),
            [] => {
                return Err(InputError::new(format!(
                    "{file} has no START card: FLUKA runs nothing without one (its WHAT(1) \
                     is set to each task's primaries){}",
                    misaligned_start(&lines)
                )))
            }
            ref many => {
                return Err(InputError::new(format!(
                    "{file} has {} START cards (lines {}); keep one: each task sets its \
                     primaries in it",
                    many.len(),
                    at(many)
                )))
            }
        };
        let randomiz = match of("RANDOMIZ")[..] {
            [] => None,
            [r] if r.line < start.line => Some(r.clone()),
            [r] => {
                return Err(InputError::new(format!(
                    "{file}: the RANDOMIZ card (line {}) comes after START (line {}), so FLUKA \
                     would run with its default seeds; move it before START",
                    r.line + 1,
                    start.line + 1
                )))
            }
            ref many => {
                return Err(InputError::new(format!(
                    "{file} has {} RANDOMIZ cards (lines {}; RANDOMIZE is a RANDOMIZ card \
                     too); keep at most one: each task sets its own seed in it",
                    many.len(),
                    at(many)
                )))
            }
        };
        Ok(Self { start, randomiz })
    }
}

/// A hint for a fixed-format line that looks like a START card but is not one
/// (`START 1000.`: its keyword, columns 1–8, is `START 10`).
fn misaligned_start(lines: &[&str]) -> String {
    lines
        .iter()
        .enumerate()
        .find(|(_, l)| l.split_whitespace().next() == Some("START"))
        .and_then(|(i, l)| {
            let head: String = l.chars().take(8).collect();
            let head = head.trim_end();
            (head != "START").then(|| {
                format!(
                    "; line {} starts with START, but its keyword (columns 1-8) is `{head}`: \
                     in fixed format WHAT(1) is in columns 11-20",
                    i + 1
                )
            })
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
