//! Nuclear cross sections of protons in liquid water: the non-elastic cross section of
//! oxygen and the proton–proton elastic cross section of hydrogen, as functions of the
//! proton's kinetic energy, and a lookup table of both for the transport.

use super::physics::{lerp_rows, TABLE_MAX_MEV, WATER_DENSITY};

/// Below this energy the non-elastic cross section is zero, MeV (the fit below is used from
/// here; reactions on ¹⁶O have thresholds of 5–7 MeV, and a 7 MeV proton's range in water is
/// 0.06 cm).
pub(crate) const NONELASTIC_THRESHOLD_MEV: f64 = 7.0;
/// Above this energy the non-elastic fit is held constant, MeV (the end of its range of
/// validity, where it has reached its asymptote, 9.86 × 10⁻³ cm²/g).
const NONELASTIC_FIT_MAX_MEV: f64 = 250.0;

/// Macroscopic non-elastic nuclear cross section of water, 1/cm, at kinetic energy `e` MeV.
///
/// Fippel and Soukup's fit to the ICRU Report 63 (2000) evaluation of proton non-elastic
/// cross sections on ¹⁶O, as a mass cross section of water (M. Fippel and M. Soukup, *A Monte
/// Carlo dose calculation algorithm for proton therapy*, Med. Phys. 31 (2004) 2263; the same
/// fit is the default of the MOQUI code, Lee et al., Phys. Med. Biol. 67 (2022) 055005):
/// `σ/ρ = [1.64 (E − 7.9) exp(−0.064 E + 7.85/E) + 9.86] × 10⁻³ cm²/g`, `E` in MeV, for
/// 7 < E < 250 MeV. Hydrogen adds nothing below the pion threshold (~290 MeV). Values:
/// 0.0180 /cm at 20 MeV (0.54 b per O atom), 0.0132 at 50 MeV, 0.0101 at 100 MeV, 0.0099 at
/// 150 MeV (0.30 b), 0.0099 from 200 MeV on. It replaces a constant 0.012 /cm: fewer
/// primaries interact at high energy and more below ~60 MeV, as in ICRU 63.
pub(crate) fn nonelastic_sigma_per_cm(e: f64) -> f64 {
    // (Written so that NaN also gives zero.)
    if e.partial_cmp(&NONELASTIC_THRESHOLD_MEV) != Some(std::cmp::Ordering::Greater) {
        return 0.0;
    }
    let e = e.min(NONELASTIC_FIT_MAX_MEV);
    (1.64 * (e - 7.9) * (-0.064 * e + 7.85 / e).exp() + 9.86) * 1e-3 * WATER_DENSITY
}

/// Hydrogen atoms per cm³ of water: `2 ρ N_A / M(H₂O)` = 2 × 6.022 × 10²³ / 18.015.
pub(crate) const WATER_HYDROGEN_PER_CM3: f64 = 6.686e22;
/// One millibarn, cm².
const MILLIBARN_CM2: f64 = 1e-27;

/// Proton–proton (nuclear) elastic cross section, `(E MeV, σ mb)`, linear interpolation
/// between the points, constant beyond the last, zero below the first.
///
/// Values read, every few MeV, from the proton–proton elastic table of the MOQUI proton
/// Monte Carlo code (Lee et al., Phys. Med. Biol. 67 (2022) 055005; table taken from Geant4's
/// hadronic cross sections, 0.5 MeV steps), converted from its macroscopic water values with
/// [`WATER_HYDROGEN_PER_CM3`]; they follow the measured p–p cross section below the pion
/// threshold (SAID partial-wave analysis): ~300 mb at 10 MeV, ~52 mb at 50 MeV, ~28 mb at
/// 100 MeV and a flat ~23 mb from 150 to 300 MeV (the Coulomb part is not included: that is
/// multiple scattering). Below 5 MeV (range 0.04 cm) the process is left out.
pub(crate) const PP_ELASTIC_MB: [(f64, f64); 20] = [
    (5.0, 515.6),
    (7.0, 406.0),
    (10.0, 301.7),
    (15.0, 204.9),
    (20.0, 151.1),
    (25.0, 117.5),
    (30.0, 94.9),
    (40.0, 67.3),
    (50.0, 51.7),
    (60.0, 42.2),
    (70.0, 36.1),
    (80.0, 32.1),
    (90.0, 29.3),
    (100.0, 27.6),
    (125.0, 25.0),
    (150.0, 23.9),
    (175.0, 23.5),
    (200.0, 23.3),
    (250.0, 23.3),
    (300.0, 23.5),
];

