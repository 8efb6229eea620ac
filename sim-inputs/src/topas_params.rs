//! Reading TOPAS parameter files: statements, `includeFile` chains and graphs resolved into
//! one set of settings (the including file wins; included files that disagree are a
//! conflict), and values that name other parameters followed.

use crate::InputError;
use std::collections::{BTreeMap, BTreeSet};

/// The parameter types TOPAS knows.
const TYPES: [&str; 10] = ["d", "u", "i", "b", "s", "dv", "uv", "iv", "bv", "sv"];

/// One statement of a parameter file.
pub(super) enum Statement<'a> {
    /// `type:Name = value` (the type may be absent).
    Parameter {
        /// The type prefix, as written.
        typ: Option<&'a str>,
        /// The name, as written.
        name: &'a str,
        /// The value, comment removed.
        value: &'a str,
    },
    /// `includeFile = a.txt b.txt`: the files named.
    Include(Vec<&'a str>),
    /// A comment, a blank line, or anything else.
    Other,
}

/// The line without its comment (a `#` outside double quotes).
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// What one line says.
pub(super) fn statement(line: &str) -> Statement<'_> {
    let code = strip_comment(line).trim();
    let Some((lhs, value)) = code.split_once('=') else {
        return Statement::Other;
    };
    let (lhs, value) = (lhs.trim(), value.trim());
    if lhs.eq_ignore_ascii_case("includefile") {
        let names = value
            .split_whitespace()
            .map(|f| f.trim_matches('"'))
            .map(|f| f.strip_prefix("./").unwrap_or(f))
            .filter(|f| !f.is_empty())
            .collect();
        return Statement::Include(names);
    }
    let (typ, name) = match lhs.split_once(':') {
        Some((t, n)) => (Some(t.trim()), n.trim()),
        None => (None, lhs),
    };
    let bad_type = typ.is_some_and(|t| !TYPES.iter().any(|k| k.eq_ignore_ascii_case(t)));
    if bad_type || !name.contains('/') || name.contains(char::is_whitespace) {
        return Statement::Other;
    }
    Statement::Parameter { typ, name, value }
}

/// A parameter's setting: where it was made and what it says.
#[derive(Debug, Clone)]
pub(super) struct Def {
    /// The name as spelt where it is set.
    pub(super) name: String,
    /// The type prefix, lower case, if any.
    pub(super) typ: Option<String>,
    /// The value as written.
    pub(super) value: String,
    /// The file that sets it.
    pub(super) file: String,
}

/// What a file sets, its includes followed: lower-case name → setting, and the names two
/// included files set differently (name, one file, the other).
#[derive(Debug, Clone, Default)]
pub(super) struct Chain {
    pub(super) defs: BTreeMap<String, Def>,
    conflicts: BTreeMap<String, (String, String, String)>,
}

impl Chain {
    /// Adds what an included file sets; a different value from another include is a conflict.
    fn include(&mut self, other: Chain) {
        for (k, v) in other.conflicts {
            self.conflicts.entry(k).or_insert(v);
        }
        for (k, d) in other.defs {
            match self.defs.get(&k) {
                Some(old) if old.value != d.value => {
                    self.conflicts.entry(k).or_insert((
                        d.name.clone(),
                        old.file.clone(),
                        d.file.clone(),
                    ));
                }
                Some(_) => {}
                None => {
                    self.defs.insert(k, d);
                }
            }
        }
    }
}

