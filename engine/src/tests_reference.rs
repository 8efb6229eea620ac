//! Engine tests against the SHIELD-HIT12A reference run: secondary-proton fluence, primary
//! fluence, energy deposited and plateau dose (figures copied from `../shared/data/yaptide/`, so that they
//! run without it).

use super::tests::{assert_close, deposited_mev, input, page, run_ok};
use super::{physics, xsection};
use std::f64::consts::PI;

#[test]
fn secondary_proton_fluence_builds_up_to_the_reference_level() {
    // 150 MeV in the SHIELD-HIT12A reference's cylinder. There, the secondary-proton fluence
    // × area is 0.019 at 1 cm and 0.045–0.049 from 5 to 9 cm; ours is 0.015 and 0.050–0.060
    // (protons out of non-elastic events and both protons of p–p elastic collisions).
    // With 2000 primaries about 110 secondaries cross 8 cm (±10%), so [0.035, 0.075] at
    // 7.5–8.5 cm and a build-up of at least 2× from the first centimetre are 3σ bounds that
    // a missing, misdirected or mis-scored secondary would break.
    let i = input(
        r#"{"beam": {"energy_mev": 150, "energy_spread_mev": 1.5, "sigma_cm": 0}, "phantom": {"depth_cm": 20}, "scoring": {"z_bins": 40, "r_bins": 5}}"#,
    );
    let est = run_ok(&i, 2000, 17);
    let area = PI * 25.0;
    let sf = &page(&est, "secondary_fluence").values;
    let (first, at8) = (sf[0] * area + sf[1] * area, sf[15] * area + sf[16] * area);
    assert!((0.07..0.15).contains(&at8), "2 × {}", at8 / 2.0);
    assert!(at8 > 2.0 * first, "{first} then {at8}");
    // Nothing beyond the primaries' range (secondaries are slower than their primary).
    assert!(sf[33..].iter().all(|v| *v == 0.0));
    // Primary fluence is unchanged in kind: ~1 at the entrance.
    let fl = &page(&est, "fluence").values;
    assert!((fl[0] * area - 1.0).abs() < 0.01, "{}", fl[0] * area);
}

#[test]
fn dose_and_energy_agree_with_shield_hit12a() {
    // Figures of the SHIELD-HIT12A v1.0.1 run in ../shared/data/yaptide/json_with_results.json
    // (estimator z_profile_, 9,996 primaries; copied here so that the test runs without it).
    const REFERENCE_DEPOSITED_MEV: f64 = 144.60;
    const REFERENCE_PLATEAU_4_5_TO_10_5_CM: f64 = 0.09602; // MeV/g per primary
    let i = input(
        r#"{"beam": {"energy_mev": 150, "energy_spread_mev": 1.5, "sigma_cm": 0}, "phantom": {"depth_cm": 20}, "scoring": {"z_bins": 400, "r_bins": 5}}"#,
    );
    let est = run_ok(&i, 3000, 23);
    // With 3000 primaries the energy deposited is known to ±0.2% and the 6-cm plateau mean
    // to ±0.5% (spreads of repeated runs); the reference's own noise is ±0.1% and ±0.2%.
    // Before nuclear secondaries were modelled the gaps were −6.7% and −11%; now they are
    // +0.3% and −0.7% (500,000 primaries). The bounds, 1% (the target) and 3.5%, leave 3σ
    // and 5σ of statistics on top of today's gaps.
    let edep = deposited_mev(&est, 5.0);
    assert_close("MeV deposited", edep, REFERENCE_DEPOSITED_MEV, 0.01);
    let dd = &page(&est, "depth_dose").values;
    let plateau = dd[90..210].iter().sum::<f64>() / 120.0;
    let want = REFERENCE_PLATEAU_4_5_TO_10_5_CM;
    assert_close("plateau 4.5–10.5 cm", plateau, want, 0.035);
}

#[test]
fn primary_fluence_falls_with_the_removing_cross_sections() {
    // Primaries are removed by non-elastic events and by elastic collisions with hydrogen
    // (both protons leave as secondaries), not by elastic scattering on oxygen (the proton
    // stays a primary). Survival to depth z: exp(−∫ (σ_ne + σ_pp) dz) along the CSDA path,
    // 0.889 at 10 cm (SHIELD-HIT12A's primary fluence × area there: 0.8958). Counting the
    // oxygen elastic scattering as removal would take another 5% (∫ σ_pO dz ≈ 0.055), and a
    // missing p–p process would add 2%; with 8000 primaries the fluence is known to ±0.35%, so
    // 1.2% is 3.5σ and catches either.
    let t = physics::RangeTables::new();
    let r0 = t.range(150.0);
    let (mut integral, n) = (0.0, 1000);
    for k in 0..n {
        let z = (k as f64 + 0.5) * 10.0 / n as f64;
        let e = t.energy(r0 - z);
        let sigma = xsection::nonelastic_sigma_per_cm(e) + xsection::pp_elastic_sigma_per_cm(e);
        integral += sigma * 10.0 / n as f64;
    }
    let expected = (-integral).exp();
    assert!((expected - 0.889).abs() < 0.003, "{expected}");
    let i = input(
        r#"{"beam": {"energy_mev": 150, "sigma_cm": 0}, "phantom": {"depth_cm": 20}, "scoring": {"z_bins": 40, "r_bins": 5}}"#,
    );
    let est = run_ok(&i, 8000, 31);
    let fl = &page(&est, "fluence").values;
    // Bins 19 and 20 span 9.5–10.5 cm; the track-length estimator runs ~0.2% above the
    // survival there (obliquity of the scattered tracks).
    let at10 = 0.5 * (fl[19] + fl[20]) * PI * 25.0;
    assert_close("primary fluence × area at 10 cm", at10, expected, 0.012);
}
