//! Reads the JSON that pymchelper's `convertmc json` writes (pymchelper 2.9.6,
//! `pymchelper/writers/json.py`): one file per estimator, named after the output's core name
//! (the `.bdo` stem without its 4-digit seed-offset suffix), holding
//!
//! ```text
//! {"metadata": {"file_corename", "number_of_primaries", "data_order", "user", "host", …},
//!  "pages": [{"metadata": {"page_number", "page_normalized", "name", …},
//!             "dimensions": 0..=5,
//!             "data": {"name", "unit", "values"},
//!             "axis_dim1": {"name", "unit", "values"}, …, "axis_dimN": …}]}
//! ```
//!
//! There is no estimator name in the file: it is the file's stem. `values` is a flat list
//! (a single bin's is nested, `[[0.25]]`; a phase-space page is `[[…records…]]`) and is stored
//! flat, in pymchelper's `data_raw` order: `metadata.data_order` `F` (SHIELD-HIT12A's binary
//! formats) means the first axis varies fastest, `C` the last. Values are per primary: the
//! reader normalises SHIELD-HIT12A's cumulative quantities.
//!
//! The estimator's `user` and `host` (who ran the converter, where) are dropped here, so they
//! are never stored or served.

use db::aggregation::Aggregation;
use db::results::{PageMeta, TaskPage};
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::path::Path;

/// The most values one page may have: [`sim_inputs::MAX_PAGE_VALUES`] (16 Mi values; a
/// 200 × 200 × 100 mesh has 4 M), the limit Submit checks an input's scorers against.
pub const MAX_PAGE_VALUES: usize = sim_inputs::MAX_PAGE_VALUES;

// Every page the worker accepts must decode again.
const _: () = assert!(MAX_PAGE_VALUES <= db::codec::DEFAULT_MAX_VALUES);

/// The most axes a page has: three spatial ones and two of differential scoring.
const MAX_DIMENSIONS: i16 = 5;

/// Estimator metadata that identifies people or machines, never kept.
const PRIVATE_KEYS: [&str; 2] = ["user", "host"];

/// The estimators one run wrote, read from the converter's output directory.
#[derive(Debug, Default)]
pub struct Converted {
    /// Every page of every estimator, sorted by estimator and page number.
    pub pages: Vec<TaskPage>,
    /// The largest `number_of_primaries` of the estimators (all agree for one run): what the
    /// run really simulated. `None` when no estimator says.
    pub primaries: Option<i64>,
}

#[derive(Deserialize)]
struct EstimatorJson {
    #[serde(default)]
    metadata: serde_json::Map<String, serde_json::Value>,
    pages: Vec<PageJson>,
}

#[derive(Deserialize)]
struct PageJson {
    dimensions: i16,
    data: DataJson,
    #[serde(default)]
    axis_dim1: Option<AxisJson>,
    #[serde(default)]
    axis_dim2: Option<AxisJson>,
    #[serde(default)]
    axis_dim3: Option<AxisJson>,
    #[serde(default)]
    axis_dim4: Option<AxisJson>,
    #[serde(default)]
    axis_dim5: Option<AxisJson>,
    #[serde(default)]
    metadata: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct DataJson {
    #[serde(default)]
    name: String,
    #[serde(default)]
    unit: String,
    values: Flat,
}

#[derive(Deserialize, serde::Serialize)]
struct AxisJson {
    #[serde(default)]
    name: String,
    #[serde(default)]
    unit: String,
    values: Flat,
}

/// Numbers at any depth of nesting, flattened in order. `null` (Python's `NaN`, see
/// [`python_json`]) is NaN; the strings `"Infinity"`/`"-Infinity"` are ±∞.
#[derive(Default, serde::Serialize)]
#[serde(transparent)]
struct Flat(Vec<f64>);

impl<'de> Deserialize<'de> for Flat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        d.deserialize_any(FlatVisitor { out: &mut out })?;
        Ok(Flat(out))
    }
}

struct FlatVisitor<'a> {
    out: &'a mut Vec<f64>,
}

impl<'de> Visitor<'de> for FlatVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("numbers, or lists of them")
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.push(v)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.push(v as f64)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.push(v as f64)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.push(f64::NAN)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        match v {
            "Infinity" => self.push(f64::INFINITY),
            "-Infinity" => self.push(f64::NEG_INFINITY),
            _ => Err(E::custom(format!("{v:?} is not a number"))),
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(FlatSeed {
                out: &mut *self.out,
            })?
            .is_some()
        {}
        Ok(())
    }
}

impl FlatVisitor<'_> {
    fn push<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        if self.out.len() >= MAX_PAGE_VALUES {
            return Err(E::custom(format!(
                "more than {MAX_PAGE_VALUES} values in one page"
            )));
        }
        self.out.push(v);
        Ok(())
    }
}

struct FlatSeed<'a> {
    out: &'a mut Vec<f64>,
}

impl<'de> serde::de::DeserializeSeed<'de> for FlatSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(FlatVisitor { out: self.out })
    }
}

