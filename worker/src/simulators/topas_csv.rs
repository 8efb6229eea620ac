//! Reads the `.csv` files TOPAS scorers write (TOPAS 3.9), following the rules of
//! pymchelper's TOPAS reader (pymchelper 2.9.6, `pymchelper/readers/topas.py`), since
//! `convertmc` itself writes nothing for them. A file is
//!
//! ```text
//! # TOPAS Version: 3.9
//! # Parameter File: minimal.txt
//! # Results for scorer: FluenceBPprotonsXY          ← the estimator's name
//! # Filtered by: …
//! # Scored in component: PhantomScoringCoarseXY
//! # X in 4 bins of 0.75 cm                          ← three binning lines, or none
//! # Y in 4 bins of 0.75 cm
//! # Z in 1 bin  of 1.75 cm
//! # Fluence ( /mm2 ) : Mean   Sum   Standard_Deviation   ← quantity, unit, report columns
//! 0, 0, 0, 0.0017, 0.0355, 0.0053                   ← ix, iy, iz, then one value per column
//! ```
//!
//! The three binning lines are `X Y Z` (boxes), `R Phi Z` (cylinders) or `R Phi Theta`
//! (spheres). Without them the scorer has one bin and one row of values, without indices.
//! With binning by energy or time (`# Binned by incident track energy in 10 bins of 10 MeV
//! from 0 MeV to 100 MeV`, `# Binned by time in …`) a row holds no indices but every
//! differential bin, the columns interleaved (`Mean(underflow), Sum(underflow), Mean(bin 1),
//! Sum(bin 1), …`), then the overflow (and for energy one more bin, for no incident track):
//! the under- and overflow bins are dropped, as pymchelper does.
//!
//! A file becomes one page: the `Mean` column (per history; tasks are averaged, weighted by
//! their histories) or, for a scorer that reports no `Mean`, the `Sum` column (the task's
//! total; tasks are summed). Other columns (`Standard_Deviation`, …) are not kept: the merge
//! estimates the error from the spread between tasks.
//!
//! **Value order**: C order over the axes `(axis 1, axis 2, axis 3, differential axis)` —
//! the first binning line's axis varies slowest, the differential axis fastest; axes with a
//! single bin are left out of the page's axes (and its dimension), as pymchelper's JSON
//! writer does, which does not change the order.

use db::aggregation::Aggregation;
use db::results::{PageMeta, TaskPage};
use serde_json::json;
use std::path::Path;

/// The most values one page may have ([`sim_inputs::MAX_PAGE_VALUES`], as for every simulator).
const MAX_VALUES: usize = sim_inputs::MAX_PAGE_VALUES;

/// The columns a TOPAS scorer can report (`Sc/<name>/Report`).
const REPORTS: [&str; 9] = [
    "Sum",
    "Mean",
    "Histories",
    "Count_In_Bin",
    "Second_Moment",
    "Variance",
    "Standard_Deviation",
    "Min",
    "Max",
];

/// One binned axis: name, unit, bins, lower edge, bin width.
#[derive(Debug, Clone, PartialEq)]
struct Axis {
    name: String,
    unit: String,
    bins: usize,
    min: f64,
    width: f64,
}

impl Axis {
    fn json(&self) -> serde_json::Value {
        let centres: Vec<f64> = (0..self.bins)
            .map(|i| self.min + (i as f64 + 0.5) * self.width)
            .collect();
        json!({"name": self.name, "unit": self.unit, "values": centres})
    }
}

/// `<n> bin[s] of <width> <unit>`: the tokens after `in`.
fn bins_of(tokens: &[&str]) -> Option<(usize, f64, String)> {
    match tokens {
        [n, "bin" | "bins", "of", w, unit] => {
            Some((n.parse().ok()?, w.parse().ok()?, unit.to_string()))
        }
        _ => None,
    }
}

/// `# X in 4 bins of 0.75 cm` (after `# `).
fn spatial_axis(line: &str) -> Option<Axis> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    match &tokens[..] {
        [name, "in", rest @ ..] => {
            let (bins, width, unit) = bins_of(rest)?;
            Some(Axis {
                name: name.to_string(),
                unit,
                bins,
                min: 0.0,
                width,
            })
        }
        _ => None,
    }
}