fn resolve(
    files: &BTreeMap<String, String>,
    name: &str,
    stack: &mut Vec<String>,
    memo: &mut BTreeMap<String, Chain>,
) -> Result<Chain, InputError> {
    if let Some(c) = memo.get(name) {
        return Ok(c.clone());
    }
    let text = files.get(name).map(String::as_str).unwrap_or_default();
    stack.push(name.to_string());
    let mut chain = Chain::default();
    let mut own: BTreeMap<String, Def> = BTreeMap::new();
    for line in text.lines() {
        match statement(line) {
            Statement::Include(list) => {
                for inc in list {
                    if !files.contains_key(inc) {
                        return Err(InputError::new(format!(
                            "includeFile = {inc} in {name}: there is no input file {inc} (input \
                             files are plain names in one directory)"
                        )));
                    }
                    if stack.iter().any(|s| s == inc) {
                        return Err(InputError::new(format!(
                            "includeFile = {inc} in {name} makes a cycle: {} → {inc}",
                            stack.join(" → ")
                        )));
                    }
                    chain.include(resolve(files, inc, stack, memo)?);
                }
            }
            Statement::Parameter {
                typ,
                name: p,
                value,
            } => {
                let def = Def {
                    name: p.to_string(),
                    typ: typ.map(str::to_ascii_lowercase),
                    value: value.to_string(),
                    file: name.to_string(),
                };
                own.insert(p.to_ascii_lowercase(), def);
            }
            Statement::Other => {}
        }
    }
    for (k, d) in own {
        chain.conflicts.remove(&k);
        chain.defs.insert(k, d);
    }
    stack.pop();
    memo.insert(name.to_string(), chain.clone());
    Ok(chain)
}

/// The resolved parameters of a simulation's main file.
pub(super) struct Params {
    /// The main file's name.
    pub(super) main: String,
    /// Its settings.
    pub(super) chain: Chain,
}

impl Params {
    /// The main file of `files`, its includes followed.
    pub(super) fn load(files: &BTreeMap<String, String>) -> Result<Self, InputError> {
        let main = super::main_file(files)?.to_string();
        let chain = resolve(files, &main, &mut Vec::new(), &mut BTreeMap::new())?;
        Ok(Self { main, chain })
    }

    /// The setting of `key` (lower case); an error when included files disagree on it.
    pub(super) fn get(&self, key: &str) -> Result<Option<&Def>, InputError> {
        if let Some((name, a, b)) = self.chain.conflicts.get(key) {
            return Err(InputError::new(format!(
                "{name} is set differently in {a} and {b}, and {} does not decide: TOPAS \
                 refuses such a parameter; set it in {}",
                self.main, self.main
            )));
        }
        Ok(self.chain.defs.get(key))
    }

    /// Lower-case names starting with `prefix` and ending with `suffix`, conflicting or not.
    pub(super) fn keys(&self, prefix: &str, suffix: &str) -> BTreeSet<String> {
        let matches = |k: &&String| {
            k.len() > prefix.len() + suffix.len() && k.starts_with(prefix) && k.ends_with(suffix)
        };
        let defs = self.chain.defs.keys().filter(matches);
        defs.chain(self.chain.conflicts.keys().filter(matches))
            .cloned()
            .collect()
    }

    /// The value of a setting, following a value that names another parameter.
    pub(super) fn raw<'a>(&'a self, def: &'a Def) -> Result<&'a str, InputError> {
        let mut d = def;
        for _ in 0..16 {
            let v = d.value.trim();
            let key = v.to_ascii_lowercase();
            if key == "inheritedvalue" || key == d.name.to_ascii_lowercase() {
                return Err(InputError::new(format!(
                    "{} = {v} in {}: a value inherited from an included file is not supported \
                     here; give the value itself",
                    d.name, d.file
                )));
            }
            if v.starts_with('"') || !v.contains('/') || v.contains(char::is_whitespace) {
                return Ok(v);
            }
            match self.get(&key)? {
                Some(next) => d = next,
                None => return Ok(v),
            }
        }
        Err(InputError::new(format!(
            "{} in {} refers to other parameters too deeply",
            def.name, def.file
        )))
    }
}

/// A string value without its quotes.
pub(super) fn unquote(v: &str) -> &str {
    v.trim().trim_matches('"')
}

/// An integer value (quoted or not).
pub(super) fn integer(v: &str) -> Option<i64> {
    unquote(v).parse().ok()
}

/// A boolean value: `"True"`, `"T"`, `"1"` or their opposites, any case.
pub(super) fn boolean(v: &str) -> Option<bool> {
    match unquote(v).to_ascii_lowercase().as_str() {
        "true" | "t" | "1" => Some(true),
        "false" | "f" | "0" => Some(false),
        _ => None,
    }
}
