//! Multiple Coulomb scattering of protons in water by a mixed (class II) scheme: the many
//! small deflections of a step add up to a Gaussian whose variance is the *restricted*
//! second moment of the single-scattering cross section below a cutoff angle `θc`, and the
//! few deflections above `θc` are sampled one by one from that cross section (the screened
//! Rutherford, or Wentzel, cross section with Molière's screening angle).
//!
//! The scheme is that of Berger's class II condensed histories and of PENELOPE's and Geant4's
//! (WentzelVI) mixed models: M. J. Berger, *Monte Carlo calculation of the penetration and
//! diffusion of fast charged particles*, Methods Comput. Phys. 1 (1963) 135; J. M.
//! Fernández-Varea, R. Mayol, J. Baró and F. Salvat, *On the theory and simulation of
//! multiple elastic scattering of electrons*, Nucl. Instrum. Meth. B 73 (1993) 447; V. N.
//! Ivanchenko et al., *Geant4 models for simulation of multiple scattering*, J. Phys. Conf.
//! Ser. 219 (2010) 032045. Molière's theory (G. Molière, Z. Naturforsch. 3a (1948) 78; H. A.
//! Bethe, *Molière's theory of multiple scattering*, Phys. Rev. 89 (1953) 1256) is the exact
//! small-angle solution for this cross section, which depends on it through two angles only,
//! `χc` and `χa`; sampling the cross section's hard part and the Gaussian of its soft part
//! reproduces Molière's distribution, narrow core and single-scattering tail alike, at every
//! depth, without a depth-dependent correction (B. Gottschalk, *On the scattering power of
//! radiotherapy protons*, Med. Phys. 37 (2010) 352, on why a local scattering power needs
//! one when the whole distribution is taken as a Gaussian).
//!
//! The single-scattering law, per cm of water, in the space angle `θ` (small angles), for the
//! nuclei: `dn/dθ = 2 χc² θ / (θ² + χa²)²`, so that `n(> θ) = χc² / (θ² + χa²)`, up to `θmax`;
//! with
//! - `χc² = 4π N_A e⁴ Σᵢ wᵢ Zᵢ²/Aᵢ · ρ / (pv)²` rad²/cm, where
//!   `4π N_A e⁴ = 4π N_A r_e² (m_e c²)² = 0.1569 MeV² cm²/mol` (Bethe 1953, there
//!   with `Z(Z + 1)`; G. R. Lynch and O. I. Dahl, *Approximations to multiple Coulomb
//!   scattering*, Nucl. Instrum. Meth. B 58 (1991) 6);
//! - the screening angle of element `i`, `χa,ᵢ² = χ0² (1.13 + 3.76 αᵢ²)`, `χ0 = ħc / (pc · a)`,
//!   `a = 0.885 a₀ Zᵢ^(−1/3)` (Thomas–Fermi radius), `αᵢ = Zᵢ / (137.036 β)` (Molière 1948;
//!   Bethe 1953; Lynch and Dahl 1991), and for water the average of
//!   `ln χa²` weighted by `wᵢ Zᵢ(Zᵢ + 1)/Aᵢ` (Molière's rule for compounds, as in Lynch and
//!   Dahl 1991);
//! - `θmax = ħc / (pc · 1.2 fm · A^(1/3))` of oxygen, where the nuclear form factor ends the
//!   Rutherford tail (Bethe 1953: the distribution does not depend on it except in the
//!   far tail), at most 1 rad.
//!
//! The atomic electrons add the same law with `Zᵢ` for `Zᵢ²` (Molière's `Z(Z + 1)`), but a
//! proton cannot be turned by more than `m_e/M_p = 0.54 mrad` by a free electron, so their
//! part is cut there (U. Fano, *Inelastic collisions and the Molière theory of multiple
//! scattering*, Phys. Rev. 93 (1954) 117, on why `Z(Z + 1)` with the nuclear cutoff
//! overstates it; S. I. Striganov, Radiat. Prot. Dosim. 116 (2005) 293, Molière's theory
//! with nuclei and electrons apart, and the soft/hard split with the electrons' exact
//! kinematics, in MARS): it is always soft (`θc` is above 1 mrad, twice that angle, up to the tables' 400 MeV).
//! Taking it to `θmax` like the nuclei, as `Z(Z + 1)` does, widened the lateral σ at 5, 10
//! and 14 cm by about 4% (`BENCHMARKS.md`).
//!
//! Above the cutoff `θc` hard deflections happen at a fixed rate `h` per cm (counting those
//! beyond `θmax` as null events), which fixes `θc² + χa² = χc² / h`; their angles are drawn
//! by inverting `n(> θ)`: `θ² = (θc² + χa²)/u − χa²`, `u` uniform on (0, 1), an angle beyond
//! `θmax` counting as none. Below it the restricted second moment of the space angle per cm is
//! `∫₀^θc θ² dn = χc² [ln(1 + θc²/χa²) − θc²/(θc² + χa²)]`; the hard part holds the rest,
//! `χc² [ln((θmax² + χa²)/(θc² + χa²)) + χa²/(θmax² + χa²) − χa²/(θc² + χa²)]`, and the two add
//! up to the unrestricted second moment (checked in the tests). The Gaussian of a step gets
//! half the soft moment (and the electrons') per projected angle.
//!
//! The scheme adds no width of its own: a test samples 1 cm of water at 150 MeV and compares
//! it with the exact small-angle distribution of this cross section (its characteristic
//! function `exp(−t ∫ (1 − J0(qθ)) dn)`, inverted numerically; Molière 1948, Bethe 1953): the
//! core from the median agrees to 0.2% and the fraction beyond 3.5 core σ to 1%.