/// `# Binned by <name> in <n> bins of <w> <unit> from <min> <unit> to <max> <unit>` (after
/// `# Binned by `): the axis and how many bins follow the last one (overflow, and for energy
/// the bin for no incident track).
fn differential_axis(rest: &str) -> Result<(Axis, usize), String> {
    let tokens: Vec<&str> = rest.split_whitespace().collect();
    let parsed = match tokens.len().checked_sub(12).map(|i| tokens.split_at(i)) {
        Some((name, [_in, b @ .., _from, min, _u1, _to, max, _u2]))
            if *_in == "in" && *_from == "from" && *_to == "to" && !name.is_empty() =>
        {
            bins_of(b).and_then(|(bins, _, unit)| {
                let (min, max): (f64, f64) = (min.parse().ok()?, max.parse().ok()?);
                Some(Axis {
                    name: name.join(" "),
                    unit,
                    bins,
                    min,
                    width: (max - min) / bins as f64,
                })
            })
        }
        _ => None,
    };
    let axis = parsed
        .filter(|a| a.bins > 0)
        .ok_or_else(|| format!("cannot read the binning line \"# Binned by {rest}\""))?;
    let after = match axis.name.as_str() {
        "time" => 1,
        "incident track energy" => 2,
        other => {
            return Err(format!(
                "binning by {other} is not supported (only by incident track energy or time)"
            ))
        }
    };
    Ok((axis, after))
}

/// `# Fluence ( /mm2 ) : Mean   Standard_Deviation` (after `# `): quantity, unit, columns.
fn quantity_line(line: &str) -> Option<(String, String, Vec<String>)> {
    if line.starts_with("Results for scorer") {
        return None;
    }
    let (left, right) = line.rsplit_once(':')?;
    let columns: Vec<String> = right.split_whitespace().map(str::to_string).collect();
    if columns.is_empty() || !columns.iter().all(|c| REPORTS.contains(&c.as_str())) {
        return None;
    }
    let left = left.trim();
    let (quantity, unit) = match left.strip_suffix(')').and_then(|l| l.split_once('(')) {
        Some((q, u)) => (q.trim(), u.trim()),
        None => (left, ""),
    };
    Some((quantity.to_string(), unit.to_string(), columns))
}

/// What the header says.
#[derive(Default)]
struct Header {
    scorer: Option<String>,
    axes: Vec<Axis>,
    differential: Option<(Axis, usize)>,
    quantity: Option<(String, String, Vec<String>)>,
    lines: Vec<String>,
}

fn header(lines: &[&str]) -> Result<Header, String> {
    let mut h = Header::default();
    for line in lines {
        let text = line.trim_start_matches('#').trim();
        h.lines.push(text.to_string());
        if let Some(name) = text.strip_prefix("Results for scorer:") {
            h.scorer = Some(name.trim().to_string());
        } else if let Some(rest) = text.strip_prefix("Binned by ") {
            h.differential = Some(differential_axis(rest)?);
        } else if let Some(axis) = spatial_axis(text) {
            h.axes.push(axis);
        } else if h.quantity.is_none() {
            h.quantity = quantity_line(text);
        }
    }
    Ok(h)
}

/// Parses a data line's comma-separated numbers.
fn numbers(line: &str, number: usize) -> Result<Vec<f64>, String> {
    line.split(',')
        .map(|v| {
            let v = v.trim();
            v.parse::<f64>()
                .map_err(|_| format!("line {number}: {v:?} is not a number"))
        })
        .collect()
}

