//! Tests of the builtin simulator: reproducibility, progress and cancellation,
//! estimator sums, and the R80 validation against NIST PSTAR.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use std::f64::consts::PI;
use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) fn input(json: &str) -> BuiltinInput {
    match BuiltinInput::from_json(json) {
        Ok(i) => i,
        Err(e) => panic!("input {json} refused: {e}"),
    }
}

pub(crate) fn run_ok(input: &BuiltinInput, primaries: u64, seed: u64) -> Vec<Estimator> {
    run(input, primaries, seed, &mut |_| Control::Continue).unwrap()
}

pub(crate) fn page<'a>(est: &'a [Estimator], name: &str) -> &'a Page {
    &est.iter().find(|e| e.name == name).unwrap().pages[0]
}

/// Asserts that `got` is within `tolerance` (relative) of `want`; the message names `what`
/// and gives the deviation in %.
pub(crate) fn assert_close(what: &str, got: f64, want: f64, tolerance: f64) {
    let deviation = got / want - 1.0;
    assert!(
        deviation.abs() < tolerance,
        "{what}: {got} vs {want} ({:+.2}%)",
        deviation * 100.0
    );
}

// ---------------------------------------------------------------- seeds and reproducibility

#[test]
fn xoshiro256plusplus_matches_the_reference_output() {
    let mut r = rng::Rng::from_state([1, 2, 3, 4]);
    let first: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
    assert_eq!(
        first,
        [
            41_943_041,
            58_720_359,
            3_588_806_011_781_223,
            3_591_011_842_654_386
        ]
    );
}

#[test]
fn gaussian_deviates_have_unit_variance() {
    let mut r = rng::Rng::new(99);
    let n = 200_000;
    let (mut s, mut s2) = (0.0, 0.0);
    for _ in 0..n {
        let g = r.gaussian();
        s += g;
        s2 += g * g;
    }
    let mean = s / n as f64;
    let var = s2 / n as f64 - mean * mean;
    assert!(mean.abs() < 0.01, "mean {mean}");
    assert!((var - 1.0).abs() < 0.01, "variance {var}");
}

#[test]
fn task_seeds_are_distinct_deterministic_and_pinned() {
    let mut seen = std::collections::HashSet::new();
    for base in [0u64, 1, 12345, u64::MAX] {
        for index in 0..5000u32 {
            assert!(
                seen.insert(task_seed(base, index)),
                "duplicate at {base}/{index}"
            );
        }
    }
    assert_eq!(task_seed(12345, 7), task_seed(12345, 7));
    // Pinned so that a refactor cannot silently change every simulation's random numbers.
    assert_eq!(task_seed(0, 0), PINNED_TASK_SEED_0_0);
}

/// `task_seed(0, 0)`, as first computed.
const PINNED_TASK_SEED_0_0: u64 = 9_464_877_524_578_443_653;

fn bits(est: &[Estimator]) -> Vec<u64> {
    est.iter()
        .flat_map(|e| e.pages.iter())
        .flat_map(|p| p.values.iter().map(|v| v.to_bits()))
        .collect()
}

#[test]
fn same_seed_gives_bit_identical_output_and_other_seeds_differ() {
    let i = input(
        r#"{"beam": {"energy_mev": 100, "energy_spread_mev": 1.0}, "scoring": {"z_bins": 120, "r_bins": 20}}"#,
    );
    let a = run_ok(&i, 300, task_seed(42, 3));
    let b = run_ok(&i, 300, task_seed(42, 3));
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(a, b);
    let c = run_ok(&i, 300, task_seed(42, 4));
    let d = run_ok(&i, 300, task_seed(43, 3));
    assert_ne!(bits(&a), bits(&c));
    assert_ne!(bits(&a), bits(&d));
    assert_ne!(bits(&c), bits(&d));
}

// ---------------------------------------------------------------- progress and cancellation