use super::physics::{fast_ln, lerp_rows, PROTON_MASS_MEV, TABLE_MAX_MEV};
use super::rng::Rng;

/// `4π N_A r_e² (m_e c²)²`, MeV² cm²/mol (the same constant as Bohr's straggling).
const FOUR_PI_NA_E4: f64 = 0.156_9;
/// Mass fractions of hydrogen and oxygen in water (NIST, *Composition of materials*).
const WATER_W: [f64; 2] = [0.111_894, 0.888_106];
/// Atomic numbers of hydrogen and oxygen.
const WATER_Z: [f64; 2] = [1.0, 8.0];
/// Atomic masses of hydrogen and oxygen, g/mol.
const WATER_A: [f64; 2] = [1.007_94, 15.999_4];
/// Bohr radius, cm.
const BOHR_RADIUS_CM: f64 = 0.529_177e-8;
/// `ħc`, MeV cm.
const HBAR_C_MEV_CM: f64 = 197.326_98e-13;
/// Inverse fine-structure constant.
const INV_ALPHA: f64 = 137.036;
/// Nuclear radius constant `r₀` of `R = r₀ A^(1/3)`, cm (1.2 fm).
const NUCLEAR_R0_CM: f64 = 1.2e-13;
/// Largest angle through which a free electron at rest turns a proton, `m_e/M_p`, rad.
const ELECTRON_THETA_MAX: f64 = 0.510_998_95 / PROTON_MASS_MEV;
/// Hard (single) Coulomb deflections per cm of path, the rate that sets `θc` (~3 mrad at
/// 150 MeV). The lateral σ at 5, 10 and 14 cm of the SHIELD-HIT12A comparison stayed the
/// same (within 0.5%, the run's noise) from 1 to 32 per cm: the soft part is then a sum of
/// enough deflections to be Gaussian. 1 per cm is about 16 per 150 MeV primary.
pub(crate) const HARD_RATE_PER_CM: f64 = 1.0;
/// Points in the table (uniform in `sqrt(E)` up to [`TABLE_MAX_MEV`]).
const TABLE_POINTS: usize = 4096;

