//! TOPAS parameter files: what is checked at Submit ([`validate`]), the scorers whose files
//! a run writes ([`scorers`]), and the main file of one task ([`task_main_file`]).
//!
//! The rules follow the TOPAS parameter system (TOPAS 3.9 documentation, "Hierarchical
//! Control" and "Parameter File Graphs"):
//!
//! - A line is `type:Name = value # comment`; the type (`d`, `u`, `i`, `b`, `s`, `dv`, …) may
//!   be left out when the parameter is typed in an included file. Names are case-insensitive
//!   (`i:TS/Seed` is `Ts/Seed`).
//! - `includeFile = a.txt b.txt` pulls in other input files (any number, anywhere in the
//!   file, chains of any depth). A file's own settings override those of the files it
//!   includes; two included files that set the same parameter differently are ambiguous
//!   unless the including file sets it too (TOPAS refuses them, and so do we, when we need
//!   that parameter).
//! - A source runs `So/<source>/NumberOfHistoriesInRun` histories; a source with 0 is off and
//!   stays off. TOPAS counts histories in 32 bits: at most [`MAX_HISTORIES`] per task.
//! - `Ts/Seed` is 0..=2147483647 (TOPAS passes it to Geant4's `RanecuEngine`).
//! - A scorer (`Sc/<name>/Quantity`) reports `Sum` unless `Sc/<name>/Report` says otherwise,
//!   and writes `<Sc/<name>/OutputFile, default the scorer's name>.csv` when its
//!   `OutputType` is `csv` (the default).
//!
//! What a task changes: the main file (topas_config.txt, or the one parameter file no other
//! includes) gets the active source's history count and `Ts/Seed`, replacing its own lines
//! for them or appending typed lines (which then win over the included files). Included files
//! are left as they are.
//!
//! Several sources with histories are refused rather than split: a task's share would have to
//! be rounded per source, which changes the sources' ratio task by task and biases the merged
//! result towards whichever source the rounding favours. One source with histories (others at
//! 0) is exact.

use crate::InputError;
use params::{boolean, integer, statement, unquote, Def, Params, Statement};
use std::collections::{BTreeMap, BTreeSet};

#[path = "topas_params.rs"]
mod params;

/// The most histories one TOPAS run (one task) may have, and the largest `Ts/Seed`:
/// 2,147,483,647 (TOPAS's integers are 32-bit).
pub const MAX_HISTORIES: i64 = i32::MAX as i64;

/// The column of a scorer file that the worker keeps, and so how tasks combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// `Mean`: per history; tasks are averaged, weighted by their histories.
    Mean,
    /// `Sum` (TOPAS's default report): the task's total; tasks are summed, which gives what
    /// one run of all their histories would report.
    Sum,
}

/// A scorer whose results a run writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scorer {
    /// Its name as the parameter file spells it, e.g. `FluenceBPprotonsXY`.
    pub name: String,
    /// The file it writes in the task's directory: `Sc/<name>/OutputFile` (default: the
    /// scorer's name) and `.csv`.
    pub file: String,
    /// The column its values come from.
    pub column: Column,
}

/// The main parameter file of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFile {
    /// Its name (the argument of `topas`).
    pub name: String,
    /// Its text, with the task's histories and seed.
    pub text: String,
    /// The history parameter set, e.g. `So/Demo/NumberOfHistoriesInRun`.
    pub source: String,
}