#[test]
fn progress_counts_never_decrease_and_end_at_the_total() {
    let i = input(r#"{"beam": {"energy_mev": 20}}"#);
    let mut calls = Vec::new();
    let est = run(&i, 2500, 1, &mut |n| {
        calls.push(n);
        Control::Continue
    });
    assert!(est.is_ok());
    assert_eq!(calls, [1000, 2000, 2500]);

    let mut calls = Vec::new();
    run(&i, 7, 1, &mut |n| {
        calls.push(n);
        Control::Continue
    })
    .unwrap();
    assert_eq!(calls, [7]);
}

#[test]
fn stop_from_the_callback_cancels_the_run() {
    let i = input(r#"{"beam": {"energy_mev": 20}}"#);
    let mut calls = 0;
    let r = run(&i, 10_000, 1, &mut |n| {
        calls += 1;
        if n >= 2000 {
            Control::Stop
        } else {
            Control::Continue
        }
    });
    assert_eq!(r, Err(RunError::Canceled { simulated: 2000 }));
    assert_eq!(calls, 2);
}

#[test]
fn a_cancel_flag_checked_in_the_callback_stops_the_run() {
    let i = input(r#"{"beam": {"energy_mev": 20}}"#);
    let cancel = AtomicBool::new(false);
    let r = run(&i, 1_000_000, 1, &mut |n| {
        if n == 3000 {
            cancel.store(true, Ordering::Relaxed); // e.g. set by another thread
        }
        if cancel.load(Ordering::Relaxed) {
            Control::Stop
        } else {
            Control::Continue
        }
    });
    assert_eq!(r, Err(RunError::Canceled { simulated: 3000 }));
    assert!(r.unwrap_err().to_string().contains("canceled"));
}

// ---------------------------------------------------------------- estimators

#[test]
fn pages_carry_their_metadata() {
    let i = input(
        r#"{"beam": {"energy_mev": 50}, "phantom": {"radius_cm": 4, "depth_cm": 5}, "scoring": {"z_bins": 100, "r_bins": 40}}"#,
    );
    let est = run_ok(&i, 100, 1);
    let names: Vec<&str> = est.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["depth_dose", "dose_rz", "fluence", "secondary_fluence"]
    );
    let dd = page(&est, "depth_dose");
    assert_eq!((dd.dimension, dd.values.len()), (1, 100));
    assert_eq!(dd.value_unit, "MeV/g/primary");
    assert_eq!(dd.axes[0].name, "z");
    assert_eq!((dd.axes[0].unit.as_str(), dd.axes[0].bins), ("cm", 100));
    assert_eq!((dd.axes[0].min, dd.axes[0].max), (0.0, 5.0));
    let rz = page(&est, "dose_rz");
    assert_eq!((rz.dimension, rz.values.len()), (2, 4000));
    assert_eq!(rz.axes[0].name, "z");
    assert_eq!(rz.axes[1].name, "r");
    assert_eq!((rz.axes[1].bins, rz.axes[1].max), (40, 4.0));
    assert_eq!(rz.value_unit, "MeV/g/primary");
    let fl = page(&est, "fluence");
    assert_eq!((fl.dimension, fl.values.len()), (1, 100));
    assert_eq!(fl.value_unit, "cm^-2/primary");
    let sf = page(&est, "secondary_fluence");
    assert_eq!((sf.dimension, sf.values.len()), (1, 100));
    assert_eq!(
        (sf.value_unit.as_str(), sf.axes[0].name.as_str()),
        ("cm^-2/primary", "z")
    );
    // The pages serialise for the worker.
    assert!(serde_json::to_string(&est).unwrap().contains("\"dose_rz\""));
}

/// Mean energy deposited per primary from a depth-dose page, MeV.
pub(crate) fn deposited_mev(est: &[Estimator], radius: f64) -> f64 {
    let dd = page(est, "depth_dose");
    let h = (dd.axes[0].max - dd.axes[0].min) / f64::from(dd.axes[0].bins);
    dd.values.iter().sum::<f64>() * PI * radius * radius * h
}

#[test]
fn estimator_sums_are_consistent_with_energy_and_particle_counts() {
    let i = input(
        r#"{"beam": {"energy_mev": 100}, "phantom": {"radius_cm": 5, "depth_cm": 10}, "scoring": {"z_bins": 100, "r_bins": 25}}"#,
    );
    let n = 1000;
    let est = run_ok(&i, n, 11);
    let area = PI * 25.0;
    let h = 0.1;

    // Energy: all of it stays in this phantom apart from nuclear losses (about 8% of the
    // primaries of 100 MeV interact, and ~32% of an event's energy leaves as neutrons,
    // gammas and binding energy: ~2 MeV per primary).
    let edep = deposited_mev(&est, 5.0);
    assert!(
        edep < 100.0 && edep > 90.0,
        "mean energy deposited {edep} MeV"
    );

    // dose_rz summed over r with annulus masses equals depth_dose times slab mass.
    let dd = page(&est, "depth_dose");
    let rz = page(&est, "dose_rz");
    let hr = 0.2;
    for iz in 0..100 {
        let ring_sum: f64 = (0..25)
            .map(|ir| {
                let (r0, r1) = (ir as f64 * hr, (ir + 1) as f64 * hr);
                rz.values[iz * 25 + ir] * PI * (r1 * r1 - r0 * r0) * h
            })
            .sum();
        let slab = dd.values[iz] * area * h;
        assert!(
            (ring_sum - slab).abs() <= 1e-9 * slab.max(1e-300),
            "z bin {iz}"
        );
    }

    // Fluence × area = primaries still travelling: about 1 at the entrance, then falling.
    let fl = &page(&est, "fluence").values;
    let entrance = fl[0] * area;
    assert!(
        (entrance - 1.0).abs() < 0.01,
        "entrance fluence × area = {entrance}"
    );
    let mid = fl[40] * area; // 4 cm: about 5% lost to nuclear interactions
    assert!(
        mid < entrance && mid > 0.9,
        "fluence × area at 4 cm = {mid}"
    );
    // Past the CSDA range (7.72 cm) nothing is left.
    assert!(fl[85..].iter().all(|v| *v == 0.0));
    assert!(dd.values[85..].iter().all(|v| *v == 0.0));
    // The Bragg peak is well above the entrance dose.
    let (imax, _) = dd
        .values
        .iter()
        .enumerate()
        .fold((0, 0.0), |a, (k, v)| if *v > a.1 { (k, *v) } else { a });
    assert!((70..78).contains(&imax), "peak at bin {imax}");
    assert!(dd.values[imax] > 3.0 * dd.values[2]);
}

#[test]
fn a_thin_phantom_absorbs_the_bethe_energy_loss() {
    // 150 MeV through 1 cm of water: the protons leave through the back face, having lost
    // ΔE = E − E(R − 1 cm) ≈ 5.5 MeV each. The 1.2% that interact on the way (non-elastic
    // 1.0%, elastic on hydrogen 0.16%) add their local share and their slow secondaries, at
    // most a few MeV each: < 0.012 × 150 × 0.2 ≈ 0.4 MeV per primary on top of the Bethe
    // loss (a bound, not a tuned tolerance).
    let i = input(
        r#"{"beam": {"energy_mev": 150}, "phantom": {"depth_cm": 1.0}, "scoring": {"z_bins": 10, "r_bins": 5}}"#,
    );
    let out = run_with_balance(&i, 1000, 5, &mut |_| Control::Continue).unwrap();
    let edep = deposited_mev(&out.estimators, 5.0);
    let t = physics::RangeTables::new();
    let loss = 150.0 - t.energy(t.range(150.0) - 1.0);
    let sigma = xsection::nonelastic_sigma_per_cm(150.0) + xsection::pp_elastic_sigma_per_cm(150.0);
    let p = 1.0 - (-sigma * 1.0).exp();
    // Without the interacting primaries' second half-centimetre.
    let floor = (1.0 - p) * loss + p * 0.5 * loss;
    assert!(
        edep > 0.99 * floor && edep < floor + 0.4,
        "{edep} MeV vs Bethe {floor} MeV"
    );
    // Almost all of the rest leaves through the back face as protons.
    let escaped = out.balance.escaped_protons_mev / 1000.0;
    assert!(
        escaped > 150.0 - loss - 1.5 && escaped < 150.0 - loss,
        "{escaped} MeV escaped"
    );
}

/// Runs `json` and checks the energy balance of every batch and of the run.
fn check_balance(json: &str, primaries: u64, seed: u64) -> Outcome {
    let i = input(json);
    let out = run_with_balance(&i, primaries, seed, &mut |_| Control::Continue).unwrap();
    assert_eq!(
        out.batches.len() as u64,
        primaries.div_ceil(PROGRESS_INTERVAL)
    );
    let mut sum = EnergyBalance::default();
    for (k, b) in out.batches.iter().enumerate() {
        // Every part is a sum of non-negative amounts, and they add up to the beam energy
        // up to rounding (a few ulps per step, ~1e-12 of the total).
        for (name, v) in b.parts_mev() {
            assert!(v >= 0.0, "batch {k}: {name} = {v}");
        }
        assert!(
            b.imbalance_mev().abs() <= 1e-9 * b.beam_mev,
            "batch {k}: {b:?} is off by {} MeV",
            b.imbalance_mev()
        );
        assert_eq!(b.unscored_mev, 0.0, "batch {k}");
        sum.add(b);
    }
    assert_eq!(sum.primaries, primaries);
    assert!((sum.beam_mev - out.balance.beam_mev).abs() <= 1e-12 * sum.beam_mev);
    assert!(out.balance.imbalance_mev().abs() <= 1e-9 * out.balance.beam_mev);
    // What the balance calls deposited is what the depth-dose page holds.
    let radius = i.phantom.radius_cm;
    let scored = deposited_mev(&out.estimators, radius) * primaries as f64;
    assert!(
        (scored - out.balance.deposited_mev).abs() <= 1e-9 * out.balance.deposited_mev,
        "page {scored} MeV vs balance {} MeV",
        out.balance.deposited_mev
    );
    // The same seed gives the same estimators as `run`.
    assert_eq!(
        out.estimators,
        run_ok(&i, primaries, seed),
        "run_with_balance and run differ"
    );
    out
}

#[test]
fn the_energy_balance_adds_up_for_every_batch() {
    // Default phantom: protons leave only rarely (secondaries through the side).
    let out = check_balance(
        r#"{"beam": {"energy_mev": 150, "energy_spread_mev": 1.5}, "phantom": {"depth_cm": 20}, "scoring": {"z_bins": 100, "r_bins": 10}}"#,
        2500,
        21,
    );
    let b = out.balance;
    let per = |v: f64| v / b.primaries as f64;
    assert_eq!(b.missed_mev, 0.0);
    // The mean beam energy is 150 MeV (σ 1.5 MeV over 2500 primaries: ±0.03 MeV).
    assert!(
        (per(b.beam_mev) - 150.0).abs() < 0.15,
        "{}",
        per(b.beam_mev)
    );
    // About 16% of the primaries have a non-elastic interaction (ICRU 63 cross section, ~400
    // events), with ~100 MeV each; on average 32% of an event's energy leaves as neutrons,
    // gammas and binding energy: ~4.8 MeV per primary. Its statistical spread here is ~0.3 MeV (per event 0.8 (1 − y) t has a
    // standard deviation of ~21 MeV, and the number of events is Poisson), so [3, 8] MeV
    // fails only if the budget or the cross section is off by tens of percent.
    let away = per(b.neutrons_mev + b.gammas_mev + b.binding_mev);
    assert!(
        away > 3.0 && away < 8.0,
        "{away} MeV carried away per primary"
    );
    // Neutrons, gammas and binding are fixed proportions of each event's rest.
    assert!((b.neutrons_mev / b.gammas_mev - 10.0).abs() < 1e-9);
    assert!((b.binding_mev / b.gammas_mev - 5.0).abs() < 1e-9);

    // A narrow phantom: part of the beam misses it and most protons leave through the side.
    let out = check_balance(
        r#"{"beam": {"energy_mev": 100, "sigma_cm": 0.3}, "phantom": {"radius_cm": 0.2, "depth_cm": 10}, "scoring": {"z_bins": 50, "r_bins": 4}}"#,
        1500,
        9,
    );
    assert!(out.balance.missed_mev > 0.5 * out.balance.beam_mev);
    assert!(out.balance.escaped_protons_mev > out.balance.deposited_mev * 0.1);
}

#[test]
fn a_narrow_phantom_loses_protons_sideways() {
    // A 2 mm radius: part of the beam misses, and scattered protons leave through the side.
    let i = input(
        r#"{"beam": {"energy_mev": 100, "sigma_cm": 0.3}, "phantom": {"radius_cm": 0.2, "depth_cm": 10}, "scoring": {"z_bins": 50, "r_bins": 4}}"#,
    );
    let est = run_ok(&i, 1000, 9);
    let edep = deposited_mev(&est, 0.2);
    // About 1 − exp(−0.2²/(2·0.3²)) = 20% of the primaries enter.
    assert!(edep > 5.0 && edep < 30.0, "{edep} MeV");
    let area = PI * 0.04;
    let entrance = page(&est, "fluence").values[0] * area;
    assert!(entrance > 0.12 && entrance < 0.28, "{entrance}");
}

#[test]
fn energy_spread_widens_the_distal_falloff() {
    let sharp = input(
        r#"{"beam": {"energy_mev": 100}, "phantom": {"depth_cm": 10}, "scoring": {"z_bins": 500, "r_bins": 5}}"#,
    );
    let mut wide = sharp.clone();
    wide.beam.energy_spread_mev = 3.0;
    let falloff = |i: &BuiltinInput| {
        let est = run_ok(i, 1500, 3);
        let dd = page(&est, "depth_dose");
        let r80 = r80_cm(dd).unwrap();
        let max = dd.values.iter().cloned().fold(0.0, f64::max);
        let k = dd.values.iter().rposition(|v| *v >= 0.2 * max).unwrap();
        (k as f64 + 0.5) * 0.02 - r80 // ≈ R20 − R80
    };
    let (a, b) = (falloff(&sharp), falloff(&wide));
    assert!(
        b > 1.5 * a,
        "R20 − R80: {a} cm without spread, {b} cm with 3 MeV"
    );
}

// ---------------------------------------------------------------- validation

/// R80 of the depth-dose curve within 2% of the PSTAR CSDA range at 70, 150 and 230 MeV.
/// (R80 sits close to the mean projected range, about the CSDA range in water; with the
/// full statistics of the bench the deviations are 0.1–0.3%.)
#[test]
fn r80_matches_pstar_csda_range_at_70_150_230_mev() {
    // Few primaries keep this quick in a debug build; R80 needs only the depth-dose curve,
    // and a few thousand protons fix it to a fraction of a millimetre.
    let primaries = if cfg!(debug_assertions) { 3000 } else { 20_000 };
    for (energy, seed) in [(70.0, 70), (150.0, 150), (230.0, 230)] {
        let pstar = pstar_csda_range_cm(energy).unwrap();
        let depth = (pstar * 1.2).ceil();
        let json = format!(
            r#"{{"beam": {{"energy_mev": {energy}}}, "phantom": {{"depth_cm": {depth}}},
                 "scoring": {{"z_bins": {}, "r_bins": 1}}}}"#,
            (depth * 50.0) as u32 // 0.2 mm bins
        );
        let est = run_ok(&input(&json), primaries, seed);
        let r80 = r80_cm(page(&est, "depth_dose")).unwrap();
        // 0.6%: tighter than the requirement (2%), to catch physics regressions early.
        assert_close(&format!("{energy} MeV: R80 vs PSTAR"), r80, pstar, 0.006);
    }
}

#[test]
fn r80_of_a_known_curve() {
    let axis = Axis {
        name: "z".into(),
        unit: "cm".into(),
        bins: 5,
        min: 0.0,
        max: 5.0,
    };
    let p = Page {
        name: "dose".into(),
        dimension: 1,
        axes: vec![axis],
        value_name: "dose".into(),
        value_unit: "MeV/g/primary".into(),
        values: vec![1.0, 2.0, 10.0, 6.0, 0.0],
    };
    // Max 10 at centre 2.5; 80% = 8 between 10 (2.5) and 6 (3.5): 2.5 + 2/4 = 3.0.
    assert!((r80_cm(&p).unwrap() - 3.0).abs() < 1e-12);
    let empty = Page {
        values: vec![0.0; 5],
        ..p
    };
    assert_eq!(r80_cm(&empty), None);
}