/// Macroscopic proton–proton elastic cross section of water, 1/cm, at kinetic energy `e` MeV
/// ([`PP_ELASTIC_MB`] × [`WATER_HYDROGEN_PER_CM3`]).
pub(crate) fn pp_elastic_sigma_per_cm(e: f64) -> f64 {
    let mb = match PP_ELASTIC_MB.iter().position(|(x, _)| *x >= e) {
        None => PP_ELASTIC_MB.last().map_or(0.0, |p| p.1),
        Some(0) => {
            if e >= PP_ELASTIC_MB[0].0 {
                PP_ELASTIC_MB[0].1
            } else {
                0.0
            }
        }
        Some(k) => {
            let ((x0, y0), (x1, y1)) = (PP_ELASTIC_MB[k - 1], PP_ELASTIC_MB[k]);
            y0 + (e - x0) / (x1 - x0) * (y1 - y0)
        }
    };
    mb * MILLIBARN_CM2 * WATER_HYDROGEN_PER_CM3 * WATER_DENSITY
}

/// Nuclear elastic scattering on oxygen is left out below this energy, MeV (the lower end of
/// the fit's range).
const PO_ELASTIC_MIN_MEV: f64 = 50.0;
/// ... and held at its value here above it, MeV (the upper end).
const PO_ELASTIC_MAX_MEV: f64 = 250.0;

/// Macroscopic cross section of nuclear elastic scattering on oxygen in water, 1/cm, at `e`
/// MeV: Fippel and Soukup's fit (Med. Phys. 31 (2004) 2263; as in MOQUI),
/// `σ/ρ = 1.88/E + 4.0 × 10⁻⁵ E − 0.01475 cm²/g`, `E` in MeV, for 50 ≤ E ≤ 250 MeV (0.0250 /cm
/// at 50 MeV, 0.0081 at 100, 0.0038 at 150, 0.0028 at 250); zero below 50 MeV and constant
/// above 250.
pub(crate) fn po_elastic_sigma_per_cm(e: f64) -> f64 {
    if e.is_nan() || e < PO_ELASTIC_MIN_MEV {
        return 0.0;
    }
    let e = e.min(PO_ELASTIC_MAX_MEV);
    (1.88 / e + 4.0e-5 * e - 0.01475).max(0.0) * WATER_DENSITY
}

/// Points in [`CrossSections`].
const TABLE_POINTS: usize = 2048;

/// [`nonelastic_sigma_per_cm`] and [`pp_elastic_sigma_per_cm`] tabulated on a grid uniform in
/// `sqrt(E)` from 0 to `TABLE_MAX_MEV`, linear interpolation (within 0.2% of the direct forms
/// above 10 MeV; the step in the non-elastic one at 7 MeV is smeared over one grid interval).
#[derive(Debug, Clone)]
pub(crate) struct CrossSections {
    /// `[non-elastic, p–p elastic, p–O elastic]`, 1/cm, at `E = (i·du)²`.
    rows: Vec<[f64; 3]>,
    inv_du: f64,
}

impl CrossSections {
    /// Builds the table.
    pub(crate) fn new() -> Self {
        let du = TABLE_MAX_MEV.sqrt() / (TABLE_POINTS - 1) as f64;
        let rows = (0..TABLE_POINTS)
            .map(|i| {
                let e = (i as f64 * du).powi(2);
                [
                    nonelastic_sigma_per_cm(e),
                    pp_elastic_sigma_per_cm(e),
                    po_elastic_sigma_per_cm(e),
                ]
            })
            .collect();
        Self {
            rows,
            inv_du: 1.0 / du,
        }
    }