/// The angles of Molière's theory for a proton of kinetic energy `e` MeV in water:
/// `[χc² of the nuclei per cm, χc² of the electrons per cm, χa²]`, rad²/cm, rad²/cm, rad².
pub(crate) fn moliere_angles(e: f64) -> [f64; 3] {
    let pc2 = e * (e + 2.0 * PROTON_MASS_MEV);
    let total = e + PROTON_MASS_MEV;
    let beta2 = pc2 / (total * total);
    let pv = pc2 / total;
    let (mut nuclei, mut electrons, mut sum_ln) = (0.0, 0.0, 0.0);
    for i in 0..2 {
        let z = WATER_Z[i];
        let per_a = WATER_W[i] / WATER_A[i];
        let a_tf = 0.885 * BOHR_RADIUS_CM * z.powf(-1.0 / 3.0);
        let chi0_2 = HBAR_C_MEV_CM * HBAR_C_MEV_CM / (pc2 * a_tf * a_tf);
        let alpha2 = z * z / (INV_ALPHA * INV_ALPHA * beta2);
        nuclei += per_a * z * z;
        electrons += per_a * z;
        sum_ln += per_a * z * (z + 1.0) * (chi0_2 * (1.13 + 3.76 * alpha2)).ln();
    }
    let k = FOUR_PI_NA_E4 / (pv * pv);
    [
        k * nuclei,
        k * electrons,
        (sum_ln / (nuclei + electrons)).exp(),
    ]
}

/// `θmax²` of a proton of kinetic energy `e` MeV, rad²: `ħc / (pc R)` with `R` the radius
/// of the oxygen nucleus, at most 1 rad.
pub(crate) fn theta_max2(e: f64) -> f64 {
    let pc2 = e * (e + 2.0 * PROTON_MASS_MEV);
    let r = NUCLEAR_R0_CM * WATER_A[1].cbrt();
    (HBAR_C_MEV_CM * HBAR_C_MEV_CM / (pc2 * r * r)).min(1.0)
}

/// `∫ θ² dn` of `n(> θ) = c/(θ² + a)` from `θ² = w0 − a` to `w1 − a`, per unit of `c`:
/// `ln(w1/w0) + a/w1 − a/w0`.
fn moment(a: f64, w0: f64, w1: f64) -> f64 {
    if w1 > w0 {
        (w1 / w0).ln() + a / w1 - a / w0
    } else {
        0.0
    }
}

/// Second moments of the space angle per cm, rad²/cm, for a proton of `e` MeV and the hard
/// rate `h` per cm: `(soft, hard)`, the soft part with the electrons'.
pub(crate) fn split_moments(e: f64, h: f64) -> (f64, f64) {
    let [nuclei, electrons, chi_a2] = moliere_angles(e);
    let w = (nuclei / h).max(chi_a2);
    let w_max = theta_max2(e) + chi_a2;
    let w_e = ELECTRON_THETA_MAX.powi(2) + chi_a2;
    let soft =
        nuclei * moment(chi_a2, chi_a2, w.min(w_max)) + electrons * moment(chi_a2, chi_a2, w_e);
    (soft, nuclei * moment(chi_a2, w, w_max))
}

/// The unrestricted second moment of the space angle per cm, rad²/cm: the nuclei's up to
/// `θmax`, the electrons' up to `m_e/M_p` (what the tests check the split against).
#[cfg(test)]
fn total_moment(e: f64) -> f64 {
    let [nuclei, electrons, chi_a2] = moliere_angles(e);
    let w_max = theta_max2(e) + chi_a2;
    let w_e = ELECTRON_THETA_MAX.powi(2) + chi_a2;
    nuclei * moment(chi_a2, chi_a2, w_max) + electrons * moment(chi_a2, chi_a2, w_e)
}

