//! Reads the JSON that pymchelper's `convertmc json` writes: one file per estimator,
//! `{"name", "metadata": {…}, "pages": [{"dimensions", "data": {"name", "unit", "values"},
//! "axis_dim1"?, "axis_dim2"?, "metadata": {"page_number", "name", …}}]}` — the page format
//! of yaptide's results. Values are per primary (SHIELD-HIT12A normalises them).

use db::results::{PageMeta, TaskPage};
use serde::Deserialize;
use std::path::Path;

/// The most values one page may have (a 1000 × 1000 map).
const MAX_PAGE_VALUES: usize = 1_000_000;

#[derive(Deserialize)]
struct EstimatorJson {
    name: String,
    #[serde(default)]
    metadata: serde_json::Value,
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
    metadata: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct DataJson {
    #[serde(default)]
    name: String,
    #[serde(default)]
    unit: String,
    values: Vec<f64>,
}

#[derive(Deserialize, serde::Serialize)]
struct AxisJson {
    #[serde(default)]
    name: String,
    #[serde(default)]
    unit: String,
    values: Vec<f64>,
}

/// Every page of every `*.json` estimator file in `dir`, sorted by estimator and page.
pub fn read_dir(dir: &Path) -> Result<Vec<TaskPage>, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list the converted results: {e}"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err("the simulator produced no results (convertmc wrote no JSON files)".into());
    }
    let mut pages = Vec::new();
    for f in files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&f)
            .map_err(|e| format!("cannot read result file {name}: {e}"))?;
        pages.extend(
            parse_estimator(&text).map_err(|e| format!("malformed result file {name}: {e}"))?,
        );
    }
    pages.sort_by(|a, b| (&a.estimator, a.page_number).cmp(&(&b.estimator, b.page_number)));
    Ok(pages)
}

/// The pages of one estimator file.
pub fn parse_estimator(text: &str) -> Result<Vec<TaskPage>, String> {
    let est: EstimatorJson = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if est.name.is_empty() || est.name.len() > 255 {
        return Err("the estimator has no usable name".into());
    }
    let mut out = Vec::with_capacity(est.pages.len());
    for (i, p) in est.pages.into_iter().enumerate() {
        let page_number = match p.metadata.get("page_number") {
            Some(serde_json::Value::String(s)) => s
                .trim()
                .parse::<i32>()
                .map_err(|_| format!("page {i}: page_number {s:?} is not a number"))?,
            Some(serde_json::Value::Number(n)) => n
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| format!("page {i}: bad page_number"))?,
            _ => i as i32,
        };
        if page_number < 0 {
            return Err(format!("page {i}: negative page_number"));
        }
        if !(0..=3).contains(&p.dimensions) {
            return Err(format!("page {page_number}: {} dimensions", p.dimensions));
        }
        if p.data.values.len() > MAX_PAGE_VALUES {
            return Err(format!(
                "page {page_number}: {} values is more than {MAX_PAGE_VALUES}",
                p.data.values.len()
            ));
        }
        let axes: Vec<&AxisJson> = [p.axis_dim1.as_ref(), p.axis_dim2.as_ref()]
            .into_iter()
            .flatten()
            .collect();
        let expected: usize = axes.iter().map(|a| a.values.len().max(1)).product();
        if !axes.is_empty() && expected != p.data.values.len() {
            return Err(format!(
                "page {page_number}: {} values, but its axes make {expected} bins",
                p.data.values.len()
            ));
        }
        if axes.is_empty() && p.dimensions == 0 && p.data.values.len() != 1 {
            return Err(format!(
                "page {page_number}: a 0-D page needs exactly one value"
            ));
        }
        let page_name = p
            .metadata
            .get("name")
            .and_then(|v| v.as_str())
            .unwrap_or(&p.data.name)
            .to_string();
        out.push(TaskPage {
            estimator: est.name.clone(),
            page_number,
            meta: PageMeta {
                name: page_name,
                dimension: p.dimensions,
                axes: serde_json::to_value(&axes).map_err(|e| e.to_string())?,
                value_name: p.data.name,
                value_unit: p.data.unit,
                metadata: serde_json::Value::Object(p.metadata),
                estimator_metadata: est.metadata.clone(),
            },
            is_total: false,
            values: p.data.values,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_yaptide_style_estimator_parses() {
        let text = r#"{"name": "z_profile_", "metadata": {"geo_name": "CylZ_Mesh"},
          "pages": [{"dimensions": 1, "data": {"name": "DOSE", "unit": "MeV/g", "values": [1.0, 2.5, 0.0]},
                     "axis_dim1": {"name": "Position (Z)", "unit": "cm", "values": [0.5, 1.5, 2.5]},
                     "metadata": {"page_number": "0", "name": "DOSE"}},
                    {"dimensions": 0, "data": {"name": "AVG-ENERGY", "unit": "MeV", "values": [147.7]},
                     "metadata": {"page_number": "1"}}]}"#;
        let pages = parse_estimator(text).unwrap();
        assert_eq!(pages.len(), 2);
        assert_eq!(pages[0].values, vec![1.0, 2.5, 0.0]);
        assert_eq!(pages[0].meta.value_unit, "MeV/g");
        assert_eq!(pages[1].page_number, 1);
        assert_eq!(pages[0].meta.estimator_metadata["geo_name"], "CylZ_Mesh");
    }

    #[test]
    fn malformed_estimators_are_named_errors() {
        assert!(parse_estimator("{").is_err());
        assert!(parse_estimator(
            r#"{"name": "x", "pages": [{"dimensions": 1, "data": {"values": ["a"]}}]}"#
        )
        .is_err());
        let mismatch = r#"{"name": "x", "pages": [{"dimensions": 1, "data": {"values": [1, 2]},
            "axis_dim1": {"values": [1, 2, 3]}}]}"#;
        assert!(parse_estimator(mismatch)
            .unwrap_err()
            .contains("axes make 3 bins"));
        assert!(parse_estimator(r#"{"name": "", "pages": []}"#).is_err());
    }

    #[test]
    fn the_real_yaptide_result_parses_when_present() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/yaptide/json_with_results.json");
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let all: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut n = 0;
        for est in all["estimators"].as_array().unwrap() {
            n += parse_estimator(&est.to_string())
                .unwrap()
                .iter()
                .map(|p| p.values.len())
                .sum::<usize>();
        }
        assert_eq!(n, 98_892);
    }
}