/// The main parameter file: `topas_config.txt` (the name yaptide's converter writes), else
/// the only `*.txt` file, else the only `*.txt` file that no other one includes.
pub fn main_file(files: &BTreeMap<String, String>) -> Result<&str, InputError> {
    if let Some((name, _)) = files.get_key_value("topas_config.txt") {
        return Ok(name);
    }
    let txt: Vec<&String> = files.keys().filter(|n| n.ends_with(".txt")).collect();
    if let [only] = txt[..] {
        return Ok(only);
    }
    if txt.is_empty() {
        return Err(InputError::new(
            "the TOPAS input has no parameter file (*.txt)",
        ));
    }
    let mut included = BTreeSet::new();
    for text in files.values() {
        for line in text.lines() {
            if let Statement::Include(list) = statement(line) {
                included.extend(list);
            }
        }
    }
    let tops: Vec<&str> = txt
        .iter()
        .map(|n| n.as_str())
        .filter(|n| !included.contains(n))
        .collect();
    match tops[..] {
        [only] => Ok(only),
        [] => Err(InputError::new(format!(
            "the TOPAS input has {} parameter files, no topas_config.txt, and every one of \
             them is included by another (an includeFile loop?); name the main one \
             topas_config.txt",
            txt.len()
        ))),
        _ => Err(InputError::new(format!(
            "the TOPAS input has {} parameter files, no topas_config.txt, and {} of them are \
             not included by another ({}); name the main one topas_config.txt",
            txt.len(),
            tops.len(),
            tops.join(", ")
        ))),
    }
}

/// Checks what the worker cannot run: sequential time mode, a `Ts/Seed` that is not an
/// integer parameter or whose value is not an integer.
fn check_run(p: &Params) -> Result<(), InputError> {
    if let Some(d) = p.get("tf/numberofsequentialtimes")? {
        let v = p.raw(d)?;
        if integer(v) != Some(1) {
            return Err(InputError::new(format!(
                "{} = {v} in {}: TOPAS sequential time mode is not supported (the histories of \
                 a task would not be its primaries)",
                d.name, d.file
            )));
        }
    }
    if let Some(d) = p.get("ts/seed")? {
        if d.typ.as_deref().is_some_and(|t| t != "i") {
            return Err(InputError::new(format!(
                "{} in {} is not an integer parameter (i:Ts/Seed)",
                d.name, d.file
            )));
        }
        let v = p.raw(d)?;
        if integer(v).is_none() {
            return Err(InputError::new(format!(
                "{} = {v} in {} is not an integer (i:Ts/Seed = 1)",
                d.name, d.file
            )));
        }
    }
    Ok(())
}

/// The one source with histories > 0: (its parameter's spelling, its lower-case name).
fn active_source(p: &Params) -> Result<(String, String), InputError> {
    let mut all = Vec::new();
    for key in p.keys("so/", "/numberofhistoriesinrun") {
        let Some(d) = p.get(&key)? else { continue };
        let v = p.raw(d)?;
        let n = integer(v)
            .filter(|&n| n >= 0 && d.typ.as_deref().is_none_or(|t| t == "i"))
            .ok_or_else(|| {
                InputError::new(format!(
                    "{} = {v} in {} is not a whole number of histories",
                    d.name, d.file
                ))
            })?;
        all.push((d, key, n));
    }
    let active: Vec<_> = all.iter().filter(|(_, _, n)| *n > 0).collect();
    let list = |v: &[&(&Def, String, i64)]| {
        v.iter()
            .map(|(d, _, n)| format!("{} = {n} in {}", d.name, d.file))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match active[..] {
        [(d, key, _)] => Ok((d.name.clone(), key.clone())),
        [] if all.is_empty() => Err(InputError::new(format!(
            "the TOPAS input sets no So/<source>/NumberOfHistoriesInRun ({} and the files it \
             includes)",
            p.main
        ))),
        [] => Err(InputError::new(format!(
            "no TOPAS source has histories ({}): a source with 0 histories is off; give one \
             source a NumberOfHistoriesInRun above 0",
            list(&all.iter().collect::<Vec<_>>())
        ))),
        _ => Err(InputError::new(format!(
            "the TOPAS input has {} sources with histories ({}); one is supported, because \
             splitting a task's histories between sources would change their ratio: set the \
             others to 0 or run them as separate simulations",
            active.len(),
            list(&active)
        ))),
    }
}

/// A scorer's output name must stay a plain file in the task's directory.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with('~')
        && !name.contains(['/', '\\', '\0'])
        && !name.chars().any(char::is_control)
}

