//! pymchelper's own answer: the real `convertmc json --many` run on real output files, read
//! back with nothing of the worker's parser, as the reference for merged pages.

use super::convertmc;
use db::aggregation::Aggregation;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One page as pymchelper merged it.
#[derive(Debug, Clone)]
pub struct RefPage {
    /// The JSON file's stem (the output's core name).
    pub estimator: String,
    /// `metadata.page_number`.
    pub page_number: i32,
    /// `dimensions`.
    pub dimension: i16,
    /// `[{name, unit, values}]` from `axis_dim1..N`, values as doubles.
    pub axes: serde_json::Value,
    /// The rule `page_normalized` names (mean when absent).
    pub aggregation: Aggregation,
    /// `data.values`, flattened.
    pub values: Vec<f64>,
    /// The estimator's `number_of_primaries`.
    pub primaries: i64,
}

/// The numbers of a JSON value as one flat list, in order (a single bin's are nested).
pub fn flatten(v: &serde_json::Value, out: &mut Vec<f64>) {
    match v {
        serde_json::Value::Array(a) => a.iter().for_each(|x| flatten(x, out)),
        serde_json::Value::Number(n) => out.push(n.as_f64().unwrap()),
        other => panic!("not a number: {other}"),
    }
}

/// Runs the real `convertmc json --many '<pattern>'` in `dir` (where it writes its JSON
/// files), which must succeed.
pub fn convertmc_json_many(pattern: &str, dir: &Path) {
    let status = Command::new(convertmc())
        .args(["json", "--many", pattern])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "convertmc failed: {status}");
}

fn int(v: &serde_json::Value) -> i64 {
    v.as_str().unwrap().parse().unwrap()
}

/// Copies each `(source, name)` into a fresh directory under `name`, runs the real
/// `convertmc json --many '<dir>/*'` there, and returns its pages sorted by estimator and
/// page number.
pub fn convertmc_pages(files: &[(PathBuf, String)]) -> Vec<RefPage> {
    let dir = std::env::temp_dir().join(format!(
        "convertmc-ref-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let (input, output) = (dir.join("in"), dir.join("out"));
    std::fs::create_dir_all(&input).unwrap();
    std::fs::create_dir_all(&output).unwrap();
    for (src, name) in files {
        std::fs::copy(src, input.join(name)).unwrap();
    }
    let ext = files[0].1.rsplit('.').next().unwrap();
    convertmc_json_many(&format!("{}/*.{ext}", input.display()), &output);
    let mut pages = Vec::new();
    for entry in std::fs::read_dir(&output).unwrap().flatten() {
        let path = entry.path();
        let estimator = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let est: serde_json::Value = serde_json::from_str(&text).unwrap();
        let primaries = int(&est["metadata"]["number_of_primaries"]);
        for (i, p) in est["pages"].as_array().unwrap().iter().enumerate() {
            let dimension = p["dimensions"].as_i64().unwrap() as i16;
            let axes: Vec<serde_json::Value> = (1..=dimension)
                .map(|d| {
                    let a = &p[format!("axis_dim{d}")];
                    let mut values = Vec::new();
                    flatten(&a["values"], &mut values);
                    serde_json::json!({"name": a["name"], "unit": a["unit"], "values": values})
                })
                .collect();
            let mut values = Vec::new();
            flatten(&p["data"]["values"], &mut values);
            let flag = p["metadata"].get("page_normalized").map(int);
            pages.push(RefPage {
                estimator: estimator.clone(),
                page_number: p["metadata"].get("page_number").map_or(i as i64, int) as i32,
                dimension,
                axes: serde_json::Value::Array(axes),
                aggregation: Aggregation::from_page_normalized(flag).unwrap(),
                values,
                primaries,
            });
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    pages.sort_by(|a, b| (&a.estimator, a.page_number).cmp(&(&b.estimator, b.page_number)));
    pages
}