/// What one step needs at one energy (a row of [`Coulomb`]'s table).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CoulombRow {
    /// Variance of each projected angle per cm from the soft collisions, rad²/cm.
    pub(crate) soft_power: f64,
    /// `θc² + χa²`, rad².
    w: f64,
    /// `χa²`, rad².
    chi_a2: f64,
    /// `θmax²`, rad².
    max2: f64,
}

impl CoulombRow {
    /// The polar angle of one hard deflection from the uniform deviate `u` in (0, 1), rad;
    /// 0 beyond `θmax` (the nuclear form factor).
    #[inline]
    pub(crate) fn hard_angle(&self, u: f64) -> f64 {
        let t2 = self.w / u - self.chi_a2;
        if t2 > self.max2 {
            0.0
        } else {
            t2.max(0.0).sqrt()
        }
    }
}

/// [`split_moments`] and the hard-sampling angles tabulated on `E = (i·du)²`, linearly
/// interpolated.
#[derive(Debug, Clone)]
pub(crate) struct Coulomb {
    /// Per grid point: projected soft variance per cm, `θc² + χa²`, `χa²`, `θmax²`.
    rows: Vec<[f64; 4]>,
    inv_du: f64,
    /// Mean free path between hard deflections, cm.
    pub(crate) hard_mfp: f64,
}

impl Coulomb {
    /// Tables for the hard rate `rate` per cm.
    pub(crate) fn new(rate: f64) -> Self {
        let n = TABLE_POINTS;
        let du = TABLE_MAX_MEV.sqrt() / (n - 1) as f64;
        let rows = (0..n)
            .map(|i| {
                // The first point (E = 0) takes the value a quarter of a grid step up.
                let u = (i as f64).max(0.5) * du;
                let e = u * u;
                let [nuclei, _, chi_a2] = moliere_angles(e);
                let (soft, _) = split_moments(e, rate);
                [
                    0.5 * soft,
                    (nuclei / rate).max(chi_a2),
                    chi_a2,
                    theta_max2(e),
                ]
            })
            .collect();
        Self {
            rows,
            inv_du: 1.0 / du,
            hard_mfp: 1.0 / rate,
        }
    }

    /// A distance to the next hard deflection, cm (exponential, mean `1/h`).
    #[inline]
    pub(crate) fn hard_distance(&self, rng: &mut Rng) -> f64 {
        -fast_ln(rng.uniform_open()) * self.hard_mfp
    }

    /// The two projected deflection angles (rad) of a step of `step` cm at `e` MeV: a
    /// Gaussian of variance `soft_power · step` each, plus, one by one, the hard deflections
    /// that fall in the step (`hard_left` is the distance to the next one, cm, carried from
    /// step to step), each a polar angle from [`CoulombRow::hard_angle`] at a uniform
    /// azimuth, added as projected angles (small angles: to second order the sum is the
    /// composed deflection).
    #[inline]
    pub(crate) fn deflection(
        &self,
        e: f64,
        step: f64,
        hard_left: &mut f64,
        rng: &mut Rng,
    ) -> (f64, f64) {
        let row = self.at(e);
        let theta0 = (row.soft_power * step).sqrt();
        let (mut a, mut b) = (theta0 * rng.gaussian(), theta0 * rng.gaussian());
        while *hard_left < step {
            let t = row.hard_angle(rng.uniform_open());
            let (c, s) = unit_azimuth(rng);
            a += t * c;
            b += t * s;
            *hard_left += self.hard_distance(rng);
        }
        *hard_left -= step;
        (a, b)
    }

    /// The table at kinetic energy `e` MeV.
    #[inline]
    pub(crate) fn at(&self, e: f64) -> CoulombRow {
        let [s, w, a, m] = lerp_rows(&self.rows, e.max(0.0).sqrt() * self.inv_du);
        CoulombRow {
            soft_power: s,
            w,
            chi_a2: a,
            max2: m,
        }
    }
}