/// Python's `json.dump` writes the non-JSON tokens `NaN`, `Infinity` and `-Infinity` for
/// non-finite floats. Outside strings, they become `null`, `"Infinity"` and `"-Infinity"`.
fn python_json(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("NaN") && !text.contains("Infinity") {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 64);
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let token = [
            ("NaN", "null"),
            ("-Infinity", "\"-Infinity\""),
            ("Infinity", "\"Infinity\""),
        ]
        .into_iter()
        .find(|(t, _)| rest.starts_with(t));
        if let Some((t, json)) = token {
            out.push_str(json);
            rest = &rest[t.len()..];
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out.into()
}

/// Every page of every `*.json` estimator file in `dir`. An empty directory is an error
/// naming the cause: the run wrote no result files the converter understood.
pub fn read_dir(dir: &Path) -> Result<Converted, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list the converted results: {e}"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err("convertmc could not convert any result file the simulator wrote".into());
    }
    let mut out = Converted::default();
    for f in files {
        let name = f
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&f)
            .map_err(|e| format!("cannot read result file {name}.json: {e}"))?;
        let (pages, primaries) = parse_estimator(&name, &text)
            .map_err(|e| format!("malformed result file {name}.json: {e}"))?;
        out.pages.extend(pages);
        out.primaries = out.primaries.max(primaries);
    }
    out.pages
        .sort_by(|a, b| (&a.estimator, a.page_number).cmp(&(&b.estimator, b.page_number)));
    Ok(out)
}

/// A metadata value that pymchelper writes as a string (`"1000"`) or a number.
fn integer(v: Option<&serde_json::Value>) -> Option<i64> {
    match v? {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// The pages of the estimator `name` (its file's stem) from its JSON `text`, and the
/// primaries it says were simulated.
pub fn parse_estimator(name: &str, text: &str) -> Result<(Vec<TaskPage>, Option<i64>), String> {
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(format!("{name:?} is not a usable estimator name"));
    }
    let mut est: EstimatorJson =
        serde_json::from_str(&python_json(text)).map_err(|e| e.to_string())?;
    for key in PRIVATE_KEYS {
        est.metadata.remove(key);
    }
    let primaries = integer(est.metadata.get("number_of_primaries")).filter(|&n| n > 0);
    let estimator_metadata = serde_json::Value::Object(est.metadata);
    let mut out = Vec::with_capacity(est.pages.len());
    for (i, mut p) in est.pages.into_iter().enumerate() {
        let page_number = match p.metadata.get("page_number") {
            None => i as i32,
            v => integer(v)
                .and_then(|n| i32::try_from(n).ok())
                .filter(|&n| n >= 0)
                .ok_or_else(|| format!("page {i}: bad page_number"))?,
        };
        if !(0..=MAX_DIMENSIONS).contains(&p.dimensions) {
            return Err(format!(
                "page {page_number}: {} dimensions (0 to {MAX_DIMENSIONS} are known)",
                p.dimensions
            ));
        }
        let flag = match p.metadata.get("page_normalized") {
            None => None,
            v => {
                Some(integer(v).ok_or_else(|| format!("page {page_number}: bad page_normalized"))?)
            }
        };
        let aggregation = Aggregation::from_page_normalized(flag).ok_or_else(|| {
            format!(
                "page {page_number}: page_normalized {} is not a known way to combine tasks",
                flag.unwrap_or_default()
            )
        })?;
        let all_axes = [
            p.axis_dim1.take(),
            p.axis_dim2.take(),
            p.axis_dim3.take(),
            p.axis_dim4.take(),
            p.axis_dim5.take(),
        ];
        let axes: Vec<AxisJson> = all_axes.into_iter().flatten().collect();
        if axes.len() != p.dimensions as usize {
            return Err(format!(
                "page {page_number}: {} dimensions but {} axes",
                p.dimensions,
                axes.len()
            ));
        }
        let values = p.data.values.0;
        let bins = axes
            .iter()
            .try_fold(1usize, |n, a| n.checked_mul(a.values.0.len()))
            .unwrap_or(usize::MAX);
        // A phase-space page holds records, not bins: any count.
        if aggregation != Aggregation::Concat && bins != values.len() {
            return Err(format!(
                "page {page_number}: {} values, but its axes make {bins} bins",
                values.len()
            ));
        }
        for key in PRIVATE_KEYS {
            p.metadata.remove(key);
        }
        let page_name = p
            .metadata
            .get("name")
            .and_then(|v| v.as_str())
            .unwrap_or(&p.data.name)
            .to_string();
        out.push(TaskPage {
            estimator: name.to_string(),
            page_number,
            meta: PageMeta {
                name: page_name,
                dimension: p.dimensions,
                axes: serde_json::to_value(&axes).map_err(|e| e.to_string())?,
                value_name: p.data.name,
                value_unit: p.data.unit,
                metadata: serde_json::Value::Object(p.metadata),
                estimator_metadata: estimator_metadata.clone(),
            },
            aggregation,
            values,
        });
    }
    Ok((out, primaries))
}

#[cfg(test)]
#[path = "pymchelper_tests.rs"]
mod tests;