/// The page of one scorer file: `file` is its name (for messages and the core name), `text`
/// its content. Malformed files are an error naming the cause, never a panic.
pub fn parse(file: &str, text: &str) -> Result<TaskPage, String> {
    let all: Vec<&str> = text.lines().collect();
    let head: Vec<&str> = all.iter().copied().filter(|l| l.starts_with('#')).collect();
    let h = header(&head)?;
    let scorer = h
        .scorer
        .filter(|n| !n.is_empty() && n.len() <= 255 && !n.chars().any(char::is_control))
        .ok_or("no \"# Results for scorer: NAME\" line: not a TOPAS scorer file")?;
    let (quantity, unit, columns) = h
        .quantity
        .ok_or("no \"# <quantity> : <columns>\" line naming the reported columns")?;
    let (column, aggregation) = match columns.iter().position(|c| c == "Mean") {
        Some(i) => (i, Aggregation::Mean),
        None => match columns.iter().position(|c| c == "Sum") {
            Some(i) => (i, Aggregation::Sum),
            None => {
                return Err(format!(
                    "the scorer reports neither Mean nor Sum ({})",
                    columns.join(", ")
                ))
            }
        },
    };
    if !matches!(h.axes.len(), 0 | 3) {
        return Err(format!("{} binning lines (0 or 3 expected)", h.axes.len()));
    }
    let rows_wanted = h
        .axes
        .iter()
        .try_fold(1usize, |n, a| n.checked_mul(a.bins))
        .filter(|&n| n > 0);
    let (diff_bins, after) = h
        .differential
        .as_ref()
        .map_or((1, 0), |(a, after)| (a.bins, *after));
    let total = rows_wanted
        .and_then(|r| r.checked_mul(diff_bins))
        .filter(|&n| n <= MAX_VALUES)
        .ok_or_else(|| format!("the binning makes more than {MAX_VALUES} bins, or none"))?;
    let rows_wanted = total / diff_bins;
    let r = columns.len();
    let mut values = vec![0.0; total];
    let mut seen = vec![false; rows_wanted];
    let mut row = 0usize;
    for (i, line) in all.iter().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let number = i + 1;
        let v = numbers(line, number)?;
        let slot = if h.differential.is_some() {
            let width = r * (1 + diff_bins + after);
            if v.len() != width {
                return Err(format!("line {number}: {} values, {width} expected ({r} columns × (underflow, {diff_bins} bins, {after} more))", v.len()));
            }
            for k in 0..diff_bins {
                if let Some(x) = values.get_mut(row * diff_bins + k) {
                    *x = v[(1 + k) * r + column];
                }
            }
            row
        } else if h.axes.is_empty() {
            if v.len() != r {
                return Err(format!("line {number}: {} values, {r} expected", v.len()));
            }
            if let Some(x) = values.get_mut(row) {
                *x = v[column];
            }
            row
        } else {
            if v.len() != 3 + r {
                return Err(format!(
                    "line {number}: {} values, {} expected (3 bin indices and {r} columns)",
                    v.len(),
                    3 + r
                ));
            }
            let mut flat = 0usize;
            for (a, &x) in h.axes.iter().zip(&v) {
                if x.fract() != 0.0 || x < 0.0 || x >= a.bins as f64 {
                    return Err(format!(
                        "line {number}: bin index {x} of {} is outside 0..{}",
                        a.name, a.bins
                    ));
                }
                flat = flat * a.bins + x as usize;
            }
            if let Some(x) = values.get_mut(flat) {
                *x = v[3 + column];
            }
            flat
        };
        match seen.get_mut(slot) {
            Some(s) if !*s => *s = true,
            Some(_) => return Err(format!("line {number}: a bin given twice")),
            None => {
                return Err(format!(
                    "line {number}: more rows than the {rows_wanted} bins"
                ))
            }
        }
        row += 1;
    }
    if row != rows_wanted {
        return Err(format!("{row} rows of values, {rows_wanted} expected"));
    }
    let mut axes: Vec<&Axis> = h.axes.iter().collect();
    axes.extend(h.differential.as_ref().map(|(a, _)| a));
    axes.retain(|a| a.bins > 1);
    let corename = file.strip_suffix(".csv").unwrap_or(file);
    Ok(TaskPage {
        estimator: scorer.clone(),
        page_number: 0,
        meta: PageMeta {
            name: scorer,
            dimension: axes.len() as i16,
            axes: serde_json::Value::Array(axes.iter().map(|a| a.json()).collect()),
            value_name: quantity.clone(),
            value_unit: unit,
            metadata: json!({
                "data_order": "C",
                "column": columns[column],
                "quantity": quantity,
                "topas_header": h.lines,
            }),
            estimator_metadata: json!({
                "file_corename": corename,
                "file_format": "csv",
                "data_order": "C",
            }),
        },
        aggregation,
        values,
    })
}

/// Reads the scorer file at `path` (see [`parse`]); errors name the file.
pub fn read(path: &Path) -> Result<TaskPage, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("TOPAS wrote no scorer file {name}"),
        _ => format!("cannot read scorer file {name}: {e}"),
    })?;
    parse(&name, &text).map_err(|e| format!("malformed scorer file {name}: {e}"))
}

#[cfg(test)]
#[path = "topas_csv_tests.rs"]
mod tests;