/// `(cos φ, sin φ)` of an azimuth `φ` uniform on [0, 2π), without trigonometry: a point
/// `(x, y)` uniform in the unit disk (by rejection from the square, π/4 accepted) has a
/// uniform polar angle `ψ`, and `(cos 2ψ, sin 2ψ) = (x² − y², 2xy)/r²` (J. von Neumann,
/// *Various techniques used in connection with random digits*, NBS Appl. Math. Ser. 12
/// (1951) 36).
#[inline]
fn unit_azimuth(rng: &mut Rng) -> (f64, f64) {
    loop {
        let x = 2.0 * rng.uniform_open() - 1.0;
        let y = 2.0 * rng.uniform_open() - 1.0;
        let r2 = x * x + y * y;
        if r2 <= 1.0 && r2 > 1e-12 {
            return ((x * x - y * y) / r2, 2.0 * x * y / r2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn soft_and_hard_moments_add_up_to_the_unrestricted_one() {
        for e in [5.0, 20.0, 70.0, 150.0, 250.0] {
            for h in [0.5, 2.0, 10.0] {
                let (soft, hard) = split_moments(e, h);
                let total = total_moment(e);
                assert!(soft > 0.0 && hard > 0.0, "{e} MeV, h {h}");
                assert!(
                    ((soft + hard) / total - 1.0).abs() < 1e-12,
                    "{e} MeV, h {h}: {soft} + {hard} vs {total}"
                );
                // The more hard deflections, the less is left to the Gaussian.
                assert!(split_moments(e, 2.0 * h).0 < soft);
            }
        }
    }

    #[test]
    fn moliere_angles_for_150_mev_protons_in_water() {
        // χc² = 0.1569 · Σ w Z(Z + 1)/A (4.219 mol/g) / (pv)², pv = 279.3 MeV.
        let [nuclei, electrons, chi_a2] = moliere_angles(150.0);
        assert!(((nuclei + electrons) / 8.49e-6 - 1.0).abs() < 0.01);
        // The electrons' share is Z/A over Z(Z + 1)/A: 0.555/4.219.
        assert!((electrons / (nuclei + electrons) - 0.1316).abs() < 0.001);
        // χa of oxygen ≈ 1.66e-5 rad (χ0 = ħc/(pc a), 1.13 + 3.76 α²); hydrogen's (a larger
        // atom) is smaller and weighs 5% in the average.
        assert!(
            chi_a2.sqrt() > 1.55e-5 && chi_a2.sqrt() < 1.66e-5,
            "{chi_a2}"
        );
        // Molière's Ω = ln(χc² t / (1.167 χa²)) for 5 cm of water is about 11.8 (B ≈ 14.5).
        let omega = ((nuclei + electrons) * 5.0 / (1.167 * chi_a2)).ln();
        assert!((omega - 11.8).abs() < 0.2, "{omega}");
        // The cutoff of the hard part is far above the electrons' largest angle.
        let theta_c2 = nuclei / HARD_RATE_PER_CM - chi_a2;
        assert!(theta_c2 > 4.0 * ELECTRON_THETA_MAX.powi(2));
    }

    #[test]
    fn sampled_hard_deflections_carry_the_hard_moment() {
        let c = Coulomb::new(HARD_RATE_PER_CM);
        let mut rng = Rng::new(9);
        for e in [20.0, 150.0] {
            let row = c.at(e);
            let (soft, hard) = split_moments(e, HARD_RATE_PER_CM);
            assert!(
                (row.soft_power / (0.5 * soft) - 1.0).abs() < 1e-3,
                "{e} MeV"
            );
            // Mean θ² per event times events per cm is the hard moment per cm. θ² has a
            // log-uniform spread over ~8 e-folds up to θmax: 400 000 events give ~1%.
            let n = 400_000;
            let (mut sum, mut none) = (0.0, 0);
            for _ in 0..n {
                let t = row.hard_angle(rng.uniform_open());
                assert!(t == 0.0 || t * t >= row.w - row.chi_a2 - 1e-15);
                assert!(t * t <= row.max2);
                sum += t * t;
                none += usize::from(t == 0.0);
            }
            let got = sum / n as f64 / c.hard_mfp;
            assert!((got / hard - 1.0).abs() < 0.03, "{e} MeV: {got} vs {hard}");
            // Null events (beyond θmax) are rare: n(> θmax)/n(> θc) = w / (θmax² + χa²).
            let want = row.w / (row.max2 + row.chi_a2);
            assert!((none as f64 / n as f64 - want).abs() < 0.001 + 0.1 * want);
        }
    }

    /// The Bessel function `J0`, by the rational and asymptotic approximations of W. H. Press
    /// et al., *Numerical Recipes in C*, 2nd ed. (1992), §6.5 (`bessj0`): absolute error
    /// below about 1e-8.
    fn bessel_j0(x: f64) -> f64 {
        let ax = x.abs();
        if ax < 8.0 {
            let y = x * x;
            let p = 57_568_490_574.0
                + y * (-13_362_590_354.0
                    + y * (651_619_640.7
                        + y * (-11_214_424.18 + y * (77_392.330_17 + y * -184.905_245_6))));
            let q = 57_568_490_411.0
                + y * (1_029_532_985.0
                    + y * (9_494_680.718 + y * (59_272.648_53 + y * (267.853_271_2 + y))));
            return p / q;
        }
        let z = 8.0 / ax;
        let y = z * z;
        let xx = ax - 0.785_398_164;
        let p = 1.0
            + y * (-0.109_862_862_7e-2
                + y * (0.273_451_040_7e-4 + y * (-0.207_337_063_9e-5 + y * 0.209_388_721_1e-6)));
        let q = -0.156_249_999_5e-1
            + y * (0.143_048_876_5e-3
                + y * (-0.691_114_765_1e-5 + y * (0.762_109_516_1e-6 - y * 0.934_935_152e-7)));
        (std::f64::consts::FRAC_2_PI / ax).sqrt() * (xx.cos() * p - z * xx.sin() * q)
    }

    /// `Σ(q) = ∫ (1 − J0(qθ)) dn(θ)` per cm at `e` MeV, for this engine's single-scattering
    /// law (the nuclei up to `θmax`, the electrons up to `m_e/M_p`): after `t` cm at a fixed
    /// energy the characteristic function of the space angle is `exp(−t Σ(q))`, the exact
    /// small-angle solution of the transport equation for this cross section, which
    /// Molière's expansion in `1/B` approximates (Molière 1948; Bethe 1953). Simpson's rule in
    /// `ln θ` from `χa/1000` (240 intervals; doubling them moves it by less than 1e-5).
    fn exponent(e: f64, q: f64) -> f64 {
        let [nuclei, electrons, chi_a2] = moliere_angles(e);
        let law = |cut: f64| {
            let (lo, n) = ((chi_a2.sqrt() / 1000.0).ln(), 240);
            let h = (cut.ln() - lo) / n as f64;
            let sum: f64 = (0..=n)
                .map(|i| {
                    let t = (lo + i as f64 * h).exp();
                    let x = q * t;
                    // 1 − J0(x) ≈ x²/4 where the difference would lose its digits.
                    let one_minus_j0 = if x < 1e-3 {
                        0.25 * x * x
                    } else {
                        1.0 - bessel_j0(x)
                    };
                    let w = if i == 0 || i == n {
                        1.0
                    } else {
                        2.0 + 2.0 * (i % 2) as f64
                    };
                    w * one_minus_j0 * 2.0 * t * t / (t * t + chi_a2).powi(2)
                })
                .sum();
            sum * h / 3.0
        };
        nuclei * law(theta_max2(e).sqrt()) + electrons * law(ELECTRON_THETA_MAX)
    }

    #[test]
    fn a_centimetre_of_water_gives_the_exact_multiple_scattering_distribution() {
        // 150 MeV protons through 1 cm of water in steps of 0.25 cm, the energy held fixed.
        let c = Coulomb::new(HARD_RATE_PER_CM);
        let mut rng = Rng::new(21);
        let e = 150.0;
        let n = 200_000;
        let mut hard_left = c.hard_distance(&mut rng);
        let mut angles: Vec<f64> = (0..n)
            .map(|_| {
                let mut sum = 0.0;
                for _ in 0..4 {
                    sum += c.deflection(e, 0.25, &mut hard_left, &mut rng).0;
                }
                sum.abs()
            })
            .collect();
        angles.sort_by(f64::total_cmp);
        // J0 at 1, 5 and 10 (Abramowitz and Stegun, Table 9.1).
        for (x, j0) in [
            (1.0, 0.765_197_686_6),
            (5.0, -0.177_596_771_3),
            (10.0, -0.245_935_764_5),
        ] {
            assert!((bessel_j0(x) - j0).abs() < 1e-8, "J0({x})");
        }
        // The exact distribution of the projected angle: P(|θx| < T) =
        // (2/π) ∫ sin(qT)/q exp(−Σ(q)) dq (the characteristic function of a projection of an
        // isotropic distribution is the space angle's), trapezoids of 2 rad⁻¹ up to 3000
        // (where exp(−Σ) is below e⁻¹⁰⁰).
        let dq = 2.0;
        let phi: Vec<(f64, f64)> = (1..1500)
            .map(|i| (i as f64 * dq, (-exponent(e, i as f64 * dq)).exp()))
            .collect();
        let within = |t: f64| {
            let sum: f64 = phi.iter().map(|(q, f)| (q * t).sin() / q * f).sum();
            2.0 / std::f64::consts::PI * (0.5 * t + sum) * dq
        };
        let (mut lo, mut hi) = (0.0, 0.05);
        for _ in 0..50 {
            let mid = 0.5 * (lo + hi);
            if within(mid) < 0.5 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        // The Gaussian core from the median of |θx| (0.6745 σ for a Gaussian).
        let exact = lo / 0.6745;
        let core = angles[n / 2] / 0.6745;
        // The sampled median is known to ±0.4% (1.86/sqrt(n) of itself): 1.5% is 3.5 s.d.
        assert!((core / exact - 1.0).abs() < 0.015, "{core} vs {exact}");
        // Both lie below the width of the Gaussian term of Molière's expansion alone,
        // θ0 = χc sqrt(B/2) (Bethe 1953), B − ln B = Ω = ln(χc²/(1.167 χa²)) = 10.3 for 1 cm
        // (B = 12.8): the electrons' part is cut at m_e/M_p, where Molière's Z(Z + 1) takes
        // it to θmax (the exact core is 3.6% below θ0; with Z(Z + 1), 0.2% above).
        let [nuclei, electrons, chi_a2] = moliere_angles(e);
        let chi_c2 = nuclei + electrons;
        let omega = (chi_c2 / (1.167 * chi_a2)).ln();
        let mut b = omega + omega.ln();
        for _ in 0..20 {
            b = omega + b.ln();
        }
        let theta0 = (chi_c2 * b / 2.0).sqrt();
        assert!(
            exact < 0.98 * theta0 && exact > 0.95 * theta0,
            "{exact} vs {theta0}"
        );
        // A heavy tail: beyond 3.5 core σ a Gaussian has 0.047%, the exact distribution 0.81%
        // (17 times that); the sampled fraction is known to ±2.5%.
        let beyond = angles.iter().filter(|&&t| t > 3.5 * exact).count() as f64 / n as f64;
        let want = 1.0 - within(3.5 * exact);
        assert!(want > 0.005 && want < 0.02, "{want}");
        assert!((beyond / want - 1.0).abs() < 0.1, "{beyond} vs {want}");
    }
}