    /// `[non-elastic, p–p elastic, p–O elastic]` macroscopic cross sections at `e` MeV, 1/cm.
    #[inline]
    pub(crate) fn at(&self, e: f64) -> [f64; 3] {
        lerp_rows(&self.rows, e.max(0.0).sqrt() * self.inv_du)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks a fit of Fippel and Soukup (both end at 250 MeV): its own values `(E, 1/cm)`
    /// within `tolerance` (relative), zero at `below` MeV (under its range) and for NaN, and
    /// held at its 250 MeV value up to the tables' end.
    fn check_fit(fit: fn(f64) -> f64, values: &[(f64, f64)], tolerance: f64, below: f64) {
        for &(e, want) in values {
            let got = fit(e);
            assert!(
                (got / want - 1.0).abs() < tolerance,
                "{e} MeV: {got} vs {want}"
            );
        }
        assert_eq!(fit(below), 0.0);
        assert_eq!(fit(f64::NAN), 0.0);
        assert_eq!(fit(TABLE_MAX_MEV), fit(250.0));
        assert_eq!(fit(300.0), fit(250.0));
    }

    #[test]
    fn nonelastic_fit_gives_icru63_oxygen_values() {
        // Per oxygen atom (3.343e22 /cm³), ICRU 63's p + ¹⁶O non-elastic cross section is
        // ~0.5 b near 20–30 MeV, falling to ~0.3 b from 100 to 250 MeV.
        let per_o_barn = |e: f64| nonelastic_sigma_per_cm(e) / 3.343e22 / 1e-24;
        for (e, lo, hi) in [
            (20.0, 0.48, 0.60),
            (50.0, 0.36, 0.42),
            (100.0, 0.28, 0.32),
            (150.0, 0.28, 0.31),
            (250.0, 0.28, 0.31),
        ] {
            let b = per_o_barn(e);
            assert!(b > lo && b < hi, "{e} MeV: {b} b");
        }
        // The fit's own values (Fippel and Soukup 2004), 1/cm in water.
        check_fit(
            nonelastic_sigma_per_cm,
            &[(50.0, 0.013153), (100.0, 0.010131), (150.0, 0.009877)],
            1e-4,
            6.9,
        );
        // Decreasing from its maximum near 20 MeV: fewer interactions per cm at high energy.
        assert!(nonelastic_sigma_per_cm(60.0) > nonelastic_sigma_per_cm(120.0));
    }

    #[test]
    fn pp_elastic_interpolates_its_table() {
        let mb = |e: f64| pp_elastic_sigma_per_cm(e) / WATER_HYDROGEN_PER_CM3 / MILLIBARN_CM2;
        // At the tabulated points, and half-way between two.
        assert!((mb(150.0) - 23.9).abs() < 1e-9);
        assert!((mb(45.0) - 0.5 * (67.3 + 51.7)).abs() < 1e-9);
        assert!((mb(5.0) - 515.6).abs() < 1e-9);
        assert_eq!(mb(4.9), 0.0);
        assert!((mb(400.0) - 23.5).abs() < 1e-9);
        // About 4% of 150 MeV protons scatter elastically on hydrogen on their way to rest:
        // 0.0016 /cm at 150 MeV, 0.0035 /cm at 50 MeV.
        assert!((pp_elastic_sigma_per_cm(150.0) - 0.0016).abs() < 0.0001);
    }

    #[test]
    fn po_elastic_fit_values() {
        // Fippel and Soukup's fit, 1/cm in water: 1.88/E + 4e-5 E − 0.01475.
        check_fit(
            po_elastic_sigma_per_cm,
            &[(50.0, 0.02485), (100.0, 0.00805), (150.0, 0.003783)],
            1e-3,
            49.9,
        );
    }

    #[test]
    fn the_table_follows_the_direct_forms() {
        let t = CrossSections::new();
        for e in [10.0, 20.0, 33.3, 70.0, 101.0, 150.0, 230.0, 260.0, 399.0] {
            let [ne, pp, po] = t.at(e);
            let (a, b) = (nonelastic_sigma_per_cm(e), pp_elastic_sigma_per_cm(e));
            assert!(
                (ne / a - 1.0).abs() < 2e-3,
                "{e} MeV non-elastic: {ne} vs {a}"
            );
            assert!((pp / b - 1.0).abs() < 2e-3, "{e} MeV p–p: {pp} vs {b}");
            let c = po_elastic_sigma_per_cm(e);
            assert!((po - c).abs() <= 2e-3 * c, "{e} MeV p–O: {po} vs {c}");
        }
        assert_eq!(t.at(0.0), [0.0; 3]);
        assert_eq!(t.at(-1.0), [0.0; 3]);
    }
}
