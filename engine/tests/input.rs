//! Tests of the builtin simulator's input (the editor JSON, parsed and checked by
//! `sim-inputs`) as the engine takes it: defaults, ranges, unknown fields, malformed JSON, and
//! `run` refusing what could not run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use engine::input::Material;
use engine::{run, BuiltinInput, Control, InputError, RunError};

fn input(json: &str) -> BuiltinInput {
    match BuiltinInput::from_json(json) {
        Ok(i) => i,
        Err(e) => panic!("input {json} refused: {e}"),
    }
}

fn invalid_field(json: &str) -> &'static str {
    match BuiltinInput::from_json(json) {
        Err(InputError::Invalid { field, .. }) => field,
        other => panic!("{json}: expected a range error, got {other:?}"),
    }
}

fn json_error(json: &str) -> String {
    match BuiltinInput::from_json(json) {
        Err(InputError::Json(msg)) => msg,
        other => panic!("{json}: expected a JSON error, got {other:?}"),
    }
}

#[test]
fn minimal_input_gets_the_documented_defaults() {
    let i = input(r#"{"beam": {"energy_mev": 150}}"#);
    assert_eq!(i.beam.energy_mev, 150.0);
    assert_eq!(i.beam.energy_spread_mev, 0.0);
    assert_eq!(i.beam.sigma_cm, 0.3);
    assert_eq!(i.beam.position_cm, [0.0, 0.0]);
    assert_eq!(i.phantom.material, Material::Water);
    assert_eq!(i.phantom.radius_cm, 5.0);
    assert_eq!(i.phantom.depth_cm, 40.0);
    assert_eq!(i.scoring.z_bins, 400);
    assert_eq!(i.scoring.r_bins, 50);
    assert_eq!(i.seed, 0);
}

#[test]
fn full_input_parses_and_round_trips() {
    let json = r#"{"beam": {"energy_mev": 70.5, "energy_spread_mev": 0.7, "sigma_cm": 0.5,
                            "position_cm": [1.0, -0.5]},
                   "phantom": {"material": "water", "radius_cm": 8.0, "depth_cm": 10.0},
                   "scoring": {"z_bins": 100, "r_bins": 80},
                   "seed": 18446744073709551615}"#;
    let i = input(json);
    assert_eq!(i.beam.position_cm, [1.0, -0.5]);
    assert_eq!(i.seed, u64::MAX);
    let again = input(&serde_json::to_string(&i).unwrap());
    assert_eq!(i, again);
}

#[test]
fn energy_outside_10_to_250_mev_is_refused() {
    for e in ["9.99", "0", "-150", "250.01", "1e6"] {
        let json = format!(r#"{{"beam": {{"energy_mev": {e}}}}}"#);
        assert_eq!(invalid_field(&json), "beam.energy_mev", "{e}");
    }
    input(r#"{"beam": {"energy_mev": 10}}"#);
    input(r#"{"beam": {"energy_mev": 250}}"#);
}

#[test]
fn negative_or_oversized_widths_are_refused() {
    let cases = [
        (
            r#"{"beam": {"energy_mev": 100, "sigma_cm": -0.1}}"#,
            "beam.sigma_cm",
        ),
        (
            r#"{"beam": {"energy_mev": 100, "sigma_cm": 101}}"#,
            "beam.sigma_cm",
        ),
        (
            r#"{"beam": {"energy_mev": 100, "energy_spread_mev": -1}}"#,
            "beam.energy_spread_mev",
        ),
        (
            r#"{"beam": {"energy_mev": 100, "energy_spread_mev": 10.5}}"#,
            "beam.energy_spread_mev",
        ),
        (
            r#"{"beam": {"energy_mev": 100, "position_cm": [5, 0]}}"#,
            "beam.position_cm",
        ),
        (
            r#"{"beam": {"energy_mev": 100}, "phantom": {"radius_cm": 0}}"#,
            "phantom.radius_cm",
        ),
        (
            r#"{"beam": {"energy_mev": 100}, "phantom": {"depth_cm": -3}}"#,
            "phantom.depth_cm",
        ),
        (
            r#"{"beam": {"energy_mev": 100}, "phantom": {"depth_cm": 101}}"#,
            "phantom.depth_cm",
        ),
        (
            r#"{"beam": {"energy_mev": 100}, "scoring": {"z_bins": 0}}"#,
            "scoring.z_bins",
        ),
        (
            r#"{"beam": {"energy_mev": 100}, "scoring": {"r_bins": 0}}"#,
            "scoring.r_bins",
        ),
        (
            r#"{"beam": {"energy_mev": 100}, "scoring": {"z_bins": 10000, "r_bins": 1000}}"#,
            "scoring.r_bins",
        ),
    ];
    for (json, field) in cases {
        assert_eq!(invalid_field(json), field, "{json}");
    }
}

#[test]
fn unknown_fields_are_rejected_at_every_level() {
    for json in [
        r#"{"beam": {"energy_mev": 100}, "primaries": 1000}"#,
        r#"{"beam": {"energy_mev": 100, "energy_MeV": 120}}"#,
        r#"{"beam": {"energy_mev": 100}, "phantom": {"radius": 3}}"#,
        r#"{"beam": {"energy_mev": 100}, "scoring": {"x_bins": 3}}"#,
    ] {
        assert!(json_error(json).contains("unknown field"), "{json}");
    }
}

#[test]
fn malformed_or_mistyped_json_is_refused() {
    for json in [
        "",
        "{",
        "[]",
        r#"{"beam": {"energy_mev": 100}"#,
        r#"{"beam": {"energy_mev": "100"}}"#,
        r#"{"beam": {}}"#,
        r#"{"phantom": {}}"#,
        r#"{"beam": {"energy_mev": 100}, "phantom": {"material": "lead"}}"#,
        r#"{"beam": {"energy_mev": 100, "position_cm": [1]}}"#,
        r#"{"beam": {"energy_mev": 100}, "scoring": {"z_bins": -1}}"#,
        r#"{"beam": {"energy_mev": 100}, "seed": -1}"#,
    ] {
        json_error(json);
    }
}

#[test]
fn run_refuses_zero_primaries_and_invalid_inputs_built_in_code() {
    let mut i = input(r#"{"beam": {"energy_mev": 100}}"#);
    assert_eq!(
        run(&i, 0, 1, &mut |_| Control::Continue),
        Err(RunError::NoPrimaries)
    );
    i.beam.energy_mev = f64::NAN;
    assert!(matches!(
        run(&i, 10, 1, &mut |_| Control::Continue),
        Err(RunError::Input(InputError::Invalid {
            field: "beam.energy_mev",
            ..
        }))
    ));
}