fn scorer_list(p: &Params) -> Result<Vec<Scorer>, InputError> {
    let mut out: Vec<Scorer> = Vec::new();
    for key in p.keys("sc/", "/quantity") {
        let Some(def) = p.get(&key)? else { continue };
        let name = &def.name[3..def.name.len() - "/quantity".len()];
        let at = |suffix: &str| p.get(&format!("{}/{suffix}", &key[..key.len() - 9]));
        if let Some(d) = at("active")? {
            let v = p.raw(d)?;
            match boolean(v) {
                Some(false) => continue,
                Some(true) => {}
                None => {
                    return Err(InputError::new(format!(
                        "{} = {v} in {} is not a boolean",
                        d.name, d.file
                    )))
                }
            }
        }
        if unquote(p.raw(def)?).eq_ignore_ascii_case("PhaseSpace") {
            return Err(InputError::new(format!(
                "Sc/{name} in {} is a phase-space scorer, whose output is not collected: remove \
                 it or set b:Sc/{name}/Active = \"False\"",
                def.file
            )));
        }
        if let Some(d) = at("outputtype")? {
            let v = p.raw(d)?;
            if !unquote(v).eq_ignore_ascii_case("csv") {
                return Err(InputError::new(format!(
                    "Sc/{name}/OutputType = {v} in {}: only csv scorer output is read; set it \
                     to \"csv\"",
                    d.file
                )));
            }
        }
        let column = match at("report")? {
            None => Column::Sum,
            Some(d) => {
                let v = p.raw(d)?;
                let items: Vec<&str> = v.split('"').skip(1).step_by(2).collect();
                let has = |c: &str| items.iter().any(|i| i.eq_ignore_ascii_case(c));
                if has("Mean") {
                    Column::Mean
                } else if has("Sum") {
                    Column::Sum
                } else {
                    return Err(InputError::new(format!(
                        "Sc/{name}/Report = {v} in {} reports neither \"Mean\" nor \"Sum\": add \
                         \"Mean\" (averaged over tasks, weighted by histories) or \"Sum\" \
                         (summed over tasks)",
                        d.file
                    )));
                }
            }
        };
        let stem = match at("outputfile")? {
            None => name.to_string(),
            Some(d) => {
                let v = p.raw(d)?;
                if !plain_name(unquote(v)) {
                    return Err(InputError::new(format!(
                        "Sc/{name}/OutputFile = {v} in {}: give a plain file name, so the \
                         results stay in the task's directory",
                        d.file
                    )));
                }
                unquote(v).to_string()
            }
        };
        let file = format!("{stem}.csv");
        if let Some(other) = out.iter().find(|s| s.file == file) {
            return Err(InputError::new(format!(
                "Sc/{} and Sc/{name} both write {file}; give them different OutputFile names",
                other.name
            )));
        }
        out.push(Scorer {
            name: name.to_string(),
            file,
            column,
        });
    }
    Ok(out)
}

/// The active scorers of the input and the files they write (sorted by lower-case name).
pub fn scorers(files: &BTreeMap<String, String>) -> Result<Vec<Scorer>, InputError> {
    scorer_list(&Params::load(files)?)
}

