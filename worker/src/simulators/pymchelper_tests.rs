#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;

/// The shape of a real `convertmc json` file (pymchelper 2.9.6 on
/// `shieldhit/averaging/normalisation-5_aggregation-mean_0001.bdo`), trimmed.
const REAL_SHAPE: &str = r#"{"metadata": {"number_of_primaries": "434", "file_counter": "1",
  "file_corename": "normalisation-5_aggregation-mean", "data_order": "F", "user": "someone",
  "host": "hostname1", "geo_name": "MyMesh_YZ"},
  "pages": [{"metadata": {"name": "DOSE", "unit": "MeV/g/prim", "page_number": "0",
             "page_normalized": "2", "user": "x"}, "dimensions": 0,
             "data": {"unit": "MeV/g/prim", "name": "DOSE", "values": [[1.0491887508084707]]}},
            {"metadata": {"name": "COUNT", "page_number": "1", "page_normalized": "1"},
             "dimensions": 2, "data": {"unit": "", "name": "COUNT", "values": [1, 2, 3, 4, 5, 6]},
             "axis_dim1": {"unit": "cm", "name": "Position (X)", "values": [0.5, 1.5, 2.5]},
             "axis_dim2": {"unit": "cm", "name": "Position (Z)", "values": [0.5, 1.5]}}]}"#;

#[test]
fn the_name_is_the_file_stem_and_nested_values_flatten() {
    let (pages, primaries) =
        parse_estimator("normalisation-5_aggregation-mean", REAL_SHAPE).unwrap();
    assert_eq!(primaries, Some(434));
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0].estimator, "normalisation-5_aggregation-mean");
    assert_eq!(pages[0].values, vec![1.0491887508084707]);
    assert_eq!(pages[0].aggregation, Aggregation::Mean);
    assert_eq!(pages[1].aggregation, Aggregation::Sum);
    assert_eq!(pages[1].meta.dimension, 2);
    assert_eq!(
        pages[1].meta.axes[1]["values"],
        serde_json::json!([0.5, 1.5])
    );
}

#[test]
fn who_ran_the_converter_is_not_kept() {
    let (pages, _) = parse_estimator("e", REAL_SHAPE).unwrap();
    for p in &pages {
        for key in ["user", "host"] {
            assert!(p.meta.estimator_metadata.get(key).is_none(), "{key}");
            assert!(p.meta.metadata.get(key).is_none(), "{key}");
        }
        assert_eq!(p.meta.estimator_metadata["geo_name"], "MyMesh_YZ");
    }
}

#[test]
fn three_to_five_dimensions_are_pages_too() {
    let axis = |n: usize| serde_json::json!({"name": "a", "unit": "cm", "values": vec![0.0; n]});
    for dims in 3..=5usize {
        let sizes = [2, 3, 4, 2, 2];
        let bins: usize = sizes[..dims].iter().product();
        let mut page = serde_json::json!({"metadata": {"page_number": "0"}, "dimensions": dims,
            "data": {"name": "DOSE", "unit": "Gy", "values": vec![1.5; bins]}});
        for (d, n) in sizes[..dims].iter().enumerate() {
            page[format!("axis_dim{}", d + 1)] = axis(*n);
        }
        let text = serde_json::json!({"metadata": {}, "pages": [page]}).to_string();
        let (pages, primaries) = parse_estimator("mesh", &text).unwrap();
        assert_eq!(pages[0].values.len(), bins);
        assert_eq!(primaries, None);
    }
}

#[test]
fn python_non_finite_tokens_are_read_outside_strings_only() {
    let text = r#"{"metadata": {"note": "NaN Infinity \" NaN"}, "pages": [{"dimensions": 1,
        "data": {"name": "LET", "values": [NaN, Infinity, -Infinity, 2.0]},
        "axis_dim1": {"values": [1, 2, 3, 4]}, "metadata": {}}]}"#;
    let (pages, _) = parse_estimator("let", text).unwrap();
    let v = &pages[0].values;
    assert!(v[0].is_nan());
    assert_eq!(&v[1..], &[f64::INFINITY, f64::NEG_INFINITY, 2.0]);
    assert_eq!(
        pages[0].meta.estimator_metadata["note"],
        "NaN Infinity \" NaN"
    );
}

#[test]
fn phase_space_pages_keep_any_number_of_records() {
    let text = r#"{"metadata": {}, "pages": [{"dimensions": 0, "metadata":
        {"page_normalized": "4", "name": "MCPL"}, "data": {"name": "MCPL",
        "values": [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]]}}]}"#;
    let (pages, _) = parse_estimator("ps", text).unwrap();
    assert_eq!(pages[0].aggregation, Aggregation::Concat);
    assert_eq!(pages[0].values.len(), 8);
}

#[test]
fn malformed_estimators_are_named_errors() {
    let bad = [
        ("e", "{"),
        (
            "e",
            r#"{"pages": [{"dimensions": 1, "data": {"values": ["a"]}, "axis_dim1": {"values": [1]}}]}"#,
        ),
        (
            "e",
            r#"{"pages": [{"dimensions": 1, "data": {"values": [1, 2]}, "axis_dim1": {"values": [1, 2, 3]}}]}"#,
        ),
        (
            "e",
            r#"{"pages": [{"dimensions": 2, "data": {"values": [1]}, "axis_dim1": {"values": [1]}}]}"#,
        ),
        (
            "e",
            r#"{"pages": [{"dimensions": 6, "data": {"values": [1]}}]}"#,
        ),
        (
            "e",
            r#"{"pages": [{"dimensions": 0, "data": {"values": [1]}, "metadata": {"page_normalized": "9"}}]}"#,
        ),
        (
            "e",
            r#"{"pages": [{"dimensions": 0, "data": {"values": [1]}, "metadata": {"page_number": "-1"}}]}"#,
        ),
        ("", r#"{"pages": []}"#),
        ("a\u{0}b", r#"{"pages": []}"#),
    ];
    for (name, text) in bad {
        assert!(parse_estimator(name, text).is_err(), "{name:?} {text}");
    }
    let e = parse_estimator("e", bad[2].1).unwrap_err();
    assert!(e.contains("axes make 3 bins"), "{e}");
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
        let name = est["name"].as_str().unwrap();
        n += parse_estimator(name, &est.to_string())
            .unwrap()
            .0
            .iter()
            .map(|p| p.values.len())
            .sum::<usize>();
    }
    assert_eq!(n, 98_892);
}