/// Checks the TOPAS input of a simulation at Submit: a main parameter file, includes that
/// exist and make no cycle, exactly one source with histories above 0 (after following the
/// includes), at most [`MAX_HISTORIES`] histories per task, a `Ts/Seed` that can be set, and
/// at least one scorer, each writing csv with `Mean` or `Sum` in its report. Messages name
/// the parameter and the file.
pub fn validate(
    files: &BTreeMap<String, String>,
    ntasks: i32,
    primaries_per_task: i64,
) -> Result<(), InputError> {
    let p = Params::load(files)?;
    check_run(&p)?;
    let (source, _) = active_source(&p)?;
    if primaries_per_task > MAX_HISTORIES {
        let total = primaries_per_task.saturating_mul(i64::from(ntasks.max(1)));
        return Err(InputError::new(format!(
            "each task would run {primaries_per_task} histories ({source}), more than TOPAS's \
             32-bit limit of {MAX_HISTORIES}: use at least {} tasks",
            total.div_euclid(MAX_HISTORIES) + 1
        )));
    }
    if primaries_per_task < 1 {
        return Err(InputError::new("each TOPAS task needs at least 1 history"));
    }
    if scorer_list(&p)?.is_empty() {
        return Err(InputError::new(format!(
            "the TOPAS input defines no scorer (Sc/<name>/Quantity) in {} or the files it \
             includes: a run would produce no results",
            p.main
        )));
    }
    Ok(())
}

/// The `Ts/Seed` of task `task_index` of simulation `simulation_id`, in 1..=[`MAX_HISTORIES`]:
/// consecutive from a start drawn from the simulation's id (a 64-bit mix, splitmix64), so the
/// tasks of one simulation never share a seed, and two simulations' seeds overlap only when
/// their starts fall within a few tasks of each other (about 1 in 10⁷ for 64 tasks each).
pub fn seed(simulation_id: i64, task_index: i32) -> i64 {
    let mut x = (simulation_id as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    let m = MAX_HISTORIES as u64;
    let index = i64::from(task_index).rem_euclid(MAX_HISTORIES) as u64;
    1 + ((x % m + index) % m) as i64
}

/// The main file of one task: the active source's `NumberOfHistoriesInRun` set to
/// `histories` and `Ts/Seed` to `seed`. Lines of the main file that set them are replaced
/// (keeping their spelling and type prefix, or its absence); when only an included file sets
/// them, typed lines are appended, which win over the included files. Line endings are kept.
pub fn task_main_file(
    files: &BTreeMap<String, String>,
    histories: i64,
    seed: i64,
) -> Result<TaskFile, InputError> {
    let p = Params::load(files)?;
    check_run(&p)?;
    let (source, source_key) = active_source(&p)?;
    if !(1..=MAX_HISTORIES).contains(&histories) {
        return Err(InputError::new(format!(
            "{histories} histories for {source}: TOPAS takes 1 to {MAX_HISTORIES}"
        )));
    }
    if !(0..=MAX_HISTORIES).contains(&seed) {
        return Err(InputError::new(format!(
            "seed {seed}: TOPAS takes 0 to {MAX_HISTORIES}"
        )));
    }
    let seed_name = p
        .chain
        .defs
        .get("ts/seed")
        .map_or("Ts/Seed".to_string(), |d| d.name.clone());
    let sets = [
        (source_key, source.clone(), histories),
        ("ts/seed".to_string(), seed_name, seed),
    ];
    let text = files.get(&p.main).map(String::as_str).unwrap_or_default();
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut done = [false; 2];
    let mut out = String::with_capacity(text.len() + 128);
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        if let Statement::Parameter { typ, name, .. } = statement(body) {
            let key = name.to_ascii_lowercase();
            if let Some(i) = sets.iter().position(|s| s.0 == key) {
                done[i] = true;
                let prefix = typ.map(|t| format!("{t}:")).unwrap_or_default();
                let ending = &line[body.len()..];
                out.push_str(&format!("{prefix}{name} = {}{ending}", sets[i].2));
                continue;
            }
        }
        out.push_str(line);
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push_str(eol);
    }
    for (set, done) in sets.iter().zip(done) {
        if !done {
            out.push_str(&format!("i:{} = {}{eol}", set.1, set.2));
        }
    }
    Ok(TaskFile {
        name: p.main,
        text: out,
        source,
    })
}

#[cfg(test)]
#[path = "topas_tests.rs"]
mod tests;
